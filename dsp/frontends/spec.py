"""``FrontendSpec``: the hashable, serialisable description of a feature front end.

A detector declares the spec it was trained with; the DSP batcher computes each distinct spec once
per batch and hands the same feature tensor to every detector that shares it. Each kind of front
end is a frozen dataclass registered under its ``kind`` name; ``from_dict`` refuses unknown kinds,
unknown fields and values of the wrong type.
"""

from __future__ import annotations

import abc
import dataclasses
import json
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from dfd.core.typed_config import ConfigError, build_dataclass

if TYPE_CHECKING:
    from dfd.dsp.frontends.base import Frontend


class FrontendSpecError(ConfigError):
    """A front-end description is malformed or names an unknown kind."""


@dataclasses.dataclass(frozen=True)
class FrontendSpec(abc.ABC):
    """Base of every front-end spec. Subclasses set ``kind`` and add their parameters."""

    kind: ClassVar[str] = ""
    sample_rate: int = 16_000

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise FrontendSpecError(f"{self.kind}: sample_rate must be positive")

    @abc.abstractmethod
    def output_shape(self, num_samples: int) -> tuple[int, ...]:
        """Shape of one item's features for a window of ``num_samples`` samples (no torch: the
        detector workers read it without building the module)."""

    @abc.abstractmethod
    def build(self) -> Frontend:
        """Instantiate the ``nn.Module`` this spec describes."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> FrontendSpec:
        return frontend_spec_from_dict(data)

    @staticmethod
    def from_json(text: str) -> FrontendSpec:
        return frontend_spec_from_dict(json.loads(text))


SpecType = TypeVar("SpecType", bound=type[FrontendSpec])

_REGISTRY: dict[str, type[FrontendSpec]] = {}


def register_frontend(spec_class: SpecType) -> SpecType:
    """Class decorator: make a spec kind constructible by name."""
    if not spec_class.kind:
        raise FrontendSpecError(f"{spec_class.__name__} has no kind name")
    if spec_class.kind in _REGISTRY:
        raise FrontendSpecError(f"front-end kind {spec_class.kind!r} is registered twice")
    _REGISTRY[spec_class.kind] = spec_class
    return spec_class


def frontend_kinds() -> list[str]:
    return sorted(_REGISTRY)


def frontend_spec_class(kind: str) -> type[FrontendSpec]:
    try:
        return _REGISTRY[kind]
    except KeyError:
        known = ", ".join(frontend_kinds())
        raise FrontendSpecError(f"unknown front-end kind {kind!r} (known: {known})") from None


def frontend_spec_from_dict(data: dict[str, Any]) -> FrontendSpec:
    if not isinstance(data, dict) or "kind" not in data:
        raise FrontendSpecError(f"a front-end spec is a mapping with a 'kind' key, got {data!r}")
    spec_class = frontend_spec_class(data["kind"])
    values = {key: value for key, value in data.items() if key != "kind"}
    try:
        return build_dataclass(spec_class, values, where=f"front end {spec_class.kind!r}")
    except ConfigError as error:
        if isinstance(error, FrontendSpecError):
            raise
        raise FrontendSpecError(str(error)) from error
