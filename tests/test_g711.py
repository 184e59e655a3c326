"""G.711 coders against independent references: libsndfile (through soundfile), the ffmpeg binary,
a scalar port of the ITU-T G.191 reference coder, and the code words the Recommendation fixes."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Callable

import numpy as np
import pytest
import soundfile

from dfd.dsp import g711

Encoder = Callable[[np.ndarray], np.ndarray]
Decoder = Callable[[np.ndarray], np.ndarray]

ALL_CODES = np.arange(256, dtype=np.uint8)
ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)

# (encoder, decoder, libsndfile subtype, ffmpeg format)
LAWS = [
    pytest.param(g711.linear_to_ulaw, g711.ulaw_to_linear, "ULAW", "mulaw", id="mulaw"),
    pytest.param(g711.linear_to_alaw, g711.alaw_to_linear, "ALAW", "alaw", id="alaw"),
]


def _sndfile_decode(codes: np.ndarray, subtype: str) -> np.ndarray:
    data, _ = soundfile.read(
        io.BytesIO(codes.astype(np.uint8).tobytes()),
        format="RAW",
        subtype=subtype,
        samplerate=8000,
        channels=1,
        dtype="int16",
    )
    return data


def _sndfile_encode(pcm: np.ndarray, subtype: str) -> np.ndarray:
    buffer = io.BytesIO()
    soundfile.write(buffer, pcm.astype(np.int16), 8000, format="RAW", subtype=subtype)
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


def _ffmpeg(args: list[str], data: bytes) -> bytes:
    executable = shutil.which("ffmpeg")
    assert executable, "the ffmpeg binary is a test dependency (apt-get install ffmpeg)"
    command = [executable, "-nostdin", "-v", "error", *args]
    return subprocess.run(command, input=data, capture_output=True, check=True).stdout


def _level_index(decode: Decoder, codes: np.ndarray) -> np.ndarray:
    """Position of each code's decoded level in the sorted set of distinct decoded levels."""
    levels = np.unique(decode(ALL_CODES).astype(np.int32))
    return np.searchsorted(levels, decode(codes).astype(np.int32))


def _g191_ulaw_compress(sample: int) -> int:
    """ulaw_compress of the ITU-T G.191 Software Tools Library (g711.c), one sample at a time."""
    absno = ((~sample) >> 2) + 33 if sample < 0 else (sample >> 2) + 33
    absno = min(absno, 0x1FFF)
    segno, i = 1, absno >> 6
    while i:
        segno += 1
        i >>= 1
    code = ((8 - segno) << 4) | (0xF - ((absno >> segno) & 0xF))
    return code | 0x80 if sample >= 0 else code


def _g191_alaw_compress(sample: int) -> int:
    """alaw_compress of the ITU-T G.191 Software Tools Library (g711.c), one sample at a time."""
    ix = (~sample) >> 4 if sample < 0 else sample >> 4
    if ix > 15:
        exponent = 1
        while ix > 31:
            ix >>= 1
            exponent += 1
        ix = ix - 16 + (exponent << 4)
    if sample >= 0:
        ix |= 0x80
    return ix ^ 0x55


@pytest.mark.parametrize(("encode", "decode", "subtype", "ffmpeg_format"), LAWS)
def test_decoder_is_bit_exact_with_libsndfile(
    encode: Encoder, decode: Decoder, subtype: str, ffmpeg_format: str
) -> None:
    expected = _sndfile_decode(ALL_CODES, subtype)
    decoded = decode(ALL_CODES)
    assert decoded.dtype == np.int16
    np.testing.assert_array_equal(decoded, expected)


@pytest.mark.parametrize(("encode", "decode", "subtype", "ffmpeg_format"), LAWS)
def test_decoder_is_bit_exact_with_ffmpeg(
    encode: Encoder, decode: Decoder, subtype: str, ffmpeg_format: str
) -> None:
    args = ["-f", ffmpeg_format, "-ar", "8000", "-ac", "1", "-i", "-", "-f", "s16le", "-"]
    expected = np.frombuffer(_ffmpeg(args, ALL_CODES.tobytes()), dtype="<i2")
    np.testing.assert_array_equal(decode(ALL_CODES), expected)


