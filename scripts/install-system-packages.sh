#!/usr/bin/env bash
# System packages dfd uses, from Debian. Installs only what is missing.
#   ffmpeg        decodes G.722, GSM and raw G.711 streams (and sends RTP in tests)
#   libportaudio2 the PortAudio library sounddevice loads for live capture
#   libsndfile1   WAV/FLAC/OGG reading (soundfile also ships its own copy)
#   asterisk-core-sounds-en-g722  real studio speech (scripts/make_sample_call.py)
set -euo pipefail

packages=(ffmpeg libportaudio2 libsndfile1 asterisk-core-sounds-en-g722)

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
echo "installing system packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
