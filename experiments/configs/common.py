# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The fields shared by the benchmark configs (docs/spec.md §5), and the `:smoke` shrinking.

Every field can be overridden with `--config.FIELD=VALUE`, which pins it (README.md). Besides
the library's config fields: variants (NAME → {'base': a model, nested overrides}),
model_defaults (MODEL → nested overrides before its selected setting) and pinned (the dotted
paths set on the command line).
"""

import math

import ml_collections

# The data sets (experiments/input_pipeline.py loads them), in the paper's order.
DATASET_NAMES = tuple(
    'synthetic_regression synthetic_classification boston iris wine cifar10'.split()
)
# The paper's models (experiments/registry.py MODELS, which a test keeps equal), in row order.
MODELS = tuple(
    'mlp resnet18 standard_ntk ntk_ecrn ntk_ecrn_infinite ntk_ecrn_infinite_self_tuned'.split()
)
# The Boston Housing table's row count (experiments/sources.py BOSTON_NUM_ROWS; a test).
BOSTON_NUM_ROWS = 506
VARIANTS = ('smoke', 'ablations')
# The search grids (search_config).
DIAG_REGS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
WEIGHT_DECAYS = (0.0, 1e-4, 1e-3)
EPOCHS_FRACTIONS = (0.5, 1.0, 2.0)
# σ_ff factors c (σ_ff = c/(2π√d)) 0.125 … 1 in √2 steps.
SIGMA_FF_GRID = tuple(2.0 ** (k / 2) for k in range(-6, 1))
ALPHAS = (0.5, 1.0, 2.0)
DROP_RATES = (0.0, 0.1)
# The σ_ff sweep of the ablations, as multiples of 1/(2π√d).
SIGMA_FF_FACTORS = (0.25, 1.0, 4.0, 16.0)


def data_config(name: str) -> ml_collections.ConfigDict:
  """The `data` block of data set `name` with its defaults; every field documented inline."""
  placeholder = ml_collections.config_dict.placeholder
  config = ml_collections.ConfigDict()
  config.name = name
  # None: data/split derived from the run seed (experiments/input_pipeline.py); int: fixed.
  config.data_seed = placeholder(int)
  # tensorflow-datasets data_dir (CIFAR-10); None: the repository's data_cache/. Where the data
  # live does not change the run: a workdir resumes under another data_dir.
  config.data_dir = placeholder(str)
  if name == 'synthetic_regression':
    # y = sum_k a_k sin(2 pi w_k^T x + phi_k) + eps, x ~ N(0, I_d) (docs/spec.md §5): d inputs,
    # K modes, w_k ~ N(0, frequency_scale^2 I_d), eps ~ N(0, noise_std^2) and
    # a_k ~ U[amplitude_min, amplitude_max] / sqrt(K) (min == max: the fixed a_k).
    config.update(input_dim=8, num_modes=4, frequency_scale=0.25, noise_std=0.1)
    config.update(amplitude_min=1.0, amplitude_max=1.0, num_train=1000, num_test=1000)
  elif name == 'synthetic_classification':
    # x | c ~ N(mu_c, Sigma), c ~ Categorical(class_weights) (None: uniform 1/C), d inputs;
    # mu_c ~ N(0, mean_scale^2 I_d), drawn once per dataset; covariance 'isotropic':
    # Sigma = cluster_std^2 I_d, or 'anisotropic': one shared Sigma = cluster_std^2 A A^T / d,
    # A_ij ~ N(0, 1).
    config.update(input_dim=16, num_classes=5, mean_scale=0.5, cluster_std=1.0, num_train=1000)
    config.update(covariance='isotropic', class_weights=placeholder(tuple), num_test=1000)
  elif name == 'boston':
    config.csv_path = placeholder(str)  # required, see README
    config.target = 'MEDV'
    config.drop_columns = ()  # e.g. ('B',): feature columns to leave out
    # Data rows the CSV must hold: 506, the published table (fewer: an error). A CSV of your own
    # with the same 14 columns: its row count, or None for any count >= sources.BOSTON_MIN_ROWS.
    config.num_rows = BOSTON_NUM_ROWS
    config.test_fraction = 0.2
  elif name in ('iris', 'wine'):
    config.test_fraction = 0.2  # stratified by class
  elif name == 'cifar10':
    # 'tfds' (tensorflow-datasets, in data_dir) or 'npz' (train_npz and test_npz: x (N, 32, 32, 3)
    # uint8, y (N,) labels; numpy only). Splits mean the same for both (experiments.import_cifar10).
    config.source = 'tfds'
    config.train_npz = placeholder(str)
    config.test_npz = placeholder(str)
    config.train_split = 'train[:5000]'  # the first 5,000 training images (official order)
    # 'test' is the whole prepared test split: 10,000 images from the official download, 2,000
    # after `experiments.import_cifar10` of the project's shared data. 'test[:2000]' pins it.
    config.test_split = 'test'
  else:
    raise ValueError(f'unknown dataset {name!r}; valid names: {list(DATASET_NAMES)}.')
  return config


def base_config(dataset: str) -> ml_collections.ConfigDict:
  """The benchmark config of `dataset`: architectures, training, search, all models."""
  placeholder = ml_collections.config_dict.placeholder
  config = ml_collections.ConfigDict()
  # The networks (out_dim comes from the data): shape, Fourier features, initialization.
  init = dict(parameterization='ntk', w_std=math.sqrt(2.0), b_std=0.1, dtype='float32')
  config.ecrn = dict(width=512, depth=4, alpha=1.0, alpha_schedule='inverse_sqrt_depth')
  config.ecrn.update(activation='gelu', fourier_features=256, fourier_scale=placeholder(float))
  config.ecrn.update(fourier_scale_factor=1.0, fourier_trainable=False, drop_rate=0.1, **init)
  config.mlp = dict(hidden_widths=(512, 512, 512), activation='relu', **init)
  config.resnet18 = dict(width=64, augment=True, mlp_widths=(64, 128, 256, 512), dtype='float32')
  config.update(experiment='benchmark', data=data_config(dataset), seeds=(0, 1, 2, 3, 4))
  config.models = MODELS
  config.train = dict(optimizer='adam', learning_rate=1e-3, momentum=0.9, weight_decay=0.0)
  config.train.update(schedule='cosine', warmup_epochs=0, epochs=100, batch_size=placeholder(int))
  config.train.batch_size = 128
  # Per-model overrides before the selected setting (cifar_subset: ResNet-18's SGD recipe).
  config.update(model_defaults=ml_collections.ConfigDict(), variants=ml_collections.ConfigDict())
  # The kernel-tracked models, then TrackingConfig's fields (vp_batch_size None: from memory).
  config.tracking = dict(models=('ntk_ecrn', 'mlp'), probe_size=256, top_k=10, modewise_k=5)
  config.tracking.update(dense_max_size=512, lanczos_iterations=40, num_probes=16)
  config.tracking.update(deflation_rank=2, probe_batch_size=4, vp_batch_size=placeholder(int))
  config.tracking.update(cg_iterations=50, every=5, save_kernels=False, seed=0)
  config.kernel = dict(
      kernel='ntk', t=placeholder(float), diag_reg=1e-4, batch_size=256, calibration_folds=5
  )
  # The references: gp_ard's optimizer restarts (experiments/units.py).
  config.reference = dict(gp_restarts=2, gp_max_train=placeholder(int))
  config.update(checkpoint_every=25, eval_batch_size=1024, search=search_config(), pinned=())
  return config


def search_config() -> ml_collections.ConfigDict:
  """Every model: coordinate-wise refinement of its grid on each seed's validation split
  (experiments/search.py): every value of every axis, at most `trials` trials per model and seed
  (extensions included), `rounds` sweeps. The grids bracket the first pass's selections; epochs
  are fractions of the model's train.epochs; a pinned field leaves the grid."""
  trained = dict(
      learning_rate=LEARNING_RATES, weight_decay=WEIGHT_DECAYS, epochs_fraction=EPOCHS_FRACTIONS
  )
  ecrn = dict(fourier_scale_factor=SIGMA_FF_GRID, alpha=ALPHAS, drop_rate=DROP_RATES)
  # Each model gets a copy: one dict under two models would become one shared ConfigDict.
  space = dict(
      mlp=dict(train=dict(trained)),
      # The residual-MLP stand-in (vector data) is trained like the MLP; cifar_subset
      # replaces this with the image recipe's grid.
      resnet18=dict(train=dict(trained)),
      standard_ntk=dict(kernel=dict(diag_reg=DIAG_REGS), mlp=dict(b_std=(0.1, 1.0))),
      ntk_ecrn=dict(train=dict(trained), ecrn=dict(ecrn)),
      # The twin of the tuned NTK-ECRN: its ecrn block is the tuned network's.
      ntk_ecrn_infinite=dict(kernel=dict(diag_reg=DIAG_REGS)),
      ntk_ecrn_infinite_self_tuned=dict(kernel=dict(diag_reg=DIAG_REGS), ecrn=dict(ecrn)),
  )
  seeds = ml_collections.config_dict.placeholder(tuple)  # None: every run seed
  return ml_collections.ConfigDict(
      dict(enabled=True, validation_fraction=0.2, trials=48, rounds=1, seeds=seeds, space=space)
  )


