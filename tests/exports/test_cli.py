"""The command line: cohort save|list|preview, export --to, export history."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from exports.support import World
from trialpacs.access import users
from trialpacs.access.apikeys import create_key
from trialpacs.cli.main import app
from trialpacs.web.app import create_app

runner = CliRunner()


def cli(world: World, token: str, *args: str) -> tuple[int, str]:
    data = str(world.archive.settings.data_dir)
    result = runner.invoke(app, [*args, "--data-dir", data, "--token", token])
    return result.exit_code, result.output


def test_save_preview_export_history(world: World, tmp_path: Path) -> None:
    dm = create_key(world.archive.db, "dm", grants=["data_manager@T1"], scopes=["*"])
    code, out = cli(world, dm, "cohort", "save", "knees", "--trial", "T1", "--modality", "MR",
                    "--body-part", "KNEE", "--timepoint", "BL")  # fmt: skip
    assert code == 0, out
    assert "saved knees@1" in out
    code, out = cli(world, dm, "cohort", "preview", "knees", "--json")
    assert code == 0, out
    preview = json.loads(out)
    assert preview["counts"]["series"] == 3
    assert preview["counts"]["by_site"] == {"S1": 2, "S2": 1}
    code, out = cli(world, dm, "cohort", "list")
    assert code == 0 and "knees@1" in out
    target = tmp_path / "pkg"
    code, out = cli(world, dm, "export", "knees@1", "--to", str(target))
    assert code == 0, out
    assert "3 series, 7 instances" in out
    rows = list(csv.DictReader((target / "manifest.csv").open()))
    assert [r["timepoint"] for r in rows] == ["BL", "BL", "BL"]
    code, out = cli(world, dm, "export", "history", "--json")
    assert code == 0, out
    (entry,) = json.loads(out)
    assert entry["cohort"] == "knees@1" and entry["actor"] == "dm" and entry["series"] == 3


def test_refusals_name_the_problem(world: World, tmp_path: Path) -> None:
    reader = create_key(world.archive.db, "rita", grants=["reader@T1"], scopes=["*"])
    dm = create_key(world.archive.db, "dm", grants=["data_manager@T1"], scopes=["*"])
    code, out = cli(world, reader, "cohort", "save", "c", "--trial", "T1")
    assert code == 2 and "no cohort or trial 'T1'" in out
    assert cli(world, dm, "cohort", "save", "c", "--trial", "T1")[0] == 0
    code, out = cli(world, reader, "export", "c", "--to", str(tmp_path / "x"))
    assert code == 2 and "no cohort 'c'" in out
    assert not (tmp_path / "x").exists()
    code, out = cli(world, dm, "cohort", "save", "d", "--trial", "T1", "--days-min", "9",
                    "--days-max", "1")  # fmt: skip
    assert code == 2 and "after the max" in out
    code, out = cli(world, dm, "export", "c")
    assert code == 2 and "--to is required" in out
    code, out = cli(world, "tp_not-a-key", "cohort", "list")
    assert code == 2 and "not valid" in out


def test_export_to_a_download_link(world: World) -> None:
    dm = create_key(world.archive.db, "dm", grants=["data_manager@T1"], scopes=["*"])
    assert cli(world, dm, "cohort", "save", "s2", "--trial", "T1", "--site", "S2")[0] == 0
    code, out = cli(world, dm, "export", "s2", "--to", "download")
    assert code == 0, out
    link = out.split("download (valid 15 min): ", 1)[1].split()[0]
    client = TestClient(create_app(world.archive))
    r = client.get(link)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"


def test_acting_as_a_local_account(world: World) -> None:
    db = world.archive.db
    users.add_user(db, "dora", password="correct-horse-battery-9")
    users.grant(db, "dora", "data_manager@T1")
    users.add_user(db, "rob", password="correct-horse-battery-9")
    users.grant(db, "rob", "reader@T1")
    data = str(world.archive.settings.data_dir)
    ok = runner.invoke(app, ["cohort", "save", "mine", "--trial", "T1", "--data-dir", data,
                             "--user", "dora"])  # fmt: skip
    assert ok.exit_code == 0 and "saved mine@1" in ok.output
    refused = runner.invoke(app, ["cohort", "preview", "mine", "--data-dir", data,
                                  "--user", "rob"])  # fmt: skip
    assert refused.exit_code == 2 and "no cohort 'mine'" in refused.output
    nobody = runner.invoke(app, ["cohort", "list", "--data-dir", data])
    assert nobody.exit_code == 2 and "--token" in nobody.output
