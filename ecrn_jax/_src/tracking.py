"""Tracking the empirical NTK during training (SPEC §4), dense or matrix-free.

`KernelTracker` is a `train` callback. On a fixed probe set X_p (N_p training inputs drawn
with `TrackingConfig.seed`) it records, at initialization and after every `every`-th epoch:
Θ_t = Θ_{θ_t}(X_p, X_p) (evaluation mode, output-averaged), ‖ΔΘ_t‖_F and ‖ΔΘ_t‖_F/‖Θ_0‖_F,
λ_max, λ_min, the top-k eigenvalues, the trace, the condition number, the effective rank
(Σλ)²/Σλ², the kernel–target alignment, the Arora et al. bound √(2 yᵀΘ⁻¹y/N_p), and the
mode-wise residual projections ⟨f_t(X_p) − y_p, v_i⟩ on the top eigenvectors v_i of Θ_0,
observed and predicted by the linearized dynamics ∏_{s<t} (1 − η_s λ_i/N_p).

Dense (N_p <= `dense_max_size`): Θ_t is materialized with `empirical_ntk` and analysed
exactly (`analysis`). Matrix-free (above it): nothing N_p × N_p is formed and no Jacobian;
everything comes from NTK–vector products (`ntk_vp_fn`, one vjp and one jvp each):
- λ_max, top-k and λ_min are Ritz values of one Lanczos run of `lanczos_iterations` steps
  (`analysis.top_eigenvalues`): λ_max and the top-k are lower bounds, λ_min an upper bound
  (so the condition number is a lower estimate);
- trace, ‖Θ_t‖_F and ‖ΔΘ_t‖_F: exact on the span of Q_0, the top `deflation_rank` Ritz
  vectors of Θ_0 (NTKs have one dominant eigenvalue, which makes plain Hutchinson noisy),
  and Hutchinson on its complement with `num_probes` fixed Rademacher probes v_j (the same
  at every record), w_j = (I − Q_0Q_0ᵀ)v_j:
  ‖A‖_F² = ‖AQ_0‖_F² + E‖Aw‖², tr A = tr Q_0ᵀAQ_0 + E[wᵀAw], both unbiased for any fixed
  Q_0. ΔΘ_t w_j = Θ_t w_j − Θ_0 w_j with Θ_0 w_j (and Θ_0 Q_0) cached at initialization,
  so a record costs num_probes + deflation_rank products at θ_t, not twice that. Standard
  errors as in `analysis.frobenius_norm_estimate` (delta method for the square root);
- yᵀΘ⁻¹y by `cg_iterations` of conjugate gradients (a lower estimate that increases to
  the exact value; the relative residual is recorded); 0 skips the bound.
Cost per matrix-free record: lanczos_iterations + num_probes + deflation_rank +
C(1 + cg_iterations) products (C = number of target columns).

The mode-wise prediction is exact for the linearized network under full-batch plain GD
('sgd', no weight decay) on MSE with the probe set equal to the training set; otherwise it
is the same formula, reported as an approximation (`modewise_exact` in the metadata).

Outputs (when `workdir` is given): `tracking.npz` (rewritten after every record, so a
stopped run keeps what was recorded), `tracking.jsonl` (one JSON object per record,
non-finite numbers as null) and `tracking_meta.json`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ecrn_jax._src import analysis
from ecrn_jax._src.validation import check_int
from ecrn_jax._src.empirical import empirical_ntk, ntk_vp_fn
from ecrn_jax._src.training import TrainConfig, learning_rate_schedule, steps_per_epoch


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
      (`ntk_vp_fn`'s batch_size), so memory does not grow with N_p; 0: all at once.
    cg_iterations: conjugate-gradient steps for the matrix-free Arora bound (0: skip).
    every: record every `every` epochs (and always at epoch 0 and at the last epoch).
    save_kernels: in dense mode, also save every Θ_t, (T, N_p, N_p), in the npz.
    seed: split into the named keys 'probe_set', 'lanczos' and 'hutchinson'.
  """
  probe_size: int = 256
  top_k: int = 10
  modewise_k: int = 5
  dense_max_size: int = 512
  lanczos_iterations: int = 40
  num_probes: int = 16
  deflation_rank: int = 2
  probe_batch_size: int = 4
  vp_batch_size: int = 0
  cg_iterations: int = 50
  every: int = 1
  save_kernels: bool = True
  seed: int = 0

  def __post_init__(self):
    check_int('probe_size', self.probe_size, 1)
    check_int('top_k', self.top_k, 1)
    check_int('modewise_k', self.modewise_k, 1)
    check_int('dense_max_size', self.dense_max_size, 0)
    check_int('lanczos_iterations', self.lanczos_iterations, 1)
    check_int('num_probes', self.num_probes, 1)
    check_int('deflation_rank', self.deflation_rank, 0)
    check_int('probe_batch_size', self.probe_batch_size, 1)
    check_int('vp_batch_size', self.vp_batch_size, 0)
    check_int('cg_iterations', self.cg_iterations, 0)
    check_int('every', self.every, 1)
    check_int('seed', self.seed, 0)
    if not isinstance(self.save_kernels, (bool, np.bool_)):
      raise ValueError(f'save_kernels must be a bool, got {self.save_kernels!r}.')

  def replace(self, **changes) -> 'TrackingConfig':
    return dataclasses.replace(self, **changes)


