# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""One unit of a benchmark run: one model, one seed, one dataset → one result dict (a trained
network that checkpoints and resumes, a kernel regression, or a reference), its test predictions
(predictions.npz) written before its result.json."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import sys
import time
from typing import Any, Optional

from absl import logging
import jax
import numpy as np

import ecrn_jax
from ecrn_jax import files
from ecrn_jax import regression
from ecrn_jax import training
from experiments import evaluation
from experiments import input_pipeline
from experiments import models
from experiments import plan as plan_lib
from experiments import references
from experiments import settings
from experiments import workdir as workdir_lib


def progress_bar(
    label: str, epoch: int, epochs: int, loss: float, eta: str, *, stream=None, width: int = 30
) -> bool:
  """Draws `label [#####-----] epoch/epochs loss ETA` in place on a terminal; returns False (and
  draws nothing) when `stream` (default stderr) is not one (logs get one line per epoch)."""
  stream = sys.stderr if stream is None else stream
  if not getattr(stream, 'isatty', lambda: False)():
    return False
  filled = int(width * epoch / max(epochs, 1))
  drawn, end = '#' * filled + '-' * (width - filled), '\n' if epoch >= epochs else ''
  stream.write(f'\r{label} [{drawn}] {epoch}/{epochs}  loss {loss:.5g}  ETA {eta}   {end}')
  stream.flush()
  return True


def format_seconds(seconds: float) -> str:
  h, rem = divmod(int(round(seconds)), 3600)
  m, s = divmod(rem, 60)
  return f'{h}h{m:02d}m{s:02d}s' if h else (f'{m}m{s:02d}s' if m else f'{s}s')


def run_unit(plan: plan_lib.UnitPlan, dataset, *, trial: bool = False) -> dict:
  """The result dict of `plan`'s unit on `dataset` (a trained network's 'seconds' its own, else
  {'unit': wall time}); writes plan.json (`UnitPlan.for_data`) first. `trial`: a search
  trial (`run_trained`)."""
  start = time.perf_counter()
  plan = plan.for_data(dataset)
  files.write_json(os.path.join(plan.directory, 'plan.json'), plan.to_json())
  if plan.spec.kind != 'kernel':
    _LAST_KERNELS.clear()
  if plan.spec.kind == 'trained':
    result = run_trained(plan, dataset, trial=trial)
  else:
    result = (run_reference if plan.spec.kind == 'reference' else run_kernel)(plan, dataset)
  result.setdefault('seconds', {'unit': time.perf_counter() - start})
  return result


def run_trial(plan: plan_lib.UnitPlan, dataset) -> dict:
  """`run_unit` of a search trial (search.select's `run_unit`)."""
  return run_unit(plan, dataset, trial=True)


def _result(unit, kind: str, **fields) -> dict:
  """The head of a unit's result dict: its seed, model and kind, then `fields`."""
  return {'seed': unit.seed, 'model': unit.model, 'kind': kind, **fields}


def _evaluate(unit, dataset, predict, inputs) -> dict:
  """{'train', 'test'} metrics of `predict` (input → `evaluation.evaluate`'s predictions) on
  `inputs`, the train and test splits'; writes the test split's predictions.npz, except for
  search trials (their 'test' split is a validation split)."""
  out = {}
  for split, x, y in zip(('train', 'test'), inputs, (dataset.y_train, dataset.y_test)):
    out[split], examples = evaluation.evaluate(dataset.task, predict(x), y)
  if not dataset.name.endswith('/validation'):
    evaluation.save_predictions(unit.directory, examples)
  return out


def restore_target(unit, model, variables, n: int) -> training.TrainState:
  """The `TrainState` of `unit`'s optimizer over `variables` (n training points) as numpy
  zeros: the shapes and dtypes a checkpoint is restored to, from `jax.eval_shape` (the
  optimizer's init is traced, not run: no program is compiled)."""
  tx = training.make_optimizer(unit.train, training.steps_per_epoch(unit.train, n))
  others = {k: v for k, v in variables.items() if k != 'params'}

  def create(params, rest):
    return training.TrainState.create(apply_fn=model.apply, params=params, tx=tx, rest=rest)

  shapes = jax.eval_shape(create, variables['params'], others)
  return jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes)


