# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The network linearized in its parameters: f_lin(θ) = f(θ₀) + J(θ₀)(θ − θ₀) (docs/spec.md §4.1).

Trained by gradient descent on the MSE, the linearized network follows the kernel-regression
dynamics of its empirical NTK Θ_{θ₀} exactly (Lee et al. 2019, "Wide Neural Networks of Any
Depth Evolve as Linear Models Under Gradient Descent").
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp


class LinearizedModel:
  """f_lin(θ) = f(θ₀) + J(θ₀)(θ − θ₀): the first-order Taylor expansion of a model.

  Duck-types the part of a Flax module that `train`, `empirical_ntk` and `ntk_vp_fn` use:
  `apply(variables, x, train=False, rngs=None)` → (N, C). The linearization is of the
  evaluation-mode network (`train` and `rngs` are ignored), in the 'params' collection;
  the other collections of `variables` are passed to the model unchanged. Its empirical
  NTK is Θ_{θ₀} at every θ. Hashed by identity (it holds θ₀).
  """

  def __init__(self, model: nn.Module, variables: Mapping[str, Any]):
    if 'params' not in variables:
      raise ValueError("variables must contain a 'params' collection, got " f'{list(variables)}.')
    self.model = model
    self.params0 = variables['params']

  def apply(
      self,
      variables: Mapping[str, Any],
      x,
      train: bool = False,
      rngs: Optional[Mapping[str, jax.Array]] = None,
  ) -> jax.Array:
    """f₀(x) + J₀(x)(θ − θ₀): the first-order Taylor expansion at the initial parameters."""
    del train, rngs
    rest = {k: v for k, v in variables.items() if k != 'params'}
    f = lambda p: self.model.apply({'params': p, **rest}, x)
    delta = jax.tree_util.tree_map(jnp.subtract, variables['params'], self.params0)
    out0, tangent = jax.jvp(f, (self.params0,), (delta,))
    return out0 + tangent


def linearize(model: nn.Module, variables: Mapping[str, Any]) -> LinearizedModel:
  """The model linearized in its 'params' around `variables` (see `LinearizedModel`).

  (Lee et al. 2019, docs/spec.md §4.1.)

  >>> import jax, numpy as np, ecrn_jax
  >>> model = ecrn_jax.MLP(ecrn_jax.MLPConfig(hidden_widths=(8,), dtype='float32'))
  >>> x = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(3, 2)
  >>> variables = model.init(jax.random.PRNGKey(0), x)
  >>> linear = ecrn_jax.training.linearize(model, variables)
  >>> bool(np.allclose(linear.apply(variables, x), model.apply(variables, x)))  # equal at θ₀
  True
  """
  return LinearizedModel(model, variables)
