"""Pydantic models of the policy files (DESIGN §4).

Strict on purpose: an unknown key is an error, never silently ignored, because a misspelt
``special_categroy: true`` must not quietly turn explicit consent off. Cross-references (a purpose naming a
dataset, a service naming a purpose) span files, so :mod:`broker.policy.loader` checks them after each file
validates alone.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic import Field as PField

IDENTIFIER_PATTERN = r"^[a-z][a-z0-9_-]{1,62}$"
FIELD_NAME_PATTERN = r"^[a-z][a-z0-9_]{1,47}$"
Identifier = Annotated[str, PField(pattern=IDENTIFIER_PATTERN)]
#: A field is a column of its vault table and names the summary's (``latest__<name>``, ``sum__<name>``):
#: no '-', which SQL would read as a minus, and short enough for PostgreSQL's 63-character names.
FieldName = Annotated[str, PField(pattern=FIELD_NAME_PATTERN)]

# GDPR legal bases, as eu-gdpr codes in the DPV legal-basis vocabulary.
LEGAL_BASES = {
    "eu-gdpr:A6-1-a": "consent",
    "eu-gdpr:A6-1-b": "contract",
    "eu-gdpr:A6-1-c": "legal obligation",
    "eu-gdpr:A6-1-d": "vital interests",
    "eu-gdpr:A6-1-e": "public task",
    "eu-gdpr:A6-1-f": "legitimate interests",
    "eu-gdpr:A9-2-a": "explicit consent (special categories)",
    "eu-gdpr:A9-2-g": "substantial public interest",
    "eu-gdpr:A9-2-i": "public health",
    "eu-gdpr:A9-2-j": "research and statistics",
}
CONSENT_BASES = frozenset({"eu-gdpr:A6-1-a", "eu-gdpr:A9-2-a"})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Strict):
    """A text in both portal languages."""

    fr: str = PField(min_length=1)
    en: str = PField(min_length=1)


class Statistic(StrEnum):
    count = "count"
    sum = "sum"
    mean = "mean"
    histogram = "histogram"
    quantile = "quantile"


class ReturnKind(StrEnum):
    money = "money"
    voucher = "voucher"
    service_improvement = "service_improvement"
    safety = "safety"
    common_good = "common_good"


#: Kinds paid out in money or in kind, with an amount; the others are returns to the community.
PAID_KINDS = frozenset({ReturnKind.money, ReturnKind.voucher})


def _exact_decimal(value: object) -> object:
    # A YAML float (0.05) is binary and inexact; an amount is written as a quoted decimal string ("0.05").
    if isinstance(value, float):
        raise ValueError("write money amounts as quoted decimal strings, e.g. \"0.05\"")
    return value


Money = Annotated[Decimal, PField(ge=0, max_digits=12, decimal_places=4)]


class Return(Strict):
    """What a citizen gets back for contributing to a purpose.

    ``amount`` is what the contribution ledger pays (:mod:`broker.exchange.contributions`): an exact decimal
    per release the citizen's data contributed to, in ``currency``. ``amount_cents`` is the indicative yearly
    figure the notices print (kept as it was, so existing notices keep their hashes).
    """

    kind: ReturnKind
    description: Text
    amount_cents: int | None = PField(default=None, ge=0, description="Per year of consent, money/voucher.")
    amount: Money | None = PField(default=None, description="Paid per release contributed to, money/voucher.")
    currency: Literal["EUR"] = "EUR"

    @field_validator("amount", mode="before")
    @classmethod
    def _no_float(cls, value: object) -> object:
        return _exact_decimal(value)

    @model_validator(mode="after")
    def _amount_for_money(self) -> Return:
        if self.kind in PAID_KINDS and self.amount_cents is None:
            raise ValueError("a money or voucher return needs amount_cents")
        if self.kind not in PAID_KINDS and self.amount is not None:
            raise ValueError("only a money or voucher return has an amount")
        return self


class RunningCost(Strict):
    """What running a purpose costs the city per year: the cost side of its cost-benefit ratio."""

    amount: Money
    currency: Literal["EUR"] = "EUR"
    period: Literal["year"] = "year"
    description: Text | None = None

    @field_validator("amount", mode="before")
    @classmethod
    def _no_float(cls, value: object) -> object:
        return _exact_decimal(value)


class Budget(Strict):
    """Privacy budgets in ε (pure DP, sequential composition) over one period."""

    per_query_epsilon: float = PField(gt=0, le=10)
    per_service_epsilon: float = PField(gt=0, description="Cap per (service, purpose, dataset, period).")
    total_epsilon: float = PField(gt=0, description="Cap per (purpose, dataset, period), all services.")
    period: Literal["month", "quarter", "year"] = "year"

    @model_validator(mode="after")
    def _ordered(self) -> Budget:
        if self.per_query_epsilon > self.per_service_epsilon:
            raise ValueError("per_query_epsilon exceeds per_service_epsilon")
        if self.per_service_epsilon > self.total_epsilon:
            raise ValueError("per_service_epsilon exceeds total_epsilon")
        return self


class DatasetUse(Strict):
    dataset: Identifier
    fields: list[Identifier] = PField(min_length=1)
    statistics: list[Statistic] = PField(min_length=1)
    group_by: list[Identifier] = PField(default_factory=list)


class Purpose(Strict):
    id: Identifier
    version: int = PField(ge=1, description="Bump on any material change: earlier consents stop counting.")
    status: Literal["active", "suspended", "retired"] = "active"
    controller: str = PField(min_length=1, description="The department answerable for the processing.")
    title: Text
    description: Text
    dpv_purpose: str = PField(pattern=r"^dpv:[A-Za-z]+$", description="A DPV purpose, e.g. dpv:ResearchAndDevelopment")
    legal_basis: str
    special_category: bool = False
    special_category_kinds: list[str] = PField(default_factory=list, description="e.g. dpv:Health")
    minimum_age: int | None = PField(default=None, ge=0, le=18)
    recipients: list[str] = PField(min_length=1)
    automated_decision: bool = False
    consent_validity_months: int = PField(default=12, ge=1, le=60)
    retention_months: int = PField(ge=1, le=240)
    withdrawal: Text = PField(description="How to withdraw, in plain words.")
    rights: Text = PField(description="Rights information shown with the notice.")
    datasets: list[DatasetUse] = PField(min_length=1)
    budget: Budget
    returns: list[Return] = PField(default_factory=list)
    running_cost: RunningCost | None = None
    publish_open_data: bool = False

    @field_validator("legal_basis")
    @classmethod
    def _known_basis(cls, value: str) -> str:
        if value not in LEGAL_BASES:
            raise ValueError(f"unknown legal basis {value!r}; expected one of {', '.join(sorted(LEGAL_BASES))}")
        return value

    @model_validator(mode="after")
    def _special_category_rules(self) -> Purpose:
        if self.special_category and self.legal_basis == "eu-gdpr:A6-1-a":
            raise ValueError("a special-category purpose needs an Art 9(2) basis such as eu-gdpr:A9-2-a")
        if not self.special_category and self.legal_basis.startswith("eu-gdpr:A9"):
            raise ValueError("an Art 9(2) legal basis is only for special-category purposes")
        # The kinds are what the notice and the Art 30 register name; a flag without them says too little.
        if self.special_category and not self.special_category_kinds:
            raise ValueError("a special-category purpose needs special_category_kinds, e.g. [dpv:Health]")
        if self.special_category_kinds and not self.special_category:
            raise ValueError("special_category_kinds is set but special_category is false")
        # Issue 6: citizens are asked to give, so they are told what comes back; a public task may declare none.
        if self.takes_consent and not self.returns:
            raise ValueError("a purpose based on consent must declare at least one return")
        return self

    @property
    def takes_consent(self) -> bool:
        """Only purposes whose legal basis is consent are ever served through consent."""
        return self.legal_basis in CONSENT_BASES

    @property
    def dataset_ids(self) -> list[str]:
        return [use.dataset for use in self.datasets]

    def use_of(self, dataset_id: str) -> DatasetUse | None:
        return next((u for u in self.datasets if u.dataset == dataset_id), None)


class FieldType(StrEnum):
    integer = "integer"
    decimal = "decimal"
    category = "category"
    timestamp = "timestamp"


class Contribution(StrEnum):
    """What one citizen contributes to a statistic of a numeric field: the mean or the sum of their own
    records in the query's window. Either way it is then clamped to the field's [lower, upper], so for
    ``sum`` the bounds are those of a citizen's total, not of one record."""

    mean = "mean"
    sum = "sum"


