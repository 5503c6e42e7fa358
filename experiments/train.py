"""The SPEC §5 benchmarks: `train_and_evaluate(config, workdir)`.

For each seed in `config.seeds` and each model in `config.models` (a *unit*), trains or fits
the model and evaluates it on the test split. Workdir layout:

  config.json                  the resolved config (written by `prepare_workdir`)
  metrics.jsonl                one JSON line per epoch of each trained unit (and one per unit
                               result), `{"seed", "model", "epoch", ...}`
  results.json                 every finished unit, and mean ± std over seeds per model
  seed_<s>/<model>/result.json the unit's result: its presence marks the unit as done
  seed_<s>/<model>/tracking/   the KernelTracker's tracking.npz / .jsonl / _meta.json
  seed_<s>/<model>/checkpoints/ orbax checkpoints (params, optimizer state, history and the
                               tracker's state), every `checkpoint_every` epochs

Resuming: a run started again on the same workdir skips finished units, restores an
unfinished trained unit from its last checkpoint and continues; batch orders and dropout keys
depend only on (seed, epoch, step), so the results equal an uninterrupted run's (timings
aside: they are under 'seconds' keys). All JSON files are written atomically.

Models: see `MODELS`; `config.variants` adds named variants of them (ablations), and
`config.search` selects every model's hyperparameters on a validation split first
(experiments/search.py: search.json, search/<model>/trial_<k>/).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import os
import pickle
import shutil
import sys
import tempfile
import time
from typing import Any, Callable, Optional

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import ecrn_jax
from ecrn_jax._src import tracking as tracking_lib
from ecrn_jax._src import training as training_lib

TRAINED_MODELS = ('ntk_ecrn', 'mlp', 'resnet18')
KERNEL_MODELS = ('standard_ntk', 'ntk_ecrn_infinite')
MODELS = TRAINED_MODELS + KERNEL_MODELS


# ---------------------------------------------------------------------------------------------
# Files.


def _jsonable(value):
  return tracking_lib._jsonable(value)  # pylint: disable=protected-access


def write_json(path: str, obj, indent: Optional[int] = 1) -> None:
  """Writes JSON atomically: a temporary file in the same directory, then os.replace."""
  directory = os.path.dirname(path) or '.'
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.' + os.path.basename(path), suffix='.tmp')
  try:
    with os.fdopen(fd, 'w') as f:
      json.dump(_jsonable(obj), f, indent=indent, allow_nan=False)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def read_json(path: str):
  with open(path) as f:
    return json.load(f)


def config_to_dict(config: ml_collections.ConfigDict) -> dict:
  return json.loads(json.dumps(_jsonable(config.to_dict())))


def prepare_workdir(workdir: str, name: str, config: ml_collections.ConfigDict, *,
                    overwrite: bool = False) -> None:
  """Creates `workdir` with config.json, or checks that it belongs to this config.

  A non-empty workdir whose config.json differs (or that has none) is refused unless
  `overwrite`, which empties it first. The same config continues (resumes) the run.
  """
  resolved = {'name': name, 'config': config_to_dict(config)}
  path = os.path.join(workdir, 'config.json')
  if os.path.isdir(workdir) and os.listdir(workdir):
    previous = None
    if os.path.exists(path):
      try:
        previous = read_json(path)
      except ValueError:
        previous = None
    if previous != resolved:
      if not overwrite:
        what = (f"config {previous.get('name')!r} with other values" if previous
                else 'files of another run (no readable config.json)')
        raise FileExistsError(
            f'workdir {workdir} holds {what}; choose another --workdir, or pass --overwrite '
            'to delete its contents.')
      logging.warning('--overwrite: deleting the contents of %s', workdir)
      for entry in os.listdir(workdir):
        full = os.path.join(workdir, entry)
        if os.path.isdir(full) and not os.path.islink(full):
          shutil.rmtree(full)
        else:
          os.remove(full)
    else:
      logging.info('workdir %s holds this config: resuming', workdir)
  os.makedirs(workdir, exist_ok=True)
  write_json(path, resolved)


class MetricsLog:
  """metrics.jsonl: appends lines; `truncate_unit` drops a unit's lines past an epoch."""

  def __init__(self, path: str):
    self.path = path

  def write(self, record: dict) -> None:
    with open(self.path, 'a') as f:
      f.write(json.dumps(_jsonable(record), allow_nan=False) + '\n')
      f.flush()

  def truncate_unit(self, seed: int, model: str, after_epoch: int) -> None:
    """Removes the lines of (seed, model) with epoch > after_epoch (or with no epoch)."""
    if not os.path.exists(self.path):
      return
    kept = []
    with open(self.path) as f:
      for line in f:
        try:
          rec = json.loads(line)
        except ValueError:
          continue  # a line cut by a kill
        if (rec.get('seed') == seed and rec.get('model') == model
            and (rec.get('epoch') is None or rec['epoch'] > after_epoch)):
          continue
        kept.append(line if line.endswith('\n') else line + '\n')
    tmp = self.path + '.tmp'
    with open(tmp, 'w') as f:
      f.writelines(kept)
    os.replace(tmp, self.path)


