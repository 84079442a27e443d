"""One settings object for every entry point.

Values come, in increasing priority, from defaults, a TOML/YAML config file
(``TRIALPACS_CONFIG``), ``TRIALPACS_*`` environment variables and finally
command-line flags (applied by the CLI through :meth:`Settings.model_copy`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Default of ``max_frames``; also the pixel cleaner's own bound when built
# without settings (trialpacs.deid.pixels).
DEFAULT_MAX_FRAMES = 5000


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIALPACS_", extra="ignore")

    data_dir: Path = Field(
        default=Path("./data"),
        description="Where the embedded index (SQLite) and local blob store live.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the index. Default: SQLite in DATA_DIR/index.sqlite3. "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )
    storage: Literal["local", "s3"] = Field(default="local", description="Blob store kind.")
    storage_dir: Path | None = Field(
        default=None, description="Local blob directory. Default: DATA_DIR/blobs."
    )
    s3_bucket: str = Field(default="trialpacs", description="S3 bucket for blobs.")
    s3_prefix: str = Field(default="", description="Key prefix inside the bucket.")
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, Ceph, moto). None: AWS."
    )
    s3_region: str | None = Field(default=None, description="S3 region name.")

    http_host: str = Field(default="127.0.0.1", description="HTTP bind address.")
    http_port: int = Field(default=8080, description="HTTP port.")
    public_base_url: str | None = Field(
        default=None,
        description="Base URL clients reach us at (for BulkDataURI/RetrieveURL). "
        "Default: taken from each request.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS ('*' for any)."
    )
    max_request_bytes: int = Field(
        default=2 * 1024**3, description="Largest accepted HTTP request body (STOW-RS)."
    )
    max_instance_bytes: int = Field(
        default=1024**3, description="Largest accepted single DICOM instance."
    )
    max_frames: int = Field(
        default=DEFAULT_MAX_FRAMES,
        ge=1,
        description="Most frames (NumberOfFrames) of an accepted instance; XA/US cine runs "
        "have hundreds to a few thousand, whole-slide imaging sites raise it (video "
        "transfer syntaxes are exempt).",
    )
    qido_max_results: int = Field(
        default=10_000, description="Most results one QIDO-RS or C-FIND answer returns."
    )
    overwrite: bool = Field(
        default=False,
        description="Replace an instance when the same SOP Instance UID arrives with other "
        "bytes (default: refuse with a conflict).",
    )
    zip_max_ratio: float = Field(
        default=200.0, description="Refuse zip members compressed more than this ratio."
    )
    zip_max_total_bytes: int = Field(
        default=20 * 1024**3, description="Refuse zip archives expanding beyond this size."
    )
    dicom_port: int | None = Field(
        default=11112, description="DICOM (DIMSE) port; None or 0 disables the DICOM listener."
    )
    dicom_host: str = Field(default="127.0.0.1", description="DICOM bind address.")
    ae_title: str = Field(default="TRIALPACS", description="Our DICOM AE title.")
    dicom_max_pdu: int = Field(
        default=16384,
        description="Max PDU size we accept (0: unlimited). 16384 measured as fast as 128 KiB "
        "and faster than unlimited for 0.5 MB CT over storescu (docs/dimse.md).",
    )
    dicom_max_associations: int = Field(default=16, description="Concurrent DICOM associations.")
    dicom_accept_unknown: bool = Field(
        default=False,
        description="Accept associations from AE titles/hosts not in the known-AE table "
        "(for demos only).",
    )
    dicom_unknown_ae_read: bool = Field(
        default=False,
        description="With dicom_accept_unknown, let unknown AEs query and retrieve the whole "
        "published archive (demos only; identified data never).",
    )
    viewer_dir: Path | None = Field(
        default=None,
        description="Installed OHIF dist (default: the one scripts/install.sh puts in the venv).",
    )
    auth_enabled: bool = Field(
        default=True, description="Require a bearer token on every route but /health."
    )
    audit_enabled: bool = Field(
        default=True,
        description="Write one audit entry per request (off only for benchmarks measuring it).",
    )
    audit_checkpoint_interval: float = Field(
        default=3600.0,
        description="Seconds between signed audit checkpoints written by `serve` (only when "
        "the trail grew); 0 turns the timer off.",
    )
    audit_syslog_host: str | None = Field(
        default=None,
        description="Syslog collector `serve` forwards the audit trail to (RFC 5424 over "
        "TCP/TLS); unset: no forwarding.",
    )
    audit_syslog_port: int = Field(default=6514, description="Syslog collector port.")
    audit_syslog_tls: bool = Field(default=True, description="TLS to the syslog collector.")
    audit_syslog_ca_file: str | None = Field(
        default=None, description="CA bundle for the syslog collector's certificate."
    )
    audit_syslog_interval: float = Field(
        default=60.0,
        description="Seconds between forwarding runs to the syslog collector (only with "
        "`audit_syslog_host`); 0 turns the timer off.",
    )
    # --- identity and access (trialpacs.access) ---
    auth_secret: str | None = Field(
        default=None,
        description="HMAC key signing access tokens (32+ characters). Default: a random key "
        "kept in the index, shared by every process of the deployment.",
    )
    access_token_minutes: int = Field(default=15, description="Access token lifetime.")
    session_idle_minutes: int = Field(
        default=30, description="A session (browser or refresh token) unused this long ends."
    )
    session_absolute_hours: int = Field(
        default=12, description="A session ends this long after sign-in, used or not."
    )
    cookie_secure: bool = Field(
        default=True, description="Mark session cookies Secure (HTTPS only); off only for tests."
    )
    local_accounts: bool = Field(default=True, description="Allow local (password) sign-in.")
    password_min_length: int = Field(default=12, description="Shortest local password.")
    lockout_threshold: int = Field(
        default=5, description="Failed sign-ins in a row that lock a local account."
    )
    lockout_minutes: int = Field(default=15, description="How long a locked account stays locked.")
    ldap_url: str | None = Field(
        default=None, description="LDAP/AD server, e.g. ldaps://dc1.example.org (None: off)."
    )
    ldap_bind_dn: str | None = Field(default=None, description="Service account DN for search.")
    ldap_bind_password: str | None = Field(default=None, description="Its password.")
    ldap_user_base: str = Field(default="", description="Where users are searched.")
    ldap_user_filter: str = Field(
        default="(uid={username})",
        description="Finds the user; AD: (sAMAccountName={username}). {username} is escaped.",
    )
    ldap_disabled_filter: str | None = Field(
        default=None,
        description="Matches disabled accounts; AD: "
        "(userAccountControl:1.2.840.113556.1.4.803:=2).",
    )
    ldap_start_tls: bool = Field(default=False, description="Upgrade ldap:// with StartTLS.")
    ldap_ca_file: str | None = Field(default=None, description="CA bundle for LDAPS/StartTLS.")
    ldap_group_roles: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Group DN -> grants (role@TRIAL/SITE); nested groups count.",
    )
    oidc_issuer: str | None = Field(default=None, description="OIDC issuer URL (None: off).")
    oidc_client_id: str = Field(default="", description="OIDC client ID.")
    oidc_client_secret: str = Field(default="", description="OIDC client secret.")
    oidc_redirect_url: str | None = Field(
        default=None, description="Our callback, e.g. https://pacs.example/auth/oidc/callback."
    )
    oidc_scopes: str = Field(default="openid profile email", description="Requested scopes.")
    oidc_username_claim: str = Field(default="preferred_username", description="Username claim.")
    oidc_roles_claim: str = Field(default="groups", description="Claim holding groups/roles.")
    oidc_claim_roles: dict[str, list[str]] = Field(
        default_factory=dict, description="Claim value -> grants (role@TRIAL/SITE)."
    )
    saml_idp_metadata: str | None = Field(
        default=None, description="SAML IdP metadata file (None: off)."
    )
    saml_sp_entity_id: str | None = Field(default=None, description="Our SAML entity ID.")
    saml_acs_url: str | None = Field(
        default=None, description="Our ACS, e.g. https://pacs.example/auth/saml/acs."
    )
    saml_sp_key_file: str | None = Field(default=None, description="SP signing key (PEM).")
    saml_sp_cert_file: str | None = Field(default=None, description="SP certificate (PEM).")
    saml_username_attribute: str = Field(default="uid", description="Attribute naming the user.")
    saml_roles_attribute: str = Field(default="groups", description="Attribute holding groups.")
    saml_attribute_roles: dict[str, list[str]] = Field(
        default_factory=dict, description="Attribute value -> grants (role@TRIAL/SITE)."
    )
    workspace_quota_bytes: int = Field(
        default=1024**3, description="Largest total size of one user's private workspace."
    )
    region: str = Field(
        default="local",
        description="Region of this server's own stores (the published store and the "
        "built-in quarantine directory).",
    )
    quarantine_dir: Path | None = Field(
        default=None,
        description="Built-in identified (quarantine) store. Default: DATA_DIR/quarantine.",
    )
    pipeline_executor: Literal["embedded", "celery", "off"] = Field(
        default="embedded",
        description="Who runs pipeline jobs: worker threads in the server, Celery workers "
        "(`trialpacs worker`), or nobody.",
    )
    pipeline_workers: int = Field(default=2, description="Embedded pipeline worker threads.")
    series_settle_seconds: float = Field(
        default=10.0, description="A series is complete when no instance arrived for this long."
    )
    job_max_attempts: int = Field(default=5, description="Tries before a job needs attention.")
    job_backoff_seconds: float = Field(
        default=5.0, description="First retry delay; doubles with each attempt."
    )
    job_lease_seconds: float = Field(
        default=60.0,
        description="A running job whose worker stopped renewing its lease for this long "
        "is taken over by another worker (crash recovery).",
    )
    celery_broker_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Celery broker (Redis or RabbitMQ)."
    )
    celery_queue: str = Field(
        default="trialpacs-pipeline",
        description="Celery queue of this deployment (one per index database).",
    )
    qc_hook: str | None = Field(
        default=None,
        description="QC hook run on each de-identified series, as module:attribute "
        "(default: the anatomy QC, docs/qc.md).",
    )
    qc_thresholds: dict[str, Any] = Field(
        default_factory=dict,
        description="Installation-wide default of the anatomy QC block; a trial's own "
        "`qc:` block in its configuration overrides it key by key, e.g. "
        '{"hold": 0.5, "method": "lof"} (docs/qc.md).',
    )

    @field_validator("qc_thresholds")
    @classmethod
    def _qc_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        from trialpacs.config.schema import QcCfg

        nested = sorted(k for k, v in value.items() if isinstance(v, dict))
        if nested:
            raise ValueError(
                f"qc_thresholds is the installation-wide default, not a table per trial "
                f"(found {', '.join(nested)}): put per-trial thresholds in the trial's "
                "`qc:` block of its configuration"
            )
        QcCfg.model_validate(value)
        return value

    deid_secret: str | None = Field(
        default=None,
        description="Secret for pseudonyms, UIDs and date shifts. Default: read from (or "
        "created in) DATA_DIR/deid.secret. Every worker must share it.",
    )

    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log lines as text or as one JSON object per line without PHI "
        "(docs/operations.md).",
    )
    metrics_cache_seconds: float = Field(
        default=15.0,
        description="How long /metrics reuses its reading of the index (aggregates over "
        "every instance).",
    )

    # --- TLS and hostile clients (docs/hardening.md) ---
    tls_cert_file: Path | None = Field(
        default=None,
        description="PEM certificate (chain) for HTTPS; with tls_key_file, `serve` speaks "
        "HTTPS only.",
    )
    tls_key_file: Path | None = Field(default=None, description="PEM private key for HTTPS.")
    tls_client_ca_file: Path | None = Field(
        default=None,
        description="CA bundle whose client certificates HTTPS requires (None: no client "
        "certificate asked).",
    )
    http_header_timeout: float = Field(
        default=10.0,
        description="Seconds a client has to send a request's line and headers (slow-loris "
        "clients get 408 and are disconnected).",
    )
    http_body_idle_timeout: float = Field(
        default=60.0,
        description="Seconds a request body may stall without a byte arriving (408).",
    )
    http_keep_alive_timeout: float = Field(
        default=30.0, description="Seconds an idle keep-alive connection stays open."
    )
    http_max_connections: int = Field(
        default=512, description="Concurrent HTTP connections; beyond it clients get 503."
    )
    dicom_tls_port: int | None = Field(
        default=None,
        description="DICOM TLS (PS3.15 Annex B) port, e.g. 2762; needs dicom_tls_cert_file "
        "and dicom_tls_key_file. None: no TLS listener.",
    )
    dicom_tls_cert_file: Path | None = Field(
        default=None, description="PEM certificate of our AE for DICOM TLS (SCP and SCU)."
    )
    dicom_tls_key_file: Path | None = Field(default=None, description="Its private key (PEM).")
    dicom_tls_ca_file: Path | None = Field(
        default=None,
        description="CA bundle that peers' certificates must chain to (client certificates "
        "at our SCP, server certificates when we are the SCU).",
    )
    dicom_tls_require_client_cert: bool = Field(
        default=True,
        description="The TLS listener refuses peers without a certificate from "
        "dicom_tls_ca_file (Annex B authenticated TLS); false: any peer, encrypted.",
    )
    dicom_proxy_protocol: bool = Field(
        default=False,
        description="Every connection to the DICOM listeners (plain and TLS) starts with a "
        "PROXY protocol v1 or v2 header (HAProxy send-proxy / send-proxy-v2) naming the "
        "client, whose address the known-AE check, audit and logs then use.",
    )
    dicom_trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or CIDRs allowed to send the PROXY header (the load "
        "balancers); with dicom_proxy_protocol, connections from anyone else, or without "
        "a valid header, are closed and logged.",
    )
    dicom_acse_timeout: float = Field(
        default=30.0,
        description="Seconds a peer has to open an association after connecting, or to "
        "answer a release (ARTIM): a connection that says nothing is closed.",
    )
    dicom_dimse_timeout: float = Field(
        default=30.0, description="Seconds to wait for a DIMSE message before aborting."
    )
    dicom_network_timeout: float = Field(
        default=60.0,
        description="Seconds an association may stay silent before it is aborted.",
    )
    max_multipart_parts: int = Field(
        default=10_000, description="Most parts one multipart (STOW-RS) request may carry."
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'index.sqlite3').resolve()}"

    def resolved_storage_dir(self) -> Path:
        return (self.storage_dir or self.data_dir / "blobs").resolve()

    def resolved_quarantine_dir(self) -> Path:
        return (self.quarantine_dir or self.data_dir / "quarantine").resolve()


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from the config file, the environment and explicit overrides.

    Overrides with value ``None`` are ignored so CLI flags that were not given do
    not mask the environment.
    """
    file_values: dict[str, Any] = {}
    env_path = os.environ.get("TRIALPACS_CONFIG")
    path = config_file or (Path(env_path) if env_path else None)
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SystemExit(f"cannot read config file {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise SystemExit(f"config file {path} must hold a mapping of settings")
        file_values = {k.replace("-", "_"): v for k, v in loaded.items()}
    # Environment beats the file: only take file values for fields not set in the env.
    # Init arguments beat the environment in pydantic-settings, hence the filter.
    merged: dict[str, Any] = {}
    for name in Settings.model_fields:
        if f"TRIALPACS_{name.upper()}" not in os.environ and name in file_values:
            merged[name] = file_values[name]
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**merged)
