"""Prepare stored instances for C-MOVE and C-GET sub-operations.

Instances go out in the transfer syntax they were stored in whenever the peer
accepted it (no decompression, no loss, no CPU); only a peer that refused it
gets a decompressed Explicit VR Little Endian copy.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.presentation import PresentationContext, build_context

from trialpacs.dicom.transcode import to_explicit_le
from trialpacs.errors import InvalidInput
from trialpacs.index.lookup import InstanceRef
from trialpacs.storage import BlobStore

UNCOMPRESSED = (str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian))
MAX_CONTEXTS = 128


def move_contexts(refs: Iterable[InstanceRef]) -> list[PresentationContext]:
    """Contexts to propose to a C-MOVE destination: each class in its stored
    syntax, plus an uncompressed fallback context per class."""
    stored: dict[str, list[str]] = {}
    for ref in refs:
        syntaxes = stored.setdefault(ref.sop_class_uid, [])
        if ref.transfer_syntax not in syntaxes:
            syntaxes.append(ref.transfer_syntax)
    contexts: list[PresentationContext] = []
    for sop_class, syntaxes in stored.items():
        for ts in syntaxes:
            if ts not in UNCOMPRESSED:
                contexts.append(build_context(sop_class, [ts]))
        contexts.append(build_context(sop_class, list(UNCOMPRESSED)))
    return contexts[:MAX_CONTEXTS]


def accepted_for_sending(contexts: Iterable[PresentationContext]) -> dict[str, set[str]]:
    """SOP class -> transfer syntaxes we may send with, from accepted contexts."""
    out: dict[str, set[str]] = {}
    for cx in contexts:
        if cx.as_scu and cx.transfer_syntax:
            out.setdefault(str(cx.abstract_syntax), set()).add(str(cx.transfer_syntax[0]))
    return out


def load_for_peer(
    store: BlobStore, ref: InstanceRef, accepted: Mapping[str, set[str]] | None
) -> Dataset:
    """The stored instance as a Dataset in a syntax the peer accepted.

    ``accepted`` None means unknown yet (pynetdicom then matches the syntax).
    """
    data = store.get(ref.blob_key)
    if accepted is not None:
        syntaxes = accepted.get(ref.sop_class_uid, set())
        if ref.transfer_syntax not in syntaxes:
            if not syntaxes & set(UNCOMPRESSED):
                raise InvalidInput(
                    f"the peer accepted no presentation context for {ref.sop_class_uid} "
                    f"in {UID(ref.transfer_syntax).name} or an uncompressed syntax"
                )
            data = to_explicit_le(data, ref.transfer_syntax)
    return dcmread(io.BytesIO(data))
