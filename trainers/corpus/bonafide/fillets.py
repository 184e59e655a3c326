"""Fish Fillets NG: the two lead fish, voiced in Czech and in Dutch, with the lines they say.

Each level's ``script/<level>/dialogs_<lang>.lua`` names every recorded line with its font,
and the font is the speaker: ``font_small`` is the small fish, ``font_big`` the big one. Only
those two are kept. The other creatures (parrot, statue, robot dog, vikings, crabs, the two
"linuxers", ...) are left out: many are voices processed with effects, and a processed voice is
not bona fide. A line the script does not attribute (no entry, or no font) is left out too.

The Czech fish of the seven levels Fish Fillets NG added to the original game are other
speakers: recorded later, at 44.1 kHz instead of 22.05 kHz, and lower (median F0 of the small
fish 198-232 Hz against 220-309 Hz per original level; of the big fish 99-129 Hz against
104-153 Hz). They are left out rather than given to the wrong speaker. The Dutch dub is one
recording of every level and keeps them.
"""

from __future__ import annotations

import re
from pathlib import Path

from dfd.trainers.corpus.bonafide.family import BonafideFamily
from dfd.trainers.corpus.recordings import FilePart, SpeechRecording

FILLETS_ROOT = Path("/usr/share/games/fillets-ng")
PACKAGES = {"cs": "debian:fillets-ng-data-cs", "nl": "debian:fillets-ng-data-nl"}
# The level scripts: each line's text and the font (so the fish) that speaks it. Only recommended
# by the voice packages, so an install without recommends lacks it and would find no lead lines.
SCRIPTS_PACKAGE = "debian:fillets-ng-data"
ORIGINS = {"cs": "Ogg Vorbis 22.05 kHz mono", "nl": "Ogg Vorbis 22.05 kHz stereo"}
LEAD_FONTS = {"font_small": "small", "font_big": "big"}

# Czech recordings of the levels Fish Fillets NG added: other speakers (module docstring).
LATER_CZECH_LEVELS = ("fdto", "hanoi", "hole", "keys", "linux", "nowall", "rush")
# Lead lines whose Ogg file holds no samples (soundfile.info(path).frames == 0).
EMPTY_FILES = ("elevator1/nl/zd1-m-cesta.ogg", "gems/nl/zav-v-sto.ogg")

_DIALOG = re.compile(
    r'dialogId\("(?P<id>[^"]*)",\s*"(?P<font>[^"]*)",\s*"(?:[^"\\]|\\.)*"\)\s*'
    r'dialogStr\(\s*"(?P<text>(?:[^"\\]|\\.)*)"\)'
)
_ESCAPE = re.compile(r"\\(.)")


def read_dialogs(level: str, language: str) -> dict[str, tuple[str, str]]:
    """Line id -> (font, text in ``language``) from a level's dialog scripts.

    ``share`` holds the jokes and shouts common to all levels, in several ``*_dialogs_*.lua``.
    """
    dialogs: dict[str, tuple[str, str]] = {}
    for script in sorted((FILLETS_ROOT / "script" / level).glob(f"*dialogs_{language}.lua")):
        for match in _DIALOG.finditer(script.read_text(encoding="utf-8")):
            text = _ESCAPE.sub(r"\1", match["text"]).strip()
            dialogs.setdefault(match["id"], (match["font"], text))
    return dialogs


def discover() -> list[SpeechRecording]:
    """Every line of the two lead fish, in Czech and Dutch, with its text."""
    sound_root = FILLETS_ROOT / "sound"
    recordings: list[SpeechRecording] = []
    for language, package in PACKAGES.items():
        dialogs_by_level: dict[str, dict[str, tuple[str, str]]] = {}
        for path in sorted(sound_root.glob(f"**/{language}/*.ogg")):
            relative = path.relative_to(sound_root)
            level = relative.parts[0]
            if relative.as_posix() in EMPTY_FILES:
                continue
            if language == "cs" and level in LATER_CZECH_LEVELS:
                continue
            if level not in dialogs_by_level:
                dialogs_by_level[level] = read_dialogs(level, language)
            font, text = dialogs_by_level[level].get(path.stem, ("", ""))
            if font not in LEAD_FONTS:
                continue
            line = "/".join((*relative.parts[:-2], path.stem))
            recordings.append(
                SpeechRecording(
                    family="fillets",
                    speaker=f"fillets-{language}-{LEAD_FONTS[font]}",
                    language=language,
                    key=f"{language}/{line}",
                    parts=(FilePart(path),),
                    text=text or None,
                    origin=ORIGINS[language],
                    package=package,
                    text_group=line,
                )
            )
    return sorted(recordings, key=lambda recording: recording.key)


FAMILY = BonafideFamily(
    name="fillets",
    packages=(*PACKAGES.values(), SCRIPTS_PACKAGE),
    licence="GPL-2",
    description=(
        "Fish Fillets NG: the small and the big fish, voice-acted in Czech (the original game) "
        "and Dutch (a later dub), one line per file with its text from the level scripts"
    ),
    discover=discover,
    left_out=(
        "the other creatures' voices (many processed with effects), lines spoken by both fish "
        "or with no font in the script, the Czech lines of the seven levels added by Fish "
        "Fillets NG (other speakers, 44.1 kHz), two empty Dutch files"
    ),
)
