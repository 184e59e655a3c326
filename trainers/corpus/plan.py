"""What the corpus holds: every utterance, its class, attack and split, decided before any audio
is made, from the packaged sources, the preset and the seed alone.

Splits follow the ASVspoof design. ``eval`` holds out whole attack systems (the neural piper
voice, the HMM voice and the LPC vocoder) and one bona fide speaker that ``train`` never hears, so
the eval EER measures generalisation to unseen attacks and voices. ``dev`` has the attacks of
``train`` on other utterances. A prompt name decides the split of every recording and every
synthetic rendering of that prompt, so the same words never sit on both sides of a split
boundary within a language.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from dfd.trainers.corpus.sources import LetterSet, Prompt, discover_letter_sets, discover_prompts

Split = Literal["train", "dev", "eval"]
SPLITS: tuple[Split, ...] = ("train", "dev", "eval")
Preset = Literal["small", "full"]

HELD_OUT_SPEAKERS = ("carlo",)
TRAIN_VOCODERS = ("world", "griffinlim")
EVAL_VOCODERS = ("lpc",)
TRAIN_TTS_BY_LANGUAGE: dict[str, tuple[str, ...]] = {
    "en": (
        "espeak-en", "festival-kal", "festival-ked", "flite-awb", "flite-rms", "flite-slt",
        "flite-kal16",
    ),
    "it": ("espeak-it",),
    "ru": ("espeak-ru",),
}  # fmt: skip
EVAL_TTS_BY_LANGUAGE: dict[str, tuple[str, ...]] = {"en": ("piper-joe", "festival-slt-hts")}
HELD_OUT_ATTACKS = (*EVAL_VOCODERS, *EVAL_TTS_BY_LANGUAGE["en"])
TTS_SYSTEMS_PER_TRAIN_TEXT = 3
LETTERS_PER_UTTERANCE = 4
SPLIT_FRACTIONS = {"train": 0.6, "dev": 0.15}  # the rest is eval


@dataclass(frozen=True)
class PresetLimits:
    """``None``: no limit. Limits pick the first items in a seeded order, so they are fair."""

    per_source_and_split: int | None
    texts_per_language_and_split: int | None
    letter_languages: tuple[str, ...] | None
    eval_copy_synthesis_share: float


PRESETS: dict[Preset, PresetLimits] = {
    "small": PresetLimits(2, 3, ("en", "fr", "ru"), 0.5),
    "full": PresetLimits(None, None, None, 0.5),
}


@dataclass(frozen=True)
class BonafideItem:
    utt_id: str
    split: Split
    speaker: str
    language: str
    parts: tuple[Path, ...]  # recordings joined in order into one utterance
    text_key: str  # prompt name, or letters-<n> for klettres
    origin: str  # codec / sample rate of the recording


@dataclass(frozen=True)
class CopySynthesisItem:
    utt_id: str
    split: Split
    speaker: str
    language: str
    attack: str  # the vocoder
    source_utt_id: str


@dataclass(frozen=True)
class TtsItem:
    utt_id: str
    split: Split
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
    u = seeded_unit(seed, f"split:{key}")
    if u < SPLIT_FRACTIONS["train"]:
        return "train"
    return "dev" if u < SPLIT_FRACTIONS["train"] + SPLIT_FRACTIONS["dev"] else "eval"


def make_plan(preset: Preset, seed: int) -> CorpusPlan:
    limits = PRESETS[preset]
    plan = CorpusPlan(seed=seed, preset=preset)
    bonafide = _bonafide_items(
        discover_prompts(), discover_letter_sets(limits.letter_languages), seed
    )
    plan.bonafide = _limit(bonafide, limits.per_source_and_split, seed)
    plan.copy_synthesis = _copy_synthesis_items(plan.bonafide, seed, limits)
    plan.tts = _tts_items(discover_prompts(), seed, limits)
    _number(plan)
    return plan


def _bonafide_items(
    prompts: Sequence[Prompt], letter_sets: Sequence[LetterSet], seed: int
) -> list[BonafideItem]:
    items = []
    for prompt in prompts:
        split = "eval" if prompt.speaker in HELD_OUT_SPEAKERS else split_of(seed, prompt.name)
        items.append(
            BonafideItem(
                utt_id="",
                split=split,
                speaker=prompt.speaker,
                language=prompt.language,
                parts=(prompt.path,),
                text_key=prompt.name,
                origin=prompt.source.codec_of_origin,
            )
        )
    for letters in letter_sets:
        for index in range(0, len(letters.paths), LETTERS_PER_UTTERANCE):
            key = f"letters-{index // LETTERS_PER_UTTERANCE:03d}"
            items.append(
                BonafideItem(
                    utt_id="",
                    split=split_of(seed, f"{letters.speaker}:{key}"),
                    speaker=letters.speaker,
                    language=letters.language,
                    parts=letters.paths[index : index + LETTERS_PER_UTTERANCE],
                    text_key=key,
                    origin="Ogg Vorbis 44.1 kHz",
                )
            )
    return items


def _copy_synthesis_items(
    bonafide: Sequence[BonafideItem], seed: int, limits: PresetLimits
) -> list[CopySynthesisItem]:
    items = []
    turn: dict[Split, int] = defaultdict(int)
    for source in sorted(bonafide, key=lambda item: seeded_unit(seed, f"vocoder:{_key(item)}")):
        if source.split == "eval":
            # unseen vocoder on a share of eval utterances, alternating so every preset has some
            turn["eval"] += 1
            if (
                turn["eval"] * limits.eval_copy_synthesis_share
            ) % 1 >= limits.eval_copy_synthesis_share:
                continue
            attack = EVAL_VOCODERS[turn["eval"] % len(EVAL_VOCODERS)]
        else:
            attack = TRAIN_VOCODERS[turn[source.split] % len(TRAIN_VOCODERS)]
            turn[source.split] += 1
        items.append(
            CopySynthesisItem(
                "", source.split, source.speaker, source.language, attack, _key(source)
            )
        )
    return items


def _tts_items(prompts: Sequence[Prompt], seed: int, limits: PresetLimits) -> list[TtsItem]:
    texts: dict[tuple[str, str], str] = {}
    for prompt in prompts:
        if prompt.text and prompt.source.transcript_language:
            texts.setdefault((prompt.source.transcript_language, prompt.name), prompt.text)
    by_group: dict[tuple[str, Split], list[tuple[str, str]]] = defaultdict(list)
    for (language, name), text in sorted(texts.items()):
        by_group[(language, split_of(seed, name))].append((name, text))
    items = []
    for (language, split), entries in sorted(by_group.items()):
        entries.sort(key=lambda entry: seeded_unit(seed, f"text:{language}:{entry[0]}"))
        if limits.texts_per_language_and_split is not None:
            entries = entries[: limits.texts_per_language_and_split]
        assignments: list[tuple[tuple[str, str], tuple[str, ...]]]
        if split == "eval":
            systems = EVAL_TTS_BY_LANGUAGE.get(language, ())
            assignments = [(entry, systems) for entry in entries]
        else:
            systems = TRAIN_TTS_BY_LANGUAGE[language]
            per_text = min(TTS_SYSTEMS_PER_TRAIN_TEXT, len(systems))
            assignments = [
                (entry, tuple(systems[(i * per_text + k) % len(systems)] for k in range(per_text)))
                for i, entry in enumerate(entries)
            ]
        for (name, text), chosen in assignments:
            items += [TtsItem("", split, system, language, name, text) for system in chosen]
    return items


def _key(item: BonafideItem) -> str:
    return f"{item.speaker}:{item.language}:{item.text_key}"


def _source_and_split(item: BonafideItem) -> tuple[str, str, str]:
    return (item.speaker, item.language, item.split)


def _limit(items: Iterable[BonafideItem], limit: int | None, seed: int) -> list[BonafideItem]:
    ordered = sorted(items, key=lambda item: seeded_unit(seed, f"pick:{_key(item)}"))
    if limit is None:
        return sorted(ordered, key=_key)
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    kept = []
    for item in ordered:
        group = _source_and_split(item)
        if counts[group] < limit:
            counts[group] += 1
            kept.append(item)
    return sorted(kept, key=_key)


def _number(plan: CorpusPlan) -> None:
    """Opaque ASVspoof-style ids (DFD_T_0000001), so a file name never reveals its class."""
    letter = {"train": "T", "dev": "D", "eval": "E"}
    entries: list[tuple[str, str, object]] = []
    entries += [(i.split, f"b:{_key(i)}", i) for i in plan.bonafide]
    entries += [(i.split, f"c:{i.attack}:{i.source_utt_id}", i) for i in plan.copy_synthesis]
    entries += [(i.split, f"t:{i.attack}:{i.language}:{i.text_key}", i) for i in plan.tts]
    counters: dict[str, int] = defaultdict(int)
    ids: dict[str, str] = {}
    for split, key, _ in sorted(
        entries, key=lambda e: (e[0], seeded_unit(plan.seed, f"id:{e[1]}"))
    ):
        counters[split] += 1
        ids[key] = f"DFD_{letter[split]}_{counters[split]:07d}"
    source_ids = {_key(i): ids[f"b:{_key(i)}"] for i in plan.bonafide}
    plan.bonafide = [replace(i, utt_id=ids[f"b:{_key(i)}"]) for i in plan.bonafide]
    plan.copy_synthesis = [
        replace(
            i,
            utt_id=ids[f"c:{i.attack}:{i.source_utt_id}"],
            source_utt_id=source_ids[i.source_utt_id],
        )
        for i in plan.copy_synthesis
    ]
    plan.tts = [replace(i, utt_id=ids[f"t:{i.attack}:{i.language}:{i.text_key}"]) for i in plan.tts]
