"""Text that reaches a terminal or a one-line message.

Call ids, file names and configuration keys come from outside: a call id holding an escape
sequence could recolour or rewrite an operator's terminal (a forged "ALERT CLEARED" line), and a
line break would split one message into two. ``printable`` shows such characters as Python
escapes instead.
"""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with every character that is not printable (control characters, escape, line
    breaks, bidirectional overrides) written as its Python escape, e.g. ``\\x1b``."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
