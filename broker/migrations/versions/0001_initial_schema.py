"""Initial schema (rendered from broker.models by tools/regen_initial_migration.py).

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

def upgrade() -> None:
    op.create_table('audit_checkpoint',
    sa.Column('tree_size', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('root_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('timestamp', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kid', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('jws', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('tree_size')
    )
    op.create_table('audit_entry',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('dataset', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('decision', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('leaf_hash', sa.LargeBinary(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_entry_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entry_actor'), ['actor'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entry_at'), ['at'], unique=False)
        batch_op.create_index('ix_audit_entry_purpose_seq', ['purpose', 'seq'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entry_subject'), ['subject'], unique=False)

    op.create_table('audit_node',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hash', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('audit_state',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('moment_us', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('budget_account',
    sa.Column('purpose_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('dataset_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('period', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('service_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('cap_micro', sa.BigInteger(), nullable=False),
    sa.Column('spent_micro', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('purpose_id', 'dataset_id', 'period', 'service_id')
    )
    op.create_table('citizen',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('pseudonym', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('email_index', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('email_ct', sa.LargeBinary(), nullable=True),
    sa.Column('name_ct', sa.LargeBinary(), nullable=True),
    sa.Column('wrapped_key', sa.LargeBinary(), nullable=True),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('district', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('locale', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('privacy_cap', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('restricted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email_index')
    )
    with op.batch_alter_table('citizen', schema=None) as batch_op:
        batch_op.create_index('ix_citizen_blocked', ['pseudonym'], unique=False, sqlite_where=sa.text('restricted_at IS NOT NULL OR erased_at IS NOT NULL'), postgresql_where=sa.text('restricted_at IS NOT NULL OR erased_at IS NOT NULL'))
        batch_op.create_index('ix_citizen_privacy_cap', ['privacy_cap'], unique=False)
        batch_op.create_index(batch_op.f('ix_citizen_pseudonym'), ['pseudonym'], unique=True)

    op.create_table('consent_current',
    sa.Column('purpose_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('pseudonym', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('purpose_version', sa.Integer(), nullable=False),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('guardian_pseudonym', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('consent_type', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('purpose_id', 'pseudonym'),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('consent_current', schema=None) as batch_op:
        batch_op.create_index('ix_consent_current_pseudonym', ['pseudonym'], unique=False)

    op.create_table('login_throttle',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('login_throttle', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_throttle_window_start'), ['window_start'], unique=False)

    op.create_table('notice',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
    sa.Column('purpose_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('purpose_version', sa.Integer(), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('oauth_client',
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('service_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('jwks', sa.Text(), nullable=True),
    sa.Column('secret_hash', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('client_id')
    )
    with op.batch_alter_table('oauth_client', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth_client_service_id'), ['service_id'], unique=False)

    op.create_table('oauth_used_assertion',
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('jti', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('client_id', 'jti')
    )
    with op.batch_alter_table('oauth_used_assertion', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth_used_assertion_expires_at'), ['expires_at'], unique=False)

    op.create_table('oidc_login_state',
    sa.Column('state_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('binding_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('sealed', sa.LargeBinary(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('state_hash')
    )
    with op.batch_alter_table('oidc_login_state', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oidc_login_state_expires_at'), ['expires_at'], unique=False)

    op.create_table('outcome_report',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('service_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('purpose_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('metric', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('baseline', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('unit', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('evidence_url', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('domain', sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('audit_index', sa.Integer(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('outcome_report', schema=None) as batch_op:
        batch_op.create_index('ix_outcome_report_purpose', ['purpose_id', 'period_end'], unique=False)

    op.create_table('privacy_counter',
    sa.Column('purpose_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('dataset_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('epsilon_micro', sa.BigInteger(), nullable=False),
    sa.Column('releases', sa.BigInteger(), nullable=False),
    sa.Column('last_released_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('purpose_id', 'dataset_id')
    )
    op.create_table('privacy_release',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('cache_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('service_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('purpose_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('purpose_version', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('period', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('spec', sa.Text(), nullable=False),
    sa.Column('epsilon_micro', sa.BigInteger(), nullable=False),
    sa.Column('results', sa.Text(), nullable=False),
    sa.Column('cohort_size', sa.Integer(), nullable=False),
    sa.Column('audit_index', sa.Integer(), nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('counter_epsilon_micro', sa.BigInteger(), nullable=False),
    sa.Column('counter_releases', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('cache_key')
    )
    with op.batch_alter_table('privacy_release', schema=None) as batch_op:
        batch_op.create_index('ix_privacy_release_counter', ['purpose_id', 'dataset_id', 'released_at', 'counter_epsilon_micro'], unique=False)

    op.create_table('signing_key',
    sa.Column('kid', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('public_jwk', sa.Text(), nullable=False),
    sa.Column('private_wrapped', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('kid')
    )
    op.create_table('account',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('email_index', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('citizen_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['citizen_id'], ['citizen.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email_index')
    )
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_citizen_id'), ['citizen_id'], unique=False)

    op.create_table('consent_record',
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('schema_version', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('pseudonym', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('purpose_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('purpose_version', sa.Integer(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('method', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('expressed_by', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('guardian_pseudonym', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('consent_type', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('notice_id', sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('jurisdiction', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('previous_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.Column('evidence', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['notice_id'], ['notice.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('consent_record', schema=None) as batch_op:
        batch_op.create_index('ix_consent_purpose_subject_seq', ['purpose_id', 'pseudonym', 'seq'], unique=False, postgresql_include=['state', 'purpose_version', 'valid_until', 'guardian_pseudonym', 'consent_type'])
        batch_op.create_index(batch_op.f('ix_consent_record_purpose_id'), ['purpose_id'], unique=False)
        batch_op.create_index('ix_consent_subject_purpose_seq', ['pseudonym', 'purpose_id', 'seq'], unique=False)

    op.create_table('guardianship',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('guardian_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('minor_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('basis', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('established_by', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_by', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
    sa.ForeignKeyConstraint(['guardian_id'], ['citizen.id'], ),
    sa.ForeignKeyConstraint(['minor_id'], ['citizen.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('guardianship', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_guardianship_guardian_id'), ['guardian_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_guardianship_minor_id'), ['minor_id'], unique=False)
        batch_op.create_index('ux_guardianship_open_pair', ['guardian_id', 'minor_id'], unique=True, sqlite_where=sa.text('ended_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL'))

    op.create_table('ingest_batch',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('dataset', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('batch_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('content_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('record_count', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['oauth_client.client_id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('client_id', 'dataset', 'batch_id', name='uq_ingest_batch_client_key')
    )
    op.create_table('oauth_issued_token',
    sa.Column('jti', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['oauth_client.client_id'], ),
    sa.PrimaryKeyConstraint('jti')
    )
    with op.batch_alter_table('oauth_issued_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth_issued_token_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oauth_issued_token_expires_at'), ['expires_at'], unique=False)

    op.create_table('oidc_link',
    sa.Column('subject_index', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subject_index')
    )
    with op.batch_alter_table('oidc_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oidc_link_account_id'), ['account_id'], unique=False)

    op.create_table('portal_session',
    sa.Column('id_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('method', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('user_agent', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id_hash')
    )
    with op.batch_alter_table('portal_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_session_account_id'), ['account_id'], unique=False)

    _append_only()
    _current_consent()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER consent_record_current ON consent_record")
        op.execute("DROP FUNCTION consent_record_current()")
        op.execute("DROP TRIGGER citizen_inserted_current ON citizen")
        op.execute("DROP TRIGGER citizen_birth_date_current ON citizen")
        op.execute("DROP FUNCTION citizen_birth_date_current()")
    _drop_append_only()
    with op.batch_alter_table('portal_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_session_account_id'))

    op.drop_table('portal_session')
    with op.batch_alter_table('oidc_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oidc_link_account_id'))

    op.drop_table('oidc_link')
    with op.batch_alter_table('oauth_issued_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth_issued_token_expires_at'))
        batch_op.drop_index(batch_op.f('ix_oauth_issued_token_client_id'))

    op.drop_table('oauth_issued_token')
    op.drop_table('ingest_batch')
    with op.batch_alter_table('guardianship', schema=None) as batch_op:
        batch_op.drop_index('ux_guardianship_open_pair', sqlite_where=sa.text('ended_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_guardianship_minor_id'))
        batch_op.drop_index(batch_op.f('ix_guardianship_guardian_id'))

    op.drop_table('guardianship')
    with op.batch_alter_table('consent_record', schema=None) as batch_op:
        batch_op.drop_index('ix_consent_subject_purpose_seq')
        batch_op.drop_index(batch_op.f('ix_consent_record_purpose_id'))
        batch_op.drop_index('ix_consent_purpose_subject_seq', postgresql_include=['state', 'purpose_version', 'valid_until', 'guardian_pseudonym', 'consent_type'])

    op.drop_table('consent_record')
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_citizen_id'))

    op.drop_table('account')
    op.drop_table('signing_key')
    with op.batch_alter_table('privacy_release', schema=None) as batch_op:
        batch_op.drop_index('ix_privacy_release_counter')

    op.drop_table('privacy_release')
    op.drop_table('privacy_counter')
    with op.batch_alter_table('outcome_report', schema=None) as batch_op:
        batch_op.drop_index('ix_outcome_report_purpose')

    op.drop_table('outcome_report')
    with op.batch_alter_table('oidc_login_state', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oidc_login_state_expires_at'))

    op.drop_table('oidc_login_state')
    with op.batch_alter_table('oauth_used_assertion', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth_used_assertion_expires_at'))

    op.drop_table('oauth_used_assertion')
    with op.batch_alter_table('oauth_client', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth_client_service_id'))

    op.drop_table('oauth_client')
    op.drop_table('notice')
    with op.batch_alter_table('login_throttle', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_throttle_window_start'))

    op.drop_table('login_throttle')
    with op.batch_alter_table('consent_current', schema=None) as batch_op:
        batch_op.drop_index('ix_consent_current_pseudonym')

    op.drop_table('consent_current')
    with op.batch_alter_table('citizen', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_citizen_pseudonym'))
        batch_op.drop_index('ix_citizen_privacy_cap')
        batch_op.drop_index('ix_citizen_blocked', sqlite_where=sa.text('restricted_at IS NOT NULL OR erased_at IS NOT NULL'), postgresql_where=sa.text('restricted_at IS NOT NULL OR erased_at IS NOT NULL'))

    op.drop_table('citizen')
    op.drop_table('budget_account')
    op.drop_table('audit_state')
    op.drop_table('audit_node')
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_entry_subject'))
        batch_op.drop_index('ix_audit_entry_purpose_seq')
        batch_op.drop_index(batch_op.f('ix_audit_entry_at'))
        batch_op.drop_index(batch_op.f('ix_audit_entry_actor'))
        batch_op.drop_index(batch_op.f('ix_audit_entry_action'))

    op.drop_table('audit_entry')
    op.drop_table('audit_checkpoint')
