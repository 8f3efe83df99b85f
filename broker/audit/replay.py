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
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from broker.audit import actions

TOLERANCE = 1e-9  # ε are floats summed in a different order by the broker and here


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _over(spent: float, cap: float) -> bool:
    return spent > cap + TOLERANCE * max(1.0, abs(cap))


def _differs(a: float, b: float) -> bool:
    return abs(a - b) > TOLERANCE * max(1.0, abs(a), abs(b))


@dataclass
class BudgetReplay:
    queries: int = 0
    spent: dict[tuple[str, ...], float] = field(default_factory=lambda: defaultdict(float))

    def add(self, entry: dict[str, Any]) -> str | None:
        """Charge one entry; a description of the first thing wrong with it, or None."""
        if entry.get("action") != actions.QUERY or entry.get("decision") != "allow":
            return None
        details = entry.get("details") or {}
        actor = str(entry.get("actor", ""))
        service = details.get("service") or (actor.removeprefix("service:") if actor.startswith("service:") else None)
        purpose, dataset, period = entry.get("purpose"), entry.get("dataset"), details.get("period")
        if not all(isinstance(v, str) and v for v in (service, purpose, dataset, period)):
            return "an allowed query without service, purpose, dataset and details.period: its budget cannot be replayed"
        charged = _number(details.get("epsilon_charged", entry.get("epsilon")))
        caps = details.get("caps") or {}
        per_query, per_service, total = (_number(caps.get(k)) for k in ("per_query", "per_service", "total"))
        if charged is None or charged < 0:
            return "an allowed query without a valid ε charged (details.epsilon_charged or epsilon)"
        if per_query is None or per_service is None or total is None:
            return "an allowed query without details.caps {per_query, per_service, total}"
        self.queries += 1
        if _over(charged, per_query):
            return f"ε {charged} charged in one query, over the per-query cap {per_query}"
        accounts = (("service", (str(service), str(purpose), str(dataset), str(period)), per_service),
                    ("total", (str(purpose), str(dataset), str(period)), total))
        stated = details.get("spent") or {}
        for name, key, cap in accounts:
            self.spent[key] += charged
            running = self.spent[key]
            label = "/".join(key)
            if _over(running, cap):
                return f"budget account {name} {label} reaches ε {running:.6g}, over its cap {cap}"
            claimed = _number(stated.get(name)) if name in stated else None
            if name in stated and (claimed is None or _differs(claimed, running)):
                return (f"budget account {name} {label}: the log's charges add up to ε {running:.6g} but the entry "
                        f"says {stated.get(name)!r} was spent")
        return None

    @property
    def accounts(self) -> int:
        return len(self.spent)
