"""Signed bundles: key files, ``signature.json``, loading with trusted keys (``load_bundle``,
``ModelSet``, ``dfd replay``, the daemon's reload) and the refusals, on copies of the embedded
default bundle. OpenSSL checks the signatures independently of dfd. Also: nothing in the source
tree unpickles."""

from __future__ import annotations

import ast
import base64
import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from structlog.testing import capture_logs

from dfd.core.typed_config import ConfigError
from dfd.daemon.cli import main
from dfd.daemon.engine.models import ModelSet, default_bundle_path
from dfd.daemon.service.serve import Daemon, load_models
from dfd.daemon.settings import load_settings
from dfd.detectors.bundle import (
    CARD_NAME,
    MODEL_NAME,
    SIGNATURE_NAME,
    BundleError,
    load_bundle,
    read_card,
    write_bundle,
)
from dfd.detectors.signing import (
    KeyFileError,
    SignatureError,
    TrustedKeys,
    key_id,
    load_public_key,
    load_secret_key,
    sign_bundle,
    verify_bundle_signature,
    write_signing_keypair,
)
from tests.signals import REPO

DFD = str(Path(sys.executable).with_name("dfd"))
DEMO_CALL = REPO / "samples" / "call-bonafide-then-synthetic-8k-ulaw.wav"
SOURCE_FOLDERS = ("core", "daemon", "dsp", "detectors", "trainers", "scripts", "benchmarks")


@dataclasses.dataclass(frozen=True)
class KeyPair:
    public: Path
    secret: Path

    @property
    def key_id(self) -> str:
        return key_id(load_public_key(self.public))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    """Two key pairs: ``release`` (trusted) and ``other`` (not)."""
    folder = tmp_path_factory.mktemp("keys")
    return {name: KeyPair(*write_signing_keypair(folder, name)) for name in ("release", "other")}


@pytest.fixture(scope="module")
def trusted(keys: dict[str, KeyPair]) -> TrustedKeys:
    return TrustedKeys.from_files([keys["release"].public])


def copy_default(folder: Path) -> Path:
    shutil.copytree(default_bundle_path(), folder)
    return folder


@pytest.fixture
def signed(tmp_path: Path, keys: dict[str, KeyPair]) -> Path:
    """A copy of the default bundle signed with the trusted key."""
    bundle = copy_default(tmp_path / "signed")
    sign_bundle(bundle, keys["release"].secret)
    return bundle


def flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def one_line_naming(error: BaseException, folder: Path) -> str:
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"{folder}: ")
    return message


# --- key files -------------------------------------------------------------------------------


def test_a_key_pair_is_two_pem_files_and_the_secret_one_is_private(tmp_path: Path) -> None:
    public, secret = write_signing_keypair(tmp_path / "keys", "ops")
    assert (public.name, secret.name) == ("ops.pub", "ops.secret")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----\n")
    assert secret.read_text().startswith("-----BEGIN PRIVATE KEY-----\n")
    assert key_id(load_secret_key(secret).public_key()) == key_id(load_public_key(public))
    assert sorted(path.name for path in (tmp_path / "keys").iterdir()) == ["ops.pub", "ops.secret"]


def test_a_key_pair_is_not_replaced_unless_forced(tmp_path: Path) -> None:
    public, _ = write_signing_keypair(tmp_path, "ops")
    first = key_id(load_public_key(public))
    with pytest.raises(FileExistsError, match=r"ops\.pub: already exists"):
        write_signing_keypair(tmp_path, "ops")
    assert key_id(load_public_key(public)) == first
    public, secret = write_signing_keypair(tmp_path, "ops", force=True)
    assert key_id(load_public_key(public)) != first
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


@pytest.mark.parametrize("name", ["", "../ops", "a/b", ".hidden"])
def test_a_key_name_is_a_plain_file_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        write_signing_keypair(tmp_path, name)


