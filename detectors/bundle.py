"""Model bundles: the unit the daemon loads, a folder holding an ONNX graph and its model card.

A bundle folder holds:

``model.onnx``
    The detector graph, front-end features -> raw output: one input named ``features`` with a
    dynamic batch axis, one output named as the card says (``logits`` or ``score``), opset 17
    (``dfd.detectors.export.export_onnx``). Its ``metadata_props`` carry the contract the
    registry writes (``dfd.family``, ``dfd.frontend``, ``dfd.output``, ``dfd.output_name`` and,
    for class logits, ``dfd.spoof_index``); the loader checks them against the card.
``model_card.json``
    A ``ModelCard``: family and version, the scoring window, the front end that computes the
    features, how to read the output, the calibration to P(synthetic), thresholds, training
    provenance, metrics and the sha256 of every other file of the bundle.
``signature.json`` (optional)
    An ed25519 signature of the exact bytes of ``model_card.json`` (``dfd.detectors.signing``),
    not itself listed in the card. Required when ``load_bundle`` is given trusted keys.

Conventions. The *raw* output of a bundle is in the spoof direction: higher = more likely
synthetic (``spoof_logit`` as is; ``spoof_score`` as is; ``class_logits``: the spoof log-odds
``logits[:, spoof] - logits[:, bona fide]``). The calibrated *score* is
``sigmoid(slope * raw + offset)`` = P(synthetic); an uncalibrated bundle has slope 1, offset 0
and ``calibrated: false``. Score files for ``dfd eval`` run the other way (higher = more bona
fide, the ASVspoof convention): write ``-raw`` there, or the official bona fide logit
(``Bundle.official_score``).

``load_bundle`` refuses, with a ``BundleError`` naming the bundle and the problem: with trusted
keys, a card without a good signature by one of them (checked first, on the bytes then parsed);
a card with an unknown key or a value of the wrong type, a listed file that is missing or whose
sha256 differs, an ``.onnx`` file the card does not list, ONNX metadata that disagrees with the
card, graph input or output names other than the card's, and weights kept in external data
files. The card, the signature and every listed file must be regular files, not symbolic links
or FIFOs, and the card at most ``MAX_CARD_BYTES``; a card that is not usable JSON (a 5,000-digit
number, nesting too deep to parse) is refused too. Nothing is unpickled: the card is JSON and the
graph is ONNX (protobuf).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np

from dfd.core.safe_files import open_regular_file, read_regular_file
from dfd.core.typed_config import ConfigError, build_dataclass
from dfd.detectors.contract import INPUT_NAME, OutputConvention, graph_metadata, spoof_direction
from dfd.dsp.framer import WindowGeometry
from dfd.dsp.frontends import FrontendSpec, frontend_spec_from_dict

if TYPE_CHECKING:
    import onnx

    from dfd.detectors.registry import DetectorFamily
    from dfd.detectors.signing import TrustedKeys

FORMAT: Final = "dfd-bundle/1"
CARD_NAME = "model_card.json"
MAX_CARD_BYTES = 1 << 20  # a card is a few kB; a larger one is refused before it is read
MODEL_NAME = "model.onnx"
SIGNATURE_NAME = "signature.json"  # signs the card, so the card cannot list it
_SHA256 = re.compile(r"[0-9a-f]{64}")
_UNLISTED = ("", CARD_NAME, SIGNATURE_NAME)  # never in a card's files


class BundleError(ValueError):
    """A bundle is missing, malformed, tampered with, or disagrees with its own model card."""


@dataclasses.dataclass(frozen=True)
class ModelWindow:
    """The scoring window the model was trained on (the card's ``window``): its length and hop,
    ``samples`` = ``window_s * sample_rate``. The samples of one window are a
    ``dfd.dsp.framer.Window``."""

    sample_rate: int
    window_s: float
    hop_s: float
    samples: int

    def __post_init__(self) -> None:
        geometry = WindowGeometry(self.sample_rate, self.window_s, self.hop_s)
        if self.samples != geometry.window_samples:
            raise ValueError(
                f"samples={self.samples} but window_s={self.window_s} s at {self.sample_rate} Hz "
                f"is {geometry.window_samples} samples"
            )

    @classmethod
    def of(cls, samples: int, hop_s: float, sample_rate: int = 16_000) -> ModelWindow:
        return cls(sample_rate, samples / sample_rate, hop_s, samples)

    @property
    def hop_samples(self) -> int:
        return round(self.hop_s * self.sample_rate)


@dataclasses.dataclass(frozen=True)
class OutputSpec:
    """The graph output: its name, how to read it, and the spoof column of class logits."""

    name: str
    convention: OutputConvention
    spoof_index: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name must not be empty")
        if self.convention == "class_logits":
            if self.spoof_index not in (0, 1):
                raise ValueError(f"class_logits needs spoof_index 0 or 1, got {self.spoof_index}")
        elif self.spoof_index is not None:
            raise ValueError(f"spoof_index is for class_logits only, not {self.convention}")

    @property
    def bonafide_index(self) -> int | None:
        return None if self.spoof_index is None else 1 - self.spoof_index

    def raw(self, outputs: np.ndarray) -> np.ndarray:
        """The spoof-direction output per window, ``(batch,)``, from the graph's output."""
        outputs = np.asarray(outputs, dtype=np.float32)
        if self.spoof_index is not None:
            if outputs.ndim != 2 or outputs.shape[1] != 2:
                raise ValueError(f"class logits are (batch, 2), got {outputs.shape}")
            return np.asarray(spoof_direction(outputs, self.spoof_index), dtype=np.float32)
        if outputs.ndim == 2 and outputs.shape[1] == 1:
            outputs = outputs[:, 0]
        if outputs.ndim != 1:
            raise ValueError(f"a {self.convention} output is (batch,), got {outputs.shape}")
        return outputs


@dataclasses.dataclass(frozen=True)
class Calibration:
    """``score = sigmoid(slope * raw + offset)`` = P(synthetic)."""

    method: Literal["logistic"] = "logistic"
    slope: float = 1.0
    offset: float = 0.0
    calibrated: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.slope) and math.isfinite(self.offset)):
            raise ValueError(f"slope and offset must be finite, got {self.slope}, {self.offset}")
        if self.slope <= 0.0:
            raise ValueError(
                f"slope must be positive (higher raw output = more spoof), got {self.slope}"
            )

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """P(synthetic) per window, computed without overflow for any raw value."""
        z = self.slope * np.asarray(raw, dtype=np.float64) + self.offset
        exp_neg_abs = np.exp(-np.abs(z))
        score = np.where(z >= 0, 1.0 / (1.0 + exp_neg_abs), exp_neg_abs / (1.0 + exp_neg_abs))
        return score.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Decision thresholds on the calibrated score (``null`` until measured)."""

    eer: float | None = None
    far_1pct: float | None = None

    def __post_init__(self) -> None:
        for name in ("eer", "far_1pct"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a calibrated score in [0, 1], got {value}")


@dataclasses.dataclass(frozen=True)
class OperatingPoint:
    """The call-level operating point of the evidence rule (``dfd.daemon.engine.decisions``): the
    evidence ``raise_at`` (nats) that raises an alert, chosen on a calls protocol for a target
    share of real calls alerted, and what it achieved there (``dfd models calibrate --calls``)."""

    raise_at: float
    max_window_evidence: float
    target_false_alarm_rate: float
    false_alarm_rate: float  # share of the real calls (and real parts of turning calls) alerted
    real_calls: int
    real_hours: float
    turning_calls: int
    turning_detected: int
    median_time_to_alert_s: float | None
    chosen_on: str  # the calls protocol's file name

    def __post_init__(self) -> None:
        if not 0.0 < self.raise_at < math.inf or not 0.0 < self.max_window_evidence < math.inf:
            raise ValueError("raise_at and max_window_evidence must be positive numbers")
        for name in ("target_false_alarm_rate", "false_alarm_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a share in [0, 1], got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class Training:
    """Provenance: the sha256 of the data manifest and the resolved training config, and how the
    graph was quantised after training (``dfd models quantize``; null for a float graph)."""

    data_manifest_sha256: str | None = None
    config: dict[str, Any] | None = None
    quantization: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        digest = self.data_manifest_sha256
        if digest is not None and not _SHA256.fullmatch(digest):
            raise ValueError(f"data_manifest_sha256 must be 64 lower-case hex digits: {digest!r}")
        _check_table(self.config, "config")
        _check_table(self.quantization, "quantization")


@dataclasses.dataclass(frozen=True)
class Metrics:
    """Measured figures on the development and evaluation sets (``null`` until measured)."""

    dev: dict[str, Any] | None = None
    eval: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _check_table(self.dev, "dev")
        _check_table(self.eval, "eval")


def _check_table(value: object, name: str) -> None:
    if value is not None and not (
        isinstance(value, dict) and all(isinstance(key, str) for key in value)
    ):
        raise ValueError(f"{name} must be a JSON object or null, got {value!r}")


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """``model_card.json``: everything needed to run a bundle's graph and read its output."""

    format: Literal["dfd-bundle/1"]
    family: str
    version: str
    created_by: str
    window: ModelWindow
    frontend: dict[str, Any]
    output: OutputSpec
    labels: str
    calibration: Calibration
    thresholds: Thresholds
    training: Training
    metrics: Metrics
    files: dict[str, str]
    operating_point: OperatingPoint | None = None  # null until chosen on calls

    def __post_init__(self) -> None:
        for name in ("family", "version", "created_by", "labels"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        if not isinstance(self.frontend, dict):
            raise ValueError(f"frontend must be a JSON object, got {self.frontend!r}")
        try:
            spec = frontend_spec_from_dict(dict(self.frontend))
        except ConfigError as error:  # FrontendSpecError: reported with the card's location
            raise ValueError(f"frontend: {error}") from error
        if spec.sample_rate != self.window.sample_rate:
            raise ValueError(
                f"the front end runs at {spec.sample_rate} Hz but the window is at "
                f"{self.window.sample_rate} Hz"
            )
        if not isinstance(self.files, dict):
            raise ValueError(f"files must be a JSON object, got {self.files!r}")
        for name, digest in self.files.items():
            relative = PurePosixPath(name)
            if relative.is_absolute() or ".." in relative.parts or name in _UNLISTED:
                raise ValueError(f"files: {name!r} is not a file of the bundle")
            if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
                raise ValueError(f"files: {name}: not a sha256 hex digest: {digest!r}")

    @property
    def frontend_spec(self) -> FrontendSpec:
        return frontend_spec_from_dict(dict(self.frontend))

    def to_dict(self) -> dict[str, Any]:
        """The card as plain JSON data (``spoof_index`` only for class logits)."""
        data: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(self)))
        if data["output"]["spoof_index"] is None:
            del data["output"]["spoof_index"]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = CARD_NAME) -> ModelCard:
        """Validated: unknown or missing keys, wrong types and inconsistent values raise
        ``ConfigError`` naming where (``model_card.json.calibration.slope: ...``)."""
        return build_dataclass(cls, data, where=where)


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A loaded, verified bundle. ``feature_shape`` is one window's input shape in the graph
    (``None`` for an axis the graph leaves symbolic); ``opset`` the graph's ONNX opset."""

    path: Path
    card: ModelCard
    feature_shape: tuple[int | None, ...]
    opset: int
    card_sha256: str  # of the card's bytes as verified: what a later reader must find again

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_NAME

    @property
    def frontend_spec(self) -> FrontendSpec:
        return self.card.frontend_spec

    @property
    def window(self) -> ModelWindow:
        return self.card.window

    def official_score(self, logits: np.ndarray) -> np.ndarray:
        """The bona fide logit of class logits, ``(batch,)``: the official ASVspoof score
        (higher = more bona fide), e.g. ``logits[:, 1]`` for AASIST."""
        bonafide = self.card.output.bonafide_index
        if bonafide is None:
            raise ValueError(
                f"{self.path}: a {self.card.output.convention} output has no bona fide logit; "
                f"use -raw as the bona fide score"
            )
        return np.asarray(logits, dtype=np.float32)[:, bonafide]


