"""Build samples/call-8k-ulaw-stereo.wav: a short two-party call in the most common telephony
recording format (8 kHz, G.711 mu-law WAV, one party per channel), from the Asterisk prompts
recorded by Allison Smith (Debian package asterisk-core-sounds-en-g722, CC-BY-SA-3.0).

Run: .venv/bin/python scripts/make_sample_call.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from dfd.dsp.audio_io import load_audio

PROMPTS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
# (channel, prompt) turns: the agent greets and asks, the caller answers.
TURNS = [
    (0, "agent-user"),
    (1, "vm-intro"),
    (0, "please-try-again"),
    (1, "vm-password"),
    (0, "auth-thankyou"),
]
GAP_S = 0.4
RATE = 8_000
OUT = Path(__file__).resolve().parent.parent / "samples" / "call-8k-ulaw-stereo.wav"


def main() -> None:
    tracks: list[list[np.ndarray]] = [[], []]
    for channel, prompt in TURNS:
        speech = load_audio(PROMPTS / f"{prompt}.g722", sample_rate=RATE).samples[0]
        gap = np.zeros(round(GAP_S * RATE), dtype=np.float32)
        tracks[channel] += [speech, gap]
        tracks[1 - channel] += [np.zeros_like(speech), gap]
    call = np.stack([np.concatenate(track) for track in tracks], axis=1)
    soundfile.write(OUT, 0.7 * call / np.abs(call).max(), RATE, subtype="ULAW")
    print(f"wrote {OUT} ({len(call) / RATE:.1f} s)")


if __name__ == "__main__":
    main()
