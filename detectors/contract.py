"""What an exported detector graph promises, in names and types that need no torch.

The model-card loader (``bundle``) and the ONNX Runtime wrapper (``runtime``) read these; so does
the exporter, which writes graphs that keep them. Kept apart from the torch modules so that
processes which only run ONNX graphs never import torch.
"""

from __future__ import annotations

from typing import Literal

INPUT_NAME = "features"  # the graph's one input: the front end's features for a batch of windows
BATCH_AXIS = "batch"  # the name of its dynamic first axis

# The losses a family may declare; dfd.trainers.losses builds them (the names live here so that
# the model layer never imports the trainers).
LossName = Literal["bce", "focal", "cross_entropy", "contrastive"]
LOSS_NAMES: tuple[LossName, ...] = ("bce", "focal", "cross_entropy", "contrastive")

OutputConvention = Literal["spoof_logit", "class_logits", "spoof_score"]
"""How to read a detector's raw output (before calibration):

``spoof_logit``
    ``(batch,)``: one logit, higher = more likely spoof; ``sigmoid`` gives P(spoof) before
    calibration. Trained with binary cross-entropy (or focal loss) against label 1 = spoof.
``class_logits``
    ``(batch, 2)``: class logits, trained with cross-entropy; which index is spoof is the
    family's ``spoof_index``, written in the graph's metadata and on the card (dfd's own
    families: 1; AASIST, as the official checkpoints are: 0, with the bona fide logit at 1).
    ``logits[:, spoof] - logits[:, bona fide]`` is the equivalent spoof logit.
``spoof_score``
    ``(batch,)``: an unbounded score, higher = more likely spoof, that is not a logit (a
    difference of embedding distances); calibration maps it to P(spoof).
"""
