"""Synthetic vault records for any dataset the policy declares.

Generation reads the declaration, never a hard-coded list of fields: the time field gets instants in the
last :data:`WINDOW_DAYS` days, a category field takes values from its declared categories or domain (the
district domain takes the citizen's own district), a numeric field gets a skewed positive distribution
inside its declared bounds with a per-district tilt, stored fixed-point (``round(value × 10^scale)``).
Datasets the demo knows (:mod:`broker.demo.profiles`) get nicer per-district patterns for the fields they
name; a profile that no longer matches the declaration (renamed field, changed categories) falls back to
the generic draw for that field, so a policy change never breaks the demo.

Each citizen's district is the same on all their rows, so district is a citizen-level group key (DESIGN §5:
each citizen contributes to one group).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from broker.demo.timestamps import US_PER_DAY, US_PER_SECOND
from broker.policy.schema import Dataset, Field, FieldType

WINDOW_DAYS = 90
DISTRICT_DOMAIN = "districts"
GENERIC_HOURS = np.array([0, 0, 0, 0, 0, 0, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 1, 1, 0], dtype=float)


@dataclass
class RecordContext:
    """What a field generator sees: the rows being drawn and the citizens they belong to."""

    rng: np.random.Generator
    dataset: Dataset
    citizens: int                  # citizens in the batch
    owner: np.ndarray              # citizen index of each row
    rank: np.ndarray               # 0, 1, 2 ... for each citizen's successive rows
    district: np.ndarray           # the owner's district index, per row
    home: np.ndarray               # district index of each citizen of the batch
    districts: list[str]
    age: np.ndarray                # the owner's age, per row
    times: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    values: dict[str, np.ndarray] = field(default_factory=dict)   # numeric fields drawn so far, natural units
    picks: dict[str, np.ndarray] = field(default_factory=dict)    # category fields drawn so far, indices
    choices: dict[str, list[str]] = field(default_factory=dict)   # the choices behind each pick

    @property
    def rows(self) -> int:
        return self.owner.size

    def per_citizen(self, draws: np.ndarray) -> np.ndarray:
        """Spread one draw per citizen of the batch onto that citizen's rows (a stable attribute)."""
        return draws[self.owner]

    def month(self) -> np.ndarray:
        """Calendar month (1-12) of each row's instant."""
        days = (self.times // US_PER_DAY).astype("datetime64[D]")
        return (days.astype("datetime64[M]").astype(np.int64) % 12) + 1

    def weekend(self) -> np.ndarray:
        return ((self.times // US_PER_DAY + 3) % 7) >= 5  # 1970-01-01 was a Thursday

    def lognormal(self, sigma: float, size: int | None = None) -> np.ndarray:
        return self.rng.lognormal(0.0, sigma, size=self.rows if size is None else size)


# A field generator returns natural-unit floats for a numeric field, indices into ``choices`` for a category
# field, or None to leave the field to the generic draw.
FieldGenerator = Callable[[RecordContext, Field, list[str]], np.ndarray | None]


def field_choices(dataset_field: Field, domains: dict[str, list[str]]) -> list[str]:
    if dataset_field.categories:
        return list(dataset_field.categories)
    return list(domains.get(dataset_field.domain or "", []))


def weights_by_name(choices: list[str], table: dict[str, float]) -> np.ndarray | None:
    """Weights for ``choices`` from a table keyed by name; None when the table knows none of them.

    A choice the table does not know (the policy added it later) gets a fifth of the smallest known weight.
    """
    known = [table[c] for c in choices if c in table]
    if not known:
        return None
    floor = min(known) / 5
    weights = np.array([table.get(c, floor) for c in choices], dtype=float)
    total = weights.sum()
    return weights / total if total > 0 else None


def draw_by_row(rng: np.random.Generator, probabilities: np.ndarray, row_class: np.ndarray) -> np.ndarray:
    """Index drawn per row from ``probabilities[row_class[i]]`` (a class × choice matrix)."""
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative[:, -1] = 1.0
    u = rng.random(row_class.size)
    return (u[:, None] > cumulative[row_class]).sum(axis=1)


def district_tilt(districts: list[str]) -> np.ndarray:
    """A fixed, gentle per-district multiplier (0.85-1.15) for fields the demo knows nothing about."""
    return 0.85 + 0.3 * ((np.arange(max(len(districts), 1)) * 0.618034) % 1.0)


def generic_numeric(ctx: RecordContext, dataset_field: Field) -> np.ndarray:
    lower, upper = float(dataset_field.lower or 0.0), float(dataset_field.upper or 1.0)
    typical = lower + 0.25 * (upper - lower)
    per_citizen = ctx.per_citizen(ctx.rng.lognormal(0.0, 0.25, size=ctx.citizens))
    return lower + (typical - lower) * district_tilt(ctx.districts)[ctx.district] * per_citizen * ctx.lognormal(0.4)


def generic_category(ctx: RecordContext, dataset_field: Field, choices: list[str]) -> np.ndarray:
    if dataset_field.domain == DISTRICT_DOMAIN and ctx.districts:
        position = {name: i for i, name in enumerate(choices)}
        mapping = np.array([position.get(name, 0) for name in ctx.districts])
        return mapping[ctx.district]
    weights = 1.0 / np.arange(1, len(choices) + 1)  # the first declared value is the commonest
    return ctx.rng.choice(len(choices), size=ctx.rows, p=weights / weights.sum())


def daily_instants(ctx: RecordContext, today_us: int) -> np.ndarray:
    """One reading a day, on consecutive days from a random start (a meter or sensor's daily summary)."""
    start = ctx.per_citizen(ctx.rng.integers(0, WINDOW_DAYS, size=ctx.citizens))
    offset = (start + ctx.rank) % WINDOW_DAYS
    return today_us - (offset + 1) * US_PER_DAY


def timed_instants(ctx: RecordContext, today_us: int, hours: np.ndarray) -> np.ndarray:
    """Instants on random past days, at hours drawn from ``hours`` (24 weights)."""
    day = ctx.rng.integers(1, WINDOW_DAYS + 1, size=ctx.rows)
    hour = ctx.rng.choice(24, size=ctx.rows, p=hours / hours.sum())
    second = ctx.rng.integers(0, 3600, size=ctx.rows)
    return today_us - day * US_PER_DAY + (hour * 3600 + second) * US_PER_SECOND


def to_fixed(dataset_field: Field, values: np.ndarray) -> np.ndarray:
    """Clamp to the declared bounds, then ``round(value × 10^scale)`` as the vault stores it."""
    clipped = np.clip(values, dataset_field.lower, dataset_field.upper)
    return np.rint(clipped * 10**dataset_field.scale).astype(np.int64)


def draw_fields(ctx: RecordContext, domains: dict[str, list[str]],
                generators: dict[str, FieldGenerator]) -> dict[str, np.ndarray]:
    """Every non-time field: the profile's generators first (in their order, later ones may read earlier
    ones), then the generic draw for whatever is left. Returns fixed-point ints or category indices."""
    declared = {f.name: f for f in ctx.dataset.fields if f.name != ctx.dataset.time_field}
    out: dict[str, np.ndarray] = {}
    order = [name for name in generators if name in declared] + [n for n in declared if n not in generators]
    for name in order:
        dataset_field = declared[name]
        generator = generators.get(name)
        if dataset_field.type is FieldType.category:
            choices = field_choices(dataset_field, domains)
            if not choices:
                raise ValueError(f"{ctx.dataset.id}.{name}: domain {dataset_field.domain!r} is not declared")
            picked = generator(ctx, dataset_field, choices) if generator else None
            if picked is None or picked.size != ctx.rows or picked.min(initial=0) < 0 or \
                    picked.max(initial=0) >= len(choices):
                picked = generic_category(ctx, dataset_field, choices)
            ctx.picks[name], ctx.choices[name] = picked, choices
            out[name] = picked
        elif dataset_field.type in (FieldType.integer, FieldType.decimal):
            value = generator(ctx, dataset_field, []) if generator else None
            if value is None or value.size != ctx.rows:
                value = generic_numeric(ctx, dataset_field)
            ctx.values[name] = value
            out[name] = to_fixed(dataset_field, value)
        else:  # a second timestamp field: some moment in the same window
            out[name] = timed_instants(ctx, int(ctx.times.max(initial=0) // US_PER_DAY + 1) * US_PER_DAY,
                                       GENERIC_HOURS)
    return out


# -- how many rows, and the rows themselves ------------------------------------------------------------------
PARTICIPATION_CONSENTING = 0.85   # citizens who agreed to a purpose using the dataset mostly have data in it
PARTICIPATION_PUBLIC_TASK = 0.35  # data a public-task purpose uses is collected without consent
PARTICIPATION_OTHER = 0.1
MAX_EVENTS = 400


def record_counts(rng: np.random.Generator, *, age: np.ndarray, consenting: np.ndarray, public_task: bool,
                  minimum_age: int, expected_rows: float, daily: bool) -> np.ndarray:
    """Rows per citizen for one dataset: who takes part, then a Poisson count with the expected total."""
    chance = np.where(consenting, PARTICIPATION_CONSENTING,
                      PARTICIPATION_PUBLIC_TASK if public_task else PARTICIPATION_OTHER)
    takes_part = (rng.random(age.size) < chance) & (age >= minimum_age)
    counts = rng.poisson(expected_rows / max(int(takes_part.sum()), 1), size=age.size)
    counts = np.clip(counts, 1, WINDOW_DAYS if daily else MAX_EVENTS)
    return np.where(takes_part, counts, 0)


def vault_columns(dataset: Dataset) -> tuple[str, ...]:
    return ("pseudonym", "batch_id", *(f.name for f in dataset.fields))


def dataset_rows(rng: np.random.Generator, dataset: Dataset, *, counts: np.ndarray, pseudonyms: np.ndarray,
                 home: np.ndarray, age: np.ndarray, districts: list[str], domains: dict[str, list[str]],
                 today_us: int, batch_id: str | None, storage_instants: Callable[[np.ndarray], list[str]],
                 generators: dict[str, FieldGenerator], daily: bool, hours: np.ndarray | None) -> list[tuple]:
    """The rows of one dataset for one batch of citizens, in :func:`vault_columns` order, ready to write."""
    owner = np.repeat(np.arange(counts.size), counts)
    if owner.size == 0:
        return []
    starts = np.cumsum(counts) - counts
    ctx = RecordContext(rng=rng, dataset=dataset, citizens=counts.size, owner=owner,
                        rank=np.arange(owner.size) - np.repeat(starts, counts), district=home[owner], home=home,
                        districts=districts, age=age[owner])
    ctx.times = daily_instants(ctx, today_us) if daily else timed_instants(
        ctx, today_us, hours if hours is not None else GENERIC_HOURS)
    drawn = draw_fields(ctx, domains, generators)
    columns: list[list] = [pseudonyms[owner].tolist(), [batch_id] * owner.size]
    for dataset_field in dataset.fields:
        if dataset_field.name == dataset.time_field:
            columns.append(storage_instants(ctx.times))
        elif dataset_field.type is FieldType.timestamp:
            columns.append(storage_instants(drawn[dataset_field.name]))
        elif dataset_field.type is FieldType.category:
            names = np.array(ctx.choices[dataset_field.name], dtype=object)
            columns.append(names[drawn[dataset_field.name]].tolist())
        else:
            columns.append(drawn[dataset_field.name].tolist())
    return list(zip(*columns, strict=True))
