"""Dataset readers against tiny copies of each public layout, built here with real audio files."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import soundfile

from dfd.trainers.datasets import (
    READERS,
    DatasetError,
    Trial,
    detect_kind,
    read_asvspoof2017,
    read_asvspoof2019,
    read_asvspoof2021,
    read_dataset,
    read_decro,
    read_fake_or_real,
    read_folders,
    read_in_the_wild,
    write_asvspoof2019_protocol,
)
from tests.signals import RATE, tone

# --- fixture generators: each writes one public layout and returns its root -----------------


def write_audio(path: Path) -> Path:
    """0.1 s of a tone in the format the suffix names (headerless mu-law for .ul)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".ul":
        soundfile.write(path, tone(440.0, 0.1, rate=8000), 8000, format="RAW", subtype="ULAW")
    else:
        soundfile.write(path, tone(440.0, 0.1), RATE)
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


ASV19_TRAIN = """\
# a comment, then a blank line

LA_0079 LA_T_1138215 - - bonafide
LA_0079 LA_T_1271820 - A01 spoof
LA_0080 LA_T_1000001 - A02 spoof
"""
ASV19_DEV = "LA_0069 LA_D_1047731 - - bonafide\nLA_0070 LA_D_1105538 - A05 spoof\n"


def official_asvspoof2019(root: Path) -> Path:
    """``LA/`` as the ASVspoof 2019 release unpacks it, with train and dev."""
    la = root / "LA"
    protocols = la / "ASVspoof2019_LA_cm_protocols"
    write_text(protocols / "ASVspoof2019.LA.cm.train.trn.txt", ASV19_TRAIN)
    write_text(protocols / "ASVspoof2019.LA.cm.dev.trl.txt", ASV19_DEV)
    for utterance in ("LA_T_1138215", "LA_T_1271820", "LA_T_1000001"):
        write_audio(la / "ASVspoof2019_LA_train" / "flac" / f"{utterance}.flac")
    for utterance in ("LA_D_1047731", "LA_D_1105538"):
        write_audio(la / "ASVspoof2019_LA_dev" / "flac" / f"{utterance}.flac")
    return la


def dfd_corpus(root: Path) -> Path:
    """dfd's own corpus: ``protocols/{train,dev}.txt`` and ``audio/``; one file is a WAV."""
    corpus = root / "corpus"
    write_text(
        corpus / "protocols" / "train.txt",
        "spk01 c0001 - - bonafide\nspk01 c0002 - espeak spoof\nspk02 c0003 g711u piper spoof\n",
    )
    write_text(corpus / "protocols" / "dev.txt", "spk03 c0004 - - bonafide\n")
    for name in ("c0001.flac", "c0002.wav", "c0003.flac", "c0004.flac"):
        write_audio(corpus / "audio" / name)
    return corpus


ASV21_LA_KEYS = """\
LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval
LA_0013 LA_E_5849185 none - - bonafide notrim progress
LA_0007 LA_E_6213467 g722 loc_tx A19 spoof trim hidden_track
"""
ASV21_DF_KEYS = """\
LA_0043 DF_E_2000026 mp3m4a asvspoof A09 spoof notrim eval traditional_vocoder - - - -
TEF2 DF_E_2000013 low_m4a vcc2020 Task1-team20 spoof notrim progress neural_vocoder_nonautoregressive Task1 team20 FF E
LA_0048 DF_E_2000058 nocodec asvspoof - bonafide notrim eval bonafide - - - -
"""  # noqa: E501 - the official lines are this long


def asvspoof2021(root: Path, track: str, keys: str) -> Path:
    """The keys package unpacked beside the evaluation audio package."""
    write_text(root / "keys" / track / "CM" / "trial_metadata.txt", keys)
    for line in keys.splitlines():
        write_audio(root / f"ASVspoof2021_{track}_eval" / "flac" / f"{line.split()[1]}.flac")
    return root


ASV17_TRAIN = """\
T_1000001.wav genuine M0001 S01 - - -
T_1001509.wav spoof M0002 S03 E02 P05 R04
T_1001510.wav spoof M0002 S04 - - -
"""


