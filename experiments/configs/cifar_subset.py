# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""CIFAR-10 subset (docs/spec.md §5, Table IV): 5,000 training images, accuracy and cross-entropy.

Data: tensorflow-datasets (`--data_dir`) or npz files (`--config.data.source=npz`; README.md,
Data). The search adds 256 … 4,096 Fourier features for NTK-ECRN and its self-tuned twin (swept
last; `:smoke`: 16 … 256) and, for NTK-ECRN, epochs up to 4× train.epochs.
"""

from experiments.configs import common

FOURIER_FEATURES = (256, 512, 1024, 2048, 4096)
# NTK-ECRN's epochs: as fractions of train.epochs, up to 4× for an underfitting network.
ECRN_EPOCHS_FRACTIONS = common.EPOCHS_FRACTIONS + (4.0,)
# Start, two rounds of Σ(axis length − 1) = 22 trials, one extension on each of 7 axes.
TRIALS = 1 + 2 * 22 + 7


def get_config(arg=None):
  """The config; `arg` names its variants (above)."""
  config = common.base_config('cifar10')
  config.train.epochs = 50
  # Selection on seed 0's validation split, shared by every seed: the test images are fixed and
  # apart from the training images (experiments/search.py), at 1/5 of the cost.
  config.search.seeds = (0,)
  # ResNet-18 on images: the usual CIFAR recipe (SGD, momentum 0.9, weight decay), its
  # learning rate, weight decay, epochs and augmentation selected like every model's.
  sgd = dict(optimizer='momentum', learning_rate=0.05, weight_decay=5e-4)
  config.model_defaults.resnet18 = dict(train=sgd)
  grid = dict(
      learning_rate=(0.01, 0.03, 0.1), weight_decay=(5e-5, 5e-4), epochs_fraction=(0.5, 1.0)
  )
  config.search.space.resnet18 = dict(train=grid, resnet18=dict(augment=(True, False)))
  space = config.search.space
  space.ntk_ecrn.train.epochs_fraction = ECRN_EPOCHS_FRACTIONS
  for model in ('ntk_ecrn', 'ntk_ecrn_infinite_self_tuned'):
    space[model].ecrn.fourier_features = FOURIER_FEATURES
  config.search.trials = TRIALS
  config = common.apply_variant(config, 'cifar_subset', arg)
  if 'smoke' in (arg or '').split(','):
    # The axis scaled with the smoke network's 16 features (256 → 16): its start is 16.
    small = tuple(v * config.ecrn.fourier_features // 256 for v in FOURIER_FEATURES)
    for model in ('ntk_ecrn', 'ntk_ecrn_infinite_self_tuned'):
      space[model].ecrn.fourier_features = small
  return config
