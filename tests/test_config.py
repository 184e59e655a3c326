"""Configuration precedence (defaults < TOML file < ``DFD_SECTION__KEY`` variables < command-line
options), errors that name the key and where it was set (file and line, or the variable), and
``dfd config show`` / ``dfd config check`` run as the installed command."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from dfd.core.layered_config import toml_value
from dfd.core.typed_config import ConfigError
from dfd.daemon.settings import Settings, load_settings, resolve_settings

DFD = str(Path(sys.executable).with_name("dfd"))


def dfd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DFD_")}
    return subprocess.run(
        [DFD, *args], capture_output=True, text=True, env={**environ, **(env or {})}, timeout=120
    )


def write(folder: Path, text: str, name: str = "dfd.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


CONFIG = """\
# a comment
[models]
threshold = 0.6
workers = 2

[serve]
pub = "tcp://127.0.0.1:6001"
status_interval_s = 2
"""


# --- precedence ----------------------------------------------------------------------------


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    config = write(tmp_path, CONFIG)
    defaults = Settings()
    from_file = load_settings(config, environ={})
    assert from_file.models.threshold == 0.6
    assert from_file.models.workers == 2
    assert from_file.serve.pub == "tcp://127.0.0.1:6001"
    assert from_file.serve.status_interval_s == 2.0
    assert from_file.speech == defaults.speech  # untouched sections keep their defaults

    environ = {
        "DFD_MODELS__THRESHOLD": "0.7",  # overrides the file
        "DFD_SERVE__PUB": "tcp://127.0.0.1:6000",  # not TOML: taken as the string it is
        "DFD_LOGGING__LEVEL": "debug",  # a key the file does not set
        "DFD_CONFIG": "/elsewhere.toml",  # no "__": not a setting
        "DFD_BUNDLES": "/var/lib/dfd/bundles",
    }
    resolved = resolve_settings(config, environ)
    settings = resolved.value
    assert settings.models.threshold == 0.7
    assert settings.models.workers == 2
    assert settings.serve.pub == "tcp://127.0.0.1:6000"
    assert settings.logging.level == "debug"
    assert resolved.origins == {
        "models.threshold": "$DFD_MODELS__THRESHOLD",
        "models.workers": f"{config}:4",
        "serve.pub": "$DFD_SERVE__PUB",
        "serve.status_interval_s": f"{config}:8",
        "logging.level": "$DFD_LOGGING__LEVEL",
    }
    # without a file, the environment still applies
    assert load_settings(None, {"DFD_MODELS__WORKERS": "3"}).models.workers == 3
    assert load_settings(None, {}) == defaults


@pytest.mark.parametrize(
    ("variable", "text", "expected"),
    [
        ("DFD_MODELS__THRESHOLD", "0.7", 0.7),
        ("DFD_MODELS__THRESHOLD", "far_1pct", "far_1pct"),
        ("DFD_MODELS__THRESHOLD", '"eer"', "eer"),
        ("DFD_MODELS__WORKERS", "4", 4),
        ("DFD_PIPELINE__SCORE_SILENCE", "true", True),
        ("DFD_SPEECH__ACTIVE_LEVEL_DBFS", "-40", -40.0),
        ("DFD_MODELS__BUNDLES", '["default", "/srv/b"]', ("default", "/srv/b")),
        ("DFD_MODELS__BUNDLES", "/srv/bundle", ("/srv/bundle",)),  # a lone value: a list of one
        ("DFD_SERVE__RTP", "127.0.0.1:40000", ("127.0.0.1:40000",)),
        ("DFD_SERVE__RTP", "", ()),
        ("DFD_MODELS__WEIGHTS", "2.5", (2.5,)),
        ("DFD_MODELS__DEVICE", "cuda:1", "cuda:1"),
        ("DFD_SERVE__STATE_DIRECTORY", "/var/lib/dfd", "/var/lib/dfd"),
        ("DFD_SERVE__STATE_DIRECTORY", "2024", "2024"),  # a number, for a string key: the string
    ],
)
def test_environment_values_are_read_as_toml_when_they_fit_else_as_strings(
    variable: str, text: str, expected: object
) -> None:
    settings = load_settings(None, {variable: text})
    section, key = variable.removeprefix("DFD_").lower().split("__")
    assert getattr(getattr(settings, section), key) == expected


def test_command_line_options_override_the_environment_and_the_file(tmp_path: Path) -> None:
    config = write(tmp_path, '[logging]\nlevel = "error"\n[models]\nthreshold = 0.6\n')
    env = {"DFD_LOGGING__LEVEL": "warning", "DFD_MODELS__THRESHOLD": "0.7"}
    result = dfd("--config", str(config), "--log-level", "debug", "config", "show", env=env)
    assert result.returncode == 0, result.stderr
    shown = tomllib.loads(result.stdout)
    assert shown["logging"]["level"] == "debug"  # option > environment > file
    assert shown["models"]["threshold"] == 0.7  # environment > file
    lines = result.stdout.splitlines()
    assert 'level = "debug"  # from --log-level' in lines
    assert "threshold = 0.7  # from $DFD_MODELS__THRESHOLD" in lines
    assert "workers = 0" in lines  # a default says nothing

    # the config file itself may come from $DFD_CONFIG
    result = dfd("config", "show", env={"DFD_CONFIG": str(config)})
    assert f"threshold = 0.6  # from {config}:4" in result.stdout.splitlines()


def test_config_show_prints_toml_that_loads_back_to_the_same_settings(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        CONFIG + '[logging]\nformat = "json"\n[pipeline]\nbatch_size = 8\n'
        "[speech]\nactive_level_dbfs = -40\n[decision]\nraise_over = 2\nof = 4\n",
    )
    env = {
        "DFD_SERVE__STATE_DIRECTORY": '/var/lib/dfd "x"\\y',  # quotes and backslashes
        "DFD_MODELS__BUNDLES": '["default", "bündel"]',  # beyond ASCII
        "DFD_MODELS__WEIGHTS": "[1, 3]",
    }
    result = dfd("--config", str(config), "config", "show", env=env)
    assert result.returncode == 0, result.stderr
    effective = load_settings(config, env)
    shown = write(tmp_path, result.stdout, "shown.toml")
    assert load_settings(shown, environ={}) == effective
    assert effective.serve.state_directory == '/var/lib/dfd "x"\\y'
    # unset values (TOML has no null) are shown as comments
    assert "# hop_s is unset" in result.stdout.splitlines()


@pytest.mark.parametrize(
    "value", [0.1, 1e-05, 3.0, -45.0, 1e300, 7, True, "a\tb\x7f\u00e9\U0001f600", ["x", 2.5]]
)
def test_toml_values_round_trip(value: object) -> None:
    assert tomllib.loads(f"v = {toml_value(value)}")["v"] == value


# --- errors name the key and where it was set ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (
            "[models]\nworkers = 1\nthreshold = 'foo'\n",
            3,
            "models.threshold: expected 'eer', 'far_1pct' or a number, got 'foo'",
        ),
        (
            "# settings\n\n[pipeline]\n  batch_size = true  # on\n",
            4,
            "pipeline.batch_size: expected int, got True",
        ),
        ("[models]\nhop_s = 1.0\nhop_seconds = 2.0\n", 3, "models: unknown key(s) hop_seconds"),
        ("[models]\nworkers = 1\n\n[alerts]\ntopic = 'x'\n", 4, "unknown key(s) alerts"),
        ("[serve]\nstatus_interval_s = 0\n", 2, "serve.status_interval_s must be > 0"),
        ("[models]\nhop_s = 0.00003\n", 2, "models.hop_s: hop_s=3e-05 s is not a whole number"),
        # window, hop and device are set in one place: [models] (the window is each bundle's)
        ("[dsp]\ndevice = 'cpu'\n", 1, "unknown key(s) dsp"),
        ('[logging]\nlevel = "loud"\n', 2, "logging.level must be one of"),
        (
            "[serve]\npub = 'tcp://127.0.0.1:1'\n\ndevices = ['a', 3]\n",
            4,
            "serve.devices[1]: expected str, got 3",
        ),
        ("speech.frame_s = 'x'\n", 1, "speech.frame_s: expected"),
        ("serve = { pub = 5 }\n", 1, "serve.pub: expected str, got 5"),
        (
            # a line inside a multi-line string is no key
            '[serve]\npub = """\ntcp://127.0.0.1:1\nloudness = 1"""\nloudness = 3\n',
            5,
            "serve: unknown key(s) loudness",
        ),
        ("[models]\nhop_s = \n", 2, "not valid TOML"),
        ("[models]\nthreshold = 0.5\n[models]\n", 3, "not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_naming_the_key_and_its_line(
    tmp_path: Path, text: str, where: int, message: str
) -> None:
    config = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_settings(config, environ={})
    assert str(raised.value).startswith(f"{config}:{where}: ")
    assert message in str(raised.value)


