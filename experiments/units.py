# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""One unit of a benchmark run: one model, one seed, one dataset → one result dict.

A trained unit (`run_trained`) trains a network with `ecrn_jax.train`, kernel-tracked when
the config asks, checkpointing every `checkpoint_every` epochs; started again it restores the
last checkpoint and continues, and its results equal an uninterrupted run's (batch orders and
dropout keys depend only on (seed, epoch, step); timings aside, under 'seconds' keys).
A kernel unit (`run_kernel`) is kernel regression with an infinite-width kernel; the training
kernel is factored once for the training and test predictions. A reference unit
(`run_reference`, models.REFERENCES) fits a classical estimator (scikit-learn, or the mixture's
known generator) that selects its own hyperparameters on the training split only.
Every unit writes its per-example test predictions to unit/predictions.npz
(`save_test_predictions`) before it returns, so before its result.json exists.
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
from experiments import evaluation
from experiments import input_pipeline
from experiments import models
from experiments import workdir as workdir_lib


@dataclasses.dataclass
class Unit:
  seed: int
  model: str
  directory: str
  label: str


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


def run_unit(unit: Unit, config, dataset, metrics: workdir_lib.MetricsLog) -> dict:
  """Trains or fits `unit.model` with `config` on `dataset`; returns its result dict."""
  kind = models.spec(config, unit.model).kind
  if kind == 'trained':
    return run_trained(unit, config, dataset, metrics)
  if kind == 'reference':
    return run_reference(unit, config, dataset)
  return run_kernel(unit, config, dataset)


def save_test_predictions(unit: Unit, dataset, examples: dict) -> bool:
  """Writes unit/predictions.npz (`evaluation.save_predictions`) for a unit's test split.

  Called before the unit returns, so before train.py writes its result.json: a finished unit
  always has one. Not for search trials (whose dataset is the '/validation' part of
  `input_pipeline.split_validation`: their 'test' split is a validation split). Returns
  whether it wrote.
  """
  if dataset.name.endswith('/validation'):
    return False
  evaluation.save_predictions(unit.directory, examples)
  return True


# ---------------------------------------------------------------------------------------------
# Trained units.


def _tracking_writer(unit: Unit, config, model, data, train_config):
  """The unit's KernelTracker inside its TrackingWriter (unit/tracking/), or None."""
  if not models.is_tracked(config, unit.model):
    return None
  tracking = models.tracking_config(config, len(data[0]))
  tracker = ecrn_jax.KernelTracker(model, data, train_config, tracking)
  return ecrn_jax.TrackingWriter(tracker, os.path.join(unit.directory, 'tracking'))


