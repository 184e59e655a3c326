"""Fuzzing what comes from outside: the config loader (a TOML file, ``DFD_SECTION__KEY``
variables) and the two network sources through their real sockets.

- The loader gets arbitrary text, TOML-looking text made of real section and key names with odd
  values, and valid TOML documents of random shape; and arbitrary ``DFD_*`` variables. It must
  give settings (which ``dfd config show`` writes back as TOML that loads to the same) or a
  one-line ``ConfigError``, and nothing else.
- ``PcmIngestSource`` bound on 127.0.0.1 gets random multipart messages over a real PUSH socket,
  ``RtpSource`` random datagrams over a real UDP socket; then a valid stream. The valid stream
  must arrive whole, every malformed message be counted, and no message reach the source's
  last-resort handler (which would mean a parser or buffer bug).
"""

from __future__ import annotations

import dataclasses
import math
import socket
import string
import time
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from dfd.core.layered_config import toml_value
from dfd.core.typed_config import ConfigError
from dfd.daemon.engine.events import AudioChunk, StreamEnded
from dfd.daemon.service.capture.pcm_ingest import MalformedFrame, PcmIngestSource, parse_pcm_frames
from dfd.daemon.service.capture.rtp import (
    MalformedPacket,
    PayloadFormat,
    RtpSource,
    decode_payload,
    is_rtcp,
    parse_rtp,
)
from dfd.daemon.settings import Settings, load_settings, resolve_settings, settings_toml
from tests.capture_sink import CollectingSink
from tests.test_capture_rtp import mutated, rtp, valid_packets

# --- the config loader ---------------------------------------------------------------------

HINTS = {
    name: typing.get_type_hints(section)
    for name, section in typing.get_type_hints(Settings).items()
}
SECTIONS = {
    name: [field.name for field in dataclasses.fields(section)]
    for name, section in typing.get_type_hints(Settings).items()
}
KEYS = sorted({key for keys in SECTIONS.values() for key in keys})
# Characters a file can hold (no lone surrogates: they cannot be written as UTF-8).
CHARACTERS = st.characters(blacklist_categories=("Cs",))
TEXT = st.text(CHARACTERS, max_size=12)
NAME = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=10)
PLAUSIBLE = ["auto", "cpu", "cuda:0", "info", "json", "eer", "default", "127.0.0.1:0", ""]


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``choices``, each drawn ``weight`` times in ``sum(weights)``."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda index: table[index])


KNOWN_SECTIONS = st.sampled_from(list(SECTIONS))
# Mostly real sections and each section's own keys, so that most documents reach the type
# checks and the checks across keys; now and then any name.
section_names = weighted((12, KNOWN_SECTIONS), (1, NAME), (1, TEXT))
key_names = st.one_of(st.sampled_from(KEYS), NAME, TEXT)


def keys_of(section: str) -> st.SearchStrategy[str]:
    own = SECTIONS.get(section)
    return key_names if own is None else weighted((30, st.sampled_from(own)), (1, key_names))


