"""The QC hook: where the anatomy QC issue plugs into the pipeline.

A hook sees the de-identified series (headers only, pixel data left out)
with what the trial expects, and answers pass, hold (a person must look;
not published) or fail (not published, needs attention).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from pydicom.dataset import Dataset


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
    timepoint: str = ""


@dataclass(frozen=True)
class QcVerdict:
    status: Literal["pass", "hold", "fail"]
    reason: str = ""


@runtime_checkable
class QcHook(Protocol):
    def check(self, series: SeriesForQc) -> QcVerdict: ...


class PassThroughQc:
    """The default until anatomy QC exists: every series passes."""

    def check(self, series: SeriesForQc) -> QcVerdict:
        return QcVerdict("pass")


def load_hook(spec: str | None) -> QcHook:
    """``module:attribute`` naming a QcHook instance, class or factory; None: pass-through."""
    if not spec:
        return PassThroughQc()
    module_name, _, attr = spec.partition(":")
    obj = getattr(importlib.import_module(module_name), attr or "hook")
    hook = obj() if callable(obj) and not isinstance(obj, QcHook) else obj
    if not isinstance(hook, QcHook):
        raise TypeError(f"{spec} is not a QcHook (it needs check(series) -> QcVerdict)")
    return hook
