"""Regenerate ``0001_initial_schema`` from the models, until the first release freezes it.

Nothing has shipped yet, so the schema is one initial migration rendered from ``broker.models`` plus the
hand-written triggers (append-only ``consent_record`` and ``audit_entry``; ``consent_current``); after the first
release every change becomes a new revision instead (``alembic revision --autogenerate``) and this script is
deleted.
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

# Consent records are evidence (Art 7(1)); audit entries are the access log, whose bytes signed checkpoints
# commit to, and the tree and checkpoints built over them only ever grow. The database itself refuses to change
# or delete any of them (nothing in the broker ever does: the integrator inserts nodes and checkpoints and moves
# only its position in audit_state, and erasure leaves the log, which holds pseudonyms only, as it is). On
# PostgreSQL TRUNCATE is refused too.
_APPEND_ONLY = {
    "consent_record": "consent records are append-only",
    "audit_entry": "audit entries are append-only",
    "audit_node": "audit tree nodes are append-only",  # subtree hashes: fixed once both halves exist
    "audit_checkpoint": "audit checkpoints are append-only",
}


def _append_only() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, message in _APPEND_ONLY.items():
        if postgres:
            op.execute(f"""CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION '{message}'; END $$""")
            op.execute(f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION {table}_append_only()""")
            op.execute(f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()""")
        else:
            for event in ("update", "delete"):
                op.execute(f"""CREATE TRIGGER {table}_no_{event} BEFORE {event.upper()} ON {table}
                    BEGIN SELECT RAISE(ABORT, '{message}'); END""")


def _drop_append_only() -> None:
    if op.get_bind().dialect.name == "postgresql":  # SQLite drops triggers with their table
        for table in _APPEND_ONLY:
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
            op.execute(f"DROP FUNCTION {table}_append_only()")


# consent_current mirrors the newest record of each (purpose, citizen) pair and the citizen's birth date
# (broker.consent.models): written by the database on every insert into consent_record, whoever inserts, and on
# every change of a birth date, so it cannot drift from the ledger or the citizen table.
_CURRENT_COLUMNS = "purpose_id, pseudonym, seq, state, purpose_version, valid_until, guardian_pseudonym, consent_type"
_CURRENT_UPSERT = f"""INSERT INTO consent_current ({_CURRENT_COLUMNS}, birth_date)
       VALUES (NEW.purpose_id, NEW.pseudonym, NEW.seq, NEW.state, NEW.purpose_version, NEW.valid_until,
               NEW.guardian_pseudonym, NEW.consent_type,
               (SELECT birth_date FROM citizen WHERE citizen.pseudonym = NEW.pseudonym))
       ON CONFLICT (purpose_id, pseudonym) DO UPDATE SET
         seq = excluded.seq, state = excluded.state, purpose_version = excluded.purpose_version,
         valid_until = excluded.valid_until, guardian_pseudonym = excluded.guardian_pseudonym,
         consent_type = excluded.consent_type, birth_date = excluded.birth_date
       WHERE excluded.seq > consent_current.seq;"""
_BIRTH_DATE_COPY = "UPDATE consent_current SET birth_date = NEW.birth_date WHERE pseudonym = NEW.pseudonym;"
_CURRENT_SQLITE = [
    f"""CREATE TRIGGER consent_record_current AFTER INSERT ON consent_record
       BEGIN {_CURRENT_UPSERT} END""",
    f"""CREATE TRIGGER citizen_birth_date_current AFTER UPDATE OF birth_date ON citizen
       WHEN NEW.birth_date IS NOT OLD.birth_date
       BEGIN {_BIRTH_DATE_COPY} END""",
    # A bulk import may write consent records before their citizens: the birth date arrives with the citizen.
    f"""CREATE TRIGGER citizen_inserted_current AFTER INSERT ON citizen
       WHEN NEW.birth_date IS NOT NULL
       BEGIN {_BIRTH_DATE_COPY} END""",
]
_CURRENT_POSTGRES = [
    f"""CREATE FUNCTION consent_record_current() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN {_CURRENT_UPSERT} RETURN NULL; END $$""",
    """CREATE TRIGGER consent_record_current AFTER INSERT ON consent_record
       FOR EACH ROW EXECUTE FUNCTION consent_record_current()""",
    f"""CREATE FUNCTION citizen_birth_date_current() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN {_BIRTH_DATE_COPY} RETURN NULL; END $$""",
    """CREATE TRIGGER citizen_birth_date_current AFTER UPDATE OF birth_date ON citizen
       FOR EACH ROW WHEN (NEW.birth_date IS DISTINCT FROM OLD.birth_date)
       EXECUTE FUNCTION citizen_birth_date_current()""",
    """CREATE TRIGGER citizen_inserted_current AFTER INSERT ON citizen
       FOR EACH ROW WHEN (NEW.birth_date IS NOT NULL) EXECUTE FUNCTION citizen_birth_date_current()""",
]


def _current_consent() -> None:
    dialect = op.get_bind().dialect.name
    for statement in _CURRENT_POSTGRES if dialect == "postgresql" else _CURRENT_SQLITE:
        op.execute(statement)
    if dialect == "postgresql":
        # A cohort is one purpose's given consents of its current version: on PostgreSQL (a heap, unlike SQLite's
        # WITHOUT ROWID table, which is already ordered by purpose) an index holding every column the cohort
        # tests lets it be read by an index-only scan instead of a scan of every purpose's rows.
        op.create_index("ix_consent_current_cohort", "consent_current", ["purpose_id", "purpose_version", "state"],
                        postgresql_include=["pseudonym", "valid_until", "guardian_pseudonym", "consent_type",
                                            "birth_date"])
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
        + "\n    _append_only()\n    _current_consent()\n\n\ndef downgrade() -> None:\n"
        + '    if op.get_bind().dialect.name == "postgresql":\n'
        + '        op.execute("DROP TRIGGER consent_record_current ON consent_record")\n'
        + '        op.execute("DROP FUNCTION consent_record_current()")\n'
        + '        op.execute("DROP TRIGGER citizen_inserted_current ON citizen")\n'
        + '        op.execute("DROP TRIGGER citizen_birth_date_current ON citizen")\n'
        + '        op.execute("DROP FUNCTION citizen_birth_date_current()")\n'
        + "    _drop_append_only()\n"
        + textwrap.indent(textwrap.dedent("    " + down).strip(), "    ")
        + "\n"
    )
    body = "\n".join(line for line in body.splitlines() if "### " not in line) + "\n"
    TARGET.write_text(body)
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
