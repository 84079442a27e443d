"""The shape of a configuration file, as pydantic models (``extra`` keys are errors)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegionCfg(_Strict):
    id: str = Field(min_length=1, max_length=64)
    description: str = ""


class BackendCfg(_Strict):
    name: str = Field(min_length=1, max_length=64)
    kind: Literal["local", "s3"]
    region: str
    purpose: Literal["identified", "deidentified"]
    path: str | None = None
    bucket: str | None = None
    prefix: str | None = None
    endpoint_url: str | None = None
    s3_region: str | None = None

    def options(self) -> dict[str, Any]:
        keys = ("path", "bucket", "prefix", "endpoint_url", "s3_region")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


class ProfileCfg(BaseModel):
    """A de-identification profile; every key but ``name`` is the deid profile mapping."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, max_length=64)

    def definition(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class AeCfg(_Strict):
    ae_title: str = Field(min_length=1, max_length=16)
    host: str
    port: int = Field(ge=1, le=65535)


class SiteCfg(_Strict):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = ""
    region: str
    identified_backend: str | None = None
    hosts: list[str] = []
    aes: list[AeCfg] = []


class TimePointCfg(_Strict):
    id: str = Field(min_length=1, max_length=64)
    description: str = ""
    modalities: list[str] = []
    anatomy: list[str] = []
    # [first, last] day after the subject's baseline study that falls in this
    # visit; used only when neither the intake nor the data names the visit.
    window_days: tuple[int, int] | None = None
    # Sequence families the visit expects (anatomy QC): a localizer is held
    # unless listed here or accepted by the trial's `qc:` block.
    expected_series: list[Literal["t1", "t2", "pd", "dwi", "localizer", "other"]] = []


class QcCfg(_Strict):
    """Anatomy QC knobs of one trial (docs/qc.md); an unset key takes the installation default.

    ``None`` means "not set here", so exporting writes back only what the trial chose
    and a later change of the installation default still reaches the other keys.
    """

    hold: float | None = Field(default=None, ge=0.0, le=1.0)
    image_weight: float | None = Field(default=None, ge=0.0, le=1.0)
    z_hold: float | None = Field(default=None, gt=0.0)
    min_reference: int | None = Field(default=None, ge=2)
    min_stratum: int | None = Field(default=None, ge=2)
    method: Literal["lof", "iforest"] | None = None
    hold_unverifiable: bool | None = None
    accept_localizers: bool | None = None

    def chosen(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class TrialSiteCfg(_Strict):
    site: str
    ae_title: str | None = Field(default=None, min_length=1, max_length=16)


class TrialCfg(_Strict):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = ""
    sponsor: str = ""
    profile: str = "trial"
    deid_regions: list[str] = []
    # De-identified backends (each in one of deid_regions) that receive a copy
    # of everything the trial publishes, besides the served archive.
    publish_to: list[str] = []
    ae_title: str | None = Field(default=None, min_length=1, max_length=16)
    timepoints: list[TimePointCfg] = []
    sites: list[TrialSiteCfg] = []
    qc: QcCfg | None = None
    # Where a reader's measurement report (DICOM SR saved from the viewer) goes:
    # their private workspace, or the trial's archive as a new series of the study.
    reader_reports: Literal["workspace", "trial"] = "workspace"


class RoleCfg(_Strict):
    name: str = Field(min_length=1, max_length=64)
    members: list[str] = []
    trials: list[str] = []
    phi_sites: list[str] = []


class ConfigDoc(_Strict):
    version: Literal[1] = 1
    regions: list[RegionCfg] = []
    storage_backends: list[BackendCfg] = []
    profiles: list[ProfileCfg] = []
    sites: list[SiteCfg] = []
    trials: list[TrialCfg] = []
    roles: list[RoleCfg] = []

    def normalized(self) -> ConfigDoc:
        """Order that carries no meaning removed, so equal states compare equal."""
        doc = self.model_copy(deep=True)
        doc.regions.sort(key=lambda r: r.id)
        doc.storage_backends.sort(key=lambda b: b.name)
        doc.profiles.sort(key=lambda p: p.name)
        doc.sites.sort(key=lambda s: s.id)
        for s in doc.sites:
            s.aes.sort(key=lambda a: a.ae_title)
        doc.trials.sort(key=lambda t: t.id)
        for t in doc.trials:
            t.sites.sort(key=lambda ts: ts.site)
            if t.qc is not None and not t.qc.chosen():
                t.qc = None  # `qc: {}` and no block at all mean the same
        doc.roles.sort(key=lambda r: r.name)
        return doc
