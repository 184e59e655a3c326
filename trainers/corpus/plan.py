"""What the corpus holds: every utterance, its class, attack and split, decided before any audio
is made, from the packaged sources, the preset and the seed alone.

The protocol measures generalisation, not memory. ``eval`` holds out whole families that
``train`` and ``dev`` never see: a real-speech source package, a language and a speaker on the bona
fide side, text-to-speech families and vocoder architectures on the spoof side. ``dev`` holds out
*other* families, so that model choice is also made on families training never saw. The seen
families are split by utterance (most to ``train``, a tenth each to ``dev`` and ``eval``), and each
held-out item is marked ``held_out`` so results can be read on unseen families alone.

A recording's ``text_group`` (or else its key) decides its split, so the same words never sit on
both sides of a split boundary: every speaker's and language's recording of one prompt and every
synthetic rendering of its text share one split.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from dfd.trainers.corpus.bonafide import discover_recordings
from dfd.trainers.corpus.recordings import SpeechRecording
from dfd.trainers.corpus.tts import TtsSystem, systems_for_language

Split = Literal["train", "dev", "eval"]
SPLITS: tuple[Split, ...] = ("train", "dev", "eval")
Preset = Literal["small", "full"]


@dataclass(frozen=True)
class HoldOut:
    """What one split holds out of training whole."""

    families: tuple[str, ...] = ()  # bona fide source families
    languages: tuple[str, ...] = ()
    speakers: tuple[str, ...] = ()
    tts_families: tuple[str, ...] = ()  # TtsSystem.family
    vocoders: tuple[str, ...] = ()  # copy-synthesis vocoders


HELD_OUT: dict[Split, HoldOut] = {
    # eval: 22 voices of one game's cast (8-bit 11 kHz recordings), Dutch (two voice actors and a
    # volunteer), one Asterisk voice; DECtalk's formant voices, Piper's neural VITS voice, the
    # neural source-filter vocoder and the LPC vocoder
    "eval": HoldOut(
        families=("drascula",),
        languages=("nl",),
        speakers=("carlo",),
        tts_families=("dectalk", "piper"),
        vocoders=("nsf", "lpc"),
    ),
    # dev: a game announcer, Czech (two voice actors); SAM, the HTS voice, the Vocos vocoder
    "dev": HoldOut(
        families=("warzone",),
        languages=("cs",),
        tts_families=("sam", "festival-hts"),
        vocoders=("vocos",),
    ),
}
SEEN_VOCODERS = ("world", "griffinlim", "hifigan")
# Seen families: the share of their utterances in train and dev (the rest is eval). The first
# corpus used 0.6 / 0.15; a larger train share keeps every earlier train utterance in train.
SPLIT_FRACTIONS = {"train": 0.8, "dev": 0.1}
# Systems that speak each text: more in dev and eval, whose texts are fewer, so that every
# held-out family is heard often enough to be measured.
TTS_SYSTEMS_PER_TEXT: dict[Split, int] = {"train": 2, "dev": 4, "eval": 4}


@dataclass(frozen=True)
class PresetLimits:
    """``None``: no limit. Limits pick the first items in a seeded order, so they are fair."""

    bonafide_per_group: int | None  # per group and split (a group: see ``group_by``)
    held_out_per_group: int | None  # the same for held-out voices, whose calls need more audio
    renderings_per_system: dict[Split, int | None]  # TTS sentences per system and language
    copy_synthesis_share: dict[Split, float]  # bona fide utterances given a vocoded copy
    group_by: Literal["speaker", "family"] = "speaker"  # (family, speaker, language) or family
    texts_per_language_and_split: int | None = None
    tts_languages: tuple[str, ...] | None = None  # None: every language with texts


PRESETS: dict[Preset, PresetLimits] = {
    "small": PresetLimits(
        bonafide_per_group=6,
        held_out_per_group=6,
        renderings_per_system={"train": None, "dev": None, "eval": None},
        copy_synthesis_share={"train": 1.0, "dev": 1.0, "eval": 1.0},
        group_by="family",
        texts_per_language_and_split=1,
        tts_languages=("cs", "en", "it", "nl"),
    ),
    "full": PresetLimits(
        bonafide_per_group=80,
        held_out_per_group=200,
        renderings_per_system={"train": 25, "dev": 25, "eval": 25},
        copy_synthesis_share={"train": 1.0, "dev": 0.5, "eval": 0.5},
    ),
}


@dataclass(frozen=True)
class BonafideItem:
    utt_id: str
    split: Split
    held_out: bool
    recording: SpeechRecording

    @property
    def speaker(self) -> str:
        return self.recording.speaker

    @property
    def language(self) -> str:
        return self.recording.language

    @property
    def family(self) -> str:
        return self.recording.family

    @property
    def origin(self) -> str:
        return self.recording.origin

    @property
    def key(self) -> str:
        return f"{self.recording.family}:{self.recording.key}"


@dataclass(frozen=True)
class CopySynthesisItem:
    utt_id: str
    split: Split
    held_out: bool
    speaker: str
    language: str
    attack: str  # the vocoder
    source_utt_id: str


@dataclass(frozen=True)
class TtsItem:
    utt_id: str
    split: Split
    held_out: bool
    attack: str  # the TTS system
    language: str
    text_key: str
    text: str


@dataclass
class CorpusPlan:
    seed: int
    preset: Preset
    bonafide: list[BonafideItem] = field(default_factory=list)
    copy_synthesis: list[CopySynthesisItem] = field(default_factory=list)
    tts: list[TtsItem] = field(default_factory=list)

    def attacks(self) -> list[str]:
        return sorted({i.attack for i in self.copy_synthesis} | {i.attack for i in self.tts})


def seeded_unit(seed: int, key: str) -> float:
    """A number in [0, 1) fixed by ``seed`` and ``key``, independent of everything else."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(seed: int, key: str) -> Split:
    """The split of a seen family's utterance (or text) named ``key``."""
    u = seeded_unit(seed, f"split:{key}")
    if u < SPLIT_FRACTIONS["train"]:
        return "train"
    return "dev" if u < SPLIT_FRACTIONS["train"] + SPLIT_FRACTIONS["dev"] else "eval"


