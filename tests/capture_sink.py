"""A capture source's sink for tests: keeps every event it is handed, from any thread."""

from __future__ import annotations

import threading

from dfd.daemon.engine.events import CaptureEvent


class CollectingSink:
    def __init__(self) -> None:
        self.events: list[CaptureEvent] = []
        self.lock = threading.Lock()

    def __call__(self, event: CaptureEvent) -> None:
        with self.lock:
            self.events.append(event)

    def snapshot(self) -> list[CaptureEvent]:
        with self.lock:
            return list(self.events)
