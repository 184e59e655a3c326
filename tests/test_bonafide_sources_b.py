"""Bona fide families read from game packages: fillets, warzone.

The counts are those measured on the Debian 12 packages (fillets-ng-data-cs/-nl 1.0.1-1.1,
warzone2100-data 4.3.3-3); a change means the selection rules or the
packages changed, and both deserve a look.
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dfd.trainers.corpus.bonafide import fillets, warzone
from dfd.trainers.corpus.bonafide.family import BonafideFamily
from dfd.trainers.corpus.recordings import SpeechRecording

FAMILIES = {"fillets": fillets.FAMILY, "warzone": warzone.FAMILY}
EXPECTED_SPEAKERS = {
    "fillets": {
        "fillets-cs-small": 702,
        "fillets-cs-big": 656,
        "fillets-nl-small": 827,
        "fillets-nl-big": 786,
    },
    "warzone": {"warzone-announcer": 300},
}
EXPECTED_LANGUAGES = {"fillets": {"cs", "nl"}, "warzone": {"en"}}


@pytest.fixture(scope="module")
def discovered() -> dict[str, list[SpeechRecording]]:
    return {name: family.discover() for name, family in FAMILIES.items()}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_discovers_the_measured_speakers_and_counts(
    name: str, discovered: dict[str, list[SpeechRecording]]
) -> None:
    recordings = discovered[name]
    family: BonafideFamily = FAMILIES[name]
    assert family.name == name
    assert all(package.startswith("debian:") for package in family.packages)
    assert Counter(recording.speaker for recording in recordings) == EXPECTED_SPEAKERS[name]
    assert {recording.language for recording in recordings} == EXPECTED_LANGUAGES[name]
    assert all(recording.family == name for recording in recordings)
    assert all(recording.speaker.startswith(f"{name}-") for recording in recordings)
    assert all(re.fullmatch(r"[a-z]{2}", recording.language) for recording in recordings)
    keys = [recording.key for recording in recordings]
    assert len(set(keys)) == len(keys)
    assert recordings == family.discover(), "discover() must be deterministic"
    assert {recording.package for recording in recordings} <= set(family.packages)


def test_fillets_texts_are_the_lines_in_the_recorded_language(
    discovered: dict[str, list[SpeechRecording]],
) -> None:
    by_key = {recording.key: recording for recording in discovered["fillets"]}
    assert by_key["cs/airplane/let-m-divna"].text == "Co je to za divnou loď?"
    assert by_key["nl/airplane/let-m-divna"].text == "Wat is dit voor raar schip?"
    assert by_key["cs/airplane/let-m-divna"].speaker == "fillets-cs-small"
    assert by_key["cs/airplane/let-v-oko"].speaker == "fillets-cs-big"
    # A line shared by both languages stays in one split through its text group.
    assert by_key["nl/airplane/let-v-oko"].text_group == by_key["cs/airplane/let-v-oko"].text_group
    # Backslash escapes of the Lua strings are undone.
    assert any("C:\\WINDOWS\\CONFIG" in (recording.text or "") for recording in by_key.values())
    assert all(recording.text for recording in by_key.values())


def test_fillets_keeps_only_the_two_lead_fish(
    discovered: dict[str, list[SpeechRecording]],
) -> None:
    paths = {recording.describe() for recording in discovered["fillets"]}
    sound = fillets.FILLETS_ROOT / "sound"
    creature = sound / "cabin1/cs/k1-pap-drahokamy.ogg"  # the parrot, font_parrot
    statue = sound / "city/cs/vit-hs-demoni0.ogg"  # a statue, font_statue
    later_czech = sound / "hanoi/cs/m-co.ogg"  # small fish of a level NG added: other speaker
    assert creature.is_file() and statue.is_file() and later_czech.is_file()
    assert str(creature) not in paths and str(statue) not in paths
    assert str(later_czech) not in paths
    assert str(sound / "hanoi/nl/m-co.ogg") in paths  # the Dutch dub keeps that level
    assert fillets.read_dialogs("cabin1", "cs")["k1-pap-drahokamy"][0] == "font_parrot"


def test_fillets_left_out_files_are_what_the_constants_say() -> None:
    sound = fillets.FILLETS_ROOT / "sound"
    for relative in fillets.EMPTY_FILES:
        assert sf.info(str(sound / relative)).frames == 0
    for level in fillets.LATER_CZECH_LEVELS[:3]:
        rates = {sf.info(str(path)).samplerate for path in (sound / level / "cs").glob("*.ogg")}
        assert rates == {44100}
    assert sf.info(str(sound / "airplane/cs/let-m-divna.ogg")).samplerate == 22050


def test_warzone_keeps_the_announcer_and_leaves_out_processed_voices(
    discovered: dict[str, list[SpeechRecording]],
) -> None:
    recordings = discovered["warzone"]
    folders = Counter(recording.key.split("/")[0] for recording in recordings)
    assert folders == {"memressp": 157, "tutorial": 80, "extra": 56, "proxmessages": 7}
    assert not [r for r in recordings if r.key.startswith("memressp/cmndrvoc/")]
    by_key = {recording.key: recording for recording in recordings}
    assert by_key["memressp/research/pcv357"].text == "Research Completed"
    assert by_key["tutorial/tut1"].text is None
    with zipfile.ZipFile(warzone.ARCHIVE) as archive:
        names = {info.filename for info in archive.infolist()}
    assert "audio/memressp/cmndrvoc/com022.ogg" in names  # radio voice, present but left out
    assert "audio/vtoltalk/v-atkrn1.ogg" in names


def _low_band_db(samples: np.ndarray, sample_rate: int) -> float:
    """Energy below 300 Hz relative to 50 Hz-5 kHz, in dB: a radio band-pass removes it."""
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    frequencies = np.fft.rfftfreq(len(samples), 1 / sample_rate)
    low = spectrum[(frequencies >= 50) & (frequencies < 300)].sum()
    total = spectrum[(frequencies >= 50) & (frequencies <= 5000)].sum()
    return float(10 * np.log10(low / total))


def test_warzone_radio_voice_is_band_passed_and_the_announcer_is_not(
    discovered: dict[str, list[SpeechRecording]],
) -> None:
    from dfd.trainers.corpus.recordings import EmbeddedClipPart

    with zipfile.ZipFile(warzone.ARCHIVE) as archive:
        radio_info = archive.getinfo("audio/memressp/cmndrvoc/com022.ogg")
    offset = warzone._data_offset(warzone.ARCHIVE, radio_info)
    radio = EmbeddedClipPart(warzone.ARCHIVE, offset, radio_info.file_size, "ogg").load(16000)
    by_key = {recording.key: recording for recording in discovered["warzone"]}
    announcer = by_key["memressp/research/pcv357"].parts[0].load(16000)
    assert _low_band_db(radio, 16000) < -20.0
    assert _low_band_db(announcer, 16000) > -10.0


@pytest.mark.parametrize(
    ("name", "key", "min_seconds", "max_seconds"),
    [
        ("fillets", "cs/airplane/let-v-oko", 3.0, 12.0),
        ("fillets", "nl/airplane/let-m-divna", 0.8, 5.0),
        ("warzone", "memressp/research/pcv357", 0.8, 2.5),
        ("warzone", "tutorial/tut1", 2.0, 5.0),
    ],
)
def test_recordings_load_as_audible_speech(
    name: str,
    key: str,
    min_seconds: float,
    max_seconds: float,
    discovered: dict[str, list[SpeechRecording]],
) -> None:
    recording = next(r for r in discovered[name] if r.key == key)
    (samples,) = recording.load(16000)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert min_seconds <= len(samples) / 16000 <= max_seconds
    frames = samples[: len(samples) // 800 * 800].astype(np.float64).reshape(-1, 800)
    frame_db = 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-12)
    # every recording rises well above its own floor: speech, not near-silence
    assert frame_db.max() > -50.0
    assert frame_db.max() - frame_db.min() > 15.0
    assert np.isfinite(samples).all()
    assert np.abs(samples).max() < 1.5  # lossy decoding and resampling overshoot a little
    assert Path(recording.describe().split("@")[0]).is_file()