# ---------------------------------------------------------------------------------------------
# Metrics.


def regression_metrics(predictions, targets) -> dict:
  p = np.asarray(predictions, np.float64).reshape(-1)
  y = np.asarray(targets, np.float64).reshape(-1)
  mse = float(np.mean((p - y) ** 2))
  sst = float(np.sum((y - y.mean()) ** 2))
  return {'mse': mse, 'r2': 1.0 - float(np.sum((p - y) ** 2)) / sst if sst > 0 else None}


def classification_metrics(log_probs: Optional[np.ndarray], scores, labels) -> dict:
  labels = np.asarray(labels)
  accuracy = float(np.mean(np.argmax(np.asarray(scores), axis=-1) == labels))
  out = {'accuracy': accuracy, 'cross_entropy': None}
  if log_probs is not None:
    out['cross_entropy'] = 0.0 - float(np.mean(np.asarray(log_probs, np.float64)
                                               [np.arange(len(labels)), labels]))
  return out


def _log_softmax(scores: np.ndarray) -> np.ndarray:
  import scipy.special  # pylint: disable=g-import-not-at-top
  return scipy.special.log_softmax(np.asarray(scores, np.float64), axis=-1)


# ---------------------------------------------------------------------------------------------
# Models.


def _fourier_scale(config: ml_collections.ConfigDict, input_dim: int) -> float:
  scale = config.ecrn.fourier_scale
  if scale is not None:
    return float(scale)
  return float(config.ecrn.get('fourier_scale_factor', 1.0)) / (
      2.0 * math.pi * math.sqrt(input_dim))


def ecrn_config(config, dataset, **changes) -> ecrn_jax.ECRNConfig:
  fields = config.ecrn.to_dict()
  fields.pop('fourier_scale_factor', None)
  fields['fourier_scale'] = _fourier_scale(config, dataset.x_train.shape[1])
  for name in ('alpha', 'drop_rate'):
    if isinstance(fields[name], list):
      fields[name] = tuple(fields[name])
  fields.update(out_dim=max(dataset.num_classes, 1), **changes)
  return ecrn_jax.ECRNConfig(**fields)


def mlp_config(config, dataset, **changes) -> ecrn_jax.MLPConfig:
  fields = config.mlp.to_dict()
  fields['hidden_widths'] = tuple(fields['hidden_widths'])
  fields.update(out_dim=max(dataset.num_classes, 1), **changes)
  return ecrn_jax.MLPConfig(**fields)


def _model_key(seed: int, model: str) -> jax.Array:
  # The ECRN and its infinite twin share the key: the twin uses the trained ECRN's B.
  index = {'ntk_ecrn': 0, 'ntk_ecrn_infinite': 0, 'mlp': 1, 'standard_ntk': 1,
           'resnet18': 2}[model]
  return jax.random.fold_in(jax.random.PRNGKey(seed), index)


def is_image_dataset(dataset) -> bool:
  return dataset.info.get('standardize_channels') is not None


def resnet18_module(config, dataset):
  """CIFAR ResNet-18 for images; for vector data its stand-in, the 18-layer residual MLP."""
  from experiments import models  # pylint: disable=g-import-not-at-top
  cfg = config.resnet18
  if is_image_dataset(dataset):
    channels = int(dataset.info['standardize_channels'])
    side = int(round(math.sqrt(dataset.x_train.shape[1] / channels)))
    return models.ResNet18(num_classes=max(dataset.num_classes, 1),
                           image_shape=(side, side, channels), width=int(cfg.width),
                           augment=bool(cfg.augment), dtype=cfg.dtype)
  return models.ResidualMLP18(out_dim=max(dataset.num_classes, 1),
                              widths=tuple(cfg.mlp_widths), dtype=cfg.dtype)


