"""The demo's logins and OAuth clients, and ``demo-credentials.json`` (DESIGN §6) that hands them out.

Client secrets and private keys exist in clear only in that file (mode 0600, in the data directory):
the database keeps an argon2 hash of each secret and the public JWKS of each key, as for any client. A
client gets a secret only if its policy ``auth_method`` lets the token endpoint accept one; otherwise its
``client_secret`` is null and it authenticates with ``private_key_jwt`` (RFC 7523) using ``private_jwk``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey
from sqlmodel import Session, select

from broker.identity.accounts import AccountService, Role
from broker.identity.models import Account
from broker.keys import Secrets
from broker.oauth.clients import ACCEPTED_METHODS, CLIENT_SECRET_BASIC
from broker.oauth.models import OAuthClient
from broker.oauth.registration import ClientRegistry
from broker.policy.schema import Policy, Service

CREDENTIALS_FILE = "demo-credentials.json"
STAFF = {"auditors": ("auditor", Role.auditor, "lyon-demo-auditor"),
         "admins": ("admin", Role.admin, "lyon-demo-admin")}


@dataclass(frozen=True)
class DemoLogin:
    email: str
    password: str
    name: str | None = None


@dataclass(frozen=True)
class DemoClient:
    client_id: str
    client_secret: str | None  # None where the policy has the client authenticate by private_key_jwt only
    private_jwk: dict[str, Any]
    purposes: list[str]
    name: str
    auth_method: str
    datasets: list[str] = field(default_factory=list)


@dataclass
class DemoCredentials:
    services: list[DemoClient]
    providers: list[DemoClient]
    citizens: list[DemoLogin]
    auditors: list[DemoLogin]
    admins: list[DemoLogin]
    path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        def client(c: DemoClient, provider: bool) -> dict[str, Any]:
            out = asdict(c)
            if not provider:
                out.pop("datasets")
            return out

        def login(entry: DemoLogin) -> dict[str, Any]:
            return {k: v for k, v in asdict(entry).items() if v is not None}

        return {
            "services": [client(c, False) for c in self.services],
            "providers": [client(c, True) for c in self.providers],
            "citizens": [login(x) for x in self.citizens],
            "auditors": [login(x) for x in self.auditors],
            "admins": [login(x) for x in self.admins],
        }

    @classmethod
    def from_json(cls, document: dict[str, Any], path: Path | None = None) -> DemoCredentials:
        def clients(key: str) -> list[DemoClient]:
            return [DemoClient(**{"datasets": [], **c}) for c in document.get(key, [])]

        def logins(key: str) -> list[DemoLogin]:
            return [DemoLogin(**x) for x in document.get(key, [])]

        return cls(services=clients("services"), providers=clients("providers"), citizens=logins("citizens"),
                   auditors=logins("auditors"), admins=logins("admins"), path=path)

    def write(self, path: Path) -> None:
        """Atomically, readable by the owner only: the file holds live secrets."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)
            json.dump(self.to_json(), handle, indent=2, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        self.path = path

    @classmethod
    def read(cls, path: Path) -> DemoCredentials:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")), path)


def demo_domain(policy: Policy) -> str:
    """``demo.<controller's mail domain>``, e.g. demo.lyon.example: clearly not anyone's real address."""
    return "demo." + policy.broker.controller.contact_email.rsplit("@", 1)[-1]


def staff_email(kind: str, domain: str) -> str:
    return f"{STAFF[kind][0]}@{domain}"


def _new_key(service: Service) -> tuple[dict[str, Any], str]:
    """A fresh P-256 key for ``service``: its private JWK (for the file) and public JWKS (for the broker)."""
    key = ECKey.generate_key("P-256", private=True)
    members = {"kid": key.thumbprint(), "use": "sig", "alg": "ES256"}
    public = {**key.as_dict(private=False), **members}
    return {**key.as_dict(private=True), **members}, json.dumps({"keys": [public]}, sort_keys=True)


def _takes_secret(service: Service) -> bool:
    # Only where the token endpoint would accept one: the registry refuses a secret nobody could use.
    return CLIENT_SECRET_BASIC in ACCEPTED_METHODS[service.auth_method]


def _client(service: Service, private_jwk: dict[str, Any], secret: str | None) -> DemoClient:
    return DemoClient(client_id=service.id, client_secret=secret, private_jwk=private_jwk,
                      purposes=list(service.purposes), name=service.name, auth_method=service.auth_method,
                      datasets=list(service.ingest))


def register_clients(session: Session, policy: Policy, now: datetime) -> tuple[list[DemoClient], list[DemoClient]]:
    """One OAuth client per service and provider of the policy (client id = service id), through the same
    registry as ``consent-broker clients``: a key pair each, and a secret where the policy allows one."""
    registry = ClientRegistry(session, policy)
    services, providers = [], []
    for service in policy.services:
        private_jwk, jwks = _new_key(service)
        registered = registry.register(service.id, jwks=jwks, secret=_takes_secret(service), now=now)
        client = _client(service, private_jwk, registered.secret)
        (providers if service.kind == "provider" else services).append(client)
    return services, providers


def reissue_clients(session: Session, policy: Policy, now: datetime) -> tuple[list[DemoClient], list[DemoClient]]:
    """New keys and secrets for the demo clients, when the credentials file is gone: the old ones are
    unrecoverable by design (only hashes and public keys are stored)."""
    registry = ClientRegistry(session, policy)
    services, providers = [], []
    for service in policy.services:
        if session.get(OAuthClient, service.id) is None:
            continue
        private_jwk, jwks = _new_key(service)
        registry.rotate(service.id, jwks=jwks, now=now)
        secret = registry.rotate(service.id, now=now).secret if _takes_secret(service) else None
        client = _client(service, private_jwk, secret)
        (providers if service.kind == "provider" else services).append(client)
    return services, providers


def create_staff(session: Session, secrets: Secrets, domain: str, now: datetime) -> dict[str, list[DemoLogin]]:
    accounts = AccountService(session, secrets)
    out: dict[str, list[DemoLogin]] = {}
    for kind, (local, role, password) in STAFF.items():
        email = f"{local}@{domain}"
        accounts.create(email=email, password=password, role=role, now=now)
        out[kind] = [DemoLogin(email=email, password=password)]
    return out


def staff_logins(domain: str) -> dict[str, list[DemoLogin]]:
    return {kind: [DemoLogin(email=f"{local}@{domain}", password=password)]
            for kind, (local, _, password) in STAFF.items()}


def demo_seeded(session: Session, secrets: Secrets, domain: str) -> bool:
    """The demo is complete once its admin account exists: it is the last thing the seeder writes."""
    index = secrets.email_index(staff_email("admins", domain))
    return session.exec(select(Account).where(Account.email_index == index)).first() is not None
