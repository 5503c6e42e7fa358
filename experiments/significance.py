# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Paired comparisons of two models: a 95 % confidence interval, a p-value and one verdict.

Per seed on resampled splits: the Nadeau & Bengio (2003) corrected resampled t-test; on one
fixed test set: the exact McNemar test (Agresti §11.1) or a paired bootstrap over the test
examples (Efron & Tibshirani 1993, §13.3). In each, p < α ⇔ the (1 − α) interval excludes 0.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np
import scipy.stats

ALPHA = 0.05
BETTER, WORSE, NO_DIFFERENCE = 'better', 'worse', 'no significant difference'
NO_TEST = 'no test'


@dataclasses.dataclass(frozen=True)
class TestResult:
  """A paired comparison of a and b: `mean` (a − b), its 1 − α interval and p-value (None without
  a test: `method` says why); `details`: the procedure's own numbers (dof, counts, ...)."""

  mean: float
  ci_low: Optional[float]
  ci_high: Optional[float]
  p_value: Optional[float]
  method: str
  details: dict = dataclasses.field(default_factory=dict)


def corrected_resampled_ttest(differences, n_train: int, n_test: int, *, alpha=ALPHA) -> TestResult:
  """Nadeau–Bengio corrected resampled t-test of (J,) paired differences, one per split.

  se² = (1/J + n_test/n_train)·s² (ddof = 1), J − 1 dof; J = 1: no test. Every difference
  equal and non-zero (s = 0, t undefined): the exact sign test, p = 2·2^−J.
  """
  d = np.asarray(differences, np.float64).reshape(-1)
  j = d.size
  if j == 0:
    raise ValueError('no differences to test')
  mean = float(d.mean())
  if j == 1:
    return TestResult(mean, None, None, None, 'no test (n = 1: one seed, no variance)')
  ratio = n_test / n_train
  # Equal differences up to round-off (e.g. one test point on every split) have no spread.
  spread = float(np.ptp(d)) > 1e-12 * max(1.0, abs(mean))
  se = math.sqrt((1.0 / j + ratio) * float(d.var(ddof=1))) if spread else 0.0
  details = {'dof': j - 1, 'se': se, 'n_test_over_n_train': ratio}
  method = 'corrected resampled t-test (Nadeau–Bengio)'
  if se == 0.0 and mean == 0.0:  # every split gave no difference
    return TestResult(mean, mean, mean, 1.0, method, details)
  if se == 0.0:
    # The sign test's interval [d_(1), d_(J)] = [d̄, d̄] covers 1 − 2·2^−J, short of 1 − α for
    # J ≤ 5: then unbounded.
    p = min(1.0, 2.0 * 0.5**j)
    low, high = (mean, mean) if p <= alpha else (-math.inf, math.inf)
    method = 'exact sign test (every split gave the same difference, so t is undefined)'
    return TestResult(mean, low, high, p, method, details)
  t = mean / se
  half = float(scipy.stats.t.ppf(1.0 - alpha / 2, j - 1)) * se
  p = float(2.0 * scipy.stats.t.sf(abs(t), j - 1))
  return TestResult(mean, mean - half, mean + half, p, method, dict(details, t=t))


def mcnemar(correct_a, correct_b, *, alpha: float = ALPHA) -> TestResult:
  """Exact McNemar test of two classifiers from their (M,) bool correctness on one test set.

  mean = accuracy(a) − accuracy(b); the interval: Clopper–Pearson's of the discordant share
  a gets right, mapped to accuracy; details['mid_p'] is reported, never used.
  """
  a, b = np.asarray(correct_a, bool).reshape(-1), np.asarray(correct_b, bool).reshape(-1)
  if a.shape != b.shape or a.size == 0:
    raise ValueError(f'need two equal non-empty (M,) arrays, got {a.shape} and {b.shape}')
  n_ab, n_ba = int(np.sum(a & ~b)), int(np.sum(~a & b))
  n, m = n_ab + n_ba, a.size
  details = {'only_a_correct': n_ab, 'only_b_correct': n_ba, 'mid_p': 1.0}
  method = 'exact McNemar'
  if n == 0:
    return TestResult(0.0, 0.0, 0.0, 1.0, method, details)
  k = min(n_ab, n_ba)
  twice_tail = 2.0 * float(scipy.stats.binom.cdf(k, n, 0.5))
  p = min(1.0, twice_tail)
  details['mid_p'] = min(1.0, twice_tail - float(scipy.stats.binom.pmf(k, n, 0.5)))
  low = float(scipy.stats.beta.ppf(alpha / 2, n_ab, n - n_ab + 1)) if n_ab > 0 else 0.0
  high = float(scipy.stats.beta.ppf(1 - alpha / 2, n_ab + 1, n - n_ab)) if n_ab < n else 1.0
  low, high = (n / m * (2 * q - 1) for q in (low, high))
  return TestResult((n_ab - n_ba) / m, low, high, p, method, details)


def paired_bootstrap(
    scores_a, scores_b, *, num_resamples: int = 10_000, seed: int = 0, alpha: float = ALPHA
) -> TestResult:
  """Paired bootstrap of the mean difference of (S, M) or (M,) per-example scores.

  One resample of the M test examples serves every seed, so the seeds stay paired. The
  percentile interval; p = min(1, 2·min(#{d* ≤ 0}, #{d* ≥ 0})/B), so p < α ⇔ it excludes 0.
  """
  a, b = np.asarray(scores_a, np.float64), np.asarray(scores_b, np.float64)
  if a.shape != b.shape or a.size == 0:
    raise ValueError(f'need two equal non-empty arrays, got {a.shape} and {b.shape}')
  per_example = (a - b).reshape(-1, a.shape[-1]).mean(axis=0)  # (M,) mean over seeds
  m = per_example.size
  rng = np.random.default_rng(seed)
  chunk = max(1, 4_000_000 // m)
  sizes = [(min(chunk, num_resamples - start), m) for start in range(0, num_resamples, chunk)]
  draws = np.sort(np.concatenate([per_example[rng.integers(0, m, size=z)].mean(1) for z in sizes]))
  k = max(1, math.ceil(round(num_resamples * alpha / 2, 9)))
  tails = min(int(np.sum(draws <= 0.0)), int(np.sum(draws >= 0.0)))
  p = min(1.0, 2.0 * tails / num_resamples)
  details = {'resamples': num_resamples, 'examples': m, 'seeds': a.size // m}
  low, high = float(draws[k - 1]), float(draws[num_resamples - k])
  method = 'paired bootstrap over test examples'
  return TestResult(float(per_example.mean()), low, high, p, method, details)


def verdict(ci_low, ci_high, p, higher_is_better: bool) -> str:
  """'better' or 'worse' for a (of a − b) when the interval excludes 0, else 'no significant
  difference'; 'no test' without an interval or a p-value."""
  if ci_low is None or ci_high is None or p is None:
    return NO_TEST
  if ci_low > 0.0 or ci_high < 0.0:
    return BETTER if (ci_low > 0.0) == higher_is_better else WORSE
  return NO_DIFFERENCE
