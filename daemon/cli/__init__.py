"""The ``dfd`` command line.

Heavy imports (torch, torchaudio) happen inside the commands that need them, so ``dfd --help``,
``--version`` and shell completion answer at once.

Shell completion uses click's own mechanism, e.g. for bash:
``eval "$(_DFD_COMPLETE=bash_source dfd)"`` (``zsh_source`` and ``fish_source`` likewise).

One module per command family: ``config``, ``features``, ``training`` (corpus, train, eval),
``models``, ``audit`` (replay), ``service`` (serve), ``clients`` (subscribe, status), ``keys``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from dfd.core.typed_config import ConfigError
from dfd.daemon.cli.common import CONFIG_ERROR, CONFIG_ORIGINS, CONFIG_PATH, settings_error
from dfd.daemon.logs import LEVELS, configure_logging
from dfd.daemon.settings import Settings, resolve_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dfd", prog_name="dfd")
@click.option(
    "--log-level",
    type=click.Choice(LEVELS),
    default=None,
    help="Log verbosity (overrides [logging] level in the config file; default info).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="DFD_CONFIG",
    help="TOML settings file (also read from $DFD_CONFIG). DFD_SECTION__KEY=VALUE variables "
    "override its values, command options override both.",
)
@click.pass_context
def main(ctx: click.Context, log_level: str | None, config_path: Path | None) -> None:
    """dfd: deepfake-voice call screening.

    Scores calls and recordings, window by window, for synthetic speech.
    """
    origins: dict[str, str] = {}
    try:
        resolved = resolve_settings(config_path)
        settings, origins = resolved.value, dict(resolved.origins)
    except ConfigError as error:
        if ctx.invoked_subcommand != "config":
            raise settings_error(error) from error
        ctx.meta[CONFIG_ERROR] = error  # `dfd config check FILE` needs no good $DFD_CONFIG
        settings = Settings()
    if log_level is not None:
        settings = dataclasses.replace(
            settings, logging=dataclasses.replace(settings.logging, level=log_level)
        )
        origins["logging.level"] = "--log-level"
    ctx.meta[CONFIG_ORIGINS] = origins
    ctx.meta[CONFIG_PATH] = config_path
    configure_logging(
        settings.logging.level,
        settings.logging.format,
        redact_call_ids=settings.logging.redact_call_ids,
    )
    ctx.obj = settings


def _register() -> None:
    from dfd.daemon.cli import audit, clients, config, features, keys, models, service, training

    for command in (
        config.config_group,
        features.frontends,
        features.features,
        training.corpus,
        models.models,
        training.train,
        training.eval_command,
        audit.replay,
        service.serve,
        clients.subscribe,
        clients.status,
        keys.keys,
    ):
        main.add_command(command)


_register()
