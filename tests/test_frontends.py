"""Front ends, checked against straightforward numpy computations written from the definitions."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch

from dfd.dsp.batcher import FrontendBank
from dfd.dsp.frontends import (
    ConstantQSpec,
    FrontendSpec,
    FrontendSpecError,
    LfccSpec,
    LogMelSpec,
    LogSpectrogramSpec,
    MfccSpec,
    SincConv,
    SincConvSpec,
    frontend_kinds,
    frontend_spec_class,
)
from tests.signals import RATE, tone

ALL_DEFAULT_SPECS = [frontend_spec_class(kind)() for kind in frontend_kinds()]


# ---------------------------------------------------------------- numpy references


def hz_to_mel_htk(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def mel_to_hz_htk(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def triangular_filterbank(centres_hz: np.ndarray, n_fft: int, rate: int) -> np.ndarray:
    """(n_freqs, n_filters): filter i rises from centre[i-1] to centre[i], falls to centre[i+1]."""
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    bank = np.zeros((len(freqs), len(centres_hz) - 2))
    for i in range(1, len(centres_hz) - 1):
        left, centre, right = centres_hz[i - 1], centres_hz[i], centres_hz[i + 1]
        rising = (freqs - left) / (centre - left)
        falling = (right - freqs) / (right - centre)
        bank[:, i - 1] = np.maximum(0.0, np.minimum(rising, falling))
    return bank


def power_spectrogram(signal: np.ndarray, n_fft: int, win_length: int, hop: int) -> np.ndarray:
    """(frames, n_freqs): centred frames with reflect padding, periodic Hann window."""
    padded = np.pad(signal.astype(np.float64), n_fft // 2, mode="reflect")
    window = np.zeros(n_fft)
    offset = (n_fft - win_length) // 2
    window[offset : offset + win_length] = 0.5 - 0.5 * np.cos(
        2 * np.pi * np.arange(win_length) / win_length
    )
    frames = [padded[s : s + n_fft] * window for s in range(0, len(padded) - n_fft + 1, hop)]
    return np.abs(np.fft.rfft(np.array(frames), axis=1)) ** 2


def dct_ii_orthonormal(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) orthonormal DCT-II matrix."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    matrix = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    matrix[0] /= np.sqrt(2.0)
    return matrix


def reference_log_mel(signal: np.ndarray, spec: LogMelSpec | MfccSpec) -> np.ndarray:
    power = power_spectrogram(signal, spec.n_fft, spec.window_length, spec.hop_length)
    mel_points = np.linspace(
        hz_to_mel_htk(spec.f_min), hz_to_mel_htk(spec.upper_hz), spec.n_mels + 2
    )
    bank = triangular_filterbank(mel_to_hz_htk(mel_points), spec.n_fft, spec.sample_rate)
    return np.log(power @ bank + 1e-6).T  # (n_mels, frames)


def reference_mfcc(signal: np.ndarray, spec: MfccSpec) -> np.ndarray:
    return dct_ii_orthonormal(spec.n_mels, spec.n_mfcc) @ reference_log_mel(signal, spec)


def reference_deltas(features: np.ndarray, reach: int = 2) -> np.ndarray:
    """Regression deltas over +-reach frames, edges padded by repetition."""
    padded = np.pad(features, ((0, 0), (reach, reach)), mode="edge")
    frames = features.shape[1]
    numerator = sum(
        n * (padded[:, reach + n : reach + n + frames] - padded[:, reach - n : reach - n + frames])
        for n in range(1, reach + 1)
    )
    return numerator / (2 * sum(n * n for n in range(1, reach + 1)))


def reference_lfcc(signal: np.ndarray, spec: LfccSpec) -> np.ndarray:
    power = power_spectrogram(signal, spec.n_fft, spec.window_length, spec.hop_length)
    edges = np.linspace(spec.f_min, spec.upper_hz, spec.n_filter + 2)
    bank = triangular_filterbank(edges, spec.n_fft, spec.sample_rate)
    cepstra = dct_ii_orthonormal(spec.n_filter, spec.n_lfcc) @ np.log(power @ bank + 1e-6).T
    delta = reference_deltas(cepstra)
    return np.concatenate([cepstra, delta, reference_deltas(delta)])


def reference_log_spectrogram(signal: np.ndarray, spec: LogSpectrogramSpec) -> np.ndarray:
    power = power_spectrogram(signal, spec.n_fft, spec.window_length, spec.hop_length)
    hz = np.arange(power.shape[1]) * spec.sample_rate / spec.n_fft
    kept = (hz >= spec.f_min) & (hz <= spec.upper_hz)
    return np.log(power[:, kept] + spec.log_offset).T  # (bins, frames)


def reference_constant_q(signal: np.ndarray, spec: ConstantQSpec) -> np.ndarray:
    """The definition at the full sample rate, in float64, with no decimation: each bin's
    periodic Hann window times its exponential, over the window's length, centred on every
    hop-th sample (reflect padding). A bin's window spans ``ceil(Q * r / f)`` samples at its
    octave's rate ``r`` (16 kHz halved once per octave below the top), the same span in time at
    16 kHz."""
    octave_of = [(spec.n_bins - 1 - row) // spec.bins_per_octave for row in range(spec.n_bins)]
    factors = [2**octave for octave in octave_of]
    spans = [
        int(np.ceil(spec.quality * spec.sample_rate / factor / hz))
        for hz, factor in zip(spec.centre_hz, factors, strict=True)
    ]
    reach = max(factor * span for factor, span in zip(factors, spans, strict=True))
    padded = np.pad(signal.astype(np.float64), reach, mode="reflect")
    frames = len(signal) // spec.hop_length + 1
    centres = np.minimum(np.arange(frames) * spec.hop_length, len(signal) - 1) + reach
    power = np.zeros((spec.n_bins, frames))
    for row, hz in enumerate(spec.centre_hz):
        length, offset = factors[row] * spans[row], factors[row] * (spans[row] // 2)
        n = np.arange(length)
        kernel = (0.5 - 0.5 * np.cos(2 * np.pi * n / length)) / length
        kernel = kernel * np.exp(2j * np.pi * hz * (n - offset) / spec.sample_rate)
        segments = padded[(centres - offset)[:, None] + n[None, :]]
        power[row] = np.abs(segments @ kernel) ** 2
    return np.log(power + spec.log_offset)


def reference_sinc_filters(spec: SincConvSpec) -> tuple[np.ndarray, np.ndarray]:
    """AASIST's published construction of its fixed mel-spaced sinc filters, in float64."""
    grid = (spec.sample_rate // 2) * np.linspace(0, 1, 257)
    mel = hz_to_mel_htk(grid)
    edges = mel_to_hz_htk(np.linspace(mel.min(), mel.max(), spec.out_channels + 1))
    half = (spec.kernel_size - 1) / 2
    n = np.arange(-half, half + 1)
    filters = np.stack(
        [
            np.hamming(spec.kernel_size)
            * (
                (2 * high / spec.sample_rate) * np.sinc(2 * high * n / spec.sample_rate)
                - (2 * low / spec.sample_rate) * np.sinc(2 * low * n / spec.sample_rate)
            )
            for low, high in itertools.pairwise(edges)
        ]
    )
    return filters, edges


def run(spec: FrontendSpec, batch: np.ndarray) -> np.ndarray:
    module = spec.build().eval()
    with torch.inference_mode():
        return module(torch.from_numpy(np.asarray(batch, dtype=np.float32))).numpy()


# ---------------------------------------------------------------- SincConv


def test_fixed_sinc_filters_match_aasists_construction() -> None:
    spec = SincConvSpec()  # 70 filters, 129 taps, 0 Hz to Nyquist: AASIST's front end
    expected, edges = reference_sinc_filters(spec)
    module = spec.build()
    np.testing.assert_allclose(module.filters().numpy(), expected, rtol=0, atol=1e-7)
    low, high = module.band_edges_hz()
    np.testing.assert_allclose(low.numpy(), edges[:-1], rtol=1e-6)
    np.testing.assert_allclose(high.numpy(), edges[1:], rtol=1e-6)


def test_sinc_filter_responses_peak_inside_their_band_and_reject_far_frequencies() -> None:
    spec = SincConvSpec(out_channels=20, kernel_size=251)
    module = spec.build()
    filters = module.filters().numpy().astype(np.float64)
    low, high = (edge.numpy() for edge in module.band_edges_hz())
    n_fft = 16384
    freqs = np.fft.rfftfreq(n_fft, 1 / RATE)
    response = np.abs(np.fft.rfft(filters, n_fft, axis=1))
    resolution = 4 * RATE / spec.kernel_size  # Hamming main lobe width
    for i in range(spec.out_channels):
        assert low[i] <= freqs[np.argmax(response[i])] <= high[i], f"filter {i}"
        if high[i] - low[i] > 2 * resolution:
            centre = np.argmin(np.abs(freqs - (low[i] + high[i]) / 2))
            assert 20 * np.log10(response[i, centre]) == pytest.approx(0.0, abs=0.5)  # passband
            far = (freqs < low[i] - resolution) | (freqs > high[i] + resolution)
            assert 20 * np.log10(response[i, far].max()) < -40, f"filter {i} leaks"


def test_a_tone_excites_the_sinc_channel_whose_band_contains_it() -> None:
    spec = SincConvSpec(out_channels=16, kernel_size=257)
    module = spec.build()
    low, high = (edge.numpy() for edge in module.band_edges_hz())
    for frequency in (500.0, 1500.0, 3000.0, 6000.0):
        energy = (run(spec, tone(frequency, 0.5)[None]) ** 2).mean(axis=-1)[0]
        loudest = int(np.argmax(energy))
        assert low[loudest] <= frequency <= high[loudest], frequency


def test_peak_normalisation_puts_every_centre_tap_at_one() -> None:
    filters = SincConvSpec(normalisation="peak").build().filters().numpy()
    np.testing.assert_allclose(filters[:, filters.shape[1] // 2], 1.0, rtol=1e-5)


def test_learnable_sinc_starts_at_the_fixed_filters_and_learns_its_cut_offs() -> None:
    fixed = SincConvSpec().build()
    learnable = SincConvSpec(learnable=True).build()
    np.testing.assert_allclose(
        learnable.filters().detach().numpy(), fixed.filters().numpy(), atol=1e-6
    )
    assert {name for name, _ in learnable.named_parameters()} == {"low_hz_", "band_hz_"}
    assert list(fixed.parameters()) == []

    output = learnable(torch.randn(2, 4000))
    output.square().mean().backward()
    assert learnable.low_hz_.grad is not None and learnable.low_hz_.grad.abs().sum() > 0
    assert learnable.band_hz_.grad is not None and learnable.band_hz_.grad.abs().sum() > 0


def test_learnable_sinc_keeps_its_minimum_band_and_frequency() -> None:
    spec = SincConvSpec(learnable=True, f_min=30.0, min_low_hz=50.0, min_band_hz=50.0)
    module = spec.build()
    with torch.no_grad():
        module.low_hz_.fill_(-1000.0)  # |.| keeps cut-offs positive
        module.band_hz_.zero_()
    low, high = module.band_edges_hz()
    assert torch.all(low >= 50.0)
    assert torch.all(high - low >= 50.0 - 1e-4)
    assert torch.all(high <= RATE / 2)


@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (3, 0), (1, 64), (5, 10)])
def test_sinc_output_shape_matches_its_frame_arithmetic(stride: int, padding: int) -> None:
    spec = SincConvSpec(out_channels=8, kernel_size=129, stride=stride, padding=padding)
    module: SincConv = spec.build()
    for samples in (32_000, 4_321):
        assert run(spec, np.zeros((2, samples))).shape[1:] == module.output_shape(samples)


# ---------------------------------------------------------------- spectral front ends


def test_mfcc_matches_a_numpy_computation_from_the_definition(speech_16k: np.ndarray) -> None:
    spec = MfccSpec()  # 20 coefficients, n_fft 512, hop 160: the MFCC CNN design
    window = speech_16k[16_000:48_000]
    expected = reference_mfcc(window, spec)
    actual = run(spec, window[None])[0]
    assert actual.shape == expected.shape == (20, 201)
    np.testing.assert_allclose(actual, expected, rtol=1e-3, atol=2e-3)


def test_log_mel_matches_a_numpy_computation_from_the_definition(speech_16k: np.ndarray) -> None:
    spec = LogMelSpec(n_mels=64, win_length=400, f_min=20.0, f_max=7600.0)
    window = speech_16k[32_000:64_000]
    np.testing.assert_allclose(
        run(spec, window[None])[0], reference_log_mel(window, spec), rtol=1e-3, atol=2e-3
    )


def test_lfcc_with_deltas_matches_a_numpy_computation(speech_16k: np.ndarray) -> None:
    spec = LfccSpec()  # ASVspoof 2019 baseline: 20 linear filters, 20 coefficients, deltas
    window = speech_16k[16_000:48_000]
    actual = run(spec, window[None])[0]
    assert actual.shape == (60, 201)
    np.testing.assert_allclose(actual, reference_lfcc(window, spec), rtol=1e-3, atol=2e-3)


@pytest.mark.parametrize("f_max", [None, 4000.0], ids=["wideband", "0-4 kHz"])
def test_log_spectrogram_matches_a_numpy_computation(
    speech_16k: np.ndarray, f_max: float | None
) -> None:
    spec = LogSpectrogramSpec(f_max=f_max)
    window = speech_16k[16_000:48_000]
    actual = run(spec, window[None])[0]
    assert actual.shape == spec.output_shape(32_000) == ((257 if f_max is None else 129), 201)
    np.testing.assert_allclose(actual, reference_log_spectrogram(window, spec), atol=2e-3)


def test_constant_q_bins_are_geometric_from_f_min_and_stay_below_nyquist() -> None:
    spec = ConstantQSpec()  # 50 Hz up, 12 bins an octave
    centres = np.array(spec.centre_hz)
    assert spec.n_bins == 87 and spec.octaves == 8
    assert centres[0] == 50.0
    np.testing.assert_allclose(centres[12::12] / centres[:-12:12], 2.0)
    assert centres[-1] * 2 ** (1 / 12) <= spec.sample_rate / 2 < centres[-1] * 2 ** (2 / 12)
    assert spec.quality == pytest.approx(16.817, abs=1e-3)
    assert ConstantQSpec(f_min=100.0, f_max=3200.0).n_bins == 61  # 5 octaves and the top bin


def test_constant_q_matches_the_definition_computed_without_decimation(
    speech_16k: np.ndarray,
) -> None:
    """The top octave is computed at the full rate: it is the definition. Each octave below is
    the same kernels on a signal decimated 2:1 once more: where there is energy to speak of
    (within 40 dB of the window's loudest bin) the bins agree to a few thousandths of a nat, the
    top bin of each lower octave, at the resampler's band edge, to a tenth. Far below that the
    resampler's leakage is what the lowest bins of telephone audio hold."""
    spec = ConstantQSpec()
    window = speech_16k[40_000:72_000]  # the loudest 2 s of the agent's speech
    actual = run(spec, window[None])[0]
    expected = reference_constant_q(window, spec)
    assert actual.shape == expected.shape == (87, 201)
    top = slice(spec.n_bins - spec.bins_per_octave, spec.n_bins)
    np.testing.assert_allclose(actual[top], expected[top], atol=1e-3)
    inner = slice(10, -10)  # away from the ends, where decimation pads differently
    error = np.abs(actual - expected)[: top.start, inner]
    audible = expected[: top.start, inner] > expected.max() - np.log(1e4)  # within 40 dB
    octave_top_bins = [top.start - 1 - 12 * octave for octave in range(spec.octaves - 1)]
    others = np.ones(top.start, dtype=bool)
    others[octave_top_bins] = False
    inside = error[others][audible[others]]
    assert inside.size > 2_000
    assert np.median(inside) < 0.005 and np.quantile(inside, 0.99) < 0.15
    assert np.median(error[octave_top_bins][audible[octave_top_bins]]) < 0.1


def test_a_tone_peaks_in_its_constant_q_bin_at_the_same_level_in_every_octave() -> None:
    spec = ConstantQSpec()
    module = spec.build().eval()
    peaks = []
    for row in (3, 15, 30, 45, 60, 72, 86):  # one bin in each octave
        frequency = spec.centre_hz[row]
        with torch.inference_mode():
            features = module(torch.from_numpy(tone(frequency, 2.0)[None]).float())[0]
        profile = features[:, 20:-20].mean(dim=1)
        assert int(profile.argmax()) == row
        peaks.append(float(profile.max()))
    assert max(peaks) - min(peaks) < 0.05  # nats of power: under 0.2 dB
    narrow = ConstantQSpec(f_min=3000.0, f_max=4000.0)  # five bins: less than one octave
    with torch.inference_mode():
        features = narrow.build()(torch.from_numpy(tone(narrow.centre_hz[2], 2.0)[None]).float())
    assert features.shape == (1, 5, 201) and int(features[0].mean(dim=1).argmax()) == 2


def test_log_mel_energy_of_a_tone_lies_in_the_band_around_its_frequency() -> None:
    spec = LogMelSpec(n_mels=40)
    mel_points = np.linspace(0, hz_to_mel_htk(np.array(RATE / 2)), spec.n_mels + 2)
    centres = mel_to_hz_htk(mel_points)[1:-1]
    for frequency in (300.0, 1000.0, 3400.0):
        loudest = int(np.argmax(run(spec, tone(frequency, 1.0)[None])[0].mean(axis=1)))
        assert (
            abs(centres[loudest] - frequency) <= np.diff(centres)[loudest - 1 : loudest + 1].max()
        )


@pytest.mark.parametrize("spec", ALL_DEFAULT_SPECS, ids=lambda spec: spec.kind)
def test_a_windows_features_do_not_depend_on_the_rest_of_the_batch(
    spec: FrontendSpec, speech_16k: np.ndarray
) -> None:
    quiet = 0.001 * speech_16k[:32_000]
    batch = np.stack([quiet, speech_16k[32_000:64_000], np.zeros(32_000), 0.9 * np.sign(quiet)])
    alone = run(spec, quiet[None])[0]
    np.testing.assert_allclose(run(spec, batch)[0], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spec", ALL_DEFAULT_SPECS, ids=lambda spec: spec.kind)
def test_output_shape_is_what_forward_returns(spec: FrontendSpec) -> None:
    module = spec.build()
    assert run(spec, np.zeros((3, 32_000))).shape == (3, *module.output_shape(32_000))


def test_specs_give_their_output_shape_without_torch() -> None:
    """What a detector worker asks of a spec, answered without importing torch."""
    code = (
        "import sys\n"
        "from dfd.dsp.frontends import frontend_kinds, frontend_spec_class\n"
        "shapes = {k: frontend_spec_class(k)().output_shape(32000) for k in frontend_kinds()}\n"
        "print(sorted(shapes.items()), 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("False")
    assert "('lfcc', (60, 201))" in result.stdout
    assert "('cqt', (87, 201))" in result.stdout and "('logspec', (257, 201))" in result.stdout


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this host")
@pytest.mark.parametrize(
    "spec", [*ALL_DEFAULT_SPECS, SincConvSpec(learnable=True)], ids=lambda spec: spec.to_json()[:40]
)
def test_cuda_features_match_cpu_features(spec: FrontendSpec, speech_16k: np.ndarray) -> None:
    batch = np.stack([speech_16k[i * 8_000 : i * 8_000 + 32_000] for i in range(8)])
    cpu = FrontendBank("cpu").compute(batch, [spec])[spec].numpy()
    cuda = FrontendBank("cuda").compute(batch, [spec])[spec].cpu().numpy()
    scale = np.abs(cpu).max()
    np.testing.assert_allclose(cuda, cpu, rtol=1e-3, atol=1e-4 * scale)


# ---------------------------------------------------------------- specs and the batcher


@pytest.mark.parametrize(
    "spec",
    [*ALL_DEFAULT_SPECS, SincConvSpec(learnable=True, f_max=4000.0), LogMelSpec(n_mels=128)],
    ids=lambda spec: spec.kind,
)
def test_specs_round_trip_through_json_and_hash_by_value(spec: FrontendSpec) -> None:
    copy = FrontendSpec.from_json(spec.to_json())
    assert copy == spec
    assert hash(copy) == hash(spec)
    assert type(copy) is type(spec)
    assert len({spec, copy}) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "wavelet"}, "unknown front-end kind 'wavelet'"),
        ({"kind": "mfcc", "n_mfc": 13}, "unknown key"),
        ({"kind": "mfcc", "n_mfcc": "20"}, "expected int"),
        ({"kind": "mfcc", "n_mfcc": True}, "expected int"),
        ({"kind": "sinc", "kernel_size": 128}, "must be odd"),
        ({"kind": "sinc", "normalisation": "unit"}, "expected one of"),
        ({"kind": "logmel", "f_min": 9000.0}, "f_min < f_max"),
        ({"kind": "mfcc", "n_mfcc": 50, "n_mels": 40}, "n_mfcc <= n_mels"),
        ({"n_mels": 40}, "'kind' key"),
        ({"kind": "cqt", "f_min": 0.0}, "0 < f_min"),
        ({"kind": "cqt", "f_max": 9000.0}, "f_max <= sample_rate / 2"),
        ({"kind": "cqt", "bins_per_octave": 0}, "bins_per_octave"),
        ({"kind": "logspec", "f_max": 9000}, "f_min < f_max"),
    ],
)
def test_malformed_specs_are_refused_with_the_reason(data: dict[str, object], message: str) -> None:
    with pytest.raises(FrontendSpecError, match=message):
        FrontendSpec.from_dict(data)


