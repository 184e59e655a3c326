"""The audit (``dfd replay``): recordings through the engine, and the report and plot of each."""

if __name__ != "dfd.daemon.audit":  # pragma: no cover - only when imported by folder name
    raise ImportError(f"this is dfd.daemon.audit, not {__name__}")
