"""Answers keep their reasoning and tool calls; tool messages their call id (issue 13).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("reasoning", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("reasoning_signature", sa.Text))
        batch.add_column(sa.Column("tool_calls", sa.JSON))
        batch.add_column(sa.Column("tool_call_id", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        for column in ("tool_call_id", "tool_calls", "reasoning_signature", "reasoning"):
            batch.drop_column(column)
