#!/usr/bin/env bash
# Install the OHIF viewer (@ohif/app's built dist/ from the npm registry) into
# the virtualenv, rewritten to be served under /viewer/. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=3.13.2
dest=$(.venv/bin/python -c "from trialpacs.web.viewer import default_viewer_dir; print(default_viewer_dir())")
if [ -f "$dest/.trialpacs-viewer" ] && [ -f "$dest/index.html" ]; then
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "npm is required to install the OHIF viewer" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '\033[1m[install]\033[0m %s\n' "OHIF viewer @ohif/app@$VERSION" >&2
(cd "$tmp" && npm pack "@ohif/app@$VERSION" --silent >/dev/null)
.venv/bin/python -m trialpacs.web.viewer_assets "$tmp/ohif-app-$VERSION.tgz" "$dest" >/dev/null
