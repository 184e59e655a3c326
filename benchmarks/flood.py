"""A real call beside a flood of hostile streams, against the real daemon; writes docs/flood.md.

``dfd serve`` receives RTP on 127.0.0.1 (PCMU, as a call centre's SBC forks it). ffmpeg sends the
demo call (human, then a synthetic voice from 8.9 s) at real-time pace; one second in, another
process floods the same port with ``--ssrcs`` one-packet streams (PCMU, distinct SSRCs and
ports) and ``--l16`` one-packet streams of the static L16 44.1 kHz payload type, then pushes
``--call-ids`` call ids with one message each to the daemon's PCM ingest. Measured: when the
real call's alert comes (from the start of the call), its verdict, the daemon's counters, and
its memory (VmRSS from /proc) before the flood, at the end of the call and 10 s later. Run once
with the default limits and once with them lifted, as the daemon was before them.

    python benchmarks/flood.py [--ssrcs 5000] [--l16 1000] [--call-ids 5000] \\
        [--out docs/flood.md]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import zmq

REPO = Path(__file__).resolve().parent.parent
DFD = str(Path(sys.executable).with_name("dfd"))
CALL = REPO / "samples" / "call-bonafide-then-synthetic-8k-ulaw.wav"
TURN_S = 8.9


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def flood(port: int, ssrcs: int, l16: int) -> float:
    """One packet per SSRC, each from its own socket (port); returns the seconds it took."""
    started = time.monotonic()
    pcmu = b"\xff" * 160
    l16_payload = bytes(882)  # 10 ms of 44.1 kHz mono
    for number in range(ssrcs + l16):
        payload_type, payload = (0, pcmu) if number < ssrcs else (11, l16_payload)
        packet = struct.pack("!BBHII", 0x80, payload_type, 1, 0, 0x10000000 + number) + payload
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(packet, ("127.0.0.1", port))
    return time.monotonic() - started


# The limits lifted, as the daemon was before them (issue 18's measurements).
WITHOUT_LIMITS = """
max_streams = 1000000
max_streams_per_sender = 1000000
new_streams_per_s = 1000000.0
new_streams_burst = 1000000
rtp_payloads = ["10=L16/44100/2", "11=L16/44100"]
[pipeline]
max_queued_windows = 1000000
min_stream_s = 0.0
"""


def pcm_flood(endpoint: str, call_ids: int) -> None:
    """One message for each of ``call_ids`` call ids over the PCM ingest."""
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.connect(endpoint)
    for number in range(call_ids):
        push.send_multipart([f"flood-{number}".encode(), b"0", b"0", bytes(640)])
    push.close(linger=5000)
    context.term()


def run(ffmpeg: str, ssrcs: int, l16: int, call_ids: int, extra: str) -> dict[str, str]:
    """One daemon, one call, one flood: the figures of the table."""
    folder = Path(tempfile.mkdtemp(prefix="dfd-flood-"))
    config = folder / "dfd.toml"
    config.write_text(
        f'[logging]\nformat = "json"\n[serve]\nstate_directory = "{folder}"\n'
        f'status_interval_s = 1.0\nmetrics = ""\n{extra}',
        encoding="utf-8",
    )
    port, pub = free_port(), f"tcp://127.0.0.1:{free_port()}"
    pcm = f"tcp://127.0.0.1:{free_port()}"
    daemon = subprocess.Popen(
        [
            DFD,
            "--config",
            str(config),
            "serve",
            "--rtp",
            f"127.0.0.1:{port}",
            "--pub",
            pub,
            "--pcm",
            pcm,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log_lines: list[dict[str, Any]] = []

    def read_log() -> None:
        assert daemon.stderr is not None
        for line in daemon.stderr:
            with contextlib.suppress(ValueError):
                log_lines.append(json.loads(line))

    threading.Thread(target=read_log, daemon=True).start()
    while not any(r.get("event") == "serving" for r in log_lines):
        if daemon.poll() is not None:
            raise SystemExit(f"dfd serve exited: {daemon.returncode}")
        time.sleep(0.1)
    context = zmq.Context()
    subscriber = context.socket(zmq.SUB)
    subscriber.connect(pub)
    subscriber.setsockopt(zmq.SUBSCRIBE, b"")
    time.sleep(1.0)
    before = rss_mb(daemon.pid)

    events: list[tuple[float, str, dict[str, Any]]] = []

    def receive() -> None:
        while True:
            try:
                topic, body = subscriber.recv_multipart()
            except zmq.ZMQError:
                return
            events.append((time.monotonic(), topic.decode(), json.loads(body)))

    threading.Thread(target=receive, daemon=True).start()
    call_started = time.monotonic()
    sender = subprocess.Popen(
        [ffmpeg, "-nostdin", "-v", "error", "-re", "-i", str(CALL), "-c:a", "pcm_mulaw",
         "-ar", "8000", "-ac", "1", "-f", "rtp", f"rtp://127.0.0.1:{port}?pkt_size=172"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)
    flood_s = flood(port, ssrcs, l16)
    pcm_flood(pcm, call_ids)
    sender.wait()
    call_s = time.monotonic() - call_started
    time.sleep(7.0)  # the idle timeout (5 s) ends the call and the flood's streams
    at_end = rss_mb(daemon.pid)
    time.sleep(10.0)
    later = rss_mb(daemon.pid)
    statuses = [body for _, topic, body in events if topic == "status"]
    daemon.terminate()
    daemon.wait(30)
    subscriber.close(linger=0)
    context.term()
    shutil.rmtree(folder, ignore_errors=True)

    flood_ids = {f"{0x10000000 + n:08x}" for n in range(ssrcs + l16)}
    real = [
        (at, topic, body)
        for at, topic, body in events
        if topic != "status"
        and body.get("call_id", "")[4:12] not in flood_ids
        and not body.get("call_id", "").startswith("flood-")
    ]
    alerts = [(at, body) for at, topic, body in real if topic == "alert.raised"]
    ended = [body for _, topic, body in real if topic == "call.ended"]
    started = sum(1 for _, topic, _ in events if topic == "call.started")
    refused = sum(1 for r in log_lines if r.get("event", "").endswith("_stream_refused"))
    first_alert = f"{alerts[0][0] - call_started:.1f} s" if alerts else "none"
    return {
        "flood sent in": f"{flood_s:.2f} s",
        "streams started (`call.started` events), flood and call": str(started),
        "refusal warnings logged (at most one per 10 s and source)": str(refused),
        "the real call's alert, from the start of the call": first_alert,
        "the real call's verdict": ended[0]["verdict"] if ended else "no call.ended",
        "the call's audio sent in": f"{call_s:.1f} s",
        "most windows waiting (status `queue_depth`)": str(
            max((s["queue_depth"] for s in statuses), default=0)
        ),
        "windows dropped (status `dropped_windows`, at the end)": (
            str(statuses[-1]["dropped_windows"]) if statuses else "-"
        ),
        "daemon RSS before / after the call / 10 s later": (
            f"{before:.0f} / {at_end:.0f} / {later:.0f} MB"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ssrcs", type=int, default=5000)
    parser.add_argument("--l16", type=int, default=1000)
    parser.add_argument("--call-ids", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "flood.md")
    args = parser.parse_args()
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("ffmpeg is needed (scripts/setup.sh installs it)")
    limited = run(ffmpeg, args.ssrcs, args.l16, args.call_ids, "")
    unlimited = run(ffmpeg, args.ssrcs, args.l16, args.call_ids, WITHOUT_LIMITS)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "# A real call beside a flood of hostile streams",
        "",
        f"Generated by `python benchmarks/flood.py --ssrcs {args.ssrcs} --l16 {args.l16} "
        f"--call-ids {args.call_ids}` on "
        f"{platform.node()} ({os.cpu_count()} cores), {when}: the real `dfd serve` with the "
        "embedded default model, RTP on 127.0.0.1. ffmpeg sends the demo call (human, synthetic "
        f"from 8.9 s) at real-time pace; 1 s in, {args.ssrcs} one-packet PCMU streams and "
        f"{args.l16} one-packet L16 44.1 kHz streams are sent from distinct ports, then "
        f"{args.call_ids} call ids with one message each to the PCM ingest. With the "
        'default limits (docs/reliability.md, "Floods"), and with them lifted as the daemon was '
        "before them (streams unlimited, static L16 accepted, no global window bound, no minimum "
        "stream length).",
        "",
        "| measure | default limits | limits lifted |",
        "| --- | ---: | ---: |",
        *(f"| {key} | {limited[key]} | {unlimited[key]} |" for key in limited),
        "",
    ]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
