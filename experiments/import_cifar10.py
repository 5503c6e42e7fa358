# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""`python -m experiments.import_cifar10 --train_npz=PATH --test_npz=PATH [--data_dir=DIR]`
imports local CIFAR-10 npz files, offline, as tfds's `cifar10` 3.0.2 (README.md, Data): the
images in their order (ids 'train_%05d' of the position); an existing import is kept.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from experiments import sources

_CIFAR10_LABELS = tuple('airplane automobile bird cat deer dog frog horse ship truck'.split())


def import_cifar10(train_npz: str, test_npz: str, data_dir: str | None = None) -> str:
  """Writes the npz images as tfds's `cifar10` (3.0.2) into data_dir; returns the dataset folder."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.image_classification import cifar  # pylint: disable=g-import-not-at-top

  data_dir = os.path.abspath(data_dir or sources.DEFAULT_DATA_DIR)
  splits = {'train': sources.load_npz(train_npz), 'test': sources.load_npz(test_npz)}
  paths = {'train': train_npz, 'test': test_npz}
  origin = ', '.join(f'{s}: {paths[s]} ({len(x)} images)' for s, (x, _) in splits.items())

  class Cifar10FromArrays(cifar.Cifar10, skip_registration=True):
    """tfds's cifar10 builder, generating its examples from arrays instead of a download."""

    name = 'cifar10'
    # No url checksums to look up next to this module (tfds's lookup of them also needs the
    # optional importlib_resources package when the class lives in a package).
    code_path = None

    def _info(self):
      info = super()._info()
      kept = {k: getattr(info, k) for k in ('features', 'supervised_keys', 'homepage', 'citation')}
      about = (
          f'{info.description} Imported offline by experiments.import_cifar10 from local arrays '
          f'({origin}); examples in the order of the arrays.'
      )
      return tfds.core.DatasetInfo(builder=self, description=about, disable_shuffling=True, **kept)

    def _split_generators(self, dl_manager):
      del dl_manager  # Nothing to download.
      self.info.features['label'].names = list(_CIFAR10_LABELS)
      return {split: self._generate(f'{split}_', *arrays) for split, arrays in splits.items()}

    def _generate(self, prefix, images, labels):
      for index, (image, label) in enumerate(zip(images, labels)):
        yield index, {'id': f'{prefix}{index:05d}', 'image': image, 'label': int(label)}

  builder = Cifar10FromArrays(data_dir=data_dir)
  if builder.data_path.exists():
    raise FileExistsError(f'{builder.data_path} already exists; delete it to re-import.')
  stats = tfds.download.ComputeStatsMode.SKIP
  config = tfds.download.DownloadConfig(try_download_gcs=False, compute_stats=stats)
  with tempfile.TemporaryDirectory() as download_dir:  # Nothing is downloaded: keep data_dir clean.
    builder.download_and_prepare(download_dir=download_dir, download_config=config)
  for split, (images, _) in splits.items():
    info = builder.info.splits[split]
    if info.num_examples != len(images) or info.num_shards != 1:
      raise RuntimeError(
          f'{split}: wrote {info.num_examples} examples in {info.num_shards} '
          f'shards; expected {len(images)} in 1 (order is kept within one shard).'
      )
  return os.fspath(builder.data_path)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  path = import_cifar10(flags.FLAGS.train_npz, flags.FLAGS.test_npz, flags.FLAGS.data_dir)
  print(f'imported cifar10 into {path}')


if __name__ == '__main__':
  # Defined only when run as a program, so that importing this module next to
  # experiments.run (which has its own --data_dir) never registers a flag twice.
  flags.DEFINE_string('train_npz', None, 'npz with x (N, 32, 32, 3) uint8 and y (N,) labels.')
  flags.DEFINE_string('test_npz', None, 'npz with x (M, 32, 32, 3) uint8 and y (M,) labels.')
  flags.DEFINE_string('data_dir', sources.DEFAULT_DATA_DIR, 'The tfds data_dir to write into.')
  flags.mark_flags_as_required(['train_npz', 'test_npz'])
  app.run(main)
