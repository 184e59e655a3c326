"""Bundle the official AASIST / AASIST-L checkpoints (clovaai/aasist) for the daemon.

The bundle's graph is the imported model's back end at the official input length, 64,600
samples (4.0375 s at 16 kHz; the graph's time axis is fixed, see ``export_aasist_onnx``), on the
fixed sinc front end the card names. The hop is 1.0 s: every second of a call is covered by four
overlapping windows, one scored window per second and channel.

The output stays the official one: class logits with spoof at index 0 and bona fide at index 1.
The official ASVspoof score is the bona fide logit, ``logits[:, 1]``
(``Bundle.official_score``); the bundle's raw spoof-direction value is
``logits[:, 0] - logits[:, 1]``. The bundle is not calibrated on telephone speech
(``calibrated: false``, no thresholds).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from dfd.detectors.aasist import AASIST_L, BONAFIDE_INDEX, export_aasist_onnx
from dfd.detectors.aasist_import import load_official_aasist
from dfd.detectors.bundle import (
    CARD_NAME,
    BundleError,
    Metrics,
    ModelWindow,
    Training,
    new_card,
    sha256_file,
    write_bundle,
)
from dfd.detectors.registry import family

HOP_S = 1.0
DEFAULT_VERSION = "official-1"

# The figures published with the checkpoints (ASVspoof 2019 LA eval), by the files' sha256.
PUBLISHED_EVAL = {
    "51d2d9cf0738172f61e2a384ec50a54a55363240f67c971ed55a92435bc1a1c0": ("AASIST", 0.0083, 0.0275),
    "814331d088032bb4c3fa61cc014789eadeed464209dd094ab3a2dd6ffbdce27a": (
        "AASIST-L",
        0.0099,
        0.0309,
    ),
}


def import_aasist(
    checkpoint: Path,
    out: Path,
    config: Path | None = None,
    version: str = DEFAULT_VERSION,
    *,
    overwrite: bool = False,
) -> Path:
    """Write a bundle of an official checkpoint into ``out``; return ``out``.

    ``config`` is the official ``.conf`` file (default: beside the checkpoint, same stem). The
    family is ``aasist-l`` for the AASIST-L hyper-parameters and ``aasist`` otherwise.
    """
    import onnx

    checkpoint, out = Path(checkpoint), Path(out)
    if (out / CARD_NAME).exists() and not overwrite:  # before the slow export
        raise BundleError(f"{out}: already holds a bundle ({CARD_NAME}); pass overwrite")
    aasist_config, model = load_official_aasist(checkpoint, config)
    entry = family("aasist-l" if aasist_config == AASIST_L else "aasist")
    checkpoint_sha256 = sha256_file(checkpoint)
    published = PUBLISHED_EVAL.get(checkpoint_sha256)
    card = new_card(
        entry,
        version=version,
        window=ModelWindow.of(aasist_config.nb_samp, HOP_S),
        config=aasist_config,
        training=Training(
            config={
                "source": "clovaai/aasist official checkpoint (Jung et al., ICASSP 2022)",
                "trained_on": "ASVspoof 2019 LA train",
                "checkpoint": checkpoint.name,
                "checkpoint_sha256": checkpoint_sha256,
                "model_config": aasist_config.to_official(),
            }
        ),
        metrics=Metrics(eval=_published_metrics(published) if published else None),
        labels_note=(
            f"Official ASVspoof score = the bona fide logit = logits[:, {BONAFIDE_INDEX}] "
            f"(Bundle.official_score); the official model is uncalibrated here."
        ),
    )
    with tempfile.TemporaryDirectory(prefix="dfd-aasist-") as scratch:
        path = export_aasist_onnx(model, Path(scratch) / "model.onnx", aasist_config.nb_samp)
        proto = onnx.load(str(path))
        present = {prop.key for prop in proto.metadata_props}
        for key, value in entry.metadata(aasist_config).items():
            if key not in present:
                prop = proto.metadata_props.add()
                prop.key, prop.value = key, value
        return write_bundle(out, proto.SerializeToString(), card, overwrite=overwrite)


def _published_metrics(published: tuple[str, float, float]) -> dict[str, Any]:
    variant, eer, min_tdcf = published
    return {
        "dataset": "ASVspoof 2019 LA eval",
        "eer": eer,
        "min_tdcf": min_tdcf,
        "source": f"published with the official {variant} checkpoint, not measured by dfd",
    }
