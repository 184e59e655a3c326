"""Import the official AASIST / AASIST-L checkpoints (clovaai/aasist) into ``AasistModel``.

The official files are a plain PyTorch state dict (``AASIST.pth``) and a JSON ``.conf`` whose
``model_config`` holds the hyper-parameters. The state dict is read with ``weights_only=True``:
nothing but tensors is ever unpickled. The model is built from exactly that ``model_config`` and
the weights are loaded strictly; any missing, unexpected or mis-shaped entry is a ``ValueError``
naming it.

An imported model takes the samples the official evaluation code feeds it (float waveforms at
16 kHz, no normalisation; the official code cuts or repeat-pads every trial to ``nb_samp`` =
64,600 samples) and its bona fide logit (index 1) is the official score.
"""

from __future__ import annotations

import json
from pathlib import Path

from dfd.core.typed_config import ConfigError
from dfd.detectors.aasist import AasistConfig, AasistModel
from dfd.detectors.state_dicts import check_state_dict, read_state_dict


def load_official_aasist(
    checkpoint: Path, config: Path | None = None
) -> tuple[AasistConfig, AasistModel]:
    """``(config, model in eval mode)`` from an official checkpoint and its ``.conf`` file.

    Without ``config`` the ``.conf`` file beside the checkpoint with the same stem is used
    (``AASIST.pth`` -> ``AASIST.conf``): the pool ratios and temperatures are not in the weights,
    so they cannot be guessed from them.
    """
    checkpoint = Path(checkpoint)
    config_path = checkpoint.with_suffix(".conf") if config is None else Path(config)
    if not config_path.is_file():
        raise ValueError(
            f"no AASIST config at {config_path}: pass the official .conf file the checkpoint "
            f"was trained with (its pool ratios and temperatures are not stored in the weights)"
        )
    try:
        conf_json = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_path}: not a JSON .conf file ({error})") from error
    if not isinstance(conf_json, dict) or not isinstance(conf_json.get("model_config"), dict):
        raise ValueError(f"{config_path}: no 'model_config' table in this .conf file")
    try:
        aasist_config = AasistConfig.from_official(conf_json)
    except ConfigError as error:
        raise ValueError(f"{config_path}: {error}") from error

    state_dict = read_state_dict(checkpoint)
    model = AasistModel(aasist_config)
    check_state_dict(
        model, state_dict, source=checkpoint, model_name=f"AASIST {aasist_config.to_official()}"
    )
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:  # already checked above; kept as a ValueError all the same
        raise ValueError(f"{checkpoint}: {error}") from error
    return aasist_config, model.eval()