def test_openssl_makes_keys_dfd_reads_and_checks_dfd_signatures(
    tmp_path: Path, signed: Path, keys: dict[str, KeyPair]
) -> None:
    """The formats are plain PEM and a raw ed25519 signature of the card's bytes."""
    openssl_secret, openssl_public = tmp_path / "o.secret", tmp_path / "o.pub"
    run = ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(openssl_secret)]
    subprocess.run(run, check=True, capture_output=True)
    run = ["openssl", "pkey", "-in", str(openssl_secret), "-pubout", "-out", str(openssl_public)]
    subprocess.run(run, check=True, capture_output=True)
    assert key_id(load_secret_key(openssl_secret).public_key()) == key_id(
        load_public_key(openssl_public)
    )

    document = json.loads((signed / SIGNATURE_NAME).read_text())
    signature = tmp_path / "card.sig"
    signature.write_bytes(base64.b64decode(document["signature"]))

    def openssl_verify(public: Path) -> subprocess.CompletedProcess[str]:
        command = ["openssl", "pkeyutl", "-verify", "-rawin", "-pubin", "-inkey", str(public)]
        command += ["-in", str(signed / CARD_NAME), "-sigfile", str(signature)]
        return subprocess.run(command, capture_output=True, text=True)

    assert openssl_verify(keys["release"].public).returncode == 0
    assert openssl_verify(keys["other"].public).returncode != 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such key file"),
        (b"not a key\n", "not a PEM public key (-----BEGIN PUBLIC KEY-----)"),
        ("secret", "holds a secret key; give the public key file (.pub)"),
        ("ec", "not an ed25519 public key (another algorithm's)"),
    ],
)
def test_a_trusted_key_file_that_cannot_be_used_is_a_config_error(
    tmp_path: Path, keys: dict[str, KeyPair], content: bytes | str | None, message: str
) -> None:
    path = tmp_path / "trusted.pub"
    if content == "secret":
        path = keys["release"].secret
    elif content == "ec":
        ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
        path.write_bytes(
            ec_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(ConfigError) as raised:
        TrustedKeys.from_files([keys["release"].public, path])
    assert str(raised.value) == f"models.trusted_keys: {path}: {message}"


# --- signing and verifying -------------------------------------------------------------------


def test_a_signed_bundle_loads_with_its_key_trusted(
    signed: Path, keys: dict[str, KeyPair], trusted: TrustedKeys
) -> None:
    document = json.loads((signed / SIGNATURE_NAME).read_text())
    assert document["format"] == "dfd-signature/1"
    assert document["algorithm"] == "ed25519"
    assert document["signed_file"] == CARD_NAME
    assert document["key_id"] == keys["release"].key_id
    assert len(base64.b64decode(document["signature"])) == 64

    bundle = load_bundle(signed, trusted)
    assert bundle.card == read_card(default_bundle_path())
    assert SIGNATURE_NAME not in bundle.card.files  # the hashes are untouched by signing
    assert load_bundle(signed).card == bundle.card  # and sha256 alone still verifies it
    assert verify_bundle_signature(signed, trusted).path == keys["release"].public
    both = TrustedKeys.from_files([keys["other"].public, keys["release"].public])
    assert load_bundle(signed, both).card == bundle.card


def _unsigned(bundle: Path, keys: dict[str, KeyPair]) -> None:
    (bundle / SIGNATURE_NAME).unlink()


def _signed_by_another_key(bundle: Path, keys: dict[str, KeyPair]) -> None:
    sign_bundle(bundle, keys["other"].secret)


def _card_changed_by_one_byte(bundle: Path, keys: dict[str, KeyPair]) -> None:
    card = bundle / CARD_NAME
    at = card.read_bytes().index(b"higher")
    flip_byte(card, at)  # "higher" -> "iigher": still a valid card
    assert b"iigher" in card.read_bytes()


def _model_changed(bundle: Path, keys: dict[str, KeyPair]) -> None:
    model = bundle / MODEL_NAME
    flip_byte(model, model.stat().st_size // 2)


def _signature_bit_flipped(bundle: Path, keys: dict[str, KeyPair]) -> None:
    path = bundle / SIGNATURE_NAME
    document = json.loads(path.read_text())
    raw = bytearray(base64.b64decode(document["signature"]))
    raw[10] ^= 0x01
    document["signature"] = base64.b64encode(bytes(raw)).decode()
    path.write_text(json.dumps(document))


def _signature_not_json(bundle: Path, keys: dict[str, KeyPair]) -> None:
    path = bundle / SIGNATURE_NAME
    path.write_bytes(path.read_bytes()[:40])


def _signature_truncated(bundle: Path, keys: dict[str, KeyPair]) -> None:
    path = bundle / SIGNATURE_NAME
    document = json.loads(path.read_text())
    document["signature"] = base64.b64encode(base64.b64decode(document["signature"])[:32]).decode()
    path.write_text(json.dumps(document))


def _signature_a_fifo(bundle: Path, keys: dict[str, KeyPair]) -> None:
    path = bundle / SIGNATURE_NAME
    path.unlink()
    os.mkfifo(path)  # reading it would wait for a writer forever


@pytest.mark.parametrize(
    ("tamper", "error", "message"),
    [
        (_unsigned, SignatureError, "the bundle is not signed (no signature.json)"),
        (_signature_a_fifo, SignatureError, "signature.json: not a regular file"),
        (
            _signed_by_another_key,
            SignatureError,
            "signed by key {other}, which is not trusted (trusted: {release} ({release_path}))",
        ),
        (_card_changed_by_one_byte, SignatureError, "bad signature: model_card.json is not what"),
        (_model_changed, BundleError, "model.onnx: sha256 "),
        (_signature_bit_flipped, SignatureError, "bad signature: model_card.json is not what"),
        (_signature_not_json, SignatureError, "signature.json is not readable JSON"),
        (_signature_truncated, SignatureError, "an ed25519 signature is 64 bytes, got 32"),
    ],
)
def test_a_tampered_bundle_is_refused_with_one_line_naming_it(
    signed: Path,
    keys: dict[str, KeyPair],
    trusted: TrustedKeys,
    tamper: Callable[[Path, dict[str, KeyPair]], None],
    error: type[BundleError],
    message: str,
) -> None:
    load_bundle(signed, trusted)
    tamper(signed, keys)
    with pytest.raises(error) as raised:
        load_bundle(signed, trusted)
    expected = message.format(
        other=keys["other"].key_id,
        release=keys["release"].key_id,
        release_path=keys["release"].public,
    )
    assert expected in one_line_naming(raised.value, signed)


def test_without_trusted_keys_only_the_hashes_are_checked(signed: Path) -> None:
    """A changed card is caught by its signature alone: the sha256 check cannot see it."""
    _card_changed_by_one_byte(signed, {})
    assert load_bundle(signed).card.labels.startswith("raw output")
    (signed / SIGNATURE_NAME).unlink()
    load_bundle(signed)


def test_a_bundle_that_does_not_verify_is_never_signed(
    tmp_path: Path, keys: dict[str, KeyPair]
) -> None:
    bundle = copy_default(tmp_path / "broken")
    _model_changed(bundle, keys)
    with pytest.raises(BundleError, match=r"model\.onnx: sha256 "):
        sign_bundle(bundle, keys["release"].secret)
    assert not (bundle / SIGNATURE_NAME).exists()
    with pytest.raises(KeyFileError, match="not an unencrypted PEM secret key"):
        sign_bundle(copy_default(tmp_path / "fine"), keys["release"].public)


def test_sign_out_does_not_copy_what_a_symbolic_link_points_at(
    tmp_path: Path, keys: dict[str, KeyPair]
) -> None:
    from click.testing import CliRunner

    from dfd.daemon.cli import main

    bundle = copy_default(tmp_path / "linked")
    secret_elsewhere = tmp_path / "not-for-copying.onnx"
    shutil.move(bundle / MODEL_NAME, secret_elsewhere)
    (bundle / MODEL_NAME).symlink_to(secret_elsewhere)
    out = tmp_path / "signed-copy"
    result = CliRunner().invoke(
        main,
        ["models", "sign", str(bundle), "--key", str(keys["release"].secret), "--out", str(out)],
    )
    assert result.exit_code == 1
    assert "a symbolic link" in result.output
    assert not out.exists()  # nothing copied, nothing signed


def test_rewriting_a_signed_bundle_drops_its_stale_signature(signed: Path) -> None:
    card = read_card(signed)
    write_bundle(signed, signed / MODEL_NAME, card, overwrite=True)
    assert not (signed / SIGNATURE_NAME).exists()
    assert set(read_card(signed).files) == {MODEL_NAME}


def test_a_card_may_not_list_the_signature(signed: Path) -> None:
    card = json.loads((signed / CARD_NAME).read_text())
    card["files"][SIGNATURE_NAME] = "0" * 64
    (signed / CARD_NAME).write_text(json.dumps(card))
    with pytest.raises(BundleError, match=r"'signature\.json' is not a file of the bundle"):
        read_card(signed)


# --- the daemon's model sets -----------------------------------------------------------------


def write_config(folder: Path, bundles: list[str], trusted_keys: list[Path]) -> Path:
    config = folder / "dfd.toml"
    config.write_text(
        "[models]\n"
        f"bundles = {json.dumps(bundles)}\n"
        f"trusted_keys = {json.dumps([str(path) for path in trusted_keys])}\n"
        "workers = 1\n"
        "[serve]\n"
        'pub = "tcp://127.0.0.1:*"\n'
        'metrics = ""\n'
        f'state_directory = "{folder}"\n'
    )
    return config


def test_model_sets_check_signatures_when_keys_are_trusted(
    signed: Path, keys: dict[str, KeyPair], tmp_path: Path
) -> None:
    settings = load_settings(write_config(tmp_path, [str(signed)], [keys["release"].public]), {})
    assert load_models(settings).paths == [signed]
    with pytest.raises(SignatureError, match="the bundle is not signed"):
        load_models(settings, ["default"])
    untrusting = load_settings(write_config(tmp_path, [str(signed)], [keys["other"].public]), {})
    with pytest.raises(SignatureError, match="which is not trusted"):
        load_models(untrusting)
    unsigned_ok = load_settings(write_config(tmp_path, ["default"], []), {})
    assert load_models(unsigned_ok).paths == [default_bundle_path()]
    missing = tmp_path / "gone.pub"
    broken = load_settings(write_config(tmp_path, [str(signed)], [missing]), {})
    with pytest.raises(ConfigError) as raised:
        load_models(broken)
    assert str(raised.value) == f"models.trusted_keys: {missing}: no such key file"
    with pytest.raises(SignatureError):
        ModelSet.load(["default"], trusted_keys=TrustedKeys.from_files([keys["release"].public]))


def clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DFD_")}


def replay(config: Path) -> subprocess.CompletedProcess[str]:
    command = [DFD, "--config", str(config), "replay", str(DEMO_CALL)]
    return subprocess.run(
        command, capture_output=True, text=True, env=clean_environment(), timeout=300
    )


def test_replay_refuses_the_unsigned_default_and_accepts_a_signed_copy(
    signed: Path, keys: dict[str, KeyPair], tmp_path: Path
) -> None:
    refused = replay(write_config(tmp_path, ["default"], [keys["release"].public]))
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.splitlines()
    assert lines == [
        f"dfd replay: error: {default_bundle_path()}: the bundle is not signed (no "
        f"signature.json) and trusted keys are configured; sign it with `dfd models sign`"
    ]
    assert refused.stdout == ""

    accepted = replay(write_config(tmp_path, [str(signed)], [keys["release"].public]))
    assert accepted.returncode == 1, accepted.stderr
    assert "ALERT RAISED" in accepted.stdout


def test_replay_names_a_missing_trusted_key_file(signed: Path, tmp_path: Path) -> None:
    missing = tmp_path / "gone.pub"
    result = replay(write_config(tmp_path, [str(signed)], [missing]))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"dfd replay: error: models.trusted_keys: {missing}: no such key file"
    ]


@pytest.fixture
def invoke() -> Iterator[CliRunner]:
    yield CliRunner()
    structlog.reset_defaults()  # the command configures logging


def test_models_sign_signs_a_copy_of_the_default(
    invoke: CliRunner, tmp_path: Path, keys: dict[str, KeyPair], trusted: TrustedKeys
) -> None:
    out = tmp_path / "default-signed"
    secret = str(keys["release"].secret)
    result = invoke.invoke(main, ["models", "sign", "default", "--key", secret, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output == f"signed {out}: signature.json by key {keys['release'].key_id}\n"
    load_bundle(out, trusted)

    again = invoke.invoke(main, ["models", "sign", "default", "--key", secret, "--out", str(out)])
    assert again.exit_code == 2
    assert "already exists" in again.output
    in_place = invoke.invoke(main, ["models", "sign", "default", "--key", secret])
    assert in_place.exit_code == 2
    assert "sign a copy (--out)" in in_place.output
    assert not (default_bundle_path() / SIGNATURE_NAME).exists()

    public = str(keys["release"].public)
    never = str(tmp_path / "never")
    bad_key = invoke.invoke(main, ["models", "sign", "default", "--key", public, "--out", never])
    assert bad_key.exit_code == 1
    assert "not an unencrypted PEM secret key" in bad_key.output
    assert not (tmp_path / "never").exists()


def test_keys_generate_signing_makes_a_pair_that_signs_and_verifies(
    invoke: CliRunner, tmp_path: Path
) -> None:
    keys_folder = tmp_path / "keys"
    result = invoke.invoke(
        main, ["keys", "generate", "vendor", "--kind", "signing", "--out", str(keys_folder)]
    )
    assert result.exit_code == 0, result.output
    public, secret = keys_folder / "vendor.pub", keys_folder / "vendor.secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    out = tmp_path / "signed"
    signed = invoke.invoke(
        main, ["models", "sign", "default", "--key", str(secret), "--out", str(out)]
    )
    assert signed.exit_code == 0, signed.output
    load_bundle(out, TrustedKeys.from_files([public]))
    again = invoke.invoke(
        main, ["keys", "generate", "vendor", "--kind", "signing", "--out", str(keys_folder)]
    )
    assert again.exit_code == 1
    assert again.output.startswith("Error: ") and len(again.output.splitlines()) == 1


def test_a_reload_keeps_the_old_models_when_the_new_bundle_is_not_properly_signed(
    signed: Path, keys: dict[str, KeyPair], tmp_path: Path
) -> None:
    settings = load_settings(write_config(tmp_path, [str(signed)], [keys["release"].public]), {})
    daemon = Daemon(settings, [])
    try:
        serving = daemon.models
        failures = [
            lambda: _card_changed_by_one_byte(signed, keys),
            lambda: (signed / SIGNATURE_NAME).unlink(),
            lambda: sign_bundle(signed, keys["other"].secret),
        ]
        for number, break_it in enumerate(failures, start=1):
            break_it()
            with capture_logs() as logs:
                assert daemon.reload() is False
            assert daemon.models is serving
            assert daemon.counters.reload_failures == number
            failed = [entry for entry in logs if entry["log_level"] == "error"]
            assert failed[0]["event"] == "reload failed; the previous models keep serving"
            assert str(signed) in failed[0]["error"]

        sign_bundle(signed, keys["release"].secret)
        assert daemon.reload() is True
        assert daemon.models is not serving
        assert daemon.counters.reloads == 1
    finally:
        daemon.shutdown()


# --- nothing unpickles -----------------------------------------------------------------------

PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve"}
UNPICKLING_CALLS = {"load", "loads", "Unpickler", "read_pickle"}


def unpickling_in(source: str) -> list[str]:
    """What in ``source`` may unpickle: a pickle-family module's load functions, a ``torch.load``
    without ``weights_only=True``, ``allow_pickle`` not False, ``weights_only`` not True,
    ``read_pickle``. ``import pickle`` for ``pickle.UnpicklingError`` is fine."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLE_MODULES:
            names = {alias.name for alias in node.names}
            if names - {"UnpicklingError", "PicklingError"}:
                found.append(f"line {line}: from {node.module} import {', '.join(sorted(names))}")
        elif isinstance(node, ast.Attribute) and node.attr in UNPICKLING_CALLS:
            owner = node.value
            owner_name = owner.id if isinstance(owner, ast.Name) else None
            if owner_name in PICKLE_MODULES or node.attr == "read_pickle":
                found.append(f"line {line}: {owner_name}.{node.attr}")
        elif isinstance(node, ast.Call):
            keywords = {k.arg: k.value for k in node.keywords if k.arg is not None}
            function = node.func
            if (
                isinstance(function, ast.Attribute)
                and function.attr == "load"
                and isinstance(function.value, ast.Name)
                and function.value.id == "torch"
                and "weights_only" not in keywords
            ):
                found.append(f"line {line}: torch.load without weights_only=True")
            for name, wanted in (("allow_pickle", False), ("weights_only", True)):
                value = keywords.get(name)
                if value is not None and not (
                    isinstance(value, ast.Constant) and value.value is wanted
                ):
                    found.append(f"line {line}: {name}={ast.unparse(value)}")
    return found


@pytest.mark.parametrize(
    "source",
    [
        "import pickle\nstate = pickle.load(open('m.pkl', 'rb'))",
        "import pickle as p\nfrom pickle import loads",
        "import torch\nstate = torch.load('m.pt')",
        "import torch\nstate = torch.load('m.pt', weights_only=False)",
        "import numpy as np\nx = np.load('x.npy', allow_pickle=True)",
        "import joblib\nmodel = joblib.load('m.joblib')",
        "import pandas as pd\nframe = pd.read_pickle('f.pkl')",
    ],
)
def test_the_unpickling_check_catches_each_way_in(source: str) -> None:
    assert unpickling_in(source) != []


def test_the_unpickling_check_lets_safe_loads_through() -> None:
    source = (
        "import pickle\nimport torch\nimport numpy as np\n"
        "try:\n    state = torch.load('m.pt', weights_only=True, map_location='cpu')\n"
        "except pickle.UnpicklingError:\n    raise\n"
        "x = np.load('x.npy')\ny = np.load('y.npy', allow_pickle=False)\n"
    )
    assert unpickling_in(source) == []


def test_nothing_in_the_source_tree_unpickles() -> None:
    files = [
        path
        for folder in SOURCE_FOLDERS
        for path in sorted((REPO / folder).rglob("*.py"))
        if "__pycache__" not in path.parts
    ]
    assert len(files) > 50
    found = {
        str(path.relative_to(REPO)): problems
        for path in files
        if (problems := unpickling_in(path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_key_files_must_be_small_regular_files(tmp_path: Path) -> None:
    """A FIFO would block the daemon at start; a huge file would be read whole."""
    import os

    from dfd.daemon.service.keys import KeyFileError as CertificateError
    from dfd.daemon.service.keys import load_key_pair
    from dfd.detectors.signing import KeyFileError, load_public_key

    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.pub"
    huge.write_bytes(b"#" * (1 << 20))
    for path in (fifo, huge):
        with pytest.raises(KeyFileError, match=r"not a regular file|more than"):
            load_public_key(path)
        with pytest.raises(CertificateError, match=r"not a regular file|more than"):
            load_key_pair(path)