#: Quantile candidates when a numeric field declares none: this many evenly spaced steps of [lower, upper].
DEFAULT_QUANTILE_STEPS = 100
MAX_QUANTILE_CANDIDATES = 1000


class Field(Strict):
    """One column of a dataset.

    Numbers are stored as fixed-point integers (value × 10^scale), so sums in SQL are exact and the
    sensitivity of a sum is an integer.
    """

    name: FieldName
    type: FieldType
    description: Text
    unit: str | None = None
    scale: int = PField(default=0, ge=0, le=6, description="Decimal places kept in the fixed-point integer.")
    lower: float | None = None
    upper: float | None = None
    categories: list[str] | None = None
    domain: str | None = PField(default=None, description="Name of a broker-wide domain, e.g. districts.")
    contribution: Contribution | None = PField(
        default=None, description="Numeric fields: each citizen contributes the mean (default) or the sum of "
                                  "their records in the window, clamped to [lower, upper].")
    quantile_candidates: list[float] | None = PField(
        default=None, max_length=MAX_QUANTILE_CANDIDATES,
        description="Numeric fields: the values a DP quantile may answer, increasing, within [lower, upper]; "
                    f"default {DEFAULT_QUANTILE_STEPS} even steps of the bounds.")

    @model_validator(mode="after")
    def _shape(self) -> Field:
        numeric = self.type in (FieldType.integer, FieldType.decimal)
        if numeric:
            if self.lower is None or self.upper is None:
                raise ValueError("a numeric field needs lower and upper bounds")
            if self.lower >= self.upper:
                raise ValueError("lower must be below upper")
            if self.categories or self.domain:
                raise ValueError("a numeric field takes no categories or domain")
            if self.type is FieldType.integer and self.scale:
                raise ValueError("an integer field has scale 0")
            self._check_candidates()
        else:
            if self.contribution is not None or self.quantile_candidates is not None:
                raise ValueError("only a numeric field takes contribution or quantile_candidates")
            if self.type is FieldType.category:
                if bool(self.categories) == bool(self.domain):
                    raise ValueError("a category field needs exactly one of categories or domain")
                if self.lower is not None or self.upper is not None:
                    raise ValueError("a category field takes no bounds")
        return self

    def _check_candidates(self) -> None:
        candidates = self.quantile_candidates
        if candidates is None:
            return
        if not candidates:
            raise ValueError("quantile_candidates is empty")
        fixed = [self.to_fixed(c) for c in candidates]
        if any(self.from_fixed(f) != c for f, c in zip(fixed, candidates, strict=True)):
            raise ValueError(f"quantile_candidates need at most {self.scale} decimal places")
        if any(b <= a for a, b in pairwise(fixed)):
            raise ValueError("quantile_candidates must be strictly increasing")
        low, high = self.fixed_bounds()
        if fixed[0] < low or fixed[-1] > high:
            raise ValueError("quantile_candidates must lie within [lower, upper]")

    @property
    def per_citizen(self) -> Contribution:
        return self.contribution or Contribution.mean

    def fixed_bounds(self) -> tuple[int, int]:
        """[lower, upper] in the stored fixed-point units; each citizen's contribution is clamped to them."""
        if self.lower is None or self.upper is None:
            raise ValueError(f"field {self.name} has no bounds")
        return self.to_fixed(self.lower), self.to_fixed(self.upper)

    def fixed_candidates(self) -> list[int]:
        """Quantile candidates in fixed-point units: the declared ones, or an even grid of the bounds."""
        if self.quantile_candidates is not None:
            return [self.to_fixed(c) for c in self.quantile_candidates]
        low, high = self.fixed_bounds()
        grid = {low + (high - low) * i // DEFAULT_QUANTILE_STEPS for i in range(DEFAULT_QUANTILE_STEPS + 1)}
        return sorted(grid)

    def to_fixed(self, value: float | Decimal) -> int:
        """The fixed-point integer of a value, computed on its decimal text rather than in float arithmetic,
        where ``round(1.005 * 100)`` gives 100 although the value written is 100.5 hundredths."""
        return int(Decimal(str(value)).scaleb(self.scale).to_integral_value(ROUND_HALF_EVEN))

    def from_fixed(self, value: int) -> float:
        return value / 10**self.scale


class Dataset(Strict):
    id: Identifier
    title: Text
    description: Text
    provider: Identifier = PField(description="The service id of the data provider that ingests it.")
    time_field: FieldName
    fields: list[Field] = PField(min_length=1)
    group_by: list[FieldName] = PField(default_factory=list, description="Public group-by keys.")
    retention_months: int = PField(ge=1, le=240)

    @model_validator(mode="after")
    def _fields_consistent(self) -> Dataset:
        names = [f.name for f in self.fields]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate field names: {', '.join(duplicates)}")
        reserved = {"id", "pseudonym", "batch_id", "ingested_at"} & set(names)
        if reserved:
            raise ValueError(f"reserved field names: {', '.join(sorted(reserved))}")
        time = self.field(self.time_field)
        if time is None or time.type is not FieldType.timestamp:
            raise ValueError(f"time_field {self.time_field!r} must name a timestamp field")
        for key in self.group_by:
            f = self.field(key)
            if f is None or f.type is not FieldType.category:
                raise ValueError(f"group_by key {key!r} must name a category field")
        return self

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


class Service(Strict):
    id: Identifier
    name: str = PField(min_length=1)
    department: str = PField(min_length=1)
    kind: Literal["service", "provider"] = "service"
    purposes: list[Identifier] = PField(default_factory=list)
    ingest: list[Identifier] = PField(default_factory=list, description="Datasets a provider may write.")
    auth_method: Literal["private_key_jwt", "client_secret_basic"] = "private_key_jwt"

    @model_validator(mode="after")
    def _kind_consistent(self) -> Service:
        if self.kind == "provider" and not self.ingest:
            raise ValueError("a provider needs at least one dataset under ingest")
        if self.kind == "service" and self.ingest:
            raise ValueError("only a provider may ingest")
        # Writing records and reading statistics stay with separate clients, so an ingest credential can
        # never also be used to query what it wrote.
        if self.kind == "provider" and self.purposes:
            raise ValueError("a provider only ingests; list purposes on a service")
        return self


class Controller(Strict):
    name: str
    address: str
    contact_email: str
    dpo_email: str
    supervisory_authority: str


class BrokerRules(Strict):
    controller: Controller
    jurisdiction: str = PField(pattern=r"^[A-Z]{2}$")
    default_minimum_age: int = PField(default=15, ge=13, le=18, description="France's digital age of consent.")
    citizen_privacy_cap: float = PField(gt=0, description="Default personal cap, ε per year.")
    suppression_threshold: int = PField(ge=0, description="Noisy counts below this are suppressed.")
    domains: dict[Identifier, list[str]] = PField(default_factory=dict, description="Named value domains.")


class Policy(Strict):
    """All policy files together; build it with ``load_policy``, which checks the cross-references."""

    broker: BrokerRules
    purposes: list[Purpose]
    datasets: list[Dataset]
    services: list[Service]

    def purpose(self, purpose_id: str) -> Purpose | None:
        return next((p for p in self.purposes if p.id == purpose_id), None)

    def dataset(self, dataset_id: str) -> Dataset | None:
        return next((d for d in self.datasets if d.id == dataset_id), None)

    def service(self, service_id: str) -> Service | None:
        return next((s for s in self.services if s.id == service_id), None)

    def minimum_age(self, purpose: Purpose) -> int:
        return purpose.minimum_age if purpose.minimum_age is not None else self.broker.default_minimum_age

    def categories(self, field: Field) -> list[str]:
        """The full declared value list of a category field: its own categories or its named domain."""
        if field.categories:
            return list(field.categories)
        return list(self.broker.domains.get(field.domain or "", []))
