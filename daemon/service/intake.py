"""``IntakeQueue``: capture events from the sources' threads to the daemon's loop.

Bounded and never blocking: a source hands an event over and returns at once; when the queue is
full, ``put_nowait`` raises ``queue.Full`` and the daemon counts the event dropped. Only the
daemon's loop takes events out. A live call sends 50 packets a second, so at a few hundred calls
this is tens of thousands of hand-overs a second: it is a ``collections.deque``, whose
``append`` and ``popleft`` are atomic, instead of a ``queue.Queue``, which takes a lock and
signals a condition on every put and get (the loop never blocks on the intake, it polls it).
The bound is checked before appending, so concurrent sources can overshoot it by at most one
event each.
"""

from __future__ import annotations

import collections
import queue
from typing import Generic, TypeVar

T = TypeVar("T")


class IntakeQueue(Generic[T]):
    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self._items: collections.deque[T] = collections.deque()

    def put_nowait(self, item: T) -> None:
        if len(self._items) >= self.maxsize:
            raise queue.Full
        self._items.append(item)

    def get_nowait(self) -> T:
        try:
            return self._items.popleft()
        except IndexError:
            raise queue.Empty from None

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items
