"""What the command modules share: the context keys the main group sets, errors, progress."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import click
import structlog

from dfd.core.typed_config import ConfigError

log = structlog.get_logger("dfd.cli")

# ctx.meta keys: the settings error `dfd config` defers, and where each setting was set
CONFIG_ERROR = "dfd.config_error"
CONFIG_ORIGINS = "dfd.config_origins"
CONFIG_PATH = "dfd.config_path"  # the settings file, read again when dfd serve gets SIGHUP


class UnusableSettings(click.ClickException):
    """Settings (or a bundle) that cannot work: exit status 2, which the systemd unit does not
    restart on."""

    exit_code = 2


def settings_error(error: ConfigError) -> click.UsageError:
    if str(error).startswith("$"):  # a DFD_SECTION__KEY variable
        return click.UsageError(str(error))
    return click.BadParameter(str(error), param_hint="--config")


@contextlib.contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on standard error, driven by ``(done, total)`` callbacks."""
    with click.progressbar(length=1, label=label, file=sys.stderr) as bar:

        def update(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        yield update
