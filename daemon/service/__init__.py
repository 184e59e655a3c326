"""The service (``dfd serve``): the daemon loop, signals and reload, capture sources, the event bus,
sd_notify, metrics and CurveZMQ keys."""

if __name__ != "dfd.daemon.service":  # pragma: no cover - only when imported by folder name
    raise ImportError(f"this is dfd.daemon.service, not {__name__}")