def held_out_split(family: str, language: str, speaker: str) -> Split | None:
    """The split that holds this voice out of training, if any (eval wins over dev)."""
    for split in ("eval", "dev"):
        rule = HELD_OUT[split]
        if family in rule.families or language in rule.languages or speaker in rule.speakers:
            return split
    return None


def split_of_recording(seed: int, recording: SpeechRecording) -> tuple[Split, bool]:
    held = held_out_split(recording.family, recording.language, recording.speaker)
    if held is not None:
        return held, True
    return split_of(seed, recording.text_group or f"{recording.family}:{recording.key}"), False


def _held_for_speaker_only(recording: SpeechRecording) -> bool:
    return held_out_split(recording.family, recording.language, "") is None


def held_out_tts_split(family: str) -> Split | None:
    for split in ("eval", "dev"):
        if family in HELD_OUT[split].tts_families:
            return split
    return None


def make_plan(
    preset: Preset, seed: int, recordings: Sequence[SpeechRecording] | None = None
) -> CorpusPlan:
    """The plan; ``recordings`` defaults to every installed bona fide family's."""
    limits = PRESETS[preset]
    recordings = discover_recordings() if recordings is None else recordings
    plan = CorpusPlan(seed=seed, preset=preset)
    plan.bonafide = _limit(_bonafide_items(recordings, seed), limits, seed)
    plan.copy_synthesis = _copy_synthesis_items(plan.bonafide, seed, limits)
    plan.tts = _tts_items(recordings, plan.bonafide, seed, limits)
    _number(plan)
    return plan


def _bonafide_items(recordings: Iterable[SpeechRecording], seed: int) -> list[BonafideItem]:
    items = []
    for recording in recordings:
        split, held_out = split_of_recording(seed, recording)
        items.append(BonafideItem("", split, held_out, recording))
    return items


def _vocoders_for(split: Split) -> tuple[str, ...]:
    """Train: the seen vocoders. Dev and eval: their own held-out vocoders (the seen ones where
    a split holds none out), so their spoofs are unseen where the protocol says so."""
    if split == "train":
        return SEEN_VOCODERS
    return HELD_OUT[split].vocoders or SEEN_VOCODERS


def _copy_synthesis_items(
    bonafide: Sequence[BonafideItem], seed: int, limits: PresetLimits
) -> list[CopySynthesisItem]:
    """Paired copies: a bona fide utterance and its re-synthesis by one vocoder, which take
    turns (seeded order) so every vocoder gets a fair share of speakers and languages."""
    items = []
    seen: dict[Split, int] = defaultdict(int)
    made: dict[Split, int] = defaultdict(int)
    for source in sorted(bonafide, key=lambda item: seeded_unit(seed, f"vocoder:{item.key}")):
        share = limits.copy_synthesis_share[source.split]
        seen[source.split] += 1
        if share < 1.0 and (seen[source.split] * share) % 1 >= share:
            continue
        vocoders = _vocoders_for(source.split)
        attack = vocoders[made[source.split] % len(vocoders)]
        made[source.split] += 1
        held_out = attack not in SEEN_VOCODERS
        items.append(
            CopySynthesisItem(
                "", source.split, held_out, source.speaker, source.language, attack, source.key
            )
        )
    return items


