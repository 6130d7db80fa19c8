"""a partial covering index for the effective-dispatch lookup of the department scorecard (G-S2)

Revision ID: 0005_effective_dispatch
Revises: 0004_address

A department is judged only on a case's *effective* dispatch: its ``handle`` run started by ``dispatch`` and
not undone by an approved send-back (``evaluation.service._effective_dispatch``). The case-level families of
the department scorecard (立案, 结案) join every fact of the period to that run. On PostgreSQL the planner
fetched those runs through a bitmap scan of ``ix_stage_fact_ended`` and the heap (100,000 runs read to keep
90,000: half of each family's time); this index holds exactly those runs, keyed by case, with the columns the
join reads, so the lookup is an index-only scan of a small index (department scorecard 2.2× → 1.3–1.6× one
raw scan of the log at 100,000 cases; docs/performance.md, G-S2).

SQLite gets nothing: it cannot use a partial index for a query whose terms are bound parameters, and its plan
already reads the runs from the covering ``ix_stage_fact_case`` (G-S3 is met).
"""
import sqlalchemy as sa
from alembic import op

revision = '0005_effective_dispatch'
down_revision = '0004_address'
branch_labels = None
depends_on = None

INDEX = 'ix_stage_fact_effective'


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.create_index(INDEX, 'stage_fact', ['case_id'], unique=False,
                    postgresql_include=['started_at', 'undone_at', 'department_id'],
                    postgresql_where=sa.text("stage = 'handle' AND start_action = 'dispatch'"))


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.drop_index(INDEX, table_name='stage_fact')
