"""Shared pieces of the fuzzers: the committed seed corpus, mutations, the time box.

The number of examples per fuzzer is ``TRIALPACS_FUZZ_EXAMPLES`` (default
150: about a minute for the whole file on the CI machine); a long local run
uses e.g. ``TRIALPACS_FUZZ_EXAMPLES=20000``.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

CORPUS = Path(__file__).resolve().parent / "corpus"
EXAMPLES = int(os.environ.get("TRIALPACS_FUZZ_EXAMPLES", "150"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
        HealthCheck.large_base_example,
    ],
)

# Values that break length arithmetic: zero, off-by-one, undefined length, huge.
INTERESTING = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    0x7F,
    0x80,
    0xFF,
    0x7FFF,
    0x8000,
    0xFFFE,
    0xFFFF,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFE,
    0xFFFFFFFF,
]


def seed_files(suffix: str = ".dcm") -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in sorted(CORPUS.glob(f"*{suffix}"))}
    if not files:
        raise RuntimeError(
            f"the seed corpus {CORPUS} is missing: run python tests/hardening/corpus_gen.py"
        )
    return files


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes], start: int = 0) -> bytes:
    """A seed with a few structure-aware mutations (positions after ``start`` favoured)."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        low = min(start, len(data) - 1)
        pos = draw(st.integers(low, len(data) - 1))
        op = draw(st.sampled_from(["flip", "byte", "u16", "u32", "insert", "delete", "cut", "dup"]))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            data[pos] = draw(st.integers(0, 255))
        elif op in ("u16", "u32"):
            width = 2 if op == "u16" else 4
            value = draw(st.sampled_from(INTERESTING)) & ((1 << (8 * width)) - 1)
            data[pos : pos + width] = value.to_bytes(width, "little")
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == "cut":
            del data[pos:]
        elif op == "dup":
            chunk = data[pos : pos + draw(st.integers(1, 64))]
            data[pos:pos] = chunk
    return bytes(data)
