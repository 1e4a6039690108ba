#!/usr/bin/env bash
# Installs railvision and everything it needs on a fresh Debian/Ubuntu machine.
#   scripts/install.sh        system libraries (Mesa EGL for the synthetic renderer) + all Python extras
#   scripts/install.sh test   the same, plus headless Chromium for the web-page test
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libegl1 libgl1 libgl1-mesa-dri libegl-mesa0 libglib2.0-0)
[ "${1:-}" = "test" ] && packages+=(chromium chromium-driver)

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

python3 -m pip install -q --disable-pip-version-check -e ".[all]"
