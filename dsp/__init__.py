"""DSP stage: audio input, the streaming window framer, batched front ends, channel simulation."""

if __name__ != "dfd.dsp":  # pragma: no cover - only reached when imported by folder name
    raise ImportError(f"this folder is the dfd.dsp package; import dfd.dsp, not {__name__}")