def _restore(unit, checkpointer, model, variables, n, writer):
  """The `resume` argument of `ecrn_jax.train` from the last checkpoint, or None."""
  target = restore_target(unit, model, variables, n)
  restored = checkpointer.restore_latest(target, with_tracker=writer is not None)
  if restored is None:
    return None
  _, state, host, tracker_state = restored
  rest = {k: v for k, v in variables.items() if k != 'params'}
  if 'batch_stats' in state:
    rest['batch_stats'] = state['batch_stats']
  if writer is not None:
    writer.load_state_dict(tracker_state)
  logging.info('%s: resuming from the checkpoint of epoch %d', unit.label, host['epoch'])
  resume = {k: state[k] for k in ('params', 'opt_state', 'step')}
  return dict(resume, epoch=host['epoch'], history=host['history'], rest=rest)


@dataclasses.dataclass
class EpochReporter:
  """The `checkpoint` hook of `ecrn_jax.train`: after each epoch, one metrics line, the
  progress (bar on a terminal, else a log line with the ETA), and a checkpoint every
  `unit.checkpoint_every` epochs (and the last)."""

  unit: plan_lib.UnitPlan
  first_epoch: int
  metrics: workdir_lib.MetricsLog
  checkpointer: workdir_lib.Checkpointer
  writer: Any  # ecrn_jax.TrackingWriter or None
  start: float = dataclasses.field(default_factory=time.perf_counter)
  first_done: Optional[float] = None  # the end of this session's first epoch (with compilation)
  checkpoint_seconds: float = 0.0

  def _report(self, epoch: int, state, loss: float) -> None:
    """Writes the metrics line of `epoch` and shows the progress."""
    elapsed = time.perf_counter() - self.start
    done, epochs = epoch - self.first_epoch, self.unit.train.epochs
    if self.first_done is None:
      self.first_done = elapsed
    # The rate after the first epoch, which also compiles.
    rate = (elapsed - self.first_done) / (done - 1) if done > 1 else elapsed / max(done, 1)
    eta = format_seconds(rate * (epochs - epoch))
    records = self.writer.tracker.records if self.writer is not None else []
    tracked = {}
    if records and records[-1]['epoch'] == epoch:
      tracked = {k: records[-1][k] for k in ('lambda_max', 'relative_delta_frobenius')}
    record = {'seed': self.unit.seed, 'model': self.unit.model, 'epoch': epoch}
    record.update(step=int(state.step), train_loss=loss, **tracked, seconds={'elapsed': elapsed})
    self.metrics.write(record)
    if not progress_bar(self.unit.label, epoch, epochs, loss, eta):
      line = '%s epoch %d/%d  loss %.5g  |  %.2f s/epoch, ETA %s'
      logging.info(line, self.unit.label, epoch, epochs, loss, rate, eta)

  def __call__(self, epoch: int, state, history: dict) -> None:
    if epoch > 0:
      self._report(epoch, state, history['loss'][-1])
    if epoch % self.unit.checkpoint_every == 0 or epoch == self.unit.train.epochs:
      start = time.perf_counter()
      tracker_state = self.writer.state_dict() if self.writer is not None else None
      self.checkpointer.save(epoch, state, history, tracker_state)
      self.checkpoint_seconds += time.perf_counter() - start


def _train_checkpointed(unit, model, variables, data, metrics, writer) -> tuple:
  """`ecrn_jax.train` resumed from the unit's last checkpoint (if any), checkpointing and
  reporting every epoch (`EpochReporter`): (variables, history, reporter)."""
  checkpointer = workdir_lib.Checkpointer(os.path.join(unit.directory, 'checkpoints'))
  try:
    resume = _restore(unit, checkpointer, model, variables, len(data[0]), writer)
    first_epoch = 0 if resume is None else int(resume['epoch'])
    metrics.truncate_unit(unit.seed, unit.model, -1 if resume is None else first_epoch)
    reporter = EpochReporter(unit, first_epoch, metrics, checkpointer, writer)
    callbacks = [writer] if writer is not None else []
    final, history = ecrn_jax.train(
        model, variables, data, unit.train, callbacks=callbacks, resume=resume, checkpoint=reporter
    )
  finally:
    checkpointer.close()
  return final, history, reporter


def _trial_lines(unit, metrics: workdir_lib.MetricsLog, history: dict, elapsed: float) -> None:
  """The metrics lines of a trial's epochs, written from its history once it has run: those
  `EpochReporter` writes (step = epoch × steps per epoch, a trial never resumes); 'elapsed' is
  the time at the trial's end, when they are known."""
  steps = int(history['steps_per_epoch'])
  for epoch, loss in zip(np.asarray(history['epoch']).tolist(), history['loss']):
    record = {'seed': unit.seed, 'model': unit.model, 'epoch': int(epoch)}
    record.update(step=int(epoch) * steps, train_loss=loss, seconds={'elapsed': elapsed})
    metrics.write(record)


