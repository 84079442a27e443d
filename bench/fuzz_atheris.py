"""Coverage-guided (atheris) fuzzing of every place hostile bytes enter trialpacs.

Complements the hypothesis fuzzers in tests/hardening/test_fuzz.py: atheris
steers mutations by branch coverage of trialpacs and pydicom, so it reaches
states that blind mutation of the seed corpus rarely hits. The properties
are the same functions the hypothesis fuzzers call
(tests/hardening/fuzzing.py); a violated property or a foreign exception is
a crash (libFuzzer writes the input to ``crash-*`` and exits non-zero).

Targets (``--target``), each with its seeds from tests/hardening/corpus:

- ``parse``: ``parse_part10`` on mutated Part 10 files.
- ``store``: ``store_bytes`` into a temporary SQLite archive.
- ``multipart``: a STOW-RS Content-Type line, then the body:
  ``boundary_of`` + ``multipart.split`` with and without a parts limit.
- ``qido``: a QIDO-RS URL (``studies/{uid}/series?key=value``):
  ``Query.from_params`` + ``search`` against a SQLite archive holding the
  seed instances.
- ``deid``: ``Deidentifier.deidentify_part10`` (trial profile) on mutated
  Part 10 files; the planted patient identity must never reach the output.

Usage (seeds copied: libFuzzer adds new inputs to the corpus directory):

    .venv/bin/python bench/fuzz_atheris.py --target qido --init-corpus /tmp/fz-qido
    .venv/bin/python bench/fuzz_atheris.py --target qido -max_total_time=120 \\
        -seed=1 -rss_limit_mb=2048 -timeout=10 /tmp/fz-qido

Every argument other than ``--target``/``--init-corpus`` goes to libFuzzer.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "hardening" / "corpus"
# The Part 10 targets also replay every committed crash input.
SEEDS: dict[str, list[str]] = {
    "parse": ["*.dcm", "crashes/*"],
    "store": ["*.dcm", "crashes/*"],
    "deid": ["*.dcm", "crashes/*"],
    "multipart": ["multipart/*"],
    "qido": ["qido/*"],
}


def seed_paths(target: str) -> list[Path]:
    paths = sorted(p for pattern in SEEDS[target] for p in CORPUS.glob(pattern))
    if not paths:
        raise SystemExit(f"no seeds for {target} in {CORPUS}: run corpus_gen.py")
    return paths


def init_corpus(target: str, directory: Path) -> None:
    """Copy the target's committed seeds into a scratch corpus directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in seed_paths(target):
        shutil.copy(path, directory / path.name)


def _arguments() -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--target", required=True, choices=sorted(SEEDS))
    parser.add_argument("--init-corpus", type=Path)
    parser.add_argument(
        "--failure-prefix",
        default="atheris-failure-",
        help="where a failing input is written before the exception reaches libFuzzer",
    )
    return parser.parse_known_args()


if __name__ == "__main__":
    _early, _ = _arguments()
    if _early.init_corpus is not None:  # before the (slow) instrumented imports
        init_corpus(_early.target, _early.init_corpus)
        raise SystemExit(0)

sys.path.insert(0, str(ROOT / "tests"))  # the shared properties live with the tests

with atheris.instrument_imports(include=["trialpacs", "pydicom"]):
    from hardening import fuzzing
    from trialpacs.archive import Archive
    from trialpacs.deid import Deidentifier, TrialContext, load_profile
    from trialpacs.ingest.store import store_bytes
    from trialpacs.settings import Settings

SECRET = b"fuzzing-secret-0123456789abcdef"


def temp_archive(with_seeds: bool) -> Archive:
    """A SQLite archive in a temporary directory, removed at exit."""
    tmp = tempfile.mkdtemp(prefix="trialpacs-atheris-")
    archive = Archive.open(Settings(data_dir=Path(tmp)))

    def cleanup() -> None:
        archive.close()
        shutil.rmtree(tmp, ignore_errors=True)

    atexit.register(cleanup)
    if with_seeds:  # something for QIDO to match against
        for path in sorted(CORPUS.glob("*.dcm")):
            store_bytes(archive, path.read_bytes())
    return archive


def harness(target: str) -> Callable[[bytes], None]:
    if target == "parse":
        return fuzzing.check_parse
    if target == "multipart":
        return fuzzing.check_stow_body
    if target == "store":
        archive = temp_archive(with_seeds=False)
        return lambda data: fuzzing.check_store(archive, data)
    if target == "qido":
        archive = temp_archive(with_seeds=True)
        return lambda data: fuzzing.check_qido_url(archive, data)
    if target == "deid":
        deid = Deidentifier(load_profile("trial"), SECRET, TrialContext("T1", "S1"), use_ner=False)
        return lambda data: fuzzing.check_deid(deid, data)
    raise SystemExit(f"unknown target {target!r}; one of {', '.join(SEEDS)}")


def keeping_failures(check: Callable[[bytes], None], prefix: str) -> Callable[[bytes], None]:
    """Write a failing input to ``prefix<sha1>`` before re-raising.

    libFuzzer saves the crash input itself, but a Python exception in a long
    run has been seen to end it with SIGALRM (exit 142) before it wrote the
    file: a leak found and the input lost.
    """

    def one_input(data: bytes) -> None:
        try:
            check(data)
        except BaseException:
            Path(f"{prefix}{hashlib.sha1(data).hexdigest()}").write_bytes(data)
            raise

    return one_input


def main() -> None:
    args, libfuzzer_args = _arguments()
    # pydicom warns on every odd value it reads; at thousands of inputs per
    # second that is noise (and time), and a warning is no failure here.
    warnings.simplefilter("ignore")
    one_input = keeping_failures(harness(args.target), args.failure_prefix)
    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
