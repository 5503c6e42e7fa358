# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Tests for experiments/resnet.py: the ResNet-18 baselines (tiny sizes, CPU-fast)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.resnet import (ResidualMLP18, ResNet18, crop_and_flip, random_crop_and_flip)

SMALL = dict(num_classes=5, image_shape=(8, 8, 3), width=8)


def _images(n, shape=(8, 8, 3), seed=0):
  return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


def _init(model, x):
  return model.init(jax.random.PRNGKey(0), x)


def _num_params(variables):
  return sum(int(np.prod(l.shape)) for l in jax.tree_util.tree_leaves(variables['params']))


def _kernels(variables):
  leaves = jax.tree_util.tree_leaves_with_path(variables['params'])
  return [l for path, l in leaves if path[-1].key == 'kernel']


def _max_diff(a, b):
  return float(jnp.max(jnp.abs(jnp.asarray(a) - jnp.asarray(b))))


def test_resnet_shapes_flat_equals_4d():
  model = ResNet18(**SMALL)
  x = _images(3)
  variables = _init(model, x)
  out4 = model.apply(variables, x)
  out_flat = model.apply(variables, x.reshape(3, -1))
  assert out4.shape == (3, 5) and out_flat.shape == (3, 5)
  np.testing.assert_allclose(out_flat, out4, rtol=1e-6, atol=1e-6)
  assert out4.dtype == jnp.float32
  with pytest.raises(ValueError):
    model.apply(variables, x.reshape(3, -1)[:, :-1])


def test_resnet18_param_count_full_size():
  w, c, classes = 64, 3, 10

  def block(cin, cout, proj):  # two 3×3 convs + 2 BN (+ 1×1 conv + BN)
    return (
        9 * cin * cout
        + 2 * cout
        + 9 * cout * cout
        + 2 * cout
        + ((cin * cout + 2 * cout) if proj else 0)
    )

  expected = 9 * c * w + 2 * w  # stem conv + BN
  cin = w
  for mult in (1, 2, 4, 8):
    cout = w * mult
    expected += block(cin, cout, cin != cout) + block(cout, cout, False)
    cin = cout
  expected += 8 * w * classes + classes  # head
  shapes = jax.eval_shape(
      lambda: ResNet18(num_classes=10).init(jax.random.PRNGKey(0), jnp.zeros((1, 3072)))
  )
  assert _num_params(shapes) == expected == 11_173_962
  # 18 weight layers + 3 projection shortcuts.
  kernels = _kernels(shapes)
  assert len(kernels) == 21
  assert sum(k.ndim == 4 for k in kernels) == 20 and sum(k.ndim == 2 for k in kernels) == 1
  assert sum(k.shape[:2] == (1, 1) for k in kernels if k.ndim == 4) == 3
  # Batch statistics are separate from params.
  stats = jax.tree_util.tree_leaves(shapes['batch_stats'])
  assert len(stats) == 2 * (1 + 16 + 3)


def test_residual_mlp_shapes_and_kernel_count():
  model = ResidualMLP18(out_dim=2)
  x = np.random.default_rng(0).normal(size=(4, 8))
  shapes = jax.eval_shape(lambda: _init(model, jnp.asarray(x)))
  assert len(_kernels(shapes)) == 21
  assert (
      _num_params(jax.eval_shape(lambda: _init(ResidualMLP18(out_dim=1), jnp.zeros((1, 8)))))
      == 1_403_265
  )
  small = ResidualMLP18(out_dim=2, widths=(4, 4, 8, 8))
  variables = _init(small, x)
  assert len(_kernels(variables)) == 1 + 16 + 1 + 1  # width changes once: 1 projection
  assert small.apply(variables, x).shape == (4, 2)
  with pytest.raises(ValueError):
    small.apply(variables, x[:, :, None])


