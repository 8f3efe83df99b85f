"""Who is calling a protected endpoint: the client behind a valid access token (framework-free)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broker.oauth import rfc9396
from broker.policy import Policy, Service
from broker.scopes import INGEST, purpose_of, purpose_scope


@dataclass(frozen=True)
class ClientPrincipal:
    client_id: str
    service: Service
    #: The token's scopes that the policy still grants (see AccessTokenValidator.effective_scopes).
    scopes: frozenset[str]
    #: RFC 9396 details from the token, as issued (JSON objects).
    authorization_details: tuple[dict[str, Any], ...]
    token_id: str
    expires_at: datetime
    policy: Policy = field(repr=False, compare=False)

    @property
    def purposes(self) -> list[str]:
        return sorted(p for p in (purpose_of(s) for s in self.scopes) if p)

    @property
    def may_ingest(self) -> bool:
        return INGEST in self.scopes

    def holds_purpose(self, purpose_id: str) -> bool:
        return purpose_scope(purpose_id) in self.scopes

    def epsilon_ceiling(self, purpose_id: str, dataset_id: str) -> float | None:
        """The most ε one query on (purpose, dataset) may spend with this token; None if it may not query it.

        ``POST /v1/queries`` refuses a request whose ε exceeds this (or when it is None).
        """
        return rfc9396.epsilon_ceiling(self.scopes, self.authorization_details, self.policy, purpose_id, dataset_id)
