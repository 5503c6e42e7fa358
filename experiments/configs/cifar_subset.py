"""CIFAR-10 subset (SPEC §5, Table IV): 5,000 training images, accuracy and cross-entropy.

Data through tensorflow-datasets (`--data_dir`, default data_cache/); see input_pipeline for
importing the project's copy. ResNet-18 (the paper's image baseline) is a later issue.

Fields: see experiments/configs/common.py. `:smoke` shrinks it to a seconds-long run.
"""

from experiments.configs import common


def get_config(arg=None):
  config = common.base_config('cifar10')
  config.train.epochs = 50
  return common.apply_variant(config, 'cifar_subset', arg)
