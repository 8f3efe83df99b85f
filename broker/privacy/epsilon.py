"""ε in integer micro-units (ε × 10^6), so that budget sums and comparisons are exact in SQL and in Python.

Policies and requests speak in ε; accounts, counters and releases store micro-ε. A request's ε must be a whole
number of micro-ε, so nothing is rounded away between what was asked and what is charged.
"""

from __future__ import annotations

MICRO = 1_000_000


def to_micro(epsilon: float) -> int:
    """``epsilon`` in micro-ε, rounded to the nearest unit (for policy caps, which are decimals)."""
    return round(epsilon * MICRO)


def from_micro(micro: int) -> float:
    return micro / MICRO


def is_whole_micro(epsilon: float) -> bool:
    """Whether ``epsilon`` is a whole number of micro-ε, up to float representation."""
    return abs(epsilon * MICRO - round(epsilon * MICRO)) < 1e-6
