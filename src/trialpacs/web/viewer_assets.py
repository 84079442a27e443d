"""Install the OHIF viewer's built ``dist/`` from its npm tarball, for serving under /viewer/.

The dist assumes it is served at ``/``; it works under a sub-path once the
absolute references are rewritten (index.html, the webpack public path in
every bundle, CSS urls, the manifest). That is done once here, at install
time, never per request.

Usage: ``python -m trialpacs.web.viewer_assets ohif-app-3.13.2.tgz DEST``.
"""

from __future__ import annotations

import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

BASE = "/viewer/"
MARKER = ".trialpacs-viewer"


def install(tarball: Path, dest: Path, base: str = BASE) -> Path:
    """Extract ``package/dist`` of the tarball into ``dest`` and rewrite it for ``base``."""
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(tarball) as tf:
            members = []
            for member in tf.getmembers():
                path = PurePosixPath(member.name)
                if (
                    path.is_absolute()
                    or ".." in path.parts
                    or not (member.isfile() or member.isdir())
                ):
                    raise ValueError(f"refusing tar member {member.name!r}")
                if member.name.startswith("package/dist/") or member.name == "package/LICENSE":
                    members.append(member)
            tf.extractall(tmp, members=members, filter="data")
        dist = Path(tmp) / "package" / "dist"
        rewrite(dist, base)
        shutil.copy2(Path(tmp) / "package" / "LICENSE", dist / "OHIF-LICENSE")
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(dist, dest)
    (dest / MARKER).write_text(tarball.name + "\n")
    return dest


def rewrite(dist: Path, base: str) -> None:
    index = dist / "index.html"
    html = index.read_text()
    for attr in ("href", "src", "content"):
        html = html.replace(f'{attr}="/', f'{attr}="{base}')
    html = html.replace('window.PUBLIC_URL="/"', f'window.PUBLIC_URL="{base}"')
    index.write_text(html)
    for js in dist.rglob("*.js"):
        text = js.read_text(errors="surrogateescape")
        new = text.replace('__webpack_require__.p = "/";', f'__webpack_require__.p = "{base}";')
        if new != text:
            js.write_text(new, errors="surrogateescape")
    for css in dist.rglob("*.css"):
        text = css.read_text(errors="surrogateescape")
        new = re.sub(r"url\(/(?!/)", f"url({base}", text)
        if new != text:
            css.write_text(new, errors="surrogateescape")
    manifest = dist / "manifest.json"
    if manifest.exists():
        manifest.write_text(manifest.read_text().replace('"/assets/', f'"{base}assets/'))
    # We generate app-config.js per request; the shipped one must never be served.
    (dist / "app-config.js").unlink(missing_ok=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m trialpacs.web.viewer_assets TARBALL DEST")
    print(install(Path(sys.argv[1]), Path(sys.argv[2])))
