"""OpenDP mechanisms: noise scale, interval coverage, quantile scores. No database.

Sample sizes are fixed and large enough that the bands below sit many standard errors from the expected
values, so these tests are not flaky:

* variance: 2,000 releases of a 9-cell vector = 18,000 draws. The sample variance of a Laplace variable has
  relative standard error sqrt((kurtosis − 1)/n) = sqrt(5/18,000) ≈ 1.7%, so ±10% is about 6 standard errors.
  The scale (30,000) makes the discrete Laplace variance equal 2·scale² to within 1e-9.
* coverage: 18,000 intervals; the binomial standard error at 95% is sqrt(0.95·0.05/18,000) ≈ 0.16%, so the
  band 93–97% is about 12 standard errors wide on each side.
"""

from __future__ import annotations

import statistics

import opendp.prelude as dp
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.privacy.aggregates import below_above, bucket_of
from broker.privacy.mechanisms import (
    laplace_accuracy,
    laplace_vector,
    noisy_min_index,
    opendp,
    quantile_scoring,
    quantile_transformation,
)
from broker.privacy.releases import mean_interval

RELEASES = 2_000
CELLS = 9


def test_noise_variance_matches_epsilon() -> None:
    sensitivity, epsilon = 15_000, 0.5  # pm25 clamped to 150.00 µg/m³, fixed-point × 100
    exact = [10**12 + i for i in range(CELLS)]  # far beyond 32 bits: the i64 path must not overflow
    errors = []
    for _ in range(RELEASES):
        noisy = laplace_vector(exact, sensitivity, epsilon)
        assert noisy.epsilon <= epsilon
        errors.extend(v - e for v, e in zip(noisy.values, exact, strict=True))
    expected = 2 * (sensitivity / epsilon) ** 2
    assert abs(statistics.pvariance(errors, mu=0) / expected - 1) < 0.10


def test_95_percent_interval_covers_the_exact_count_93_to_97_percent_of_the_time() -> None:
    exact = list(range(100, 100 + CELLS))
    covered = total = 0
    for _ in range(RELEASES):
        noisy = laplace_vector(exact, 1, 0.1)  # scale 10
        for value, truth in zip(noisy.values, exact, strict=True):
            covered += value - noisy.accuracy <= truth <= value + noisy.accuracy
            total += 1
    assert 0.93 <= covered / total <= 0.97


def test_a_means_interval_covers_at_least_95_percent_by_the_union_bound() -> None:
    counts, sums = [40] * CELLS, [40 * 700] * CELLS  # 40 citizens at 7.00 each, bounds [0, 1500]
    covered = total = 0
    for _ in range(RELEASES // 2):
        noisy_n, noisy_s = laplace_vector(counts, 1, 0.5), laplace_vector(sums, 1500, 0.5)
        n_half, s_half = laplace_accuracy(noisy_n.scale, 0.025), laplace_accuracy(noisy_s.scale, 0.025)
        for n, s in zip(noisy_n.values, noisy_s.values, strict=True):
            low, high = mean_interval(s, n, s_half, n_half, 0, 1500)
            covered += low <= 700 <= high
            total += 1
    assert covered / total >= 0.95


def test_the_calibration_is_what_opendp_certifies() -> None:
    noisy = laplace_vector([0], 3, 0.7)
    dp_ = opendp()
    space = dp_.vector_domain(dp_.atom_domain(T="i64")), dp_.l1_distance(T="i64")
    assert dp_.m.make_laplace(*space, scale=noisy.scale).map(3) <= 0.7
    assert abs(noisy.scale - 3 / 0.7) < 1e-9


def test_mean_interval_edges() -> None:
    assert mean_interval(1000, 2, 10, 5, 0, 1500) == (0.0, 1500.0)  # count may be 0: no bound but [L, U]
    low, high = mean_interval(7000, 10, 100, 2, 0, 1500)
    assert (low, high) == (6900 / 12, 7100 / 8)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(-50, 250), max_size=40),
       candidates=st.lists(st.integers(-20, 220), min_size=1, max_size=12, unique=True).map(sorted),
       alpha=st.sampled_from([0.5, 0.9, 0.1, 0.25, 0.75]))
def test_scores_from_bucket_counts_equal_opendps_scores(values: list[int], candidates: list[int],
                                                        alpha: float) -> None:
    buckets = [0] * (2 * len(candidates) + 1)
    for value in values:
        buckets[bucket_of(value, tuple(candidates))] += 1
    below, above = below_above(buckets, len(candidates))
    scoring = quantile_scoring(tuple(candidates), alpha)
    opendps = quantile_transformation(candidates, alpha)
    assert scoring.scores(below, above) == [int(s) for s in opendps(values)]
    assert scoring.sensitivity == opendps.map(1)


def test_noisy_min_is_opendps_quantile_mechanism() -> None:
    candidates, alpha, epsilon = [0, 10, 20, 30], 0.9, 1.0
    scoring = quantile_scoring(tuple(candidates), alpha)
    # make_private_quantile = scores >> report-noisy-max on the integer scores: the same ε for the same noise.
    denominator = scoring.below_weight + scoring.above_weight
    scale = 2 * scoring.sensitivity / epsilon
    private = dp.m.make_private_quantile(dp.vector_domain(dp.atom_domain(T="i64")), dp.symmetric_distance(),
                                         dp.max_divergence(), candidates=candidates, alpha=alpha,
                                         scale=scale / denominator)
    assert private.map(1) <= epsilon + 1e-12
    # With plenty of ε the clearly best candidate wins.
    scores = [1_000_000, 0, 1_000_000, 1_000_000]
    assert all(noisy_min_index(scores, scoring.sensitivity, 5.0) == 1 for _ in range(20))
