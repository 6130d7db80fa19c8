"""Kernel database behaviour that only shows in a whole process."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_a_process_using_spatialite_and_pyproj_exits_cleanly(tmp_path):
    # Two copies of PROJ (pyproj's and SpatiaLite's) used to abort the interpreter at exit (code 134).
    script = textwrap.dedent(f"""
        from gridcity.database import make_engine
        engine = make_engine("sqlite:///{tmp_path / 'x.sqlite'}")
        with engine.connect() as c:
            assert c.exec_driver_sql("SELECT spatialite_version()").scalar()
        import pyproj
        x, y = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:4545", always_xy=True).transform(107.1, 34.3)
        assert 400_000 < x < 450_000
        engine.dispose()
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-500:]
    assert r.stdout.strip() == "ok"
