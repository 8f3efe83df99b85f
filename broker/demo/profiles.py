"""Per-district patterns for the datasets the Lyon demo knows, so statistics look like a real city's.

Only flavour: every number here is a plausible order of magnitude, not a measurement. NO₂ and PM2.5 are
higher along the traffic and industrial corridors (3e, 7e, 8e) and lower on the hills (4e, 5e); bikes are
commonest on the Presqu'île and the Croix-Rousse (1er, 4e), cars in the outer 5e and 9e; parking sessions
run longer in the 6e; houses, fuel oil and wood heating appear in the 5e and 9e, district heating in the 8e
and 9e. A generator returns None (generic draw) when the declared categories are not the ones it knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from broker.demo.records import FieldGenerator, RecordContext, draw_by_row, weights_by_name
from broker.policy.schema import Field

DAY_HOURS = np.array([0, 0, 0, 0, 0, 0, 1, 2, 4, 5, 6, 6, 6, 6, 6, 6, 5, 5, 4, 2, 1, 0, 0, 0], dtype=float)
COMMUTE_HOURS = np.array([1, 0, 0, 0, 0, 1, 3, 9, 12, 6, 4, 4, 6, 5, 4, 5, 8, 11, 10, 6, 4, 3, 2, 1], dtype=float)


@dataclass(frozen=True)
class DatasetProfile:
    share: float = 1.0                 # relative share of all records
    daily: bool = False                # one reading a day per citizen, else timed events
    hours: np.ndarray | None = None    # hour-of-day weights for timed events
    minimum_age: int = 0               # nobody younger has such records (no car, no meter contract)
    fields: dict[str, FieldGenerator] = field(default_factory=dict)


def _by_district(ctx: RecordContext, table: dict[str, float], default: float = 1.0) -> np.ndarray:
    values = np.array([table.get(d, default) for d in ctx.districts] or [default])
    return values[ctx.district]


def _categorical(ctx: RecordContext, choices: list[str], default: dict[str, float],
                 overrides: dict[str, dict[str, float]], *, stable: bool = False) -> np.ndarray | None:
    """Draw from per-district weights (``overrides`` per district id, ``default`` otherwise)."""
    rows = []
    for district in ctx.districts or ["-"]:
        weights = weights_by_name(choices, {**default, **overrides.get(district, {})})
        if weights is None:
            return None
        rows.append(weights)
    matrix = np.array(rows)
    if stable:  # one answer per citizen (their dwelling, their car), drawn from their home district
        return ctx.per_citizen(draw_by_row(ctx.rng, matrix, ctx.home))
    return draw_by_row(ctx.rng, matrix, ctx.district)


def _by_pick(ctx: RecordContext, field_name: str, table: dict[str, float], default: float) -> np.ndarray | None:
    """Per row, ``table[value of field_name]``; None when that field was not drawn."""
    if field_name not in ctx.picks:
        return None
    values = np.array([table.get(c, default) for c in ctx.choices[field_name]], dtype=float)
    return values[ctx.picks[field_name]]


def _is(ctx: RecordContext, field_name: str, value: str) -> np.ndarray | None:
    if field_name not in ctx.picks or value not in ctx.choices[field_name]:
        return None
    return ctx.picks[field_name] == ctx.choices[field_name].index(value)


# -- air exposure -------------------------------------------------------------------------------------------
NO2 = {"lyon-1": 31, "lyon-2": 33, "lyon-3": 38, "lyon-4": 24, "lyon-5": 22, "lyon-6": 29, "lyon-7": 40,
       "lyon-8": 37, "lyon-9": 27}
PM25 = {"lyon-1": 12, "lyon-2": 12.5, "lyon-3": 14, "lyon-4": 10.5, "lyon-5": 10, "lyon-6": 11.5, "lyon-7": 14.5,
        "lyon-8": 14, "lyon-9": 11}


SYMPTOM_SEVERITY = {"mild": 0.73, "moderate": 0.21, "severe": 0.06}  # when there are symptoms at all


def _no2(ctx: RecordContext, _: Field, __: list[str]) -> np.ndarray:
    weather = ctx.lognormal(0.3)
    ctx.values["_weather"] = weather
    commute = ctx.per_citizen(ctx.rng.lognormal(0.0, 0.2, size=ctx.citizens))
    return _by_district(ctx, NO2, 30) * weather * commute * np.where(ctx.weekend(), 0.8, 1.0)


def _pm25(ctx: RecordContext, _: Field, __: list[str]) -> np.ndarray:
    weather = ctx.values.get("_weather", ctx.lognormal(0.3))
    return _by_district(ctx, PM25, 12) * weather**0.7 * ctx.lognormal(0.2)


def _outdoor(ctx: RecordContext, _: Field, __: list[str]) -> np.ndarray:
    lively = np.where((ctx.age < 30) | (ctx.age >= 65), 1.2, 1.0)
    return 80 * lively * np.where(ctx.weekend(), 1.3, 1.0) * ctx.lognormal(0.6)


def _symptoms(ctx: RecordContext, _: Field, choices: list[str]) -> np.ndarray | None:
    if "none" not in choices:
        return None
    no2 = ctx.values.get("no2", np.full(ctx.rows, 30.0))
    sensitivity = ctx.per_citizen(ctx.rng.lognormal(0.0, 0.6, size=ctx.citizens))
    chance = np.clip(0.22 * (no2 / 30) ** 1.2 * sensitivity, 0, 0.9)
    severity = weights_by_name(choices, {"none": 0.0, **SYMPTOM_SEVERITY})
    if severity is None:
        return None
    picked = ctx.rng.choice(len(choices), size=ctx.rows, p=severity)
    return np.where(ctx.rng.random(ctx.rows) < chance, picked, choices.index("none"))


# -- household energy ---------------------------------------------------------------------------------------
HOUSE_SHARE = {"lyon-1": 0.02, "lyon-2": 0.03, "lyon-3": 0.05, "lyon-4": 0.08, "lyon-5": 0.22, "lyon-6": 0.03,
               "lyon-7": 0.05, "lyon-8": 0.12, "lyon-9": 0.18}
HEATING = {"gas": 0.40, "electric": 0.33, "heat_pump": 0.07, "district_heating": 0.15, "fuel_oil": 0.03,
           "wood": 0.02}
HEATING_BY_DISTRICT = {
    "lyon-1": {"gas": 0.5, "electric": 0.35, "district_heating": 0.08},
    "lyon-2": {"gas": 0.5, "electric": 0.35, "district_heating": 0.08},
    "lyon-4": {"gas": 0.48, "electric": 0.35, "district_heating": 0.06},
    "lyon-5": {"fuel_oil": 0.07, "wood": 0.05, "heat_pump": 0.1},
    "lyon-8": {"district_heating": 0.26},
    "lyon-9": {"district_heating": 0.24, "fuel_oil": 0.05, "wood": 0.03},
}
HOUSE_HEATING = {"heat_pump": 3.0, "fuel_oil": 3.0, "wood": 4.0, "district_heating": 0.1}
HEATING_ENERGY = {"electric": 1.35, "gas": 1.0, "heat_pump": 0.75, "district_heating": 0.95, "fuel_oil": 1.25,
                  "wood": 1.1}
MONTH_ENERGY = np.array([0, 1.4, 1.3, 1.15, 1.0, 0.85, 0.75, 0.75, 0.75, 0.8, 0.95, 1.2, 1.35])
OLD_BUILDINGS = {"lyon-1": 1.1, "lyon-2": 1.1, "lyon-4": 1.1, "lyon-5": 1.12}


def _dwelling(ctx: RecordContext, _: Field, choices: list[str]) -> np.ndarray | None:
    if set(choices) != {"flat", "house"}:
        return None
    overrides = {d: {"house": share, "flat": 1 - share} for d, share in HOUSE_SHARE.items()}
    return _categorical(ctx, choices, {"house": 0.08, "flat": 0.92}, overrides, stable=True)


def _heating(ctx: RecordContext, _: Field, choices: list[str]) -> np.ndarray | None:
    picked = _categorical(ctx, choices, HEATING, HEATING_BY_DISTRICT, stable=True)
    houses = _is(ctx, "dwelling", "house")
    if picked is None or houses is None:
        return picked
    # Houses redraw among the heating kinds that suit them; still one answer per citizen.
    house_weights = weights_by_name(choices, {k: v * HOUSE_HEATING.get(k, 1.0) for k, v in HEATING.items()})
    if house_weights is None:
        return picked
    redraw = ctx.per_citizen(ctx.rng.choice(len(choices), size=ctx.citizens, p=house_weights))
    return np.where(houses, redraw, picked)


def _energy(ctx: RecordContext, _: Field, __: list[str]) -> np.ndarray:
    houses = _is(ctx, "dwelling", "house")
    base = np.where(houses, 19_000.0, 8_500.0) if houses is not None else np.full(ctx.rows, 10_000.0)
    heating = _by_pick(ctx, "heating", HEATING_ENERGY, 1.0)
    household = ctx.per_citizen(ctx.rng.lognormal(0.0, 0.3, size=ctx.citizens))
    season = MONTH_ENERGY[ctx.month()]
    return (base * (heating if heating is not None else 1.0) * household * season
            * _by_district(ctx, OLD_BUILDINGS, 1.0) * ctx.lognormal(0.2))


# -- trips --------------------------------------------------------------------------------------------------
MODES = ("walk", "bike", "scooter", "public_transport", "car", "carpool", "motorbike")
MODE_SHARE = {
    "lyon-1": (0.38, 0.16, 0.04, 0.28, 0.10, 0.02, 0.02),
    "lyon-2": (0.36, 0.12, 0.04, 0.30, 0.13, 0.03, 0.02),
    "lyon-3": (0.28, 0.10, 0.03, 0.35, 0.19, 0.03, 0.02),
    "lyon-4": (0.34, 0.17, 0.04, 0.27, 0.14, 0.02, 0.02),
    "lyon-5": (0.22, 0.05, 0.02, 0.30, 0.34, 0.04, 0.03),
    "lyon-6": (0.30, 0.10, 0.04, 0.32, 0.19, 0.03, 0.02),
    "lyon-7": (0.27, 0.12, 0.04, 0.34, 0.18, 0.03, 0.02),
    "lyon-8": (0.20, 0.06, 0.02, 0.38, 0.28, 0.04, 0.02),
    "lyon-9": (0.20, 0.05, 0.02, 0.33, 0.33, 0.04, 0.03),
}
MODE_KM = {"walk": 1.1, "bike": 3.8, "scooter": 2.6, "public_transport": 5.5, "car": 8.5, "carpool": 12.0,
           "motorbike": 7.5}
MODE_KMH = {"walk": 4.8, "bike": 14, "scooter": 12, "public_transport": 17, "car": 20, "carpool": 22,
            "motorbike": 26}
MODE_WAIT_MIN = {"public_transport": 6, "car": 4, "carpool": 5}
OUTER = {"lyon-5": 1.2, "lyon-8": 1.2, "lyon-9": 1.25}


def _mode(ctx: RecordContext, _: Field, choices: list[str]) -> np.ndarray | None:
    default = dict(zip(MODES, MODE_SHARE["lyon-3"], strict=True))
    overrides = {d: dict(zip(MODES, shares, strict=True)) for d, shares in MODE_SHARE.items()}
    picked = _categorical(ctx, choices, default, overrides)
    if picked is None or "car" not in choices:
        return picked
    # Nobody under 18 drives a car in France: their car trips become public transport or walks.
    fallback = choices.index("public_transport") if "public_transport" in choices else 0
    return np.where((ctx.age < 18) & (picked == choices.index("car")), fallback, picked)


def _distance(ctx: RecordContext, _: Field, __: list[str]) -> np.ndarray | None:
    typical = _by_pick(ctx, "mode", MODE_KM, 5.0)
    if typical is None:
        return None
    return typical * _by_district(ctx, OUTER, 1.0) * ctx.lognormal(0.55)


def _trip_minutes(ctx: RecordContext, _: Field, __: list[str]) -> np.ndarray | None:
    speed, distance = _by_pick(ctx, "mode", MODE_KMH, 15.0), ctx.values.get("distance_km")
    wait = _by_pick(ctx, "mode", MODE_WAIT_MIN, 1.0)
    if speed is None or wait is None or distance is None:
        return None
    return (distance / speed * 60 + wait) * ctx.lognormal(0.15)


# -- parking ------------------------------------------------------------------------------------------------
ZONE = {"street_red": 0.35, "street_green": 0.35, "car_park": 0.28, "park_and_ride": 0.02}
ZONE_BY_DISTRICT = {
    "lyon-1": {"street_red": 0.55, "street_green": 0.2, "car_park": 0.25, "park_and_ride": 0.0},
    "lyon-2": {"street_red": 0.55, "street_green": 0.2, "car_park": 0.25, "park_and_ride": 0.0},
    "lyon-4": {"street_red": 0.2, "street_green": 0.5, "car_park": 0.25, "park_and_ride": 0.05},
    "lyon-5": {"street_red": 0.2, "street_green": 0.5, "car_park": 0.24, "park_and_ride": 0.06},
    "lyon-8": {"street_red": 0.1, "street_green": 0.5, "car_park": 0.32, "park_and_ride": 0.08},
    "lyon-9": {"street_red": 0.1, "street_green": 0.5, "car_park": 0.32, "park_and_ride": 0.08},
}
VEHICLE = {"car": 0.76, "electric_car": 0.11, "van": 0.05, "motorbike": 0.08}
ZONE_MINUTES = {"street_red": 50, "street_green": 120, "car_park": 140, "park_and_ride": 540}
LONG_STAYS = {"lyon-6": 1.5, "lyon-2": 1.1}


def _zone(ctx: RecordContext, _: Field, choices: list[str]) -> np.ndarray | None:
    return _categorical(ctx, choices, ZONE, ZONE_BY_DISTRICT)


def _vehicle(ctx: RecordContext, _: Field, choices: list[str]) -> np.ndarray | None:
    return _categorical(ctx, choices, VEHICLE, {}, stable=True)


def _parking_minutes(ctx: RecordContext, _: Field, __: list[str]) -> np.ndarray | None:
    typical = _by_pick(ctx, "zone", ZONE_MINUTES, 90.0)
    if typical is None:
        return None
    return typical * _by_district(ctx, LONG_STAYS, 1.0) * ctx.lognormal(0.5)


PROFILES: dict[str, DatasetProfile] = {
    "air-exposure": DatasetProfile(share=0.32, daily=True, fields={
        "no2": _no2, "pm25": _pm25, "outdoor_minutes": _outdoor, "respiratory_symptoms": _symptoms}),
    "household-energy": DatasetProfile(share=0.33, daily=True, minimum_age=18, fields={
        "dwelling": _dwelling, "heating": _heating, "energy_wh": _energy}),
    "trips": DatasetProfile(share=0.25, hours=COMMUTE_HOURS, fields={
        "mode": _mode, "distance_km": _distance, "duration_min": _trip_minutes}),
    "parking-sessions": DatasetProfile(share=0.10, hours=DAY_HOURS, minimum_age=18, fields={
        "zone": _zone, "vehicle": _vehicle, "duration_min": _parking_minutes}),
}


def profile_for(dataset_id: str) -> DatasetProfile:
    return PROFILES.get(dataset_id, DatasetProfile())
