"""CURVE keys: encryption and authentication for the event bus and the PCM ingest.

A key pair is two files in ZeroMQ's certificate format (the one czmq and pyzmq's ``zmq.auth``
read and write): ``NAME.key`` holds the public key and may be handed out; ``NAME.key_secret``
holds both keys, is created with mode 0600 and is refused when it is open to every user.

The daemon is the CURVE server of both sockets (``CurveServer``). Its clients (subscribers,
media servers pushing PCM) need the daemon's public key and a key pair of their own
(``CurveClient``). Without a list of authorised clients, any client that knows the daemon's
public key gets in (the traffic is still encrypted); with one, a ZAP handler on the socket's
ZeroMQ context lets in only the clients whose public keys are listed, and the others receive
nothing and can send nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import structlog
import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.z85 import Z85CHARS

from dfd.core.safe_files import UnsafeFileError, read_regular_file
from dfd.core.typed_config import ConfigError

if TYPE_CHECKING:
    from dfd.daemon.settings import ServeSettings

log = structlog.get_logger(__name__)

PUBLIC_SUFFIX: Final = ".key"
SECRET_SUFFIX: Final = ".key_secret"
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_Z85_KEY_LENGTH = 40  # a 32-byte CURVE key, Z85-encoded
MAX_KEY_FILE_BYTES = 64 << 10  # a certificate is a few hundred bytes

_PUBLIC_BANNER = """\
#   ****  Generated on {now} by dfd  ****
#   ZeroMQ CURVE Public Certificate
#   Exchange securely, or use a secure mechanism to verify the contents
#   of this file after exchange.

"""
_SECRET_BANNER = """\
#   ****  Generated on {now} by dfd  ****
#   ZeroMQ CURVE **Secret** Certificate
#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.

