"""NPS, CSAT and response rate. Pure functions over plain numbers.

NPS = % promoters (9–10) − % detractors (0–6), from −100 to 100.
CSAT = % of ratings that are 4 or 5 on the 1–5 scale.
Both are None when there is nothing to compute them from, never 0, so an empty group is not
mistaken for a bad one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

Z_95 = 1.959964  # the standard normal's 97.5th percentile: a two-sided 95 % interval


def nps(scores: Iterable[int]) -> float | None:
    values = list(scores)
    if not values:
        return None
    promoters = sum(1 for s in values if s >= 9)
    detractors = sum(1 for s in values if s <= 6)
    return round(100.0 * (promoters - detractors) / len(values), 1)


def csat(scores: Iterable[int]) -> float | None:
    values = list(scores)
    if not values:
        return None
    return round(100.0 * sum(1 for s in values if s >= 4) / len(values), 1)


def rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


class ProportionTest(NamedTuple):
    difference: float  # the second rate minus the first
    z: float | None
    p_value: float | None


def two_proportion_test(hits_a: int, n_a: int, hits_b: int, n_b: int) -> ProportionTest | None:
    """The two-sided z-test of two rates with a pooled standard error; None when a group is empty.
    z and p are None when the pooled rate is 0 or 1 (no spread to test against)."""
    if n_a == 0 or n_b == 0:
        return None
    rate_a, rate_b = hits_a / n_a, hits_b / n_b
    pooled = (hits_a + hits_b) / (n_a + n_b)
    spread = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if spread <= 0:
        return ProportionTest(round(rate_b - rate_a, 4), None, None)
    z = (rate_b - rate_a) / math.sqrt(spread)
    return ProportionTest(round(rate_b - rate_a, 4), round(z, 3), round(math.erfc(abs(z) / math.sqrt(2)), 4))


def nps_difference(scores_a: Iterable[int], scores_b: Iterable[int]) -> tuple[float, float, float] | None:
    """NPS of b minus NPS of a with a 95 % confidence interval (normal approximation: each answer
    counts +100, 0 or -100, so an NPS is a mean whose variance is (p + d - (p - d)^2) / n · 100²).
    None when either side has no answer."""
    a, b = list(scores_a), list(scores_b)
    if not a or not b:
        return None

    def mean_and_variance(values: list[int]) -> tuple[float, float]:
        promoters = sum(1 for s in values if s >= 9) / len(values)
        detractors = sum(1 for s in values if s <= 6) / len(values)
        net = promoters - detractors
        return 100 * net, 100**2 * (promoters + detractors - net**2) / len(values)

    (nps_a, var_a), (nps_b, var_b) = mean_and_variance(a), mean_and_variance(b)
    difference = nps_b - nps_a
    margin = Z_95 * math.sqrt(var_a + var_b)
    return round(difference, 1), round(difference - margin, 1), round(difference + margin, 1)