def test_integers_are_accepted_for_float_parameters() -> None:
    spec = FrontendSpec.from_dict({"kind": "logmel", "f_min": 20, "f_max": 7600})
    assert spec == LogMelSpec(f_min=20.0, f_max=7600.0)
    assert isinstance(spec, LogMelSpec) and isinstance(spec.f_min, float)


def test_the_bank_computes_each_distinct_spec_once_and_reuses_its_module() -> None:
    bank = FrontendBank("cpu")
    specs = [MfccSpec(), LogMelSpec(), MfccSpec(), FrontendSpec.from_json(MfccSpec().to_json())]
    outputs = bank.compute(np.zeros((4, 32_000), dtype=np.float32), specs)
    assert list(outputs) == [MfccSpec(), LogMelSpec()]
    assert bank.module(MfccSpec()) is bank.module(FrontendSpec.from_dict({"kind": "mfcc"}))
    assert outputs[MfccSpec()].shape == (4, 20, 201)


def test_the_bank_refuses_a_cuda_device_it_does_not_have() -> None:
    if torch.cuda.is_available():
        assert FrontendBank("cuda").device.type == "cuda"
    else:
        with pytest.raises(RuntimeError, match="no CUDA device"):
            FrontendBank("cuda")
        assert FrontendBank("auto").device.type == "cpu"


