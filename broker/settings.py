"""Runtime settings, read from the environment with the prefix ``BROKER_``.

Everything an embedded install owns lives under ``data_dir`` (DESIGN §6): the SQLite database, the key
files and ``demo-credentials.json``. Nothing here is read at import time; ``create_app`` and the CLI build
a :class:`Settings` and pass it down.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BROKER_", extra="ignore")

    data_dir: Path = Field(default=Path("./var"), description="Holds the SQLite database, keys, credentials.")
    database_url: str | None = Field(default=None, description="Overrides the SQLite database in data_dir.")
    policy_dir: Path = Field(default=Path("./policies"), description="The reviewed policy files.")
    master_key: SecretStr | None = Field(
        default=None,
        description="Base64url AES-256 key wrapping citizens' data keys and signing keys; "
        "if unset, data_dir/keys/master.key is created on first run with mode 0600.",
    )
    pepper: SecretStr | None = Field(
        default=None,
        description="Base64url secret for pseudonyms (HMAC-SHA256); if unset, data_dir/keys/pepper.key.",
    )
    issuer: str = Field(default="http://127.0.0.1:8000", description="Public base URL of this broker.")
    jurisdiction: str = Field(default="FR", description="ISO 3166 code written into consent records.")
    sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0)
    log_level: str = Field(default="INFO")

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'broker.db').resolve()}"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def credentials_path(self) -> Path:
        return self.data_dir / "demo-credentials.json"
