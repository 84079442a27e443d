"""Structured JSON logs that carry no PHI.

One JSON object per line (``log_format: json``): time (UTC), level, logger,
message, process, and for errors the exception type and the code locations
of the traceback. Log messages are written by developers and can end up
quoting data (a patient name in a parse error, a QIDO URL with
``PatientName=...``), so every message and exception text goes through
:func:`scrub` before it is written:

* query strings keep their parameter names, never their values;
* DICOM person names (``FAMILY^GIVEN``) are replaced;
* dates of the form YYYYMMDD (birth dates, study dates) are replaced;
* extra fields attached to a record are not written at all unless they are
  in :data:`SAFE_FIELDS` (counts, durations, UIDs are not PHI here: the
  archive's UIDs are already de-identified or quarantined, and operations
  needs them to follow an instance).
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from datetime import UTC, datetime
from typing import Any

import orjson

REDACTED = "<redacted>"
_QUERY_VALUE = re.compile(r"([?&][^=&\s\"']+)=([^&\s\"']*)")
# FAMILY^GIVEN^MIDDLE... as DICOM writes person names (any script, any case).
_PERSON_NAME = re.compile(r"[^\s\"'=,;:()\[\]{}<>/\\]*\^[^\s\"',;:()\[\]{}<>/\\]*")
_DATE = re.compile(r"(?<![\d.])(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?![\d.])")
SAFE_FIELDS = frozenset(
    {"status", "seconds", "count", "instances", "series", "job", "worker", "trial", "site",
     "route", "method", "ae_title", "peer"}
)  # fmt: skip
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def scrub(text: str) -> str:
    """Remove what could identify a patient from free text."""
    text = _QUERY_VALUE.sub(lambda m: f"{m.group(1)}={REDACTED}" if m.group(2) else m.group(0),
                            text)  # fmt: skip
    text = _PERSON_NAME.sub(REDACTED, text)
    return _DATE.sub(REDACTED, text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(_message(record)),
            "process": record.process,
            "thread": record.threadName,
        }
        for key, value in record.__dict__.items():
            if key in SAFE_FIELDS and key not in _STANDARD:
                entry[key] = scrub(value) if isinstance(value, str) else value
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, tb = record.exc_info
            entry["error"] = {
                "type": exc_type.__name__,
                "message": scrub(str(exc)),
                # where it happened, not the values it happened with
                "at": [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(tb)],
            }
        return orjson.dumps(entry, default=str).decode()


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad %-format must not lose the line
        return str(record.msg)


def dict_config(fmt: str, level: str) -> dict[str, Any]:
    """A logging.config dictConfig for ``text`` or ``json``; uvicorn takes the same dict."""
    formatter: dict[str, Any] = (
        {"()": "trialpacs.ops.logs.JsonFormatter"}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {
            "main": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["main"], "level": level},
        "loggers": {
            **{
                name: {"handlers": [], "level": level, "propagate": True}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery")
            },
            # pynetdicom's debug output dumps whole data sets; never below WARNING in JSON.
            "pynetdicom": {
                "handlers": [],
                "level": "WARNING" if fmt == "json" and level in ("DEBUG", "INFO") else level,
                "propagate": True,
            },
        },
    }


def configure(fmt: str, level: str) -> dict[str, Any]:
    """Install the configuration in this process; returns it (for uvicorn's log_config)."""
    import logging.config

    config = dict_config(fmt, level)
    logging.config.dictConfig(config)
    logging.captureWarnings(True)  # Python warnings become log lines in the same format
    return config


def early_configure() -> None:
    """JSON logging from the first import on, when the environment asks for it.

    The command's settings (and so a config file's ``log_format``) are read
    later; ``TRIALPACS_LOG_FORMAT=json`` in the environment covers the start-up.
    """
    if os.environ.get("TRIALPACS_LOG_FORMAT", "").lower() == "json":
        configure("json", "warning")
