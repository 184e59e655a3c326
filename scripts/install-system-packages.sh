#!/usr/bin/env bash
# System packages dfd uses, from Debian. Installs only what is missing.
#   ffmpeg        decodes G.722, GSM and raw G.711 streams; codec conditions
#   libportaudio2 the PortAudio library sounddevice loads for live capture
#   libsndfile1   WAV/FLAC/OGG reading (soundfile also ships its own copy)
#   pulseaudio pulseaudio-utils libasound2-plugins
#                 a sound server, paplay/pactl and ALSA's `pulse` device: the live-capture test
#                 records a null sink's monitor through PortAudio
#   systemd       systemd-analyze: the tests verify systemd/dfd.service and score its hardening
#                 (no running systemd needed; a service host has the package anyway)
# With --corpus, also what `dfd corpus build` reads and runs (docs/corpus.md says what each holds):
#   real speech: Asterisk prompts in five languages with transcripts, klettres letters, Tux Paint's
#     spoken stamp descriptions, the voice acting of Flight of the Amazon Queen, Drascula (en, es),
#     Fish Fillets NG (cs, nl; the voices and the level scripts that say who speaks each line) and
#     Warzone 2100's announcer
#   speech synthesizers: espeak-ng, festival with English, Czech, Hindi, Marathi and Telugu
#     voices, flite
#   rooms and noises: impulse responses (pyo, guitarix, jconvolver, rakarrack), keyboard clicks
#     (bucklespring) and household and crowd sounds (scratch)
#   scripts/install-system-packages.sh [--corpus]
set -euo pipefail

packages=(ffmpeg libportaudio2 libsndfile1 pulseaudio pulseaudio-utils libasound2-plugins systemd)
corpus_packages=(
    asterisk-core-sounds-en-g722 asterisk-core-sounds-es-g722 asterisk-core-sounds-fr-g722
    asterisk-core-sounds-it-g722 asterisk-core-sounds-ru-g722
    asterisk-core-sounds-en asterisk-core-sounds-it asterisk-core-sounds-ru
    asterisk-prompt-fr-armelle asterisk-prompt-it-menardi-wav asterisk-prompt-es-co klettres-data
    tuxpaint-stamps-default flight-of-the-amazon-queen drascula drascula-spanish
    fillets-ng-data fillets-ng-data-cs fillets-ng-data-nl warzone2100-data
    espeak-ng festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts flite
    festival-czech festvox-czech-dita festvox-czech-krb festvox-czech-machac festvox-czech-ph
    festival-hi festival-mr festival-te festvox-hi-nsk festvox-mr-nsk festvox-te-nsk
    python3-pyo guitarix-common jconvolver-config-files rakarrack bucklespring-data scratch
)
case "${1:-}" in
    "") ;;
    --corpus) packages+=("${corpus_packages[@]}") ;;
    *) echo "usage: scripts/install-system-packages.sh [--corpus]" >&2; exit 2 ;;
esac

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
