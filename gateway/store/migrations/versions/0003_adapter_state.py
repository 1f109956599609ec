"""adapter_state: what a protocol edge remembers about a peer (OpenADR VEN registrations and reports)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 14:40:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('adapter_state',
    sa.Column('protocol', sa.String(length=40), nullable=False),
    sa.Column('peer', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False, comment="the adapter's record as JSON"),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('protocol', 'peer', 'name', name=op.f('pk_adapter_state'))
    )


def downgrade() -> None:
    op.drop_table('adapter_state')
