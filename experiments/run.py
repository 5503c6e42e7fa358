# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Entry point: `python -m experiments.run [--config=NAME[:ARG]] [--config.FIELD=VALUE ...]
[--workdir=DIR] [--data_dir=DIR] [--overwrite]`; README.md (Experiments) documents it.
"""

import os
import re
import sys
from typing import NoReturn

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
from ml_collections import config_flags

CONFIGS = tuple(
    'finite_vs_infinite synthetic_regression synthetic_classification boston iris wine '
    'cifar_subset'.split()
)
DEFAULT_CONFIG = 'finite_vs_infinite'
CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs')


class _NoneOr(flags.ArgumentParser):
  """An int or float field's parser that also takes None (for placeholders: batch_size=None)."""

  def __init__(self, parser: flags.ArgumentParser):
    super().__init__()
    self._parser = parser

  def parse(self, argument):
    if isinstance(argument, str) and argument.strip().lower() == 'none':
      return None
    return self._parser.parse(argument)

  def flag_type(self):
    return self._parser.flag_type()


config_flags.register_flag_parser_for_type(int, _NoneOr(flags.IntegerParser()))
config_flags.register_flag_parser_for_type(float, _NoneOr(flags.FloatParser()))


def resolve(spec: str) -> str:
  """NAME[:ARG] → the path of NAME's config module [:ARG]; a path is returned as it is."""
  name, sep, arg = spec.partition(':')
  if name.endswith('.py') or os.sep in name:
    if not os.path.isfile(name):
      raise app.UsageError(
          f'config file {name!r} does not exist; give a path to a config '
          f'module or one of {list(CONFIGS)}.'
      )
    return spec
  if name not in CONFIGS:
    raise app.UsageError(
        f'unknown config {name!r}; valid names: {list(CONFIGS)} (or a path to a config file).'
    )
  return os.path.join(CONFIG_DIR, f'{name}.py') + sep + arg


def config_name(spec: str) -> str:
  return os.path.splitext(os.path.basename(spec.partition(':')[0]))[0]


def _resolve_argv(argv: list[str]) -> list[str]:
  """argv with the value of --config (`--config=SPEC` or `--config SPEC`) resolved."""
  out = list(argv)
  for i, arg in enumerate(out):
    for prefix in ('--config=', '-config='):
      if arg.startswith(prefix):
        out[i] = prefix + resolve(arg[len(prefix) :])
    if arg in ('--config', '-config') and i + 1 < len(out):
      out[i + 1] = resolve(out[i + 1])
  return out


def define_flags(flag_values: flags.FlagValues = flags.FLAGS, argv=None):
  """Defines --config (with its --config.FIELD overrides), --workdir, --data_dir, --overwrite."""
  where = dict(flag_values=flag_values)
  config_help = (
      f'NAME[:ARG], NAME one of {list(CONFIGS)}; ARG e.g. smoke. Fields are overridden with '
      '--config.FIELD=VALUE.'
  )
  config = config_flags.DEFINE_config_file(
      'config', resolve(DEFAULT_CONFIG), config_help, **where, lock_config=True, sys_argv=argv
  )
  workdir_help = (
      'Output directory (config.json, metrics.jsonl, results.json, checkpoints); a run started '
      'again on it resumes.'
  )
  flags.DEFINE_string('workdir', None, workdir_help, **where)
  data_dir_help = 'tfds data_dir (CIFAR-10), sets config.data.data_dir; default <repo>/data_cache/.'
  flags.DEFINE_string('data_dir', None, data_dir_help, **where)
  flags.DEFINE_bool('overwrite', False, 'Empty a --workdir that holds another config.', **where)
  return config


def _one_line(error: Exception) -> str:
  """config_flags' messages, without the traceback of a failing get_config or the quoting."""
  text = str(error)
  if 'Traceback' in text:
    text = [line for line in text.splitlines() if line.strip()][-1]
  if len(text) > 1 and text[0] == text[-1] and text[0] in '\'"':  # a KeyError's repr
    text = text[1:-1]
  return text.replace('\\n', ' ').replace("\\'", "'")


def _pin_overrides(flag) -> None:
  """Adds the fields set by --config.FIELD to config.pinned (created in a benchmark config)."""
  from experiments import workdir  # pylint: disable=g-import-not-at-top

  config = flag.value
  # Where the data live or when a unit saves is not part of the run: not pinned.
  not_pinned = ('pinned',) + workdir.UNCOMPARED
  given = [p for p in config_flags.get_override_values(flag) if p not in not_pinned]
  if 'pinned' not in config:
    if not given or config.get('experiment') != 'benchmark':
      return
    with config.unlocked():
      config.pinned = ()
  config.pinned = tuple(sorted(set(config.pinned or ()) | set(given)))


def _unknown_field(argv: list[str]) -> str:
  """'PATH names no field: ...' for the first override --config.PATH that names no field."""
  spec = next((a.split('=', 1)[1] for a in argv if a.startswith(('--config=', '-config='))), None)
  if spec is None and '--config' in argv[:-1]:
    spec = argv[argv.index('--config') + 1]
  try:
    _, config = load_config(spec or DEFAULT_CONFIG)
  except app.UsageError:
    return ''
  for arg in argv:
    match = re.match(r'-{1,2}(?:no)?config\.([^=]+)', arg)
    node, parts = config, match.group(1).split('.') if match else []
    for i, part in enumerate(parts):
      if not hasattr(node, 'keys') or part not in node:
        block = '.'.join(parts[:i]) or 'the config'
        fields = sorted(node.keys()) if hasattr(node, 'keys') else []
        return f'{match.group(1)} names no field: {block} has no {part!r}; its fields: {fields}.'
      node = node[part]
  return ''


def _parse(flag_values: flags.FlagValues, argv: list[str]) -> list[str]:
  """Parses argv and pins the overridden fields; any error (field, value, config) → UsageError."""
  try:
    rest = flag_values(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError, IOError) as e:
    text = _one_line(e)
    if isinstance(e, (KeyError, AttributeError)) and 'Did you mean' not in text:
      text = _unknown_field(argv) or text
    raise app.UsageError(f'--config: {text}') from e
  _pin_overrides(flag_values['config'])
  return rest


def load_config(spec: str = DEFAULT_CONFIG, overrides=()):
  """(name, config) of NAME[:ARG] with `overrides` ('field=value') applied as on the CLI."""
  argv = _resolve_argv(['run', f'--config={spec}', *(f'--config.{o}' for o in overrides)])
  flag_values = flags.FlagValues()
  holder = define_flags(flag_values, argv)
  _parse(flag_values, argv)
  return config_name(spec), holder.value


def _quiet_libraries(record) -> bool:
  """A log filter: drops orbax's INFO lines and JAX's backend start-up ones (not warnings)."""
  chatter = '/orbax/' in record.pathname or record.name.startswith('jax._src.xla_bridge')
  return record.levelno > 20 or not chatter


def main(argv):
  logging.get_absl_handler().addFilter(_quiet_libraries)
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  config = FLAGS.config
  if FLAGS.data_dir is not None and 'data' in config:
    config.data.data_dir = FLAGS.data_dir
  from experiments import plan  # pylint: disable=g-import-not-at-top
  from experiments import train  # pylint: disable=g-import-not-at-top
  from experiments import workdir  # pylint: disable=g-import-not-at-top

  from experiments import finite_vs_infinite  # pylint: disable=g-import-not-at-top

  checks = {'benchmark': plan.build, 'finite_vs_infinite': finite_vs_infinite.check_config}
  experiment = config.get('experiment')
  if experiment not in checks:
    raise app.UsageError(
        f'config.experiment must be one of {list(checks)}, got {experiment!r}; leave it as '
        'the config file sets it.'
    )
  try:
    checks[experiment](config)
  except (TypeError, ValueError, NotImplementedError) as e:
    raise app.UsageError(str(e)) from e
  if FLAGS.workdir:
    name = config_name(config_flags.get_config_filename(FLAGS['config']))
    try:  # the workdir's lock, held while this run lasts
      _lock = workdir.prepare(FLAGS.workdir, name, config, overwrite=FLAGS.overwrite)
    except workdir.WorkdirError as e:
      print(f'FATAL {e}', file=sys.stderr)
      sys.exit(2)
  train.train_and_evaluate(config, FLAGS.workdir)


def _fatal(error: app.UsageError, hint: bool = True) -> NoReturn:
  hint_text = '\nPass --helpshort or --helpfull to see help on flags.' if hint else ''
  print(f'FATAL Flags parsing error: {error}{hint_text}', file=sys.stderr)
  sys.exit(1)


def _flags_parser(argv):
  try:
    argv = _resolve_argv(argv)
  except app.UsageError as e:
    _fatal(e, hint=False)
  sys.argv[:] = argv  # config_flags reads the overrides from sys.argv
  try:
    return _parse(flags.FLAGS, argv)
  except app.UsageError as e:
    _fatal(e)


if __name__ == '__main__':
  try:  # without --config, the default config is parsed (with the overrides) right here
    define_flags()
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError, IOError) as e:
    unknown = isinstance(e, (KeyError, AttributeError)) and _unknown_field(sys.argv)
    _fatal(app.UsageError(f'--config: {unknown or _one_line(e)}'))
  app.run(main, flags_parser=_flags_parser)
