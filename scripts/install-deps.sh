#!/usr/bin/env bash
# Install every Debian 12 package pfrun's build, tests and demo need.
# Safe to re-run: packages already present are skipped by apt.
set -euo pipefail
PKGS=(build-essential cmake pkg-config
      liblua5.4-dev libyaml-dev libblis-dev liblapacke-dev libcjson-dev libhpdf-dev
      libpcre2-dev libutf8proc-dev nettle-dev libplplot-dev plplot-driver-cairo libpng-dev fonts-dejavu-core
      poppler-utils qpdf
      libopenmpi-dev openmpi-bin
      check python3)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
