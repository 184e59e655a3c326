"""G.711 mu-law and A-law, following the ITU-T G.191 reference coder (``g711.c`` of the ITU
Software Tools Library).

Works on 16-bit linear PCM held in any integer array; the encoders return uint8 code words. Like
the reference, negative samples take the one's complement (``~x``) before quantisation; coders
that negate instead (libsndfile, ffmpeg and Sun's g711.c each differ a little) pick the adjacent
code for a few hundred of the 65,536 inputs, all on interval boundaries. The decoders agree
everywhere.
"""

from __future__ import annotations

import numpy as np

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159
_ULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def linear_to_ulaw(pcm: np.ndarray) -> np.ndarray:
    value = np.asarray(pcm, dtype=np.int32)
    mask = np.where(value < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.where(value < 0, ~value, value) >> 2, _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude, side="left")
    code = (np.minimum(segment, 7) << 4) | ((magnitude >> (segment + 1)) & 0xF)
    code = np.where(segment >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def ulaw_to_linear(codes: np.ndarray) -> np.ndarray:
    return _ULAW_DECODE[np.asarray(codes, dtype=np.uint8)]


def linear_to_alaw(pcm: np.ndarray) -> np.ndarray:
    value = np.asarray(pcm, dtype=np.int32)
    negative = value < 0
    mask = np.where(negative, 0x55, 0xD5)
    value = np.where(negative, ~value, value) >> 3
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, value, side="left")
    shift = np.where(segment < 2, 1, segment)
    code = (np.minimum(segment, 7) << 4) | ((value >> shift) & 0xF)
    code = np.where(segment >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def alaw_to_linear(codes: np.ndarray) -> np.ndarray:
    return _ALAW_DECODE[np.asarray(codes, dtype=np.uint8)]


def _ulaw_decode_table() -> np.ndarray:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    magnitude = (((code & 0x0F) << 3) + _ULAW_BIAS) << ((code & 0x70) >> 4)
    return np.where(code & 0x80, _ULAW_BIAS - magnitude, magnitude - _ULAW_BIAS).astype(np.int16)


def _alaw_decode_table() -> np.ndarray:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    mantissa = (code & 0x0F) << 4
    segment = (code & 0x70) >> 4
    magnitude = np.where(
        segment == 0,
        mantissa + 8,
        (mantissa + 0x108) << np.maximum(segment - 1, 0),
    )
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


_ULAW_DECODE = _ulaw_decode_table()
_ALAW_DECODE = _alaw_decode_table()
