"""Acoustic and channel conditions, measured on real speech (the bundled call), through the real
packaged impulse responses and noises and the real ffmpeg codecs."""

from __future__ import annotations

import numpy as np
import pytest

from dfd.dsp.audio_io import load_audio
from dfd.trainers.corpus.conditions import (
    DEFAULT_CONDITIONS,
    PHONE_FULL,
    Condition,
    ConditionConfig,
    DeviceStage,
    NoiseStage,
    PhoneStage,
    RoomStage,
    apply_condition,
    apply_conditions,
    sample_condition,
    summarise_conditions,
)
from dfd.trainers.corpus.conditions.impulses import (
    CABINET_IMPULSES,
    PACKAGE_OF_FOLDER,
    ROOM_IMPULSES,
    direct_path_index,
    load_impulse,
)
from dfd.trainers.corpus.conditions.noises import (
    BUCKLESPRING_FILE_COUNT,
    NOISE_FILES,
    NOISE_KINDS,
    keyboard_files,
)
from dfd.trainers.corpus.conditions.rooms import simulated_room_impulse
from tests.signals import RATE, SAMPLE_CALL

SECOND = RATE


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """11 s of continuous speech: the caller's 0-5 s and the agent's 5-11 s of the sample call."""
    channels = load_audio(SAMPLE_CALL).samples
    return np.concatenate([channels[0, : 5 * SECOND], channels[1, 5 * SECOND : 11 * SECOND]])


@pytest.fixture(scope="module")
def windows(speech: np.ndarray) -> list[np.ndarray]:
    return [speech[start : start + 2 * SECOND].copy() for start in range(0, 9 * SECOND, SECOND)]


def _power_db(samples: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(samples, dtype=np.float64)) + 1e-30))


def _snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    error = np.sum((reference.astype(np.float64) - other) ** 2)
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / max(error, 1e-30)))


def _schroeder_rt60_s(impulse: np.ndarray) -> float:
    """RT60 from the -5 to -35 dB span of the backward-integrated energy decay (T30 x 2)."""
    decay = np.cumsum(impulse[::-1].astype(np.float64) ** 2)[::-1]
    level = 10 * np.log10(decay / decay[0] + 1e-30)
    return float((np.argmax(level < -35) - np.argmax(level < -5)) / RATE * 2)


IN_PROCESS = Condition(
    room=RoomStage("sim", 0.5),
    noise=NoiseStage("keyboard", 12.0),
    device=DeviceStage("headset", -2.0, "soft", 6.0),
    phone=PhoneStage("mulaw", loss_rate=0.05),
)
WITH_OPUS = Condition(
    room=RoomStage("piper-ir-bathroom1"),
    noise=NoiseStage("babble", 10.0),
    device=DeviceStage("rkr-3", 3.0),
    phone=PhoneStage("opus", 8, 0.03),
)


def test_same_length_deterministic_for_a_seed_and_different_across_seeds(
    windows: list[np.ndarray],
) -> None:
    segments = [windows[0], windows[3][: SECOND + 123]]
    conditions = [IN_PROCESS, WITH_OPUS]
    first = apply_conditions(segments, conditions, [7, 8], babble_utterances=windows)
    again = apply_conditions(segments, conditions, [7, 8], babble_utterances=windows)
    other = apply_conditions(segments, conditions, [9, 10], babble_utterances=windows)
    for segment, out, repeat, reseeded in zip(segments, first, again, other, strict=True):
        assert out.dtype == np.float32
        assert out.shape == segment.shape
        np.testing.assert_array_equal(out, repeat)
        assert _snr_db(out, reseeded) < 20.0  # another room, other keys, other packets lost
        assert _snr_db(segment, out) < 20.0  # and the condition did change the audio


