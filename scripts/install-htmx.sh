#!/usr/bin/env bash
# Vendor htmx (htmx.org from the npm registry) into the virtualenv for the
# portal, which serves it from /static/htmx.min.js: no CDN at run time. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=2.0.11
dest=$(.venv/bin/python -c "from trialpacs.web.portal.assets import htmx_path; print(htmx_path())")
if [ -f "$dest" ]; then
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "npm is required to install htmx for the portal" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '\033[1m[install]\033[0m %s\n' "htmx htmx.org@$VERSION" >&2
(cd "$tmp" && npm pack "htmx.org@$VERSION" --silent >/dev/null && tar -xzf "htmx.org-$VERSION.tgz")
mkdir -p "$(dirname "$dest")"
cp "$tmp/package/dist/htmx.min.js" "$dest.tmp"
mv "$dest.tmp" "$dest"
