"""case tiles' revision: every write to ``case`` or ``department`` bumps ``layer_revision`` row ``cases``

Revision ID: 0008_case_revision
Revises: 0007_layer_revision

The case and hot-spot tiles took as their data version the newest case event id and the departments'
revision: two sub-selects, one of them an aggregate, planned with every cold tile on PostgreSQL (a sixth of a
small case tile), and blind to a ``case`` row changed without an event (plain SQL, a repair). Their data is
the ``case`` table and the departments' names, so writes to those two tables now bump one row, ``cases``, of
``layer_revision`` through migration 0007's triggers: the version is one primary-key read. The department
triggers of 0007 bumped a ``departments`` row that only the case tiles read; they now bump ``cases``. Every
tile layer gets its row at revision 0 here (the triggers only made one at a layer's first write), so the tile
statement can read it as a plain row.

PostgreSQL: statement-level triggers (one bump per statement, COPY included). The bump row-locks ``cases``
until the writer commits, so revisions commit in order; every writer of cases (the case service, the legacy
import) already holds the event-order lock of migration 0006 from its start, so they queue there first and
the row lock adds no wait and no lock cycle. SQLite: row-level triggers (its one writer serialises them).
"""
from alembic import op

revision = '0008_case_revision'
down_revision = '0007_layer_revision'
branch_labels = None
depends_on = None

BUMP = ("INSERT INTO layer_revision (layer, rev) VALUES ('{name}', 1) "
        "ON CONFLICT (layer) DO UPDATE SET rev = layer_revision.rev + 1")
LAYERS = ('admin', 'grids', 'components', 'base', 'cases')
TRIGGERS = {'case': 'case_revision', 'department': 'department_revision'}  # the latter is 0007's, re-aimed


def _create(table: str, trigger: str, name: str, postgres: bool) -> None:
    if postgres:  # layer_revision_bump() is migration 0007's
        op.execute(f'CREATE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE ON "{table}" '
                   f"FOR EACH STATEMENT EXECUTE FUNCTION layer_revision_bump('{name}')")
        return
    for what in ('insert', 'update', 'delete'):
        op.execute(f'CREATE TRIGGER {trigger}_{what} AFTER {what.upper()} ON "{table}" '
                   f'BEGIN {BUMP.format(name=name)}; END')


def _drop(table: str, trigger: str, postgres: bool) -> None:
    if postgres:
        op.execute(f'DROP TRIGGER {trigger} ON "{table}"')
        return
    for what in ('insert', 'update', 'delete'):
        op.execute(f"DROP TRIGGER {trigger}_{what}")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    _drop('department', 'department_revision', postgres)
    for table, trigger in TRIGGERS.items():
        _create(table, trigger, 'cases', postgres)
    op.execute("DELETE FROM layer_revision WHERE layer = 'departments'")
    # every tile layer has its row from the start, so a tile reads its version as a plain row (gis_data.tiles)
    op.execute("INSERT INTO layer_revision (layer, rev) VALUES " + ", ".join(f"('{name}', 0)" for name in LAYERS)
               + " ON CONFLICT (layer) DO NOTHING")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    for table, trigger in TRIGGERS.items():
        _drop(table, trigger, postgres)
    _create('department', 'department_revision', 'departments', postgres)
    op.execute("DELETE FROM layer_revision WHERE layer = 'cases'")
