"""dfd installs under its own namespace and nothing else."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.signals import REPO

SUBPACKAGES = ["core", "daemon", "dsp", "detectors", "trainers"]
NESTED = ["dsp/frontends", "trainers/corpus", "trainers/datasets"]


def python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("where", ["elsewhere", "repository root"])
@pytest.mark.parametrize("name", ["daemon", "dsp", "detectors", "trainers", "core"])
def test_generic_top_level_names_are_not_importable(name: str, where: str, tmp_path: Path) -> None:
    cwd = REPO if where == "repository root" else tmp_path
    result = python(f"import {name}", cwd)
    assert result.returncode != 0
    assert "ImportError" in result.stderr or "ModuleNotFoundError" in result.stderr


@pytest.mark.parametrize("where", ["elsewhere", "repository root"])
def test_the_dfd_namespace_imports(where: str, tmp_path: Path) -> None:
    cwd = REPO if where == "repository root" else tmp_path
    code = "; ".join(f"import dfd.{name}" for name in SUBPACKAGES) + "; import dfd.dsp.frontends"
    result = python(code, cwd)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_the_wheel_holds_only_the_dfd_namespace(tmp_path: Path) -> None:
    # Build from a clean copy: setuptools leaves a build/ folder behind in the source tree.
    source = tmp_path / "source"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", ".*cache"),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("dfd-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"dfd", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "dfd/__init__.py" not in names  # a namespace package, shared by nothing else
    for package in SUBPACKAGES:
        assert f"dfd/{package}/__init__.py" in names
        assert f"dfd/{package}/py.typed" in names
    for package in NESTED:  # subpackages must be listed in pyproject.toml one by one
        assert f"dfd/{package}/__init__.py" in names
    assert "dfd/dsp/frontends/sinc.py" in names
    assert not any(name.startswith("dfd/tests") for name in names)
