"""Part 10 bytes from a received C-STORE data set, without decoding it.

A C-STORE carries the data set already encoded in the negotiated transfer
syntax. Prefixing it with a file meta header gives exactly the file the
sender would have written; decoding and re-encoding instead would cost time
and could silently change values (private tags, odd VRs, padding).
"""

from __future__ import annotations

from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

from trialpacs.dicom.parse import PREAMBLE

IMPLEMENTATION_VERSION = "TRIALPACS_010"


def build_part10(
    dataset: bytes,
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax: str,
) -> bytes:
    """Zero preamble + DICM + file meta + the encoded data set as received.

    The meta header depends only on the instance and its syntax (no sender
    AE title, no time), so the same data set sent twice, by any peer, gives
    the same bytes and is recognised by the store as a duplicate.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(_clean(sop_class_uid))
    meta.MediaStorageSOPInstanceUID = UID(_clean(sop_instance_uid))
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    buf = DicomBytesIO()
    buf.write(PREAMBLE)
    buf.write(b"DICM")
    write_file_meta_info(buf, meta, enforce_standard=True)
    buf.write(dataset)
    return buf.getvalue()


def _clean(uid: str) -> str:
    return str(uid).strip("\x00 ")
