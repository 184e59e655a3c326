"""Warzone 2100: the announcer of the 1999 game, read from the uncompressed ``base.wz`` archive.

The announcer (mission messages, detections, research, production, the tutorial and the
campaign's proximity messages) speaks plainly, with the whole band down to the fundamental.
The other voices are left out because they are processed, measured on the decoded files
(energy below 300 Hz relative to 50 Hz-5 kHz, median per folder; pyworld voiced fraction):

- ``memressp/cmndrvoc`` (commander reports), ``trnsppil`` (transport pilot), ``vtoltalk`` and
  ``countdown``: radio effect, the band below 300 Hz cut to -27..-35 dB (the announcer: -2..-8
  dB), ``vtoltalk`` and ``countdown`` also nearly unvoiced (3 % and 10 % of frames);
- ``coltive`` (the Collective) and ``nexus`` (the NEXUS AI): robotic voices, 2 % and 24 %
  voiced at a flat 79-100 Hz;
- ``taunts``: laughs and shouted taunts, two of the three sets at an unnaturally flat pitch
  (F0 interquartile range 16-24 Hz);
- ``multi``, ``radclick``, ``sequenceaudio`` and ``sfx``: effects and music, not speech.

Where ``audio/audio.cfg`` names a line in a comment (``/*Research Completed*/``), that is its
text. The tutorial's on-screen messages are not: many are longer than their recording could
hold (up to 48 characters a second), so tutorial lines have no text.
"""

from __future__ import annotations

import re
import struct
import zipfile
from pathlib import Path

from dfd.trainers.corpus.bonafide.family import BonafideFamily
from dfd.trainers.corpus.recordings import EmbeddedClipPart, SpeechRecording

ARCHIVE = Path("/usr/share/games/warzone2100/base.wz")
ANNOUNCER_FOLDERS = ("audio/extra/", "audio/memressp/", "audio/proxmessages/", "audio/tutorial/")
PROCESSED_FOLDERS = ("audio/memressp/cmndrvoc/",)
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., file name length, extra length
_CONFIG_LINE = re.compile(r'audio\s+"(?P<file>[^"]+)".*?/\*(?P<text>[^*]*)\*/')


def _data_offset(archive: Path, member: zipfile.ZipInfo) -> int:
    """Where a stored member's bytes start: after its local header, name and extra field."""
    with archive.open("rb") as stream:
        stream.seek(member.header_offset)
        signature, name_length, extra_length = _LOCAL_HEADER.unpack(stream.read(_LOCAL_HEADER.size))
    if signature != b"PK\x03\x04":
        raise ValueError(f"{archive}: no local header for {member.filename}")
    offset: int = member.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    return offset


def read_line_texts(archive: zipfile.ZipFile) -> dict[str, str]:
    """File name -> the words ``audio.cfg`` gives it in a comment (first mention wins)."""
    texts: dict[str, str] = {}
    for match in _CONFIG_LINE.finditer(archive.read("audio/audio.cfg").decode("latin-1")):
        text = " ".join(match["text"].split()).rstrip(":")
        if text:
            texts.setdefault(match["file"], text)
    return texts


def discover() -> list[SpeechRecording]:
    """The announcer's lines; a name stored twice (console/ and missmesg/) is kept once."""
    recordings: list[SpeechRecording] = []
    seen_names: set[str] = set()
    with zipfile.ZipFile(ARCHIVE) as archive:
        texts = read_line_texts(archive)
        members = sorted(archive.infolist(), key=lambda member: member.filename)
        for member in members:
            name = member.filename
            if not name.endswith(".ogg") or not name.startswith(ANNOUNCER_FOLDERS):
                continue
            if name.startswith(PROCESSED_FOLDERS) or Path(name).name in seen_names:
                continue
            if member.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"{ARCHIVE}: {name} is compressed; expected stored members")
            seen_names.add(Path(name).name)
            part = EmbeddedClipPart(
                ARCHIVE, _data_offset(ARCHIVE, member), member.file_size, demuxer="ogg"
            )
            tutorial = name.startswith("audio/tutorial/")
            recordings.append(
                SpeechRecording(
                    family="warzone",
                    speaker="warzone-announcer",
                    language="en",
                    key=name.removeprefix("audio/").removesuffix(".ogg"),
                    parts=(part,),
                    text=None if tutorial else texts.get(Path(name).name),
                    origin="Ogg Vorbis 11.025 kHz mono",
                    package="debian:warzone2100-data",
                )
            )
    return recordings


FAMILY = BonafideFamily(
    name="warzone",
    packages=("debian:warzone2100-data",),
    licence="GPL-2+",
    description=(
        "Warzone 2100 (Pumpkin Studios, 1999): the announcer's mission, status and tutorial "
        "lines, 11.025 kHz, with their words from audio.cfg where it gives them"
    ),
    discover=discover,
    left_out=(
        "radio-effect voices (commander reports, transport pilot, VTOL talk, countdown), the "
        "robotic Collective and NEXUS voices, multiplayer taunts (laughs, flat pitch), effects "
        "and music; second copies of six lines stored in two folders"
    ),
)
