"""OAuth clients for the statistics API tests: register a service with a fresh key, get it a token."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from joserfc.jwk import ECKey

from broker.db import session_scope
from broker.oauth.registration import ClientRegistry
from broker.runtime import Runtime
from broker.timeutil import FixedClock
from tests.oauth.support import access_token


def register(runtime: Runtime, service_id: str) -> ECKey:
    key = ECKey.generate_key("P-256", private=True, auto_kid=True)
    with session_scope(runtime.engine) as session:
        ClientRegistry(session, runtime.policy).register(
            service_id, jwks=json.dumps({"keys": [key.as_dict(private=False)]}), now=runtime.clock.now())
    return key


def token_for(api: TestClient, runtime: Runtime, service_id: str, clock: FixedClock, **form: str) -> str:
    return access_token(api, register(runtime, service_id), service_id, clock, **form)
