"""How conditions are spread over the classes, so the corpus can show that bona fide and
spoofed audio met the same distribution (a condition seen by one class only is a shortcut)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from dfd.trainers.corpus.conditions.condition import Condition

NONE = "none"
SNR_BIN_DB = 5.0
RT60_BIN_S = 0.1


def condition_values(condition: Condition) -> dict[str, str]:
    """The value of each stage, numbers binned: what a distribution table counts."""
    room, noise, device, phone = condition.room, condition.noise, condition.device, condition.phone
    values = {
        "room": NONE if room is None else ("sim" if room.rt60_s is not None else "ir"),
        "room_ir": NONE if room is None or room.rt60_s is not None else room.room,
        "rt60_s": NONE if room is None or room.rt60_s is None else _bin(room.rt60_s, RT60_BIN_S),
        "noise": NONE if noise is None else noise.kind,
        "snr_db": NONE if noise is None else _bin(noise.snr_db, SNR_BIN_DB),
        "device": NONE if device is None else _device_kind(device.response),
        "clipping": NONE if device is None or device.clipping is None else device.clipping,
        "phone": NONE if phone is None else phone.route,
        "opus_kbps": NONE
        if phone is None or phone.bitrate_kbps is None
        else str(phone.bitrate_kbps),
        "packet_loss": NONE if phone is None or not phone.loss_rate else "yes",
    }
    return values


def summarise_conditions(
    labelled: Iterable[tuple[str, Condition]],
) -> dict[str, dict[str, Counter[str]]]:
    """``{label: {stage: Counter(value -> count)}}`` over ``(label, condition)`` pairs."""
    summary: dict[str, dict[str, Counter[str]]] = {}
    for label, condition in labelled:
        per_stage = summary.setdefault(label, {})
        for stage, value in condition_values(condition).items():
            per_stage.setdefault(stage, Counter())[value] += 1
    return summary


def summary_table(summary: dict[str, dict[str, Counter[str]]]) -> str:
    """A Markdown table: one row per stage value, a count and share column per class."""
    labels = sorted(summary)
    totals = {label: sum(next(iter(summary[label].values())).values()) for label in labels}
    header = "| stage | value | " + " | ".join(f"{label} | share" for label in labels) + " |"
    lines = [header, "|" + "---|" * (2 + 2 * len(labels))]
    stages = sorted({stage for label in labels for stage in summary[label]})
    for stage in stages:
        values = sorted({value for label in labels for value in summary[label].get(stage, {})})
        for value in values:
            cells = []
            for label in labels:
                count = summary[label].get(stage, Counter())[value]
                cells += [str(count), f"{100 * count / max(totals[label], 1):.1f} %"]
            lines.append(f"| {stage} | {value} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _bin(value: float, width: float) -> str:
    low = width * int(value // width)
    return f"{low:g}-{low + width:g}"


def _device_kind(response: str) -> str:
    return "cabinet" if response.startswith(("gx-", "rkr-")) else response
