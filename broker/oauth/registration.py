"""Registering client credentials: what ``consent-broker clients`` does, without the command line.

The policy decides who a service is and what it may do; this records how it proves it is that service: a
public JWKS (``private_key_jwt``) and/or a generated secret, stored as an argon2 hash and shown once. The
client id is the service id. A disabled client is refused at once by the token endpoint, by introspection and
by every protected endpoint (its live tokens included), because each of them reads the client row.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from broker.errors import Conflict, InvalidRequest, NotFound
from broker.identity.passwords import hash_password
from broker.oauth.clients import ACCEPTED_METHODS, CLIENT_SECRET_BASIC, BrokerClient, parse_client_jwks
from broker.oauth.models import OAuthClient
from broker.policy import Policy

#: 256 random bits, URL-safe, so it survives HTTP Basic and shell quoting alike.
SECRET_BYTES = 32


@dataclass(frozen=True)
class Registered:
    client_id: str
    secret: str | None  # shown once, never stored in clear
    auth_methods: list[str]


class ClientRegistry:
    def __init__(self, session: Session, policy: Policy) -> None:
        self.session = session
        self.policy = policy

    def register(self, service_id: str, *, jwks: str | None = None, secret: bool = False,
                 now: datetime) -> Registered:
        """A new client for a service of the policy, with a JWKS, a generated secret, or both."""
        if self.policy.service(service_id) is None:
            raise NotFound(f"no service {service_id!r} in the policy")
        if jwks is None and not secret:
            raise InvalidRequest("give a JWKS (private_key_jwt) or ask for a secret (client_secret_basic)")
        self._check_secret_allowed(service_id, secret)
        if self.session.get(OAuthClient, service_id) is not None:
            raise Conflict(f"client {service_id!r} is already registered: rotate its credentials instead")
        row = OAuthClient(client_id=service_id, service_id=service_id, created_at=now)
        shown = self._set_credentials(row, jwks=jwks, secret=secret)
        self.session.add(row)
        self.session.flush()
        return self._registered(row, shown)

    def rotate(self, service_id: str, *, jwks: str | None = None, now: datetime) -> Registered:
        """New credentials, the old ones refused from now on: the given JWKS replaces the registered one;
        without a JWKS, a new secret replaces the old (for a client that has a secret)."""
        row = self._existing(service_id)
        if jwks is None and not row.secret_hash:
            raise InvalidRequest(f"client {service_id!r} has no secret: give its new JWKS")
        self._check_secret_allowed(service_id, jwks is None)
        shown = self._set_credentials(row, jwks=jwks, secret=jwks is None)
        self.session.add(row)
        self.session.flush()
        return self._registered(row, shown)

    def disable(self, service_id: str, *, now: datetime) -> None:
        row = self._existing(service_id)
        if row.disabled_at is None:
            row.disabled_at = now
            self.session.add(row)
            self.session.flush()

    def list(self) -> list[OAuthClient]:
        return list(self.session.exec(select(OAuthClient).order_by(OAuthClient.client_id)).all())

    def _check_secret_allowed(self, service_id: str, secret: bool) -> None:
        service = self.policy.service(service_id)
        if secret and service is not None and CLIENT_SECRET_BASIC not in ACCEPTED_METHODS[service.auth_method]:
            # A secret the token endpoint would never accept is a credential to leak for nothing.
            raise InvalidRequest(f"the policy has service {service_id!r} authenticate with {service.auth_method}: "
                                 "register its public keys (JWKS) instead of a secret")

    def _existing(self, service_id: str) -> OAuthClient:
        row = self.session.get(OAuthClient, service_id)
        if row is None:
            raise NotFound(f"no client registered for service {service_id!r}")
        if row.disabled_at is not None:
            raise Conflict(f"client {service_id!r} is disabled")
        return row

    @staticmethod
    def _set_credentials(row: OAuthClient, *, jwks: str | None, secret: bool) -> str | None:
        if jwks is not None:
            try:
                parse_client_jwks(jwks)
            except ValueError as exc:
                raise InvalidRequest(str(exc)) from exc
            row.jwks = jwks
        if not secret:
            return None
        shown = secrets.token_urlsafe(SECRET_BYTES)
        row.secret_hash = hash_password(shown)
        return shown

    def _registered(self, row: OAuthClient, secret: str | None) -> Registered:
        service = self.policy.service(row.service_id)
        methods = sorted(BrokerClient(row, service, self.policy).auth_methods) if service else []
        return Registered(client_id=row.client_id, secret=secret, auth_methods=methods)