def _build_network(name: str, config, dataset, seed: int):
  """(module, variables) of a trained model (`name` a base model, not a variant)."""
  if name == 'ntk_ecrn':
    model = ecrn_jax.ECRN(ecrn_config(config, dataset))
  elif name == 'mlp':
    model = ecrn_jax.MLP(mlp_config(config, dataset))
  elif name == 'resnet18':
    model = resnet18_module(config, dataset)
  else:
    raise ValueError(f'no network builder for {name!r}.')
  variables = model.init(_model_key(seed, name), dataset.x_train[:1])
  return model, variables


def check_models(config) -> None:
  """Every name in config.models is a model or a variant of one (config.variants)."""
  variants = config.get('variants') or {}
  for name, variant in variants.items():
    if variant.get('base') not in MODELS:
      raise ValueError(f'variants.{name}.base must be one of {list(MODELS)}, got '
                       f'{variant.get("base")!r}.')
  for name in config.models:
    if name not in MODELS and name not in variants:
      raise ValueError(f'unknown model {name!r} in config.models; valid: {list(MODELS)} and '
                       f'the variants {sorted(variants)}.')
  from experiments import search as search_lib  # pylint: disable=g-import-not-at-top
  search_lib.check(config)


# ---------------------------------------------------------------------------------------------
# Checkpoints.


class _Checkpointer:
  """Orbax CheckpointManager of a trained unit: step = epoch.

  Items: 'state' (params, optimizer state and step as numpy arrays: orbax 0.11.24 cannot save
  jax.Arrays with jax 0.5.3) and 'host' (JSON: the history and the tracker's state, pickled).
  Saves are synchronous; orbax finalizes a step atomically, so a killed save leaves the last
  complete one as the latest.
  """

  def __init__(self, directory: str):
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
    self._ocp = ocp
    self.manager = ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True,
                                             cleanup_tmp_directories=True,
                                             enable_async_checkpointing=False))

  def latest_epoch(self) -> Optional[int]:
    return self.manager.latest_step()

  def save(self, epoch: int, state, host: dict) -> None:
    ocp = self._ocp
    tree = jax.tree_util.tree_map(np.asarray, self._items(state))
    blob = base64.b64encode(pickle.dumps(host, protocol=4)).decode('ascii')
    self.manager.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                                     host=ocp.args.JsonSave({'blob': blob})),
                      force=True)
    self.manager.wait_until_finished()

  @staticmethod
  def _items(state) -> dict:
    items = {'params': state.params, 'opt_state': state.opt_state, 'step': state.step}
    if getattr(state, 'rest', None) and 'batch_stats' in state.rest:
      items['batch_stats'] = state.rest['batch_stats']
    return items

  def restore(self, epoch: int, state) -> tuple[dict, dict]:
    ocp = self._ocp
    target = jax.tree_util.tree_map(
        lambda a: np.zeros(np.shape(a), np.asarray(a).dtype), self._items(state))
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
    out = self.manager.restore(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), host=ocp.args.JsonRestore()))
    host = pickle.loads(base64.b64decode(out['host']['blob']))
    return out['state'], host

  def close(self):
    self.manager.close()


_TRACKER_STATE = ('records', 'seconds', '_reference', 'y_p')


def _tracker_state(tracker) -> Optional[dict]:
  if tracker is None:
    return None
  return {name: getattr(tracker, name) for name in _TRACKER_STATE}


def _restore_tracker(tracker, state: dict) -> None:
  for name in _TRACKER_STATE:
    setattr(tracker, name, state[name])
  if tracker.workdir is not None:
    with open(os.path.join(tracker.workdir, 'tracking.jsonl'), 'w') as fp:
      for rec in tracker.records:
        fp.write(json.dumps(_jsonable({k: v for k, v in rec.items() if k != 'kernel'}),
                            allow_nan=False) + '\n')
    tracker.save()


