"""What an exported detector graph promises, in names and types that need no torch.

The model-card loader (``bundle``) and the ONNX Runtime wrapper (``runtime``) read these; so does
the exporter, which writes graphs that keep them. Kept apart from the torch modules so that
processes which only run ONNX graphs never import torch.
"""

from __future__ import annotations

from typing import Literal, Protocol, Self, TypeVar

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


class _Indexable(Protocol):
    """A numpy array or a torch tensor: both take ``[:, i]`` and subtract."""

    def __getitem__(self, key: tuple[slice, int]) -> Self: ...

    def __sub__(self, other: Self) -> Self: ...


Outputs = TypeVar("Outputs", bound=_Indexable)


def spoof_direction(outputs: Outputs, spoof_index: int | None) -> Outputs:
    """The raw spoof-direction value of a detector's output, higher = more likely spoof: class
    logits ``(batch, 2)`` become ``logits[:, spoof] - logits[:, bona fide]`` (the spoof log-odds);
    a one-value output (``spoof_index`` None) is already one. For numpy arrays (the daemon, the
    model card) and torch tensors (training) alike."""
    if spoof_index is None:
        return outputs
    return outputs[:, spoof_index] - outputs[:, 1 - spoof_index]


def graph_metadata(
    family: str,
    frontend_json: str,
    output: OutputConvention,
    output_name: str,
    spoof_index: int | None,
) -> dict[str, str]:
    """The contract an exported graph carries in its ONNX ``metadata_props``: the exporter
    writes it (``DetectorFamily.metadata``), the bundle loader checks it against the card."""
    entries = {
        "dfd.family": family,
        "dfd.frontend": frontend_json,
        "dfd.output": output,
        "dfd.output_name": output_name,
    }
    if spoof_index is not None:
        entries["dfd.spoof_index"] = str(spoof_index)
    return entries
