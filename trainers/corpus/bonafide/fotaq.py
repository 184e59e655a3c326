"""Flight of the Amazon Queen (CD version, 1995): English voice acting, MP3 clips in one archive.

``queen.1c`` is ScummVM's rebuilt resource file: ``QTBL``, a 6-byte version (``CEM10``), 2 bytes,
the compression of its sounds (1: MP3), a big-endian 16-bit entry count, then entries of 21 bytes
(12-byte NUL-padded name, bundle byte, big-endian 32-bit offset and size). Speech clips are the
``.SB`` entries, MP3 at 11.025 kHz, 16 kbit/s.

Dialogue clips are named by ScummVM's ``Talk`` (``engines/queen/talk.cpp``): ``%2d%4x[JP]<n>``,
the dialogue's talk key, the line's id (``SSSS`` and ``XXXX`` for greetings), ``J`` for Joe or
``P`` for the person Joe talks to, and the segment. Each ``.DOG`` dialogue file names the person and
holds its talk key (big-endian 16-bit at byte 24), so a ``P`` clip's speaker is the character whose
dialogue file has that key. ``JOE<n>`` clips are Joe's own remarks.

The speaker is the character (``fotaq-joe``, ``fotaq-sparky``, ...): the game's small cast very
likely voices several characters each, and the package does not say who voiced whom.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from dfd.trainers.corpus.bonafide.family import BonafideFamily
from dfd.trainers.corpus.recordings import EmbeddedClipPart, SpeechRecording

RESOURCE_FILE = Path("/usr/share/scummvm/flight-of-the-amazon-queen/queen.1c")
PACKAGE = "debian:flight-of-the-amazon-queen"
MP3_COMPRESSION = 1
ENTRY_BYTES = 21
TABLE_START = 15  # "QTBL" (4) + version (6) + 2 bytes + compression (1) + entry count (2)
DOG_HEADER_BYTES = 20  # ScummVM's DOG_HEADER_SIZE, skipped before the talk header
TALK_KEY_OFFSET = DOG_HEADER_BYTES + 4  # after levelMax and uniqueKey
CLIP_BITRATE = 16_000  # bit/s of the packaged MP3 speech
ORIGIN = "MP3 11.025 kHz 16 kbit/s"

DIALOGUE_CLIP = re.compile(r"(?P<talk_key>\d\d)(?:[0-9A-F]{4}|SSSS|XXXX)(?P<who>[JP])\d\.SB")
JOE_REMARK_CLIP = re.compile(r"JOE\d{5}\.SB")

# The dog's dialogue (DOG.DOG, 6 clips, 18 s): an animal's lines, which may be barks rather than
# human speech; nobody has listened, so it stays out of a class that must be human speech.
LEFT_OUT_CHARACTERS: tuple[str, ...] = ("dog",)


@dataclass(frozen=True)
class ResourceEntry:
    """One file inside ``queen.1c``."""

    name: str
    offset: int
    size: int

    @property
    def estimated_seconds(self) -> float:
        """Duration from the size at the packaged constant bit rate."""
        return self.size * 8 / CLIP_BITRATE


def read_resource_table(path: Path = RESOURCE_FILE) -> list[ResourceEntry]:
    """The entries of a rebuilt (``QTBL``) FOTAQ resource file whose sounds are MP3."""
    with path.open("rb") as stream:
        header = stream.read(TABLE_START)
        if header[:4] != b"QTBL" or header[12] != MP3_COMPRESSION:
            raise ValueError(f"{path} is not a rebuilt FOTAQ resource file with MP3 sounds")
        (count,) = struct.unpack(">H", header[13:15])
        table = stream.read(count * ENTRY_BYTES)
    entries = []
    for index in range(count):
        raw = table[index * ENTRY_BYTES : (index + 1) * ENTRY_BYTES]
        _bundle, offset, size = struct.unpack(">BII", raw[12:])
        entries.append(ResourceEntry(raw[:12].split(b"\0")[0].decode("ascii"), offset, size))
    return entries


def character_of_dialogue(name: str) -> str:
    """``SPARKY3.DOG`` -> ``sparky``: the person of a dialogue file."""
    return re.sub(r"\d+$", "", name.removesuffix(".DOG")).lower()


def characters_by_talk_key(entries: list[ResourceEntry], path: Path) -> dict[int, str]:
    """``talk key -> character``, read from every ``.DOG`` dialogue file's talk header."""
    characters: dict[int, str] = {}
    with path.open("rb") as stream:
        for entry in entries:
            if entry.name.endswith(".DOG"):
                stream.seek(entry.offset + TALK_KEY_OFFSET)
                (talk_key,) = struct.unpack(">h", stream.read(2))
                characters[talk_key] = character_of_dialogue(entry.name)
    return characters


def speaker_of_clip(name: str, characters: dict[int, str]) -> str | None:
    """The character who speaks a clip, or ``None`` where its name does not tell."""
    if JOE_REMARK_CLIP.fullmatch(name):
        return "joe"
    match = DIALOGUE_CLIP.fullmatch(name)
    if match is None:
        return None
    if match["who"] == "J":
        return "joe"
    return characters.get(int(match["talk_key"]))


def discover() -> list[SpeechRecording]:
    """Every dialogue line and remark whose speaker the clip name tells, sorted by clip name."""
    entries = read_resource_table(RESOURCE_FILE)
    characters = characters_by_talk_key(entries, RESOURCE_FILE)
    recordings = []
    for entry in sorted(entries, key=lambda entry: entry.name):
        character = speaker_of_clip(entry.name, characters)
        if character is None or character in LEFT_OUT_CHARACTERS:
            continue
        stem = entry.name.removesuffix(".SB")
        recordings.append(
            SpeechRecording(
                family="fotaq",
                speaker=f"fotaq-{character}",
                language="en",
                key=f"fotaq:{stem}",
                parts=(EmbeddedClipPart(RESOURCE_FILE, entry.offset, entry.size, "mp3"),),
                text=None,
                origin=ORIGIN,
                package=PACKAGE,
                text_group=f"fotaq:{stem}",
            )
        )
    return recordings


FAMILY = BonafideFamily(
    name="fotaq",
    packages=(PACKAGE,),
    licence="Flight of the Amazon Queen licence (free redistribution, modification allowed; "
    "(C) John Passfield and Steven Stamatiadis)",
    description="English voice acting of an adventure game, one speaker per character",
    discover=discover,
    left_out=(
        "cutaway scenes (C*.SB: several characters, the speaker is in the scene script, not the "
        "name); other .SB clips whose name does not tell the speaker; the dog's lines; sound "
        "effects (.SAM), music (.MUS) and everything that is not speech"
    ),
)