def test_a_check_across_keys_names_the_lines_of_the_keys_it_involves(tmp_path: Path) -> None:
    config = write(tmp_path, "[decision]\nclear_at_most = 0\nof = 5\n\nraise_over = 6\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(config, environ={})
    assert str(raised.value).startswith(f"{config}:3, {config}:5: decision.raise_over must lie")
    # set partly in the file, partly in the environment: both places are named
    with pytest.raises(ConfigError) as raised:
        load_settings(config, {"DFD_DECISION__OF": "2"})
    assert str(raised.value).startswith(f"$DFD_DECISION__OF, {config}:5: decision.raise_over")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"DFD_MODELS__THRESHOLD": "high"}, "$DFD_MODELS__THRESHOLD: models.threshold: expected"),
        ({"DFD_MODELS__WORKERS": "two"}, "$DFD_MODELS__WORKERS: models.workers: expected int"),
        ({"DFD_MODELS__THREADS": "2"}, "$DFD_MODELS__THREADS: models: unknown key(s) threads"),
        ({"DFD_ALERTS__TOPIC": "x"}, "$DFD_ALERTS__TOPIC: unknown key(s) alerts"),
        ({"DFD_SERVE__PUB": "tcp://0.0.0.0:5555"}, "$DFD_SERVE__PUB: serve: tcp://0.0.0.0:5555"),
        (  # serve.pcm is set too, but the message is about serve.pcm_rate
            {"DFD_SERVE__PCM": "tcp://127.0.0.1:1", "DFD_SERVE__PCM_RATE": "0"},
            "$DFD_SERVE__PCM_RATE: serve.pcm_rate and serve.idle_timeout_s must be positive",
        ),
    ],
)
def test_a_bad_environment_override_is_refused_naming_the_variable(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(None, environ)
    assert str(raised.value).startswith(message)


def test_dfd_refuses_a_bad_override_before_doing_anything() -> None:
    result = dfd("serve", env={"DFD_SERVE__PUB": "tcp://0.0.0.0:5555"})
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        "Error: $DFD_SERVE__PUB: serve: tcp://0.0.0.0:5555 binds to 0.0.0.0, not localhost; "
        "set serve.allow_remote_endpoints = true to allow it"
    ]