def progress_bar(label: str, epoch: int, epochs: int, loss: float, eta: str, *,
                 stream=None, width: int = 30) -> bool:
  """Draws `label [#####-----] epoch/epochs loss ETA` in place on a terminal.

  Returns False (and draws nothing) when `stream` (default stderr) is not a terminal, so
  that logs and CI output get one absl line per epoch instead.
  """
  stream = sys.stderr if stream is None else stream
  if not getattr(stream, 'isatty', lambda: False)():
    return False
  filled = int(width * epoch / max(epochs, 1))
  stream.write(f'\r{label} [{"#" * filled}{"-" * (width - filled)}] {epoch}/{epochs}  '
               f'loss {loss:.5g}  ETA {eta}   ')
  if epoch >= epochs:
    stream.write('\n')
  stream.flush()
  return True


def _format_seconds(seconds: float) -> str:
  seconds = int(round(seconds))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}h{m:02d}m{s:02d}s' if h else (f'{m}m{s:02d}s' if m else f'{s}s')


# ---------------------------------------------------------------------------------------------
# Units.


@dataclasses.dataclass
class _Unit:
  seed: int
  model: str
  directory: str
  label: str


def _predict(model, variables, x, batch_size: int) -> np.ndarray:
  apply = jax.jit(model.apply)
  parts = [np.asarray(apply(variables, x[i:i + batch_size]), np.float64)
           for i in range(0, len(x), batch_size)]
  return np.concatenate(parts)


def _evaluate_network(model, variables, dataset, batch_size) -> dict:
  out = {}
  for split, x, y in (('train', dataset.x_train, dataset.y_train),
                      ('test', dataset.x_test, dataset.y_test)):
    f = _predict(model, variables, x, batch_size)
    if dataset.task == 'regression':
      out[split] = regression_metrics(f[:, 0], y)
    else:
      out[split] = classification_metrics(_log_softmax(f), f, y)
  return out


