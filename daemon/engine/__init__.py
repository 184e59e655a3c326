"""The streaming engine: per-call streams, speech gate, decisions, features, scorers, the worker
pool and the pipeline. No sockets, no signals: ``dfd serve`` and ``dfd replay`` both drive it."""

if __name__ != "dfd.daemon.engine":  # pragma: no cover - only when imported by folder name
    raise ImportError(f"this is dfd.daemon.engine, not {__name__}")
