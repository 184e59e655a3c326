"""Detector families, their ONNX export and the model bundles the daemon loads."""

if __name__ != "dfd.detectors":  # pragma: no cover - only reached when imported by folder name
    raise ImportError(
        f"this folder is the dfd.detectors package; import dfd.detectors, not {__name__}"
    )