def _run_trained(unit: _Unit, config, dataset, metrics: MetricsLog) -> dict:
  """Trains unit.model (with config: the unit's own config) and evaluates it."""
  from experiments import search as search_lib  # pylint: disable=g-import-not-at-top
  base = search_lib.base_model(config, unit.model)
  model, variables = _build_network(base, config, dataset, unit.seed)
  loss = 'mse' if dataset.task == 'regression' else 'cross_entropy'
  train_config = ecrn_jax.TrainConfig(**config.train.to_dict(), loss=loss, seed=unit.seed)
  data = (dataset.x_train, dataset.y_train)
  tracker = None
  if unit.model in config.tracking.models or base in config.tracking.models:
    fields = {k: v for k, v in config.tracking.to_dict().items() if k != 'models'}
    fields['probe_size'] = min(fields['probe_size'], len(dataset.x_train))
    tracker = ecrn_jax.KernelTracker(model, data, train_config,
                                     ecrn_jax.TrackingConfig(**fields),
                                     workdir=os.path.join(unit.directory, 'tracking'))
  checkpointer = _Checkpointer(os.path.join(unit.directory, 'checkpoints'))
  resume = None
  latest = checkpointer.latest_epoch()
  if latest is not None:
    fresh = training_lib.TrainState.create(
        apply_fn=model.apply, params=variables['params'],
        tx=ecrn_jax.make_optimizer(train_config, training_lib.steps_per_epoch(
            train_config, len(dataset.x_train))),
        rest={k: v for k, v in variables.items() if k != 'params'})
    state, host = checkpointer.restore(latest, fresh)
    rest = dict(fresh.rest)
    if 'batch_stats' in state:
      rest['batch_stats'] = state['batch_stats']
    resume = dict(epoch=host['epoch'], params=state['params'], opt_state=state['opt_state'],
                  step=state['step'], history=host['history'], rest=rest)
    if tracker is not None:
      _restore_tracker(tracker, host['tracker'])
    logging.info('%s: resuming from the checkpoint of epoch %d', unit.label, host['epoch'])
  metrics.truncate_unit(unit.seed, unit.model, -1 if latest is None else int(latest))

  every = int(config.checkpoint_every)
  epochs = train_config.epochs
  session_start = time.perf_counter()
  checkpoint_seconds = [0.0]
  first_epoch = 0 if resume is None else int(resume['epoch'])

  first_done = []   # time at the end of this session's first epoch (compilation included)

  def checkpoint(epoch, state, history):
    if epoch > 0:
      loss_value = history['loss'][-1]
      done = epoch - first_epoch
      elapsed = time.perf_counter() - session_start
      if not first_done:
        first_done.append(elapsed)
      # The rate after the first epoch, which also compiles.
      rate = (elapsed - first_done[0]) / (done - 1) if done > 1 else elapsed / max(done, 1)
      eta = rate * (epochs - epoch)
      metrics.write({'seed': unit.seed, 'model': unit.model, 'epoch': epoch,
                     'step': int(state.step), 'train_loss': loss_value,
                     **({'lambda_max': tracker.records[-1]['lambda_max'],
                         'relative_delta_frobenius':
                             tracker.records[-1]['relative_delta_frobenius']}
                        if tracker is not None and tracker.records
                        and tracker.records[-1]['epoch'] == epoch else {}),
                     'seconds': {'elapsed': elapsed}})
      if not progress_bar(unit.label, epoch, epochs, loss_value, _format_seconds(eta)):
        logging.info('%s epoch %d/%d  loss %.5g  |  %.2f s/epoch, ETA %s', unit.label, epoch,
                     epochs, loss_value, rate, _format_seconds(eta))
    if epoch % every == 0 or epoch == epochs:
      t = time.perf_counter()
      checkpointer.save(epoch, state, {'epoch': epoch, 'history': history,
                                       'tracker': _tracker_state(tracker)})
      checkpoint_seconds[0] += time.perf_counter() - t

  start = time.perf_counter()
  result = {'seed': unit.seed, 'model': unit.model, 'kind': 'trained network',
            'train_config': dataclasses.asdict(train_config)}
  try:
    final, history = ecrn_jax.train(model, variables, data, train_config,
                                    callbacks=[tracker] if tracker is not None else [],
                                    resume=resume, checkpoint=checkpoint)
  except ecrn_jax.TrainingDiverged as e:
    logging.warning('%s: %s', unit.label, e)
    result.update(diverged=True, error=str(e), test=None, train=None,
                  seconds={'unit': time.perf_counter() - start})
    checkpointer.close()
    return result
  checkpointer.close()
  result.update(_evaluate_network(model, final, dataset, int(config.eval_batch_size)))
  result['diverged'] = False
  result['final_train_loss'] = history['loss'][-1] if len(history['loss']) else None
  result['num_parameters'] = int(sum(np.size(p) for p in
                                     jax.tree_util.tree_leaves(final['params'])))
  if tracker is not None:
    first, last = tracker.records[0], tracker.records[-1]
    result['tracking'] = {
        'mode': tracker.mode, 'probe_size': tracker.n_p,
        'lambda_max_init': first['lambda_max'], 'lambda_max_final': last['lambda_max'],
        'relative_delta_frobenius_final': last['relative_delta_frobenius'],
        'files': os.path.relpath(tracker.workdir, os.path.dirname(os.path.dirname(
            unit.directory)))}
  result['seconds'] = {'train': history['train_seconds'],
                       'callbacks': history['callback_seconds'],
                       'tracking': tracker.seconds if tracker is not None else 0.0,
                       'checkpoints_this_session': checkpoint_seconds[0],
                       'unit_this_session': time.perf_counter() - start}
  return result


