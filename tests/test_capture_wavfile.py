"""Audio files played as live calls: content, channels, pacing, looping and stopping."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile

from dfd.daemon.engine.events import AudioChunk, StreamEnded
from dfd.daemon.service.capture.wavfile import WavSource
from tests.capture_sink import CollectingSink
from tests.signals import RATE, tone


class Collector(CollectingSink):
    def audio(self, call_id: str, channel: int) -> np.ndarray:
        chunks = [
            e.samples
            for e in self.snapshot()
            if isinstance(e, AudioChunk) and (e.call_id, e.channel) == (call_id, channel)
        ]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)

    def ends(self) -> list[tuple[str, int, str]]:
        return [
            (e.call_id, e.channel, e.reason) for e in self.snapshot() if isinstance(e, StreamEnded)
        ]


def write_pcm16(path: Path, channels: list[np.ndarray]) -> np.ndarray:
    """Write 16-bit PCM; returns the float32 samples (channels, frames) a reader must get."""
    pcm = np.stack([np.round(c * 32767).astype(np.int16) for c in channels])
    soundfile.write(path, pcm.T, RATE, subtype="PCM_16")
    return pcm.astype(np.float32) / 32768


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)


def test_files_play_in_real_time_with_exact_content(tmp_path: Path) -> None:
    stereo = write_pcm16(tmp_path / "agent.wav", [tone(440, 1.0), tone(880, 1.0, amplitude=0.2)])
    mono = write_pcm16(tmp_path / "caller.wav", [tone(300, 0.55)])
    source = WavSource([tmp_path / "agent.wav", (tmp_path / "caller.wav", "call-42")])
    assert source.call_ids == ["wav-agent", "call-42"]
    collector = Collector()
    started = time.monotonic()
    source.start(collector)
    wait_until(lambda: source.finished)
    elapsed = time.monotonic() - started
    source.stop()

    assert source.finished
    assert 0.8 <= elapsed <= 3.0, f"a 1 s file took {elapsed:.2f} s"
    np.testing.assert_array_equal(collector.audio("wav-agent", 0), stereo[0])
    np.testing.assert_array_equal(collector.audio("wav-agent", 1), stereo[1])
    np.testing.assert_array_equal(collector.audio("call-42", 0), mono[0])
    assert sorted(collector.ends()) == [
        ("call-42", 0, "end-of-file"),
        ("wav-agent", 0, "end-of-file"),
        ("wav-agent", 1, "end-of-file"),
    ]
    chunks = [e for e in collector.events if isinstance(e, AudioChunk)]
    assert {len(c.samples) for c in chunks} == {
        320,
        160,
    }  # 20 ms blocks; 0.55 s ends on half of one
    assert {c.sample_rate for c in chunks} == {RATE}
    assert source.counters.streams_started == source.counters.streams_ended == 3
    assert source.counters.samples == 2 * RATE + len(mono[0])


def test_stop_mid_file_ends_the_stream(tmp_path: Path) -> None:
    audio = write_pcm16(tmp_path / "long.wav", [tone(500, 3.0)])
    source = WavSource([tmp_path / "long.wav"], block_s=0.01)
    collector = Collector()
    source.start(collector)
    wait_until(lambda: len(collector.audio("wav-long", 0)) >= RATE // 4)
    source.stop()
    assert not source.finished
    assert collector.ends() == [("wav-long", 0, "source-stopped")]
    received = collector.audio("wav-long", 0)
    assert RATE // 4 <= len(received) < len(audio[0])
    np.testing.assert_array_equal(received, audio[0, : len(received)])


def test_looping_starts_each_pass_as_a_new_call(tmp_path: Path) -> None:
    audio = write_pcm16(tmp_path / "short.wav", [tone(700, 0.05)])
    source = WavSource([tmp_path / "short.wav"] * 2, loop=True)
    assert source.call_ids == ["wav-short-0", "wav-short-1"]
    collector = Collector()
    source.start(collector)
    wait_until(lambda: ("wav-short-1#3", 0, "end-of-file") in collector.ends())
    source.stop()
    ends = collector.ends()
    for call_id in ["wav-short-0", "wav-short-0#2", "wav-short-1#3"]:
        assert (call_id, 0, "end-of-file") in ends
        np.testing.assert_array_equal(collector.audio(call_id, 0), audio[0])
    begun = {(e.call_id, e.channel) for e in collector.snapshot() if isinstance(e, AudioChunk)}
    assert sorted(begun) == sorted((call_id, channel) for call_id, channel, _ in ends)
    assert [reason for _, _, reason in ends].count("source-stopped") <= 2  # passes under way
    assert source.counters.streams_started == source.counters.streams_ended
    assert not source.finished


def test_as_fast_as_possible(tmp_path: Path) -> None:
    audio = write_pcm16(tmp_path / "a.wav", [tone(440, 5.0)])
    source = WavSource([tmp_path / "a.wav"], realtime=False)
    collector = Collector()
    source.start(collector)
    wait_until(lambda: source.finished)
    source.stop()
    np.testing.assert_array_equal(collector.audio("wav-a", 0), audio[0])


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one file"):
        WavSource([])
    with pytest.raises(ValueError, match="block_s"):
        WavSource([tmp_path / "a.wav"], block_s=0)
    with pytest.raises(FileNotFoundError):
        WavSource([tmp_path / "missing.wav"]).start(Collector())
