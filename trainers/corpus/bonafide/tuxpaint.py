"""Tux Paint's spoken stamp descriptions: volunteers reading a short sentence at home, 13 languages.

Each stamp may carry ``<stamp>_desc.ogg`` (English) and ``<stamp>_desc_<locale>.ogg`` recordings,
and a ``<stamp>.txt`` whose first line is the English description and whose ``<locale>.utf8=``
lines are its translations. Outline, photo and colour variants of a stamp often carry byte-identical
copies of one recording, so a recording is kept once (the first path in sorted order).

The credits (``/usr/share/doc/tuxpaint-stamps-default/changelog.gz``) name one volunteer per
language for be, bg, ca, da, el, es, lt, ro and ru, two for fr (Jacques Chion; PaulK) and none for
en, nl and ml (the English and Dutch animal names came from Childsplay). The speaker is therefore
``tuxpaint-<language>``: one voice where the credits say so, otherwise the language's volunteers
taken together, never split on a guess.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from dfd.trainers.corpus.bonafide.family import BonafideFamily
from dfd.trainers.corpus.recordings import FilePart, SpeechRecording

STAMPS = Path("/usr/share/tuxpaint/stamps")
PACKAGE = "debian:tuxpaint-stamps-default"
# ``duck_desc.ogg`` (English), ``duck_desc_fr.ogg``; one Danish file is named ``*_da.ogg.ogg``
DESCRIPTION_FILE = re.compile(
    r"(?P<stamp>.+)_desc(?:_(?P<locale>[a-z]{2,3}(?:_[A-Z]{2})?))?(?:\.ogg)+"
)
ENGLISH_LOCALE = "en"  # the locale of a description without a suffix


def language_of_locale(locale: str) -> str:
    """ISO 639-1 of a Tux Paint locale: ``pt_BR`` -> ``pt``, ``en_GB`` -> ``en``."""
    return locale.split("_")[0].split("@")[0].lower()


def read_descriptions(text_file: Path) -> dict[str, str]:
    """``locale -> description`` from a stamp's ``.txt`` (first line: the English one)."""
    if not text_file.is_file():
        return {}
    lines = text_file.read_text(encoding="utf-8", errors="replace").splitlines()
    descriptions: dict[str, str] = {}
    for number, line in enumerate(lines):
        locale, separator, text = line.partition("=")
        if separator and locale.endswith(".utf8"):
            descriptions[locale.removesuffix(".utf8")] = text.strip()
        elif number == 0 and line.strip():
            descriptions[ENGLISH_LOCALE] = line.strip()
    return {locale: text for locale, text in descriptions.items() if text}


def vorbis_sample_rate(data: bytes) -> int:
    """The sample rate in an Ogg Vorbis identification header (44.1 kHz; 8 kHz for a few)."""
    header = data.find(b"\x01vorbis")
    if header < 0:
        raise ValueError("no Vorbis identification header")
    rate: int = struct.unpack_from("<I", data, header + 12)[0]
    return rate


@dataclass(frozen=True)
class DescriptionFile:
    """One ``*_desc*.ogg`` file: which stamp, in which locale, and its content."""

    path: Path
    stamp: str  # relative to STAMPS, without suffix: ``animals/birds/duck``
    locale: str
    digest: str  # sha256 of the file: copies share it
    sample_rate: int


def read_description_files() -> list[DescriptionFile]:
    """Every description recording, sorted by path (copies included)."""
    files = []
    for path in sorted(STAMPS.rglob("*_desc*.ogg")):
        match = DESCRIPTION_FILE.fullmatch(path.name)
        if match is not None:
            stamp = path.with_name(match["stamp"]).relative_to(STAMPS).as_posix()
            locale = match["locale"] or ENGLISH_LOCALE
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            files.append(DescriptionFile(path, stamp, locale, digest, vorbis_sample_rate(data)))
    return files


def stamp_groups(files: list[DescriptionFile]) -> dict[str, str]:
    """``stamp -> text group``: stamps that share a recording (``frog`` and its copy ``frog-1``)
    describe one thing, so they form one group, named by its first stamp in sorted order."""
    parent = {file.stamp: file.stamp for file in files}

    def root(stamp: str) -> str:
        while parent[stamp] != stamp:
            stamp = parent[stamp]
        return stamp

    first_stamp_of_digest: dict[str, str] = {}
    for file in files:
        other = first_stamp_of_digest.setdefault(file.digest, file.stamp)
        low, high = sorted((root(file.stamp), root(other)))
        parent[high] = low
    return {stamp: root(stamp) for stamp in parent}


def discover() -> list[SpeechRecording]:
    """Every distinct spoken description, sorted by path, with its text where the stamp has it.
    A recording that several stamps share is kept once, under the first path in sorted order."""
    files = read_description_files()
    group_of_stamp = stamp_groups(files)
    texts_of_stamp: dict[str, dict[str, str]] = {}
    seen_digests: set[str] = set()
    recordings = []
    for file in files:
        if file.digest in seen_digests:
            continue  # an outline/variant stamp's copy of a recording already kept
        seen_digests.add(file.digest)
        if file.stamp not in texts_of_stamp:
            texts_of_stamp[file.stamp] = read_descriptions(
                (STAMPS / file.stamp).with_suffix(".txt")
            )
        language = language_of_locale(file.locale)
        recordings.append(
            SpeechRecording(
                family="tuxpaint",
                speaker=f"tuxpaint-{language}",
                language=language,
                key=f"tuxpaint:{file.locale}:{file.stamp}",
                parts=(FilePart(file.path),),
                text=texts_of_stamp[file.stamp].get(file.locale),
                origin=f"Ogg Vorbis {file.sample_rate / 1000:g} kHz",
                package=PACKAGE,
                text_group=f"tuxpaint:{group_of_stamp[file.stamp]}",
            )
        )
    return recordings


FAMILY = BonafideFamily(
    name="tuxpaint",
    packages=(PACKAGE,),
    licence="GPL-2+ (tuxpaint-stamps, Bill Kendrick and contributors)",
    description=(
        "stamp descriptions read by volunteers at home: en, be, bg, ca, da, el, es, fr, lt, ml, "
        "nl, ro, ru (Ogg Vorbis, 44.1 kHz; a few 8 kHz)"
    ),
    discover=discover,
    left_out=(
        "byte-identical copies (outline/photo/colour variants of a stamp); stamp sound effects "
        "and the spoken numbers and letters (not descriptions, mixed sources)"
    ),
)
