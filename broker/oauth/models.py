"""Registered OAuth clients. ``policies/services.yaml`` says who a service is and what it may do; its
credentials live only here: the public JWKS for ``private_key_jwt`` and an argon2 hash of a client secret."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Text
from sqlmodel import Field, SQLModel


class OAuthClient(SQLModel, table=True):
    __tablename__ = "oauth_client"

    client_id: str = Field(primary_key=True, max_length=64)
    service_id: str = Field(index=True, max_length=64)
    jwks: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    secret_hash: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    disabled_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
