"""Client registration (`consent-broker clients`): JWKS checks, secrets shown once, rotation, disabling."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, RSAKey
from typer.testing import CliRunner

from broker.cli import app as cli
from broker.db import session_scope
from broker.errors import Conflict, InvalidRequest, NotFound
from broker.oauth.clients import InvalidClientKeys, parse_client_jwks
from broker.oauth.models import OAuthClient
from broker.oauth.registration import ClientRegistry
from broker.policy import Policy
from broker.runtime import Runtime
from broker.timeutil import FixedClock
from tests.oauth.conftest import BASIC_SERVICE, Credentials
from tests.oauth.support import request_token


def _jwks(*keys: ECKey | RSAKey, private: bool = False) -> str:
    return json.dumps({"keys": [k.as_dict(private=private) for k in keys]})


def _weak_rsa() -> RSAKey:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # weak on purpose: it must be refused
        return RSAKey.generate_key(1024)


def test_public_p256_and_rsa_keys_are_accepted() -> None:
    ec, rsa = ECKey.generate_key("P-256", auto_kid=True), RSAKey.generate_key(2048, auto_kid=True)
    assert len(parse_client_jwks(_jwks(ec, rsa)).keys) == 2


@pytest.mark.parametrize("jwks", [
    "not json", "{}", '{"keys": []}',
    _jwks(ECKey.generate_key("P-256"), private=True),
    _jwks(ECKey.generate_key("P-384")),
    _jwks(_weak_rsa()),
    json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
    _jwks(ECKey.generate_key("P-256"), ECKey.generate_key("P-256")),  # two keys, no kids
])
def test_unusable_jwks_are_refused(jwks: str) -> None:
    with pytest.raises(InvalidClientKeys):
        parse_client_jwks(jwks)


def test_registry_rules(runtime: Runtime, clock: FixedClock, service_id: str) -> None:
    jwks = _jwks(ECKey.generate_key("P-256", auto_kid=True))
    with session_scope(runtime.engine) as session:
        registry = ClientRegistry(session, runtime.policy)
        with pytest.raises(NotFound):
            registry.register("no-such-service", jwks=jwks, now=clock.now())
        with pytest.raises(InvalidRequest):
            registry.register(service_id, now=clock.now())
        with pytest.raises(InvalidRequest, match="private_key_jwt"):
            registry.register(service_id, secret=True, now=clock.now())  # the policy wants a key
        done = registry.register(service_id, jwks=jwks, now=clock.now())
        assert done.secret is None and done.auth_methods == ["private_key_jwt"]
        with pytest.raises(Conflict):
            registry.register(service_id, jwks=jwks, now=clock.now())
        secret = registry.register(BASIC_SERVICE, secret=True, now=clock.now()).secret
        assert secret and len(secret) >= 43
        stored = session.get(OAuthClient, BASIC_SERVICE)
        assert stored.secret_hash.startswith("$argon2id$") and secret not in stored.secret_hash
        registry.disable(service_id, now=clock.now())
        with pytest.raises(Conflict):
            registry.rotate(service_id, jwks=jwks, now=clock.now())


def test_rotating_a_secret_refuses_the_old_one(api: TestClient, runtime: Runtime, clock: FixedClock,
                                               registered: dict[str, Credentials]) -> None:
    old = registered[BASIC_SERVICE].secret
    with session_scope(runtime.engine) as session:
        new = ClientRegistry(session, runtime.policy).rotate(BASIC_SERVICE, now=clock.now()).secret
    form = {"grant_type": "client_credentials"}
    assert api.post("/oauth/token", data=form, auth=(BASIC_SERVICE, old)).status_code == 401
    assert api.post("/oauth/token", data=form, auth=(BASIC_SERVICE, new)).status_code == 200


def test_rotating_a_jwks_refuses_the_old_key(api: TestClient, runtime: Runtime, clock: FixedClock,
                                             registered: dict[str, Credentials], service_id: str) -> None:
    old = registered[service_id].key
    new = ECKey.generate_key("P-256", private=True, auto_kid=True)
    with session_scope(runtime.engine) as session:
        ClientRegistry(session, runtime.policy).rotate(service_id, jwks=_jwks(new), now=clock.now())
    assert request_token(api, old, service_id, clock).status_code == 400
    assert request_token(api, new, service_id, clock).status_code == 200


def test_clients_commands(runtime: Runtime, oauth_policy: Policy, tmp_path: Path) -> None:
    env = {"BROKER_DATA_DIR": str(runtime.settings.data_dir),
           "BROKER_DATABASE_URL": runtime.settings.resolved_database_url(),
           "BROKER_POLICY_DIR": str(runtime.settings.policy_dir)}
    runner = CliRunner()
    key_file = tmp_path / "jwks.json"
    key_file.write_text(_jwks(ECKey.generate_key("P-256", auto_kid=True)))
    service = next(s.id for s in oauth_policy.services if s.auth_method == "private_key_jwt")

    registered = runner.invoke(cli, ["clients", "register", service, "--jwks", str(key_file)], env=env)
    assert registered.exit_code == 0, registered.output
    assert "private_key_jwt" in registered.output

    with_secret = runner.invoke(cli, ["clients", "register", BASIC_SERVICE, "--secret"], env=env)
    assert with_secret.exit_code == 0, with_secret.output
    secret = with_secret.stdout.strip().splitlines()[-1]
    assert len(secret) >= 43

    rotated = runner.invoke(cli, ["clients", "rotate", BASIC_SERVICE], env=env)
    assert rotated.exit_code == 0 and rotated.stdout.strip().splitlines()[-1] != secret

    assert runner.invoke(cli, ["clients", "disable", service], env=env).exit_code == 0
    listed = runner.invoke(cli, ["clients", "list"], env=env).output
    assert f"{service}\tdisabled\tjwks" in listed and f"{BASIC_SERVICE}\tenabled\tsecret" in listed

    refused = runner.invoke(cli, ["clients", "register", "nobody", "--secret"], env=env)
    assert refused.exit_code == 1 and "no service" in refused.output
