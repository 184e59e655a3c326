"""Per-call figures on the calls protocol: counted from replay reports, and end to end through
the real `dfd replay` on the small corpus's calls."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dfd.trainers.calls_evaluation import call_outcomes, first_alert_s, summarise
from dfd.trainers.datasets import DatasetError
from dfd.trainers.datasets.calls import CallTrial, read_calls_protocol, write_calls_protocol

ROOT = Path(__file__).resolve().parent.parent


def report(path: Path, *alert_ends: float) -> dict[str, Any]:
    alerts = [{"topic": "alert.raised", "end": end} for end in alert_ends]
    alerts += [{"topic": "alert.cleared", "end": end + 5.0} for end in alert_ends]
    return {"path": str(path), "alerts": alerts}


def test_false_alarms_detections_and_times_to_alert(tmp_path: Path) -> None:
    audio = tmp_path / "calls"
    calls = [
        CallTrial("C1", audio / "1.flac", "bonafide", "a", "nl", "-", 90.0, 90.0),
        CallTrial("C2", audio / "2.flac", "bonafide", "b", "nl", "-", 120.0, 120.0),
        CallTrial("C3", audio / "3.flac", "turns-synthetic", "a", "nl", "nsf", 20.0, 80.0),
        CallTrial("C4", audio / "4.flac", "turns-synthetic", "b", "nl", "nsf", 30.0, 70.0),
        CallTrial("C5", audio / "5.flac", "turns-synthetic", "c", "nl", "lpc", 15.0, 60.0),
        CallTrial("C6", audio / "6.flac", "turns-synthetic", "c", "nl", "lpc", 25.0, 60.0),
    ]
    reports = {
        str(calls[0].path): report(calls[0].path),
        str(calls[1].path): report(calls[1].path, 44.5, 100.0),  # a real caller flagged
        str(calls[2].path): report(calls[2].path, 23.5),
        str(calls[3].path): report(calls[3].path, 12.0, 40.0),  # flagged before it turned
        str(calls[4].path): report(calls[4].path, 20.0),
        str(calls[5].path): report(calls[5].path),  # missed
    }
    outcomes = call_outcomes(calls, reports)
    summary = summarise(outcomes)
    assert (summary.real_calls, summary.real_calls_alerted) == (2, 1)
    assert summary.real_hours == pytest.approx(210 / 3600)
    assert (summary.turning_calls, summary.turning_alerted_early, summary.turning_detected) == (
        4,
        1,
        2,
    )
    assert summary.times_to_alert_s == (3.5, 5.0)
    assert summary.median_time_to_alert_s == pytest.approx(4.25)
    assert first_alert_s(reports[str(calls[1].path)]) == 44.5
    with pytest.raises(ValueError, match="no replay report for C1"):
        call_outcomes(calls, {})


def test_the_calls_protocol_round_trips_and_refuses_nonsense(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    (root / "protocols").mkdir(parents=True)
    calls = [
        CallTrial("C1", root / "calls" / "C1.flac", "bonafide", "a", "nl", "-", 61.5, 61.5),
        CallTrial(
            "C2", root / "calls" / "C2.flac", "turns-synthetic", "a", "nl", "nsf", 12.25, 80.0
        ),
    ]
    protocol = root / "protocols" / "calls.eval.tsv"
    write_calls_protocol(calls, protocol, root)
    assert read_calls_protocol(protocol) == calls
    bad = protocol.read_text().replace("turns-synthetic\ta\tnl\tnsf", "turns-synthetic\ta\tnl\t-")
    protocol.write_text(bad)
    with pytest.raises(DatasetError, match="cannot have attack"):
        read_calls_protocol(protocol)


def test_the_benchmark_replays_the_small_corpus_calls(small_corpus: Path) -> None:
    protocol = small_corpus / "protocols" / "calls.eval.tsv"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "calls_protocol.py"), "--calls", str(protocol)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    rows = [line for line in result.stdout.splitlines() if line.startswith("| calls.eval.tsv")]
    assert len(rows) == 1
    calls = read_calls_protocol(protocol)
    real = sum(c.kind == "bonafide" for c in calls)
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert cells[1].startswith(f"{real} (")
    assert int(cells[3]) == len(calls) - real
    assert int(cells[2].split()[0]) <= real
