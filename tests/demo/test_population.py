"""The synthetic population: valid, reproducible ids and Lyon-shaped ages, districts and languages."""

from __future__ import annotations

import uuid
from datetime import date

import numpy as np

from broker.demo.population import (
    ADULT_AGE,
    LYON_DISTRICT_POPULATION,
    generate_citizens,
    pick_guardians,
    uuid4_strings,
)

DISTRICTS = list(LYON_DISTRICT_POPULATION)
TODAY = date(2026, 3, 2)


def _batch(seed: int, n: int = 20_000):
    return generate_citizens(np.random.default_rng(seed), first_ordinal=1, n=n, today=TODAY, districts=DISTRICTS)


def test_ids_are_uuid4_and_reproducible() -> None:
    ids = uuid4_strings(np.random.default_rng(1), 1000)
    assert all(str(uuid.UUID(i)) == i and uuid.UUID(i).version == 4 for i in ids)
    assert ids == uuid4_strings(np.random.default_rng(1), 1000)
    assert not set(ids) & set(uuid4_strings(np.random.default_rng(2), 1000))


def test_same_seed_same_people_other_seed_other_people() -> None:
    one, again, other = _batch(5, 500), _batch(5, 500), _batch(6, 500)
    assert one.ids == again.ids and (one.birth == again.birth).all() and (one.district == again.district).all()
    assert one.ids != other.ids


def test_ages_are_adult_heavy_with_some_minors() -> None:
    batch = _batch(1)
    assert batch.age.min() >= 13 and batch.age.max() <= 94
    minors = (batch.age < ADULT_AGE).mean()
    assert 0.04 <= minors <= 0.07
    assert 0.2 <= ((batch.age >= 18) & (batch.age < 30)).mean() <= 0.32  # a student city


def test_districts_follow_arrondissement_populations_and_most_read_french() -> None:
    batch = _batch(1)
    shares = np.bincount(batch.district, minlength=len(DISTRICTS)) / len(batch)
    expected = np.array(list(LYON_DISTRICT_POPULATION.values())) / sum(LYON_DISTRICT_POPULATION.values())
    assert np.abs(shares - expected).max() < 0.015
    assert DISTRICTS[int(shares.argmax())] == "lyon-3" and DISTRICTS[int(shares.argmin())] == "lyon-1"
    assert 0.85 <= (batch.locale == "fr").mean() <= 0.95


def test_every_minor_gets_an_adult_guardian_from_home_when_possible() -> None:
    batch = _batch(2, 2_000)
    guardians = pick_guardians(np.random.default_rng(0), batch)
    minors = np.flatnonzero(batch.age < ADULT_AGE)
    assert minors.size and (guardians[minors] >= 0).all()
    assert (batch.age[guardians[minors]] >= 30).all()
    assert (batch.district[guardians[minors]] == batch.district[minors]).mean() > 0.9
    assert (guardians[batch.age >= ADULT_AGE] == -1).all()
