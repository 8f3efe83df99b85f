"""Shapes the pages show, built from policy objects and consent statuses (no database, no HTTP)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from broker.consent.states import ConsentState, ConsentStatus, NotCounting
from broker.identity.selfservice import WardView
from broker.policy.schema import Policy, Purpose, ReturnKind

MONTHS = {"fr": ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."],
          "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]}


@dataclass(frozen=True)
class PurposeCard:
    purpose: Purpose
    status: ConsentStatus
    datasets: list[tuple[str, list[str]]]  # (dataset title in both languages via policy, fields)

    @property
    def needs_answer(self) -> bool:
        return self.status.takes_consent and self.status.state is ConsentState.requested

    @property
    def version_changed(self) -> bool:
        return self.status.reason is NotCounting.version_changed

    @property
    def no_state(self) -> str:
        """The "no" that applies: withdrawing a consent once given, refusing one never given."""
        record = self.status.record
        given_before = record is not None and record.state in (ConsentState.given.value, ConsentState.paused.value)
        return ConsentState.withdrawn.value if given_before else ConsentState.refused.value

    @property
    def no_done(self) -> bool:
        """The citizen already said no: a second no would change nothing."""
        return self.status.state in (ConsentState.refused, ConsentState.withdrawn)


def purpose_cards(policy: Policy, statuses: list[ConsentStatus]) -> list[PurposeCard]:
    cards = []
    for status in statuses:
        purpose = policy.purpose(status.purpose_id)
        if purpose is None:
            continue
        datasets = []
        for use in purpose.datasets:
            dataset = policy.dataset(use.dataset)
            datasets.append((dataset.title if dataset else use.dataset, list(use.fields)))
        cards.append(PurposeCard(purpose, status, datasets))
    return cards


@dataclass(frozen=True)
class Promised:
    purpose: Purpose
    kind: str
    cents: int


def promised_value(cards: list[PurposeCard]) -> list[Promised]:
    """Money and vouchers promised per year by the purposes whose consent counts now."""
    out = []
    for card in cards:
        if not (card.status.counts and card.status.takes_consent):
            continue
        for ret in card.purpose.returns:
            if ret.kind in (ReturnKind.money, ReturnKind.voucher) and ret.amount_cents:
                out.append(Promised(card.purpose, ret.kind.value, ret.amount_cents))
    return out


@dataclass(frozen=True)
class Bar:
    label: str
    value: float


def monthly(timestamps: list[str | None], lang: str, months: int = 12) -> list[Bar]:
    """Counts per calendar month over the last ``months`` months that have any, oldest first."""
    counted: Counter[tuple[int, int]] = Counter()
    for stamp in timestamps:
        if not stamp:
            continue
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        counted[(moment.year, moment.month)] += 1
    keys = sorted(counted)[-months:]
    return [Bar(f"{MONTHS[lang][m - 1]} {y}", counted[(y, m)]) for y, m in keys]


def _month_label(month: str, lang: str) -> str:
    year, _, number = month.partition("-")
    return f"{MONTHS[lang][int(number) - 1]} {year}" if number.isdigit() else month


def earned_by_month(ledger: dict[str, Any], lang: str) -> list[Bar]:
    """Money and vouchers earned per month, from the exchange's contribution ledger (GET /v1/me/value)."""
    return [Bar(_month_label(m["month"], lang), float(sum(Decimal(v) for v in m["earned"].values())))
            for m in ledger["months"]]


def releases_by_month(ledger: dict[str, Any], lang: str) -> list[Bar]:
    return [Bar(_month_label(m["month"], lang), m["releases"]) for m in ledger["months"]]


def promised_chart(cards: list[PurposeCard], lang: str) -> list[Bar]:
    return [Bar(getattr(p.purpose.title, lang), p.cents / 100) for p in promised_value(cards)]


@dataclass(frozen=True)
class WardSummary:
    """A line of the guardian's dashboard: the ward, and how many of their consents count now."""

    ward_ref: str
    name: str
    age_band: str
    active: int

    @classmethod
    def of(cls, ward: WardView) -> WardSummary:
        return cls(ward.ward_ref, ward.name, ward.age_band,
                   sum(1 for s in ward.consents if s.counts and s.takes_consent))