def of_type(hint: Any) -> st.SearchStrategy[Any]:
    """Values of the type a key takes, the edges included: nan, inf, 1e308, huge integers,
    negative and zero sizes, empty and odd strings."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([of_type(arg) for arg in args if arg is not type(None)])
    if origin in (list, tuple):
        return st.lists(of_type(args[0]), max_size=3)
    if hint is float:
        edges = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, 5e-324, -0.0])
        return st.one_of(edges, st.floats(), st.floats(-1, 100), st.integers(-2, 20_000))
    if hint is int:
        return st.one_of(st.integers(-2, 70_000), st.integers(-(2**63), 2**63 - 1))
    if hint is bool:
        return st.booleans()
    return st.one_of(TEXT, st.sampled_from(PLAUSIBLE))


# Anything TOML holds, for keys of another type and for unknown keys.
toml_values = st.recursive(
    st.one_of(
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(),
        TEXT,
        st.dates(),
        st.datetimes(),
        st.times(),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(key_names, children, max_size=3),
    ),
    max_leaves=6,
)


def value_of(section: str, key: str) -> st.SearchStrategy[Any]:
    hint = HINTS.get(section, {}).get(key)
    return toml_values if hint is None else weighted((4, of_type(hint)), (1, toml_values))


def toml_key(name: str) -> str:
    bare = name and all(c in string.ascii_letters + string.digits + "_-" for c in name)
    return name if bare else toml_value(name)


def toml_text(value: Any) -> str:
    """``value`` written as TOML (inline tables for tables)."""
    if isinstance(value, dict):
        items = ", ".join(f"{toml_key(k)} = {toml_text(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_text(v) for v in value) + "]"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return toml_value(value)


# Values as text, TOML or not: what a hand-edited file or a variable may hold.
MALFORMED_VALUES = ["nan", "+inf", "1e308", "1e-320", "0x10", "1_000", "-0.0", "07:32:00", "[1,"]
MALFORMED_VALUES += ['"""\nline\n"""', "{ a = 1, b = [true] }", "'", '"\\q"', "tru", ""]


def text_of(section: str, key: str) -> st.SearchStrategy[str]:
    return weighted(
        (8, value_of(section, key).map(toml_text)),
        (1, st.sampled_from(MALFORMED_VALUES)),
        (1, TEXT),
    )


@st.composite
def tomlish_text(draw: st.DrawFn) -> str:
    """Lines that look like a settings file, not always valid TOML: table headers (some as
    arrays of tables, some broken), keys with values of their type and of others, dotted keys,
    comments and stray text."""
    lines = [draw(weighted((8, st.sampled_from(["", "# dfd"])), (1, st.sampled_from(["x", "=["]))))]
    sections = draw(st.lists(section_names, max_size=3, unique=True))
    if sections and draw(st.integers(0, 9)) == 0:
        sections.append(sections[0])  # a table declared twice
    for section in sections:
        header = draw(
            weighted(
                (12, st.just("[{}]")), (1, st.sampled_from(["[[{}]]", "[ {} ] # t", "[{}", "{}"]))
            )
        )
        lines.append(header.format(toml_key(section)))
        for _ in range(draw(st.integers(0, 4))):
            key = draw(keys_of(section))
            value = draw(text_of(section, key))
            forms = st.sampled_from(["{k}={v}  # why", "{s}.{k} = {v}", "{k} {v}", "{v}"])
            line = draw(weighted((12, st.just("{k} = {v}")), (1, forms)))
            lines.append(line.format(k=toml_key(key), v=value, s=toml_key(section)))
    return "\n".join(lines)


@st.composite
def toml_documents(draw: st.DrawFn) -> str:
    """A valid TOML document: tables of sections with keys and values of their type and of
    others, and now and then a section that is a plain value instead of a table."""
    lines = []
    sections = draw(st.lists(section_names, max_size=4, unique=True))
    if draw(st.integers(0, 9)) == 0:
        loose = draw(section_names)
        if loose not in sections:
            lines.append(f"{toml_key(loose)} = {toml_text(draw(toml_values))}")
    for section in sections:
        lines.append(f"[{toml_key(section)}]")
        for key in draw(st.lists(keys_of(section), max_size=4, unique=True)):
            lines.append(f"{toml_key(key)} = {toml_text(draw(value_of(section, key)))}")
    return "\n".join(lines) + "\n"


def settings_or_config_error(
    folder: Path, text: str | None, environ: dict[str, str]
) -> Settings | ConfigError:
    """What the loader makes of ``text`` (as a file) and ``environ``: settings, or a one-line
    ConfigError. Any other exception fails the test."""
    path = None
    if text is not None:
        path = folder / "dfd.toml"
        path.write_text(text, encoding="utf-8")
    try:
        loaded = resolve_settings(path, environ).value
    except ConfigError as error:
        message = str(error)
        assert message.strip(), "an empty error message"
        assert message.isprintable(), message  # one line, no control characters
        return error
    # What `dfd config show` writes loads back to the same settings.
    shown = folder / "shown.toml"
    shown.write_text(settings_toml(loaded), encoding="utf-8")
    assert load_settings(shown, {}) == loaded
    return loaded


FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(text=st.text(CHARACTERS, max_size=200))
def test_fuzz_config_file_of_arbitrary_text(tmp_path: Path, text: str) -> None:
    settings_or_config_error(tmp_path, text, {})


@FUZZ
@given(text=tomlish_text())
def test_fuzz_config_file_of_toml_looking_lines(tmp_path: Path, text: str) -> None:
    settings_or_config_error(tmp_path, text, {})


@FUZZ
@given(text=toml_documents())
def test_fuzz_config_file_of_valid_toml_of_any_shape(tmp_path: Path, text: str) -> None:
    settings_or_config_error(tmp_path, text, {})


@st.composite
def environments(draw: st.DrawFn) -> dict[str, str]:
    """``DFD_SECTION__KEY`` variables, mostly of real settings, with the separator and the case
    varied, and values as text: TOML of the key's type or another, or any text at all."""
    environ = {}
    for _ in range(draw(st.integers(0, 4))):
        section = draw(weighted((12, section_names), (1, st.just(""))))
        key = draw(weighted((12, keys_of(section)), (1, st.just(""))))
        separator = draw(weighted((12, st.just("__")), (1, st.sampled_from(["_", "___", "__x__"]))))
        name = f"DFD_{section}{separator}{key}"
        name = name.upper() if draw(st.booleans()) else name
        environ[name] = draw(
            weighted((6, text_of(section, key)), (1, st.text(CHARACTERS, max_size=30)))
        )
    return environ


