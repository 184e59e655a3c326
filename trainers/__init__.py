"""Trainers that build the model bundles from a corpus protocol."""

if __name__ != "dfd.trainers":  # pragma: no cover - only reached when imported by folder name
    raise ImportError(
        f"this folder is the dfd.trainers package; import dfd.trainers, not {__name__}"
    )
