"""Logging through structlog, configured once by the command line.

Human-readable console lines when the stream is a terminal, one JSON object per line otherwise
(journald, log shippers). Logs go to standard error, so standard output stays free for the
results a command prints (summaries, JSON scores) and can be piped.

Under systemd, when standard output is the journal (``$JOURNAL_STREAM`` names it, as systemd
documents for that check), logs go to standard output instead, as JSON lines behind the kernel's
``<N>`` priority prefix: journald strips the prefix and files each line at its level, so
``journalctl -u dfd -p warning`` works. A command whose standard output is redirected keeps its
logs on standard error even under systemd.

``redact_call_ids``: a call id can hold what an integrator put in it (PCM ingest ids are theirs;
RTP ids hold the sender's address). When set, every ``call_id`` in the logs is replaced by
``sha256:`` and the first 16 hex digits of its SHA-256, the same for every line of a call; events
on the bus keep the real id.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

LEVELS = ("debug", "info", "warning", "error", "critical")
LogFormat = Literal["auto", "console", "json"]
# syslog priorities, as sd-daemon(3) prefixes expect them
SYSLOG_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}


def is_journal(stream: TextIO) -> bool:
    """True when ``stream`` is the journal stream systemd connected (``$JOURNAL_STREAM`` holds
    its ``device:inode``)."""
    expected = os.environ.get("JOURNAL_STREAM")
    if not expected:
        return False
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # closed, or not a real file (pytest capture)
        return False
    return f"{status.st_dev}:{status.st_ino}" == expected


def redacted_call_id(call_id: str) -> str:
    return "sha256:" + hashlib.sha256(call_id.encode()).hexdigest()[:16]


def _redact_call_id(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    call_id = event_dict.get("call_id")
    if isinstance(call_id, str):
        event_dict["call_id"] = redacted_call_id(call_id)
    return event_dict


class _JournalRenderer:
    """JSON behind a ``<N>`` syslog priority prefix, which journald turns into the PRIORITY."""

    def __init__(self) -> None:
        self._json = structlog.processors.JSONRenderer()

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        priority = SYSLOG_PRIORITY.get(str(event_dict.get("level")), SYSLOG_PRIORITY["info"])
        line = self._json(logger, method, event_dict)
        return f"<{priority}>{line.decode() if isinstance(line, bytes) else line}"


def configure_logging(
    level: str = "info",
    log_format: LogFormat = "auto",
    stream: TextIO | None = None,
    redact_call_ids: bool = False,
) -> None:
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r} (choose from {', '.join(LEVELS)})")
    journal = stream is None and is_journal(sys.stdout)
    if stream is None:
        stream = sys.stdout if journal else sys.stderr
    as_json = log_format == "json" or (log_format == "auto" and not stream.isatty())
    renderer: structlog.typing.Processor
    if journal and log_format != "console":
        renderer = _JournalRenderer()
    elif as_json:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *([_redact_call_id] if redact_call_ids else []),
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
