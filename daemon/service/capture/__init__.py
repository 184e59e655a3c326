"""Capture sources: live audio in, per-call PCM chunks out (sounddevice, RTP, ZeroMQ PCM, WAV)."""

if __name__ != "dfd.daemon.service.capture":  # pragma: no cover - only when imported by folder name
    raise ImportError(f"this is dfd.daemon.service.capture, not {__name__}")
