"""The corpus's calls protocol (``protocols/calls.<split>.tsv``): whole calls, real or turning
synthetic part-way, for measuring false alarms per call and time to alert.

A tab-separated file with a header line::

    call_id  path  kind  speaker  language  attack  synthetic_from_s  seconds

``path`` is relative to the corpus folder; ``kind`` is ``bonafide`` or ``turns-synthetic``;
``attack`` is ``-`` for a real call; ``synthetic_from_s`` is the second at which the synthetic
speech starts (the call's length for a real call).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from dfd.trainers.datasets.trial import DatasetError

CallKind = Literal["bonafide", "turns-synthetic"]
CALL_COLUMNS = (
    "call_id", "path", "kind", "speaker", "language", "attack", "synthetic_from_s", "seconds",
)  # fmt: skip


@dataclass(frozen=True)
class CallTrial:
    call_id: str
    path: Path
    kind: CallKind
    speaker: str
    language: str
    attack: str
    synthetic_from_s: float
    seconds: float


def write_calls_protocol(calls: Sequence[CallTrial], path: Path, root: Path) -> None:
    rows = ["\t".join(CALL_COLUMNS)]
    for call in calls:
        rows.append(
            "\t".join(
                (
                    call.call_id, str(call.path.relative_to(root)), call.kind, call.speaker,
                    call.language, call.attack, f"{call.synthetic_from_s:.3f}",
                    f"{call.seconds:.3f}",
                )
            )
        )  # fmt: skip
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def read_calls_protocol(path: str | Path) -> list[CallTrial]:
    """Every call of a calls protocol; its audio paths resolved against the corpus folder."""
    path = Path(path)
    root = path.parent.parent  # protocols/ sits in the corpus folder
    with path.open(encoding="utf-8", newline="") as stream:
        reader = csv.reader(stream, delimiter="\t")
        header = next(reader, None)
        if header is None or tuple(header) != CALL_COLUMNS:
            raise DatasetError(f"{path}: not a calls protocol (header must be {CALL_COLUMNS})")
        calls = []
        for number, row in enumerate(reader, start=2):
            if len(row) != len(CALL_COLUMNS):
                raise DatasetError(f"{path}:{number}: expected {len(CALL_COLUMNS)} columns")
            call_id, audio, kind, speaker, language, attack, synthetic_from, seconds = row
            if kind not in ("bonafide", "turns-synthetic"):
                raise DatasetError(f"{path}:{number}: unknown call kind {kind!r}")
            if (attack == "-") != (kind == "bonafide"):
                raise DatasetError(f"{path}:{number}: a {kind} call cannot have attack {attack!r}")
            calls.append(
                CallTrial(
                    call_id, root / audio, cast(CallKind, kind), speaker, language, attack,
                    float(synthetic_from), float(seconds),
                )
            )  # fmt: skip
    return calls
