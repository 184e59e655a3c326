"""``dfd keys``: CurveZMQ key pairs for the event bus and the PCM ingest."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def keys() -> None:
    """Key pairs: CURVE keys for the event bus and the PCM ingest; ed25519 keys that sign models."""


@keys.command("generate")
@click.argument("name")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write NAME.key (public) and NAME.key_secret (secret, mode 0600) to.",
)
@click.option(
    "--kind",
    type=click.Choice(["curve", "signing"]),
    default="curve",
    show_default=True,
    help="curve: the bus and PCM ingest; signing: ed25519, for dfd models sign.",
)
@click.option("--force", is_flag=True, help="Replace an existing pair of that name.")
def keys_generate(name: str, out: Path, kind: str, force: bool) -> None:
    """Generate a key pair NAME.

    curve (ZeroMQ's certificate format): give the public file to the other side, the daemon's
    to its subscribers and PCM senders, a client's to the daemon's [serve] curve_clients folder.
    signing (PEM): NAME.secret signs bundles (dfd models sign); list NAME.pub in [models]
    trusted_keys on the hosts that load them. Keep secret files where they are.
    """
    from dfd.daemon.service.keys import KeyFileError, generate_key_pair, load_public_key

    if kind == "signing":
        from dfd.detectors.signing import write_signing_keypair

        try:
            public_path, secret_path = write_signing_keypair(out, name, force=force)
        except (FileExistsError, ValueError, OSError) as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"public key  {public_path}")
        click.echo(f"secret key  {secret_path} (mode 0600; keep it private)")
        return
    try:
        public_path, secret_path = generate_key_pair(out, name, force=force)
    except KeyFileError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"public certificate  {public_path}")
    click.echo(f"secret certificate  {secret_path} (mode 0600; keep it private)")
    click.echo(f"public key          {load_public_key(public_path).decode('ascii')}")