def _train_trial(unit, model, variables, data, metrics) -> tuple[dict, dict]:
  """`ecrn_jax.train` of a search trial: no checkpoint, no per-epoch hook (so the whole trial
  runs as one compiled program where the model allows it; a killed trial reruns), its metrics
  lines written afterwards, a diverged trial's too. Returns (variables, history)."""
  start = time.perf_counter()
  metrics.truncate_unit(unit.seed, unit.model, -1)
  try:
    final, history = ecrn_jax.train(model, variables, data, unit.train)
  except ecrn_jax.TrainingDiverged as e:
    _trial_lines(unit, metrics, e.history, time.perf_counter() - start)
    raise
  elapsed = time.perf_counter() - start
  _trial_lines(unit, metrics, history, elapsed)
  epochs, loss = unit.train.epochs, (history['loss'][-1] if np.size(history['loss']) else math.nan)
  logging.info('%s %d epochs  loss %.5g  |  %.2f s', unit.label, epochs, loss, elapsed)
  return final, history


def run_trained(unit: plan_lib.UnitPlan, dataset, *, trial: bool = False) -> dict:
  """Trains (or resumes) one network and evaluates it on the train and test splits. A search
  trial (`trial`, untracked) runs without checkpoints (`_train_trial`)."""
  start = time.perf_counter()
  model, variables = models.build_network(unit, dataset)
  metrics = workdir_lib.MetricsLog(unit.metrics)
  data = (dataset.x_train, dataset.y_train)
  writer = reporter = None
  if unit.tracking is not None:
    tracker = ecrn_jax.KernelTracker(model, data, unit.train, unit.tracking)
    writer = ecrn_jax.TrackingWriter(tracker, os.path.join(unit.directory, 'tracking'))
  result = _result(unit, 'trained network', train_config=dataclasses.asdict(unit.train))
  try:
    if trial and writer is None:
      final, history = _train_trial(unit, model, variables, data, metrics)
    else:
      final, history, reporter = _train_checkpointed(unit, model, variables, data, metrics, writer)
  except ecrn_jax.TrainingDiverged as e:
    logging.warning('%s: %s', unit.label, e)
    result.update(diverged=True, error=str(e), test=None, train=None)
    return result

  def predict(x):
    return evaluation.network_predictions(dataset.task, model, final, x, unit.eval_batch_size)

  result.update(_evaluate(unit, dataset, predict, (dataset.x_train, dataset.x_test)))
  result['diverged'] = False
  result['final_train_loss'] = history['loss'][-1] if len(history['loss']) > 0 else None
  leaves = jax.tree_util.tree_leaves(final['params'])
  result['num_parameters'] = int(sum(np.size(p) for p in leaves))
  if writer is not None:
    first, last = writer.tracker.records[0], writer.tracker.records[-1]
    workdir = os.path.dirname(os.path.dirname(unit.directory))
    result['tracking'] = {
        'mode': writer.tracker.mode,
        'probe_size': writer.tracker.n_p,
        'lambda_max_init': first['lambda_max'],
        'lambda_max_final': last['lambda_max'],
        'relative_delta_frobenius_final': last['relative_delta_frobenius'],
        'files': os.path.relpath(writer.directory, workdir),
    }
  result['seconds'] = {
      'train': history['train_seconds'],
      'callbacks': history['callback_seconds'],
      'tracking': writer.tracker.seconds if writer is not None else 0.0,
      'checkpoints_this_session': 0.0 if reporter is None else reporter.checkpoint_seconds,
      'unit_this_session': time.perf_counter() - start,
  }
  return result


