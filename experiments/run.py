"""Entry point: `python -m experiments.run [--config=NAME[:ARG]] [--config.FIELD=VALUE ...]
[--workdir=DIR] [--data_dir=DIR] [--overwrite]`.

NAME is one of `CONFIGS`, each a pure `get_config(arg)` module in experiments/configs/; ARG is
passed to it (`smoke` shrinks any config to a seconds-long run). With no --config it runs the
embedded default, `finite_vs_infinite`, which needs no data.

Overrides: `--config.FIELD=VALUE` sets a (nested) field of the resolved config, e.g.
`--config.train.learning_rate=0.01 --config.seeds=(0,1)`. VALUE is parsed as a Python literal
(strings may be left unquoted) and must fit the field's type; an unknown field fails at once
with the list of valid fields.

Workdir: the resolved config goes to DIR/config.json. A non-empty DIR of another config is
refused unless --overwrite (which empties it); the same config resumes (see experiments.train).

Imports: TensorFlow (through tensorflow-datasets) is imported only by the configs that read
CIFAR-10, when they load it (experiments.input_pipeline); importing this module or running the
default config imports no TensorFlow. TF_CPP_MIN_LOG_LEVEL defaults to 3 for the runs that do.
"""

import ast
import difflib
import importlib
import os
import re
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
import ml_collections

# Config name → the module that runs it (`train_and_evaluate(config, workdir, ...)`).
CONFIGS = {
    'finite_vs_infinite': 'experiments.finite_vs_infinite',
    'synthetic_regression': 'experiments.train',
    'synthetic_classification': 'experiments.train',
    'boston': 'experiments.train',
    'iris': 'experiments.train',
    'wine': 'experiments.train',
    'cifar_subset': 'experiments.train',
}
DEFAULT_CONFIG = 'finite_vs_infinite'

FLAGS = flags.FLAGS
flags.DEFINE_string('config', DEFAULT_CONFIG,
                    f'NAME[:ARG], NAME one of {sorted(CONFIGS)}; ARG e.g. smoke. Fields are '
                    'overridden with --config.FIELD=VALUE.')
flags.DEFINE_string('workdir', None, 'Output directory (config.json, metrics.jsonl, '
                    'results.json, checkpoints); a run started again on it resumes.')
flags.DEFINE_string('data_dir', None, 'tensorflow-datasets data_dir (CIFAR-10); default: '
                    'the repository\'s data_cache/.')
flags.DEFINE_bool('overwrite', False, 'Empty a --workdir that holds another config.')

_OVERRIDE = re.compile(r'^--?config\.([A-Za-z_][\w.]*)(?:=(.*))?$', re.S)
_overrides: list[tuple[str, str]] = []


def parse_flags(argv):
  """absl's parser, with the --config.FIELD=VALUE overrides taken out first."""
  rest = [argv[0]]
  for arg in argv[1:]:
    match = _OVERRIDE.match(arg)
    if match is None:
      rest.append(arg)
      continue
    if match.group(2) is None:
      print(f'FATAL Flags parsing error: override {arg!r} needs a value: '
            f'--config.{match.group(1)}=VALUE', file=sys.stderr)
      sys.exit(1)
    _overrides.append((match.group(1), match.group(2)))
  return app.parse_flags_with_usage(rest)


def _fields(config, prefix=''):
  out = []
  for key, value in config.items():
    name = f'{prefix}{key}'
    if isinstance(value, ml_collections.ConfigDict):
      out.extend(_fields(value, name + '.'))
    else:
      out.append(name)
  return out


def _parse_value(text: str, current):
  if isinstance(current, str):
    return text
  if isinstance(current, bool) or text.lower() in ('true', 'false'):
    if text.lower() in ('true', 'false', '1', '0'):
      return text.lower() in ('true', '1')
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    if isinstance(current, tuple):   # (a,b) or a,b with unquoted strings
      items = [item.strip() for item in text.strip().strip('()[]').split(',')]
      return tuple(_parse_value(item, '') if item else item for item in items if item)
    return text  # an unquoted string
  if isinstance(current, tuple) and isinstance(value, (list, str, int, float)):
    value = tuple(value) if isinstance(value, list) else (value,)
  return value


def apply_overrides(config: ml_collections.ConfigDict, overrides) -> ml_collections.ConfigDict:
  """Sets each (dotted field, text value); unknown fields and bad types raise UsageError."""
  valid = _fields(config)
  for field, text in overrides:
    path = field.split('.')
    node = config
    ok = True
    for key in path[:-1]:
      if isinstance(node, ml_collections.ConfigDict) and key in node:
        node = node[key]
      else:
        ok = False
        break
    last = path[-1]
    if not ok or not isinstance(node, ml_collections.ConfigDict) or last not in node:
      close = difflib.get_close_matches(field, valid, n=3)
      hint = f' Did you mean {" or ".join(close)}?' if close else ''
      raise app.UsageError(f'unknown config field {field!r} in --config.{field}.{hint} '
                           f'Valid fields: {", ".join(valid)}.')
    current = node[last]
    if isinstance(current, ml_collections.ConfigDict):
      raise app.UsageError(f'--config.{field} is a block; override its fields: '
                           f'{", ".join(f for f in valid if f.startswith(field + "."))}.')
    value = _parse_value(text, current)
    try:
      node[last] = value
    except (TypeError, ValueError) as e:
      raise app.UsageError(f'--config.{field}={text}: {e}') from e
  return config


def load_config(spec: str, overrides=()):
  """(name, config) of NAME[:ARG], with the overrides applied."""
  name, _, arg = spec.partition(':')
  if name not in CONFIGS:
    raise app.UsageError(f'unknown config {name!r}; valid names: {sorted(CONFIGS)}.')
  module = importlib.import_module(f'experiments.configs.{name}')
  try:
    config = module.get_config(arg or None)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  return name, apply_overrides(config, overrides)


class _QuietLibraries:
  """Drops library INFO chatter from the absl log: orbax's (several lines per checkpoint) and
  JAX's backend start-up lines (e.g. "Unable to initialize backend 'tpu'" on every machine
  without a TPU). Warnings and errors pass."""

  def filter(self, record):
    if record.levelno > 20:
      return True
    return '/orbax/' not in record.pathname and not record.name.startswith('jax._src.xla_bridge')


def main(argv):
  logging.get_absl_handler().addFilter(_QuietLibraries())
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  name, config = load_config(FLAGS.config, _overrides)
  from experiments import train  # pylint: disable=g-import-not-at-top
  experiment = importlib.import_module(CONFIGS[name])
  if experiment is train:
    try:
      train.check_models(config)
    except (ValueError, NotImplementedError) as e:
      raise app.UsageError(str(e)) from e
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_enable_x64', True)  # kernels are compared in float64
  logging.info('devices: %s', jax.devices())
  if FLAGS.workdir:
    try:
      train.prepare_workdir(FLAGS.workdir, name, config, overwrite=FLAGS.overwrite)
    except FileExistsError as e:
      raise app.UsageError(str(e)) from e
  if experiment is train:
    experiment.train_and_evaluate(config, FLAGS.workdir, data_dir=FLAGS.data_dir)
  else:
    experiment.train_and_evaluate(config, FLAGS.workdir)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
