"""Storage Commitment Push Model (PS3.4 J): tell a PACS which instances we hold.

A PACS may delete its copy once we commit, so the answer comes from the index
(an instance is listed only if its row is committed, which the store path
does after the bytes are durable) and names the exact SOP Class as stored:
a class mismatch is a failure, not a success.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from sqlalchemy.orm import Session

from trialpacs.index import lookup

STORAGE_COMMITMENT_SOP_CLASS = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_SOP_INSTANCE = "1.2.840.10008.1.20.1.1"
REQUEST_ACTION_TYPE = 1
EVENT_ALL_COMMITTED = 1
EVENT_SOME_FAILED = 2
# Failure reasons (PS3.3 C.14.1.1)
NO_SUCH_INSTANCE = 0x0112
CLASS_INSTANCE_CONFLICT = 0x0119
PROCESSING_FAILURE = 0x0110


@dataclass(frozen=True, slots=True)
class Reference:
    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class CommitmentResult:
    transaction_uid: str
    committed: list[Reference]
    failed: list[tuple[Reference, int]]

    @property
    def event_type(self) -> int:
        return EVENT_SOME_FAILED if self.failed else EVENT_ALL_COMMITTED


def parse_request(ds: Dataset) -> tuple[str, list[Reference]]:
    """Transaction UID and the references of an N-ACTION request; ValueError if malformed."""
    transaction = str(ds.get("TransactionUID", "") or "").strip("\x00 ")
    if not transaction:
        raise ValueError("the N-ACTION has no TransactionUID (0008,1195)")
    refs = []
    for item in ds.get("ReferencedSOPSequence", []) or []:
        sop_class = str(item.get("ReferencedSOPClassUID", "") or "").strip("\x00 ")
        sop_uid = str(item.get("ReferencedSOPInstanceUID", "") or "").strip("\x00 ")
        if not sop_class or not sop_uid:
            raise ValueError("a ReferencedSOPSequence item lacks its class or instance UID")
        refs.append(Reference(sop_class, sop_uid))
    if not refs:
        raise ValueError("the N-ACTION has no ReferencedSOPSequence (0008,1199) items")
    return transaction, refs


def check(session: Session, transaction_uid: str, refs: Sequence[Reference]) -> CommitmentResult:
    held: dict[str, str] = {}
    uids = [r.sop_instance_uid for r in refs]
    for start in range(0, len(uids), 500):
        # Any collection: an identified instance in quarantine is safely kept too.
        chunk = uids[start : start + 500]
        for found in lookup.instances(session, sop_uids=chunk, collection=None):
            held[found.sop_uid] = found.sop_class_uid
    committed: list[Reference] = []
    failed: list[tuple[Reference, int]] = []
    for ref in refs:
        stored_class = held.get(ref.sop_instance_uid)
        if stored_class is None:
            failed.append((ref, NO_SUCH_INSTANCE))
        elif stored_class != ref.sop_class_uid:
            failed.append((ref, CLASS_INSTANCE_CONFLICT))
        else:
            committed.append(ref)
    return CommitmentResult(transaction_uid, committed, failed)


def event_information(result: CommitmentResult) -> Dataset:
    """The N-EVENT-REPORT Event Information (PS3.4 Table J.3-2)."""
    ds = Dataset()
    ds.TransactionUID = result.transaction_uid
    if result.committed:
        ds.ReferencedSOPSequence = DicomSequence([_item(ref) for ref in result.committed])
    if result.failed:
        items = []
        for ref, reason in result.failed:
            item = _item(ref)
            item.FailureReason = reason
            items.append(item)
        ds.FailedSOPSequence = DicomSequence(items)
    return ds


def _item(ref: Reference) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = ref.sop_class_uid
    item.ReferencedSOPInstanceUID = ref.sop_instance_uid
    return item
