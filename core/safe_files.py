"""Reading files that come from outside (bundles, signatures, settings) without being led
astray: a symbolic link in a bundle is refused rather than followed (it could point anywhere, and
``models sign --out`` would copy its target; a settings file may be a link, to a regular file),
anything that is not a regular file (a FIFO, a device) is refused rather than read (a FIFO blocks
the reader forever), and a file larger than its kind can be is refused before it is read whole.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UnsafeFileError(OSError):
    """A file dfd will not read: a symbolic link, not a regular file, or too large."""


def open_regular_file(
    path: str | Path, max_bytes: int | None = None, *, follow_symlinks: bool = False
) -> int:
    """A read-only descriptor on ``path``, a regular file that is not a symbolic link (unless
    ``follow_symlinks``: then its target must be one) and at most ``max_bytes`` long.
    ``FileNotFoundError`` and ``PermissionError`` as ``os.open`` raises them; ``UnsafeFileError``
    for the rest. The caller closes it."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        if os.path.islink(path):  # O_NOFOLLOW fails with ELOOP on a link
            raise UnsafeFileError(
                f"{path}: a symbolic link; dfd reads only regular files"
            ) from None
        raise error
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise UnsafeFileError(f"{path}: not a regular file (a FIFO, device or folder)")
        if max_bytes is not None and status.st_size > max_bytes:
            raise UnsafeFileError(
                f"{path}: {status.st_size} bytes, more than the {max_bytes} such a file can hold"
            )
        os.set_blocking(descriptor, True)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def read_regular_file(
    path: str | Path, max_bytes: int | None = None, *, follow_symlinks: bool = False
) -> bytes:
    """The bytes of ``path`` (see ``open_regular_file``)."""
    descriptor = open_regular_file(path, max_bytes, follow_symlinks=follow_symlinks)
    with os.fdopen(descriptor, "rb") as stream:
        data = stream.read() if max_bytes is None else stream.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:  # it grew while we read
        raise UnsafeFileError(f"{path}: more than the {max_bytes} bytes such a file can hold")
    return data
