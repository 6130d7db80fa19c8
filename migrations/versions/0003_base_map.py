"""base map layers (roads, buildings, water, green space)

Revision ID: 0003_base_map
Revises: 0002_area_history
Create Date: 2026-12-02 13:10:00
"""
from alembic import op
import sqlalchemy as sa
from geoalchemy2 import Geometry

revision = '0003_base_map'
down_revision = '0002_area_history'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_geospatial_table('base_feature',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('layer', sa.String(length=16), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=True),
    sa.Column('name', sa.String(length=100), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=True),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('geom', Geometry(srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_base_feature'))
    )
    with op.batch_alter_table('base_feature', schema=None) as batch_op:
        batch_op.create_geospatial_index('idx_base_feature_geom', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
        batch_op.create_index(batch_op.f('ix_base_feature_layer'), ['layer'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('base_feature', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_base_feature_layer'))
        batch_op.drop_geospatial_index('idx_base_feature_geom', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('base_feature')