# --- dfd config check ----------------------------------------------------------------------


def test_config_check_accepts_a_good_file(tmp_path: Path) -> None:
    config = write(tmp_path, CONFIG)
    result = dfd("config", "check", str(config))
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{config}: ok\n", "")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[models]\nworkers = -1\n", "{config}:2: models.workers must be >= 0"),
        ("[serve]\n\npubb = 'x'\n", "{config}:3: serve: unknown key(s) pubb"),
        ("[serve\n", "{config}:1: not valid TOML"),
        (
            "[serve]\nrtp_payloads = ['97=OPUS/48000']\n",
            "{config}:2: serve.rtp_payloads: '97=OPUS/48000': encoding 'OPUS' is not one of",
        ),
        (
            "[serve]\nrtp_payloads = ['L16/16000']\n",
            "{config}:2: serve.rtp_payloads: 'L16/16000' is not PT=ENCODING/RATE[/CHANNELS]",
        ),
        (
            "[serve]\nrtp_payloads = ['200=L16/16000']\n",
            "{config}:2: serve.rtp_payloads: '200=L16/16000': need a payload type in 0-127",
        ),
    ],
)
def test_config_check_refuses_a_bad_file_in_one_line(tmp_path: Path, text: str, line: str) -> None:
    config = write(tmp_path, text)
    result = dfd("config", "check", str(config))
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("Error: " + line.format(config=config))


def test_config_check_reports_every_problem_in_file_order(tmp_path: Path) -> None:
    text = (
        "[decision]\nraise_over = 9\n"  # a check across keys, line 2
        "[models]\nworkers = -1\n"  # line 4
        "[serve]\npubb = 'x'\nidle_timeout_s = 'soon'\n"  # lines 6 and 7
        "[nosuch]\nkey = 1\n"  # line 8
    )
    config = write(tmp_path, text)
    result = dfd("config", "check", str(config))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert [line.split(":")[2] for line in lines[:-1]] == ["2", "4", "6", "7", "8"]
    assert "decision.raise_over must lie in" in lines[0]
    assert "models.workers must be >= 0" in lines[1]
    assert "unknown key(s) pubb" in lines[2]
    assert "serve.idle_timeout_s" in lines[3]
    assert "unknown key(s) nosuch" in lines[4]
    assert lines[-1] == f"Error: {config}: 5 problems"
    served = dfd("--config", str(config), "serve")  # the daemon names them all on one line
    assert served.returncode == 2
    error = served.stderr.splitlines()[-1]
    assert "5 problems: " in error and error.count(str(config)) == 5


