"""Run Alembic programmatically (``gridcity db upgrade`` and the test fixtures)."""

from __future__ import annotations

import importlib.util

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the shipped migrations."""
    cfg = Config()
    spec = importlib.util.find_spec("migrations")
    assert spec is not None and spec.submodule_search_locations, "the migrations package is missing"
    cfg.set_main_option("script_location", list(spec.submodule_search_locations)[0])
    if url:
        cfg.attributes["url"] = url
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database of ``engine`` to ``revision``."""
    cfg = alembic_config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()