def ablation_variants() -> ml_collections.ConfigDict:
  """One mechanism of the tuned NTK-ECRN changed at a time (docs/spec.md §5, the paper's claims)."""
  ecrn = dict(  # each variant's ecrn block
      ntk_ecrn_no_fourier=dict(fourier_features=None),
      ntk_ecrn_alpha1=dict(alpha=1.0, alpha_schedule='constant'),
      ntk_ecrn_no_stochastic_depth=dict(drop_rate=0.0),
      # For a tuned drop rate of 0, the ablation the other way round.
      ntk_ecrn_drop_rate_0p1=dict(drop_rate=0.1),
  )
  for factor in SIGMA_FF_FACTORS:
    name = 'ntk_ecrn_sigma_ff_x' + f'{factor:g}'.replace('.', 'p')
    ecrn[name] = dict(fourier_scale_factor=factor)
  return ml_collections.ConfigDict({n: dict(base='ntk_ecrn', ecrn=e) for n, e in ecrn.items()})


def variant_args(name: str, arg, valid=VARIANTS) -> list[str]:
  """The variants `arg` names (joined by ','); ValueError naming the valid ones."""
  args = [] if arg in (None, '') else arg.split(',')
  for a in args:
    if a not in valid:
      raise ValueError(
          f'unknown variant {a!r} of {name}; valid: {list(valid)} '
          "(several joined by ',', e.g. ablations,smoke)."
      )
  return args