def test_config_check_of_a_missing_file_is_one_line_too(tmp_path: Path) -> None:
    result = dfd("config", "check", str(tmp_path / "absent.toml"))
    assert result.returncode == 1
    assert (
        result.stderr
        == f"Error: {tmp_path / 'absent.toml'}: cannot read it (No such file or directory)\n"
    )


def test_config_check_judges_the_file_alone(tmp_path: Path) -> None:
    """Neither a broken $DFD_CONFIG nor DFD_* overrides in the caller's environment change the
    verdict on FILE; `config show` does apply them, and says what is wrong."""
    good = write(tmp_path, CONFIG)
    broken = write(tmp_path, "[models\n", "broken.toml")
    env = {"DFD_CONFIG": str(broken), "DFD_MODELS__WORKERS": "-5"}
    result = dfd("config", "check", str(good), env=env)
    assert (result.returncode, result.stdout) == (0, f"{good}: ok\n")
    result = dfd("config", "show", env=env)
    assert result.returncode != 0
    assert f"{broken}:1: not valid TOML" in result.stderr


@pytest.mark.parametrize("command", [["config"], ["config", "show"], ["config", "check"]])
def test_the_config_commands_have_help(command: list[str]) -> None:
    result = dfd(*command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"Usage: dfd {' '.join(command)}")


def test_config_show_without_a_file_prints_every_default() -> None:
    """`config show` without a file or overrides prints every default (nothing annotated)."""
    result = dfd("config", "show")
    assert result.returncode == 0, result.stderr
    assert "# from" not in result.stdout
    shown = tomllib.loads(result.stdout)
    defaults = Settings()
    for section in dataclasses.fields(defaults):
        table = getattr(defaults, section.name)
        for field in dataclasses.fields(table):
            value = getattr(table, field.name)
            if value is None:
                assert field.name not in shown[section.name]
            else:
                expected = list(value) if isinstance(value, tuple) else value
                assert shown[section.name][field.name] == expected, field.name


def test_rtp_payload_specs_read_like_an_sdp_rtpmap() -> None:
    from dfd.daemon.settings import parse_rtp_payload

    assert parse_rtp_payload("97=L16/16000") == (97, ("L16", 16000, 1))
    assert parse_rtp_payload("96=l16/44100/2") == (96, ("L16", 44100, 2))
    assert parse_rtp_payload("101=telephone-event/8000") == (101, ("telephone-event", 8000, 1))


def test_the_readme_settings_block_lists_every_key_at_its_default() -> None:
    """The block an operator copies from: every key, the value the code defaults to (keys whose
    default is unset are shown commented out), and nothing the code does not know."""
    import dataclasses
    import re
    import tomllib

    from dfd.daemon.settings import Settings
    from tests.signals import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```toml\n(.*?)```", readme, re.S)
    assert block is not None
    written = tomllib.loads(block.group(1))
    defaults = Settings()
    for section in dataclasses.fields(defaults):
        table = getattr(defaults, section.name)
        keys = [field.name for field in dataclasses.fields(table) if field.init]
        assert set(written.get(section.name, {})) <= set(keys), section.name
        for key in keys:
            value = getattr(table, key)
            if value is None:
                assert re.search(rf"^# {key} = ", block.group(1), re.M), f"{section.name}.{key}"
                continue
            expected = list(value) if isinstance(value, tuple) else value
            assert written[section.name].get(key) == expected, f"{section.name}.{key}"


def test_a_settings_file_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "dfd.toml"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    result = dfd("config", "check", str(fifo))
    assert result.returncode == 1
    problem = f"{fifo}: not a regular file (a FIFO, device or folder)"
    assert result.stderr == f"Error: {fifo}: cannot read it ({problem})\n"
    linked = tmp_path / "linked.toml"  # a link to a regular file is read (config management)
    linked.symlink_to(write(tmp_path, CONFIG, "real.toml"))
    assert dfd("config", "check", str(linked)).returncode == 0
