"""The dfd application: command line, configuration, logging, and (later) capture and alerts."""

if __name__ != "dfd.daemon":  # pragma: no cover - only reached when imported by folder name
    raise ImportError(f"this folder is the dfd.daemon package; import dfd.daemon, not {__name__}")
