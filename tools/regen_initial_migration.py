"""Regenerate ``0001_initial_schema`` from the models, until the first release freezes it.

Nothing has shipped yet, so the schema is one initial migration rendered from ``broker.models`` plus the
hand-written append-only triggers; after the first release every change becomes a new revision instead
(``alembic revision --autogenerate``) and this script is deleted.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from alembic.autogenerate import produce_migrations, render_python_code
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from broker.models import metadata

TARGET = Path(__file__).resolve().parent.parent / "broker/migrations/versions/0001_initial_schema.py"

HEADER = '''"""Initial schema (rendered from broker.models by tools/regen_initial_migration.py).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Consent records are evidence (Art 7(1)): the database itself refuses to change or delete one.
_APPEND_ONLY_SQLITE = [
    """CREATE TRIGGER consent_record_no_update BEFORE UPDATE ON consent_record
       BEGIN SELECT RAISE(ABORT, 'consent records are append-only'); END""",
    """CREATE TRIGGER consent_record_no_delete BEFORE DELETE ON consent_record
       BEGIN SELECT RAISE(ABORT, 'consent records are append-only'); END""",
]
_APPEND_ONLY_POSTGRES = [
    """CREATE FUNCTION consent_record_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'consent records are append-only'; END $$""",
    """CREATE TRIGGER consent_record_append_only BEFORE UPDATE OR DELETE ON consent_record
       FOR EACH ROW EXECUTE FUNCTION consent_record_append_only()""",
]


def _append_only() -> None:
    dialect = op.get_bind().dialect.name
    for statement in _APPEND_ONLY_POSTGRES if dialect == "postgresql" else _APPEND_ONLY_SQLITE:
        op.execute(statement)

'''


def main() -> None:
    engine = create_engine("sqlite://")
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"render_as_batch": True})
        script = produce_migrations(context, metadata)
        up = render_python_code(script.upgrade_ops, migration_context=context, render_as_batch=True)
        down = render_python_code(script.downgrade_ops, migration_context=context, render_as_batch=True)
    body = (
        HEADER
        + "\ndef upgrade() -> None:\n"
        + textwrap.indent(textwrap.dedent("    " + up).strip(), "    ")
        + "\n    _append_only()\n\n\ndef downgrade() -> None:\n"
        + '    if op.get_bind().dialect.name == "postgresql":\n'
        + '        op.execute("DROP TRIGGER consent_record_append_only ON consent_record")\n'
        + '        op.execute("DROP FUNCTION consent_record_append_only()")\n'
        + textwrap.indent(textwrap.dedent("    " + down).strip(), "    ")
        + "\n"
    )
    body = "\n".join(line for line in body.splitlines() if "### " not in line) + "\n"
    TARGET.write_text(body)
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
