"""Writes the fuzzers' seed corpus (tests/hardening/corpus), small generated files only.

Run ``python tests/hardening/corpus_gen.py`` to regenerate; the files are
committed so every CI run starts from the same seeds. Each seed exercises a
different branch of the parser: explicit/implicit VR, deflate, encapsulated
(RLE) multi-frame pixel data, nested and undefined-length sequences,
private elements, and PHI in nested items for the de-identification fuzzer.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
ROOT = "1.2.826.0.1.3680043.8.498.1100"
PATIENT_NAME = "FUZZ^PATIENT^Q"
PATIENT_ID = "FZ-778899"


def base(n: int, *, frames: int = 1, rows: int = 4, cols: int = 4) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = f"{ROOT}.{n}.3"
    ds.StudyInstanceUID = f"{ROOT}.{n}.1"
    ds.SeriesInstanceUID = f"{ROOT}.{n}.2"
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = "19610203"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC-FZ1"
    ds.StudyDescription = f"knee for {PATIENT_NAME}"
    ds.InstitutionName = "Fuzz General Hospital"
    ds.Modality = "MR"
    ds.SeriesNumber = 1
    ds.InstanceNumber = n
    ds.Rows = rows
    ds.Columns = cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = (np.arange(rows * cols * frames, dtype=np.uint16) % 4096).astype("<u2").tobytes()
    return ds


def write(ds: Dataset, ts: str) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(ts)
    ds.file_meta = meta
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def nested(depth: int) -> Dataset:
    item = Dataset()
    item.PatientName = PATIENT_NAME
    item.PatientID = PATIENT_ID
    item.CodeMeaning = f"level {depth}"
    if depth > 1:
        item.ContentSequence = Sequence([nested(depth - 1)])
        item.ContentSequence.is_undefined_length = True
    return item


def seeds() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    out["explicit_le.dcm"] = write(base(1), ExplicitVRLittleEndian)
    out["implicit_le.dcm"] = write(base(2), ImplicitVRLittleEndian)
    out["deflated.dcm"] = write(base(3), DeflatedExplicitVRLittleEndian)
    rle = base(4, frames=3)
    rle.file_meta = FileMetaDataset()
    rle.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    rle.compress(RLELossless)
    out["rle_3_frames.dcm"] = write(rle, RLELossless)
    seq = base(5)
    seq.OtherPatientIDsSequence = Sequence([nested(4)])
    seq.ReferencedStudySequence = Sequence([Dataset(), Dataset()])
    seq.ReferencedStudySequence[0].ReferencedSOPInstanceUID = f"{ROOT}.5.9"
    out["nested_sequences.dcm"] = write(seq, ExplicitVRLittleEndian)
    priv = base(6)
    block = priv.private_block(0x0029, "FUZZ CREATOR", create=True)
    block.add_new(0x10, "LO", f"private {PATIENT_NAME}")
    block.add_new(0x11, "OB", b"\x01\x02\x03\x04")
    out["private_tags.dcm"] = write(priv, ExplicitVRLittleEndian)
    out["no_pixels.dcm"] = write(_without_pixels(base(7)), ExplicitVRLittleEndian)
    return out


def _without_pixels(ds: Dataset) -> Dataset:
    del ds.PixelData
    return ds


def multipart(bodies: list[bytes], boundary: str = "fuzzBOUNDARY") -> bytes:
    out = b""
    for body in bodies:
        out += b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n"
        out += body + b"\r\n"
    return out + b"--" + boundary.encode() + b"--\r\n"


QIDO_SEEDS = [
    "PatientName=DOE*&limit=10",
    "StudyDate=20240101-20241231&ModalitiesInStudy=MR",
    "includefield=all&offset=3",
    "00100020=PID?01&fuzzymatching=true",
    "StudyInstanceUID=1.2.3\\1.2.4&includefield=00081030,StudyDescription",
    "StudyTime=1015-&AccessionNumber=ACC*",
    "SeriesDescription=T1*&Modality=CT\\MR",
]


# QIDO-RS routes for the URL seeds of the atheris harness (bench/fuzz_atheris.py).
QIDO_PATHS = [
    "studies",
    f"studies/{ROOT}.5.1/series",
    f"studies/{ROOT}.5.1/series/{ROOT}.5.2/instances",
    "series",
    "instances",
]


def stow_requests(files: dict[str, bytes]) -> dict[str, bytes]:
    """STOW-RS requests for the atheris multipart harness: a Content-Type line, then the body.

    Quoted and special-character boundaries, bare LF line endings, preamble
    and epilogue, part headers, more parts than the harness' limit (3), an
    empty part and a body without its closing boundary.
    """
    dicom = 'multipart/related; type="application/dicom"; boundary='
    small = [b"DICM-part-one", b"", b"--not-a-boundary\r\n"]
    quoted = "a'()+_,-./:=? b"
    lf_body = (
        b"preamble\n--lf\nContent-Type: application/dicom\nContent-Location: x\n\none\n"
        b"--lf\n\ntwo\n--lf--\nepilogue"
    )
    return {
        "stow_two_parts.bin": (dicom + "fuzzBOUNDARY\r\n").encode()
        + multipart([files["explicit_le.dcm"], files["nested_sequences.dcm"]]),
        "stow_quoted_boundary.bin": (f'{dicom}"{quoted}"\r\n').encode() + multipart(small, quoted),
        "stow_lf_only.bin": b"multipart/related; boundary=lf\n" + lf_body,
        "stow_too_many_parts.bin": (dicom + "b\r\n").encode()
        + multipart([b"1", b"2", b"3", b"4"], "b"),
        "stow_truncated.bin": (dicom + "t\r\n").encode() + multipart([b"x"], "t")[:-8],
    }


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    files = seeds()
    for name, data in files.items():
        (CORPUS / name).write_bytes(data)
    (CORPUS / "two_parts.multipart").write_bytes(
        multipart([files["explicit_le.dcm"], files["nested_sequences.dcm"]])
    )
    (CORPUS / "qido.txt").write_text("\n".join(QIDO_SEEDS) + "\n")
    # One input per file for the atheris harnesses (libFuzzer's corpus format).
    (CORPUS / "multipart").mkdir(exist_ok=True)
    for name, data in stow_requests(files).items():
        (CORPUS / "multipart" / name).write_bytes(data)
    (CORPUS / "qido").mkdir(exist_ok=True)
    for i, path in enumerate(QIDO_PATHS):
        for j, query in enumerate(QIDO_SEEDS):
            (CORPUS / "qido" / f"url_{i}_{j}.txt").write_text(f"{path}?{query}")
    print(f"wrote seeds to {CORPUS}", file=sys.stderr)


if __name__ == "__main__":
    main()
