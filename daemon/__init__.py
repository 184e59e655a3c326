"""The dfd application: the engine, the service, the audit, clients and the command line; the
settings and logging they share."""

if __name__ != "dfd.daemon":  # pragma: no cover - only reached when imported by folder name
    raise ImportError(f"this folder is the dfd.daemon package; import dfd.daemon, not {__name__}")
