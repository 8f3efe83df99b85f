"""Noise and accuracy, all from OpenDP (https://docs.opendp.org): nothing here draws a random number itself.

* :func:`laplace_vector` adds discrete Laplace noise to a vector of integer totals with OpenDP's
  ``make_laplace`` over ``vector_domain(atom_domain(T="i64"))`` and the L1 distance; for integer inputs OpenDP
  samples the discrete Laplace (two-sided geometric) distribution exactly [GRS12, CKS20]. The type is i64 on
  purpose: OpenDP's ``T=int`` is 32-bit, and fixed-point sums over a city's citizens overflow it.
* :func:`noisy_min_index` selects a quantile candidate with OpenDP's ``make_noisy_max`` (negated, so the
  lowest score wins) over integer scores that equal, to the unit, those of OpenDP's own
  ``make_quantile_score_candidates`` (:func:`quantile_scoring` reads the score weights and sensitivity from
  that transformation; the tests compare the scores). That pair is exactly OpenDP's ``make_private_quantile``.
* Only ``dp.enable_features("contrib")`` is switched on: no "floating-point", no "honest-but-curious".

Privacy measure: pure ε-DP (``max_divergence``). ε is never derived by hand: the scale is computed from the
closed form, then the measurement's own privacy map must certify ``map(Δ) <= ε`` (the scale is nudged up by
an ulp at a time until it does), so a rounding slip can only add noise, never spend more ε than asked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import opendp.prelude as dp

#: Significance of the reported intervals: a 95% interval.
ALPHA = 0.05
_NUDGES = 64


@cache
def opendp() -> Any:
    """OpenDP with the one feature flag the broker needs; set once per process, on first use."""
    dp.enable_features("contrib")
    return dp


@dataclass(frozen=True)
class NoisyVector:
    """Integer totals with discrete Laplace noise, and what OpenDP certifies about them."""

    values: tuple[int, ...]
    scale: float
    #: ε that OpenDP's privacy map gives for d_in = the sensitivity (never above the ε asked for).
    epsilon: float
    #: Half-width a of the interval [v − a, v + a] holding the exact total with probability 1 − alpha.
    accuracy: int


def _calibrated(make: Any, sensitivity: float, epsilon: float, scale: float) -> tuple[Any, float]:
    """The measurement ``make(scale)`` with the smallest scale >= ``scale`` whose map(Δ) is at most ε."""
    for _ in range(_NUDGES):
        measurement = make(scale)
        if measurement.map(sensitivity) <= epsilon:
            return measurement, scale
        scale = math.nextafter(scale, math.inf) * (1 + 1e-12)
    raise RuntimeError(f"OpenDP does not certify ε={epsilon} for sensitivity {sensitivity}")


def laplace_accuracy(scale: float, alpha: float = ALPHA) -> int:
    """Half-width of the (1 − alpha) interval for one discrete Laplace draw of ``scale``.

    OpenDP gives ``a`` with P[|noise| >= a] = alpha; the noise is an integer, so its floor keeps the coverage.
    """
    return math.floor(opendp().discrete_laplacian_scale_to_accuracy(scale, alpha))


def laplace_vector(exact: Sequence[int], sensitivity: int, epsilon: float, alpha: float = ALPHA) -> NoisyVector:
    """Release ``exact`` (integers) under ε-DP, given its L1 sensitivity.

    Privacy: one citizen changes the vector by at most ``sensitivity`` in L1 (the caller's argument, stated
    with each statistic in :mod:`broker.privacy.releases`); discrete Laplace noise of scale Δ/ε on every
    coordinate is then ε-DP for the whole vector (OpenDP's ``make_laplace`` proof).
    """
    dp_ = opendp()
    delta = max(int(sensitivity), 1)  # a zero-width clamp leaves nothing to hide; noise stays well defined
    space = dp_.vector_domain(dp_.atom_domain(T="i64")), dp_.l1_distance(T="i64")
    measurement, scale = _calibrated(lambda s: dp_.m.make_laplace(*space, scale=s), delta, epsilon, delta / epsilon)
    values = measurement([int(v) for v in exact]) if exact else []
    return NoisyVector(values=tuple(int(v) for v in values), scale=scale, epsilon=float(measurement.map(delta)),
                       accuracy=laplace_accuracy(scale, alpha))


@dataclass(frozen=True)
class QuantileScoring:
    """OpenDP's quantile score: ``|below_weight · #below(c) − above_weight · #above(c)|`` per candidate c.

    The weights are the integerised alpha (``den − num`` and ``num``), read from OpenDP's transformation
    itself; ``sensitivity`` is its L∞ map for one citizen added or removed.
    """

    below_weight: int
    above_weight: int
    sensitivity: int

    def scores(self, below: Sequence[int], above: Sequence[int]) -> list[int]:
        return [abs(self.below_weight * lt - self.above_weight * gt) for lt, gt in zip(below, above, strict=True)]


def quantile_transformation(candidates: Sequence[int], alpha: float) -> Any:
    """OpenDP's ``make_quantile_score_candidates`` over i64 values (one per citizen), symmetric distance."""
    dp_ = opendp()
    domain = dp_.vector_domain(dp_.atom_domain(T="i64"))
    return dp_.t.make_quantile_score_candidates(domain, dp_.symmetric_distance(), candidates=list(candidates),
                                                alpha=alpha)


@cache
def quantile_scoring(candidates: tuple[int, ...], alpha: float) -> QuantileScoring:
    """Probe OpenDP's scoring with one value below every candidate and one above, to get its weights."""
    transformation = quantile_transformation(candidates, alpha)
    below = transformation([candidates[0] - 1])[0]   # #below = 1, #above = 0
    above = transformation([candidates[-1] + 1])[0]  # #below = 0, #above = 1
    return QuantileScoring(below_weight=int(below), above_weight=int(above),
                           sensitivity=int(transformation.map(1)))


def noisy_min_index(scores: Sequence[int], sensitivity: int, epsilon: float) -> int:
    """The index of a low score, chosen under ε-DP by OpenDP's report-noisy-max (negated).

    Privacy: one citizen moves each score by at most ``sensitivity`` (L∞), not in a common direction, so
    OpenDP's map is 2Δ/scale; the scale is set so that it is at most ε.
    """
    dp_ = opendp()
    space = dp_.vector_domain(dp_.atom_domain(T="u64")), dp_.linf_distance(T="u64")

    def make(scale: float) -> Any:
        return dp_.m.make_noisy_max(*space, dp_.max_divergence(), scale=scale, negate=True)

    delta = max(int(sensitivity), 1)
    measurement, _ = _calibrated(make, delta, epsilon, 2 * delta / epsilon)
    return int(measurement([int(s) for s in scores]))
