# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""One unit of a benchmark run: one model, one seed, one dataset → one result dict.

Trained units (`run_trained`) checkpoint and resume to the results of an uninterrupted run;
kernel units (`run_kernel`) do kernel regression with the infinite-width kernel; reference units
(experiments/references.py) select their own hyperparameters on the training split. Each writes
its test predictions (predictions.npz) before its result.json.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

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
  """Draws `label [#####-----] epoch/epochs loss ETA` in place on a terminal.

  Returns False (and draws nothing) when `stream` (default stderr) is not a terminal, so
  that logs and CI output get one absl line per epoch instead.
  """
  stream = sys.stderr if stream is None else stream
  if not getattr(stream, 'isatty', lambda: False)():
    return False
  filled = int(width * epoch / max(epochs, 1))
  stream.write(
      f'\r{label} [{"#" * filled}{"-" * (width - filled)}] {epoch}/{epochs}  '
      f'loss {loss:.5g}  ETA {eta}   '
  )
  if epoch >= epochs:
    stream.write('\n')
  stream.flush()
  return True


def format_seconds(seconds: float) -> str:
  seconds = int(round(seconds))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}h{m:02d}m{s:02d}s' if h else (f'{m}m{s:02d}s' if m else f'{s}s')


def run_unit(plan: plan_lib.UnitPlan, dataset) -> dict:
  """Trains or fits the unit of `plan` on `dataset`; returns its result dict. Writes the plan,
  completed for the data set (`UnitPlan.for_data`), to the unit's plan.json first."""
  plan = plan.for_data(dataset)
  files.write_json(os.path.join(plan.directory, 'plan.json'), plan.to_json())
  kind = plan.spec.kind
  if kind == 'trained':
    return run_trained(plan, dataset)
  if kind == 'reference':
    return run_reference(plan, dataset)
  return run_kernel(plan, dataset)


def save_test_predictions(unit, dataset, examples: dict) -> bool:
  """Writes unit/predictions.npz before the unit's result.json; not for search trials (their
  'test' split is a validation split). Returns whether it wrote."""
  if dataset.name.endswith('/validation'):
    return False
  evaluation.save_predictions(unit.directory, examples)
  return True


# ---------------------------------------------------------------------------------------------
# Trained units.


def _tracking_writer(unit: plan_lib.UnitPlan, model, data):
  """The unit's KernelTracker inside its TrackingWriter (unit/tracking/), or None."""
  if unit.tracking is None:
    return None
  tracker = ecrn_jax.KernelTracker(model, data, unit.train, unit.tracking)
  return ecrn_jax.TrackingWriter(tracker, os.path.join(unit.directory, 'tracking'))


def _restore(unit, checkpointer, model, variables, train_config, n, writer):
  """The `resume` argument of `ecrn_jax.train` from the last checkpoint, or None."""
  if checkpointer.latest_epoch() is None:
    return None
  fresh = training.TrainState.create(
      apply_fn=model.apply,
      params=variables['params'],
      tx=training.make_optimizer(train_config, training.steps_per_epoch(train_config, n)),
      rest={k: v for k, v in variables.items() if k != 'params'},
  )
  restored = checkpointer.restore_latest(fresh, with_tracker=writer is not None)
  if restored is None:
    return None
  _, state, host, tracker_state = restored
  rest = dict(fresh.rest)
  if 'batch_stats' in state:
    rest['batch_stats'] = state['batch_stats']
  if writer is not None:
    writer.load_state_dict(tracker_state)
  logging.info('%s: resuming from the checkpoint of epoch %d', unit.label, host['epoch'])
  return dict(
      epoch=host['epoch'],
      params=state['params'],
      opt_state=state['opt_state'],
      step=state['step'],
      history=host['history'],
      rest=rest,
  )


