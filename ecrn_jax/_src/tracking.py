# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Tracking the empirical NTK during training (docs/spec.md §4), dense or matrix-free.

`KernelTracker` is a `train` callback. On a fixed probe set X_p (N_p training inputs drawn
with `TrackingConfig.seed`) it records, at initialization and after every `every`-th epoch:
Θ_t = Θ_{θ_t}(X_p, X_p) (evaluation mode, output-averaged), ‖ΔΘ_t‖_F and ‖ΔΘ_t‖_F/‖Θ_0‖_F,
λ_max, λ_min, the top-k eigenvalues, the trace, the condition number, the effective rank
(Σλ)²/Σλ², the kernel–target alignment, the Arora et al. bound √(2 yᵀΘ⁻¹y/N_p), and the
mode-wise residual projections ⟨f_t(X_p) − y_p, v_i⟩ on the top eigenvectors v_i of Θ_0,
observed and predicted by the linearized dynamics ∏_{s<t} (1 − η_s λ_i/N_p)
(`analysis.modewise_prediction`).

Dense (N_p <= `dense_max_size`): Θ_t is materialized with `empirical_ntk` and analysed
exactly (`analysis`). Matrix-free (above it): nothing N_p × N_p is formed and no Jacobian;
everything comes from NTK–vector products (`ntk_vp_fn`, one vjp and one jvp each):
- λ_max, top-k and λ_min are Ritz values of one Lanczos run of `lanczos_iterations` steps
  (`analysis.top_eigenvalues`): λ_max and the top-k are lower bounds, λ_min an upper bound
  (so the condition number is a lower estimate);
- trace, ‖Θ_t‖_F and ‖ΔΘ_t‖_F: `analysis.deflated_estimate`, exact on the span of Q_0, the
  top `deflation_rank` Ritz vectors of Θ_0 (NTKs have one dominant eigenvalue, which makes
  plain Hutchinson noisy), Hutchinson on its complement with `num_probes` fixed Rademacher
  probes (the same at every record). ΔΘ_t w_j = Θ_t w_j − Θ_0 w_j with Θ_0 w_j (and Θ_0 Q_0)
  kept from initialization, so a record costs num_probes + deflation_rank products at θ_t;
- yᵀΘ⁻¹y by `cg_iterations` of conjugate gradients (a lower estimate that increases to
  the exact value; the relative residual is recorded); 0 skips the bound.
