"""Vault records: per-district patterns for the datasets the demo knows, a sound generic draw for others."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np

from broker.demo.population import LYON_DISTRICT_POPULATION
from broker.demo.profiles import PROFILES, profile_for
from broker.demo.records import WINDOW_DAYS, dataset_rows, vault_columns
from broker.demo.timestamps import day_us, format_instants
from broker.policy import Policy
from broker.policy.schema import Dataset, FieldType

DISTRICTS = list(LYON_DISTRICT_POPULATION)
TODAY = date(2026, 3, 2)
PER_DISTRICT = 600


def _rows(dataset: Dataset, policy: Policy, *, use_profile: bool = True) -> list[dict]:
    citizens = PER_DISTRICT * len(DISTRICTS)
    profile = profile_for(dataset.id)
    rows = dataset_rows(
        np.random.default_rng(9), dataset, counts=np.full(citizens, 3), home=np.repeat(np.arange(9), PER_DISTRICT),
        pseudonyms=np.array([f"p{i}" for i in range(citizens)], dtype=object), age=np.full(citizens, 40),
        districts=DISTRICTS, domains=dict(policy.broker.domains), today_us=day_us(TODAY), batch_id="b",
        storage_instants=format_instants, generators=profile.fields if use_profile else {},
        daily=profile.daily, hours=profile.hours)
    return [dict(zip(vault_columns(dataset), row, strict=True)) for row in rows]


def _mean_by_district(rows: list[dict], name: str) -> dict[str, float]:
    return {d: float(np.mean([r[name] for r in rows if r["district"] == d])) for d in DISTRICTS}


def _share_by_district(rows: list[dict], name: str, value: str) -> dict[str, float]:
    return {d: float(np.mean([r[name] == value for r in rows if r["district"] == d])) for d in DISTRICTS}


def test_known_datasets_show_district_patterns(policy: Policy) -> None:
    air = _mean_by_district(_rows(policy.dataset("air-exposure"), policy), "no2")
    assert min(air["lyon-3"], air["lyon-7"], air["lyon-8"]) > max(air["lyon-4"], air["lyon-5"]) * 1.3
    trips = _rows(policy.dataset("trips"), policy)
    bikes = _share_by_district(trips, "mode", "bike")
    assert min(bikes["lyon-1"], bikes["lyon-4"]) > 2 * max(bikes["lyon-5"], bikes["lyon-9"])
    parking = _mean_by_district(_rows(policy.dataset("parking-sessions"), policy), "duration_min")
    assert max(parking, key=parking.__getitem__) == "lyon-6" and parking["lyon-6"] > 1.3 * parking["lyon-3"]
    homes = _rows(policy.dataset("household-energy"), policy)
    houses = _share_by_district(homes, "dwelling", "house")
    assert houses["lyon-5"] > 4 * houses["lyon-1"]
    by_person: dict[str, set] = {}
    for row in homes:
        by_person.setdefault(row["pseudonym"], set()).add((row["dwelling"], row["heating"]))
    assert all(len(v) == 1 for v in by_person.values()), "a household's dwelling and heating are stable"


def _check_declared(dataset: Dataset, rows: list[dict], policy: Policy) -> None:
    low_day = datetime.fromtimestamp(day_us(TODAY) / 1e6 - (WINDOW_DAYS + 1) * 86_400, UTC)
    for dataset_field in dataset.fields:
        values = [r[dataset_field.name] for r in rows]
        if dataset_field.type is FieldType.category:
            assert set(values) <= set(dataset_field.categories or policy.broker.domains[dataset_field.domain])
        elif dataset_field.type is FieldType.timestamp:
            assert min(values) >= low_day.strftime("%Y-%m-%d") and max(values) < TODAY.isoformat()
        else:
            assert dataset_field.to_fixed(dataset_field.lower) <= min(values)
            assert max(values) <= dataset_field.to_fixed(dataset_field.upper)
            assert len(set(values)) > 10


def test_every_declared_dataset_draws_inside_its_declaration_with_or_without_a_profile(policy: Policy) -> None:
    assert {d.id for d in policy.datasets} <= set(PROFILES), "a new dataset: consider a profile for it"
    for dataset in policy.datasets:
        for use_profile in (True, False):
            rows = _rows(dataset, policy, use_profile=use_profile)
            _check_declared(dataset, rows, policy)
            if dataset.field("district") is not None:
                assert all(r["district"] == DISTRICTS[int(r["pseudonym"][1:]) // PER_DISTRICT] for r in rows)


def test_an_unknown_or_changed_dataset_falls_back_to_the_generic_draw(policy: Policy) -> None:
    trips = policy.dataset("trips")
    fields = []
    for f in trips.fields:
        if f.name == "mode":
            f = f.model_copy(update={"domain": None, "categories": ["tram", "ferry", "cable_car"]})
        fields.append(f)
    changed = trips.model_copy(update={"fields": fields})
    _check_declared(changed, _rows(changed, policy), policy)
    unknown = Dataset.model_validate({
        **trips.model_dump(mode="json", exclude={"fields", "group_by"}), "id": "noise-levels",
        "time_field": "measured_at", "group_by": ["district"],
        "fields": [
            {"name": "measured_at", "type": "timestamp", "description": {"fr": "t", "en": "t"}},
            {"name": "reported_at", "type": "timestamp", "description": {"fr": "t", "en": "t"}},
            {"name": "district", "type": "category", "domain": "districts", "description": {"fr": "d", "en": "d"}},
            {"name": "decibels", "type": "decimal", "scale": 1, "lower": -10, "upper": 120,
             "description": {"fr": "n", "en": "n"}},
            {"name": "source", "type": "category", "categories": ["road", "rail", "air"],
             "description": {"fr": "s", "en": "s"}},
        ],
    })
    _check_declared(unknown, _rows(unknown, policy), policy)
