"""Replaying the privacy budgets from the log alone: no budget account ever went over its cap.

Each allowed ``query`` entry charges ε to two accounts (DESIGN §4): the shared one of (purpose, dataset,
period) and the service's own (service, purpose, dataset, period). The entry states what it charged and the
caps in force (see :mod:`broker.audit.actions` for the ``details`` keys), so an auditor with nothing but an
export adds the charges up, account by account, and checks every running sum against the cap of its time.
Where the entry also states the accounts' ``spent`` after the charge, the replay checks that the log's
charges add up to exactly that: a charge the broker made without logging it would show there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from broker.audit import actions

TOLERANCE = 1e-9  # ε are floats summed in a different order by the broker and here


def _number(value: Any) -> float | None:
    # Exact types: JSON yields int and float only, and a bool is no ε. Called four times per query entry
    # by ``audit verify``, so no isinstance chain.
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    return float(value) if kind is int else None


def _over(spent: float, cap: float) -> bool:
    return spent > cap + TOLERANCE * max(1.0, abs(cap))


def _differs(a: float, b: float) -> bool:
    return abs(a - b) > TOLERANCE * max(1.0, abs(a), abs(b))


# (service, purpose, dataset, period, ε charged, per-query cap, per-service cap, total cap, spent as stated)
Charge = tuple[str, str, str, str, float, float, float, float, dict[str, Any] | None]


def charge_of(entry: dict[str, Any]) -> Charge | str | None:
    """What an entry charges (None for anything but an allowed query), or what keeps it from being replayed."""
    if entry.get("action") != actions.QUERY or entry.get("decision") != "allow":
        return None
    details = entry.get("details")
    if not isinstance(details, dict):  # a tampered entry may hold anything here: report it, never crash on it
        details = {}
    actor = entry.get("actor")
    if not isinstance(actor, str):
        actor = ""
    service = details.get("service") or (actor[8:] if actor.startswith("service:") else None)
    purpose, dataset, period = entry.get("purpose"), entry.get("dataset"), details.get("period")
    if not (isinstance(service, str) and isinstance(purpose, str) and isinstance(dataset, str)
            and isinstance(period, str) and service and purpose and dataset and period):
        return "an allowed query without service, purpose, dataset and details.period: its budget cannot be replayed"
    charged = _number(details.get("epsilon_charged", entry.get("epsilon")))
    if charged is None or charged < 0:
        return "an allowed query without a valid ε charged (details.epsilon_charged or epsilon)"
    caps = details.get("caps")
    if not isinstance(caps, dict):
        caps = {}
    per_query, per_service, total = (_number(caps.get("per_query")), _number(caps.get("per_service")),
                                     _number(caps.get("total")))
    if per_query is None or per_service is None or total is None:
        return "an allowed query without details.caps {per_query, per_service, total}"
    stated = details.get("spent")
    return (service, purpose, dataset, period, charged, per_query, per_service, total,
            stated if isinstance(stated, dict) else None)


@dataclass
class BudgetReplay:
    queries: int = 0
    spent: dict[tuple[str, ...], float] = field(default_factory=dict)

    def add(self, entry: dict[str, Any]) -> str | None:
        """Charge one entry; a description of the first thing wrong with it, or None."""
        charge = charge_of(entry)
        return charge if charge is None or isinstance(charge, str) else self.apply(charge)

    def apply(self, charge: Charge) -> str | None:
        service, purpose, dataset, period, charged, per_query, per_service, total, stated = charge
        self.queries += 1
        if charged > per_query and _over(charged, per_query):
            return f"ε {charged} charged in one query, over the per-query cap {per_query}"
        spent = self.spent
        for name, key, cap in (("service", (service, purpose, dataset, period), per_service),
                               ("total", (purpose, dataset, period), total)):
            running = spent[key] = spent.get(key, 0.0) + charged
            if running > cap and _over(running, cap):
                return f"budget account {name} {'/'.join(key)} reaches ε {running:.6g}, over its cap {cap}"
            if stated is not None and name in stated:
                claimed = _number(stated[name])
                if claimed is None or _differs(claimed, running):
                    return (f"budget account {name} {'/'.join(key)}: the log's charges add up to ε {running:.6g} "
                            f"but the entry says {stated[name]!r} was spent")
        return None

    @property
    def accounts(self) -> int:
        return len(self.spent)