def _tts_items(
    recordings: Sequence[SpeechRecording],
    bonafide: Sequence[BonafideItem],
    seed: int,
    limits: PresetLimits,
) -> list[TtsItem]:
    """Every packaged text, in the language it was recorded in, spoken by up to
    :data:`TTS_SYSTEMS_PER_TEXT` systems of that language allowed in its split.

    A language never gets more renderings than it has bona fide utterances in the split: with its
    vocoded copies, spoofs then outnumber real speech at most two to one in every language, so
    the language does not tell the class."""
    real: dict[tuple[str, Split], int] = defaultdict(int)
    for item in bonafide:
        real[(item.language, item.split)] += 1
    texts: dict[tuple[str, str], tuple[str, Split, bool]] = {}
    for recording in recordings:
        if recording.text:
            group = recording.text_group or f"{recording.family}:{recording.key}"
            split, held = split_of_recording(seed, recording)
            if held and _held_for_speaker_only(recording):  # a held-out voice, seen words
                split, held = split_of(seed, group), False
            texts.setdefault((recording.language, group), (recording.text, split, held))
    by_group: dict[tuple[str, Split], list[tuple[str, str, bool]]] = defaultdict(list)
    for (language, group), (text, split, held) in sorted(texts.items()):
        by_group[(language, split)].append((group, text, held))
    items = []
    for (language, split), entries in sorted(by_group.items()):
        if limits.tts_languages is not None and language not in limits.tts_languages:
            continue
        systems = _tts_systems_for(split, systems_for_language(language))
        if not systems:
            continue
        entries.sort(key=lambda entry: seeded_unit(seed, f"text:{language}:{entry[0]}"))
        per_text = min(TTS_SYSTEMS_PER_TEXT[split], len(systems))
        renderings = limits.renderings_per_system[split]
        if renderings is not None:  # enough texts for each system to say this many
            entries = entries[: -(-renderings * len(systems) // per_text)]
        if limits.texts_per_language_and_split is not None:
            entries = entries[: limits.texts_per_language_and_split]
        entries = entries[: max(1, real[(language, split)] // per_text)]
        for index, (group, text, language_held) in enumerate(entries):
            for k in range(per_text):
                system = systems[(index * per_text + k) % len(systems)]
                held = language_held or held_out_tts_split(system.family) is not None
                items.append(TtsItem("", split, held, system.attack, language, group, text))
    return items


def _tts_systems_for(split: Split, candidates: Sequence[TtsSystem]) -> list[TtsSystem]:
    """The systems that speak a split's texts, families interleaved so that consecutive picks
    come from different families."""
    seen = [s for s in candidates if held_out_tts_split(s.family) is None]
    own = [s for s in candidates if held_out_tts_split(s.family) == split]
    # a language no held-out system speaks is still spoken in its split, by seen systems
    chosen = seen if split == "train" else (own or seen)
    by_family: dict[str, list[TtsSystem]] = defaultdict(list)
    for system in sorted(chosen, key=lambda s: s.attack):
        by_family[system.family].append(system)
    queues = [by_family[family] for family in sorted(by_family)]
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


def _limit(items: Iterable[BonafideItem], limits: PresetLimits, seed: int) -> list[BonafideItem]:
    """The first items of each group in a seeded order. Grouped by family (the small preset),
    held-out items are taken a speaker at a time, so a few voices have enough for a call."""

    def order(item: BonafideItem) -> tuple[float, float]:
        by_speaker = limits.group_by == "family" and item.held_out
        speaker = seeded_unit(seed, f"pick-speaker:{item.speaker}") if by_speaker else 0.0
        return speaker, seeded_unit(seed, f"pick:{item.key}")

    counts: dict[tuple[str, ...], int] = defaultdict(int)
    kept = []
    for item in sorted(items, key=order):
        limit = limits.held_out_per_group if item.held_out else limits.bonafide_per_group
        group: tuple[str, ...] = (item.family, str(item.held_out), item.split)
        if limits.group_by == "speaker":
            group += (item.speaker, item.language)
        if limit is None or counts[group] < limit:
            counts[group] += 1
            kept.append(item)
    return sorted(kept, key=lambda item: item.key)


def _number(plan: CorpusPlan) -> None:
    """Opaque ASVspoof-style ids (DFD_T_0000001), so a file name never reveals its class."""
    letter = {"train": "T", "dev": "D", "eval": "E"}
    entries: list[tuple[str, str]] = []
    entries += [(i.split, f"b:{i.key}") for i in plan.bonafide]
    entries += [(i.split, f"c:{i.attack}:{i.source_utt_id}") for i in plan.copy_synthesis]
    entries += [(i.split, f"t:{i.attack}:{i.language}:{i.text_key}") for i in plan.tts]
    counters: dict[str, int] = defaultdict(int)
    ids: dict[str, str] = {}
    for split, key in sorted(entries, key=lambda e: (e[0], seeded_unit(plan.seed, f"id:{e[1]}"))):
        counters[split] += 1
        ids[key] = f"DFD_{letter[split]}_{counters[split]:07d}"
    plan.bonafide = [replace(i, utt_id=ids[f"b:{i.key}"]) for i in plan.bonafide]
    plan.copy_synthesis = [
        replace(
            i,
            utt_id=ids[f"c:{i.attack}:{i.source_utt_id}"],
            source_utt_id=ids[f"b:{i.source_utt_id}"],
        )
        for i in plan.copy_synthesis
    ]
    plan.tts = [replace(i, utt_id=ids[f"t:{i.attack}:{i.language}:{i.text_key}"]) for i in plan.tts]
