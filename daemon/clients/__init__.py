"""Clients of a running daemon: ``dfd subscribe`` (the alert topic) and ``dfd status``."""

if __name__ != "dfd.daemon.clients":  # pragma: no cover - only when imported by folder name
    raise ImportError(f"this is dfd.daemon.clients, not {__name__}")
