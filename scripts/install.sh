#!/usr/bin/env bash
# Installs railvision and everything it needs on a fresh Debian/Ubuntu machine, into the project's
# virtual environment .venv (a stock Debian 12 / Ubuntu 24.04 Python refuses global installs, PEP 668).
#   scripts/install.sh        system libraries (Mesa EGL for the synthetic renderer) + all Python extras
#   scripts/install.sh test   the same, plus headless Chromium for the web-page test
# Inside an active virtual environment, .venv becomes a link to it and the install goes there.
# Afterwards: .venv/bin/railvision ..., or `. .venv/bin/activate` once per shell and plain `railvision`.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libegl1 libgl1 libgl1-mesa-dri libegl-mesa0 libglib2.0-0)
[ "${1:-}" = "test" ] && packages+=(chromium chromium-driver)
command -v python3 >/dev/null && python3 -c "import venv, ensurepip" 2>/dev/null || packages+=(python3-venv)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -n "${VIRTUAL_ENV:-}" ] && [ ! -e .venv ]; then
  ln -s "$VIRTUAL_ENV" .venv
elif [ ! -x .venv/bin/python ]; then
  echo "creating the virtual environment .venv"
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[all]"
echo "installed into .venv: run .venv/bin/railvision, or activate it with: . .venv/bin/activate"