def dfd_version() -> str:
    try:
        return f"dfd {package_version('dfd')}"
    except PackageNotFoundError:  # pragma: no cover - running from an uninstalled checkout
        return "dfd (not installed)"


def labels_text(output: OutputSpec, note: str = "") -> str:
    """The documented label convention of a card, for its ``output``."""
    if output.spoof_index is not None:
        spoof, bonafide = output.spoof_index, 1 - output.spoof_index
        raw = (
            f"raw output: class logits, spoof at index {spoof}, bona fide at index {bonafide}; "
            f"the raw spoof-direction value is logits[:, {spoof}] - logits[:, {bonafide}] "
            f"(the spoof log-odds, higher = more spoof)."
        )
    else:
        raw = f"raw output: {output.convention} '{output.name}' (batch,), higher = more spoof."
    text = (
        f"{raw} Calibrated score = P(synthetic) = sigmoid(slope * raw + offset). dfd eval score "
        f"files are the other way round: higher = more bona fide."
    )
    return f"{text} {note}" if note else text


def new_card(
    family: DetectorFamily[Any],
    *,
    version: str,
    window: ModelWindow,
    config: Any = None,
    calibration: Calibration | None = None,
    thresholds: Thresholds | None = None,
    training: Training | None = None,
    metrics: Metrics | None = None,
    labels_note: str = "",
) -> ModelCard:
    """A card for a model of a registry family (``config``: its model config, default the
    family's), with the front end and output the family declares; ``files`` is filled in by
    ``write_bundle``."""
    spec = family.frontend if config is None else family.frontend_of(config)
    output = OutputSpec(family.output_name, family.output, family.spoof_index)
    return ModelCard(
        format=FORMAT,
        family=family.name,
        version=version,
        created_by=dfd_version(),
        window=window,
        frontend=spec.to_dict(),
        output=output,
        labels=labels_text(output, labels_note),
        calibration=calibration or Calibration(),
        thresholds=thresholds or Thresholds(),
        training=training or Training(),
        metrics=metrics or Metrics(),
        files={},
    )