def named_config(name: str, arg, references=(), **blocks):
  """`base_config(name)` with `blocks` ({block: {field: value}}) set, the classical
  `references` (registry.REFERENCES) after the paper's models, and variant `arg` applied."""
  config = base_config(name)
  config.update(blocks)
  config.models = tuple(config.models) + tuple(references)
  return apply_variant(config, name, arg)


def apply_variant(config: ml_collections.ConfigDict, name: str, arg) -> ml_collections.ConfigDict:
  """Applies `arg` (None, or VARIANTS joined by ',') to `config`."""
  args = variant_args(name, arg)
  if 'ablations' in args:
    config.variants = ablation_variants()
    config.models = ('ntk_ecrn',) + tuple(config.variants.keys()) + ('mlp',)
    config.tracking.models = ('ntk_ecrn', 'mlp')  # variants are tracked with their base
  if 'smoke' not in args:
    return config
  data = dict(num_train=64, num_test=32, train_split='train[:64]', test_split='test[:32]')
  config.data.update({k: v for k, v in data.items() if k in config.data})
  config.update(seeds=(0,), checkpoint_every=1, eval_batch_size=256)
  config.ecrn.update(width=32, depth=2, fourier_features=16)
  config.mlp.hidden_widths = (32, 32, 32)
  config.train.update(epochs=3, batch_size=32)
  config.tracking.update(probe_size=16, top_k=4, modewise_k=3, every=1)
  config.kernel.batch_size = 64
  config.resnet18.update(width=4, mlp_widths=(8, 8, 16, 16))
  config.search.trials = 1
  config.reference.update(gp_restarts=0, gp_max_train=64)
  return config
