"""`gridcity addresses import` as a real process: a CSV loads; a bad file loads nothing and says which row."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli import cli_env, run  # noqa: F401  (fixture)


def test_addresses_import_cli(cli_env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    assert run(["db", "upgrade"], cli_env).returncode == 0
    good = tmp_path / "addr.csv"
    good.write_text(
        "code,name,kind,road,lon,lat\nX1,经二路12号,door_plate,经二路,107.14,34.36\n"
        "X2,经二路,road,经二路,107.141,34.36\n",
        encoding="utf-8",
    )
    r = run(["addresses", "import", str(good)], cli_env)
    assert r.returncode == 0, r.stderr
    assert "2 created" in r.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "code,name,kind,lon,lat\nY1,,door_plate,107.14,34.36\nY2,某路1号,castle,107.14,34.36\n", encoding="utf-8"
    )
    r = run(["addresses", "import", str(bad)], cli_env)
    assert r.returncode != 0 and "gis.load_rejected" in r.stderr
    assert "row 1" in r.stderr and "row 2" in r.stderr
    r = run(["addresses", "import", str(good)], cli_env)
    assert "2 replaced" in r.stdout
