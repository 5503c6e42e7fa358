"""Entry point: `python -m experiments.run [--config=NAME[:ARG]] [--workdir=DIR]`.

With no --config it runs the embedded default, `finite_vs_infinite`, which needs no data.
"""

import importlib
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax

CONFIGS = {'finite_vs_infinite': 'experiments.finite_vs_infinite'}

FLAGS = flags.FLAGS
flags.DEFINE_string('config', 'finite_vs_infinite',
                    f'NAME[:ARG], NAME one of {sorted(CONFIGS)}; ARG e.g. smoke.')
flags.DEFINE_string('workdir', None, 'Directory for results.json (optional).')


def load_config(spec: str):
  name, _, arg = spec.partition(':')
  if name not in CONFIGS:
    raise app.UsageError(f'unknown config {name!r}; valid names: {sorted(CONFIGS)}.')
  module = importlib.import_module(f'experiments.configs.{name}')
  return name, module.get_config(arg or None)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  jax.config.update('jax_enable_x64', True)  # kernels are compared in float64
  name, config = load_config(FLAGS.config)
  experiment = importlib.import_module(CONFIGS[name])
  experiment.train_and_evaluate(config, FLAGS.workdir)


if __name__ == '__main__':
  app.run(main)
