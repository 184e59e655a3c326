"""``IntakeQueue``: the bounded, never-blocking hand-over from capture threads to the loop."""

from __future__ import annotations

import contextlib
import queue
import threading
from pathlib import Path

import numpy as np
import pytest

from dfd.daemon.engine.events import AudioChunk
from dfd.daemon.service.intake import IntakeQueue
from dfd.daemon.service.serve import Daemon
from dfd.daemon.settings import load_settings


def test_it_keeps_order_refuses_past_its_bound_and_says_when_empty() -> None:
    intake: IntakeQueue[int] = IntakeQueue(3)
    assert intake.empty() and intake.qsize() == 0
    for item in range(3):
        intake.put_nowait(item)
    with pytest.raises(queue.Full):
        intake.put_nowait(3)
    assert intake.qsize() == 3
    assert [intake.get_nowait() for _ in range(3)] == [0, 1, 2]
    with pytest.raises(queue.Empty):
        intake.get_nowait()
    intake.put_nowait(4)  # room again once taken
    assert intake.get_nowait() == 4
    with pytest.raises(ValueError, match="at least 1"):
        IntakeQueue(0)


def test_concurrent_sources_lose_nothing_they_were_not_told_of() -> None:
    """Four threads hand over 20,000 events each while the loop takes them: every event is
    either taken, in each source's order, or refused with ``queue.Full`` (never lost)."""
    intake: IntakeQueue[tuple[int, int]] = IntakeQueue(500)
    refused = [0] * 4
    done = threading.Event()

    def source(number: int) -> None:
        for seq in range(20_000):
            try:
                intake.put_nowait((number, seq))
            except queue.Full:
                refused[number] += 1

    threads = [threading.Thread(target=source, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    taken: list[tuple[int, int]] = []

    def drain() -> None:
        while not done.is_set() or not intake.empty():
            with contextlib.suppress(queue.Empty):
                taken.append(intake.get_nowait())

    loop = threading.Thread(target=drain)
    loop.start()
    for thread in threads:
        thread.join()
    done.set()
    loop.join()
    assert len(taken) + sum(refused) == 4 * 20_000
    for number in range(4):
        sequence = [seq for source_number, seq in taken if source_number == number]
        assert sequence == sorted(sequence)


# --------------------------------------------------------- the loop's turn (serve.Daemon.step)


def test_a_burst_of_packets_is_taken_in_slices_with_a_pump_between(tmp_path: Path) -> None:
    """Sources deliver every call's packet at once; the loop takes events only until its pump is
    due (checked every 8 events), so a worker that finished is never left waiting for a whole
    burst to be cut into windows. Without a deadline, everything is taken."""
    config = tmp_path / "dfd.toml"
    config.write_text(f'[models]\nworkers = 1\n[serve]\nstate_directory = "{tmp_path}"\n')
    daemon = Daemon(load_settings(config, environ={}), [])
    pumps: list[int] = []
    pump = daemon.pipeline.pump

    def counting_pump(timeout: float = 0.0, flush: bool = False) -> None:
        pumps.append(daemon.intake.qsize())
        pump(timeout, flush)

    daemon.pipeline.pump = counting_pump  # type: ignore[method-assign]
    packet = np.zeros(160, dtype=np.float32)
    try:
        for call in range(300):
            daemon.intake.put_nowait(("load", AudioChunk(f"call-{call}", 0, packet, 8_000), 0.0))
        daemon._last_pump = 0.0  # the pump is long overdue
        daemon.step()
        assert pumps == [300 - 8]  # 8 events taken, then the pump
        assert daemon.pipeline.active_streams == 8
        assert daemon._take_intake() == 300 - 8  # no deadline: the rest
        assert daemon.intake.empty()
    finally:
        daemon.shutdown()