def test_simulated_room_decays_at_the_requested_rt60_and_reverberates_speech(
    speech: np.ndarray,
) -> None:
    for rt60 in (0.25, 0.7):
        impulse = simulated_room_impulse(rt60, np.random.default_rng(3))
        assert _schroeder_rt60_s(impulse) == pytest.approx(rt60, rel=0.2)
    # A talk spurt, then silence: dry there is nothing after the offset, in a room the tail rings.
    burst = np.concatenate([speech[: SECOND // 2], np.zeros(SECOND, np.float32)])
    wet = apply_condition(burst, Condition(room=RoomStage("sim", 0.7)), 5)
    tail = slice(SECOND // 2 + 800, SECOND // 2 + 4000)  # 50-250 ms after the offset
    assert _power_db(burst[tail]) < -200
    assert _power_db(wet[tail]) - _power_db(wet[: SECOND // 2]) > -30
    real = apply_condition(burst, Condition(room=RoomStage("piper-derlon-sanctuary")), 5)
    assert _power_db(real[tail]) - _power_db(real[: SECOND // 2]) > -30
    # Aligned on the direct path: a click comes out where it went in, its echoes after it.
    click = np.zeros(SECOND, np.float32)
    click[1000] = 0.5
    rooms = [RoomStage("sim", 0.4), *(RoomStage(name) for name in sorted(ROOM_IMPULSES))]
    for room in rooms:
        echoed = np.abs(apply_condition(click, Condition(room=room), 5))
        assert direct_path_index(echoed) == pytest.approx(1000, abs=1)
        energy = np.cumsum(echoed.astype(np.float64) ** 2)
        assert energy[950] < 1e-3 * energy[-1]  # beyond the fractional-delay filter's half length


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_noise_is_mixed_at_the_requested_snr(kind: str, windows: list[np.ndarray]) -> None:
    for seed, snr in ((1, 5.0), (2, 17.5), (3, 30.0)):
        clean = windows[seed]
        noisy = apply_condition(clean, Condition(noise=NoiseStage(kind, snr)), seed, windows)
        measured = _power_db(clean) - _power_db(noisy.astype(np.float64) - clean)
        assert measured == pytest.approx(snr, abs=1.0)


def test_babble_needs_training_utterances(windows: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match="babble"):
        apply_condition(windows[0], Condition(noise=NoiseStage("babble", 10.0)), 0)


@pytest.mark.parametrize("route", ["band", "alaw", "gsm", "g726"])
def test_phone_band_leaves_nothing_above_4_khz(route: str) -> None:
    wideband = np.random.default_rng(0).standard_normal(SECOND).astype(np.float32) * 0.1
    out = apply_condition(wideband, Condition(phone=PhoneStage(route)), 0)
    spectrum = np.abs(np.fft.rfft(out[SECOND // 10 :].astype(np.float64))) ** 2
    frequencies = np.fft.rfftfreq(len(out) - SECOND // 10, 1 / RATE)
    above = 10 * np.log10(spectrum[frequencies > 4000].sum() / spectrum.sum())
    assert above < -40.0
    inside = 10 * np.log10(
        spectrum[(frequencies > 500) & (frequencies < 3000)].sum() / spectrum.sum()
    )
    assert inside > -3.0


def test_a_real_impulse_response_of_every_package_loads() -> None:
    assert len(ROOM_IMPULSES) == 7
    assert len(CABINET_IMPULSES) == 99
    for package in PACKAGE_OF_FOLDER.values():
        files = [
            f for f in (*ROOM_IMPULSES.values(), *CABINET_IMPULSES.values()) if f.package == package
        ]
        assert files, package
        impulse = load_impulse(files[0].name)
        assert len(impulse) > 100
        assert float(np.sum(impulse.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-5)
    assert all(f.path.is_file() for f in (*ROOM_IMPULSES.values(), *CABINET_IMPULSES.values()))
    assert len(keyboard_files()) == BUCKLESPRING_FILE_COUNT
    assert sum(len(files) for files in NOISE_FILES.values()) == 18


def test_batched_path_equals_the_per_item_path(windows: list[np.ndarray]) -> None:
    """Memoryless routes match exactly; an ffmpeg codec's item matches its own solo run to the
    codec's state noise (far above the -3 dB between different speech), never another item."""
    routes = [
        ("mulaw", None, 0.02),
        ("g722", None, 0.0),
        ("gsm", None, 0.0),
        ("opus", 12, 0.0),
        ("band", None, 0.0),
        ("g722", None, 0.0),
        ("resample44k", None, 0.0),
        ("gsm", None, 0.0),
        ("opus", 12, 0.02),
    ]
    conditions = [Condition(phone=PhoneStage(r, kbps, loss)) for r, kbps, loss in routes]
    seeds = list(range(len(routes)))
    batched = apply_conditions(windows, conditions, seeds)
    minimum_snr = {"g722": 30.0, "gsm": 10.0, "opus": 10.0}
    for index, (window, condition) in enumerate(zip(windows, conditions, strict=True)):
        alone = apply_condition(window, condition, seeds[index])
        route = routes[index][0]
        if route in minimum_snr:
            assert _snr_db(alone, batched[index]) > minimum_snr[route]
            assert _snr_db(alone, batched[index - 1]) < 0.0
        else:
            np.testing.assert_array_equal(batched[index], alone)


def test_condition_round_trips_through_its_string_and_dict() -> None:
    conditions = [sample_condition(np.random.default_rng(seed), PHONE_FULL) for seed in range(100)]
    conditions += [
        sample_condition(np.random.default_rng(seed), DEFAULT_CONDITIONS) for seed in range(100)
    ]
    assert Condition.from_string("clean") == Condition()
    assert str(Condition()) == "clean"
    for condition in conditions:
        text = str(condition)
        assert Condition.from_string(text) == condition
        assert Condition.from_dict(condition.to_dict()) == condition
    full = str(conditions[0]).split("|")
    assert [part.split("=")[0] for part in full] == ["room", "noise", "device", "phone"]
    assert str(WITH_OPUS) == (
        "room=piper-ir-bathroom1|noise=babble:snr=10.0|device=rkr-3:gain=3.0"
        "|phone=opus:kbps=8:loss=0.03"
    )
    with pytest.raises(ValueError, match="stage"):
        Condition.from_string("radio=fm")
    with pytest.raises(ValueError, match="options"):
        Condition.from_string("noise=pink:snr=3.0:colour=red")


def test_sampling_depends_on_the_generator_alone() -> None:
    seeds = range(400)
    bonafide = [sample_condition(np.random.default_rng(s), DEFAULT_CONDITIONS) for s in seeds]
    spoof = [sample_condition(np.random.default_rng(s), DEFAULT_CONDITIONS) for s in seeds]
    assert bonafide == spoof
    assert len({str(c) for c in bonafide}) > 300  # and the draws do vary
    summary = summarise_conditions(
        [("bonafide", c) for c in bonafide] + [("spoof", c) for c in spoof]
    )
    assert summary["bonafide"] == summary["spoof"]
    # Every stage is on about as often as its probability says (0.4; binomial sd ~ 0.025).
    for stage in ("room", "noise", "device", "phone"):
        share = 1 - summary["bonafide"][stage]["none"] / len(bonafide)
        assert share == pytest.approx(0.4, abs=0.08)
    full = [sample_condition(np.random.default_rng(s), PHONE_FULL) for s in range(50)]
    assert all(None not in (c.room, c.noise, c.device, c.phone) for c in full)


def test_config_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="room_probability"):
        ConditionConfig(room_probability=1.5)
    with pytest.raises(ValueError, match="unknown"):
        ConditionConfig(noise_kinds=(("vacuum", 1.0),))
    with pytest.raises(ValueError, match="snr_db"):
        ConditionConfig(snr_db=(30.0, 5.0))
    with pytest.raises(ValueError, match="positive weight"):
        ConditionConfig(phone_routes=(("gsm", 0.0),))


def test_every_package_the_impulse_responses_come_from_is_required() -> None:
    from dfd.trainers.corpus.conditions import REQUIRED_PACKAGES
    from dfd.trainers.corpus.conditions.impulses import PACKAGE_OF_FOLDER

    assert set(PACKAGE_OF_FOLDER.values()) <= set(REQUIRED_PACKAGES)