def _classifier(unit, dataset, k_train, solve):
  """(calibration record, predict): scores by kernel regression on centred one-hot targets;
  probabilities by a softmax whose temperature is fitted on K-fold cross-validated training
  scores. predict(k) gives (log-probabilities or None, scores) of kernel rows k."""
  c, labels = dataset.num_classes, np.asarray(dataset.y_train)
  folds = int(unit.kernel.calibration_folds)
  order = input_pipeline.named_rng(unit.seed, 'calibration').permutation(len(labels))
  calibration = regression.calibrate_temperature(
      k_train, labels, c, folds=folds, order=order, **solve
  )
  out = {
      'cross_entropy_from': (
          'calibrated_softmax(scores / T), scores = kernel regression on centred one-hot '
          f'targets; T fitted (fit_softmax_temperature) on {folds}-fold cross-validated scores '
          'of the training points'
      ),
      'calibration': {'folds': folds, 'held_out_accuracy': calibration.held_out_accuracy},
      'temperature': calibration.temperature,
  }
  if calibration.held_out_accuracy == 1.0:
    out['cross_entropy_from'] = None
    out['cross_entropy_none_because'] = (
        'every cross-validated training score is classified correctly, so the fitted '
        'temperature runs to its lower bound and the cross-entropy would measure that bound'
    )
  targets = regression.centered_one_hot(labels.astype(np.int64), c)
  coefficients = regression.dual_coefficients(k_train, targets, **solve)

  def predict(k):
    scores = k @ coefficients
    if calibration.held_out_accuracy == 1.0:
      return None, scores
    probs = regression.calibrated_softmax(scores, calibration.temperature)
    return np.log(np.clip(probs, 1e-300, None)), scores

  return out, predict


# The kernels (train, test) of the last kernel unit, by what determines them: the next unit on
# the same kernel (the trials of a ridge sweep, a twin's seeds on fixed data) reuses them.
# Emptied when a unit of another kind starts, so no kernel is held while a network trains.
_LAST_KERNELS: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _digest(*arrays) -> str:
  """A SHA-256 of the arrays' shapes, dtypes and bytes."""
  digest = hashlib.sha256()
  for a in arrays:
    a = np.ascontiguousarray(a)
    digest.update(f'{a.shape}{a.dtype.str}'.encode())
    digest.update(a.view(np.uint8).reshape(-1) if a.size else b'')
  return digest.hexdigest()


def _read_only(k) -> np.ndarray:
  """`k` (NumPy, from `ecrn_jax.batch`), locked: a reused kernel cannot be changed in place."""
  k = np.asarray(k)
  k.flags.writeable = False
  return k


def run_kernel(unit: plan_lib.UnitPlan, dataset) -> dict:
  """Kernel regression with the infinite-width kernel of the unit's architecture."""
  kcfg, arch = unit.kernel, unit.arch  # float64
  # B drawn as the trained network's (same key and dtype), used in float64: the same B.
  variables = models.kernel_variables(unit, dataset)
  kernel_fn = ecrn_jax.batch(
      ecrn_jax.infinite_kernel_fn(arch, variables=variables), batch_size=int(kcfg.batch_size)
  )
  x_train, x_test = (np.asarray(x, np.float64) for x in (dataset.x_train, dataset.x_test))
  leaves, tree = jax.tree_util.tree_flatten(variables)
  key = (
      repr(arch),
      kcfg.kernel,
      int(kcfg.batch_size),
      str(tree),
      _digest(x_train, x_test, *leaves),
  )
  if key not in _LAST_KERNELS:
    _LAST_KERNELS.clear()  # before the new kernels are computed: one pair held at a time
    k_train = kernel_fn(x_train, get=kcfg.kernel)
    k_test = kernel_fn(x_test, x_train, get=kcfg.kernel)
    _LAST_KERNELS[key] = tuple(_read_only(k) for k in (k_train, k_test))
  k_train, k_test = _LAST_KERNELS[key]
  solve = dict(diag_reg=float(kcfg.diag_reg), t=kcfg.t)
  kind = f'infinite-width {kcfg.kernel.upper()} kernel regression'
  result = _result(unit, kind, architecture=dataclasses.asdict(arch), **solve)
  if dataset.task == 'regression':
    y = np.asarray(dataset.y_train, np.float64)
    coefficients = regression.dual_coefficients(k_train, y, **solve)
    predict = lambda k: k @ coefficients
  else:
    calibration, predict = _classifier(unit, dataset, k_train, solve)
    result.update(calibration)
  result.update(_evaluate(unit, dataset, predict, (k_train, k_test)))
  return result


def run_reference(unit: plan_lib.UnitPlan, dataset) -> dict:
  """A reference (registry.REFERENCES): fitted on the training split, evaluated like the others."""
  ref = unit.reference or settings.ReferenceSettings()
  predict, details = references.fit_reference(
      unit.base, dataset, unit.seed, ref.gp_restarts, ref.gp_max_train
  )
  result = _result(unit, 'reference: ' + unit.spec.description)
  inputs = [np.asarray(x, np.float64) for x in (dataset.x_train, dataset.x_test)]
  result.update(**details, **_evaluate(unit, dataset, predict, inputs))
  return result
