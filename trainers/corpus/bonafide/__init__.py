"""Bona fide speech sources: one module per source family, each reading a package's recordings
into :class:`~dfd.trainers.corpus.recordings.SpeechRecording` items.

A family is the unit the protocol holds out whole, so a detector is measured on real voices,
rooms and microphones it never heard. ``BONAFIDE_FAMILIES`` lists them all; each says the
packages it reads, their licence and what it leaves out and why.
"""

from __future__ import annotations

from dfd.trainers.corpus.bonafide import (
    asterisk,
    drascula,
    fillets,
    fotaq,
    klettres,
    tuxpaint,
    warzone,
)
from dfd.trainers.corpus.bonafide.family import BonafideFamily
from dfd.trainers.corpus.recordings import SpeechRecording

BONAFIDE_FAMILIES: dict[str, BonafideFamily] = {
    module.FAMILY.name: module.FAMILY
    for module in (asterisk, drascula, fillets, fotaq, klettres, tuxpaint, warzone)
}


def discover_recordings(families: tuple[str, ...] | None = None) -> list[SpeechRecording]:
    """Every recording of the named families (all by default), in family order."""
    names = sorted(BONAFIDE_FAMILIES) if families is None else families
    recordings: list[SpeechRecording] = []
    for name in names:
        recordings += BONAFIDE_FAMILIES[name].discover()
    return recordings


def required_packages() -> list[str]:
    """``debian:NAME`` and ``pypi:NAME`` of every family."""
    return sorted({p for family in BONAFIDE_FAMILIES.values() for p in family.packages})
