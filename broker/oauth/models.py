"""Registered OAuth clients. ``policies/services.yaml`` says who a service is and what it may do; its
credentials live only here: the public JWKS for ``private_key_jwt`` and an argon2 hash of a client secret.

Two more tables make the OAuth server's memory shared by every worker (DESIGN §7), so that no answer depends
on which worker a request lands on:

* ``oauth_issued_token``: one row per access token issued (its ``jti``), so a revoked token is refused
  everywhere (RFC 7009) and introspection (RFC 7662) can tell a live token from a revoked one;
* ``oauth_used_assertion``: the ``jti`` of every client assertion accepted (RFC 7523 §3, item 7), kept until
  the assertion expires, so a replayed assertion is refused by every worker.

Rows of both are deleted once they have expired (opportunistically, by the token endpoint).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, ForeignKey, String, Text
from sqlmodel import Field, SQLModel


class OAuthClient(SQLModel, table=True):
    __tablename__ = "oauth_client"

    client_id: str = Field(primary_key=True, max_length=64)
    service_id: str = Field(index=True, max_length=64)
    jwks: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    secret_hash: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    disabled_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class IssuedToken(SQLModel, table=True):
    """An access token the broker issued, by ``jti``; the token itself is never stored."""

    __tablename__ = "oauth_issued_token"

    jti: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(sa_column=Column(String(64), ForeignKey("oauth_client.client_id"), nullable=False,
                                            index=True))
    issued_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class UsedAssertion(SQLModel, table=True):
    """A client assertion already accepted: ``jti`` is unique per issuer (the client), RFC 7519 §4.1.7."""

    __tablename__ = "oauth_used_assertion"

    client_id: str = Field(primary_key=True, max_length=64)
    jti: str = Field(primary_key=True, max_length=255)
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