def probe_indices(num_examples: int, probe_size: int, key: jax.Array) -> np.ndarray:
  """N_p distinct indices into the training set, sorted; all of them if N_p = N."""
  if probe_size > num_examples:
    raise ValueError(f'probe_size={probe_size} exceeds the {num_examples} training '
                     'examples; choose probe_size <= N.')
  if probe_size == num_examples:
    return np.arange(num_examples)
  return np.sort(np.asarray(jax.random.permutation(key, num_examples)[:probe_size]))


def _jsonable(value):
  if isinstance(value, dict):
    return {k: _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  if isinstance(value, (np.ndarray, jax.Array)):
    return _jsonable(np.asarray(value).tolist())
  if isinstance(value, (np.floating, float)):
    value = float(value)
    return value if math.isfinite(value) else None
  if isinstance(value, (np.integer,)):
    return int(value)
  if isinstance(value, (np.bool_,)):
    return bool(value)
  return value


def _hutchinson(samples: np.ndarray) -> tuple[float, float]:
  """(mean, standard error of the mean) of i.i.d. samples (se nan for one sample)."""
  mean = float(np.mean(samples))
  se = float(np.std(samples, ddof=1) / math.sqrt(len(samples))) if len(samples) > 1 \
      else float('nan')
  return mean, se


def _shift(mean_se: tuple[float, float], exact: float) -> tuple[float, float]:
  return mean_se[0] + float(exact), mean_se[1]


def _sqrt_with_se(mean: float, se: float) -> tuple[float, float]:
  """√m and its delta-method standard error se/(2√m)."""
  root = math.sqrt(max(mean, 0.0))
  return root, (se / (2.0 * root) if root > 0 else se)


class KernelTracker:
  """A `train` callback recording SPEC §4's kernel quantities on a fixed probe set.

  Usage:
    tracker = KernelTracker(model, (x, y), train_config, TrackingConfig(), workdir=...)
    variables, history = train(model, variables, (x, y), train_config,
                               callbacks=[tracker])
    tracker.arrays()   # stacked records, as saved in tracking.npz

  The first call fixes the reference θ_0 (normally epoch 0, before the first step).
  Attributes:
    records: list of dicts, one per record (numpy values).
    seconds: total time spent recording (reported apart from the training time).
    mode: 'dense' or 'matrix_free'.
    indices: (N_p,) probe indices into the training set.
  """

  def __init__(self, model, data, train_config: TrainConfig,
               config: TrackingConfig = TrackingConfig(), *,
               workdir: Optional[str] = None):
    if not isinstance(train_config, TrainConfig):
      raise ValueError(f'train_config must be a TrainConfig, got {type(train_config).__name__}.')
    if not isinstance(config, TrackingConfig):
      raise ValueError(f'config must be a TrackingConfig, got {type(config).__name__}.')
    x, y = data
    x, y = jnp.asarray(x), np.asarray(y)
    if x.ndim < 2 or y.ndim < 1 or x.shape[0] != y.shape[0]:
      raise ValueError(f'data must be (x (N, ...), y (N,) or (N, C)), got {x.shape}, {y.shape}.')
    n = x.shape[0]
    self.model = model
    self._apply = jax.jit(model.apply)   # evaluation mode
    self.train_config = train_config
    self.config = config
    self.workdir = workdir
    probe_key, self._lanczos_key, hutchinson_key = jax.random.split(
        jax.random.PRNGKey(config.seed), 3)
    self.indices = probe_indices(n, config.probe_size, probe_key)
    n_p = len(self.indices)
    for name in ('top_k', 'modewise_k'):
      if getattr(config, name) > n_p:
        raise ValueError(f'{name}={getattr(config, name)} exceeds the probe set size '
                         f'N_p={n_p}; choose {name} <= {n_p}.')
    self.mode = 'dense' if n_p <= config.dense_max_size else 'matrix_free'
    self._lanczos_iterations = min(config.lanczos_iterations, n_p)
    self._deflation_rank = min(config.deflation_rank, self._lanczos_iterations)
    if self.mode == 'matrix_free':
      needed = max(config.top_k, config.modewise_k)
      if self._lanczos_iterations < needed:
        raise ValueError(f'lanczos_iterations={config.lanczos_iterations} must be >= '
                         f'top_k and modewise_k (= {needed}).')
    self.x_p = x[self.indices]
    # Targets as (N_p, C) columns: one-hot for class labels.
    y_p = y[self.indices]
    if train_config.loss == 'cross_entropy' and y_p.ndim == 1:
      self._labels = y_p.astype(np.int64)
      self.y_p = None   # set at the first record, when the number of classes is known
    else:
      self._labels = None
      self.y_p = y_p.reshape(n_p, -1).astype(np.float64)
    self.n_p = n_p
    self.num_steps_per_epoch = steps_per_epoch(train_config, n)
    self.modewise_exact = bool(
        train_config.loss == 'mse' and train_config.optimizer == 'sgd'
        and train_config.weight_decay == 0 and train_config.batch_size in (None, n)
        and n_p == n)
    self._schedule = learning_rate_schedule(train_config, self.num_steps_per_epoch)
    self._constant_lr = (train_config.schedule == 'constant'
                         and train_config.warmup_epochs == 0)
    if self.mode == 'matrix_free':
      self._probes = jax.random.rademacher(hutchinson_key, (config.num_probes, n_p),
                                           jnp.float64 if jax.config.jax_enable_x64
                                           else jnp.float32)
      self._mf_fn = {}
    self.records: list[dict] = []
    self.seconds = 0.0
    self._reference = None   # per-record things fixed at the first record
    if workdir is not None:
      os.makedirs(workdir, exist_ok=True)
      open(os.path.join(workdir, 'tracking.jsonl'), 'w').close()

  # ---------------------------------------------------------------------------

  def _outputs(self, variables) -> np.ndarray:
    out = self._apply(variables, self.x_p)
    return np.asarray(out, np.float64).reshape(self.n_p, -1)

  def _targets(self, outputs: np.ndarray) -> np.ndarray:
    if self.y_p is None:
      self.y_p = np.eye(outputs.shape[1])[self._labels]
    return self.y_p

  def _modewise_factor(self, steps: int, eigenvalues: np.ndarray) -> np.ndarray:
    """∏_{s<steps} (1 − η_s λ_i / N_p), steps counted from the reference."""
    start = self._reference['step']
    if self._constant_lr:
      return (1.0 - self.train_config.learning_rate * eigenvalues / self.n_p) ** steps
    # int32 counts, as optax's own step counter: the same η_s to the last bit.
    counts = jnp.arange(start, start + steps, dtype=jnp.int32)
    etas = np.asarray(jax.vmap(self._schedule)(counts), np.float64)
    return np.prod(1.0 - etas[:, None] * eigenvalues[None, :] / self.n_p, axis=0)

  def _dense(self, variables, targets):
    kernel = np.asarray(empirical_ntk(self.model, variables, self.x_p), np.float64)
    kernel = 0.5 * (kernel + kernel.T)
    if not np.all(np.isfinite(kernel)):
      if self._reference is None:
        raise ValueError('the NTK at the first record has non-finite entries: check the '
                         'inputs and the initial variables.')
      # A diverging run: keep recording (training stops on its own non-finite loss).
      warnings.warn('the NTK has non-finite entries; its statistics are recorded as NaN.',
                    RuntimeWarning, stacklevel=3)
      nan = float('nan')
      rec = {k: nan for k in ('lambda_max', 'lambda_min', 'trace', 'condition_number',
                              'effective_rank', 'frobenius_norm', 'delta_frobenius',
                              'relative_delta_frobenius', 'alignment', 'arora_bound')}
      rec['top_eigenvalues'] = np.full(min(self.config.top_k, self.n_p), nan)
      return rec, kernel
    stats = analysis.kernel_statistics(kernel, top_k=self.config.top_k)
    rec = {k: stats[k] for k in ('lambda_max', 'lambda_min', 'top_eigenvalues', 'trace',
                                 'condition_number', 'effective_rank', 'frobenius_norm')}
    if self._reference is None:
      eigs, vecs = np.linalg.eigh(kernel)
      k = self.config.modewise_k
      self._reference_partial = {'kernel': kernel, 'eigenvalues': eigs[::-1][:k].copy(),
                                 'vectors': vecs[:, ::-1][:, :k].copy()}
      kernel_0 = kernel
    else:
      kernel_0 = self._reference['kernel']
    rec.update(analysis.kernel_change(kernel, kernel_0))
    rec['alignment'] = analysis.kernel_target_alignment(kernel, targets)
    rec['arora_bound'] = analysis.generalization_bound(kernel, targets)
    return rec, kernel

  def _matrix_free_fn(self, first: bool):
    """Jitted (variables, x_p, y_cols, probes, key, basis) → the products of one record.

    At the first record the deflation basis Q_0 (top Ritz vectors of Θ_0, orthonormalized)
    and the mode-wise vectors come out of the same Lanczos run; later records take Q_0.
    """
    if first in self._mf_fn:
      return self._mf_fn[first]
    model, n_p, m = self.model, self.n_p, self._lanczos_iterations
    cfg, r = self.config, self._deflation_rank

    @jax.jit
    def fn(variables, x_p, y_cols, probes, key, basis):
      vp = ntk_vp_fn(model, variables, x_p, batch_size=cfg.vp_batch_size or None)
      out = {}
      if first:
        vals, vecs = analysis.top_eigenvalues(vp, n_p, m, key=key, num_iterations=m,
                                              return_vectors=True)
        out['vectors'] = vecs[:, :cfg.modewise_k]
        basis = jnp.linalg.qr(vecs[:, :r])[0].T if r > 0 else vecs[:, :0].T
        out['basis'] = basis
      else:
        vals = analysis.top_eigenvalues(vp, n_p, m, key=key, num_iterations=m)
      dtype = vals.dtype
      product = lambda v: vp(v).astype(dtype)
      out['ritz_values'] = vals
      probes = probes.astype(dtype)
      basis = basis.astype(dtype)
      projected = probes - (probes @ basis.T) @ basis           # (I − QQᵀ) v_j
      out['probe_products'] = jax.lax.map(product, projected,
                                          batch_size=min(cfg.probe_batch_size, len(probes)))
      out['basis_products'] = (jax.lax.map(product, basis) if r > 0
                               else jnp.zeros((0, n_p), dtype))
      out['theta_y'] = jax.lax.map(product, y_cols.astype(dtype))
      if cfg.cg_iterations > 0:
        def solve(b):
          sol, _ = jax.scipy.sparse.linalg.cg(product, b, tol=1e-12,
                                              maxiter=cfg.cg_iterations)
          return sol, jnp.linalg.norm(product(sol) - b)
        out['solutions'], out['cg_residuals'] = jax.lax.map(solve, y_cols.astype(dtype))
      return out

    self._mf_fn[first] = fn
    return fn

  def _matrix_free(self, variables, targets):
    first = self._reference is None
    fn = self._matrix_free_fn(first)
    basis = (jnp.zeros((self._deflation_rank, self.n_p)) if first
             else jnp.asarray(self._reference['basis']))
    out = jax.device_get(fn(variables, self.x_p, jnp.asarray(targets.T), self._probes,
                            self._lanczos_key, basis))
    ritz = np.asarray(out['ritz_values'], np.float64)
    u = np.asarray(out['probe_products'], np.float64)       # Θ_t w_j, w_j = (I − QQᵀ) v_j
    tq = np.asarray(out['basis_products'], np.float64)      # Θ_t q_i
    if first:
      basis = np.asarray(out['basis'], np.float64)
      self._reference_partial = {
          'probe_products': u, 'basis_products': tq, 'basis': basis,
          'eigenvalues': ritz[:self.config.modewise_k].copy(),
          'vectors': np.asarray(out['vectors'], np.float64)}
      u0, tq0 = u, tq
    else:
      basis = np.asarray(self._reference['basis'], np.float64)
      u0, tq0 = self._reference['probe_products'], self._reference['basis_products']
    probes = np.asarray(self._probes, np.float64)
    projected = probes - (probes @ basis.T) @ basis
    # Exact on span(Q), Hutchinson on its complement: ‖A‖_F² = ‖AQ‖_F² + E‖A(I − QQᵀ)v‖²,
    # tr A = tr QᵀAQ + E[vᵀ(I − QQᵀ)A(I − QQᵀ)v].
    trace, trace_se = _hutchinson(np.sum(projected * u, axis=1))
    trace += float(np.sum(basis * tq))
    fro, fro_se = _sqrt_with_se(*_shift(_hutchinson(np.sum(u ** 2, axis=1)),
                                        np.sum(tq ** 2)))
    delta, delta_se = _sqrt_with_se(*_shift(_hutchinson(np.sum((u - u0) ** 2, axis=1)),
                                            np.sum((tq - tq0) ** 2)))
    fro0, fro0_se = _sqrt_with_se(*_shift(_hutchinson(np.sum(u0 ** 2, axis=1)),
                                          np.sum(tq0 ** 2)))
    relative = delta / fro0 if fro0 > 0 else float('nan')
    relative_se = relative * math.sqrt((delta_se / delta) ** 2 + (fro0_se / fro0) ** 2) \
        if delta > 0 and fro0 > 0 else float('nan')
    lambda_max, lambda_min = float(ritz[0]), float(ritz[-1])
    y_sq = float(np.sum(targets ** 2))
    rec = {
        'lambda_max': lambda_max, 'lambda_min': lambda_min,
        'top_eigenvalues': ritz[:self.config.top_k].copy(),
        'trace': trace, 'trace_stderr': trace_se,
        'condition_number': lambda_max / lambda_min if lambda_min > 0 else float('inf'),
        'effective_rank': trace ** 2 / fro ** 2 if fro > 0 else 0.0,
        'frobenius_norm': fro, 'frobenius_norm_stderr': fro_se,
        'delta_frobenius': delta, 'delta_frobenius_stderr': delta_se,
        'relative_delta_frobenius': relative, 'relative_delta_frobenius_stderr': relative_se,
        'alignment': float(np.sum(targets.T * np.asarray(out['theta_y'], np.float64)))
                     / (fro * y_sq) if fro > 0 and y_sq > 0 else float('nan'),
    }
    if self.config.cg_iterations > 0:
      solutions = np.asarray(out['solutions'], np.float64)
      quad = float(np.sum(targets.T * solutions))
      rec['arora_bound'] = math.sqrt(2.0 * max(quad, 0.0) / self.n_p)
      rec['arora_cg_relative_residual'] = float(
          np.linalg.norm(np.asarray(out['cg_residuals'])) / math.sqrt(y_sq)) \
          if y_sq > 0 else float('nan')
    else:
      rec['arora_bound'] = float('nan')
    return rec, None

  # ---------------------------------------------------------------------------

  def __call__(self, epoch: int, step: int, variables: Mapping[str, Any]) -> None:
    last = epoch == self.train_config.epochs
    if self._reference is not None and epoch % self.config.every and not last:
      return
    start = time.perf_counter()
    outputs = self._outputs(variables)
    targets = self._targets(outputs)
    if self.mode == 'dense':
      rec, kernel = self._dense(variables, targets)
    else:
      rec, kernel = self._matrix_free(variables, targets)
    if self._reference is None:
      self._reference = dict(self._reference_partial, step=step,
                             residual=outputs - targets)
      del self._reference_partial
    ref = self._reference
    if self.train_config.loss == 'mse':
      vectors, eigs = ref['vectors'], ref['eigenvalues']
      observed = vectors.T @ (outputs - targets)                     # (k, C)
      factor = self._modewise_factor(step - ref['step'], eigs)
      predicted = factor[:, None] * (vectors.T @ ref['residual'])
      if outputs.shape[1] == 1:
        observed, predicted = observed[:, 0], predicted[:, 0]
      rec.update(modewise_eigenvalues=eigs, modewise_observed=observed,
                 modewise_predicted=predicted)
    rec = {'epoch': int(epoch), 'step': int(step), **rec}
    seconds = time.perf_counter() - start
    rec['seconds'] = seconds
    if kernel is not None and self.config.save_kernels:
      rec['kernel'] = kernel
    self.records.append(rec)
    self.seconds += seconds
    if self.workdir is not None:
      self.save()
      with open(os.path.join(self.workdir, 'tracking.jsonl'), 'a') as fp:
        fp.write(json.dumps(_jsonable({k: v for k, v in rec.items() if k != 'kernel'}),
                            allow_nan=False) + '\n')

  @property
  def probes(self) -> Optional[np.ndarray]:
    """(num_probes, N_p) Rademacher probes of the matrix-free estimates (None if dense)."""
    return None if self.mode == 'dense' else np.asarray(self._probes)

  @property
  def deflation_basis(self) -> Optional[np.ndarray]:
    """(r, N_p) orthonormal Q_0ᵀ of the matrix-free estimates (after the first record)."""
    if self.mode == 'dense' or self._reference is None:
      return None
    return self._reference['basis']

  def metadata(self) -> dict:
    return {'mode': self.mode, 'probe_size': self.n_p, 'probe_indices': self.indices,
            'modewise_exact': self.modewise_exact,
            'lanczos_iterations': self._lanczos_iterations,
            'tracking_config': dataclasses.asdict(self.config),
            'train_config': dataclasses.asdict(self.train_config),
            'tracking_seconds': self.seconds}

  def arrays(self) -> dict[str, np.ndarray]:
    """The records stacked along a leading time axis, plus 'probe_indices'."""
    out = {'probe_indices': np.asarray(self.indices)}
    if self.records:
      for name in self.records[0]:
        out[name] = np.stack([np.asarray(r[name], np.float64 if name not in
                                         ('epoch', 'step') else np.int64)
                              for r in self.records])
    return out

  def save(self) -> None:
    """Writes tracking.npz (atomically) and tracking_meta.json into the workdir."""
    if self.workdir is None:
      raise ValueError('this tracker has no workdir; pass workdir= to save.')
    path = os.path.join(self.workdir, 'tracking.npz')
    tmp = path + '.tmp.npz'
    np.savez(tmp, **self.arrays())
    os.replace(tmp, path)
    with open(os.path.join(self.workdir, 'tracking_meta.json'), 'w') as fp:
      json.dump(_jsonable(self.metadata()), fp, indent=1)