@FUZZ
@given(environ=environments())
def test_fuzz_environment_overrides(tmp_path: Path, environ: dict[str, str]) -> None:
    settings_or_config_error(tmp_path, None, environ)


def test_what_the_fuzzing_found_is_refused_in_one_line(tmp_path: Path) -> None:
    """Found by the fuzzing above: `window_s = 1e308` raised OverflowError; nan and inf were
    taken for timeouts and thresholds; a port of Unicode digits was refused without naming the
    key; a name with a line break in it made an error of two lines."""
    cases = {
        "[models]\nhop_s = inf\n": "models.hop_s: expected a finite number, got inf",
        "[models]\nthreshold = nan\n": "models.threshold: expected a finite number, got nan",
        "[models]\nweights = [1.0, -inf]\n": "models.weights: expected a finite number",
        "[models]\nhop_s = 1e308\n": "cannot convert float infinity to integer",
        "[serve]\nmetrics = '127.0.0.1:\u00b2'\n": "serve.metrics must be HOST:PORT",
    }
    for text, message in cases.items():
        error = settings_or_config_error(tmp_path, text, {})
        assert isinstance(error, ConfigError) and message in str(error), (text, error)
        assert f"{tmp_path / 'dfd.toml'}:2" in str(error)
    error = settings_or_config_error(tmp_path, None, {"DFD_SERVE__IDLE_TIMEOUT_S": "nan"})
    assert (
        str(error)
        == "$DFD_SERVE__IDLE_TIMEOUT_S: serve.idle_timeout_s: expected a finite number, got nan"
    )
    error = settings_or_config_error(tmp_path, None, {"DFD_LOGGING__\r": "1"})
    assert str(error).startswith("$DFD_LOGGING__\\r: logging: unknown key(s) \\r (known: ")
    error = settings_or_config_error(tmp_path, '[serve]\n"a\\nb" = 1\n', {})
    assert "serve: unknown key(s) a\\nb (known: " in str(error)


# --- the network sources through their sockets --------------------------------------------


