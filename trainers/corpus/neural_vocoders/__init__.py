"""Three small in-house neural vocoders for copy-synthesis spoofs: HiFi-GAN-style, Vocos-style and
neural source-filter, trained here on the corpus's bona fide training prompts only (see
``train.py``), weights committed in ``weights/``.

:data:`NEURAL_VOCODERS` has the same ``Vocoder`` contract as ``vocoders.VOCODERS``.
"""

from __future__ import annotations

from dfd.trainers.corpus.neural_vocoders.synthesis import (
    hifigan_resynthesis,
    nsf_resynthesis,
    vocos_resynthesis,
)
from dfd.trainers.corpus.vocoders import Vocoder

NEURAL_VOCODERS: dict[str, Vocoder] = {
    "hifigan": hifigan_resynthesis,
    "vocos": vocos_resynthesis,
    "nsf": nsf_resynthesis,
}

__all__ = ["NEURAL_VOCODERS"]
