"""``trialpacs deid``: de-identification commands (being built, see issue 4)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``deid`` command group to the main app."""
    deid_app = typer.Typer(help="De-identify DICOM files (PS3.15 Annex E profiles).")
    app.add_typer(deid_app, name="deid")
