"""From exact per-cell totals to the released cells: noise, intervals and suppression (DESIGN §2, §5).

Common to every function here:

* Privacy unit: one citizen with all their records; neighbouring datasets differ by one citizen.
* Why the SQL keeps the sensitivities below (:mod:`broker.privacy.aggregates`): each cohort member becomes
  exactly one row (one cell, one contribution clamped to [L, U]) before anything is summed, so one citizen
  more or less changes one cell's count by at most 1 and its sum by at most max(|L|, |U|), whatever their data.
* Every cell also gets a noisy count; a cell whose noisy count is below the policy's threshold is suppressed
  (value and interval withheld). That reads only released noisy values, so it is post-processing and free.
* Intervals cover the noise only, at 95%: they say nothing of the bias clamping adds.
* Where a statistic needs two measurements, ε is split in two (the count gets ``ε // 2`` micro-ε, the value the
  rest) and they compose sequentially to ε.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.policy.schema import Statistic
from broker.privacy.aggregates import Totals, below_above
from broker.privacy.epsilon import from_micro
from broker.privacy.mechanisms import (
    ALPHA,
    NoisyVector,
    laplace_accuracy,
    laplace_vector,
    noisy_min_index,
    quantile_scoring,
)
from broker.privacy.plan import QueryPlan


@dataclass(frozen=True)
class Cell:
    group: dict[str, str]
    value: float | int | None
    ci95: tuple[float, float] | None
    suppressed: bool

    def as_json(self) -> dict[str, Any]:
        return {"group": self.group, "value": self.value,
                "ci95": list(self.ci95) if self.ci95 is not None else None, "suppressed": self.suppressed}


def split(epsilon_micro: int) -> tuple[int, int]:
    """(count's share, value's share) of ε, in micro-ε, summing to ε exactly."""
    count = epsilon_micro // 2
    return count, epsilon_micro - count


def release(plan: QueryPlan, totals: Totals, epsilon_micro: int, threshold: int) -> list[Cell]:
    if plan.statistic in (Statistic.count, Statistic.histogram):
        return release_counts(plan, totals, epsilon_micro, threshold)
    if plan.statistic is Statistic.sum:
        return release_sums(plan, totals, epsilon_micro, threshold)
    if plan.statistic is Statistic.mean:
        return release_means(plan, totals, epsilon_micro, threshold)
    return release_quantiles(plan, totals, epsilon_micro, threshold)


def value_sensitivity(plan: QueryPlan) -> int:
    """max(|L|, |U|): the most one citizen's clamped contribution moves a cell's sum."""
    if plan.clamp is None:
        raise ValueError("a measured statistic needs clamping bounds")
    low, high = plan.clamp
    return max(abs(low), abs(high))


def release_counts(plan: QueryPlan, totals: Totals, epsilon_micro: int, threshold: int) -> list[Cell]:
    """Count (or histogram): citizens per cell, under ε-DP.

    ε: all of it, on one discrete Laplace vector over every declared cell. Sensitivity: 1 in L1, since a
    citizen counts in exactly one cell (for a histogram the cells include the category of their latest record).
    """
    noisy = laplace_vector(totals.counts, 1, from_micro(epsilon_micro))
    return [_count_cell(plan, i, noisy, threshold) for i in range(len(plan.cells))]


def release_sums(plan: QueryPlan, totals: Totals, epsilon_micro: int, threshold: int) -> list[Cell]:
    """Sum of clamped per-citizen contributions per cell, under ε-DP.

    ε: ``split``: the counts (L1 sensitivity 1) for suppression, the sums (L1 sensitivity max(|L|, |U|):
    one citizen, one cell, one contribution in [L, U]).
    """
    count_eps, sum_eps = split(epsilon_micro)
    counts = laplace_vector(totals.counts, 1, from_micro(count_eps))
    sums = laplace_vector(totals.sums, value_sensitivity(plan), from_micro(sum_eps))
    field = _measure(plan)
    cells = []
    for i in range(len(plan.cells)):
        if counts.values[i] < threshold:
            cells.append(Cell(plan.cell_of(i), None, None, True))
            continue
        value = sums.values[i]
        cells.append(Cell(plan.cell_of(i), field.from_fixed(value),
                          (field.from_fixed(value - sums.accuracy), field.from_fixed(value + sums.accuracy)), False))
    return cells


def release_means(plan: QueryPlan, totals: Totals, epsilon_micro: int, threshold: int) -> list[Cell]:
    """Mean of clamped per-citizen contributions per cell: noisy sum / noisy count, under ε-DP.

    ε: ``split`` between the counts (sensitivity 1) and the sums (sensitivity max(|L|, |U|)); the ratio and
    its clamping to [L, U] are post-processing. Interval: by a union bound, with probability ≥ 95% both the
    sum and the count lie within their own 97.5% intervals, and then the mean lies between the extreme ratios
    of those intervals (cut to [L, U]); when the count's interval reaches 0 the interval is [L, U]. It covers
    the noise, not the bias of clamping.
    """
    count_eps, sum_eps = split(epsilon_micro)
    counts = laplace_vector(totals.counts, 1, from_micro(count_eps))
    sums = laplace_vector(totals.sums, value_sensitivity(plan), from_micro(sum_eps))
    count_halfwidth = laplace_accuracy(counts.scale, ALPHA / 2)
    sum_halfwidth = laplace_accuracy(sums.scale, ALPHA / 2)
    field = _measure(plan)
    low, high = plan.clamp or (0, 0)
    cells = []
    for i in range(len(plan.cells)):
        n, s = counts.values[i], sums.values[i]
        if n < max(threshold, 1):
            cells.append(Cell(plan.cell_of(i), None, None, True))
            continue
        mean = min(max(s / n, low), high)
        interval = mean_interval(s, n, sum_halfwidth, count_halfwidth, low, high)
        cells.append(Cell(plan.cell_of(i), field.from_fixed(mean),
                          (field.from_fixed(interval[0]), field.from_fixed(interval[1])), False))
    return cells


def mean_interval(noisy_sum: int, noisy_count: int, sum_halfwidth: int, count_halfwidth: int, low: int,
                  high: int) -> tuple[float, float]:
    """Where S/N lies when S ∈ noisy_sum ± sum_halfwidth and N ∈ noisy_count ± count_halfwidth, within [L, U]."""
    n_low, n_high = noisy_count - count_halfwidth, noisy_count + count_halfwidth
    if n_low < 1:
        return float(low), float(high)
    ratios = [s / n for s in (noisy_sum - sum_halfwidth, noisy_sum + sum_halfwidth) for n in (n_low, n_high)]
    return min(max(min(ratios), low), high), max(min(max(ratios), high), low)


def release_quantiles(plan: QueryPlan, totals: Totals, epsilon_micro: int, threshold: int) -> list[Cell]:
    """The ``plan.quantile`` quantile of per-citizen contributions per cell, among the declared candidates.

    ε: ``split`` between the counts (sensitivity 1, for suppression) and the selection: OpenDP's quantile
    scores (computed from per-bucket citizen counts, equal to ``make_quantile_score_candidates`` on the
    per-citizen values) and its report-noisy-max. One citizen moves every score of their own cell by at most
    OpenDP's score sensitivity and no other cell's scores, so the per-cell selections compose in parallel to
    the value's share of ε. No interval is given (ci95 is null): the mechanism has no closed-form one.
    """
    count_eps, select_eps = split(epsilon_micro)
    counts = laplace_vector(totals.counts, 1, from_micro(count_eps))
    scoring = quantile_scoring(plan.candidates, float(plan.quantile or 0.5))
    field = _measure(plan)
    cells = []
    for i in range(len(plan.cells)):
        if counts.values[i] < threshold:
            cells.append(Cell(plan.cell_of(i), None, None, True))
            continue
        below, above = below_above(totals.buckets[i], len(plan.candidates))
        chosen = noisy_min_index(scoring.scores(below, above), scoring.sensitivity, from_micro(select_eps))
        cells.append(Cell(plan.cell_of(i), field.from_fixed(plan.candidates[chosen]), None, False))
    return cells


def _count_cell(plan: QueryPlan, index: int, noisy: NoisyVector, threshold: int) -> Cell:
    value = noisy.values[index]
    if value < threshold:
        return Cell(plan.cell_of(index), None, None, True)
    return Cell(plan.cell_of(index), value, (value - noisy.accuracy, value + noisy.accuracy), False)


def _measure(plan: QueryPlan) -> Any:
    if plan.measure is None:
        raise ValueError("this statistic needs a numeric field")
    return plan.measure