def sha256_file(path: Path) -> str:
    """The sha256 of a regular file (a symbolic link or a FIFO raises ``UnsafeFileError``)."""
    digest = hashlib.sha256()
    with os.fdopen(open_regular_file(path), "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_bundle(
    folder: str | Path, model: str | Path | bytes, card: ModelCard, *, overwrite: bool = False
) -> Path:
    """Write ``model`` (an ONNX file's path or bytes) and ``card`` into ``folder``; return it.

    The card's ``files`` becomes the sha256 of every file in the folder but the card itself
    and its signature (hidden names excluded). The ONNX file is checked against the card before
    the card is written, and the card is written last, so a folder never holds a card for a
    model it does not fit. A folder that already holds a card is refused unless ``overwrite``,
    and then loses its signature, which signed the card being replaced.
    """
    folder = Path(folder)
    if (folder / CARD_NAME).exists() and not overwrite:
        raise BundleError(f"{folder}: already holds a bundle ({CARD_NAME}); pass overwrite")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / MODEL_NAME
    if isinstance(model, bytes):
        _write_atomically(target, model)
    elif not (target.exists() and Path(model).resolve() == target.resolve()):
        _write_atomically(target, Path(model).read_bytes())

    files = {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and path.name != CARD_NAME
        and path.relative_to(folder).as_posix() != SIGNATURE_NAME
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    }
    card = dataclasses.replace(card, files=files)
    _check_model(folder, card)
    (folder / SIGNATURE_NAME).unlink(missing_ok=True)
    _write_atomically(folder / CARD_NAME, card.to_json().encode("utf-8"))
    return folder


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def read_card(folder: str | Path) -> ModelCard:
    """The validated card of a bundle, without checking its files (``load_bundle`` does)."""
    folder = Path(folder)
    return _parse_card(folder, _read_card_bytes(folder))