def _run_kernel(unit: _Unit, config, dataset) -> dict:
  from ecrn_jax._src import regression  # pylint: disable=g-import-not-at-top
  from experiments import search as search_lib  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  kcfg = config.kernel
  base = search_lib.base_model(config, unit.model)
  if base == 'standard_ntk':
    arch = mlp_config(config, dataset, dtype='float64')
    variables = None
  else:
    arch = ecrn_config(config, dataset, dtype='float64')
    variables = ecrn_jax.ECRN(arch).init(_model_key(unit.seed, base),
                                         dataset.x_train[:1])
  common = dict(variables=variables, get=kcfg.kernel, batch_size=int(kcfg.batch_size))
  x_train = np.asarray(dataset.x_train, np.float64)
  x_test = np.asarray(dataset.x_test, np.float64)
  k_train = regression.batched_infinite_kernels(arch, x_train, **common)
  k_test = regression.batched_infinite_kernels(arch, x_test, x_train, **common)
  solve = dict(diag_reg=float(kcfg.diag_reg), t=kcfg.t)
  result = {'seed': unit.seed, 'model': unit.model,
            'kind': f'infinite-width {kcfg.kernel.upper()} kernel regression',
            'architecture': dataclasses.asdict(arch), 'diag_reg': float(kcfg.diag_reg),
            't': kcfg.t}
  if dataset.task == 'regression':
    y = np.asarray(dataset.y_train, np.float64)
    result['train'] = regression_metrics(
        regression.kernel_regression(k_train, y, k_train, **solve), y)
    result['test'] = regression_metrics(
        regression.kernel_regression(k_train, y, k_test, **solve), dataset.y_test)
  else:
    c = dataset.num_classes
    labels = np.asarray(dataset.y_train)
    targets = ecrn_jax.centered_one_hot(labels.astype(np.int64), c)
    # Softmax temperature on held-out scores: K-fold cross-validated kernel-regression scores
    # of the training points (slices of the full kernel), then T fitted on all N of them.
    from experiments import input_pipeline  # pylint: disable=g-import-not-at-top
    n, folds = len(labels), int(kcfg.calibration_folds)
    perm = input_pipeline.named_rng(unit.seed, 'calibration').permutation(n)
    held_out_scores = np.zeros((n, c))
    for fold in range(folds):
      held = np.sort(perm[fold::folds])
      fit = np.setdiff1d(np.arange(n), held)
      held_out_scores[held] = regression.kernel_regression(
          k_train[np.ix_(fit, fit)], targets[fit], k_train[np.ix_(held, fit)], **solve)
    held_out_accuracy = float(np.mean(np.argmax(held_out_scores, -1) == labels))
    temperature = ecrn_jax.fit_softmax_temperature(held_out_scores, labels)
    result['cross_entropy_from'] = (
        'calibrated_softmax(scores / T), scores = kernel regression on centred one-hot targets; '
        f'T fitted (fit_softmax_temperature) on {folds}-fold cross-validated scores of the '
        'training points')
    result['calibration'] = {'folds': folds, 'held_out_accuracy': held_out_accuracy}
    if held_out_accuracy == 1.0:
      result['cross_entropy_from'] = None
      result['cross_entropy_none_because'] = (
          'every cross-validated training score is classified correctly, so the fitted '
          'temperature runs to its lower bound and the cross-entropy would measure that bound')
    result['temperature'] = temperature
    for split, k, y in (('train', k_train, labels), ('test', k_test, dataset.y_test)):
      scores = regression.kernel_regression(k_train, targets, k, **solve)
      log_probs = None
      if result['cross_entropy_from'] is not None:
        log_probs = np.log(np.clip(ecrn_jax.calibrated_softmax(scores, temperature), 1e-300,
                                   None))
      result[split] = classification_metrics(log_probs, scores, y)
  result['seconds'] = {'unit': time.perf_counter() - start}
  return result


# ---------------------------------------------------------------------------------------------
# The experiment.


def _summary(units: list[dict]) -> dict:
  by_model: dict[str, dict[str, list]] = {}
  for res in units:
    test = res.get('test') or {}
    entry = by_model.setdefault(res['model'], {})
    for metric, value in test.items():
      entry.setdefault(metric, []).append(value)
  out = {}
  for model, metrics in by_model.items():
    out[model] = {}
    for metric, values in metrics.items():
      finite = [v for v in values if v is not None and math.isfinite(v)]
      out[model][metric] = {
          'mean': float(np.mean(finite)) if finite else None,
          'std': float(np.std(finite)) if finite else None,
          'values': values}
  return out


