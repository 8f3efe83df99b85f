"""Signing key rotation: earlier tokens stay valid until they expire; at most two keys are live."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from broker.cli import app as cli
from broker.db import session_scope
from broker.keys import RotationTooSoon, rotate_signing_key, verify_compact
from broker.oauth.rfc9068 import ACCESS_TOKEN_LIFETIME
from broker.runtime import Runtime
from broker.timeutil import FixedClock
from tests.oauth.conftest import Credentials
from tests.oauth.support import access_token, bearer, claims_of

LIFETIME = timedelta(seconds=ACCESS_TOKEN_LIFETIME)


def _rotate(runtime: Runtime, clock: FixedClock) -> list[str]:
    with session_scope(runtime.engine) as session:
        return rotate_signing_key(session, runtime.secrets, clock.now(), token_lifetime=LIFETIME).retired


def _kids(api: TestClient) -> list[str]:
    return [key["kid"] for key in api.get("/.well-known/jwks.json").json()["keys"]]


def test_rotation_keeps_earlier_tokens_valid_until_they_expire(
        api: TestClient, other_api: TestClient, runtime: Runtime, registered: dict[str, Credentials],
        service_id: str, clock: FixedClock) -> None:
    key = registered[service_id].key
    first = access_token(api, key, service_id, clock)
    first_kid = claims_of(first)[0]["kid"]

    clock.advance(seconds=60)
    assert _rotate(runtime, clock) == []  # the first key may still have live tokens
    api.app.state.oauth.keys.invalidate()  # type: ignore[attr-defined]  # else picked up within 2 seconds
    second = access_token(api, key, service_id, clock)
    second_kid = claims_of(second)[0]["kid"]
    assert second_kid != first_kid
    assert _kids(api) == [second_kid, first_kid]  # current and previous, newest first

    # A worker that has not reloaded its keys yet meets a token signed by the new key: it reloads at once.
    assert other_api.get("/v1/client", headers=bearer(second)).status_code == 200
    assert api.get("/v1/client", headers=bearer(first)).status_code == 200

    clock.advance(seconds=ACCESS_TOKEN_LIFETIME - 61)  # the first token's last second
    assert api.get("/v1/client", headers=bearer(first)).status_code == 200
    clock.advance(seconds=1)
    assert api.get("/v1/client", headers=bearer(first)).status_code == 401
    assert api.get("/v1/client", headers=bearer(second)).status_code == 200


def test_a_rotation_that_would_leave_three_live_keys_is_refused(runtime: Runtime, clock: FixedClock) -> None:
    clock.advance(seconds=1)
    first_retired = _rotate(runtime, clock)
    assert first_retired == []
    clock.advance(seconds=ACCESS_TOKEN_LIFETIME)  # the previous key's tokens may live up to a minute more
    with pytest.raises(RotationTooSoon):
        _rotate(runtime, clock)
    clock.advance(seconds=60)
    oldest = runtime.keyring().live_kids[-1]
    receipt = runtime.keyring().sign({"signed": "before rotation"}, typ="consent-receipt+jwt")
    assert _rotate(runtime, clock) == [oldest]
    ring = runtime.keyring()
    assert len(ring.live_kids) == 2 and oldest not in ring.live_kids
    # A retired key stays published: what it signed (receipts, checkpoints) still verifies offline.
    assert [k["kid"] for k in ring.jwks()["keys"]][-1] == oldest
    assert verify_compact(receipt, ring.jwks())["signed"] == "before rotation"


def test_keys_rotate_command(runtime: Runtime) -> None:
    env = {"BROKER_DATA_DIR": str(runtime.settings.data_dir),
           "BROKER_DATABASE_URL": runtime.settings.resolved_database_url(),
           "BROKER_POLICY_DIR": str(runtime.settings.policy_dir)}
    runner = CliRunner()
    first = runner.invoke(cli, ["keys", "rotate"], env=env)
    assert first.exit_code == 0, first.output
    assert first.output.startswith("new signing key ")
    listed = runner.invoke(cli, ["keys", "list"], env=env)
    assert listed.output.count("\n") == 2 and "signing" in listed.output
    again = runner.invoke(cli, ["keys", "rotate"], env=env)
    assert again.exit_code == 1 and "rotate again after" in again.output
