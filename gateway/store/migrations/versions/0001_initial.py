"""initial schema: message log, state tables, rejections, cursors

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 07:24:52.170875
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('cursors',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_cursors'))
    )
    op.create_table('messages',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.String(length=200), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False, comment='sha256 of the idempotency key'),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('entity_id', sa.String(length=400), nullable=False),
    sa.Column('protocol', sa.String(length=40), nullable=False),
    sa.Column('peer', sa.String(length=200), nullable=False),
    sa.Column('native_id', sa.String(length=400), nullable=False),
    sa.Column('version', sa.String(length=200), nullable=False),
    sa.Column('correlation_id', sa.String(length=200), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stored_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False, comment='the envelope as canonical JSON'),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_messages')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_messages_key_hash')),
    sa.UniqueConstraint('message_id', name=op.f('uq_messages_message_id'))
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_messages_correlation_id'), ['correlation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_entity_id'), ['entity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_kind'), ['kind'], unique=False)
        batch_op.create_index('ix_messages_protocol_peer', ['protocol', 'peer'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_received_at'), ['received_at'], unique=False)

    op.create_table('rejections',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('protocol', sa.String(length=40), nullable=False),
    sa.Column('peer', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('raw', sa.Text(), nullable=True, comment='the rejected input, truncated'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rejections'))
    )
    with op.batch_alter_table('rejections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rejections_at'), ['at'], unique=False)

    op.create_table('state_control',
    sa.Column('id', sa.String(length=400), nullable=False),
    sa.Column('message_seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False, comment='the canonical object as JSON'),
    sa.Column('program_id', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_control'))
    )
    with op.batch_alter_table('state_control', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_state_control_program_id'), ['program_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_control_status'), ['status'], unique=False)

    op.create_table('state_delivery',
    sa.Column('id', sa.String(length=400), nullable=False),
    sa.Column('message_seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False, comment='the canonical object as JSON'),
    sa.Column('party_id', sa.String(length=200), nullable=True),
    sa.Column('location_id', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_delivery'))
    )
    with op.batch_alter_table('state_delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_state_delivery_location_id'), ['location_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_delivery_party_id'), ['party_id'], unique=False)

    op.create_table('state_location',
    sa.Column('id', sa.String(length=400), nullable=False),
    sa.Column('message_seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False, comment='the canonical object as JSON'),
    sa.Column('parent_id', sa.String(length=200), nullable=True),
    sa.Column('location_kind', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_location'))
    )
    with op.batch_alter_table('state_location', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_state_location_location_kind'), ['location_kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_location_parent_id'), ['parent_id'], unique=False)

    op.create_table('state_operating_envelope',
    sa.Column('id', sa.String(length=400), nullable=False),
    sa.Column('message_seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False, comment='the canonical object as JSON'),
    sa.Column('location_id', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_operating_envelope'))
    )
    with op.batch_alter_table('state_operating_envelope', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_state_operating_envelope_location_id'), ['location_id'], unique=False)

    op.create_table('state_override',
    sa.Column('id', sa.String(length=400), nullable=False),
    sa.Column('message_seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False, comment='the canonical object as JSON'),
    sa.Column('party_id', sa.String(length=200), nullable=True),
    sa.Column('subject_id', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_override'))
    )
    with op.batch_alter_table('state_override', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_state_override_party_id'), ['party_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_override_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_override_subject_id'), ['subject_id'], unique=False)

    op.create_table('state_party',
    sa.Column('id', sa.String(length=400), nullable=False),
    sa.Column('message_seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False, comment='the canonical object as JSON'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_party'))
    )
    op.create_table('state_position',
    sa.Column('id', sa.String(length=400), nullable=False),
    sa.Column('message_seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False, comment='the canonical object as JSON'),
    sa.Column('market_id', sa.String(length=200), nullable=True),
    sa.Column('party_id', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_position'))
    )
    with op.batch_alter_table('state_position', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_state_position_market_id'), ['market_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_position_party_id'), ['party_id'], unique=False)

    op.create_table('state_resource',
    sa.Column('id', sa.String(length=400), nullable=False),
    sa.Column('message_seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False, comment='the canonical object as JSON'),
    sa.Column('owner_id', sa.String(length=200), nullable=True),
    sa.Column('location_id', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_resource'))
    )
    with op.batch_alter_table('state_resource', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_state_resource_location_id'), ['location_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_resource_owner_id'), ['owner_id'], unique=False)

    op.create_table('state_response',
    sa.Column('id', sa.String(length=400), nullable=False),
    sa.Column('message_seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False, comment='the canonical object as JSON'),
    sa.Column('subject_id', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_response'))
    )
    with op.batch_alter_table('state_response', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_state_response_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_response_subject_id'), ['subject_id'], unique=False)

    op.create_table('state_settlement_line',
    sa.Column('id', sa.String(length=400), nullable=False),
    sa.Column('message_seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False, comment='the canonical object as JSON'),
    sa.Column('market_id', sa.String(length=200), nullable=True),
    sa.Column('party_id', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_settlement_line'))
    )
    with op.batch_alter_table('state_settlement_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_state_settlement_line_market_id'), ['market_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_settlement_line_party_id'), ['party_id'], unique=False)

    op.create_table('state_tender',
    sa.Column('id', sa.String(length=400), nullable=False),
    sa.Column('message_seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False, comment='the canonical object as JSON'),
    sa.Column('market_id', sa.String(length=200), nullable=True),
    sa.Column('party_id', sa.String(length=200), nullable=True),
    sa.Column('location_id', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_tender'))
    )
    with op.batch_alter_table('state_tender', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_state_tender_location_id'), ['location_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_tender_market_id'), ['market_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_tender_party_id'), ['party_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_tender_status'), ['status'], unique=False)

    op.create_table('state_transaction',
    sa.Column('id', sa.String(length=400), nullable=False),
    sa.Column('message_seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False, comment='the canonical object as JSON'),
    sa.Column('market_id', sa.String(length=200), nullable=True),
    sa.Column('party_id', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_transaction'))
    )
    with op.batch_alter_table('state_transaction', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_state_transaction_market_id'), ['market_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_transaction_party_id'), ['party_id'], unique=False)




def downgrade() -> None:
    
    with op.batch_alter_table('state_transaction', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_transaction_party_id'))
        batch_op.drop_index(batch_op.f('ix_state_transaction_market_id'))

    op.drop_table('state_transaction')
    with op.batch_alter_table('state_tender', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_tender_status'))
        batch_op.drop_index(batch_op.f('ix_state_tender_party_id'))
        batch_op.drop_index(batch_op.f('ix_state_tender_market_id'))
        batch_op.drop_index(batch_op.f('ix_state_tender_location_id'))

    op.drop_table('state_tender')
    with op.batch_alter_table('state_settlement_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_settlement_line_party_id'))
        batch_op.drop_index(batch_op.f('ix_state_settlement_line_market_id'))

    op.drop_table('state_settlement_line')
    with op.batch_alter_table('state_response', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_response_subject_id'))
        batch_op.drop_index(batch_op.f('ix_state_response_status'))

    op.drop_table('state_response')
    with op.batch_alter_table('state_resource', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_resource_owner_id'))
        batch_op.drop_index(batch_op.f('ix_state_resource_location_id'))

    op.drop_table('state_resource')
    with op.batch_alter_table('state_position', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_position_party_id'))
        batch_op.drop_index(batch_op.f('ix_state_position_market_id'))

    op.drop_table('state_position')
    op.drop_table('state_party')
    with op.batch_alter_table('state_override', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_override_subject_id'))
        batch_op.drop_index(batch_op.f('ix_state_override_status'))
        batch_op.drop_index(batch_op.f('ix_state_override_party_id'))

    op.drop_table('state_override')
    with op.batch_alter_table('state_operating_envelope', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_operating_envelope_location_id'))

    op.drop_table('state_operating_envelope')
    with op.batch_alter_table('state_location', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_location_parent_id'))
        batch_op.drop_index(batch_op.f('ix_state_location_location_kind'))

    op.drop_table('state_location')
    with op.batch_alter_table('state_delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_delivery_party_id'))
        batch_op.drop_index(batch_op.f('ix_state_delivery_location_id'))

    op.drop_table('state_delivery')
    with op.batch_alter_table('state_control', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_control_status'))
        batch_op.drop_index(batch_op.f('ix_state_control_program_id'))

    op.drop_table('state_control')
    with op.batch_alter_table('rejections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rejections_at'))

    op.drop_table('rejections')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_messages_received_at'))
        batch_op.drop_index('ix_messages_protocol_peer')
        batch_op.drop_index(batch_op.f('ix_messages_kind'))
        batch_op.drop_index(batch_op.f('ix_messages_entity_id'))
        batch_op.drop_index(batch_op.f('ix_messages_correlation_id'))

    op.drop_table('messages')
    op.drop_table('cursors')