def test_decoders_accept_any_shape_and_integer_dtype() -> None:
    codes = ALL_CODES.reshape(4, 64).astype(np.int64)
    for decode in (g711.ulaw_to_linear, g711.alaw_to_linear):
        decoded = decode(codes)
        assert decoded.shape == (4, 64)
        np.testing.assert_array_equal(decoded.ravel(), decode(ALL_CODES))


@pytest.mark.parametrize(
    ("encode", "reference"),
    [
        pytest.param(g711.linear_to_ulaw, _g191_ulaw_compress, id="mulaw"),
        pytest.param(g711.linear_to_alaw, _g191_alaw_compress, id="alaw"),
    ],
)
def test_encoder_is_bit_exact_with_g191_reference(
    encode: Encoder, reference: Callable[[int], int]
) -> None:
    expected = np.array([reference(int(x)) for x in ALL_PCM], dtype=np.uint8)
    encoded = encode(ALL_PCM)
    assert encoded.dtype == np.uint8
    assert encoded.shape == ALL_PCM.shape
    np.testing.assert_array_equal(encoded, expected)


@pytest.mark.parametrize(("encode", "decode", "subtype", "ffmpeg_format"), LAWS)
def test_encoder_agrees_with_libsndfile_up_to_boundary_ties(
    encode: Encoder, decode: Decoder, subtype: str, ffmpeg_format: str
) -> None:
    reference = _sndfile_encode(ALL_PCM, subtype)
    encoded = encode(ALL_PCM)
    assert reference.shape == encoded.shape == ALL_PCM.shape
    differ = encoded != reference
    # Measured: 127 of 65,536 inputs per law (0.19 %), all on the negative side.
    assert differ.sum() <= 0.005 * ALL_PCM.size
    # Every disagreement picks the neighbouring quantisation level, never a farther one.
    steps = np.abs(_level_index(decode, encoded[differ]) - _level_index(decode, reference[differ]))
    np.testing.assert_array_equal(steps, 1)
    # The two coders quantise equally well overall (measured: 172.99 vs 173.00 for mu-law,
    # 170.69 vs 170.70 for A-law, in 16-bit units).
    ours = np.mean(np.abs(decode(encoded).astype(np.int64) - ALL_PCM))
    theirs = np.mean(np.abs(decode(reference).astype(np.int64) - ALL_PCM))
    assert ours == pytest.approx(theirs, abs=0.1)


@pytest.mark.parametrize(("encode", "decode", "subtype", "ffmpeg_format"), LAWS)
def test_encoder_agrees_with_ffmpeg_up_to_adjacent_codes(
    encode: Encoder, decode: Decoder, subtype: str, ffmpeg_format: str
) -> None:
    args = ["-f", "s16le", "-ar", "8000", "-ac", "1", "-i", "-"]
    args += ["-f", ffmpeg_format, "-c:a", f"pcm_{ffmpeg_format}", "-"]
    reference = np.frombuffer(_ffmpeg(args, ALL_PCM.astype("<i2").tobytes()), dtype=np.uint8)
    encoded = encode(ALL_PCM)
    assert reference.shape == encoded.shape
    differ = encoded != reference
    # Measured with ffmpeg 5.1: 964 of 65,536 inputs (1.5 %) per law; ffmpeg rounds differently.
    assert differ.sum() <= 0.02 * ALL_PCM.size
    steps = np.abs(_level_index(decode, encoded[differ]) - _level_index(decode, reference[differ]))
    np.testing.assert_array_equal(steps, 1)


