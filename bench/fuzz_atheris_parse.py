"""Coverage-guided (atheris) fuzzing of the DICOM Part 10 parser.

Complements the hypothesis fuzzers in tests/hardening/test_fuzz.py: atheris
steers mutations by the parser's branch coverage, so it reaches states that
blind mutation of the seed corpus rarely hits. The property is the same:
every input is accepted or refused with a ``TrialpacsError``; anything else
is a crash (atheris writes the input to ``crash-*`` and exits non-zero).

Usage (time-boxed, fixed seed, seeds from the committed corpus):

    .venv/bin/python bench/fuzz_atheris_parse.py -max_total_time=20 -seed=1 \
        tests/hardening/corpus
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from trialpacs.dicom.parse import parse_part10
    from trialpacs.errors import TrialpacsError


def test_one_input(data: bytes) -> None:
    """Parse ``data``; only a clear refusal may escape."""
    with contextlib.suppress(TrialpacsError):
        parse_part10(data, max_bytes=1 << 20)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