def asvspoof2017(root: Path) -> Path:
    write_text(root / "protocol_V2" / "ASVspoof2017_V2_train.trn.txt", ASV17_TRAIN)
    write_text(
        root / "protocol_V2" / "ASVspoof2017_V2_dev.trl.txt",
        "D_1000001.wav genuine M0005 S02 - - -\n",
    )
    for name in ("T_1000001", "T_1001509", "T_1001510"):
        write_audio(root / "ASVspoof2017_V2_train" / f"{name}.wav")
    write_audio(root / "ASVspoof2017_V2_dev" / "D_1000001.wav")
    return root


def fake_or_real(root: Path) -> Path:
    """for-2sec: the same file names recur in different folders, as in the real set."""
    for split in ("training", "validation", "testing"):
        write_audio(root / split / "real" / "file1.wav_16k.wav_norm.wav_mono.wav_silence.wav")
        write_audio(root / split / "fake" / "file1.wav_16k.wav_norm.wav_mono.wav_silence.wav")
    write_audio(root / "training" / "fake" / "file2.mp3.wav_16k.wav_norm.mp3_mono.wav")
    return root


def decro(root: Path) -> Path:
    write_text(
        root / "en_eval.txt", "4 4-727-124443-0055 - baidu spoof\n1 LA_E_1000147 - - bonafide\n"
    )
    write_text(root / "en_dev.txt", "7 LA_D_1000265 - - bonafide\n")
    write_text(root / "ch_eval.txt", "SSB0005 SSB00050001 - vits spoof\n")
    write_audio(root / "en_eval" / "4-727-124443-0055.wav")
    write_audio(root / "en_eval" / "LA_E_1000147.flac")
    write_audio(root / "en_dev" / "LA_D_1000265.wav")
    write_audio(root / "ch_eval" / "SSB00050001.wav")
    return root


IN_THE_WILD_META = """\
file,speaker,label
0.wav,Alec Guinness,spoof
1.wav,Alec Guinness,bona-fide
2.wav,"Obama, Barack",bona-fide
"""


def in_the_wild(root: Path, meta: str = IN_THE_WILD_META) -> Path:
    write_text(root / "meta.csv", meta)
    for name in ("0.wav", "1.wav", "2.wav"):
        write_audio(root / name)
    return root


def plain_folders(root: Path, real: str = "real", fake: str = "fake") -> Path:
    write_audio(root / real / "alice" / "call1.wav")
    write_audio(root / real / "bob.flac")
    write_audio(root / fake / "tts" / "clip.ul")
    write_audio(root / fake / "clip.ogg")
    write_text(root / real / "notes.txt", "not audio\n")
    write_audio(root / fake / "._clip.wav")  # a macOS fork from an archive
    return root


def fields_of(trials: list[Trial]) -> list[tuple[str, str, str, str, str]]:
    return [(t.utterance_id, t.label, t.attack, t.speaker, t.condition) for t in trials]


# --- ASVspoof 2019 and dfd's corpus -----------------------------------------------------------


def test_asvspoof2019_official_protocol_file(tmp_path: Path) -> None:
    la = official_asvspoof2019(tmp_path)
    protocol = la / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.train.trn.txt"
    flac = la / "ASVspoof2019_LA_train" / "flac"
    assert read_asvspoof2019(protocol) == [
        Trial("LA_T_1138215", flac / "LA_T_1138215.flac", "bonafide", "-", "LA_0079"),
        Trial("LA_T_1271820", flac / "LA_T_1271820.flac", "spoof", "A01", "LA_0079"),
        Trial("LA_T_1000001", flac / "LA_T_1000001.flac", "spoof", "A02", "LA_0080"),
    ]


def test_asvspoof2019_official_folder_by_subset(tmp_path: Path) -> None:
    la = official_asvspoof2019(tmp_path)
    dev = read_asvspoof2019(la, subset="dev")
    assert fields_of(dev) == [
        ("LA_D_1047731", "bonafide", "-", "LA_0069", "-"),
        ("LA_D_1105538", "spoof", "A05", "LA_0070", "-"),
    ]
    assert dev[1].path == la / "ASVspoof2019_LA_dev" / "flac" / "LA_D_1105538.flac"
    everything = read_asvspoof2019(la)
    assert [t.utterance_id for t in everything] == [
        "LA_T_1138215",
        "LA_T_1271820",
        "LA_T_1000001",
        "LA_D_1047731",
        "LA_D_1105538",
    ]


