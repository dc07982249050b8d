"""Alembic's entry: migrations run on the connection topictag.store.schema hands over."""

from alembic import context
from sqlmodel import SQLModel

import topictag.store.models  # noqa: F401  (the tables the metadata must hold)


def render_item(kind, obj, autogen_context):
    """Migrations name plain SQLAlchemy types, so they never import topictag's models."""
    from sqlmodel.sql.sqltypes import AutoString

    from topictag.store.models import UTCDateTime

    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if kind == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=True,  # SQLite alters a table by copying it; batch mode does that
    compare_type=True,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
