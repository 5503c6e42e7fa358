# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Baselines for the paper's "ResNet-18" row: `ResNet18` (images) and `ResidualMLP18` (vectors).

`ResNet18` is the CIFAR variant of He et al. (2016) as in kuangliu/pytorch-cifar (3×3 stem, no
max-pool, 4 stages of 2 BasicBlocks, widths (w, 2w, 4w, 8w)): 11,173,962 parameters for 10
classes. `ResidualMLP18` has Dense layers in place of the convolutions, for unordered features
(1,403,265 parameters on d = 8). Initialisation as torchvision; `train=True` uses batch statistics.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ecrn_jax.models import resolve_dtype

he_normal = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')
torch_linear_init = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')


def crop_and_flip(images: jax.Array, offsets: jax.Array, flips: jax.Array, padding=4) -> jax.Array:
  """(N, H, W, C) images zero-padded by `padding`, cropped at (N, 2) `offsets` in
  [0, 2·padding] and flipped left-right where `flips`; offset (padding, padding) is the image."""
  _, height, width, channels = images.shape
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))

  def one(img, offset, flip):
    crop = jax.lax.dynamic_slice(img, (offset[0], offset[1], 0), (height, width, channels))
    return jnp.where(flip, crop[:, ::-1], crop)

  return jax.vmap(one)(padded, offsets, flips)


def random_crop_and_flip(images: jax.Array, key: jax.Array, padding: int = 4) -> jax.Array:
  """The standard CIFAR augmentation of (N, H, W, C) images: offsets uniform in
  {0, …, 2·padding}², flips Bernoulli(1/2), independently per image."""
  offset_key, flip_key = jax.random.split(key)
  offsets = jax.random.randint(offset_key, (images.shape[0], 2), 0, 2 * padding + 1)
  flips = jax.random.bernoulli(flip_key, 0.5, images.shape[:1])
  return crop_and_flip(images, offsets, flips, padding)


def _batch_norm(train: bool, dtype: Any, name: str) -> nn.BatchNorm:
  # force_float32_reductions=False: statistics and running averages in `dtype` (float64 too).
  types = dict(dtype=dtype, param_dtype=dtype, force_float32_reductions=False)
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, **types, name=name)


def _conv(features: int, size: int, strides: int, dtype: Any, name: str) -> nn.Conv:
  """A bias-free size×size convolution, padding size // 2, He normal (fan_out)."""
  padding, types = ((size // 2, size // 2),) * 2, dict(dtype=dtype, param_dtype=dtype)
  layer = dict(strides=(strides, strides), padding=padding, use_bias=False, kernel_init=he_normal)
  return nn.Conv(features, (size, size), **layer, **types, name=name)


def _dense(features: int, dtype: Any, name: str) -> nn.Dense:
  """A bias-free Dense layer, He normal (fan_out); the 'head', with a bias and torch's init."""
  init = torch_linear_init if name == 'head' else he_normal
  types = dict(dtype=dtype, param_dtype=dtype, name=name)
  return nn.Dense(features, use_bias=name == 'head', kernel_init=init, **types)


class BasicBlock(nn.Module):
  """layer-BN-ReLU-layer-BN + shortcut (layer+BN projection if the shape changes), ReLU after the
  sum. `layer` 'conv': 3×3 convolutions (a 1×1 projection), (N, H, W, C) → (N, H/s, W/s, F);
  'dense': Dense layers, (N, C) → (N, F)."""

  features: int
  strides: int = 1
  dtype: Any = jnp.float32
  layer: str = 'conv'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    def layer(name: str, size: int, strides: int) -> nn.Module:
      if self.layer == 'dense':
        return _dense(self.features, self.dtype, name)
      return _conv(self.features, size, strides, self.dtype, name)

    bn = lambda name: _batch_norm(train, self.dtype, name)
    y = nn.relu(bn('bn1')(layer(f'{self.layer}1', 3, self.strides)(x)))
    y = bn('bn2')(layer(f'{self.layer}2', 3, 1)(y))
    shortcut = x
    if self.strides != 1 or x.shape[-1] != self.features:
      shortcut = bn('proj_bn')(layer(f'proj_{self.layer}', 1, self.strides)(x))
    return nn.relu(y + shortcut)


class ResNet18(nn.Module):
  """CIFAR ResNet-18 (module docstring): 'stem_conv', 'stem_bn', 'block_{stage}_{block}', 'head';
  x (N, H·W·C) channels-last or (N, H, W, C) → (N, num_classes). With `augment` and `train`,
  images are cropped and flipped with the 'dropout' rng."""

  num_classes: int
  image_shape: tuple = (32, 32, 3)
  width: int = 64
  augment: bool = False
  dtype: str = 'float32'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    dtype = resolve_dtype(self.dtype)
    x = jnp.asarray(x)
    if x.ndim == 2:
      if x.shape[1] != math.prod(self.image_shape):
        raise ValueError(
            f'flat inputs must have {math.prod(self.image_shape)} features '
            f'(image_shape={self.image_shape}), got shape {x.shape}.'
        )
      x = x.reshape(x.shape[0], *self.image_shape)
    elif x.ndim != 4:
      raise ValueError(f'inputs must be (N, H·W·C) or (N, H, W, C), got shape {x.shape}.')
    x = x.astype(dtype)
    if self.augment and train:
      x = random_crop_and_flip(x, self.make_rng('dropout'))
    h = _conv(self.width, 3, 1, dtype, 'stem_conv')(x)
    h = nn.relu(_batch_norm(train, dtype, 'stem_bn')(h))
    for s, (mult, stride) in enumerate(zip((1, 2, 4, 8), (1, 2, 2, 2))):
      for b in range(2):
        block = BasicBlock(self.width * mult, stride if b == 0 else 1, dtype, name=f'block_{s}_{b}')
        h = block(h, train)
    h = jnp.mean(h, axis=(1, 2))
    return _dense(self.num_classes, dtype, 'head')(h)


class ResidualMLP18(nn.Module):
  """ResNet-18's topology with Dense layers (module docstring): 'stem_dense', 'stem_bn' and 4
  stages of 2 Dense `BasicBlock`s 'block_{stage}_{block}' of widths `widths`, 'head'.
  Call: x (N, d) → (N, out_dim)."""

  out_dim: int
  widths: tuple = (64, 128, 256, 512)
  dtype: str = 'float32'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    dtype = resolve_dtype(self.dtype)
    x = jnp.asarray(x)
    if x.ndim != 2:
      raise ValueError(f'inputs must be (N, d), got shape {x.shape}.')
    h = _dense(self.widths[0], dtype, 'stem_dense')(x.astype(dtype))
    h = nn.relu(_batch_norm(train, dtype, 'stem_bn')(h))
    for s, width in enumerate(self.widths):
      for b in range(2):
        h = BasicBlock(width, dtype=dtype, layer='dense', name=f'block_{s}_{b}')(h, train)
    return _dense(self.out_dim, dtype, 'head')(h)