"""


class KeyFileError(ValueError):
    """A certificate file or folder is missing, unreadable, malformed or open to everyone."""


@dataclasses.dataclass(frozen=True)
class KeyPair:
    """A CURVE key pair, both keys Z85-encoded (40 bytes each)."""

    public: bytes
    secret: bytes = dataclasses.field(repr=False)

    @classmethod
    def generate(cls) -> KeyPair:
        public, secret = zmq.curve_keypair()
        return cls(public, secret)


def generate_key_pair(folder: Path, name: str, *, force: bool = False) -> tuple[Path, Path]:
    """Write a new pair as ``folder/NAME.key`` and ``folder/NAME.key_secret`` (mode 0600).

    Refuses to replace an existing file of either name unless ``force``. Each file is written
    under a temporary name and renamed into place, so a reader never sees half a key.
    """
    if not KEY_NAME.fullmatch(name):
        raise KeyFileError(
            f"key name {name!r}: use letters, digits, '.', '_' and '-', starting with a letter "
            "or digit"
        )
    public_path = folder / f"{name}{PUBLIC_SUFFIX}"
    secret_path = folder / f"{name}{SECRET_SUFFIX}"
    existing = [str(path) for path in (public_path, secret_path) if path.exists()]
    if existing and not force:
        raise KeyFileError(f"{', '.join(existing)} already exist(s); --force replaces the pair")
    pair = KeyPair.generate()
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        secret_text = _SECRET_BANNER.format(now=now) + _curve_section(pair)
        _write_atomically(secret_path, secret_text, 0o600)
        public_text = _PUBLIC_BANNER.format(now=now) + _curve_section(pair, with_secret=False)
        _write_atomically(public_path, public_text, 0o644)
    except OSError as error:
        raise KeyFileError(
            f"{folder}: cannot write the key pair there ({error.strerror})"
        ) from error
    return public_path, secret_path


def load_public_key(path: Path) -> bytes:
    """The public key of a certificate (a public one, or a secret one, which holds both)."""
    keys = _read_certificate(path)
    if "public-key" not in keys:
        raise KeyFileError(f"{path}: no public-key in it; is it a ZeroMQ CURVE certificate?")
    return keys["public-key"]


def load_key_pair(path: Path) -> KeyPair:
    """Both keys of a secret certificate (``NAME.key_secret``).

    Refused when the file is open to every user (any of the mode's "other" bits), when it holds
    no secret key, or when its public key does not belong to its secret key.
    """
    keys = _read_certificate(path)
    if "secret-key" not in keys:
        raise KeyFileError(
            f"{path}: no secret-key in it; give the secret certificate ({SECRET_SUFFIX}), "
            "not the public one"
        )
    mode = path.stat().st_mode & 0o777
    if mode & 0o007:
        raise KeyFileError(
            f"{path}: a secret key open to every user (mode {mode:04o}); chmod 600 it"
        )
    secret = keys["secret-key"]
    public = zmq.curve_public(secret)
    if keys.get("public-key", public) != public:
        raise KeyFileError(f"{path}: its public-key does not belong to its secret-key")
    return KeyPair(public, secret)


def load_client_keys(folder: Path) -> frozenset[bytes]:
    """The public keys of every ``*.key`` certificate in ``folder`` (secret ones are skipped)."""
    if not folder.is_dir():
        raise KeyFileError(f"{folder}: not a folder of public certificates")
    try:
        paths = sorted(folder.glob(f"*{PUBLIC_SUFFIX}"))
    except OSError as error:
        raise KeyFileError(f"{folder}: cannot read it ({error.strerror})") from error
    if not paths:
        raise KeyFileError(
            f"{folder}: no public certificates (*{PUBLIC_SUFFIX}) in it, so no client could connect"
        )
    return frozenset(load_public_key(path) for path in paths)


@dataclasses.dataclass(frozen=True)
class CurveServer:
    """The daemon's side: its key pair, and the public keys of the clients it lets in
    (``None``: any client that knows the daemon's public key)."""

    keys: KeyPair
    clients: frozenset[bytes] | None = None

    def secure(self, socket: zmq.Socket[Any]) -> None:
        """Make ``socket`` a CURVE server; call before ``bind``."""
        socket.setsockopt(zmq.CURVE_SERVER, 1)
        socket.setsockopt(zmq.CURVE_SECRETKEY, self.keys.secret)
        socket.setsockopt(zmq.CURVE_PUBLICKEY, self.keys.public)

    def start_authenticator(self, context: zmq.Context[Any]) -> ThreadAuthenticator | None:
        """Start the ZAP handler that checks client keys on ``context``, when there is a list
        of clients; the caller stops it before terminating the context. One per context."""
        if self.clients is None:
            return None
        authenticator = ThreadAuthenticator(context, log=logging.getLogger(__name__))
        authenticator.configure_curve_callback("*", _AuthorisedClients(self.clients))
        authenticator.start()
        return authenticator

    def describe(self) -> str:
        """For logs: who may connect."""
        if self.clients is None:
            return "any client with the daemon's public key"
        return f"{len(self.clients)} authorised client key(s)"


def load_curve_server(serve: ServeSettings) -> CurveServer | None:
    """The daemon's keys and client list from ``[serve]``; None when CURVE is off there.
    A key file or folder that cannot be used is a ``ConfigError`` naming the setting."""
    if not serve.curve_secret_key:
        return None
    try:
        keys = load_key_pair(Path(serve.curve_secret_key))
    except KeyFileError as error:
        raise ConfigError(f"serve.curve_secret_key: {error}") from error
    if not serve.curve_clients:
        return CurveServer(keys)
    try:
        return CurveServer(keys, load_client_keys(Path(serve.curve_clients)))
    except KeyFileError as error:
        raise ConfigError(f"serve.curve_clients: {error}") from error


@dataclasses.dataclass(frozen=True)
class CurveClient:
    """A subscriber's or a PCM sender's side: its key pair and the daemon's public key."""

    keys: KeyPair
    server_key: bytes

    @classmethod
    def from_files(cls, server_key: Path, client_key: Path | None = None) -> CurveClient:
        """``server_key``: the daemon's certificate; ``client_key``: this client's secret
        certificate, or None for a throw-away pair (enough when the daemon lists no clients)."""
        pair = KeyPair.generate() if client_key is None else load_key_pair(client_key)
        return cls(pair, load_public_key(server_key))

    def secure(self, socket: zmq.Socket[Any]) -> None:
        """Make ``socket`` a CURVE client of the daemon; call before ``connect``."""
        socket.setsockopt(zmq.CURVE_SERVERKEY, self.server_key)
        socket.setsockopt(zmq.CURVE_PUBLICKEY, self.keys.public)
        socket.setsockopt(zmq.CURVE_SECRETKEY, self.keys.secret)


class _AuthorisedClients:
    """ZAP credentials provider for ``ThreadAuthenticator``: lets in the listed keys only."""

    def __init__(self, keys: frozenset[bytes]) -> None:
        self.keys = keys
        self._refused: set[bytes] = set()

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.keys:
            return True
        if key not in self._refused:  # a refused client may retry; say so once per key
            self._refused.add(key)
            log.warning("curve_client_refused", client_key=key.decode("ascii", "replace"))
        return False


def _curve_section(pair: KeyPair, *, with_secret: bool = True) -> str:
    lines = ["metadata", "curve", f'    public-key = "{pair.public.decode("ascii")}"']
    if with_secret:
        lines.append(f'    secret-key = "{pair.secret.decode("ascii")}"')
    return "\n".join(lines) + "\n"


def _write_atomically(path: Path, text: str, mode: int) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(handle, "w", encoding="ascii") as file:
            file.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_certificate(path: Path) -> dict[str, bytes]:
    """The ``public-key`` and ``secret-key`` lines of a certificate, each checked to be Z85."""
    try:  # a regular file (its target, for a link) of a few hundred bytes: never a FIFO
        data = read_regular_file(path, MAX_KEY_FILE_BYTES, follow_symlinks=True)
    except UnsafeFileError as error:
        raise KeyFileError(str(error)) from error
    except OSError as error:
        raise KeyFileError(f"{path}: cannot read it ({error.strerror})") from error
    keys: dict[str, bytes] = {}
    for line in data.splitlines():
        name, equals, value = line.strip().partition(b"=")
        name = name.strip()
        if line.lstrip().startswith(b"#") or not equals:
            continue
        if name in (b"public-key", b"secret-key"):
            key = value.strip(b" \t'\"")
            if len(key) != _Z85_KEY_LENGTH or not set(key) <= set(Z85CHARS):
                raise KeyFileError(f"{path}: its {name.decode()} is not a Z85-encoded CURVE key")
            keys[name.decode()] = key
    return keys
