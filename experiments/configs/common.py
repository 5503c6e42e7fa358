# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The fields shared by the benchmark configs (docs/spec.md §5), and the `:smoke` shrinking.

Each named config is a pure `get_config(arg)` built from `base_config(dataset)`; `arg='smoke'`
shrinks it to a run of seconds. Every field can be overridden (`--config.FIELD=VALUE`, which
pins it: README.md). Fields:
  data: `data_config(name)`. seeds: run seeds (data, initializations, training order).
  models: the paper's models (registry.py) and the names of `variants`, then classical
    references (not searched; each selects its own hyperparameters on the training split).
  variants: NAME → {'base': a model, nested overrides} (`:ablations`: ablation_variants()).
  model_defaults: MODEL → nested overrides before its selected setting (ResNet-18's SGD).
  search: per-seed selection on a validation split (experiments/search.py, `search_config`).
  resnet18, ecrn, mlp, train, tracking: the networks', training's and tracking's settings
    (`ECRNConfig`, `MLPConfig`, `TrainConfig`, `TrackingConfig` fields; out_dim, loss and seed
    come from the data and the run); tracking.models: the kernel-tracked models.
  kernel: kernel regression ('ntk' or 'nngp', t, diag_reg relative to the mean diagonal, tile
    batch_size, calibration_folds of the softmax temperature's cross-validation).
  reference: gp_restarts and gp_max_train of the ARD Gaussian process.
  checkpoint_every, eval_batch_size; pinned: dotted paths set on the command line.
"""

import math

import ml_collections

# The data sets (experiments/input_pipeline.py loads them), in the paper's order.
DATASET_NAMES = (
    'synthetic_regression',
    'synthetic_classification',
    'boston',
    'iris',
    'wine',
    'cifar10',
)
# The paper's models (experiments/registry.py MODELS, which a test keeps equal), in row order.
MODELS = (
    'mlp',
    'resnet18',
    'standard_ntk',
    'ntk_ecrn',
    'ntk_ecrn_infinite',
    'ntk_ecrn_infinite_self_tuned',
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


def architecture_config() -> ml_collections.ConfigDict:
  """The `ecrn`, `mlp` and `resnet18` blocks: the networks (out_dim comes from the data)."""
  config = ml_collections.ConfigDict()
  config.ecrn = ml_collections.ConfigDict(
      dict(
          width=512,
          depth=4,
          alpha=1.0,
          alpha_schedule='inverse_sqrt_depth',
          activation='gelu',
          fourier_features=256,
          fourier_scale=ml_collections.config_dict.placeholder(float),
          fourier_scale_factor=1.0,
          fourier_trainable=False,
          drop_rate=0.1,
          parameterization='ntk',
          w_std=math.sqrt(2.0),
          b_std=0.1,
          dtype='float32',
      )
  )
  config.mlp = ml_collections.ConfigDict(
      dict(
          hidden_widths=(512, 512, 512),
          activation='relu',
          parameterization='ntk',
          w_std=math.sqrt(2.0),
          b_std=0.1,
          dtype='float32',
      )
  )
  config.resnet18 = ml_collections.ConfigDict(
      dict(width=64, augment=True, mlp_widths=(64, 128, 256, 512), dtype='float32')
  )
  return config


def tracking_config() -> ml_collections.ConfigDict:
  """The `tracking` block: `TrackingConfig` fields and the tracked models."""
  return ml_collections.ConfigDict(
      dict(
          models=('ntk_ecrn', 'mlp'),
          probe_size=256,
          top_k=10,
          modewise_k=5,
          dense_max_size=512,
          lanczos_iterations=40,
          num_probes=16,
          deflation_rank=2,
          probe_batch_size=4,
          vp_batch_size=ml_collections.config_dict.placeholder(int),  # None: from memory
          cg_iterations=50,
          every=5,
          save_kernels=False,
          seed=0,
      )
  )


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
    # y = sum_k a_k sin(2 pi w_k^T x + phi_k) + eps, x ~ N(0, I_d)            (docs/spec.md §5)
    config.input_dim = 8  # d
    config.num_modes = 4  # K
    config.frequency_scale = 0.25  # w_k ~ N(0, frequency_scale^2 I_d)
    config.amplitude_min = 1.0  # a_k ~ U[amplitude_min, amplitude_max] / sqrt(K)
    config.amplitude_max = 1.0  #   (min == max: the fixed a_k = amplitude / sqrt(K))
    config.noise_std = 0.1  # eps ~ N(0, noise_std^2)
    config.num_train = 1000
    config.num_test = 1000
  elif name == 'synthetic_classification':
    # x | c ~ N(mu_c, Sigma), c ~ Categorical(class_weights)
    config.input_dim = 16  # d
    config.num_classes = 5
    config.mean_scale = 0.5  # mu_c ~ N(0, mean_scale^2 I_d), drawn once per dataset
    config.cluster_std = 1.0  # isotropic: Sigma = cluster_std^2 I_d
    # 'isotropic', or 'anisotropic': one shared Sigma = cluster_std^2 A A^T / d, A_ij ~ N(0, 1).
    config.covariance = 'isotropic'
    config.class_weights = placeholder(tuple)  # None: uniform 1/C
    config.num_train = 1000
    config.num_test = 1000
  elif name == 'boston':
    config.csv_path = placeholder(str)  # required, see README
    config.target = 'MEDV'
    config.drop_columns = ()  # e.g. ('B',): feature columns to leave out
    # Data rows the CSV must hold: 506, the published table (a shorter file is an error, e.g. a
    # truncated copy). A CSV of your own with the same 14 columns: its row count, or None for any
    # count of at least sources.BOSTON_MIN_ROWS.
    config.num_rows = BOSTON_NUM_ROWS
    config.test_fraction = 0.2
  elif name in ('iris', 'wine'):
    config.test_fraction = 0.2  # stratified by class
  elif name == 'cifar10':
    # Where the images come from: 'tfds' (tensorflow-datasets, in data_dir) or 'npz' (the files
    # train_npz and test_npz, x (N, 32, 32, 3) uint8 and y (N,) labels, read with numpy only:
    # no TensorFlow). Splits mean the same for both: 'train[:k]' is the first k images of the
    # prepared split or of the npz (as imported by experiments.import_cifar10).
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
  config = architecture_config()
  config.experiment = 'benchmark'
  config.data = data_config(dataset)
  config.seeds = (0, 1, 2, 3, 4)
  config.models = MODELS
  config.train = ml_collections.ConfigDict(
      dict(
          optimizer='adam',
          learning_rate=1e-3,
          momentum=0.9,
          weight_decay=0.0,
          schedule='cosine',
          warmup_epochs=0,
          epochs=100,
          batch_size=placeholder(int),
      )
  )
  config.train.batch_size = 128
  # Per-model overrides before the selected setting (cifar_subset: ResNet-18's SGD recipe).
  config.model_defaults = ml_collections.ConfigDict()
  config.variants = ml_collections.ConfigDict()
  config.tracking = tracking_config()
  config.kernel = ml_collections.ConfigDict(
      dict(kernel='ntk', t=placeholder(float), diag_reg=1e-4, batch_size=256, calibration_folds=5)
  )
  # The references: gp_ard's optimizer restarts (experiments/units.py).
  config.reference = ml_collections.ConfigDict(dict(gp_restarts=2, gp_max_train=placeholder(int)))
  config.checkpoint_every = 25
  config.eval_batch_size = 1024
  config.search = search_config()
  config.pinned = ()
  return config


def search_config() -> ml_collections.ConfigDict:
  """Every model: coordinate-wise refinement of its grid on each seed's validation split.

  Every value of every axis is tried for every model (experiments/search.py), at most `trials`
  trials per model and seed (extensions included), `rounds` sweeps over the axes. The grids
  bracket the selections of the first pass (σ_ff factor 0.125…1 in √2 steps, diag_reg up to
  10, learning rates up to 1e-2, epochs up to 2E); a selected value on an edge is extended
  once. Epochs are searched as fractions of the model's train.epochs; a pinned field (e.g.
  --config.train.epochs=10, which also removes the epochs fraction) leaves the grid.
  """

  def trained():
    return dict(
        learning_rate=LEARNING_RATES, weight_decay=WEIGHT_DECAYS, epochs_fraction=EPOCHS_FRACTIONS
    )

  space = dict(
      mlp=dict(train=trained()),
      # The residual-MLP stand-in (vector data) is trained like the MLP; cifar_subset
      # replaces this with the image recipe's grid.
      resnet18=dict(train=trained()),
      standard_ntk=dict(kernel=dict(diag_reg=DIAG_REGS), mlp=dict(b_std=(0.1, 1.0))),
      ntk_ecrn=dict(
          train=trained(),
          ecrn=dict(fourier_scale_factor=SIGMA_FF_GRID, alpha=ALPHAS, drop_rate=DROP_RATES),
      ),
      # The twin of the tuned NTK-ECRN: its ecrn block is the tuned network's.
      ntk_ecrn_infinite=dict(kernel=dict(diag_reg=DIAG_REGS)),
      ntk_ecrn_infinite_self_tuned=dict(
          kernel=dict(diag_reg=DIAG_REGS),
          ecrn=dict(fourier_scale_factor=SIGMA_FF_GRID, alpha=ALPHAS, drop_rate=DROP_RATES),
      ),
  )
  return ml_collections.ConfigDict(
      dict(
          enabled=True,
          validation_fraction=0.2,
          trials=48,
          rounds=1,
          seeds=ml_collections.config_dict.placeholder(tuple),
          space=space,
      )
  )


def ablation_variants() -> ml_collections.ConfigDict:
  """One mechanism of the tuned NTK-ECRN changed at a time (docs/spec.md §5, the paper's claims).

  The stochastic-depth pair: without it (drop rate 0), and with drop rate 0.1, for when the
  selection already chose 0.
  """
  variants = dict(
      ntk_ecrn_no_fourier=dict(base='ntk_ecrn', ecrn=dict(fourier_features=None)),
      ntk_ecrn_alpha1=dict(base='ntk_ecrn', ecrn=dict(alpha=1.0, alpha_schedule='constant')),
      ntk_ecrn_no_stochastic_depth=dict(base='ntk_ecrn', ecrn=dict(drop_rate=0.0)),
      # For a tuned drop rate of 0, the ablation the other way round.
      ntk_ecrn_drop_rate_0p1=dict(base='ntk_ecrn', ecrn=dict(drop_rate=0.1)),
  )
  for factor in SIGMA_FF_FACTORS:
    variants['ntk_ecrn_sigma_ff_x' + f'{factor:g}'.replace('.', 'p')] = dict(
        base='ntk_ecrn', ecrn=dict(fourier_scale_factor=factor)
    )
  return ml_collections.ConfigDict(variants)


def with_references(config: ml_collections.ConfigDict, references) -> ml_collections.ConfigDict:
  """`config` with the classical `references` (registry.REFERENCES) after the paper's models."""
  config.models = tuple(config.models) + tuple(references)
  return config


def apply_variant(config: ml_collections.ConfigDict, name: str, arg) -> ml_collections.ConfigDict:
  """Applies `arg` (None or 'smoke') to `config`; anything else fails with the valid list."""
  if arg in (None, ''):
    return config
  args = arg.split(',')
  for a in args:
    if a not in VARIANTS:
      raise ValueError(
          f'unknown variant {a!r} of {name}; valid: {list(VARIANTS)} '
          "(several joined by ',', e.g. ablations,smoke)."
      )
  if 'ablations' in args:
    config.variants = ablation_variants()
    config.models = ('ntk_ecrn',) + tuple(config.variants.keys()) + ('mlp',)
    config.tracking.models = ('ntk_ecrn', 'mlp')  # variants are tracked with their base
  if 'smoke' not in args:
    return config
  config.seeds = (0,)
  data = config.data
  for field, value in (('num_train', 64), ('num_test', 32)):
    if field in data:
      data[field] = value
  if 'train_split' in data:
    data.train_split = 'train[:64]'
    data.test_split = 'test[:32]'
  config.ecrn.width = 32
  config.ecrn.depth = 2
  config.ecrn.fourier_features = 16
  config.mlp.hidden_widths = (32, 32, 32)
  config.train.epochs = 3
  config.train.batch_size = 32
  config.tracking.probe_size = 16
  config.tracking.top_k = 4
  config.tracking.modewise_k = 3
  config.tracking.every = 1
  config.checkpoint_every = 1
  config.kernel.batch_size = 64
  config.eval_batch_size = 256
  config.resnet18.width = 4
  config.resnet18.mlp_widths = (8, 8, 16, 16)
  config.search.trials = 1
  config.reference.gp_restarts = 0
  config.reference.gp_max_train = 64
  return config