def test_dfd_corpus_protocol_finds_audio_beside_protocols_and_accepts_wav(tmp_path: Path) -> None:
    corpus = dfd_corpus(tmp_path)
    audio = corpus / "audio"
    write_audio(audio / "c0001.wav")  # the FLAC beside it is preferred
    assert read_asvspoof2019(corpus / "protocols" / "train.txt") == [
        Trial("c0001", audio / "c0001.flac", "bonafide", "-", "spk01"),
        Trial("c0002", audio / "c0002.wav", "spoof", "espeak", "spk01"),
        Trial("c0003", audio / "c0003.flac", "spoof", "piper", "spk02", condition="g711u"),
    ]
    assert fields_of(read_dataset(corpus, subset="dev")) == [
        ("c0004", "bonafide", "-", "spk03", "-")
    ]


def test_asvspoof2019_explicit_audio_dir(tmp_path: Path) -> None:
    protocol = write_text(tmp_path / "lists" / "mine.txt", "S1 u1 - A10 spoof\n")
    audio = write_audio(tmp_path / "elsewhere" / "u1.flac").parent
    assert read_asvspoof2019(protocol, audio_dir=audio) == [
        Trial("u1", audio / "u1.flac", "spoof", "A10", "S1")
    ]


def test_protocol_writer_round_trips(tmp_path: Path) -> None:
    corpus = dfd_corpus(tmp_path)
    trials = read_asvspoof2019(corpus / "protocols" / "train.txt")
    written = write_asvspoof2019_protocol(trials, corpus / "protocols" / "copy" / "train.txt")
    assert written.read_text() == (
        "spk01 c0001 - - bonafide\nspk01 c0002 - espeak spoof\nspk02 c0003 g711u piper spoof\n"
    )
    assert read_asvspoof2019(written, audio_dir=corpus / "audio") == trials


@pytest.mark.parametrize("speaker", ["two words", "#hash"])
def test_protocol_writer_refuses_fields_that_would_not_read_back(
    tmp_path: Path, speaker: str
) -> None:
    trial = Trial("u1", tmp_path / "u1.flac", "bonafide", "-", speaker)
    with pytest.raises(DatasetError, match="cannot write trial 'u1'"):
        write_asvspoof2019_protocol([trial], tmp_path / "out.txt")
    assert not (tmp_path / "out.txt").exists()


@pytest.mark.parametrize(
    ("label", "attack", "speaker", "problem"),
    [
        ("genuine", "-", "s", "label must be 'bonafide' or 'spoof', got 'genuine'"),
        ("bonafide", "A01", "s", "a bonafide trial cannot have attack 'A01'"),
        ("spoof", "-", "s", "a spoof trial cannot have attack '-'"),
        ("bonafide", "-", "", "empty speaker"),
    ],
)
def test_trial_refuses_inconsistent_fields(
    label: str, attack: str, speaker: str, problem: str
) -> None:
    with pytest.raises(DatasetError, match=re.escape(f"trial 'u1' (u1.wav): {problem}")):
        Trial("u1", Path("u1.wav"), label, attack, speaker)  # type: ignore[arg-type]


