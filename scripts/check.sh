#!/usr/bin/env bash
# Lint, type-check and test. Expects scripts/setup.sh --dev to have run.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin

$bin/ruff check .
$bin/ruff format --check .

# The source folders are the subpackages of the `dfd` namespace (see pyproject.toml); mypy gets
# the same view through a tree of links, whatever the install mode.
view=$(mktemp -d)
trap 'rm -rf "$view"' EXIT
mkdir "$view/dfd"
for package in core daemon dsp detectors trainers; do
    ln -s "$PWD/$package" "$view/dfd/$package"
done
MYPYPATH="$view" $bin/mypy --cache-dir .mypy_cache -p dfd.core -p dfd.daemon -p dfd.dsp -p dfd.detectors -p dfd.trainers

$bin/python -m pytest "$@"
