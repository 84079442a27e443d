"""Coverage-guided fuzzing (atheris) in CI, time-boxed.

Each harness of bench/fuzz_atheris.py runs as a subprocess (libFuzzer owns
the process and exits on the first crash) on a scratch copy of its
committed seeds (libFuzzer adds inputs to the corpus directory), with a
fixed seed, a per-input timeout (a hang is a crash) and a memory limit.
The seeds of the Part 10 targets include every committed crash input, so
each run also replays what earlier runs found.

Time per harness: ``TRIALPACS_ATHERIS_SECONDS`` (default 15; a long local
run: ``TRIALPACS_ATHERIS_SECONDS=300``). A crash fails the test with the
saved input's path and the Python traceback; reproduce it with
``.venv/bin/python bench/fuzz_atheris.py --target T <crash file>``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[2] / "bench" / "fuzz_atheris.py"
SECONDS = int(os.environ.get("TRIALPACS_ATHERIS_SECONDS", "15"))
TARGETS = ["parse", "store", "multipart", "qido", "deid"]


def _run(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HARNESS), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
    )


def _failure(proc: subprocess.CompletedProcess[str]) -> str:
    """The Python traceback (atheris prints it on stdout) and libFuzzer's report."""
    out = proc.stdout + "\n" + proc.stderr
    start = out.find("=== Uncaught Python exception")
    if start < 0:
        start = out.find("==ERROR")
    if start < 0:
        start = max(0, len(out) - 4000)
    report = proc.stderr.find("==ERROR")
    tail = proc.stderr[report : report + 2000] if report >= 0 else ""
    return out[start : start + 6000] + ("\n" + tail if tail and tail not in out[start:] else "")


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_atheris_harness_finds_no_crash(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    init = _run(["--target", target, "--init-corpus", str(corpus)], tmp_path, 120)
    assert init.returncode == 0, init.stderr[-2000:]
    seeds = len(list(corpus.iterdir()))
    assert seeds > 0

    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    proc = _run(
        [
            "--target",
            target,
            f"-max_total_time={SECONDS}",
            "-seed=1",
            "-timeout=10",
            "-rss_limit_mb=2048",
            "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/",
            str(corpus),
        ],
        tmp_path,
        SECONDS + 180,  # instrumenting imports takes a few seconds
    )
    found = sorted(artifacts.iterdir())
    if proc.returncode != 0 or found:
        pytest.fail(
            f"atheris --target {target} crashed (exit {proc.returncode}); "
            f"input: {', '.join(map(str, found)) or 'none saved'}\n{_failure(proc)}",
            pytrace=False,
        )
    executed = re.search(r"stat::number_of_executed_units:\s*(\d+)", proc.stderr)
    assert executed is not None, proc.stderr[-2000:]
    # The fuzzer really ran: every seed, then mutations of them.
    assert int(executed.group(1)) > seeds, proc.stderr[-2000:]
