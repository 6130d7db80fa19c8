"""supervision-area history and legacy case keys (issue 14)

Revision ID: 0002_area_history
Revises: 0001
Create Date: 2026-12-02 13:10:00

* ``supervision_history``: closed past assignments of unit grids to inspectors, so that the inspector
  evaluation attributes each case to the inspector responsible for its grid at the time;
* ``case_legacy_key``: the key of an imported case in its old system (idempotent ``gridcity cases import``).
"""
from alembic import op
import sqlalchemy as sa
import gridcity.types

revision = '0002_area_history'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('supervision_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('grid_code', sa.String(length=15), nullable=False),
    sa.Column('supervision_area_id', sa.Integer(), nullable=True),
    sa.Column('inspector_id', sa.Integer(), nullable=True),
    sa.Column('valid_from', gridcity.types.UTCDateTime(), nullable=True),
    sa.Column('valid_to', gridcity.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['inspector_id'], ['app_user.id'], name=op.f('fk_supervision_history_inspector_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_supervision_history'))
    )
    with op.batch_alter_table('supervision_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_supervision_history_grid_code'), ['grid_code'], unique=False)

    op.create_table('case_legacy_key',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], name=op.f('fk_case_legacy_key_case_id_case')),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_case_legacy_key')),
    sa.UniqueConstraint('case_id', name=op.f('uq_case_legacy_key_case_id'))
    )


def downgrade() -> None:
    op.drop_table('case_legacy_key')
    with op.batch_alter_table('supervision_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_supervision_history_grid_code'))
    op.drop_table('supervision_history')
