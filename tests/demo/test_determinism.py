"""Same seed, same city: identical plaintext and pseudonymous content across runs and across databases;
ciphertexts differ (fresh data keys and nonces), and another seed gives another city."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session

from broker.consent.models import ConsentRecord
from broker.db import make_engine
from broker.demo import seed_demo
from broker.demo.credentials import demo_domain
from broker.demo.named import NAMED, NAMED_WARDS
from broker.identity.citizens import CitizenService
from broker.identity.models import Citizen, Guardianship
from broker.keys import Secrets
from broker.policy import Policy
from broker.runtime import Runtime
from broker.schema import upgrade_all
from broker.settings import Settings
from broker.timeutil import FixedClock, as_utc
from broker.vault.tables import vault_metadata
from tests.demo.conftest import CHUNK, CITIZENS, make_runtime

SEED = 7


def _plain(value: Any) -> Any:
    return as_utc(value) if hasattr(value, "tzinfo") and hasattr(value, "hour") else value


def snapshot(engine: Engine, policy: Policy, secrets: Secrets) -> dict[str, Any]:
    """Everything the seed decides, in a form that compares across runs and databases."""
    named: set[str] = set()
    named_ids: set[str] = set()
    with Session(engine) as session:
        service = CitizenService(session, secrets)
        citizens = []
        for c in session.exec(select(Citizen).order_by(Citizen.id)).scalars():
            ids = service.identifiers(c)
            citizens.append((c.id, c.pseudonym, c.email_index, c.birth_date, c.district, c.locale, c.privacy_cap,
                             _plain(c.created_at), ids.email, ids.name))
            if ids.email in {f"{n.local}@{demo_domain(policy)}" for n in (*NAMED, *NAMED_WARDS)}:
                named.add(c.pseudonym)
                named_ids.add(c.id)
        consents = []
        for r in session.exec(select(ConsentRecord).order_by(ConsentRecord.seq)).scalars():
            row = {k: _plain(v) for k, v in r.model_dump().items()}
            if r.pseudonym in named:  # written by the ledger itself, which draws its record ids at random
                for key in ("id", "previous_id", "evidence"):
                    row.pop(key)
            consents.append(row)
        ciphertexts = session.exec(select(Citizen.email_ct).order_by(Citizen.id)).scalars().all()
        # The named ward's link is made by the guardianship service, which draws its id at random.
        links = sorted((g.id, g.guardian_id, g.minor_id, g.basis, _plain(g.since))
                       for g in session.exec(select(Guardianship)).scalars() if g.minor_id not in named_ids)
    _, tables = vault_metadata(policy)
    vault = {}
    with engine.connect() as conn:
        for dataset_id, table in tables.items():
            columns = [c for c in table.columns if c.name != "id"]
            vault[dataset_id] = [tuple(_plain(v) for v in row)
                                 for row in conn.execute(select(*columns).order_by(table.c.id))]
    return {"citizens": citizens, "consents": consents, "vault": vault, "ciphertexts": ciphertexts, "links": links}


def _fresh_sqlite(tmp_path: Path, name: str, policy: Policy, secrets: Secrets, clock: FixedClock) -> Runtime:
    directory = tmp_path / name
    directory.mkdir()
    settings = Settings(data_dir=directory, database_url=f"sqlite:///{directory / 'broker.db'}")
    engine = make_engine(settings.resolved_database_url())
    upgrade_all(engine, policy)
    return make_runtime(settings, engine, policy, secrets, clock)


def test_same_seed_same_city_on_either_database_from_either_producer(
        runtime: Runtime, tmp_path: Path, policy: Policy, secrets: Secrets, clock: FixedClock) -> None:
    seed_demo(runtime, citizens=CITIZENS, seed=SEED, chunk_size=CHUNK, workers=1)
    other = _fresh_sqlite(tmp_path, "again", policy, secrets, clock)
    try:
        seed_demo(other, citizens=CITIZENS, seed=SEED, chunk_size=CHUNK, workers=0)
        first, second = snapshot(runtime.engine, policy, secrets), snapshot(other.engine, policy, secrets)
    finally:
        other.engine.dispose()
    for part in ("citizens", "consents", "vault", "links"):
        assert first[part] == second[part], part
    assert len(first["citizens"]) == CITIZENS + len(NAMED) + len(NAMED_WARDS)
    assert first["links"]
    assert not set(first["ciphertexts"]) & set(second["ciphertexts"])


def test_another_seed_another_city(tmp_path: Path, policy: Policy, clock: FixedClock) -> None:
    secrets = Secrets(master_key=os.urandom(32), pepper=os.urandom(32))
    one, two = (_fresh_sqlite(tmp_path, f"seed-{s}", policy, secrets, clock) for s in (1, 2))
    try:
        seed_demo(one, citizens=50, seed=1, chunk_size=CHUNK)
        seed_demo(two, citizens=50, seed=2, chunk_size=CHUNK)
        first, second = snapshot(one.engine, policy, secrets), snapshot(two.engine, policy, secrets)
    finally:
        one.engine.dispose()
        two.engine.dispose()
    assert not {c[0] for c in first["citizens"]} & {c[0] for c in second["citizens"]}
    assert first["vault"] != second["vault"]
