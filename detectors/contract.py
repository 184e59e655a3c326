"""What an exported detector graph promises, in names and types that need no torch.

The model-card loader (``bundle``) and the ONNX Runtime wrapper (``runtime``) read these; so does
the exporter, which writes graphs that keep them. Kept apart from the torch modules so that
processes which only run ONNX graphs never import torch.
"""

from __future__ import annotations

from typing import Literal

INPUT_NAME = "features"  # the graph's one input: the front end's features for a batch of windows
BATCH_AXIS = "batch"  # the name of its dynamic first axis

OutputConvention = Literal["spoof_logit", "class_logits", "spoof_score"]
"""How to read a detector's raw output (before calibration):

``spoof_logit``
    ``(batch,)``: one logit, higher = more likely spoof; ``sigmoid`` gives P(spoof) before
    calibration. Trained with binary cross-entropy (or focal loss) against label 1 = spoof.
``class_logits``
    ``(batch, 2)``: class logits, index 0 = bona fide, index 1 = spoof; trained with
    cross-entropy. ``logits[:, 1] - logits[:, 0]`` is the equivalent spoof logit.
``spoof_score``
    ``(batch,)``: an unbounded score, higher = more likely spoof, that is not a logit (a
    difference of embedding distances); calibration maps it to P(spoof).
"""
