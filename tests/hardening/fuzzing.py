"""Shared pieces of the fuzzers: the committed seed corpus, mutations, the time box.

The number of examples per fuzzer is ``TRIALPACS_FUZZ_EXAMPLES`` (default
150: about a minute for the whole file on the CI machine); a long local run
uses e.g. ``TRIALPACS_FUZZ_EXAMPLES=20000``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from hardening.corpus_gen import PATIENT_ID, PATIENT_NAME
from trialpacs.archive import Archive
from trialpacs.deid import Deidentifier
from trialpacs.deid.engine import phi_values
from trialpacs.dicom.parse import PREAMBLE, parse_part10
from trialpacs.dicom.uids import require_uid
from trialpacs.errors import InvalidInput, TooLarge, TrialpacsError
from trialpacs.index import lookup, qido
from trialpacs.index.qido import Level
from trialpacs.ingest.store import store_bytes
from trialpacs.web import multipart

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


def seed_files(suffix: str = ".dcm", pattern: str = "*") -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in sorted(CORPUS.glob(f"{pattern}{suffix}"))}
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


# ------------------------------------------------------------ properties
#
# One definition of "handled correctly" per entry point, shared by the
# hypothesis fuzzers (tests/hardening/test_fuzz.py) and the coverage-guided
# atheris harnesses (bench/fuzz_atheris.py). Each returns quietly when the
# input was accepted correctly or refused with our error, and raises
# AssertionError (or lets a foreign exception escape) otherwise: that is a
# crash for both fuzzers.

QIDO_MAX_LIMIT = 50
MULTIPART_MAX_PARTS = 3
LEVELS: dict[str, Level] = {"studies": "study", "series": "series", "instances": "instance"}


def check_parse(data: bytes, *, intact: bool = True) -> None:
    """Accepted (same bytes after a zero preamble, sane UIDs) or ``InvalidInput``."""
    try:
        parsed = parse_part10(data)
    except InvalidInput:
        return
    assert parsed.data[:128] == PREAMBLE
    if intact:
        assert parsed.data[128:] == data[128:]
    for uid in (parsed.sop_instance_uid, parsed.study_uid, parsed.series_uid):
        assert 0 < len(uid) <= 64


def check_store(archive: Archive, data: bytes) -> None:
    """Stored and indexed once with the exact bytes, or refused with a ``TrialpacsError``."""
    try:
        outcome = store_bytes(archive, data)
    except TrialpacsError:
        return
    with archive.db.read() as session:
        refs = lookup.instances(session, sop_uid=outcome.sop_uid)
    assert len(refs) == 1, f"{outcome.sop_uid} indexed {len(refs)} times"
    stored = archive.store.get(refs[0].blob_key)
    assert stored[:128] == PREAMBLE
    # Either these bytes or an earlier identical instance (duplicate) is stored.
    if outcome.status == "stored":
        assert stored[128:] == data[128:], "stored bytes differ from the received bytes"
    assert len(stored) == refs[0].size


def check_multipart(
    body: bytes, boundary: str, max_parts: int | None = MULTIPART_MAX_PARTS
) -> list[multipart.Part]:
    """Split or ``InvalidInput``; never more than ``max_parts``; each body is a slice of ``body``.

    Returns the parts ([] when refused) so callers can check more.
    """
    try:
        parts = multipart.split(body, boundary, max_parts)
    except InvalidInput:
        return []
    if max_parts is not None:
        assert len(parts) <= max_parts
    for part in parts:
        assert part.body in body
    return parts


def check_stow_body(data: bytes) -> None:
    """A STOW-RS request as the server sees it: a Content-Type line, then the body.

    The boundary comes from the header as in the STOW route; with the parts
    limit the same body gives the same parts or a ``TooLarge`` refusal.
    """
    line, _, body = data.partition(b"\n")
    try:
        boundary = multipart.boundary_of(line.rstrip(b"\r").decode("latin-1"))
    except InvalidInput:
        return
    unlimited = check_multipart(body, boundary, None)
    try:
        limited = multipart.split(body, boundary, MULTIPART_MAX_PARTS)
    except TooLarge:
        # The limit may trip before a later malformation is seen.
        assert not unlimited or len(unlimited) > MULTIPART_MAX_PARTS
        return
    except InvalidInput:
        assert not unlimited, "refused with a limit but split without one"
        return
    assert [p.body for p in limited] == [p.body for p in unlimited]


def check_qido_query(
    archive: Archive,
    level: Level,
    params: list[tuple[str, str]],
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> None:
    """Refused with ``InvalidInput`` or searched; no more answers than the limit."""
    try:
        if study_uid is not None:
            require_uid(study_uid, "Study Instance UID in the URL")
        if series_uid is not None:
            require_uid(series_uid, "Series Instance UID in the URL")
        query = qido.Query.from_params(
            level, params, study_uid=study_uid, series_uid=series_uid, max_limit=QIDO_MAX_LIMIT
        )
        with archive.db.read() as session:
            result = qido.search(session, query)
    except InvalidInput:
        return
    assert query.limit is not None and query.limit <= QIDO_MAX_LIMIT
    assert len(result.items) <= query.limit, f"{len(result.items)} answers, limit {query.limit}"


def check_qido_url(archive: Archive, data: bytes) -> None:
    """A QIDO-RS URL (``studies/{uid}/series?key=value&...``) as the route sees it."""
    path, _, qs = data.decode("latin-1").partition("?")
    segments = path.strip("/").split("/")
    level = LEVELS.get(segments[-1])
    if level is None:
        return  # no such route: a 404, nothing of ours runs
    study = segments[1] if len(segments) >= 3 and segments[0] == "studies" else None
    series = segments[3] if len(segments) >= 5 and segments[2] == "series" else None
    params = parse_qsl(qs, keep_blank_values=True)
    check_qido_query(archive, level, params, study, series)


def planted_identity() -> list[bytes]:
    """The patient identity the seeds carry, as it could appear in output bytes."""
    return [v.encode() for v in (PATIENT_NAME, PATIENT_ID, PATIENT_NAME.replace("^", " "))]


def check_deid(deidentifier: Deidentifier, data: bytes) -> None:
    """Output (a readable Part 10 file without the planted identity) or ``InvalidInput``.

    ``DeidError`` is an ``InvalidInput``: the instance is refused, nothing of
    it is released.
    """
    try:
        out, _ = deidentifier.deidentify_part10(data)
    except InvalidInput:
        return
    assert out[:128] == PREAMBLE
    assert out[128:132] == b"DICM"
    released = parse_part10(out)  # what we release must be readable (InvalidInput: a crash)
    values = b"\x00".join(
        [*_element_values(released.dataset.file_meta), *_element_values(released.dataset)]
    )
    leaked = [value for value in planted_identity() if value in values]
    if leaked:
        # The engine's notion of the patient's identity is what the input
        # declares: its top-level identifying attributes (PS3.15 E.1-1) and
        # the patient names and IDs of any sequence item. A value the input
        # no longer declares anywhere (a mutation broke every copy) is just
        # text to the engine, not a leak of this property.
        try:
            source = parse_part10(data).dataset
        except InvalidInput as exc:
            raise AssertionError(f"de-identified what parse_part10 refuses: {exc}") from exc
        declared = {text.encode() for text in declared_identity(source)}
        declared |= {text.replace("^", " ").encode() for text in map(bytes.decode, declared)}
        for value in leaked:
            assert value not in declared, f"{value!r} reached the de-identified output"


_IDENTITY = frozenset({0x00100010, 0x00100020, 0x00101000, 0x00101001, 0x00101005})


def declared_identity(ds: Dataset) -> set[str]:
    """Identifying values the input declares at the top level or in any item."""
    found = {text for _, _, text in phi_values(ds)}
    _item_identity(ds, found)
    return found


def _item_identity(ds: Dataset, found: set[str], depth: int = 0) -> None:
    # Element by element: one the input holds but nobody can convert (an FL
    # of 14 bytes) declares nothing, and must not stop the search.
    for tag in list(ds.keys()):
        try:
            elem = ds[tag]
        except Exception:
            continue
        if elem.VR == "SQ":
            for item in elem.value or ():
                _item_identity(item, found, depth + 1)
        elif depth and int(tag) in _IDENTITY and elem.value not in (None, ""):
            values = elem.value if isinstance(elem.value, list | MultiValue) else [elem.value]
            found.update(str(v).strip("\x00 ") for v in values)


# Pixel samples are image content: text burned into them is the pixel
# cleaner's business, and a run of sample bytes that happens to spell the
# name (a mutation copying header bytes into a fragment) is no attribute.
_PIXELS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})


def _element_values(ds: Dataset, depth: int = 0) -> Iterator[bytes]:
    """Every attribute value as stored, at any depth, pixel data left out.

    Values, not output bytes: a deflated output hides its values from a
    byte search, and this sees them all (parse_part10 has refused anything
    it could not read).
    """
    for tag in list(ds.keys()):
        if depth == 0 and tag in _PIXELS:
            continue
        raw = ds._dict[tag]
        if isinstance(raw, RawDataElement):
            vr = raw.VR or dictionary_vr_or_none(tag)
            if vr != "SQ":
                yield raw.value if isinstance(raw.value, bytes) else b""
                continue
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _element_values(item, depth + 1)
        elif isinstance(elem.value, bytes):
            yield elem.value
        else:
            yield str(elem.value).encode("utf-8", "replace")


def dictionary_vr_or_none(tag: int) -> str | None:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None
