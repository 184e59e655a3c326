"""The telephone network between the talker's device and the listener: a route through the
300-3400 Hz band, a speech codec, packet loss, or a resampling chain.

G.711 is coded in process (:mod:`dfd.dsp.g711`); G.722, G.726, GSM and Opus go through the real
ffmpeg encoders, batched by :func:`dfd.trainers.corpus.codecs.codec_round_trip`, so a batch of
any size costs two ffmpeg processes per distinct codec. AMR-NB is left out: this ffmpeg has no
AMR encoder (``ffmpeg -encoders | grep -i amr`` is empty).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dfd.dsp.audio_io import PIPELINE_SAMPLE_RATE, resample
from dfd.dsp.channel import LossFill, band_limit, g711_round_trip, packet_loss
from dfd.trainers.corpus.codecs import CODEC_CONDITIONS, CodecCondition, codec_round_trip

NARROWBAND_RATE = 8_000
PHONE_LOW_HZ = 300.0
PHONE_HIGH_HZ = 3400.0
PACKET_MS = 20.0

G711_ROUTES = ("alaw", "mulaw")
NARROWBAND_FFMPEG_ROUTES = ("g726", "gsm")
WIDEBAND_FFMPEG_ROUTES = ("g722", "opus")
RESAMPLING_CHAINS: dict[str, tuple[int, ...]] = {
    "resample8k": (8_000,),  # 16 -> 8 -> 16 kHz
    "resample11k": (11_025,),  # an old sound card's rate
    "resample44k": (44_100,),  # a CD-rate round trip
}
BAND = "band"
PHONE_ROUTES: tuple[str, ...] = (
    BAND,
    *G711_ROUTES,
    *NARROWBAND_FFMPEG_ROUTES,
    *WIDEBAND_FFMPEG_ROUTES,
    *sorted(RESAMPLING_CHAINS),
)
PACKET_ROUTES: tuple[str, ...] = (*G711_ROUTES, *NARROWBAND_FFMPEG_ROUTES, *WIDEBAND_FFMPEG_ROUTES)
OPUS_BITRATES_KBPS: tuple[int, ...] = (6, 8, 10, 12)

G726 = CodecCondition(
    "g726",
    "G.726 ADPCM 32 kbit/s, 8 kHz",
    ("-ar", "8000", "-c:a", "g726", "-b:a", "32k", "-f", "wav"),
)


def opus_codec(bitrate_kbps: int) -> CodecCondition:
    return CodecCondition(
        f"opus{bitrate_kbps}",
        f"Opus {bitrate_kbps} kbit/s VoIP, 16 kHz",
        (
            "-ar", "16000", "-c:a", "libopus", "-b:a", f"{bitrate_kbps}k",
            "-application", "voip", "-f", "ogg",
        ),
    )  # fmt: skip


def ffmpeg_codec(route: str, bitrate_kbps: int | None) -> CodecCondition | None:
    """The ffmpeg round trip a route needs, ``None`` for routes coded in process."""
    if route == "opus":
        if bitrate_kbps not in OPUS_BITRATES_KBPS:
            raise ValueError(f"opus needs a bitrate among {OPUS_BITRATES_KBPS}, got {bitrate_kbps}")
        return opus_codec(bitrate_kbps)
    if route == "g726":
        return G726
    if route in ("gsm", "g722"):
        return CODEC_CONDITIONS[route]
    return None


def before_codec(samples: np.ndarray, route: str) -> np.ndarray:
    """Everything a route does before its ffmpeg codec, or all of it for in-process routes."""
    if route not in PHONE_ROUTES:
        raise ValueError(f"unknown phone route {route!r}; known: {', '.join(PHONE_ROUTES)}")
    rate = PIPELINE_SAMPLE_RATE
    if route in RESAMPLING_CHAINS:
        out = samples
        for via in RESAMPLING_CHAINS[route]:
            out = _fit(resample(resample(out, rate, via), via, rate), len(samples))
        return out
    if route in WIDEBAND_FFMPEG_ROUTES:
        return np.asarray(samples, dtype=np.float32)
    narrowband = band_limit(
        resample(samples, rate, NARROWBAND_RATE), NARROWBAND_RATE, PHONE_LOW_HZ, PHONE_HIGH_HZ
    )
    if route in G711_ROUTES:
        narrowband = g711_round_trip(
            narrowband, NARROWBAND_RATE, "mulaw" if route == "mulaw" else "alaw"
        )
    return _fit(resample(narrowband, NARROWBAND_RATE, rate), len(samples))


def run_codecs(
    segments: Sequence[np.ndarray], codecs: Sequence[CodecCondition | None]
) -> list[np.ndarray]:
    """Each segment through its codec (``None``: unchanged); one ffmpeg round trip per codec."""
    out = [np.asarray(s, dtype=np.float32) for s in segments]
    groups: dict[str, list[int]] = {}
    by_name: dict[str, CodecCondition] = {}
    for index, codec in enumerate(codecs):
        if codec is not None:
            groups.setdefault(codec.name, []).append(index)
            by_name[codec.name] = codec
    for name in sorted(groups):
        members = groups[name]
        coded = codec_round_trip([out[i] for i in members], by_name[name])
        for index, samples in zip(members, coded, strict=True):
            out[index] = samples.astype(np.float32)
    return out


def after_codec(
    samples: np.ndarray, route: str, loss_rate: float, rng: np.random.Generator
) -> np.ndarray:
    """Packet loss in the network: 20 ms packets dropped; G.711 lines leave silence, the other
    codecs' concealment repeats the last packet.

    A narrowband ffmpeg codec's output first passes through 8 kHz again: ffmpeg's default
    resampler, which brings it back to 16 kHz, leaves images above 4 kHz at only -37 dB."""
    if route in NARROWBAND_FFMPEG_ROUTES:
        rate = PIPELINE_SAMPLE_RATE
        samples = _fit(
            resample(resample(samples, rate, NARROWBAND_RATE), NARROWBAND_RATE, rate), len(samples)
        )
    if loss_rate == 0.0:
        return samples
    if route not in PACKET_ROUTES:
        raise ValueError(f"route {route!r} carries no packets to lose")
    fill: LossFill = "zero" if route in G711_ROUTES else "repeat"
    return packet_loss(samples, PIPELINE_SAMPLE_RATE, loss_rate, rng, PACKET_MS, fill)


def _fit(samples: np.ndarray, length: int) -> np.ndarray:
    if len(samples) >= length:
        return np.asarray(samples[:length], dtype=np.float32)
    return np.pad(samples, (0, length - len(samples))).astype(np.float32)
