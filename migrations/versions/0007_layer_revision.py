"""layer_revision: a per-layer revision bumped by triggers on every write to a tile layer's table

Revision ID: 0007_layer_revision
Revises: 0006_case_event_order

The rarely changing tile layers (admin areas, grids, components, the base map) took ``count:max(id)`` of their
table as their data version, which misses a feature changed in place (a component moved, an area redrawn by
an import's update); the case tiles show department names, which changed nothing of theirs. Every insert,
update or delete of ``area``, ``grid``, ``component``, ``base_feature`` and ``department`` now bumps the
table's row of ``layer_revision`` (``admin``, ``grids``, ``components``, ``base``, ``departments``) in the
same transaction, through triggers, so no write path can forget it.

PostgreSQL: one statement-level trigger per table (one bump per statement, COPY included); the bump's row
lock is held until the writer commits, so writers of one layer queue on it and revisions commit in order.
SQLite has row-level triggers only: one bump per row written (a few microseconds; its one writer already
serialises them).
"""
import sqlalchemy as sa
from alembic import op

revision = '0007_layer_revision'
down_revision = '0006_case_event_order'
branch_labels = None
depends_on = None

TABLES = {'area': 'admin', 'grid': 'grids', 'component': 'components', 'base_feature': 'base',
          'department': 'departments'}
BUMP = ("INSERT INTO layer_revision (layer, rev) VALUES ({name}, 1) "
        "ON CONFLICT (layer) DO UPDATE SET rev = layer_revision.rev + 1")


def upgrade() -> None:
    op.create_table(
        'layer_revision',
        sa.Column('layer', sa.String(length=32), nullable=False),
        sa.Column('rev', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('layer', name=op.f('pk_layer_revision')),
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f"""
            CREATE FUNCTION layer_revision_bump() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {BUMP.format(name='TG_ARGV[0]')};
                RETURN NULL;
            END
            $$""")
        for table, name in TABLES.items():
            op.execute(f"CREATE TRIGGER {table}_revision AFTER INSERT OR UPDATE OR DELETE ON {table} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION layer_revision_bump('{name}')")
        return
    for table, name in TABLES.items():
        for what in ('insert', 'update', 'delete'):
            op.execute(f"CREATE TRIGGER {table}_revision_{what} AFTER {what.upper()} ON {table} "
                       f"BEGIN {BUMP.format(name=repr(name))}; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in TABLES:
            op.execute(f"DROP TRIGGER {table}_revision ON {table}")
        op.execute("DROP FUNCTION layer_revision_bump()")
    else:
        for table in TABLES:
            for what in ('insert', 'update', 'delete'):
                op.execute(f"DROP TRIGGER {table}_revision_{what}")
    op.drop_table('layer_revision')
