"""The QC hook: where the anatomy QC issue plugs into the pipeline.

A hook sees the de-identified series (headers only, pixel data left out)
with what the trial expects, and answers pass, hold (a person must look;
not published) or fail (not published, needs attention).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from pydicom.dataset import Dataset

if TYPE_CHECKING:
    from trialpacs.archive import Archive


@dataclass(frozen=True)
class SeriesForQc:
    trial_id: str
    site_id: str
    series_uid: str  # de-identified
    modality: str
    body_part: str
    datasets: list[Dataset] = field(default_factory=list)
    expected_modalities: tuple[str, ...] = ()
    expected_anatomy: tuple[str, ...] = ()
    expected_series: tuple[str, ...] = ()  # sequence families the visit expects
    timepoint: str = ""
    # The pipeline's key (identified Series Instance UID): for the hook's own records only.
    key: str = ""
    subject: str = ""
    instances: tuple[bytes, ...] = ()  # the de-identified Part 10 bytes, pixels included
    # What the hook read from the identified headers before de-identification
    # (ReadsIdentified); the headers themselves are not passed on.
    identified: object | None = None
    archive: Archive | None = None


@dataclass(frozen=True)
class QcVerdict:
    status: Literal["pass", "hold", "fail"]
    reason: str = ""


@runtime_checkable
class QcHook(Protocol):
    def check(self, series: SeriesForQc) -> QcVerdict: ...


@runtime_checkable
class ReadsIdentified(Protocol):
    """A hook that also looks at the identified headers, before descriptors are cleaned."""

    def read_identified(self, dataset: Dataset) -> object: ...


def prior_decision(archive: Archive, series_uid: str) -> str:
    """"approved", "rejected" or "" : what a person decided in the QC queue."""
    from trialpacs.qc.store import decision

    return decision(archive.db, series_uid)


class PassThroughQc:
    """The default until anatomy QC exists: every series passes."""

    def check(self, series: SeriesForQc) -> QcVerdict:
        return QcVerdict("pass")


def load_hook(spec: str | None) -> QcHook:
    """``module:attribute`` naming a QcHook instance, class or factory; None: anatomy QC.

    The anatomy QC passes every series of a trial that declares no anatomy.
    """
    if not spec:
        from trialpacs.qc.hook import AnatomyQc

        return AnatomyQc()
    module_name, _, attr = spec.partition(":")
    obj = getattr(importlib.import_module(module_name), attr or "hook")
    hook = obj() if callable(obj) and not isinstance(obj, QcHook) else obj
    if not isinstance(hook, QcHook):
        raise TypeError(f"{spec} is not a QcHook (it needs check(series) -> QcVerdict)")
    return hook
