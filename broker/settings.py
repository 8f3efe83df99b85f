"""Runtime settings, read from the environment with the prefix ``BROKER_``.

Everything an embedded install owns lives under ``data_dir`` (DESIGN §6): the SQLite database, the key
files and ``demo-credentials.json``. Nothing here is read at import time; ``create_app`` and the CLI build
a :class:`Settings` and pass it down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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
    allow_insecure_http: bool = Field(
        default=False,
        description="Development only: accept OAuth and bearer-protected requests over plain http from anywhere. "
        "Without it plain http is accepted only when both the client and the issuer are on loopback.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses or networks of TLS-terminating proxies whose X-Forwarded-Proto "
        "and X-Forwarded-For are honoured; from anyone else those headers are ignored.",
    )
    jurisdiction: str = Field(default="FR", description="ISO 3166 code written into consent records.")
    sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0)
    # -- people: portal login (DESIGN §6) --
    local_accounts: bool = Field(default=True, description="Email and password login; off when only OIDC is used.")
    session_idle_minutes: int = Field(default=30, ge=1, description="A portal session ends after this idle time.")
    session_absolute_hours: int = Field(default=12, ge=1, description="... and at the latest this long after login.")
    login_failure_window_minutes: int = Field(default=15, ge=1)
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    oidc_issuer: str | None = Field(default=None, description="The city's OpenID provider (discovery URL base).")
    oidc_client_id: str | None = Field(default=None)
    oidc_client_secret: SecretStr | None = Field(default=None)
    oidc_scopes: str = Field(default="openid email profile")
    log_level: str = Field(default="INFO")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        if self.oidc_issuer and (not self.oidc_client_id or self.oidc_client_secret is None):
            raise ValueError("BROKER_OIDC_ISSUER needs BROKER_OIDC_CLIENT_ID and BROKER_OIDC_CLIENT_SECRET")
        return self

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
