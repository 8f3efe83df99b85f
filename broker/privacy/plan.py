"""What one allowed query computes: the dataset, the cells, the measure, the clamp and the window.

Built from the request and the policy after :func:`broker.policy.decide.decide` allowed it. Cells are the
cross product of the declared values of the group-by keys (and, for a histogram, of its category field), in
declared order: every declared cell is released, zero-filled, so no cell's presence reveals anyone.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from broker.policy.decide import QuerySpec, TimeWindow
from broker.policy.schema import Contribution, Dataset, Field, Policy, Statistic

#: The quantile answered when the request names none: the median.
DEFAULT_QUANTILE = 0.5


@dataclass(frozen=True)
class GroupKey:
    name: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class QueryPlan:
    dataset: Dataset
    statistic: Statistic
    keys: tuple[GroupKey, ...]
    window: TimeWindow
    measure: Field | None = None      # the numeric field of sum, mean and quantile
    clamp: tuple[int, int] | None = None
    candidates: tuple[int, ...] = ()  # quantile candidates, fixed-point, increasing
    quantile: float | None = None

    @property
    def contribution(self) -> Contribution:
        return self.measure.per_citizen if self.measure is not None else Contribution.mean

    @property
    def cells(self) -> list[tuple[str, ...]]:
        return list(itertools.product(*(k.values for k in self.keys)))

    def cell_of(self, index: int) -> dict[str, str]:
        return dict(zip((k.name for k in self.keys), self.cells[index], strict=True))

    def strides(self) -> list[int]:
        """Cell index = Σ value index × stride (row-major over the keys, like :attr:`cells`)."""
        strides, step = [], 1
        for key in reversed(self.keys):
            strides.append(step)
            step *= len(key.values)
        return list(reversed(strides))


def build_plan(spec: QuerySpec, policy: Policy, clamp: tuple[int, int] | None) -> QueryPlan:
    dataset = policy.dataset(spec.dataset)
    if dataset is None:
        raise ValueError(f"unknown dataset {spec.dataset}")  # decide() refuses these first
    keys = []
    for name in spec.keys:
        key_field = dataset.field(name)
        if key_field is None:
            raise ValueError(f"{dataset.id} has no field {name}")
        keys.append(GroupKey(name, tuple(policy.categories(key_field))))
    measure = dataset.field(spec.measure) if spec.measure and spec.statistic is not Statistic.histogram else None
    quantile = (spec.quantile or DEFAULT_QUANTILE) if spec.statistic is Statistic.quantile else None
    candidates = tuple(measure.fixed_candidates()) if measure is not None and quantile is not None else ()
    return QueryPlan(dataset=dataset, statistic=spec.statistic, keys=tuple(keys), window=spec.window,
                     measure=measure, clamp=clamp, candidates=candidates, quantile=quantile)
