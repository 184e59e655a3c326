"""Signed bundles: an ed25519 signature over a bundle's model card, checked against trusted keys.

The card (``model_card.json``) holds the sha256 of every other file of the bundle and the loader
checks them, so a signature over the exact bytes of the card covers the whole bundle.

Key files are PEM, as OpenSSL writes them (``openssl genpkey -algorithm ed25519`` makes a
secret key, ``openssl pkey -pubout`` its public key), so either tool can make or read them:

``NAME.secret``
    The secret key, unencrypted PKCS #8 (``-----BEGIN PRIVATE KEY-----``), mode 0600.
``NAME.pub``
    The public key, SubjectPublicKeyInfo (``-----BEGIN PUBLIC KEY-----``).

A key's id is the first 16 hex digits of the sha256 of its 32 raw public key bytes.

The signature is ``signature.json`` in the bundle folder (not listed in the card, which it
signs)::

    {"format": "dfd-signature/1", "algorithm": "ed25519", "key_id": "<16 hex digits>",
     "signed_file": "model_card.json", "signature": "<base64 of the 64-byte signature>"}

Being a plain ed25519 signature of the card's bytes, it can be checked without dfd too:
``openssl pkeyutl -verify -rawin -pubin -inkey NAME.pub -in model_card.json -sigfile SIG``
with the signature decoded into ``SIG``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dfd.core.safe_files import UnsafeFileError, read_regular_file
from dfd.core.typed_config import ConfigError
from dfd.detectors.bundle import (
    CARD_NAME,
    MAX_CARD_BYTES,
    SIGNATURE_NAME,
    BundleError,
    load_bundle,
)

MAX_SIGNATURE_BYTES = 64 << 10  # a signature is a few hundred bytes
MAX_KEY_FILE_BYTES = 64 << 10  # a PEM key is a few hundred bytes

SIGNATURE_FORMAT: Final = "dfd-signature/1"
ALGORITHM: Final = "ed25519"
PUBLIC_SUFFIX: Final = ".pub"
SECRET_SUFFIX: Final = ".secret"
PUBLIC_PEM: Final = "-----BEGIN PUBLIC KEY-----"
SECRET_PEM: Final = "-----BEGIN PRIVATE KEY-----"
SIGNATURE_BYTES: Final = 64
KEY_ID_DIGITS: Final = 16


class SignatureError(BundleError):
    """A bundle is unsigned, signed by a key that is not trusted, or its signature is bad."""


class KeyFileError(ConfigError):
    """A key file is missing, or does not hold an ed25519 key of the kind expected."""


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_DIGITS]


# -- key files ------------------------------------------------------------------------------


def write_signing_keypair(folder: Path, name: str, force: bool = False) -> tuple[Path, Path]:
    """Generate a key pair and write ``folder/NAME.pub`` and ``folder/NAME.secret`` (mode 0600);
    return their paths (public, secret). Existing files are refused unless ``force``."""
    if not name or name != Path(name).name or name.startswith("."):
        raise ValueError(f"a key name is a plain file name, got {name!r}")
    public_path = folder / f"{name}{PUBLIC_SUFFIX}"
    secret_path = folder / f"{name}{SECRET_SUFFIX}"
    if not force:
        for path in (public_path, secret_path):
            if path.exists():
                raise FileExistsError(f"{path}: already exists; pass force to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    secret = Ed25519PrivateKey.generate()
    secret_pem = secret.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = secret.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_atomically(secret_path, secret_pem, mode=0o600)
    _write_atomically(public_path, public_pem, mode=0o644)
    return public_path, secret_path


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """The ed25519 public key in the PEM file ``path``; ``KeyFileError`` naming it otherwise."""
    path = Path(path)
    data = _read_key_file(path)
    if b"PRIVATE KEY-----" in data:
        raise KeyFileError(
            f"{path}: holds a secret key; give the public key file ({PUBLIC_SUFFIX})"
        )
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise KeyFileError(f"{path}: not a PEM public key ({PUBLIC_PEM})") from error
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an ed25519 public key (another algorithm's)")
    return key


def load_secret_key(path: str | Path) -> Ed25519PrivateKey:
    """The ed25519 secret key in the PEM file ``path``; ``KeyFileError`` naming it otherwise."""
    path = Path(path)
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as error:  # a passphrase is needed
        raise KeyFileError(
            f"{path}: the secret key is encrypted; dfd needs it unencrypted"
        ) from error
    except (ValueError, UnsupportedAlgorithm) as error:
        raise KeyFileError(f"{path}: not an unencrypted PEM secret key ({SECRET_PEM})") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an ed25519 secret key (another algorithm's)")
    return key


def _read_key_file(path: Path) -> bytes:
    try:  # a regular file (its target, for a link) of a few hundred bytes: never a FIFO
        return read_regular_file(path, MAX_KEY_FILE_BYTES, follow_symlinks=True)
    except UnsafeFileError as error:
        raise KeyFileError(str(error)) from error
    except FileNotFoundError as error:
        raise KeyFileError(f"{path}: no such key file") from error
    except OSError as error:
        raise KeyFileError(f"{path}: cannot read the key file ({error.strerror})") from error


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(descriptor, mode)  # the mode whatever the umask, or a partial file left over
        os.write(descriptor, data)
    finally:
        os.close(descriptor)
    os.replace(partial, path)


# -- signatures -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Signature:
    """The content of ``signature.json``."""

    key_id: str
    signature: bytes

    def to_json(self) -> str:
        document = {
            "format": SIGNATURE_FORMAT,
            "algorithm": ALGORITHM,
            "key_id": self.key_id,
            "signed_file": CARD_NAME,
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def read(cls, folder: Path) -> Signature:
        """The signature of the bundle in ``folder``; ``SignatureError`` when there is none or it
        is malformed."""
        path = folder / SIGNATURE_NAME
        try:
            document: Any = json.loads(read_regular_file(path, MAX_SIGNATURE_BYTES).decode())
        except FileNotFoundError as error:
            raise SignatureError(
                f"{folder}: the bundle is not signed (no {SIGNATURE_NAME}) and trusted keys are "
                f"configured; sign it with `dfd models sign`"
            ) from error
        except UnsafeFileError as error:
            raise SignatureError(f"{folder}: {SIGNATURE_NAME}: {error}") from error
        except (OSError, ValueError, RecursionError) as error:
            raise SignatureError(f"{folder}: {SIGNATURE_NAME} is not readable JSON") from error
        expected = {
            "format": SIGNATURE_FORMAT,
            "algorithm": ALGORITHM,
            "signed_file": CARD_NAME,
        }
        if not isinstance(document, dict) or any(
            document.get(key) != value for key, value in expected.items()
        ):
            raise SignatureError(
                f"{folder}: {SIGNATURE_NAME} is not a {SIGNATURE_FORMAT} {ALGORITHM} signature of "
                f"{CARD_NAME}"
            )
        identity, encoded = document.get("key_id"), document.get("signature")
        if not isinstance(identity, str) or not isinstance(encoded, str):
            raise SignatureError(f"{folder}: {SIGNATURE_NAME} lacks its key_id or signature")
        try:
            signature = base64.b64decode(encoded, validate=True)
        except binascii.Error as error:
            raise SignatureError(f"{folder}: {SIGNATURE_NAME}: signature is not base64") from error
        if len(signature) != SIGNATURE_BYTES:
            raise SignatureError(
                f"{folder}: {SIGNATURE_NAME}: an ed25519 signature is {SIGNATURE_BYTES} bytes, "
                f"got {len(signature)}"
            )
        return cls(identity, signature)


def sign_bundle(bundle_folder: str | Path, secret_key_path: str | Path) -> Signature:
    """Verify the bundle in ``bundle_folder`` (every sha256, the ONNX contract), sign the bytes
    of its card with the secret key and write ``signature.json`` there (replacing one)."""
    folder = Path(bundle_folder)
    secret = load_secret_key(secret_key_path)
    load_bundle(folder)  # a bundle that does not verify is never signed
    card = read_regular_file(folder / CARD_NAME, MAX_CARD_BYTES)
    signature = Signature(key_id(secret.public_key()), secret.sign(card))
    _write_atomically(folder / SIGNATURE_NAME, signature.to_json().encode("utf-8"), mode=0o644)
    return signature


@dataclasses.dataclass(frozen=True)
class TrustedKey:
    path: Path
    key: Ed25519PublicKey

    @property
    def key_id(self) -> str:
        return key_id(self.key)


class TrustedKeys:
    """The public keys a bundle's signature must come from (``[models] trusted_keys``)."""

    def __init__(self, keys: Sequence[TrustedKey]) -> None:
        if not keys:
            raise ConfigError("give at least one trusted key")
        self.keys = {key.key_id: key for key in keys}

    @classmethod
    def from_files(
        cls, paths: Sequence[str | Path], setting: str = "models.trusted_keys"
    ) -> TrustedKeys:
        """The public keys in the PEM files ``paths``; a ``KeyFileError`` naming ``setting`` and
        the file when one is missing or is not an ed25519 public key."""
        keys = []
        for path in paths:
            try:
                keys.append(TrustedKey(Path(path), load_public_key(path)))
            except KeyFileError as error:
                raise KeyFileError(f"{setting}: {error}") from error
        return cls(keys)

    def describe(self) -> str:
        return ", ".join(f"{identity} ({key.path})" for identity, key in self.keys.items())

    def verify_card(self, folder: Path, card: bytes) -> TrustedKey:
        """Check that ``card``, the bytes of the card of the bundle in ``folder``, carries a good
        signature by one of the keys; return that key. ``SignatureError`` otherwise."""
        signature = Signature.read(folder)
        trusted = self.keys.get(signature.key_id)
        if trusted is None:
            raise SignatureError(
                f"{folder}: signed by key {signature.key_id}, which is not trusted (trusted: "
                f"{self.describe()})"
            )
        try:
            trusted.key.verify(signature.signature, card)
        except InvalidSignature as error:
            raise SignatureError(
                f"{folder}: bad signature: {CARD_NAME} is not what key {signature.key_id} "
                f"signed (changed after signing, or {SIGNATURE_NAME} damaged)"
            ) from error
        return trusted


def verify_bundle_signature(bundle_folder: str | Path, trusted_keys: TrustedKeys) -> TrustedKey:
    """Check the signature of the bundle in ``bundle_folder`` (its card only; ``load_bundle``
    with ``trusted_keys`` checks both, over the very bytes it then reads)."""
    folder = Path(bundle_folder)
    try:
        card = read_regular_file(folder / CARD_NAME, MAX_CARD_BYTES)
    except OSError as error:
        raise BundleError(f"{folder}: not a bundle: cannot read {CARD_NAME} ({error})") from error
    return trusted_keys.verify_card(folder, card)