class EpochReporter:
  """The `checkpoint` hook of `ecrn_jax.train`: after each epoch, one metrics line, the
  progress (bar on a terminal, else a log line with the ETA), and a checkpoint every
  `every` epochs (and the last)."""

  def __init__(
      self, unit, epochs: int, every: int, first_epoch: int, metrics, checkpointer, writer
  ):
    self.unit, self.epochs, self.every, self.first_epoch = unit, epochs, every, first_epoch
    self.metrics, self.checkpointer, self.writer = metrics, checkpointer, writer
    self.start = time.perf_counter()
    self.first_done = None  # the end of this session's first epoch (compilation included)
    self.checkpoint_seconds = 0.0

  def _tracked(self, epoch: int) -> dict:
    records = self.writer.tracker.records if self.writer is not None else []
    if not records or records[-1]['epoch'] != epoch:
      return {}
    return {name: records[-1][name] for name in ('lambda_max', 'relative_delta_frobenius')}

  def _report(self, epoch: int, state, loss: float) -> None:
    elapsed = time.perf_counter() - self.start
    done = epoch - self.first_epoch
    if self.first_done is None:
      self.first_done = elapsed
    # The rate after the first epoch, which also compiles.
    rate = (elapsed - self.first_done) / (done - 1) if done > 1 else elapsed / max(done, 1)
    eta = format_seconds(rate * (self.epochs - epoch))
    self.metrics.write(
        {
            'seed': self.unit.seed,
            'model': self.unit.model,
            'epoch': epoch,
            'step': int(state.step),
            'train_loss': loss,
            **self._tracked(epoch),
            'seconds': {'elapsed': elapsed},
        }
    )
    if not progress_bar(self.unit.label, epoch, self.epochs, loss, eta):
      logging.info(
          '%s epoch %d/%d  loss %.5g  |  %.2f s/epoch, ETA %s',
          self.unit.label,
          epoch,
          self.epochs,
          loss,
          rate,
          eta,
      )

  def __call__(self, epoch: int, state, history: dict) -> None:
    if epoch > 0:
      self._report(epoch, state, history['loss'][-1])
    if epoch % self.every == 0 or epoch == self.epochs:
      start = time.perf_counter()
      tracker_state = self.writer.state_dict() if self.writer is not None else None
      self.checkpointer.save(epoch, state, history, tracker_state)
      self.checkpoint_seconds += time.perf_counter() - start


def _tracking_summary(unit, writer) -> dict:
  tracker = writer.tracker
  first, last = tracker.records[0], tracker.records[-1]
  return {
      'mode': tracker.mode,
      'probe_size': tracker.n_p,
      'lambda_max_init': first['lambda_max'],
      'lambda_max_final': last['lambda_max'],
      'relative_delta_frobenius_final': last['relative_delta_frobenius'],
      'files': os.path.relpath(writer.directory, os.path.dirname(os.path.dirname(unit.directory))),
  }


def _trained_result(unit, dataset, model, final, history, writer, reporter, start: float) -> dict:
  outputs = evaluation.network_outputs(model, final, dataset, unit.eval_batch_size)
  result = {
      'train': evaluation.output_metrics(dataset.task, outputs['train'], dataset.y_train),
      'test': evaluation.output_metrics(dataset.task, outputs['test'], dataset.y_test),
  }
  save_test_predictions(
      unit, dataset, evaluation.network_examples(dataset.task, outputs['test'], dataset.y_test)
  )
  result['diverged'] = False
  result['final_train_loss'] = history['loss'][-1] if len(history['loss']) else None
  result['num_parameters'] = int(
      sum(np.size(p) for p in jax.tree_util.tree_leaves(final['params']))
  )
  if writer is not None:
    result['tracking'] = _tracking_summary(unit, writer)
  result['seconds'] = {
      'train': history['train_seconds'],
      'callbacks': history['callback_seconds'],
      'tracking': writer.tracker.seconds if writer is not None else 0.0,
      'checkpoints_this_session': reporter.checkpoint_seconds,
      'unit_this_session': time.perf_counter() - start,
  }
  return result


def run_trained(unit: plan_lib.UnitPlan, dataset) -> dict:
  """Trains (or resumes) one network and evaluates it on the train and test splits."""
  start = time.perf_counter()
  model, variables = models.build_network(unit, dataset)
  train_config, metrics = unit.train, workdir_lib.MetricsLog(unit.metrics)
  data = (dataset.x_train, dataset.y_train)
  writer = _tracking_writer(unit, model, data)
  checkpointer = workdir_lib.Checkpointer(os.path.join(unit.directory, 'checkpoints'))
  resume = _restore(unit, checkpointer, model, variables, train_config, len(data[0]), writer)
  first_epoch = 0 if resume is None else int(resume['epoch'])
  metrics.truncate_unit(unit.seed, unit.model, -1 if resume is None else first_epoch)
  reporter = EpochReporter(
      unit,
      train_config.epochs,
      unit.checkpoint_every,
      first_epoch,
      metrics,
      checkpointer,
      writer,
  )
  result = {
      'seed': unit.seed,
      'model': unit.model,
      'kind': 'trained network',
      'train_config': dataclasses.asdict(train_config),
  }
  try:
    final, history = ecrn_jax.train(
        model,
        variables,
        data,
        train_config,
        callbacks=[writer] if writer is not None else [],
        resume=resume,
        checkpoint=reporter,
    )
  except ecrn_jax.TrainingDiverged as e:
    logging.warning('%s: %s', unit.label, e)
    result.update(
        diverged=True,
        error=str(e),
        test=None,
        train=None,
        seconds={'unit': time.perf_counter() - start},
    )
    return result
  finally:
    checkpointer.close()
  result.update(_trained_result(unit, dataset, model, final, history, writer, reporter, start))
  return result


# ---------------------------------------------------------------------------------------------
# Kernel units.


_CROSS_ENTROPY_FROM = (
    'calibrated_softmax(scores / T), scores = kernel regression on centred one-hot targets; '
    'T fitted (fit_softmax_temperature) on {folds}-fold cross-validated scores of the '
    'training points'
)


