"""Table of the broker's signing keys (private halves wrapped by the master key)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, LargeBinary, Text
from sqlmodel import Field, SQLModel


class SigningKey(SQLModel, table=True):
    __tablename__ = "signing_key"

    kid: str = Field(primary_key=True, max_length=64)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    retired_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    public_jwk: str = Field(sa_column=Column(Text, nullable=False))
    private_wrapped: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
