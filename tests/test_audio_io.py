"""Audio input from real files: written by libsndfile, or encoded by the real ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from dfd.dsp import g711
from dfd.dsp.audio_io import AudioDecodeError, MissingToolError, load_audio, resample
from tests.signals import RATE, SAMPLE_CALL, tone


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def ffmpeg_encode(source: Path, target: Path, *output_args: str) -> Path:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), *output_args, str(target)],
        check=True,
    )
    return target


@pytest.mark.parametrize(
    ("subtype", "tolerance"),
    # libsndfile writes with a 2**(n-1) - 1 scale and reads with 2**(n-1): allow one LSB
    [("PCM_16", 2**-15), ("PCM_24", 2**-23), ("PCM_32", 1e-9), ("FLOAT", 0.0), ("DOUBLE", 1e-8)],
)
def test_wav_pcm_and_float_at_16k_read_back_exactly(
    tmp_path: Path, subtype: str, tolerance: float
) -> None:
    signal = tone(440.0, 0.5) + tone(3000.0, 0.5, amplitude=0.2)
    path = tmp_path / f"{subtype}.wav"
    soundfile.write(path, signal, RATE, subtype=subtype)
    recording = load_audio(path)
    assert recording.samples.dtype == np.float32
    assert recording.samples.shape == (1, len(signal))
    assert (recording.sample_rate, recording.source_sample_rate) == (RATE, RATE)
    np.testing.assert_allclose(recording.samples[0], signal, atol=tolerance)


@pytest.mark.parametrize(
    ("subtype", "decode"), [("ULAW", g711.ulaw_to_linear), ("ALAW", g711.alaw_to_linear)]
)
def test_g711_wav_decodes_to_the_g711_levels(tmp_path: Path, subtype: str, decode: object) -> None:
    codes = np.arange(256, dtype=np.uint8)
    raw = tmp_path / "codes.raw"
    raw.write_bytes(codes.tobytes())
    levels = soundfile.read(raw, format="RAW", subtype=subtype, samplerate=RATE, channels=1)[0]
    path = tmp_path / f"{subtype}.wav"
    soundfile.write(path, levels, RATE, subtype=subtype)
    recording = load_audio(path)
    expected = decode(codes).astype(np.float32) / 32768  # type: ignore[operator]
    np.testing.assert_array_equal(recording.samples[0], expected)
    assert recording.source_format == f"WAV/{subtype}"


@pytest.mark.parametrize(("extension", "max_error"), [("flac", 2e-5), ("ogg", 0.05)])
def test_flac_and_ogg(tmp_path: Path, extension: str, max_error: float) -> None:
    signal = tone(700.0, 1.0)
    path = tmp_path / f"tone.{extension}"
    soundfile.write(path, signal, RATE)
    samples = load_audio(path).samples[0]
    assert len(samples) == len(signal)
    assert np.abs(samples - signal).max() < max_error


def test_8k_telephony_is_resampled_to_16k_keeping_its_frequencies(tmp_path: Path) -> None:
    path = tmp_path / "call-8k.wav"
    soundfile.write(path, tone(1000.0, 2.0, rate=8000), 8000, subtype="PCM_16")
    recording = load_audio(path)
    assert (recording.source_sample_rate, recording.sample_rate) == (8000, RATE)
    assert recording.samples.shape == (1, 32_000)
    assert recording.duration_s == pytest.approx(2.0)
    assert dominant_frequency(recording.samples[0], RATE) == pytest.approx(1000.0, abs=2.0)
    # a band-limited resampler adds nothing above the old Nyquist frequency
    spectrum = np.abs(np.fft.rfft(recording.samples[0][1000:-1000]))
    freqs = np.fft.rfftfreq(30_000, 1 / RATE)
    assert spectrum[freqs > 4200].max() < 1e-3 * spectrum.max()


def test_channels_are_kept_apart(tmp_path: Path) -> None:
    agent, caller = tone(500.0, 1.0, rate=8000), tone(1500.0, 1.0, rate=8000)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([agent, caller], axis=1), 8000, subtype="PCM_16")
    recording = load_audio(path)
    assert recording.channels == 2
    assert dominant_frequency(recording.samples[0], RATE) == pytest.approx(500.0, abs=2.0)
    assert dominant_frequency(recording.samples[1], RATE) == pytest.approx(1500.0, abs=2.0)


def test_the_bundled_call_is_two_parties_at_8k() -> None:
    recording = load_audio(SAMPLE_CALL)
    assert (recording.channels, recording.source_sample_rate) == (2, 8000)
    assert recording.source_format == "WAV/ULAW"
    assert recording.duration_s == pytest.approx(15.85, abs=0.01)
    # one party per channel: the two channels take turns, so they are rarely loud together
    loud = np.abs(recording.samples) > 0.05
    assert loud[0].mean() > 0.05 and loud[1].mean() > 0.05
    assert (loud[0] & loud[1]).mean() < 0.01


@pytest.fixture(scope="module")
def tone_wav_8k(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    signal = tone(1000.0, 1.5, rate=8000)
    path = tmp_path_factory.mktemp("ffmpeg") / "tone-8k.wav"
    soundfile.write(path, signal, 8000, subtype="PCM_16")
    return path, signal


@pytest.mark.parametrize(
    ("extension", "args", "source_rate"),
    [
        ("g722", ["-ar", "16000", "-c:a", "g722", "-f", "g722"], 16_000),
        ("gsm", ["-ar", "8000", "-c:a", "libgsm", "-f", "gsm"], 8_000),
        ("ul", ["-ar", "8000", "-f", "mulaw"], 8_000),
        ("al", ["-ar", "8000", "-f", "alaw"], 8_000),
    ],
)
def test_raw_telephony_streams_decode_through_ffmpeg(
    tmp_path: Path,
    tone_wav_8k: tuple[Path, np.ndarray],
    extension: str,
    args: list[str],
    source_rate: int,
) -> None:
    source, _ = tone_wav_8k
    path = ffmpeg_encode(source, tmp_path / f"tone.{extension}", *args)
    recording = load_audio(path)
    assert recording.source_sample_rate == source_rate
    assert recording.source_format.startswith("raw ")
    assert recording.channels == 1
    assert recording.duration_s == pytest.approx(1.5, abs=0.03)
    assert dominant_frequency(recording.samples[0], RATE) == pytest.approx(1000.0, abs=3.0)
    level = np.sqrt(np.mean(recording.samples[0, 2000:-2000] ** 2))
    assert level == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


def test_raw_mulaw_matches_the_g711_decoder_sample_for_sample(
    tmp_path: Path, tone_wav_8k: tuple[Path, np.ndarray]
) -> None:
    source, _ = tone_wav_8k
    path = ffmpeg_encode(source, tmp_path / "tone.ul", "-f", "mulaw")
    expected = g711.ulaw_to_linear(np.frombuffer(path.read_bytes(), dtype=np.uint8)) / 32768
    np.testing.assert_allclose(
        load_audio(path).samples[0], resample(expected[None].astype(np.float32), 8000, RATE)[0]
    )


def test_other_containers_go_through_ffmpeg(
    tmp_path: Path, tone_wav_8k: tuple[Path, np.ndarray]
) -> None:
    source, _ = tone_wav_8k
    path = ffmpeg_encode(source, tmp_path / "tone.mka", "-c:a", "pcm_s16le")
    recording = load_audio(path)
    assert recording.source_sample_rate == 8000
    assert dominant_frequency(recording.samples[0], RATE) == pytest.approx(1000.0, abs=3.0)


def test_a_missing_ffmpeg_is_named_with_its_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tone_wav_8k: tuple[Path, np.ndarray]
) -> None:
    source, _ = tone_wav_8k
    path = ffmpeg_encode(source, tmp_path / "tone.g722", "-ar", "16000", "-f", "g722")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(MissingToolError, match=r"Debian package 'ffmpeg'.*apt-get install ffmpeg"):
        load_audio(path)


def test_garbage_and_empty_files_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.wav"
    garbage.write_bytes(b"this is not audio at all" * 100)
    with pytest.raises(AudioDecodeError, match=r"notes\.wav"):
        load_audio(garbage)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, dtype=np.float32), RATE)
    with pytest.raises(AudioDecodeError, match="no audio frames"):
        load_audio(empty)
    with pytest.raises(FileNotFoundError):
        load_audio(tmp_path / "absent.wav")