def _classify(unit, dataset, k_train, k_test, solve) -> tuple[dict, dict]:
  """Scores by kernel regression on centred one-hot targets; probabilities by a softmax whose
  temperature is fitted on K-fold cross-validated training scores. Returns (metrics and
  calibration, the test split's per-example predictions)."""
  c, labels = dataset.num_classes, np.asarray(dataset.y_train)
  targets = regression.centered_one_hot(labels.astype(np.int64), c)
  folds = int(unit.kernel.calibration_folds)
  order = input_pipeline.named_rng(unit.seed, 'calibration').permutation(len(labels))
  calibration = regression.calibrate_temperature(
      k_train, labels, c, folds=folds, order=order, **solve
  )
  out = {
      'cross_entropy_from': _CROSS_ENTROPY_FROM.format(folds=folds),
      'calibration': {'folds': folds, 'held_out_accuracy': calibration.held_out_accuracy},
      'temperature': calibration.temperature,
  }
  if calibration.held_out_accuracy == 1.0:
    out['cross_entropy_from'] = None
    out['cross_entropy_none_because'] = (
        'every cross-validated training score is classified correctly, so the fitted '
        'temperature runs to its lower bound and the cross-entropy would measure that bound'
    )
  coefficients = regression.dual_coefficients(k_train, targets, **solve)
  examples = {}
  for split, k, y in (('train', k_train, labels), ('test', k_test, dataset.y_test)):
    scores = k @ coefficients
    log_probs = None
    if out['cross_entropy_from'] is not None:
      log_probs = np.log(
          np.clip(regression.calibrated_softmax(scores, calibration.temperature), 1e-300, None)
      )
    out[split] = evaluation.classification_metrics(log_probs, scores, y)
    examples[split] = evaluation.classification_examples(log_probs, scores, y)
  return out, examples['test']


def run_kernel(unit: plan_lib.UnitPlan, dataset) -> dict:
  """Kernel regression with the infinite-width kernel of the unit's architecture."""
  start = time.perf_counter()
  kcfg, arch = unit.kernel, unit.arch  # float64
  # B drawn as the trained network's (same key and dtype), used in float64: the same B.
  variables = models.kernel_variables(unit, dataset)
  kernel_fn = ecrn_jax.batch(
      ecrn_jax.infinite_kernel_fn(arch, variables=variables), batch_size=int(kcfg.batch_size)
  )
  x_train = np.asarray(dataset.x_train, np.float64)
  k_train = kernel_fn(x_train, get=kcfg.kernel)
  k_test = kernel_fn(np.asarray(dataset.x_test, np.float64), x_train, get=kcfg.kernel)
  solve = dict(diag_reg=float(kcfg.diag_reg), t=kcfg.t)
  result = {
      'seed': unit.seed,
      'model': unit.model,
      'kind': f'infinite-width {kcfg.kernel.upper()} kernel regression',
      'architecture': dataclasses.asdict(arch),
      'diag_reg': float(kcfg.diag_reg),
      't': kcfg.t,
  }
  if dataset.task == 'regression':
    y = np.asarray(dataset.y_train, np.float64)
    coefficients = regression.dual_coefficients(k_train, y, **solve)
    result['train'] = evaluation.regression_metrics(k_train @ coefficients, y)
    predictions = k_test @ coefficients
    result['test'] = evaluation.regression_metrics(predictions, dataset.y_test)
    examples = evaluation.regression_examples(predictions, dataset.y_test)
  else:
    classified, examples = _classify(unit, dataset, k_train, k_test, solve)
    result.update(classified)
  save_test_predictions(unit, dataset, examples)
  result['seconds'] = {'unit': time.perf_counter() - start}
  return result


def run_reference(unit: plan_lib.UnitPlan, dataset) -> dict:
  """A reference (registry.REFERENCES): fitted on the training split, evaluated like the others."""
  start = time.perf_counter()
  ref = unit.reference or settings.ReferenceSettings()
  predict, details = references.fit_reference(
      unit.base, dataset, unit.seed, ref.gp_restarts, ref.gp_max_train
  )
  result = {
      'seed': unit.seed,
      'model': unit.model,
      'kind': 'reference: ' + unit.spec.description,
      **details,
  }
  examples = None
  splits = (('train', dataset.x_train, dataset.y_train), ('test', dataset.x_test, dataset.y_test))
  for split, x, y in splits:
    x = np.asarray(x, np.float64)
    if dataset.task == 'regression':
      predictions = predict(x)
      result[split] = evaluation.regression_metrics(predictions, y)
      examples = evaluation.regression_examples(predictions, y)
    else:
      log_probs, scores = predict(x)
      result[split] = evaluation.classification_metrics(log_probs, scores, y)
      examples = evaluation.classification_examples(log_probs, scores, y)
  save_test_predictions(unit, dataset, examples)
  result['seconds'] = {'unit': time.perf_counter() - start}
  return result
