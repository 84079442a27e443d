"""Coverage-guided fuzzing of the Part 10 parser: ``bench/fuzz_atheris.py --target parse``.

Kept under this name because comments in src/ and tests/ point here; the
harnesses for every target live in bench/fuzz_atheris.py.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.argv[1:1] = ["--target", "parse"]
    runpy.run_path(str(Path(__file__).with_name("fuzz_atheris.py")), run_name="__main__")
