"""``dfd config``: the effective settings, and checking a settings file."""

from __future__ import annotations

from pathlib import Path

import click

from dfd.core.typed_config import ConfigError
from dfd.daemon.cli.common import CONFIG_ERROR, CONFIG_ORIGINS, settings_error
from dfd.daemon.settings import load_settings, settings_toml


@click.group("config")
def config_group() -> None:
    """The effective configuration; checking a configuration file."""


@config_group.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the effective configuration as TOML: defaults < the --config file < DFD_SECTION__KEY
    environment variables < command-line options. A value that is not a default is followed by
    a comment saying where it was set."""
    error = ctx.meta.get(CONFIG_ERROR)
    if error is not None:
        raise settings_error(error)
    click.echo(settings_toml(ctx.obj, ctx.meta[CONFIG_ORIGINS]), nl=False)


@config_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def config_check(file: Path) -> None:
    """Validate the settings file FILE on its own (DFD_* variables are not applied).

    Exit status 0 and "FILE: ok" when it is valid; 1 and one line per problem, each naming the
    key and its line, when it is not.
    """
    from dfd.core.layered_config import SettingsError

    try:
        load_settings(file, environ={})
    except SettingsError as error:
        if len(error.problems) == 1:
            raise click.ClickException(error.problems[0]) from error
        for problem in error.problems:
            click.echo(f"Error: {problem}", err=True)
        raise click.ClickException(f"{file}: {len(error.problems)} problems") from error
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{file}: ok")