@pytest.mark.parametrize(("encode", "decode", "subtype", "ffmpeg_format"), LAWS)
def test_every_input_lies_between_the_neighbours_of_its_level(
    encode: Encoder, decode: Decoder, subtype: str, ffmpeg_format: str
) -> None:
    """Each input is coded as a level whose neighbours bracket it (G.711 decision intervals are
    not all centred on their levels at segment edges, so "nearest level" would be too strict)."""
    levels = np.unique(decode(ALL_CODES).astype(np.int64))
    index = np.searchsorted(levels, decode(encode(ALL_PCM)).astype(np.int64))
    below = levels[np.maximum(index - 1, 0)]
    above = levels[np.minimum(index + 1, levels.size - 1)]
    pcm = ALL_PCM.astype(np.int64)
    inside = (below <= pcm) & (pcm <= above)
    beyond_range = (pcm < levels[0]) | (pcm > levels[-1])
    assert np.all(inside | beyond_range)
    # Beyond the outermost levels the coder saturates to them.
    np.testing.assert_array_equal(decode(encode(ALL_PCM[pcm > levels[-1]])), levels[-1])
    np.testing.assert_array_equal(decode(encode(ALL_PCM[pcm < levels[0]])), levels[0])


@pytest.mark.parametrize(
    ("encode", "pcm", "code"),
    [
        pytest.param(g711.linear_to_ulaw, 0, 0xFF, id="mulaw-zero"),
        pytest.param(g711.linear_to_ulaw, 32767, 0x80, id="mulaw-max"),
        pytest.param(g711.linear_to_ulaw, -32768, 0x00, id="mulaw-min"),
        pytest.param(g711.linear_to_alaw, 0, 0xD5, id="alaw-zero"),
        pytest.param(g711.linear_to_alaw, 32767, 0xAA, id="alaw-max"),
        pytest.param(g711.linear_to_alaw, -32768, 0x2A, id="alaw-min"),
    ],
)
def test_known_code_words(encode: Encoder, pcm: int, code: int) -> None:
    assert int(encode(np.array([pcm]))[0]) == code


def test_known_decoded_levels() -> None:
    # G.711 Tables 2a/2b scaled to 16 bits: mu-law peaks at +-8031 * 4, A-law at +-4032 * 8; the
    # smallest A-law level is half a step (8), the smallest nonzero mu-law level is 8.
    ulaw = g711.ulaw_to_linear(np.array([0x80, 0x00, 0xFE, 0x7E, 0xFF, 0x7F], dtype=np.uint8))
    np.testing.assert_array_equal(ulaw, [32124, -32124, 8, -8, 0, 0])
    alaw = g711.alaw_to_linear(np.array([0xAA, 0x2A, 0xD5, 0x55], dtype=np.uint8))
    np.testing.assert_array_equal(alaw, [32256, -32256, 8, -8])


def test_ulaw_decode_then_encode_returns_the_code() -> None:
    round_trip = g711.linear_to_ulaw(g711.ulaw_to_linear(ALL_CODES))
    # 0x7F ("negative zero") and 0xFF both decode to 0, which encodes as 0xFF.
    expected = ALL_CODES.copy()
    expected[0x7F] = 0xFF
    np.testing.assert_array_equal(round_trip, expected)
    assert g711.ulaw_to_linear(np.array([0x7F, 0xFF], dtype=np.uint8)).tolist() == [0, 0]


def test_alaw_decode_then_encode_returns_the_code() -> None:
    np.testing.assert_array_equal(g711.linear_to_alaw(g711.alaw_to_linear(ALL_CODES)), ALL_CODES)


@pytest.mark.parametrize(("encode", "decode", "subtype", "ffmpeg_format"), LAWS)
def test_decoded_levels_are_odd_symmetric_and_monotonic(
    encode: Encoder, decode: Decoder, subtype: str, ffmpeg_format: str
) -> None:
    positive = decode(encode(np.arange(0, 32768, 16, dtype=np.int32))).astype(np.int32)
    negative = decode(encode(-1 - np.arange(0, 32768, 16, dtype=np.int32))).astype(np.int32)
    assert np.all(np.diff(positive) >= 0)
    assert np.all(np.diff(negative) <= 0)
    # One's complement for negatives: -1 - x codes as the mirror of x.
    np.testing.assert_array_equal(negative, -positive)


def test_encoders_saturate_beyond_16_bits() -> None:
    wide = np.array([40000, -40000, 1 << 20, -(1 << 20)], dtype=np.int32)
    np.testing.assert_array_equal(g711.linear_to_ulaw(wide), [0x80, 0x00, 0x80, 0x00])
    np.testing.assert_array_equal(g711.linear_to_alaw(wide), [0xAA, 0x2A, 0xAA, 0x2A])
