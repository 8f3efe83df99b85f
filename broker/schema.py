"""Schema management: Alembic migrations plus the vault tables that the dataset policy declares.

``consent-broker db upgrade`` runs both; ``serve`` refuses to start on an out-of-date schema rather than
migrate behind the operator's back (a migration on a production database is a reviewed, deliberate act).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from broker.policy.schema import Policy
from broker.vault.tables import sync_tables

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaOutOfDate(RuntimeError):
    pass


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def upgrade_all(engine: Engine, policy: Policy) -> None:
    """Everything ``db upgrade`` does to the schema: Alembic migrations, then the vault tables."""
    upgrade(engine)
    sync_tables(engine, policy)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check_current(engine: Engine) -> None:
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"the database schema is at {current or 'nothing'}, the code needs {head}: "
            "run `consent-broker db upgrade` first"
        )