def _restore(unit: Unit, checkpointer, model, variables, train_config, n, writer):
  """The `resume` argument of `ecrn_jax.train` from the last checkpoint, or None."""
  if checkpointer.latest_epoch() is None:
    return None
  fresh = ecrn_jax.TrainState.create(
      apply_fn=model.apply,
      params=variables['params'],
      tx=ecrn_jax.make_optimizer(train_config, ecrn_jax.steps_per_epoch(train_config, n)),
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
      self, unit: Unit, epochs: int, every: int, first_epoch: int, metrics, checkpointer, writer
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


def _tracking_summary(unit: Unit, writer) -> dict:
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


def _trained_result(
    unit: Unit, config, dataset, model, final, history, writer, reporter, start: float
) -> dict:
  outputs = evaluation.network_outputs(model, final, dataset, int(config.eval_batch_size))
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


def run_trained(unit: Unit, config, dataset, metrics: workdir_lib.MetricsLog) -> dict:
  """Trains (or resumes) one network and evaluates it on the train and test splits."""
  start = time.perf_counter()
  model, variables = models.build_network(config, unit.model, dataset, unit.seed)
  loss = 'mse' if dataset.task == 'regression' else 'cross_entropy'
  train_config = models.train_config(config, loss, unit.seed)
  data = (dataset.x_train, dataset.y_train)
  writer = _tracking_writer(unit, config, model, data, train_config)
  checkpointer = workdir_lib.Checkpointer(os.path.join(unit.directory, 'checkpoints'))
  resume = _restore(unit, checkpointer, model, variables, train_config, len(data[0]), writer)
  first_epoch = 0 if resume is None else int(resume['epoch'])
  metrics.truncate_unit(unit.seed, unit.model, -1 if resume is None else first_epoch)
  reporter = EpochReporter(
      unit,
      train_config.epochs,
      int(config.checkpoint_every),
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
  result.update(
      _trained_result(unit, config, dataset, model, final, history, writer, reporter, start)
  )
  return result


# ---------------------------------------------------------------------------------------------
# Kernel units.


_CROSS_ENTROPY_FROM = (
    'calibrated_softmax(scores / T), scores = kernel regression on centred one-hot targets; '
    'T fitted (fit_softmax_temperature) on {folds}-fold cross-validated scores of the '
    'training points'
)


def _classify(unit: Unit, config, dataset, k_train, k_test, solve) -> tuple[dict, dict]:
  """Scores by kernel regression on centred one-hot targets; probabilities by a softmax whose
  temperature is fitted on K-fold cross-validated training scores. Returns (metrics and
  calibration, the test split's per-example predictions)."""
  c, labels = dataset.num_classes, np.asarray(dataset.y_train)
  targets = ecrn_jax.centered_one_hot(labels.astype(np.int64), c)
  folds = int(config.kernel.calibration_folds)
  order = input_pipeline.named_rng(unit.seed, 'calibration').permutation(len(labels))
  calibration = ecrn_jax.calibrate_temperature(
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
  coefficients = ecrn_jax.dual_coefficients(k_train, targets, **solve)
  examples = {}
  for split, k, y in (('train', k_train, labels), ('test', k_test, dataset.y_test)):
    scores = k @ coefficients
    log_probs = None
    if out['cross_entropy_from'] is not None:
      log_probs = np.log(
          np.clip(ecrn_jax.calibrated_softmax(scores, calibration.temperature), 1e-300, None)
      )
    out[split] = evaluation.classification_metrics(log_probs, scores, y)
    examples[split] = evaluation.classification_examples(log_probs, scores, y)
  return out, examples['test']


def run_kernel(unit: Unit, config, dataset) -> dict:
  """Kernel regression with the infinite-width kernel of the unit's architecture."""
  start = time.perf_counter()
  kcfg = config.kernel
  arch = models.arch_config(config, unit.model, dataset, dtype='float64')
  # B drawn as the trained network's (same key and dtype), used in float64: the same B.
  variables = models.kernel_variables(config, unit.model, dataset, unit.seed)
  common = dict(variables=variables, get=kcfg.kernel, batch_size=int(kcfg.batch_size))
  x_train = np.asarray(dataset.x_train, np.float64)
  k_train = ecrn_jax.batched_infinite_kernels(arch, x_train, **common)
  k_test = ecrn_jax.batched_infinite_kernels(
      arch, np.asarray(dataset.x_test, np.float64), x_train, **common
  )
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
    coefficients = ecrn_jax.dual_coefficients(k_train, y, **solve)
    result['train'] = evaluation.regression_metrics(k_train @ coefficients, y)
    predictions = k_test @ coefficients
    result['test'] = evaluation.regression_metrics(predictions, dataset.y_test)
    examples = evaluation.regression_examples(predictions, dataset.y_test)
  else:
    classified, examples = _classify(unit, config, dataset, k_train, k_test, solve)
    result.update(classified)
  save_test_predictions(unit, dataset, examples)
  result['seconds'] = {'unit': time.perf_counter() - start}
  return result


# ---------------------------------------------------------------------------------------------
# Reference units: classical estimators beside the paper's models (no search: each selects its
# own hyperparameters on the training split only).

SVM_C = (0.1, 1.0, 10.0, 100.0)
SVM_GAMMA_FACTORS = (0.03, 0.1, 0.3, 1.0, 3.0)  # γ = factor / d (1/d: sklearn's 'scale')
CV_FOLDS = 5  # rbf_svm: folds of the (C, γ) selection and of the probability calibration
GP_RESTARTS = 2  # gp_ard: optimizer restarts from random hyperparameters (seeded)
_LOG_FLOOR = float(np.log(1e-300))


def _full_log_probs(log_probs, classes, num_classes: int) -> np.ndarray:
  """(M, num_classes) log-probabilities from an estimator's columns for `classes` (a class
  absent from the training split gets probability 0), floored at log(1e-300)."""
  out = np.full((len(log_probs), num_classes), -np.inf)
  out[:, np.asarray(classes, np.int64)] = log_probs
  return np.maximum(out, _LOG_FLOOR)


def _folds(labels, seed: int):
  from sklearn.model_selection import StratifiedKFold  # pylint: disable=g-import-not-at-top

  smallest = int(np.min(np.bincount(labels)[np.unique(labels)]))
  return StratifiedKFold(max(2, min(CV_FOLDS, smallest)), shuffle=True, random_state=seed)


def _lda(x, y, num_classes: int, seed: int):
  del seed
  from sklearn import discriminant_analysis  # pylint: disable=g-import-not-at-top

  lda = discriminant_analysis.LinearDiscriminantAnalysis().fit(x, y)

  def predict(z):
    log_probs = _full_log_probs(lda.predict_log_proba(z), lda.classes_, num_classes)
    return log_probs, log_probs

  return predict, {'estimator': 'sklearn LinearDiscriminantAnalysis(solver="svd")'}


def _rbf_svm(x, y, num_classes: int, seed: int):
  """SVC with (C, γ) of the best 5-fold CV accuracy on (x, y); scores: its one-vs-rest decision
  function; probabilities: sigmoid calibration on 5-fold cross-validated decision values."""
  from sklearn.calibration import CalibratedClassifierCV  # pylint: disable=g-import-not-at-top
  from sklearn.model_selection import GridSearchCV  # pylint: disable=g-import-not-at-top
  from sklearn.svm import SVC  # pylint: disable=g-import-not-at-top

  grid = {'C': list(SVM_C), 'gamma': [f / x.shape[1] for f in SVM_GAMMA_FACTORS]}
  search = GridSearchCV(SVC(kernel='rbf'), grid, cv=_folds(y, seed), scoring='accuracy').fit(x, y)
  svc = search.best_estimator_  # refitted on all of (x, y)
  calibrated = CalibratedClassifierCV(
      SVC(kernel='rbf', **search.best_params_), method='sigmoid', cv=_folds(y, seed), ensemble=False
  ).fit(x, y)

  def predict(z):
    decision = svc.decision_function(z)
    if decision.ndim == 1:  # two classes: the second's margin
      decision = np.stack([-decision, decision], axis=1)
    scores = np.full((len(z), num_classes), -np.inf)
    scores[:, svc.classes_] = decision
    log_probs = np.log(np.clip(calibrated.predict_proba(z), 1e-300, None))
    return _full_log_probs(log_probs, calibrated.classes_, num_classes), scores

  details = {
      'estimator': 'sklearn SVC(kernel="rbf"), one-vs-rest decision function',
      'selected': search.best_params_,
      'cv_accuracy': float(search.best_score_),
      'grid': grid,
      'probabilities': 'CalibratedClassifierCV(method="sigmoid", ensemble=False)',
      'cv_folds': search.n_splits_,
  }
  return predict, details


def _bayes_optimal(dataset):
  """The posterior under the mixture's known generator (dataset.info, sources.py)."""
  from experiments import sources  # pylint: disable=g-import-not-at-top

  info = dataset.info
  if info.get('means') is None:
    raise ValueError('bayes_optimal needs the synthetic mixture (its generator is unknown here).')
  mean = np.asarray(info['feature_mean'], np.float64)
  std = np.asarray(info['feature_std'], np.float64)

  def predict(z):
    x_raw = np.asarray(z, np.float64) * std + mean  # undo the standardization
    log_probs = sources.mixture_log_posterior(
        x_raw, info['means'], info['covariance_sqrt'], info['class_weights']
    )
    return log_probs, log_probs

  return predict, {'estimator': 'posterior argmax under the known generator (no fit)'}


def _linear(x, y, seed: int):
  del seed
  from sklearn.linear_model import LinearRegression  # pylint: disable=g-import-not-at-top

  return LinearRegression().fit(x, y).predict, {'estimator': 'sklearn LinearRegression'}


def _gp_ard(x, y, seed: int, restarts: int = GP_RESTARTS):
  """GP regression, C·RBF(ARD) + white noise, hyperparameters by marginal likelihood."""
  import warnings  # pylint: disable=g-import-not-at-top

  from sklearn.exceptions import ConvergenceWarning  # pylint: disable=g-import-not-at-top
  from sklearn import gaussian_process  # pylint: disable=g-import-not-at-top
  from sklearn.gaussian_process import kernels  # pylint: disable=g-import-not-at-top

  kernel = kernels.ConstantKernel(1.0, (1e-3, 1e3)) * kernels.RBF(
      np.ones(x.shape[1]), (1e-2, 1e3)
  ) + kernels.WhiteKernel(0.1, (1e-6, 1e1))
  gp = gaussian_process.GaussianProcessRegressor(
      kernel, normalize_y=True, n_restarts_optimizer=restarts, random_state=seed
  )
  with warnings.catch_warnings():  # a length scale at its upper bound: an irrelevant feature
    warnings.simplefilter('ignore', ConvergenceWarning)
    gp.fit(x, y)
  details = {
      'estimator': (
          'sklearn GaussianProcessRegressor(normalize_y=True), ConstantKernel·RBF(ARD)'
          f' + WhiteKernel, {restarts} seeded restarts'
      ),
      'kernel': str(gp.kernel_),
      'log_marginal_likelihood': float(gp.log_marginal_likelihood_value_),
  }
  return gp.predict, details


def fit_reference(name: str, dataset, seed: int, gp_restarts: int = GP_RESTARTS, gp_max_train=None):
  """(predict, details) of reference `name` fitted on dataset's training split only: predict(x)
  gives predictions (regression) or (log-probabilities, scores), both (M, C)."""
  task = models.REGISTRY[name].task
  if task is not None and task != dataset.task:
    raise ValueError(f'reference {name!r} is for {task}, but {dataset.name} is {dataset.task}.')
  x = np.asarray(dataset.x_train, np.float64)
  y = np.asarray(dataset.y_train)
  if name == 'bayes_optimal':
    return _bayes_optimal(dataset)
  if name == 'gp_ard':
    n = len(x) if gp_max_train is None else int(gp_max_train)  # smoke: the first n only
    predict, details = _gp_ard(x[:n], y[:n].astype(np.float64), seed, gp_restarts)
    return predict, {**details, 'fitted_on_training_points': min(n, len(x))}
  if name == 'linear':
    return _linear(x, y.astype(np.float64), seed)
  fit = {'lda': _lda, 'rbf_svm': _rbf_svm}[name]
  return fit(x, y.astype(np.int64), dataset.num_classes, seed)


def run_reference(unit: Unit, config, dataset) -> dict:
  """A reference (models.REFERENCES): fitted on the training split, evaluated like the others."""
  start = time.perf_counter()
  name = models.base_model(config, unit.model)
  settings = config.get('reference') or {}
  predict, details = fit_reference(
      name,
      dataset,
      unit.seed,
      int(settings.get('gp_restarts', GP_RESTARTS)),
      settings.get('gp_max_train'),
  )
  result = {
      'seed': unit.seed,
      'model': unit.model,
      'kind': 'reference: ' + models.REGISTRY[name].description,
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