@pytest.mark.parametrize(
    'model_fn,x',
    [
        (lambda: ResNet18(**SMALL), _images(4)),
        (
            lambda: ResidualMLP18(out_dim=2, widths=(4, 4, 8, 8)),
            np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32),
        ),
    ],
)
def test_batch_norm_train_and_eval(model_fn, x):
  model = model_fn()
  variables = _init(model, x)
  out, updates = model.apply(variables, x, train=True, mutable=['batch_stats'])
  assert (
      _max_diff(
          jax.tree_util.tree_leaves(updates['batch_stats'])[0],
          jax.tree_util.tree_leaves(variables['batch_stats'])[0],
      )
      > 0
  )
  # Train mode: an example's output depends on the rest of the batch.
  out_half, _ = model.apply(variables, x[:2], train=True, mutable=['batch_stats'])
  assert _max_diff(out[:2], out_half) > 1e-3
  # Eval mode: running averages, so each example's output is independent of the batch.
  new_vars = {'params': variables['params'], 'batch_stats': updates['batch_stats']}
  ev = model.apply(new_vars, x)
  np.testing.assert_allclose(model.apply(new_vars, x[:2]), ev[:2], rtol=1e-5, atol=1e-6)
  assert _max_diff(ev, model.apply(variables, x)) > 0  # it does use the updated stats


def test_crop_offset_padding_no_flip_is_identity():
  x = jnp.asarray(_images(3))
  same = crop_and_flip(x, jnp.full((3, 2), 4), jnp.zeros(3, bool), padding=4)
  np.testing.assert_array_equal(same, x)
  flipped = crop_and_flip(x, jnp.full((3, 2), 4), jnp.ones(3, bool), padding=4)
  np.testing.assert_array_equal(flipped, x[:, :, ::-1])
  shifted = crop_and_flip(x, jnp.array([[0, 0], [8, 8], [4, 5]]), jnp.zeros(3, bool))
  np.testing.assert_array_equal(shifted[0, 4:, 4:], x[0, :4, :4])
  np.testing.assert_array_equal(shifted[0, :4], 0)
  np.testing.assert_array_equal(shifted[1, :4, :4], x[1, 4:, 4:])
  np.testing.assert_array_equal(shifted[2, :, :7], x[2, :, 1:])
  np.testing.assert_array_equal(shifted[2, :, 7], 0)


def test_random_crop_and_flip_is_per_example_and_keyed():
  x = jnp.asarray(np.broadcast_to(_images(1), (16, 8, 8, 3)))
  a = jax.jit(random_crop_and_flip)(x, jax.random.PRNGKey(0))
  b = random_crop_and_flip(x, jax.random.PRNGKey(0))
  c = random_crop_and_flip(x, jax.random.PRNGKey(1))
  assert a.shape == x.shape
  np.testing.assert_array_equal(a, b)
  assert _max_diff(a, c) > 0
  # Identical inputs get different augmentations within a batch.
  assert len({np.asarray(img).tobytes() for img in a}) > 1
  # Every output is a crop of the padded image: content preserved up to zeros.
  assert np.all(np.isin(np.asarray(a), np.concatenate([np.asarray(x).ravel(), [0.0]])))


def test_resnet_augmentation_uses_dropout_rng():
  x = _images(4)
  aug, plain = ResNet18(augment=True, **SMALL), ResNet18(**SMALL)
  variables = _init(plain, x)

  def train_out(model, seed):
    out, _ = model.apply(
        variables,
        x,
        train=True,
        mutable=['batch_stats'],
        rngs={'dropout': jax.random.PRNGKey(seed)},
    )
    return out

  np.testing.assert_array_equal(train_out(aug, 0), train_out(aug, 0))
  assert _max_diff(train_out(aug, 0), train_out(aug, 1)) > 1e-4
  np.testing.assert_array_equal(train_out(plain, 0), train_out(plain, 1))
  # Eval mode: no augmentation and no rng needed.
  np.testing.assert_array_equal(aug.apply(variables, x), plain.apply(variables, x))
  with pytest.raises(Exception):  # train + augment without a 'dropout' rng
    aug.apply(variables, x, train=True, mutable=['batch_stats'])


