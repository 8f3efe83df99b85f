"""``consent-broker db``: schema migrations, and housekeeping of the login machinery."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from broker.audit import AuditEvent, actions, record
from broker.db import session_scope
from broker.identity.housekeeping import DEFAULT_KEEP_SESSIONS
from broker.identity.housekeeping import prune as prune_rows
from broker.identity.login import LoginConfig
from broker.keys import ensure_signing_key
from broker.runtime import Runtime
from broker.schema import current_revision, head_revision, upgrade_all
from broker.settings import Settings

app = typer.Typer(help="Database schema and housekeeping.", no_args_is_help=True)


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


@app.command()
def prune(keep_sessions_days: Annotated[int, typer.Option(
        min=1, help="Keep ended portal sessions this many days for incident review.")] = DEFAULT_KEEP_SESSIONS.days,
) -> None:
    """Delete ended login throttle windows, expired OIDC logins in flight and long-ended portal sessions
    (storage limitation); run it daily, e.g. from cron. Evidence (consents, the access log) is never pruned."""
    runtime = Runtime.from_settings(Settings())
    try:
        now = runtime.clock.now()
        with session_scope(runtime.engine) as session:
            pruned = prune_rows(session, runtime.secrets, LoginConfig.from_settings(runtime.settings).limits, now,
                                keep_sessions=timedelta(days=keep_sessions_days))
            record(session, AuditEvent(actor=actions.OPERATOR, action=actions.HOUSEKEEPING,
                                       details={"pruned": pruned.as_dict(),
                                                "keep_sessions_days": keep_sessions_days}), now)
    finally:
        runtime.dispose()
    typer.echo(", ".join(f"{table}: {rows} deleted" for table, rows in pruned.as_dict().items()))
