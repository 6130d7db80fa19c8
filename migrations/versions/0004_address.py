"""standard addresses (标准地址/门牌) and their bigram index

Revision ID: 0004_address
Revises: 0003_base_map
"""
from alembic import op
import sqlalchemy as sa

revision = '0004_address'
down_revision = '0003_base_map'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('address',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('road', sa.String(length=100), nullable=True),
    sa.Column('number', sa.String(length=20), nullable=True),
    sa.Column('full_name', sa.String(length=300), nullable=False),
    sa.Column('lon', sa.Double(), nullable=False),
    sa.Column('lat', sa.Double(), nullable=False),
    sa.Column('grid_code', sa.String(length=15), nullable=True),
    sa.Column('community_code', sa.String(length=12), nullable=True),
    sa.Column('search_text', sa.String(length=400), nullable=False),
    sa.Column('name_key', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_address')),
    sa.UniqueConstraint('code', name=op.f('uq_address_code'))
    )
    with op.batch_alter_table('address', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_address_grid_code'), ['grid_code'], unique=False)
    # name prefixes (经二路12 → 经二路12号, 经二路120号 ...) by a B-tree range on the normalised name
    from gridcity import spatial
    op.execute(spatial.prefix_index_sql(op.get_bind().dialect.name, index='ix_address_name_key', table='address',
                                        column='name_key'))
    op.create_table('address_gram',
    sa.Column('gram', sa.String(length=8), nullable=False),
    sa.Column('address_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['address_id'], ['address.id'], name=op.f('fk_address_gram_address_id_address'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('gram', 'address_id', name=op.f('pk_address_gram'))
    )


def downgrade() -> None:
    op.drop_table('address_gram')
    op.drop_index('ix_address_name_key', table_name='address')
    with op.batch_alter_table('address', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_address_grid_code'))
    op.drop_table('address')