def _read_card_bytes(folder: Path) -> bytes:
    if not folder.is_dir():
        raise BundleError(f"{folder}: no such bundle folder")
    card_path = folder / CARD_NAME
    if not card_path.exists() and not card_path.is_symlink():
        raise BundleError(f"{folder}: not a bundle: no {CARD_NAME}")
    try:
        return read_regular_file(card_path, MAX_CARD_BYTES)
    except OSError as error:
        raise BundleError(f"{folder}: cannot read {CARD_NAME} ({error})") from error


def _parse_card(folder: Path, text: bytes) -> ModelCard:
    try:
        data = json.loads(text.decode("utf-8"))
    except (ValueError, RecursionError) as error:  # also a 5,000-digit number, deep nesting
        detail = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise BundleError(f"{folder}: {CARD_NAME} is not usable JSON ({detail})") from error
    if not isinstance(data, dict):
        raise BundleError(f"{folder}: {CARD_NAME} must hold a JSON object")
    try:
        return ModelCard.from_dict(data)
    except ConfigError as error:
        raise BundleError(f"{folder}: {error}") from error


def load_bundle(
    folder: str | Path,
    trusted_keys: TrustedKeys | None = None,
    expected_card_sha256: str | None = None,
) -> Bundle:
    """Read, validate and verify the bundle in ``folder`` (see the module docstring); with
    ``trusted_keys``, its card must carry a good signature by one of them. With
    ``expected_card_sha256`` (a ``Bundle.card_sha256`` from an earlier load), the card must be
    the one verified then: how the daemon's detector workers load exactly what it checked."""
    folder = Path(folder)
    card_bytes = _read_card_bytes(folder)
    card_sha256 = hashlib.sha256(card_bytes).hexdigest()
    if expected_card_sha256 is not None and card_sha256 != expected_card_sha256:
        raise BundleError(
            f"{folder}: {CARD_NAME} changed since the bundle was verified "
            f"(sha256 {card_sha256}, expected {expected_card_sha256})"
        )
    if trusted_keys is not None:  # before anything of the bundle is parsed
        trusted_keys.verify_card(folder, card_bytes)
    card = _parse_card(folder, card_bytes)
    if MODEL_NAME not in card.files:
        raise BundleError(f"{folder}: {CARD_NAME} does not list {MODEL_NAME} under files")
    for name, expected in card.files.items():
        path = folder / name
        if not path.exists() and not path.is_symlink():
            raise BundleError(f"{folder}: {name} is listed in {CARD_NAME} but missing")
        try:
            actual = sha256_file(path)
        except OSError as error:
            raise BundleError(f"{folder}: {name}: {error}") from error
        if actual != expected:
            raise BundleError(
                f"{folder}: {name}: sha256 {actual} does not match {expected} in {CARD_NAME} "
                f"(the file changed after the bundle was written)"
            )
    unlisted = sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*.onnx")
        if path.relative_to(folder).as_posix() not in card.files
    )
    if unlisted:
        raise BundleError(
            f"{folder}: ONNX file(s) not listed in {CARD_NAME}: {', '.join(unlisted)}"
        )
    feature_shape, opset = _check_model(folder, card)
    return Bundle(folder, card, feature_shape, opset, card_sha256)