Cost per matrix-free record: lanczos_iterations + num_probes + deflation_rank +
C(1 + cg_iterations) products (C = number of target columns). Where Θ_t built once costs less
than that many products and its N_p² numbers fit 1 GiB (`kernels.kernel_pays`, decided at the
first record: a convolutional network's structured or per-example path), it is built by
`empirical_ntk` and the products are matmuls with it: the same estimators, nothing else changes.

The mode-wise prediction is exact for the linearized network under full-batch plain GD
('sgd', no weight decay) on MSE with the probe set equal to the training set; otherwise it
is the same formula, reported as an approximation (`modewise_exact` in the metadata).

BatchNorm networks (variables with 'batch_stats'; `precise_batch_stats`, default on for them):
before every record the running statistics are recomputed at the current parameters,
ŝ_t = s(θ_t) (`kernels.precise_batch_stats`: training-mode passes over the training set, or a
fixed subset of `batch_stats_size` inputs), and everything is measured at them: Θ_t = Θ(θ_t, ŝ_t),
the outputs f_t = f(θ_t, ŝ_t). The recorded movement ΔΘ_t = Θ(θ_t, ŝ_t) − Θ(θ_0, ŝ_0) is then the
total one, and the movement due to the parameters alone holds the statistics at their first
record: ΔΘ^θ_t = Θ(θ_t, ŝ_0) − Θ(θ_0, ŝ_0), recorded as 'delta_frobenius_params' (‖ΔΘ^θ_t‖_F) and
'relative_delta_frobenius_params' (over ‖Θ(θ_0, ŝ_0)‖_F); what remains of ΔΘ_t is the statistics'
(matrix-free: the same estimators as ‖ΔΘ_t‖_F, from a second set of products at (θ_t, ŝ_0)).

The tracker writes no files (`tracking_io.TrackingWriter` does); `state_dict()` and
`load_state_dict()` carry a run across a restart.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ecrn_jax._src import matrix_free
from ecrn_jax._src import spectral
from ecrn_jax._src.batch_stats import precise_batch_stats
from ecrn_jax._src.validation import check_finite_inputs, check_int
from ecrn_jax._src.empirical import empirical_ntk
from ecrn_jax._src.models import jit_apply, traced
from ecrn_jax._src.vector_products import kernel_pays, ntk_vp_fn
from ecrn_jax._src.optimizers import learning_rate_schedule
from ecrn_jax._src.training import TrainConfig, steps_per_epoch

# The entries of a dense record (`analysis.kernel_summary`), in order.
_DENSE_FIELDS = (
    'lambda_max',
    'lambda_min',
    'top_eigenvalues',
    'trace',
    'condition_number',
    'effective_rank',
    'frobenius_norm',
    'delta_frobenius',
    'relative_delta_frobenius',
    'alignment',
    'arora_bound',
)


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
  """What `KernelTracker` computes, and how.

  Attributes:
    probe_size: N_p, the number of training inputs in the probe set (<= N).
    top_k: number of largest eigenvalues recorded (<= N_p).
    modewise_k: number of top eigenmodes of Θ_0 for the mode-wise convergence (<= N_p).
    dense_max_size: largest N_p analysed densely; above it, matrix-free.
    lanczos_iterations: Lanczos steps of the matrix-free spectrum (>= top_k, modewise_k;
      clipped to N_p).
    num_probes: Rademacher probes of the Hutchinson estimates (>= 1; >= 2 for errors).
    deflation_rank: r top Ritz vectors Q_0 of Θ_0 on which the matrix-free trace and
      Frobenius norms are computed exactly (Hutchinson only on the complement; 0: plain
      Hutchinson). Costs r products per record.
    probe_batch_size: probes pushed through the network together (memory control).
    vp_batch_size: probe inputs per chunk of each matrix-free kernel–vector product
      (`ntk_vp_fn`'s batch_size), so memory does not grow with N_p; None: the largest chunk
      within `ntk_vp_fn`'s memory budget (`auto_vp_batch_size`); 0: all at once.
    cg_iterations: conjugate-gradient steps for the matrix-free Arora bound (0: skip).
    every: record every `every` epochs (and always at epoch 0 and at the last epoch).
    save_kernels: in dense mode, also save every Θ_t, (T, N_p, N_p), in the npz.
    seed: split into the named keys 'probe_set', 'lanczos' and 'hutchinson'; the subset and
      the rng of the statistics' passes are fold_in(seed key, 3) and fold_in(seed key, 4).
    precise_batch_stats: recompute 'batch_stats' at the current parameters before every record
      and measure there (module docstring); None: on for models with 'batch_stats'.
    batch_stats_size: inputs of the statistics' passes: 0 the whole training set, else a fixed
      subset of that many training inputs.
    batch_stats_batch_size: inputs per training-mode pass of the statistics.
  """

  probe_size: int = 256
  top_k: int = 10
  modewise_k: int = 5
  dense_max_size: int = 512
  lanczos_iterations: int = 40
  num_probes: int = 16
  deflation_rank: int = 2
  probe_batch_size: int = 4
  vp_batch_size: Optional[int] = None
  cg_iterations: int = 50
  every: int = 1
  save_kernels: bool = True
  seed: int = 0
  precise_batch_stats: Optional[bool] = None
  batch_stats_size: int = 0
  batch_stats_batch_size: int = 256

  def __post_init__(self):
    for name, low in (
        ('probe_size', 1),
        ('top_k', 1),
        ('modewise_k', 1),
        ('dense_max_size', 0),
        ('lanczos_iterations', 1),
        ('num_probes', 1),
        ('deflation_rank', 0),
        ('probe_batch_size', 1),
        ('cg_iterations', 0),
        ('every', 1),
        ('seed', 0),
        ('batch_stats_size', 0),
        ('batch_stats_batch_size', 1),
    ):
      check_int(name, getattr(self, name), low)
    if self.vp_batch_size is not None:
      check_int('vp_batch_size', self.vp_batch_size, 0)
    if not isinstance(self.save_kernels, (bool, np.bool_)):
      raise ValueError(f'save_kernels must be a bool, got {self.save_kernels!r}.')
    if self.precise_batch_stats is not None and not isinstance(
        self.precise_batch_stats, (bool, np.bool_)
    ):
      raise ValueError(
          f'precise_batch_stats must be None or a bool, got {self.precise_batch_stats!r}.'
      )

  def replace(self, **changes) -> 'TrackingConfig':
    return dataclasses.replace(self, **changes)


_STATS = 'batch_stats:'  # the reference's entries of ŝ_0, one a leaf: 'batch_stats:a/b/mean'


def _stats_entries(tree) -> dict[str, np.ndarray]:
  """{'batch_stats:<path>': leaf} of a 'batch_stats' tree."""
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {
      _STATS + '/'.join(str(getattr(k, 'key', k)) for k in path): np.asarray(leaf)
      for path, leaf in flat
  }


def _stats_tree(reference: Mapping[str, Any]) -> dict:
  """The 'batch_stats' tree of the reference's `_stats_entries`."""
  tree: dict = {}
  for key, leaf in reference.items():
    if key.startswith(_STATS):
      *names, last = key[len(_STATS) :].split('/')
      node = tree
      for name in names:
        node = node.setdefault(name, {})
      node[last] = jnp.asarray(leaf)
  return tree


def _check_probe_size(num_examples: int, probe_size: int) -> None:
  if probe_size > num_examples:
    raise ValueError(
        f'probe_size={probe_size} exceeds the {num_examples} training '
        'examples; choose probe_size <= N.'
    )


def probe_indices(num_examples: int, probe_size: int, key: jax.Array) -> np.ndarray:
  """N_p distinct indices into the training set, sorted; all of them if N_p = N."""
  _check_probe_size(num_examples, probe_size)
  if probe_size == num_examples:
    return np.arange(num_examples)
  return np.sort(np.asarray(jax.random.permutation(key, num_examples)[:probe_size]))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _draws(seed: jax.Array, n: int, probe_size: int, stats_size: int) -> tuple:
  """A tracker's random draws from its seed, as one program per (n, probe_size, stats_size):
  (the probe indices (unsorted; None if all n), those of the batch-statistics set (likewise),
  the Lanczos key, the Hutchinson key, the statistics' dropout key). The keys and indices of
  `probe_indices` and of PRNGKey/split/fold_in called op by op (the same values)."""
  seed_key = jax.random.PRNGKey(seed)
  probe_key, lanczos_key, hutchinson_key = jax.random.split(seed_key, 3)

  def drawn(size, key):
    return None if size == n else jax.random.permutation(key, n)[:size]

  probes, stats = drawn(probe_size, probe_key), drawn(stats_size, jax.random.fold_in(seed_key, 3))
  return probes, stats, lanczos_key, hutchinson_key, jax.random.fold_in(seed_key, 4)


def _sorted_indices(n: int, drawn) -> np.ndarray:
  """`probe_indices` of a draw of `_draws`."""
  return np.arange(n) if drawn is None else np.sort(np.asarray(drawn))


_rademacher = jax.jit(jax.random.rademacher, static_argnums=(1, 2))


@functools.lru_cache(maxsize=16)
def _matrix_free_products_fn(
    model,
    n_p: int,
    lanczos_iterations: int,
    deflation_rank: int,
    modewise_k: int,
    cg_iterations: int,
    probe_batch_size: int,
    vp_batch_size: Optional[int],
    materialized: bool = False,
) -> Callable:
  """Jitted (variables, x_p, y_columns, probes, key, basis) → `analysis.matrix_free_products`
  of Θ_θ(x_p, x_p), basis None at the first record; `materialized`: the first argument is
  Θ_θ(x_p, x_p) itself, the products matmuls. Cached, as `make_train_step`."""

  @jax.jit
  def products(variables, x_p, y_columns, probes, key, basis):
    if materialized:
      matvec = lambda v: variables @ v.astype(variables.dtype)
    else:
      matvec = ntk_vp_fn(model, variables, x_p, batch_size=vp_batch_size)
    return matrix_free.matrix_free_products(
        matvec,
        n_p,
        key=key,
        num_iterations=lanczos_iterations,
        probes=probes,
        targets=y_columns,
        basis=basis,
        deflation_rank=deflation_rank,
        num_vectors=modewise_k,
        cg_iterations=cg_iterations,
        batch_size=probe_batch_size,
    )

  return products


class KernelTracker:
  """A `train` callback recording docs/spec.md §4's kernel quantities on a fixed probe set.

    tracker = KernelTracker(model, (x, y), train_config, TrackingConfig())
    train(model, variables, (x, y), train_config, callbacks=[tracker])
    tracker.arrays()   # the records stacked, as tracking_io.TrackingWriter saves them

  The first record fixes the reference θ_0 (normally epoch 0, before the first step).
  Attributes:
    records: one dict per record: 'epoch', 'step', the statistics (Python floats and numpy
      arrays), 'seconds' and, dense with save_kernels, 'kernel' (N_p, N_p).
    seconds: total time spent recording (reported apart from the training time).
    mode: 'dense' or 'matrix_free'.
    indices: (N_p,) probe indices into the training set; n_p: N_p.
    y_p: (N_p, C) float64 probe targets (one-hot labels: None until the first record).
  """

  def __init__(
      self, model, data, train_config: TrainConfig, config: TrackingConfig = TrackingConfig()
  ):
    if not isinstance(train_config, TrainConfig):
      raise ValueError(f'train_config must be a TrainConfig, got {type(train_config).__name__}.')
    if not isinstance(config, TrackingConfig):
      raise ValueError(f'config must be a TrackingConfig, got {type(config).__name__}.')
    # Checked and indexed on the host; only the probe and statistics sets go to the device.
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if x.ndim < 2 or y.ndim < 1 or x.shape[0] != y.shape[0]:
      raise ValueError(f'data must be (x (N, ...), y (N,) or (N, C)), got {x.shape}, {y.shape}.')
    check_finite_inputs('x', x)
    check_finite_inputs('y', y, why='the alignment and bounds of such targets are NaN')
    n = x.shape[0]
    self.model, self.train_config, self.config = model, train_config, config
    _check_probe_size(n, config.probe_size)
    self.n_p = config.probe_size
    self.mode = 'dense' if self.n_p <= config.dense_max_size else 'matrix_free'
    self._lanczos_iterations = min(config.lanczos_iterations, self.n_p)
    self._check_sizes()
    if config.batch_stats_size > n:
      raise ValueError(
          f'batch_stats_size={config.batch_stats_size} exceeds the {n} training examples; '
          'choose batch_stats_size <= N (0: all of them).'
      )
    size = config.batch_stats_size or n
    # The seed as PRNGKey converts a Python int (np.int64), so the keys are the same.
    probes, stats, self._lanczos_key, hutchinson_key, dropout_key = _draws(
        np.int64(config.seed), n, config.probe_size, size
    )
    self.indices = _sorted_indices(n, probes)
    self.x_p, y_p = jax.device_put(x[self.indices]), y[self.indices]
    self._x_stats = jax.device_put(x[_sorted_indices(n, stats)])
    self._stats_rngs = {'dropout': dropout_key}
    self.precise = config.precise_batch_stats  # None until the first record's variables
    labels = train_config.loss == 'cross_entropy' and y_p.ndim == 1
    self._labels = y_p.astype(np.int64) if labels else None
    self.y_p = None if labels else y_p.reshape(self.n_p, -1).astype(np.float64)
    self.modewise_exact = bool(
        train_config.loss == 'mse'
        and train_config.optimizer == 'sgd'
        and train_config.weight_decay == 0
        and train_config.batch_size in (None, n)
        and self.n_p == n
    )
    constant = train_config.schedule == 'constant' and train_config.warmup_epochs == 0
    self._learning_rate = (
        train_config.learning_rate
        if constant
        else learning_rate_schedule(train_config, steps_per_epoch(train_config, n))
    )
    # One compiled program per structure (models.traced): the values are arguments.
    self._apply = jit_apply(model)  # evaluation mode
    self._structure, self._values = traced(model)
    if self.mode == 'matrix_free':
      # jax_enable_x64: a flag set at runtime, absent from jax's stubs.
      dtype = (
          jnp.float64 if jax.config.jax_enable_x64 else jnp.float32  # type: ignore[attr-defined]
      )
      self._probes = _rademacher(hutchinson_key, (config.num_probes, self.n_p), dtype)
      m = self._lanczos_iterations
      self._products_args = (
          self._structure,
          self.n_p,
          m,
          min(config.deflation_rank, m),
          config.modewise_k,
          config.cg_iterations,
          config.probe_batch_size,
          config.vp_batch_size,
      )
    self.materialized: Optional[bool] = None  # matrix-free: decided at the first record
    self.records: list[dict] = []
    self.seconds = 0.0
    self._reference: Optional[dict[str, Any]] = None  # what the first record fixes

  def _check_sizes(self) -> None:
    needed = max(self.config.top_k, self.config.modewise_k)
    for name in ('top_k', 'modewise_k'):
      if getattr(self.config, name) > self.n_p:
        raise ValueError(
            f'{name}={getattr(self.config, name)} exceeds the probe set size '
            f'N_p={self.n_p}; choose {name} <= {self.n_p}.'
        )
    if self.mode == 'matrix_free' and self._lanczos_iterations < needed:
      raise ValueError(
          f'lanczos_iterations={self.config.lanczos_iterations} must be >= '
          f'top_k and modewise_k (= {needed}).'
      )

  def __call__(self, epoch: int, step: int, variables: Mapping[str, Any]) -> None:
    last = epoch == self.train_config.epochs
    if self._reference is not None and epoch % self.config.every and not last:
      return
    start = time.perf_counter()
    if self.precise is None:
      self.precise = 'batch_stats' in variables
    fixed = None  # (θ_t, ŝ_0): the statistics of the first record
    if self.precise:
      if self._reference is not None:
        fixed = {**variables, 'batch_stats': _stats_tree(self._reference)}
      variables = precise_batch_stats(
          self.model,
          variables,
          self._x_stats,
          batch_size=self.config.batch_stats_batch_size,
          rngs=self._stats_rngs,
          train=True,
      )
    outputs = np.asarray(self._apply(variables, self.x_p), np.float64).reshape(self.n_p, -1)
    if self.y_p is None:
      self.y_p = np.eye(outputs.shape[1])[self._labels]
    analyse = self._dense if self.mode == 'dense' else self._matrix_free
    record, kernel, reference = analyse(variables)
    if self.precise:
      record.update(self._parameter_movement(fixed))
    if self._reference is None:
      self._reference = dict(reference, step=int(step), residual=outputs - self.y_p)
      if self.precise:
        self._reference.update(_stats_entries(variables['batch_stats']))
    if self.train_config.loss == 'mse':
      record.update(self._modewise(outputs, step))
    record = {'epoch': int(epoch), 'step': int(step), **record}
    record['seconds'] = seconds = time.perf_counter() - start
    if kernel is not None and self.config.save_kernels:
      record['kernel'] = kernel
    self.records.append(record)
    self.seconds += seconds

  def _parameter_movement(self, fixed) -> dict:
    """‖Θ(θ_t, ŝ_0) − Θ(θ_0, ŝ_0)‖_F, absolute and relative (zero at the first record)."""
    if fixed is None:
      return {'delta_frobenius_params': 0.0, 'relative_delta_frobenius_params': 0.0}
    analyse = self._dense if self.mode == 'dense' else self._matrix_free
    moved, _, _ = analyse(fixed)
    return {
        'delta_frobenius_params': moved['delta_frobenius'],
        'relative_delta_frobenius_params': moved['relative_delta_frobenius'],
    }

  def _modewise(self, outputs: np.ndarray, step: int) -> dict:
    ref = self._reference
    assert ref is not None  # __call__ sets it before it calls this
    vectors, eigenvalues = ref['vectors'], ref['eigenvalues']
    observed = vectors.T @ (outputs - self.y_p)  # (k, C)
    predicted = spectral.modewise_prediction(
        eigenvalues,
        vectors.T @ ref['residual'],
        step - ref['step'],
        num_examples=self.n_p,
        learning_rate=self._learning_rate,
        start_step=ref['step'],
    )
    if outputs.shape[1] == 1:
      observed, predicted = observed[:, 0], predicted[:, 0]
    return {
        'modewise_eigenvalues': eigenvalues,
        'modewise_observed': observed,
        'modewise_predicted': predicted,
    }

  def _dense(self, variables):
    """(record, Θ_t (N_p, N_p), the reference's kernel and eigenpairs at the first record)."""
    variables = {**variables, **self._values}
    kernel = np.asarray(empirical_ntk(self._structure, variables, self.x_p), np.float64)
    kernel = 0.5 * (kernel + kernel.T)
    if self._reference is not None and not np.all(np.isfinite(kernel)):
      # A diverging run: keep recording (training stops on its own non-finite loss).
      warnings.warn(
          'the NTK has non-finite entries; its statistics are recorded as NaN.',
          RuntimeWarning,
          stacklevel=3,
      )
      record = dict.fromkeys(_DENSE_FIELDS, float('nan'))
      record['top_eigenvalues'] = np.full(self.config.top_k, float('nan'))
      return record, kernel, None
    if not np.all(np.isfinite(kernel)):
      raise ValueError(
          'the NTK at the first record has non-finite entries: check the '
          'inputs and the initial variables.'
      )
    reference = self._reference
    if reference is None:
      eigenvalues, vectors = np.linalg.eigh(kernel)
      k = self.config.modewise_k
      reference = {
          'kernel': kernel,
          'eigenvalues': eigenvalues[::-1][:k].copy(),
          'vectors': vectors[:, ::-1][:, :k].copy(),
      }
    record = spectral.kernel_summary(
        kernel, self.y_p, kernel_0=reference['kernel'], top_k=self.config.top_k
    )
    return record, kernel, reference

  def _matrix_free(self, variables):
    """(record, None, Θ_0's products, basis and top Ritz pairs at the first record)."""
    reference = self._reference
    basis = None if reference is None else jnp.asarray(reference['basis'])
    variables = {**variables, **self._values}
    y_columns = jnp.asarray(self.y_p.T)
    if self.materialized is None:
      c, cfg = self.y_p.shape[1], self.config
      count = self._lanczos_iterations + cfg.num_probes + cfg.deflation_rank
      count += c * (1 + cfg.cg_iterations)
      try:
        self.materialized = kernel_pays(self._structure, variables, self.x_p, count)
      except Exception:  # pylint: disable=broad-except   (an estimate: never a failure)
        self.materialized = False
    products = _matrix_free_products_fn(*self._products_args, self.materialized)
    if self.materialized:
      operator = empirical_ntk(self._structure, variables, self.x_p)
      operator = 0.5 * (operator + operator.T)
    else:
      operator = variables
    out = jax.device_get(
        products(operator, self.x_p, y_columns, self._probes, self._lanczos_key, basis)
    )
    if reference is None:
      reference = {
          k: np.asarray(out[k], np.float64)
          for k in ('probe_products', 'basis_products', 'basis', 'vectors')
      }
      reference['eigenvalues'] = np.asarray(out['ritz_values'], np.float64)[
          : self.config.modewise_k
      ].copy()
    record = matrix_free.matrix_free_summary(
        out, reference, self._probes, self.y_p, top_k=self.config.top_k
    )
    return record, None, reference

  @property
  def probes(self) -> Optional[np.ndarray]:
    """(num_probes, N_p) Rademacher probes of the matrix-free estimates (None if dense)."""
    return None if self.mode == 'dense' else np.asarray(self._probes)

  @property
  def deflation_basis(self) -> Optional[np.ndarray]:
    """(r, N_p) orthonormal Q_0ᵀ of the matrix-free estimates (after the first record)."""
    return None if self.mode == 'dense' else (self._reference or {}).get('basis')

  def metadata(self) -> dict:
    return {
        'mode': self.mode,
        'probe_size': self.n_p,
        'probe_indices': self.indices,
        'modewise_exact': self.modewise_exact,
        'lanczos_iterations': self._lanczos_iterations,
        'tracking_config': dataclasses.asdict(self.config),
        'train_config': dataclasses.asdict(self.train_config),
        'tracking_seconds': self.seconds,
        'precise_batch_stats': bool(self.precise),
        'materialized_products': bool(self.materialized),
    }

  def arrays(self) -> dict[str, np.ndarray]:
    """The records stacked along a leading time axis, plus 'probe_indices'."""
    out = {'probe_indices': np.asarray(self.indices)}
    for name in (self.records[0] if self.records else ()):
      dtype = np.int64 if name in ('epoch', 'step') else np.float64
      out[name] = np.stack([np.asarray(r[name], dtype) for r in self.records])
    return out

  def state_dict(self) -> dict[str, np.ndarray]:
    """What a restarted tracker needs, as a flat {name: numpy array} (no object arrays).

    'probe_indices', 'seconds' (0-d), 'records/<field>' (stacked, as `arrays()`),
    'reference/<name>' (fixed at the first record) and 'y_p' once known.
    """
    state = {'probe_indices': np.asarray(self.indices), 'seconds': np.asarray(self.seconds)}
    state.update({f'records/{k}': v for k, v in self.arrays().items() if k != 'probe_indices'})
    state.update({f'reference/{k}': np.asarray(v) for k, v in (self._reference or {}).items()})
    if self.y_p is not None:
      state['y_p'] = self.y_p
    return state

  def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
    """Restores a `state_dict()` into a tracker built with the same data and configs: the
    later records then equal those of the uninterrupted tracker bit for bit."""
    part = lambda prefix: {
        k[len(prefix) :]: np.asarray(v) for k, v in state.items() if k.startswith(prefix)
    }
    stacked = part('records/')
    reference: dict[str, Any] = part('reference/')  # its 'step' becomes an int below
    if not np.array_equal(state['probe_indices'], self.indices) or (
        reference and ('kernel' in reference) != (self.mode == 'dense')
    ):
      raise ValueError(
          f'the state is not of this {self.mode} tracker: build it with the data, '
          'TrainConfig and TrackingConfig of the saved run.'
      )
    self.records = [
        {k: v[i].item() if v.ndim == 1 else v[i].copy() for k, v in stacked.items()}
        for i in range(len(stacked.get('epoch', ())))
    ]
    if reference:
      reference['step'] = int(reference['step'])
      self.precise = any(k.startswith(_STATS) for k in reference)
    self._reference = reference or None
    if 'y_p' in state:
      self.y_p = np.asarray(state['y_p'], np.float64)
    self.seconds = float(state['seconds'])