def corpus_protocol(root: Path, protocol: str, audio: tuple[str, ...] = ()) -> Path:
    """A one-protocol corpus: ``protocols/train.txt`` and the named files in ``audio/``."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    for name in audio:
        write_audio(root / "audio" / name)
    return write_text(root / "protocols" / "train.txt", protocol)


@pytest.mark.parametrize(
    ("protocol", "audio", "problem"),
    [
        (
            "S u1 - - bonafide\n# comment\nS u2 - A01 spoof\n",
            ("u1.flac",),
            "line 3: audio file {audio}/u2.flac not found (nor .wav): 'S u2 - A01 spoof'",
        ),
        (
            "S u1 - - bonafide\nS u2 - A01 fake\n",
            ("u1.flac", "u2.flac"),
            "line 2: unknown label 'fake' (expected 'bonafide', 'spoof'): 'S u2 - A01 fake'",
        ),
        (
            "S u1 - - bonafide\n\nS u2 - spoof\n",
            ("u1.flac", "u2.flac"),
            "line 3: expected 5 columns (SPEAKER UTTERANCE ENVIRONMENT ATTACK LABEL), found 4:"
            " 'S u2 - spoof'",
        ),
        (
            "S u1 - - bonafide\nS u1 - A01 spoof\n",
            ("u1.flac",),
            "line 2: utterance id 'u1' was already given at {protocol}, line 1",
        ),
    ],
    ids=["missing-audio", "unknown-label", "malformed-line", "duplicate-id"],
)
def test_asvspoof2019_line_errors_name_file_line_and_text(
    tmp_path: Path, protocol: str, audio: tuple[str, ...], problem: str
) -> None:
    path = corpus_protocol(tmp_path, protocol, audio)
    with pytest.raises(DatasetError) as error:
        read_asvspoof2019(path)
    expected = f"{path}, " + problem.format(audio=tmp_path / "audio", protocol=path)
    assert str(error.value) == expected


def test_empty_protocol_is_an_error(tmp_path: Path) -> None:
    path = corpus_protocol(tmp_path, "# only a comment\n\n")
    with pytest.raises(DatasetError) as error:
        read_asvspoof2019(path)
    assert str(error.value) == f"no trials in {path}"
    with pytest.raises(DatasetError, match="it holds no lines"):
        read_dataset(path)


def test_protocol_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    path = corpus_protocol(tmp_path, "")
    path.write_bytes(b"S u1 - - bonafide\nS \xff\xfe - - spoof\n")
    with pytest.raises(DatasetError, match=re.escape(f"{path}: not UTF-8 text")):
        read_asvspoof2019(path)


def test_asvspoof2019_location_errors(tmp_path: Path) -> None:
    la = official_asvspoof2019(tmp_path)
    with pytest.raises(DatasetError, match=r"unknown subset 'test' .* \(known: train, dev, eval\)"):
        read_asvspoof2019(la, subset="test")
    with pytest.raises(DatasetError, match=re.escape(f"{la}: subset 'eval' is not there")):
        read_asvspoof2019(la, subset="eval")
    protocol = la / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.dev.trl.txt"
    with pytest.raises(DatasetError, match="subset 'dev' does not apply here"):
        read_asvspoof2019(protocol, subset="dev")
    with pytest.raises(DatasetError, match=re.escape(f"no ASVspoof 2019 protocols in {tmp_path}")):
        read_asvspoof2019(tmp_path)
    lonely = write_text(tmp_path / "lonely" / "train.txt", "S u1 - - bonafide\n")
    with pytest.raises(DatasetError, match=re.escape(f"cannot find the audio folder of {lonely}")):
        read_asvspoof2019(lonely)
    with pytest.raises(DatasetError, match=re.escape(f"no such audio folder: {tmp_path / 'no'}")):
        read_asvspoof2019(lonely, audio_dir=tmp_path / "no")
    write_text(la / "protocols" / "train.txt", "S u1 - - bonafide\n")
    with pytest.raises(DatasetError, match="holds several sets of protocols"):
        read_asvspoof2019(la)


# --- ASVspoof 2021 ----------------------------------------------------------------------------


def test_asvspoof2021_la_keys(tmp_path: Path) -> None:
    root = asvspoof2021(tmp_path, "LA", ASV21_LA_KEYS)
    flac = root / "ASVspoof2021_LA_eval" / "flac"
    assert read_asvspoof2021(root / "keys" / "LA" / "CM" / "trial_metadata.txt") == [
        Trial("LA_E_9332881", flac / "LA_E_9332881.flac", "spoof", "A07", "LA_0009", "alaw"),
        Trial("LA_E_5849185", flac / "LA_E_5849185.flac", "bonafide", "-", "LA_0013", "none"),
        Trial("LA_E_6213467", flac / "LA_E_6213467.flac", "spoof", "A19", "LA_0007", "g722"),
    ]
    by_subset = {
        subset: [t.utterance_id for t in read_dataset(root, subset=subset)]
        for subset in ("eval", "progress", "hidden_track")
    }
    assert by_subset == {
        "eval": ["LA_E_9332881"],
        "progress": ["LA_E_5849185"],
        "hidden_track": ["LA_E_6213467"],
    }


def test_asvspoof2021_df_keys(tmp_path: Path) -> None:
    root = asvspoof2021(tmp_path, "DF", ASV21_DF_KEYS)
    flac = root / "ASVspoof2021_DF_eval" / "flac"
    assert read_dataset(root) == [
        Trial("DF_E_2000026", flac / "DF_E_2000026.flac", "spoof", "A09", "LA_0043", "mp3m4a"),
        Trial(
            "DF_E_2000013", flac / "DF_E_2000013.flac", "spoof", "Task1-team20", "TEF2", "low_m4a"
        ),
        Trial("DF_E_2000058", flac / "DF_E_2000058.flac", "bonafide", "-", "LA_0048", "nocodec"),
    ]
    assert [t.utterance_id for t in read_asvspoof2021(root, "eval")] == [
        "DF_E_2000026",
        "DF_E_2000058",
    ]


def test_asvspoof2021_checks_audio_only_of_the_chosen_subset(tmp_path: Path) -> None:
    root = asvspoof2021(tmp_path, "LA", ASV21_LA_KEYS)
    (root / "ASVspoof2021_LA_eval" / "flac" / "LA_E_5849185.flac").unlink()
    assert [t.utterance_id for t in read_asvspoof2021(root, "eval")] == ["LA_E_9332881"]
    with pytest.raises(
        DatasetError, match=r"trial_metadata.txt, line 2: audio file .*LA_E_5849185"
    ):
        read_asvspoof2021(root)


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        (
            ASV21_LA_KEYS + ASV21_DF_KEYS.splitlines()[0] + "\n",
            "line 4: expected 8 columns (ASVspoof 2021 LA: SPEAKER UTTERANCE CODEC TRANSMISSION"
            " ATTACK LABEL TRIM SUBSET), found 13",
        ),
        ("LA_0009 LA_E_1 alaw ita_tx A07 spoof\n", "line 1: expected 8 (LA) or 13 (DF) columns"),
        ("LA_0009 LA_E_1 alaw ita_tx A07 spoof notrim test\n", "line 1: unknown subset 'test'"),
        ("LA_0009 LA_E_1 alaw ita_tx A07 fake notrim eval\n", "line 1: unknown label 'fake'"),
    ],
    ids=["column-count-changes", "wrong-column-count", "unknown-subset-column", "unknown-label"],
)
def test_asvspoof2021_line_errors(tmp_path: Path, keys: str, problem: str) -> None:
    root = asvspoof2021(tmp_path, "LA", ASV21_LA_KEYS)
    key_file = write_text(root / "keys" / "LA" / "CM" / "trial_metadata.txt", keys)
    with pytest.raises(DatasetError, match=re.escape(f"{key_file}, {problem}")):
        read_asvspoof2021(root)


def test_asvspoof2021_location_errors(tmp_path: Path) -> None:
    root = asvspoof2021(tmp_path / "full", "LA", ASV21_LA_KEYS)
    with pytest.raises(
        DatasetError, match=r"unknown subset 'hidden' .*eval, progress, hidden_track"
    ):
        read_asvspoof2021(root, "hidden")
    asvspoof2021(root, "DF", ASV21_DF_KEYS)
    with pytest.raises(DatasetError, match="holds several ASVspoof 2021 key files"):
        read_asvspoof2021(root)
    keys_only = write_text(tmp_path / "k" / "trial_metadata.txt", ASV21_LA_KEYS)
    with pytest.raises(
        DatasetError, match=re.escape(f"cannot find the audio folder of {keys_only}")
    ):
        read_asvspoof2021(keys_only)


# --- ASVspoof 2017 ----------------------------------------------------------------------------


def test_asvspoof2017(tmp_path: Path) -> None:
    root = asvspoof2017(tmp_path)
    train = root / "ASVspoof2017_V2_train"
    assert read_asvspoof2017(root, subset="train") == [
        Trial("T_1000001", train / "T_1000001.wav", "bonafide", "-", "M0001"),
        Trial("T_1001509", train / "T_1001509.wav", "spoof", "E02-P05-R04", "M0002"),
        Trial("T_1001510", train / "T_1001510.wav", "spoof", "spoof", "M0002"),
    ]
    dev = root / "protocol_V2" / "ASVspoof2017_V2_dev.trl.txt"
    assert read_dataset(dev) == [
        Trial("D_1000001", root / "ASVspoof2017_V2_dev" / "D_1000001.wav", "bonafide", "-", "M0005")
    ]
    assert [t.utterance_id for t in read_dataset(root)] == [
        "T_1000001",
        "T_1001509",
        "T_1001510",
        "D_1000001",
    ]


def test_asvspoof2017_errors(tmp_path: Path) -> None:
    root = asvspoof2017(tmp_path)
    protocol = write_text(
        root / "protocol_V2" / "ASVspoof2017_V2_train.trn.txt",
        "T_1000001.wav bonafide M0001 S01 - - -\n",
    )
    with pytest.raises(DatasetError) as error:
        read_asvspoof2017(protocol)
    assert str(error.value) == (
        f"{protocol}, line 1: unknown label 'bonafide' (expected 'genuine', 'spoof'):"
        " 'T_1000001.wav bonafide M0001 S01 - - -'"
    )
    write_text(protocol, "T_1000001.wav genuine M0001 S01 - - -\nT_9.wav spoof M0001 S01 - - -\n")
    missing = root / "ASVspoof2017_V2_train" / "T_9.wav"
    with pytest.raises(DatasetError, match=re.escape(f"line 2: audio file {missing} not found:")):
        read_asvspoof2017(protocol)
    renamed = write_text(tmp_path / "mine.txt", "T_1000001.wav genuine M0001 S01 - - -\n")
    with pytest.raises(DatasetError, match="cannot tell which subset"):
        read_asvspoof2017(renamed)


# --- Fake-or-Real -----------------------------------------------------------------------------

FOR_NAME = "file1.wav_16k.wav_norm.wav_mono.wav_silence.wav"


def test_fake_or_real(tmp_path: Path) -> None:
    root = fake_or_real(tmp_path)
    testing = root / "testing"
    assert read_fake_or_real(root, subset="testing") == [
        Trial(f"testing/real/{FOR_NAME}", testing / "real" / FOR_NAME, "bonafide", "-", "-"),
        Trial(f"testing/fake/{FOR_NAME}", testing / "fake" / FOR_NAME, "spoof", "spoof", "-"),
    ]
    assert [t.utterance_id for t in read_dataset(root)] == [
        f"training/real/{FOR_NAME}",
        f"training/fake/{FOR_NAME}",
        "training/fake/file2.mp3.wav_16k.wav_norm.mp3_mono.wav",
        f"validation/real/{FOR_NAME}",
        f"validation/fake/{FOR_NAME}",
        f"testing/real/{FOR_NAME}",
        f"testing/fake/{FOR_NAME}",
    ]


def test_fake_or_real_errors(tmp_path: Path) -> None:
    root = fake_or_real(tmp_path / "for")
    with pytest.raises(
        DatasetError, match=r"unknown subset 'test' .*training, validation, testing"
    ):
        read_fake_or_real(root, subset="test")
    partial = tmp_path / "partial"
    write_audio(partial / "training" / "real" / "a.wav")
    with pytest.raises(DatasetError, match=re.escape(f"{partial}: subset 'testing' is not there")):
        read_fake_or_real(partial, subset="testing")
    (partial / "validation" / "other").mkdir(parents=True)
    with pytest.raises(DatasetError, match="validation has neither real/ nor fake/"):
        read_fake_or_real(partial)
    empty = tmp_path / "empty"
    (empty / "training" / "real").mkdir(parents=True)
    with pytest.raises(DatasetError) as error:
        read_fake_or_real(empty)
    assert str(error.value) == f"no trials in {empty}"


# --- DECRO ------------------------------------------------------------------------------------


def test_decro(tmp_path: Path) -> None:
    root = decro(tmp_path)
    en_eval = root / "en_eval"
    assert read_decro(root, subset="en_eval") == [
        Trial("4-727-124443-0055", en_eval / "4-727-124443-0055.wav", "spoof", "baidu", "4"),
        Trial("LA_E_1000147", en_eval / "LA_E_1000147.flac", "bonafide", "-", "1"),
    ]
    assert read_dataset(root / "ch_eval.txt") == [
        Trial("SSB00050001", root / "ch_eval" / "SSB00050001.wav", "spoof", "vits", "SSB0005")
    ]
    ids = {
        subset: [t.utterance_id for t in read_decro(root, subset)]
        for subset in (None, "en", "eval", "dev")
    }
    assert ids == {
        None: ["SSB00050001", "LA_D_1000265", "4-727-124443-0055", "LA_E_1000147"],
        "en": ["LA_D_1000265", "4-727-124443-0055", "LA_E_1000147"],
        "eval": ["SSB00050001", "4-727-124443-0055", "LA_E_1000147"],
        "dev": ["LA_D_1000265"],
    }


def test_decro_errors(tmp_path: Path) -> None:
    root = decro(tmp_path / "decro")
    with pytest.raises(DatasetError, match="unknown subset 'fr'"):
        read_decro(root, "fr")
    with pytest.raises(
        DatasetError, match=re.escape("no DECRO list for subset 'train' (present: ch_eval.txt,")
    ):
        read_decro(root, "train")
    orphan = write_text(tmp_path / "other" / "zh_dev.txt", "S u1 - - bonafide\n")
    with pytest.raises(DatasetError, match=re.escape(f"{orphan.with_suffix('')} does not exist")):
        read_decro(orphan)
    with pytest.raises(DatasetError, match=re.escape(f"no DECRO lists in {tmp_path}")):
        read_decro(tmp_path)


# --- In-the-Wild ------------------------------------------------------------------------------


def test_in_the_wild(tmp_path: Path) -> None:
    root = in_the_wild(tmp_path)
    expected = [
        Trial("0", root / "0.wav", "spoof", "spoof", "Alec Guinness"),
        Trial("1", root / "1.wav", "bonafide", "-", "Alec Guinness"),
        Trial("2", root / "2.wav", "bonafide", "-", "Obama, Barack"),
    ]
    assert read_in_the_wild(root) == expected
    assert read_dataset(root / "meta.csv") == expected


@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        (
            "file,speaker,label\n0.wav,A,spoof\n1.wav,A,bonafide\n",
            "line 3: unknown label 'bonafide' (expected 'bona-fide', 'spoof'): '1.wav,A,bonafide'",
        ),
        (
            "file,speaker,label\n0.wav,A,spoof\n9.wav,A,spoof\n",
            "line 3: audio file {root}/9.wav not found: '9.wav,A,spoof'",
        ),
        (
            "file,speaker,label\n0.wav,spoof\n",
            "line 2: expected 3 columns (file,speaker,label), found 2: '0.wav,spoof'",
        ),
        ("file,speaker\n0.wav,A\n", "line 1: the header lacks label"),
        ("file,speaker,label\n0.wav,A,spoof\n0.wav,B,spoof\n", "line 3: utterance id '0'"),
    ],
    ids=["unknown-label", "missing-audio", "malformed-line", "bad-header", "duplicate-id"],
)
def test_in_the_wild_errors(tmp_path: Path, meta: str, problem: str) -> None:
    root = in_the_wild(tmp_path, meta)
    message = f"{root / 'meta.csv'}, {problem.format(root=root)}"
    with pytest.raises(DatasetError, match=re.escape(message)):
        read_in_the_wild(root)


def test_in_the_wild_without_trials(tmp_path: Path) -> None:
    root = in_the_wild(tmp_path, "file,speaker,label\n")
    with pytest.raises(DatasetError) as error:
        read_in_the_wild(root)
    assert str(error.value) == f"no trials in {root / 'meta.csv'}"


# --- plain folders ----------------------------------------------------------------------------


@pytest.mark.parametrize(("real", "fake"), [("real", "fake"), ("bonafide", "spoof")])
def test_folders(tmp_path: Path, real: str, fake: str) -> None:
    root = plain_folders(tmp_path, real, fake)
    assert read_folders(root) == [
        Trial(f"{real}/alice/call1.wav", root / real / "alice" / "call1.wav", "bonafide", "-", "-"),
        Trial(f"{real}/bob.flac", root / real / "bob.flac", "bonafide", "-", "-"),
        Trial(f"{fake}/clip.ogg", root / fake / "clip.ogg", "spoof", "spoof", "-"),
        Trial(f"{fake}/tts/clip.ul", root / fake / "tts" / "clip.ul", "spoof", "spoof", "-"),
    ]


def test_folders_errors(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError, match=r"no class folders in .*real/, bonafide/, fake/, spoof/"
    ):
        read_folders(tmp_path)
    write_text(tmp_path / "real" / "readme.txt", "no audio here\n")
    with pytest.raises(DatasetError) as error:
        read_folders(tmp_path)
    assert str(error.value) == f"no trials in {tmp_path}"
    with pytest.raises(DatasetError, match="subset 'train' does not apply here"):
        read_folders(tmp_path, "train")


# --- the registry and layout detection --------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "location", "kind"),
    [
        (official_asvspoof2019, "LA", "asvspoof2019"),
        (
            official_asvspoof2019,
            "LA/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.dev.trl.txt",
            "asvspoof2019",
        ),
        (dfd_corpus, "corpus", "asvspoof2019"),
        (dfd_corpus, "corpus/protocols/train.txt", "asvspoof2019"),
        (lambda root: asvspoof2021(root, "LA", ASV21_LA_KEYS), ".", "asvspoof2021"),
        (
            lambda root: asvspoof2021(root, "DF", ASV21_DF_KEYS),
            "keys/DF/CM/trial_metadata.txt",
            "asvspoof2021",
        ),
        (asvspoof2017, ".", "asvspoof2017"),
        (asvspoof2017, "protocol_V2/ASVspoof2017_V2_train.trn.txt", "asvspoof2017"),
        (fake_or_real, ".", "fake-or-real"),
        (decro, ".", "decro"),
        (decro, "en_eval.txt", "decro"),
        (in_the_wild, ".", "in-the-wild"),
        (in_the_wild, "meta.csv", "in-the-wild"),
        (plain_folders, ".", "folders"),
    ],
)
def test_auto_detection(
    tmp_path: Path, build: Callable[[Path], Path], location: str, kind: str
) -> None:
    build(tmp_path)
    path = tmp_path / location
    assert detect_kind(path) == kind
    assert read_dataset(path) == READERS[kind](path, None)


def test_ambiguous_layout_asks_for_the_kind(tmp_path: Path) -> None:
    root = in_the_wild(tmp_path)
    plain_folders(root)
    with pytest.raises(DatasetError) as error:
        read_dataset(root)
    assert str(error.value) == (
        f"{root} looks like more than one kind of dataset (in-the-wild, folders);"
        " give the kind (--kind)"
    )
    assert [t.utterance_id for t in read_dataset(root, kind="in-the-wild")] == ["0", "1", "2"]
    assert [t.utterance_id for t in read_dataset(root, kind="folders")] == [
        "real/alice/call1.wav",
        "real/bob.flac",
        "fake/clip.ogg",
        "fake/tts/clip.ul",
    ]


def test_unrecognised_layouts(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"cannot tell what kind of dataset .* give the kind"):
        read_dataset(tmp_path)
    six = write_text(tmp_path / "six.txt", "a b c d e f\n")
    with pytest.raises(DatasetError, match="its first line has 6 columns"):
        read_dataset(six)
    audio = write_audio(tmp_path / "x.flac")
    with pytest.raises(DatasetError, match=re.escape("neither a .txt protocol nor a .csv list")):
        read_dataset(audio)
    with pytest.raises(DatasetError, match=re.escape(f"no such file or folder: {tmp_path / 'no'}")):
        read_dataset(tmp_path / "no")


def test_unknown_kind_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as error:
        read_dataset(tmp_path, kind="asvspoof2015")
    assert str(error.value) == (
        "unknown dataset kind 'asvspoof2015' (known: auto, asvspoof2019, asvspoof2021,"
        " asvspoof2017, fake-or-real, decro, in-the-wild, folders)"
    )


@pytest.mark.parametrize("kind", sorted(READERS))
def test_every_reader_refuses_a_location_that_is_not_there(tmp_path: Path, kind: str) -> None:
    with pytest.raises(DatasetError) as error:
        READERS[kind](tmp_path / "nowhere", None)
    assert str(error.value) == f"no such file or folder: {tmp_path / 'nowhere'}"


def test_registry_holds_every_kind() -> None:
    assert list(READERS) == [
        "asvspoof2019",
        "asvspoof2021",
        "asvspoof2017",
        "fake-or-real",
        "decro",
        "in-the-wild",
        "folders",
    ]