def expected_metadata(card: ModelCard) -> dict[str, str]:
    """The ``metadata_props`` a bundle's graph must carry (``DetectorFamily.metadata``)."""
    output = card.output
    return graph_metadata(
        card.family,
        card.frontend_spec.to_json(),
        output.convention,
        output.name,
        output.spoof_index,
    )


def _check_model(folder: Path, card: ModelCard) -> tuple[tuple[int | None, ...], int]:
    """Check the graph's metadata and names against the card; return its feature shape and
    opset."""
    import onnx
    from google.protobuf.message import DecodeError

    path = folder / MODEL_NAME
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError) as error:
        raise BundleError(
            f"{folder}: {MODEL_NAME} is not a readable ONNX model ({error})"
        ) from error
    external = [
        tensor.name
        for tensor in proto.graph.initializer
        if tensor.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:  # weights outside the file the card's sha256 covers could change unseen
        raise BundleError(
            f"{folder}: {MODEL_NAME} keeps weights in external data files ({external[0]}, ...); "
            "a bundle's graph must hold its weights itself"
        )
    _check_metadata(folder, card, {prop.key: prop.value for prop in proto.metadata_props})

    graph = proto.graph
    initialisers = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initialisers]
    input_names = [value.name for value in inputs]
    if input_names != [INPUT_NAME]:
        raise BundleError(
            f"{folder}: {MODEL_NAME} takes input(s) {input_names}, expected one named "
            f"{INPUT_NAME!r}"
        )
    output_names = [value.name for value in graph.output]
    if output_names != [card.output.name]:
        raise BundleError(
            f"{folder}: {MODEL_NAME} gives output(s) {output_names} but {CARD_NAME} says "
            f"output {card.output.name!r}"
        )
    dims = _dims(inputs[0])
    if not dims or isinstance(dims[0], int):
        raise BundleError(
            f"{folder}: {MODEL_NAME} input {INPUT_NAME!r} has shape {dims}: expected a dynamic "
            f"batch axis first (export with dfd.detectors.export.export_onnx)"
        )
    output_dims = _dims(graph.output[0])
    expected_rank = 2 if card.output.convention == "class_logits" else 1
    if output_dims and len(output_dims) != expected_rank and output_dims[1:] != [1]:
        raise BundleError(
            f"{folder}: {MODEL_NAME} output {card.output.name!r} has shape {output_dims}, "
            f"which is not a {card.output.convention} output"
        )
    opset = next(
        (entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")), 0
    )
    return tuple(dim if isinstance(dim, int) else None for dim in dims[1:]), int(opset)


def _check_metadata(folder: Path, card: ModelCard, metadata: Mapping[str, str]) -> None:
    for key, expected in expected_metadata(card).items():
        actual = metadata.get(key)
        if actual is None:
            raise BundleError(
                f"{folder}: {MODEL_NAME} carries no {key} metadata (the card says {expected!r}); "
                f"export with the family's metadata (DetectorFamily.metadata)"
            )
        if key == "dfd.frontend":
            try:
                same = FrontendSpec.from_json(actual) == card.frontend_spec
            except (ConfigError, json.JSONDecodeError):
                same = False
        else:
            same = actual == expected
        if not same:
            raise BundleError(
                f"{folder}: metadata mismatch: {MODEL_NAME} says {key} = {actual!r} but "
                f"{CARD_NAME} says {expected!r}"
            )


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    shape = value.type.tensor_type.shape
    return [dim.dim_value if dim.HasField("dim_value") else dim.dim_param for dim in shape.dim]
