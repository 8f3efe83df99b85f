"""``demo-credentials.json``: the DESIGN §6 shape, owner-only, and every credential in it works."""

from __future__ import annotations

import json
import stat

from joserfc import jws
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import Engine
from sqlmodel import select

from broker.db import session_scope
from broker.demo import seed_demo
from broker.identity.accounts import AccountService
from broker.identity.citizens import CitizenService
from broker.identity.passwords import verify_password
from broker.keys import Secrets
from broker.oauth.models import OAuthClient
from broker.policy import Policy
from broker.settings import Settings
from broker.timeutil import FixedClock
from tests.demo.conftest import CHUNK, Seeded, credentials_path, make_runtime

CLIENT_KEYS = {"client_id", "client_secret", "private_jwk", "purposes"}


def _stored_jwks(engine: Engine, client_id: str) -> KeySet:
    with session_scope(engine) as session:
        row = session.get(OAuthClient, client_id)
        return KeySet.import_key_set(json.loads(row.jwks))


def test_file_has_the_design_shape_and_is_owner_only(seeded: Seeded, settings: Settings, policy: Policy) -> None:
    path = credentials_path(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert set(document) == {"services", "providers", "citizens", "auditors", "admins"}
    services = {s.id: s for s in policy.services}
    for key, kind in (("services", "service"), ("providers", "provider")):
        entries = document[key]
        assert {e["client_id"] for e in entries} == {s.id for s in policy.services if s.kind == kind}
        for entry in entries:
            assert set(entry) >= CLIENT_KEYS
            assert entry["purposes"] == services[entry["client_id"]].purposes
            assert entry["private_jwk"]["kty"] == "EC" and "d" in entry["private_jwk"]
    assert all(set(e) >= {"datasets"} for e in document["providers"])
    for key in ("citizens", "auditors", "admins"):
        assert document[key] and all({"email", "password"} <= set(e) for e in document[key])
    assert len(document["citizens"]) == 3


def test_every_login_authenticates_with_its_role(seeded: Seeded, secrets: Secrets) -> None:
    credentials = seeded.credentials
    with session_scope(seeded.engine) as session:
        accounts, citizens = AccountService(session, secrets), CitizenService(session, secrets)
        for logins, role in ((credentials.citizens, "citizen"), (credentials.auditors, "auditor"),
                             (credentials.admins, "admin")):
            for login in logins:
                account = accounts.authenticate(login.email, login.password)
                assert account is not None and account.role == role, login.email
                assert accounts.authenticate(login.email, login.password + "x") is None
                if role == "citizen":
                    owner = citizens.get(account.citizen_id)
                    assert citizens.identifiers(owner).email == login.email


def test_each_private_key_matches_the_registered_jwks(seeded: Seeded) -> None:
    for client in seeded.credentials.services + seeded.credentials.providers:
        private = ECKey.import_key(client.private_jwk)
        stored = _stored_jwks(seeded.engine, client.client_id)
        token = jws.serialize_compact({"alg": "ES256", "kid": client.private_jwk["kid"]}, b"demo", private,
                                      algorithms=["ES256"])
        assert jws.deserialize_compact(token, stored, algorithms=["ES256"]).payload == b"demo"
        public = stored.keys[0].as_dict(private=False)
        assert {k: public[k] for k in ("crv", "x", "y")} == {k: client.private_jwk[k] for k in ("crv", "x", "y")}


def test_client_secrets_exist_only_where_the_policy_accepts_them_and_verify(
        settings: Settings, engine: Engine, policy: Policy, secrets: Secrets, clock: FixedClock) -> None:
    by_secret = policy.services[0].model_copy(update={"auth_method": "client_secret_basic"})
    variant = policy.model_copy(update={"services": [by_secret, *policy.services[1:]]})
    credentials = seed_demo(make_runtime(settings, engine, variant, secrets, clock), citizens=20, chunk_size=CHUNK)
    clients = {c.client_id: c for c in credentials.services + credentials.providers}
    with session_scope(engine) as session:
        rows = {r.client_id: r for r in session.exec(select(OAuthClient)).all()}
    for service in variant.services:
        client, row = clients[service.id], rows[service.id]
        if service.auth_method == "client_secret_basic":
            assert client.client_secret and verify_password(row.secret_hash, client.client_secret)
            assert not verify_password(row.secret_hash, client.client_secret[:-1])
        else:
            assert client.client_secret is None and row.secret_hash is None


def test_a_lost_credentials_file_is_reissued(seeded: Seeded, settings: Settings) -> None:
    path = credentials_path(settings)
    old = seeded.credentials
    path.unlink()
    new = seed_demo(seeded.runtime, citizens=5, seed=1)
    assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert new.to_json()["citizens"] == old.to_json()["citizens"]
    for before, after in zip(old.services + old.providers, new.services + new.providers, strict=True):
        assert before.client_id == after.client_id and before.private_jwk["d"] != after.private_jwk["d"]
        stored = _stored_jwks(seeded.engine, after.client_id)
        assert stored.keys[0].as_dict()["x"] == after.private_jwk["x"]
