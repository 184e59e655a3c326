"""Shared building blocks with no dependency on the rest of dfd: typed, validated configuration."""

if __name__ != "dfd.core":  # pragma: no cover - only reached when imported by folder name
    raise ImportError(f"this folder is the dfd.core package; import dfd.core, not {__name__}")