def test_a_learnable_band_limited_sinc_bank_stays_in_its_band() -> None:
    """With f_max (a 0-4 kHz bank for phone audio) no filter can learn its way above it."""
    import torch

    from dfd.dsp.frontends import SincConvSpec

    spec = SincConvSpec(
        out_channels=16, kernel_size=251, f_min=30.0, f_max=4000.0, min_low_hz=50.0,
        min_band_hz=50.0, learnable=True, normalisation="peak",
    )  # fmt: skip
    bank = spec.build()
    with torch.no_grad():  # as if training had pushed every filter towards Nyquist
        bank.low_hz_.add_(6000.0)
        bank.band_hz_.add_(3000.0)
    with torch.no_grad():
        low, high = bank.band_edges_hz()
        response = torch.fft.rfft(bank.filters().double(), n=4096).abs()
    assert float(low.max()) <= 4000.0 - 50.0 and float(high.max()) <= 4000.0
    frequencies = torch.fft.rfftfreq(4096, 1 / 16000)
    leak_db = 20 * torch.log10(response[:, frequencies > 4500].max() / response.max())
    assert float(leak_db) < -40.0
    wideband = SincConvSpec(out_channels=16, learnable=True, min_low_hz=50.0, min_band_hz=50.0)
    wide = wideband.build()
    with torch.no_grad():
        wide.band_hz_.add_(9000.0)
        assert float(wide.band_edges_hz()[1].max()) == 8000.0  # full band: clamped at Nyquist
