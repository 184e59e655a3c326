"""Bona fide sources from volunteers and game voice acting: tuxpaint, fotaq, drascula.

The counts are those of the Debian 12 packages ``tuxpaint-stamps-default`` 2022.06.04-1,
``flight-of-the-amazon-queen`` 1.0.0-9 and ``drascula``/``-spanish``/``-italian`` 1.0+ds4-2.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from functools import cache

import numpy as np
import pytest

from dfd.trainers.corpus.bonafide import drascula, fotaq, tuxpaint
from dfd.trainers.corpus.bonafide.family import BonafideFamily
from dfd.trainers.corpus.recordings import EmbeddedClipPart, FilePart, SpeechRecording

FAMILIES = (tuxpaint.FAMILY, fotaq.FAMILY, drascula.FAMILY)
RATE = 16_000


@cache
def discovered(family: BonafideFamily) -> tuple[SpeechRecording, ...]:
    return tuple(family.discover())


def by_key(family: BonafideFamily) -> dict[str, SpeechRecording]:
    return {recording.key: recording for recording in discovered(family)}


def active_speech_fraction(samples: np.ndarray) -> float:
    """Fraction of 20 ms frames within 35 dB of the loudest: speech pauses, silence does not."""
    frame = RATE // 50
    frames = samples[: len(samples) // frame * frame].reshape(-1, frame)
    energy_db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    return float(np.mean(energy_db > energy_db.max() - 35))


@pytest.mark.parametrize(
    ("family", "count", "speakers"),
    [(tuxpaint.FAMILY, 6453, 13), (fotaq.FAMILY, 4536, 29), (drascula.FAMILY, 1507, 22)],
    ids=["tuxpaint", "fotaq", "drascula"],
)
def test_each_family_discovers_its_measured_recordings(
    family: BonafideFamily, count: int, speakers: int
) -> None:
    recordings = discovered(family)
    assert len(recordings) == count
    assert len({recording.speaker for recording in recordings}) == speakers
    assert len({recording.key for recording in recordings}) == count
    assert [r.key for r in recordings] == [r.key for r in family.discover()]  # deterministic
    assert all(recording.family == family.name for recording in recordings)
    assert {recording.package for recording in recordings} <= set(family.packages)


def test_speakers_are_prefixed_by_their_family_and_unique_across_families() -> None:
    owners: dict[str, set[str]] = {}
    for family in FAMILIES:
        for recording in discovered(family):
            assert recording.speaker.startswith(f"{family.name}-")
            owners.setdefault(recording.speaker, set()).add(family.name)
    assert all(len(families) == 1 for families in owners.values())


def test_languages_are_iso_639_1() -> None:
    languages = {
        family.name: Counter(r.language for r in discovered(family)) for family in FAMILIES
    }
    assert all(re.fullmatch(r"[a-z]{2}", lang) for counts in languages.values() for lang in counts)
    assert languages["tuxpaint"] == {
        "be": 621, "bg": 779, "ca": 809, "da": 314, "el": 681, "en": 66, "es": 753,
        "fr": 771, "lt": 22, "ml": 6, "nl": 67, "ro": 782, "ru": 782,
    }  # fmt: skip
    assert set(languages["fotaq"]) == {"en"}
    assert languages["drascula"] == {"en": 765, "es": 742}


def test_tuxpaint_attaches_the_description_in_the_recordings_language() -> None:
    recordings = by_key(tuxpaint.FAMILY)
    assert sum(r.text is not None for r in recordings.values()) == 6391
    duck_fr = recordings["tuxpaint:fr:animals/birds/duck"]
    assert duck_fr.text == "Un canard."
    assert recordings["tuxpaint:en:animals/birds/duck"].text == "A duck."
    assert recordings["tuxpaint:ru:animals/birds/duck"].text == "Утка."
    # every language of one stamp shares the stamp's text group, so it stays in one split
    duck_groups = {r.text_group for k, r in recordings.items() if k.endswith(":animals/birds/duck")}
    assert duck_groups == {"tuxpaint:animals/birds/duck"}
    assert len([k for k in recordings if k.endswith(":animals/birds/duck")]) == 11


def test_tuxpaint_keeps_one_copy_of_recordings_shared_by_variant_stamps() -> None:
    stamps = tuxpaint.STAMPS / "symbols/chess"
    black, white = stamps / "b_4_knight_desc_be.ogg", stamps / "w_4_knight_desc_be.ogg"
    assert (
        hashlib.sha256(black.read_bytes()).digest() == hashlib.sha256(white.read_bytes()).digest()
    )
    recordings = by_key(tuxpaint.FAMILY)
    assert "tuxpaint:be:symbols/chess/b_4_knight" in recordings
    assert "tuxpaint:be:symbols/chess/w_4_knight" not in recordings
    assert "tuxpaint:el:symbols/chess/w_4_knight" in recordings  # its own Greek recording
    # stamps that share a recording share a text group: frog-1 (kept) and frog (el only)
    assert recordings["tuxpaint:be:animals/amphibians/frog-1"].text_group == (
        recordings["tuxpaint:el:animals/amphibians/frog"].text_group
    )
    files = [
        p
        for p in tuxpaint.STAMPS.rglob("*_desc*.ogg")
        if tuxpaint.DESCRIPTION_FILE.fullmatch(p.name)
    ]
    assert len(files) == 7418  # 965 of them are copies
    kept = [
        part.path for r in recordings.values() for part in r.parts if isinstance(part, FilePart)
    ]
    assert len({hashlib.sha256(path.read_bytes()).digest() for path in kept}) == len(kept)


def test_tuxpaint_locales_map_to_iso_639_1() -> None:
    assert tuxpaint.language_of_locale("pt_BR") == "pt"
    assert tuxpaint.language_of_locale("en_GB") == "en"
    assert tuxpaint.language_of_locale("ca@valencia") == "ca"
    match = tuxpaint.DESCRIPTION_FILE.fullmatch("x_desc_da.ogg.ogg")
    assert match is not None and match["locale"] == "da"


def test_fotaq_index_names_the_clips_and_their_speakers() -> None:
    entries = fotaq.read_resource_table()
    assert len(entries) == 7671
    assert sum(entry.name.endswith(".SB") for entry in entries) == 6745
    characters = fotaq.characters_by_talk_key(entries, fotaq.RESOURCE_FILE)
    assert characters[2] == "and" and characters[51] == "sparky" and characters[84] == "faye"
    assert fotaq.speaker_of_clip("020006P1.SB", characters) == "and"
    assert fotaq.speaker_of_clip("020006J1.SB", characters) == "joe"
    assert fotaq.speaker_of_clip("JOE07631.SB", characters) == "joe"
    assert fotaq.speaker_of_clip("C22A_001.SB", characters) is None  # a cutaway: not told
    speakers = Counter(r.speaker for r in discovered(fotaq.FAMILY))
    assert speakers["fotaq-joe"] == 1930 and speakers["fotaq-sparky"] == 197
    assert "fotaq-dog" not in speakers


def test_fotaq_clip_decodes_to_the_length_its_size_and_bit_rate_give() -> None:
    entries = {entry.name: entry for entry in fotaq.read_resource_table()}
    for name in ("020006P1.SB", "JOE07631.SB"):
        entry = entries[name]
        samples = EmbeddedClipPart(fotaq.RESOURCE_FILE, entry.offset, entry.size, "mp3").load(RATE)
        assert samples.dtype == np.float32
        assert len(samples) / RATE == pytest.approx(entry.estimated_seconds, abs=0.1)


def test_drascula_names_tell_the_character() -> None:
    assert drascula.character_of_file("123.ALS") == "hacker"
    assert drascula.character_of_file("VB12.ALS") == "vonbraun"
    assert drascula.character_of_file("B12.ALS") == "drunk"
    assert drascula.character_of_file("D67.ALS") == "drascula"
    assert drascula.character_of_file("D68.ALS") == "blindman"
    assert drascula.character_of_file("S3.ALS") is None  # a sound effect
    speakers = Counter(r.speaker for r in discovered(drascula.FAMILY))
    assert speakers["drascula-es-hacker"] == 446 and speakers["drascula-es-igor"] == 32


@pytest.mark.parametrize("name", ["25", "D79", "259"])
def test_drascula_spanish_copies_of_english_recordings_are_the_english_waveform(name: str) -> None:
    spanish, english = (
        np.frombuffer((drascula.GAME_DATA / lang / f"{name}.ALS").read_bytes(), np.uint8)
        for lang in ("es", "en")
    )
    assert spanish.tobytes() != english.tobytes()  # not caught by the byte-identity check
    length = min(len(spanish), len(english))
    assert abs(len(spanish) - len(english)) < 200
    assert np.corrcoef(spanish[:length], english[:length])[0, 1] > 0.99
    assert name in drascula.COPIES_OF_ENGLISH
    assert f"drascula:es:{name}" not in by_key(drascula.FAMILY)
    assert f"drascula:en:{name}" in by_key(drascula.FAMILY)


@pytest.mark.skipif(
    not (drascula.GAME_DATA / "it").is_dir(),
    reason="drascula-italian is not installed: the family leaves it out, so nothing installs it",
)
def test_drascula_italian_voices_are_the_english_recordings() -> None:
    italian, english = (
        np.frombuffer((drascula.GAME_DATA / lang / "I12.ALS").read_bytes(), np.uint8)
        for lang in ("it", "en")
    )
    length = min(len(italian), len(english))
    assert np.corrcoef(italian[:length], english[:length])[0, 1] > 0.9
    assert "drascula-italian" not in " ".join(drascula.FAMILY.packages)


@pytest.mark.parametrize(
    ("family", "keys"),
    [
        (
            tuxpaint.FAMILY,
            ("tuxpaint:fr:animals/birds/duck", "tuxpaint:ca:symbols/chess/b_4_knight"),
        ),
        (fotaq.FAMILY, ("fotaq:020006P1", "fotaq:JOE07631")),
        (drascula.FAMILY, ("drascula:en:I12", "drascula:es:123", "drascula:es:VB12")),
    ],
    ids=["tuxpaint", "fotaq", "drascula"],
)
def test_recordings_load_to_speech_of_plausible_length(
    family: BonafideFamily, keys: tuple[str, ...]
) -> None:
    recordings = by_key(family)
    for key in keys:
        (samples,) = recordings[key].load(RATE)
        assert samples.dtype == np.float32 and samples.ndim == 1
        assert 0.3 < len(samples) / RATE < 30
        # resampling clipped 8-bit PCM overshoots full scale a little
        assert 0.05 < float(np.max(np.abs(samples))) < 1.5
        assert 10 * np.log10(np.mean(samples.astype(np.float64) ** 2)) > -45
        assert active_speech_fraction(samples) > 0.2
