"""Regenerate ``ps3.15-e1-1.json`` from the reference extraction of Table E.1-1.

Run from the repository root::

    .venv/bin/python src/trialpacs/deid/data/build_table.py \
        ../shared/reference/ps3.15-table-e.1-1.json

The package's data file is ours (stable keys, option names we use in code, a
header crediting the source) so that a new edition of the standard is a
regeneration plus a diff, never a hand edit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# innolitics key -> our option name (see trialpacs.deid.table.Option)
OPTION_KEYS = {
    "rtnSafePrivOpt": "retain-safe-private",
    "rtnUIDsOpt": "retain-uids",
    "rtnDevIdOpt": "retain-device-identity",
    "rtnInstIdOpt": "retain-institution-identity",
    "rtnPatCharsOpt": "retain-patient-characteristics",
    "rtnLongFullDatesOpt": "retain-long-full-dates",
    "rtnLongModifDatesOpt": "retain-long-modified-dates",
    "cleanDescOpt": "clean-descriptors",
    "cleanStructContOpt": "clean-structured-content",
    "cleanGraphOpt": "clean-graphics",
}

HEADER = {
    "title": "DICOM PS3.15 Table E.1-1 Application Level Confidentiality Profile Attributes",
    "edition": "2024b",
    "source": (
        "standard/confidentiality_profile_attributes.json of innolitics/dicom-standard "
        "(MIT licence, Copyright (c) 2017 Innolitics, LLC), extracted from the DICOM "
        "standard published by NEMA (PS3.15 Annex E)"
    ),
    "generated_by": "src/trialpacs/deid/data/build_table.py",
    "columns": {
        "tag": "8 hex digits; 'x' marks a repeating-group digit (e.g. 60xx3000)",
        "name": "attribute name",
        "std": "true if the attribute is in a standard composite IOD",
        "basic": "Basic Profile action: D Z X K C U or a combined code (X/Z, X/D, ...)",
        "options": "option name -> action that replaces the Basic action",
    },
}


def convert(rows: list[dict[str, str]]) -> dict[str, object]:
    out = []
    for row in rows:
        tag = row["id"].lower()
        if row["tag"].startswith("(GGGG"):
            tag = "private"
        options = {ours: row[theirs] for theirs, ours in OPTION_KEYS.items() if row.get(theirs)}
        out.append(
            {
                "tag": tag,
                "name": row["name"],
                "std": row["stdCompIOD"] == "Y",
                "basic": row["basicProfile"],
                "options": options,
            }
        )
    out.sort(key=lambda r: str(r["tag"]))
    return {"about": HEADER, "rows": out}


def main(argv: list[str]) -> int:
    src = Path(argv[1]) if len(argv) > 1 else Path("../shared/reference/ps3.15-table-e.1-1.json")
    dest = Path(__file__).with_name("ps3.15-e1-1.json")
    data = convert(json.loads(src.read_text(encoding="utf-8")))
    dest.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(data['rows'])} rows to {dest}")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