def test_float64():
  assert jax.config.jax_enable_x64  # set by conftest
  x = _images(2)
  model = ResNet18(dtype='float64', **SMALL)
  # The dtypes of the variables and outputs as traced (jax.eval_shape): those that running the
  # model gives, without compiling each of its operations. A float64 ResidualMLP18 is run for
  # real in test_train_updates_batch_stats_and_resumes_bit_for_bit.
  variables = jax.eval_shape(lambda: _init(model, x))
  assert all(l.dtype == jnp.float64 for l in jax.tree_util.tree_leaves(variables))
  assert jax.eval_shape(model.apply, variables, x).dtype == jnp.float64
  mlp = ResidualMLP18(out_dim=1, widths=(4, 4, 4, 4), dtype='float64')
  v = jax.eval_shape(lambda: _init(mlp, x.reshape(2, -1)))
  assert all(l.dtype == jnp.float64 for l in jax.tree_util.tree_leaves(v))
  assert jax.eval_shape(mlp.apply, v, x.reshape(2, -1)).dtype == jnp.float64


def test_sgd_reduces_mse_residual_mlp():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(16, 4)).astype(np.float32)
  y = np.sin(x.sum(axis=1, keepdims=True)).astype(np.float32)
  model = ResidualMLP18(out_dim=1, widths=(8, 8, 16, 16))
  variables = _init(model, x)
  params, batch_stats = variables['params'], variables['batch_stats']
  tx = optax.sgd(0.05, momentum=0.9)
  opt_state = tx.init(params)

  def loss_fn(p, stats):
    out, updates = model.apply(
        {'params': p, 'batch_stats': stats}, x, train=True, mutable=['batch_stats']
    )
    return jnp.mean((out - y) ** 2), updates['batch_stats']

  @jax.jit
  def step(p, stats, opt):
    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, stats)
    upd, opt = tx.update(grads, opt, p)
    return optax.apply_updates(p, upd), stats, opt, loss

  losses = []
  for _ in range(20):
    params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state)
    losses.append(float(loss))
  assert math.isfinite(losses[-1])
  assert losses[-1] < 0.5 * losses[0]
  assert (
      _max_diff(
          jax.tree_util.tree_leaves(batch_stats)[0],
          jax.tree_util.tree_leaves(variables['batch_stats'])[0],
      )
      > 0
  )


def test_train_updates_batch_stats_and_resumes_bit_for_bit():
  """ecrn_jax.train on a BatchNorm model: the running statistics move with training, the
  checkpoint's state.rest carries them, and resuming from it equals the uninterrupted run."""
  import ecrn_jax  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  x, y = rng.standard_normal((32, 5)), rng.standard_normal(32)
  model = ResidualMLP18(out_dim=1, widths=(4, 4, 8, 8), dtype='float64')
  variables = model.init(jax.random.PRNGKey(0), x)
  config = ecrn_jax.TrainConfig(
      optimizer='momentum', learning_rate=0.01, schedule='cosine', epochs=4, batch_size=8
  )
  saved = {}

  def checkpoint(epoch, state, history):
    saved[epoch] = dict(
        epoch=epoch,
        params=jax.device_get(state.params),
        opt_state=jax.device_get(state.opt_state),
        step=int(state.step),
        history=history,
        rest=jax.device_get(state.rest),
    )

  final, history = ecrn_jax.train(model, variables, (x, y), config, checkpoint=checkpoint)
  moved = [
      np.max(np.abs(np.asarray(a) - np.asarray(b)))
      for a, b in zip(
          jax.tree_util.tree_leaves(variables['batch_stats']),
          jax.tree_util.tree_leaves(final['batch_stats']),
      )
  ]
  assert min(moved) > 0
  assert np.all(np.isfinite(history['loss'])) and history['loss'][-1] < history['loss'][0]
  resumed, _ = ecrn_jax.train(model, variables, (x, y), config, resume=saved[2])
  for a, b in zip(jax.tree_util.tree_leaves(final), jax.tree_util.tree_leaves(resumed)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # Without 'rest' the resumed run starts from the initial statistics: it differs.
  stale = dict(saved[2])
  del stale['rest']
  other, _ = ecrn_jax.train(model, variables, (x, y), config, resume=stale)
  assert not np.array_equal(
      np.asarray(jax.tree_util.tree_leaves(other['batch_stats'])[0]),
      np.asarray(jax.tree_util.tree_leaves(final['batch_stats'])[0]),
  )