class Collector(CollectingSink):
    def ended(self, call_id: str) -> bool:
        with self.lock:
            return any(isinstance(e, StreamEnded) and e.call_id == call_id for e in self.events)

    def wait_for_end(self, call_id: str, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ended(call_id):
            assert time.monotonic() < deadline, f"{call_id} never ended"
            time.sleep(0.005)

    def audio(self, call_id: str) -> np.ndarray:
        with self.lock:
            chunks = [
                e.samples for e in self.events if isinstance(e, AudioChunk) and e.call_id == call_id
            ]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def source_failures(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Log records of the sources' last-resort handlers: a message that raised something other
    than the parser's own error."""
    return [r for r in logs if r["event"] in ("pcm_ingest_message_failed", "rtp_datagram_failed")]


pcm_messages = st.lists(
    st.one_of(
        st.lists(st.binary(max_size=24), min_size=1, max_size=6),
        st.tuples(
            st.sampled_from([b"call", b"\xff\xfe", b"", b"x" * 300]),
            st.sampled_from([b"0", b"1", b"-1", b"0001", b"\xd9\xa3", b" 1", b""]),
            st.sampled_from([b"0", b"7", b"99999999999999999999", b"+3", b"1e3", b""]),
            st.binary(max_size=40),
        ).map(list),
    ),
    max_size=30,
)
VALID_PCM = (np.arange(20 * 320) % 2000 - 1000).astype("<i2")  # 20 messages of 20 ms at 16 kHz


@settings(max_examples=25, deadline=None)
@given(messages=pcm_messages)
def test_fuzz_pcm_ingest_socket_then_a_valid_call_arrives_whole(
    messages: list[list[bytes]],
) -> None:
    malformed = 0
    for frames in messages:
        try:
            parse_pcm_frames(frames)
        except MalformedFrame:
            malformed += 1
    collector = Collector()
    source = PcmIngestSource("tcp://127.0.0.1:*", idle_timeout_s=30.0)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    push = context.socket(zmq.PUSH)
    with capture_logs() as logs:
        source.start(collector)
        try:
            push.connect(source.endpoint)
            for frames in messages:
                push.send_multipart(frames)
            # One connection keeps its order: when the valid call has ended, all came in.
            for seq, first in enumerate(range(0, len(VALID_PCM), 320)):
                push.send_multipart(
                    [
                        b"fuzz-valid",
                        b"0",
                        str(seq).encode(),
                        VALID_PCM[first : first + 320].tobytes(),
                    ]
                )
            push.send_multipart([b"fuzz-valid", b"0", b"20", b""])
            collector.wait_for_end("fuzz-valid")
        finally:
            push.close(linger=0)
            context.term()
            source.stop()
    np.testing.assert_array_equal(collector.audio("fuzz-valid"), VALID_PCM / np.float32(32768))
    assert source.counters.malformed == malformed
    assert source_failures(logs) == []
    assert {
        "event": "pcm_stream_started",
        "call_id": "fuzz-valid",
        "channel": 0,
        "log_level": "info",
    } in logs


VALID_SSRC = 0x5EED5EED
VALID_PAYLOADS = [bytes((n * 7 + i) % 256 for i in range(160)) for n in range(20)]


@settings(max_examples=25, deadline=None)
@given(
    datagrams=st.lists(st.one_of(st.binary(max_size=200), valid_packets, mutated()), max_size=60)
)
def test_fuzz_rtp_socket_then_a_valid_stream_arrives_whole(datagrams: list[bytes]) -> None:
    unparsable = 0
    for datagram in datagrams:
        if not is_rtcp(datagram):
            try:
                parse_rtp(datagram)
            except MalformedPacket:
                unparsable += 1
    collector = Collector()
    source = RtpSource("127.0.0.1", 0, idle_timeout_s=0.3, payload_formats={96: ("L16", 16000, 1)})
    with capture_logs() as logs:
        source.start(collector)
        try:
            assert source.address is not None
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as fuzzer:
                for datagram in datagrams:
                    fuzzer.sendto(datagram, source.address)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                sender.bind(("127.0.0.1", 0))
                call_id = f"rtp-{VALID_SSRC:08x}@127.0.0.1:{sender.getsockname()[1]}"
                for seq, payload in enumerate(VALID_PAYLOADS):
                    sender.sendto(rtp(seq, seq * 160, payload, ssrc=VALID_SSRC), source.address)
                collector.wait_for_end(call_id)
        finally:
            source.stop()
    sent = decode_payload(b"".join(VALID_PAYLOADS), PayloadFormat("PCMU", 8000))[:, 0]
    np.testing.assert_array_equal(collector.audio(call_id), sent)
    assert source.counters.malformed >= unparsable
    assert source_failures(logs) == []
    assert next(r for r in logs if r.get("call_id") == call_id)["event"] == "rtp_stream_started"
