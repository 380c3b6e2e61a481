"""Conversations keep the id a client chose for them: the AI SDK's chat id (issue 15).

Unique per owner (NULLs, the conversations no client named, never collide).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("chat_id", sa.String(200)))
        batch.create_index("ux_conversations_owner_chat_id", ["owner", "chat_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_index("ux_conversations_owner_chat_id")
        batch.drop_column("chat_id")