def device_description() -> dict:
  devices = jax.devices()
  return {'platform': devices[0].platform, 'device_kind': devices[0].device_kind,
          'count': len(devices)}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: Optional[str], *,
                       data_dir: Optional[str] = None) -> dict:
  """Runs every (seed, model) unit of `config` in `workdir`, resuming; returns results.json.

  `workdir` should have been prepared by `prepare_workdir` (python -m experiments.run does);
  None runs in a temporary directory that is kept and logged.
  """
  from experiments import input_pipeline  # pylint: disable=g-import-not-at-top
  from experiments import search as search_lib  # pylint: disable=g-import-not-at-top
  check_models(config)
  if workdir is None:
    workdir = tempfile.mkdtemp(prefix='ecrn_run_')
    logging.info('no --workdir: writing to %s', workdir)
  os.makedirs(workdir, exist_ok=True)
  device = device_description()
  logging.info('devices: %s (%s × %d)', jax.devices(), device['device_kind'], device['count'])
  metrics = MetricsLog(os.path.join(workdir, 'metrics.jsonl'))
  results_path = os.path.join(workdir, 'results.json')
  wall_start = time.perf_counter()
  total = len(config.seeds) * len(config.models)
  units: list[dict] = []

  def run_unit(name, unit_config, dataset, directory, label, seed, metrics_log):
    unit = _Unit(int(seed), name, directory, label)
    if search_lib.base_model(config, name) in TRAINED_MODELS:
      return _run_trained(unit, unit_config, dataset, metrics_log)
    return _run_kernel(unit, unit_config, dataset)

  search = search_lib.select(
      config, workdir,
      lambda name, unit_config, dataset, directory, label: run_unit(
          name, unit_config, dataset, directory, label, config.search.seed,
          MetricsLog(os.path.join(directory, 'metrics.jsonl'))),
      data_dir=data_dir)
  if search['models']:
    logging.info('selected hyperparameters (validation split):\n%s', search_lib.describe(search))
  # Every unit's config = config + these (defaults, selected setting, variant overrides).
  hyperparameters = {name: {**search_lib.default_overrides(config, name),
                            **search_lib.selected_overrides(search, config, name),
                            **search_lib.variant_overrides(config, name)}
                     for name in config.models}

  def write_results(complete: bool):
    results = {'complete': complete, 'device': device, 'units': units, 'summary': _summary(units),
               'hyperparameters': hyperparameters, 'search_budget': search['budget'],
               'seconds': {'wall_this_session': time.perf_counter() - wall_start}}
    write_json(results_path, results)
    return results

  done = 0
  for seed in config.seeds:
    dataset = None
    for name in config.models:
      unit = _Unit(int(seed), name, os.path.join(workdir, f'seed_{seed}', name),
                   f'[seed {seed} {name} {done + 1}/{total}]')
      result_path = os.path.join(unit.directory, 'result.json')
      if os.path.exists(result_path):
        logging.info('%s done earlier: skipped', unit.label)
        units.append(read_json(result_path))
        done += 1
        continue
      if dataset is None:
        dataset = input_pipeline.load_dataset(config.data, seed=int(seed), data_dir=data_dir)
        logging.info('seed %d: %s, %d train / %d test points, d = %d', seed, dataset.name,
                     len(dataset.x_train), len(dataset.x_test), dataset.x_train.shape[1])
      os.makedirs(unit.directory, exist_ok=True)
      logging.info('%s start', unit.label)
      result = run_unit(name, search_lib.model_config(config, name, hyperparameters[name]),
                        dataset, unit.directory, unit.label, seed, metrics)
      result['hyperparameters'] = hyperparameters[name]
      result['dataset'] = {
          'name': dataset.name, 'task': dataset.task, 'num_classes': dataset.num_classes,
          'num_train': int(len(dataset.x_train)), 'num_test': int(len(dataset.x_test)),
          'input_dim': int(dataset.x_train.shape[1])}
      result = json.loads(json.dumps(_jsonable(result)))
      # The metrics line first: a kill before result.json reruns the unit, which drops it.
      metrics.write({'seed': unit.seed, 'model': name, 'epoch': None, 'test': result['test'],
                     'seconds': result['seconds']})
      write_json(result_path, result)
      logging.info('%s test %s', unit.label, result['test'])
      units.append(result)
      done += 1
      write_results(complete=False)
  results = write_results(complete=True)
  _print_summary(results['summary'])
  return results


def _print_summary(summary: dict) -> None:
  lines = ['', 'test metrics (mean ± std over seeds):']
  for model, metrics in summary.items():
    parts = [f'{metric} {v["mean"]:.4g} ± {v["std"]:.2g}' if v['mean'] is not None
             else f'{metric} n/a' for metric, v in metrics.items()]
    lines.append(f'  {model:<18} ' + ', '.join(parts))
  print('\n'.join(lines))
