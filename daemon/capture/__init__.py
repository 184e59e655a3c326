"""Capture sources: live audio in, per-call PCM chunks out (sounddevice, RTP, ZeroMQ PCM, WAV)."""

if __name__ != "dfd.daemon.capture":  # pragma: no cover - only reached when imported by folder name
    raise ImportError(
        f"this folder is the dfd.daemon.capture package; import dfd.daemon.capture, not {__name__}"
    )
