"""The scopes and roles OAuth clients hold, declared once (STYLE: "scopes declared once").

* ``purpose:<id>``: the right to ask for statistics under one purpose. A city service holds the scopes of the
  active purposes ``policies/services.yaml`` lists for it; nothing else grants them.
* ``ingest``: the role of a data provider, which pushes records into the datasets listed under its ``ingest``.

Routes state what they need with ``Security(guard, scopes=[...])`` using the names below. A route whose purpose
comes in the request body (``POST /v1/queries``) requires :data:`ANY_PURPOSE` and then checks the purpose it
was given with :meth:`broker.oauth.guard.ClientPrincipal.holds_purpose`.
"""

from __future__ import annotations

from collections.abc import Iterable

from broker.policy import Policy, Service

PURPOSE_PREFIX = "purpose:"
INGEST = "ingest"
#: A requirement, never a granted scope: "at least one ``purpose:<id>`` scope".
ANY_PURPOSE = "purpose:*"

#: Every role a client may hold, with what it allows (the OpenAPI document shows these).
ROLES: dict[str, str] = {
    INGEST: "Push records about citizens into the datasets the policy lists under the provider's ingest.",
}
#: What each requirement means, for the OpenAPI security scheme.
REQUIREMENTS: dict[str, str] = {
    ANY_PURPOSE: "Statistics under one purpose (scope purpose:<id>, one per purpose the service holds).",
    **ROLES,
}


def purpose_scope(purpose_id: str) -> str:
    return PURPOSE_PREFIX + purpose_id


def purpose_of(scope: str) -> str | None:
    """The purpose id a ``purpose:<id>`` scope names, else None."""
    if scope.startswith(PURPOSE_PREFIX) and scope != ANY_PURPOSE:
        return scope[len(PURPOSE_PREFIX):]
    return None


def supported_scopes(policy: Policy) -> list[str]:
    """Every scope this broker knows (RFC 8414 ``scopes_supported``); anything else is ``invalid_scope``."""
    return [purpose_scope(p.id) for p in policy.purposes] + list(ROLES)


def client_scopes(service: Service, policy: Policy) -> frozenset[str]:
    """The scopes a client may be granted: what the policy gives its service, today.

    A suspended or retired purpose grants nothing; a provider only ever gets ``ingest`` (the policy schema
    keeps writing records and reading statistics on separate clients).
    """
    if service.kind == "provider":
        return frozenset({INGEST})
    active = {p.id for p in policy.purposes if p.status == "active"}
    return frozenset(purpose_scope(p) for p in service.purposes if p in active)


def satisfies(granted: Iterable[str], required: Iterable[str]) -> bool:
    """Whether the granted scopes meet every requirement (each required scope, or any purpose for ANY_PURPOSE)."""
    held = set(granted)
    for need in required:
        if need == ANY_PURPOSE:
            if not any(purpose_of(scope) for scope in held):
                return False
        elif need not in held:
            return False
    return True
