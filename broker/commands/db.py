"""``consent-broker db``: schema migrations."""

from __future__ import annotations

import typer

from broker.audit import actions, record
from broker.db import session_scope
from broker.keys import ensure_signing_key
from broker.runtime import Runtime
from broker.schema import current_revision, head_revision, upgrade_all
from broker.settings import Settings

app = typer.Typer(help="Database schema.", no_args_is_help=True)


def upgrade_runtime(runtime: Runtime) -> None:
    """Migrate, build the vault tables the policy declares, and make sure a signing key exists."""
    upgrade_all(runtime.engine, runtime.policy)
    with session_scope(runtime.engine) as session:
        ensure_signing_key(session, runtime.secrets, runtime.clock.now())
        record(session, actions.policy_loaded(runtime.policy, "upgrade"), runtime.clock.now())


@app.command()
def upgrade() -> None:
    """Bring the database schema up to date (Alembic migrations, vault tables, a signing key)."""
    runtime = Runtime.from_settings(Settings())
    upgrade_runtime(runtime)
    typer.echo(f"database at revision {current_revision(runtime.engine)}")


@app.command()
def current() -> None:
    """Print the schema revision of the database and the one the code expects."""
    runtime = Runtime.from_settings(Settings())
    typer.echo(f"database: {current_revision(runtime.engine) or 'empty'}; code: {head_revision()}")
