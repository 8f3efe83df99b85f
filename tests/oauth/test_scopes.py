"""The scope registry (broker.scopes): what each client may hold, derived from the policy alone."""

from __future__ import annotations

from broker.policy import Policy
from broker.scopes import ANY_PURPOSE, INGEST, client_scopes, purpose_of, purpose_scope, satisfies, supported_scopes


def test_every_purpose_is_a_scope_and_ingest_a_role(policy: Policy) -> None:
    scopes = supported_scopes(policy)
    assert scopes == [f"purpose:{p.id}" for p in policy.purposes] + [INGEST]
    assert ANY_PURPOSE not in scopes  # a requirement, never granted


def test_services_hold_their_active_purposes_and_providers_ingest(policy: Policy) -> None:
    for service in policy.services:
        held = client_scopes(service, policy)
        if service.kind == "provider":
            assert held == {INGEST}
        else:
            active = {p.id for p in policy.purposes if p.status == "active"}
            assert held == {purpose_scope(p) for p in service.purposes if p in active}


def test_requirements() -> None:
    granted = {"purpose:traffic-planning"}
    assert satisfies(granted, [])
    assert satisfies(granted, [ANY_PURPOSE])
    assert satisfies(granted, ["purpose:traffic-planning"])
    assert not satisfies(granted, [INGEST])
    assert not satisfies({INGEST}, [ANY_PURPOSE])
    assert purpose_of("purpose:traffic-planning") == "traffic-planning"
    assert purpose_of(ANY_PURPOSE) is None and purpose_of(INGEST) is None
