# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

r"""CIFAR-10 subset (docs/spec.md §5, Table IV): 5,000 training images, accuracy and cross-entropy.

Data through tensorflow-datasets (`data.source='tfds'`, the default: `--data_dir`, default
data_cache/; see README "Data" and experiments/import_cifar10.py for importing the project's
copy), or straight from the npz files, with numpy only (no TensorFlow needed, e.g. on an
accelerator image with JAX, flax, optax and orbax alone):

    python -m experiments.run --config=cifar_subset --config.data.source=npz \
        --config.data.train_npz=../shared/data/cifar10/train_subset.npz \
        --config.data.test_npz=../shared/data/cifar10/test_public.npz --workdir=runs/cifar_subset

Each npz holds x (N, 32, 32, 3) uint8 and y (N,) labels in [0, 10); the splits mean the same
for both sources ('train[:5000]': the first 5,000 images of train_npz, in file order, as tfds
reads them after experiments.import_cifar10).

Fields: see experiments/configs/common.py. `:smoke` shrinks it to a seconds-long run.
"""

from experiments.configs import common


def get_config(arg=None):
  config = common.base_config('cifar10')
  config.train.epochs = 50
  # ResNet-18 on images: the usual CIFAR recipe (SGD, momentum 0.9, weight decay), its
  # learning rate, weight decay, epochs and augmentation selected like every model's.
  config.model_defaults.resnet18 = dict(
      train=dict(optimizer='momentum', learning_rate=0.05, weight_decay=5e-4)
  )
  config.search.space.resnet18 = dict(
      train=dict(
          learning_rate=(0.01, 0.03, 0.1), weight_decay=(5e-5, 5e-4), epochs_fraction=(0.5, 1.0)
      ),
      resnet18=dict(augment=(True, False)),
  )
  return common.apply_variant(config, 'cifar_subset', arg)
