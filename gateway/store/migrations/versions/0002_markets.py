"""markets, subscriptions, clearings; interval and tender columns

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:24:07.081554
"""

import json

from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('state_clearing',
    sa.Column('id', sa.String(length=400), nullable=False),
    sa.Column('message_seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False, comment='the canonical object as JSON'),
    sa.Column('market_id', sa.String(length=200), nullable=True),
    sa.Column('interval_start', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_clearing'))
    )
    with op.batch_alter_table('state_clearing', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_state_clearing_interval_start'), ['interval_start'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_clearing_market_id'), ['market_id'], unique=False)

    op.create_table('state_market',
    sa.Column('id', sa.String(length=400), nullable=False),
    sa.Column('message_seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False, comment='the canonical object as JSON'),
    sa.Column('operator_id', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_market'))
    )
    with op.batch_alter_table('state_market', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_state_market_operator_id'), ['operator_id'], unique=False)

    op.create_table('state_subscription',
    sa.Column('id', sa.String(length=400), nullable=False),
    sa.Column('message_seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False, comment='the canonical object as JSON'),
    sa.Column('market_id', sa.String(length=200), nullable=True),
    sa.Column('party_id', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_subscription'))
    )
    with op.batch_alter_table('state_subscription', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_state_subscription_market_id'), ['market_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_subscription_party_id'), ['party_id'], unique=False)

    with op.batch_alter_table('state_delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('interval_start', sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f('ix_state_delivery_interval_start'), ['interval_start'], unique=False)

    with op.batch_alter_table('state_position', schema=None) as batch_op:
        batch_op.add_column(sa.Column('interval_start', sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f('ix_state_position_interval_start'), ['interval_start'], unique=False)

    with op.batch_alter_table('state_settlement_line', schema=None) as batch_op:
        batch_op.add_column(sa.Column('interval_start', sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f('ix_state_settlement_line_interval_start'), ['interval_start'], unique=False)

    with op.batch_alter_table('state_transaction', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tender_id', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('clearing_id', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('interval_start', sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f('ix_state_transaction_clearing_id'), ['clearing_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_transaction_interval_start'), ['interval_start'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_transaction_tender_id'), ['tender_id'], unique=False)

    _backfill()


def _backfill() -> None:
    """Fill the new filter columns of rows stored before this revision from their JSON bodies."""
    from datetime import datetime, timezone

    bind = op.get_bind()
    new_columns = {
        'state_transaction': ('tender_id', 'clearing_id', 'interval_start'),
        'state_position': ('interval_start',),
        'state_delivery': ('interval_start',),
        'state_settlement_line': ('interval_start',),
    }
    for table_name, columns in new_columns.items():
        table = sa.table(table_name, sa.column('id'), sa.column('body'), *(sa.column(c) for c in columns))
        for row_id, body in bind.execute(sa.select(table.c.id, table.c.body)).all():
            data = json.loads(body)
            values = {c: data.get(c) for c in columns if c != 'interval_start'}
            if 'interval_start' in columns:
                start = datetime.fromisoformat(data['interval']['start'].replace('Z', '+00:00'))
                values['interval_start'] = start.astimezone(timezone.utc).isoformat()
            bind.execute(sa.update(table).where(table.c.id == row_id).values(**values))



def downgrade() -> None:
    with op.batch_alter_table('state_transaction', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_transaction_tender_id'))
        batch_op.drop_index(batch_op.f('ix_state_transaction_interval_start'))
        batch_op.drop_index(batch_op.f('ix_state_transaction_clearing_id'))
        batch_op.drop_column('interval_start')
        batch_op.drop_column('clearing_id')
        batch_op.drop_column('tender_id')

    with op.batch_alter_table('state_settlement_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_settlement_line_interval_start'))
        batch_op.drop_column('interval_start')

    with op.batch_alter_table('state_position', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_position_interval_start'))
        batch_op.drop_column('interval_start')

    with op.batch_alter_table('state_delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_delivery_interval_start'))
        batch_op.drop_column('interval_start')

    with op.batch_alter_table('state_subscription', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_subscription_party_id'))
        batch_op.drop_index(batch_op.f('ix_state_subscription_market_id'))

    op.drop_table('state_subscription')
    with op.batch_alter_table('state_market', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_market_operator_id'))

    op.drop_table('state_market')
    with op.batch_alter_table('state_clearing', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_clearing_market_id'))
        batch_op.drop_index(batch_op.f('ix_state_clearing_interval_start'))

    op.drop_table('state_clearing')
