"""Logging: standard error normally; standard output with syslog priority prefixes when it is
systemd's journal stream ($JOURNAL_STREAM); call ids redacted when configured."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest
import soundfile
import structlog

from dfd.daemon.logs import configure_logging, redacted_call_id
from tests.signals import tone

DFD = str(Path(sys.executable).with_name("dfd"))


def identity(stream: TextIO) -> str:
    status = os.fstat(stream.fileno())
    return f"{status.st_dev}:{status.st_ino}"


@pytest.fixture
def streams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TextIO, TextIO]]:
    """Real files to stand for standard output and standard error (the journal check needs a
    file); ``use`` puts them in place (in the test itself: pytest's capture replaces them again
    when the test starts)."""
    with (
        (tmp_path / "stdout").open("w+", encoding="utf-8") as out,
        (tmp_path / "stderr").open("w+", encoding="utf-8") as err,
    ):
        yield out, err
    structlog.reset_defaults()


def use(streams: tuple[TextIO, TextIO], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", streams[0])
    monkeypatch.setattr(sys, "stderr", streams[1])


def written(stream: TextIO) -> list[str]:
    stream.flush()
    stream.seek(0)
    return stream.read().splitlines()


def test_logs_go_to_stdout_with_priorities_when_stdout_is_the_journal(
    streams: tuple[TextIO, TextIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, err = streams
    monkeypatch.setenv("JOURNAL_STREAM", identity(out))
    use(streams, monkeypatch)
    configure_logging("debug", "auto")
    log = structlog.get_logger("test")
    log.debug("one", call_id="c1")
    log.info("two")
    log.warning("three")
    log.error("four")
    assert written(err) == []
    lines = written(out)
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>"]
    records = [json.loads(line[3:]) for line in lines]
    assert [r["event"] for r in records] == ["one", "two", "three", "four"]
    assert records[0]["call_id"] == "c1"


def test_logs_stay_on_stderr_when_the_journal_is_another_stream(
    streams: tuple[TextIO, TextIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, err = streams
    monkeypatch.setenv("JOURNAL_STREAM", identity(err))  # stdout redirected elsewhere
    use(streams, monkeypatch)
    configure_logging("info", "auto")
    structlog.get_logger("test").info("hello")
    assert written(out) == []
    (line,) = written(err)
    assert json.loads(line)["event"] == "hello"  # plain JSON (not a terminal), no prefix


def test_call_ids_are_redacted_when_asked(
    streams: tuple[TextIO, TextIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, err = streams
    use(streams, monkeypatch)
    configure_logging("info", "json", redact_call_ids=True)
    log = structlog.get_logger("test").bind(call_id="+15551234567")
    log.info("bound")
    with structlog.contextvars.bound_contextvars(call_id="pcm-44 20 7946 0000"):
        structlog.get_logger("test").info("from context", channel=1)
    structlog.get_logger("test").info("no call")
    records = [json.loads(line) for line in written(err)]
    expected = "sha256:" + hashlib.sha256(b"+15551234567").hexdigest()[:16]
    assert records[0]["call_id"] == expected == redacted_call_id("+15551234567")
    assert records[1]["call_id"] == redacted_call_id("pcm-44 20 7946 0000")
    assert records[1]["channel"] == 1
    assert "call_id" not in records[2]
    text = "\n".join(written(err))
    assert "5551234567" not in text
    assert "7946" not in text


def test_call_ids_are_logged_as_they_are_by_default(
    streams: tuple[TextIO, TextIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, err = streams
    use(streams, monkeypatch)
    configure_logging("info", "json")
    structlog.get_logger("test").info("x", call_id="+15551234567")
    assert json.loads(written(err)[0])["call_id"] == "+15551234567"


def test_the_dfd_command_logs_to_the_journal_stream(tmp_path: Path) -> None:
    """The installed command, its standard output a file named by $JOURNAL_STREAM as systemd
    sets it: the log lines come there with priorities, nothing on standard error."""
    audio = tmp_path / "tone.wav"
    soundfile.write(audio, tone(440.0, 2.5), 16_000)
    stdout_path = tmp_path / "journal"
    with stdout_path.open("w") as journal:
        env = {**os.environ, "JOURNAL_STREAM": identity(journal)}
        result = subprocess.run(
            [DFD, "features", str(audio), "-f", "logmel"],
            stdout=journal,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = stdout_path.read_text().splitlines()
    logged = [json.loads(line[3:]) for line in lines if line.startswith("<6>{")]
    assert [record["event"] for record in logged] == ["decoded"]
    assert logged[0]["level"] == "info"
    assert any(line.startswith(f"{audio}: 1 channel(s)") for line in lines)  # the results
