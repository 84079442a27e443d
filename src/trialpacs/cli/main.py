"""Entry point of the ``trialpacs`` command.

Each command group lives in its own module and is registered here, the way
pynetdicom registers handlers: nothing is subclassed, modules just add
themselves to the app.
"""

from __future__ import annotations

from trialpacs.ops import logs

# Before the command modules are imported: their dependencies may warn at import
# time, and with JSON logs even that must be a JSON line.
logs.early_configure()

import typer  # noqa: E402

from trialpacs.cli import access, archive, audit, deid, dimse, trials  # noqa: E402
from trialpacs.cli import exports as export_cli  # noqa: E402
from trialpacs.cli import ops as ops_cli  # noqa: E402
from trialpacs.cli import qc as qc_cli  # noqa: E402

app = typer.Typer(
    name="trialpacs",
    help="Imaging gateway for clinical trials: archive, de-identification, access and audit.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)

archive.register(app)
access.register(app)
audit.register(app)
deid.register(app)
dimse.register(app)
trials.register(app)
export_cli.register(app)
ops_cli.register(app)
qc_cli.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
