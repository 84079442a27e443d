"""Property-based fuzzing (hypothesis) of the four places hostile bytes enter.

Each fuzzer starts from the committed seed corpus (tests/hardening/corpus)
and asserts what a user relies on: bad input is refused with
``InvalidInput`` (a clear 400 / DIMSE 0xC000), never another exception (a
500 or an aborted association); what is accepted is stored intact and
indexed; de-identified output never carries the planted patient identity.
Crashes found here became regression tests in tests/hardening/test_regressions.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from hardening.corpus_gen import PATIENT_ID, PATIENT_NAME, write
from hardening.fuzzing import (
    CORPUS,
    FUZZ,
    check_deid,
    check_multipart,
    check_parse,
    check_qido_query,
    check_qido_url,
    check_store,
    check_stow_body,
    mutated,
    planted_identity,
    seed_files,
)
from trialpacs.archive import Archive
from trialpacs.deid import Deidentifier, TrialContext, load_profile
from trialpacs.dicom.parse import PREAMBLE, parse_part10
from trialpacs.errors import InvalidInput
from trialpacs.index.qido import Level
from trialpacs.ingest.store import store_bytes
from trialpacs.settings import Settings
from trialpacs.web import multipart

SEEDS = list(seed_files().values())
SECRET = b"fuzzing-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    opened = Archive.open(Settings(data_dir=tmp_path_factory.mktemp("fuzz-archive")))
    try:
        for seed in SEEDS:  # something for QIDO to match against
            store_bytes(opened, seed)
        yield opened
    finally:
        opened.close()


# ------------------------------------------------------------ Part 10 parser


def test_every_seed_parses() -> None:
    for name, data in seed_files().items():
        parsed = parse_part10(data)
        assert parsed.data[:128] == PREAMBLE, name


@FUZZ
@given(data=mutated(SEEDS, start=128))
def test_parser_refuses_or_accepts_cleanly(data: bytes) -> None:
    check_parse(data)


@FUZZ
@given(data=st.binary(max_size=600))
def test_parser_on_arbitrary_bytes(data: bytes) -> None:
    for candidate in (data, PREAMBLE + b"DICM" + data):
        with contextlib.suppress(InvalidInput):
            parse_part10(candidate)


# ------------------------------------------------------------ store path


@FUZZ
@given(data=mutated(SEEDS, start=128))
def test_store_path_stores_intact_or_refuses(archive: Archive, data: bytes) -> None:
    check_store(archive, data)


# ------------------------------------------------------------ multipart


BOUNDARY = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'()+_,-./:=?",
    min_size=1,
    max_size=70,
)


@FUZZ
@given(
    bodies=st.lists(st.binary(max_size=300), min_size=1, max_size=6),
    boundary=BOUNDARY,
    ctype=st.sampled_from(["application/dicom", "application/octet-stream"]),
)
def test_multipart_round_trip(bodies: list[bytes], boundary: str, ctype: str) -> None:
    delim = ("--" + boundary).encode()
    if any(delim in b"\r\n" + body + b"\r\n" for body in bodies):
        return  # a body containing the delimiter cannot be framed with this boundary
    wire = b"".join(multipart.stream([(ctype, body) for body in bodies], boundary))
    parts = multipart.split(wire, boundary)
    assert [p.body for p in parts] == bodies
    assert all(p.content_type == ctype for p in parts)


@FUZZ
@given(
    body=st.one_of(mutated(list(seed_files(".multipart").values())), st.binary(max_size=400)),
    boundary=st.one_of(st.just("fuzzBOUNDARY"), st.text(max_size=300)),
    max_parts=st.one_of(st.none(), st.integers(0, 3)),
)
def test_multipart_split_refuses_or_splits(
    body: bytes, boundary: str, max_parts: int | None
) -> None:
    check_multipart(body, boundary, max_parts)


@FUZZ
@given(data=mutated(list(seed_files("", "multipart/*").values())))
def test_stow_request_refuses_or_splits(data: bytes) -> None:
    check_stow_body(data)


@FUZZ
@given(ctype=st.text(max_size=200))
def test_multipart_boundary_of_any_content_type(ctype: str) -> None:
    try:
        boundary = multipart.boundary_of(ctype)
    except InvalidInput:
        return
    assert boundary


# ------------------------------------------------------------ QIDO parameters


KEYS = [
    "PatientName",
    "PatientID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ModalitiesInStudy",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "Modality",
    "SeriesDescription",
    "StudyDescription",
    "00100010",
    "0020000D",
    "includefield",
    "limit",
    "offset",
    "fuzzymatching",
    "InstanceNumber",
    "SeriesNumber",
    "NumberOfStudyRelatedInstances",
    "ReferringPhysicianName",
    "PatientBirthDate",
    "00080061",
    "x",
    "",
]
VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "*",
            "?",
            "-",
            "DOE*",
            "20240101-",
            "-20241231",
            "1.2.3",
            "1.2.3\\1.2.4",
            "-1",
            "99999999999999999999",
            "true",
            "all",
            "\\",
            "%",
            "_",
            "'",
            "\x00",
            "20240230",
            "2400",
            "1015-1016",
            "A" * 70,
        ]
    ),
)


def _qido_seed_params() -> list[list[tuple[str, str]]]:
    from urllib.parse import parse_qsl

    lines = (CORPUS / "qido.txt").read_text().splitlines()
    return [parse_qsl(line, keep_blank_values=True) for line in lines if line]


@FUZZ
@given(
    level=st.sampled_from(["study", "series", "instance"]),
    params=st.one_of(
        st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=6),
        st.sampled_from(_qido_seed_params()),
    ),
)
def test_qido_parameters_refused_or_searched(
    archive: Archive, level: Level, params: list[tuple[str, str]]
) -> None:
    check_qido_query(archive, level, params)


@FUZZ
@given(url=mutated(list(seed_files("", "qido/*").values())))
def test_qido_urls_refused_or_searched(archive: Archive, url: bytes) -> None:
    check_qido_url(archive, url)


# ------------------------------------------------------------ de-identification


def _deidentifier() -> Deidentifier:
    return Deidentifier(load_profile("trial"), SECRET, TrialContext("T1", "S1"), use_ner=False)


@FUZZ
@given(data=mutated(SEEDS, start=128))
def test_deid_refuses_or_produces_parseable_output(data: bytes) -> None:
    check_deid(_deidentifier(), data)


TEXT_TAGS = [
    0x00081030,
    0x0008103E,
    0x00080080,
    0x00081010,
    0x00204000,
    0x00321060,
    0x00400254,
    0x00080070,
    0x00181030,
]


@st.composite
def planted(draw: st.DrawFn, depth: int = 0) -> Dataset:
    """A data set with the patient's identity planted in identifying attributes,
    in nested items of random depth, among random free-text attributes."""
    ds = Dataset()
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    for tag in draw(st.lists(st.sampled_from(TEXT_TAGS), max_size=4, unique=True)):
        ds.add_new(tag, "LO", draw(st.text(alphabet="ABCDEFGH ^-", max_size=20)))
    if depth < 4 and draw(st.booleans()):
        ds.OtherPatientIDsSequence = Sequence(
            draw(st.lists(planted(depth + 1), min_size=1, max_size=2))
        )
    return ds


@FUZZ
@given(nested=planted(), free_text=st.booleans())
def test_deid_never_lets_the_planted_identity_through(nested: Dataset, free_text: bool) -> None:
    from hardening.corpus_gen import base

    ds = base(99)
    for elem in nested:
        ds.add(elem)
    if free_text:
        ds.StudyDescription = f"follow-up of {PATIENT_NAME} ({PATIENT_ID})"
    out, _ = _deidentifier().deidentify_part10(write(ds, "1.2.840.10008.1.2.1"))
    for value in planted_identity():
        assert value not in out


def test_corpus_is_committed() -> None:
    assert (CORPUS / "qido.txt").is_file()
    assert len(list(CORPUS.glob("*.dcm"))) >= 5
