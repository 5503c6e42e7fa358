# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Empirical-NTK–vector products Θ v = J₁ (J₂ᵀ v) of any Flax module, never forming J.

One `jax.vjp` then one `jax.jvp` per product (per output for the output-averaged kernel with
C > 1), chunked over the inputs so that memory does not grow with N (docs/spec.md §2.2; Jacot
et al. 2018 for the NTK, Novak et al. 2022 for computing it without the Jacobian).
`auto_vp_batch_size` sizes the chunks from a memory budget.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ecrn_jax._src import costs
from ecrn_jax._src import empirical as empirical_lib
from ecrn_jax._src.empirical import (
    IMPLEMENTATIONS,
    checked_inputs,
    empirical_ntk,
    freeze_kwargs,
    output_fn,
    output_shape,
    split_variables,
)


def _output_cotangents(v, n2: int, c: int, dtype, trace_outputs: bool) -> jax.Array:
  """v checked and made the cotangents of the outputs, (k, N₂, C): traced, one per output c
  (v in column c; the output-averaged kernel is (1/C) Σ_c J₁_c J₂_cᵀ v); full, v itself."""
  if trace_outputs:
    if v.shape != (n2,):
      raise ValueError(f'v must have shape (N₂,) = {(n2,)}, got {v.shape}.')
    return jnp.einsum('j,cb->cjb', v.astype(dtype), jnp.eye(c, dtype=dtype))
  if v.shape != (n2, c):
    raise ValueError(f'v must have shape (N₂, C) = {(n2, c)}, got {v.shape}.')
  return v.astype(dtype)[None]


def _reduce_outputs(pushed: jax.Array, trace_outputs: bool) -> jax.Array:
  """(k, N₁, C) pushed cotangents → Θv: (N₁,) traced, (N₁, C) full."""
  if trace_outputs:
    return jnp.einsum('cic->i', pushed) / pushed.shape[0]
  return pushed[0]


def _map_outputs(fn, stacked):
  """vmap over the leading (output) axis, or a plain call when it has one entry (C = 1, or the
  full kernel): a vmap of size one inside a scan costs ~1.5× on a CPU."""
  if jax.tree_util.tree_leaves(stacked)[0].shape[0] == 1:
    return jax.tree_util.tree_map(
        lambda a: a[None], fn(jax.tree_util.tree_map(lambda a: a[0], stacked))
    )
  return jax.vmap(fn)(stacked)


@functools.lru_cache(maxsize=64)
def _ntk_vp_jitted(model: nn.Module, frozen_kwargs: tuple, trace_outputs: bool):
  f = output_fn(model, frozen_kwargs)

  @jax.jit
  def ntk_vp(params, rest, rngs, x1, x2, v):
    out2, vjp_fn = jax.vjp(lambda p: f(p, rest, rngs, x2), params)
    push = lambda t: jax.jvp(lambda p: f(p, rest, rngs, x1), (params,), (t,))[1]
    cotangents = _output_cotangents(v, out2.shape[0], out2.shape[1], out2.dtype, trace_outputs)
    # One vjp and one jvp per cotangent (just one of each when C = 1 or for the full kernel).
    return _reduce_outputs(_map_outputs(lambda ct: push(vjp_fn(ct)[0]), cotangents), trace_outputs)

  return ntk_vp


def _row_chunks(x: jax.Array, chunk: int) -> jax.Array:
  """(N, ...) → (⌈N/chunk⌉, chunk, ...), the last chunk padded by repeating the last row."""
  num = -(-x.shape[0] // chunk)
  pad = num * chunk - x.shape[0]
  if pad:
    x = jnp.concatenate([x, jnp.broadcast_to(x[-1:], (pad,) + x.shape[1:])])
  return x.reshape((num, chunk) + x.shape[1:])


def _jaxpr_bytes(jaxpr) -> int:
  """Bytes of every intermediate value of a jaxpr, nested jaxprs (pjit, custom_jvp) included."""
  total = 0
  for eqn in jaxpr.eqns:
    for var in eqn.outvars:
      aval = var.aval
      if hasattr(aval, 'shape') and hasattr(aval, 'dtype'):
        total += int(np.prod(aval.shape)) * getattr(aval.dtype, 'itemsize', 4)
    for param in eqn.params.values():
      for sub in param if isinstance(param, (tuple, list)) else (param,):
        sub = getattr(sub, 'jaxpr', sub)  # ClosedJaxpr → Jaxpr
        if hasattr(sub, 'eqns'):
          total += _jaxpr_bytes(sub)
  return total


def _abstract(leaf) -> jax.ShapeDtypeStruct:
  leaf = leaf if hasattr(leaf, 'dtype') else np.asarray(leaf)
  return jax.ShapeDtypeStruct(np.shape(leaf), leaf.dtype)


def bytes_per_input(model: nn.Module, variables: Mapping[str, Any], x, *, rngs=None, **kwargs):
  """Bytes of forward-pass intermediates per example: the jaxpr's at 2 inputs minus at 1.

  From shapes alone (no FLOPs). A vjp keeps about this much per input as residuals, and each
  pushed tangent or pulled cotangent needs as much again.
  """
  params, rest = split_variables(variables)
  f = output_fn(model, freeze_kwargs(kwargs))
  abstract = jax.tree_util.tree_map(_abstract, (params, rest, rngs))
  x = jnp.asarray(x) if not hasattr(x, 'shape') else x

  def size(n):
    x_n = jax.ShapeDtypeStruct((n,) + tuple(x.shape[1:]), x.dtype)
    return _jaxpr_bytes(jax.make_jaxpr(f)(*abstract, x_n).jaxpr)

  return max(1, size(2) - size(1))


# Bytes one kernel–vector product may hold for its chunk's intermediates when batch_size is
# automatic, on a CPU; on an accelerator, this fraction of its memory.
DEFAULT_VP_BYTES = 256 * 2**20
_DEVICE_MEMORY_FRACTION = 1 / 16


def _vp_memory_budget() -> int:
  device = jax.devices()[0]
  try:
    stats = device.memory_stats() or {}
  except Exception:  # pylint: disable=broad-except   (backends without memory stats)
    stats = {}
  limit = stats.get('bytes_limit')
  return int(limit * _DEVICE_MEMORY_FRACTION) if limit else DEFAULT_VP_BYTES


def auto_vp_batch_size(
    model: nn.Module,
    variables: Mapping[str, Any],
    x,
    *,
    trace_outputs: bool = True,
    memory_bytes: Optional[int] = None,
    rngs=None,
    **apply_kwargs,
) -> int:
  """Inputs per chunk of `ntk_vp_fn(batch_size=None)`: (1 + 2k)·bytes_per_input·chunk ≤ budget.

  k is the number of cotangents pulled and tangents pushed per product (C when the kernel is
  output-averaged, else 1). The budget is `memory_bytes`, or `DEFAULT_VP_BYTES` (256 MiB) on a
  CPU and 1/16 of an accelerator's memory. At N = 50,000 inputs of the default ECRN this
  bounds the product to ~0.3 GiB at the speed of one unchunked product (benchmarks/
  kernel_tracking_at_scale.py). vmap over v multiplies the memory by the number of vectors.

  >>> import jax, numpy as np, ecrn_jax
  >>> model = ecrn_jax.MLP(ecrn_jax.MLPConfig(hidden_widths=(8,), out_dim=2, dtype='float32'))
  >>> x = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(3, 2)
  >>> variables = model.init(jax.random.PRNGKey(0), x)
  >>> ecrn_jax.kernels.auto_vp_batch_size(model, variables, x, memory_bytes=1 << 20) >= 1
  True
  """
  per_input = bytes_per_input(model, variables, x, rngs=rngs, **apply_kwargs)
  params, rest = split_variables(variables)
  f = output_fn(model, freeze_kwargs(apply_kwargs))
  out = jax.eval_shape(lambda: f(params, rest, rngs, jnp.asarray(x)[:1]))
  k = out.shape[1] if trace_outputs else 1
  budget = _vp_memory_budget() if memory_bytes is None else int(memory_bytes)
  return int(max(1, budget // ((1 + 2 * k) * per_input)))


@functools.lru_cache(maxsize=64)
def _ntk_vp_chunked(model: nn.Module, frozen_kwargs: tuple, trace_outputs: bool, chunk: int):
  """Θv over input chunks: Σ_chunks J₂ᵀv accumulated by a scan of vjps, then J₁(J₂ᵀv) chunk by
  chunk (a map of jvps). Memory O(chunk · activations + C·P) (one parameter-shaped tangent per
  output when traced), not O(N · activations)."""
  f = output_fn(model, frozen_kwargs)

  @jax.jit
  def ntk_vp(params, rest, rngs, x1, x2, v):
    n1, n2 = x1.shape[0], x2.shape[0]
    out = jax.eval_shape(lambda: f(params, rest, rngs, x2[:1]))
    c = out.shape[1]
    cotangents = _output_cotangents(v, n2, c, out.dtype, trace_outputs)
    k = cotangents.shape[0]
    pad = -(-n2 // chunk) * chunk - n2
    cotangents = jnp.pad(cotangents, ((0, 0), (0, pad), (0, 0)))  # zero: padding adds nothing
    cotangents = cotangents.reshape(k, -1, chunk, c).transpose(1, 0, 2, 3)

    def accumulate(total, inputs):
      x_chunk, ct_chunk = inputs
      _, vjp_fn = jax.vjp(lambda p: f(p, rest, rngs, x_chunk), params)
      pulled = _map_outputs(lambda ct: vjp_fn(ct)[0], ct_chunk)
      return jax.tree_util.tree_map(jnp.add, total, pulled), None

    zeros = jax.tree_util.tree_map(lambda p: jnp.zeros((k,) + p.shape, p.dtype), params)
    tangents, _ = jax.lax.scan(accumulate, zeros, (_row_chunks(x2, chunk), cotangents))

    def push(x_chunk):
      return _map_outputs(
          lambda t: jax.jvp(lambda p: f(p, rest, rngs, x_chunk), (params,), (t,))[1], tangents
      )  # (k, chunk, C)

    pushed = jax.lax.map(push, _row_chunks(x1, chunk))  # (chunks, k, chunk, C)
    return _reduce_outputs(pushed.transpose(1, 0, 2, 3).reshape(k, -1, c)[:, :n1], trace_outputs)

  return ntk_vp


def _kernel_products(kernel: jax.Array, trace_outputs: bool) -> Callable[[jax.Array], jax.Array]:
  """v ↦ Θ v with Θ materialized: (N₁, N₂) traced; (N₁·C, N₂·C) full, v (N₂, C) ↦ (N₁, C)."""

  def product(v):
    v = jnp.asarray(v)
    if trace_outputs:
      if v.shape != kernel.shape[1:]:
        raise ValueError(f'v must have shape (N₂,) = {kernel.shape[1:]}, got {v.shape}.')
      return kernel @ v.astype(kernel.dtype)
    if v.ndim != 2 or v.size != kernel.shape[1]:
      raise ValueError(f'v must have shape (N₂, C) with N₂·C = {kernel.shape[1]}, got {v.shape}.')
    return (kernel @ v.astype(kernel.dtype).reshape(-1)).reshape(-1, v.shape[1])

  return product


def _check_batch_size(batch_size) -> None:
  if batch_size is not None and (
      isinstance(batch_size, bool)
      or not isinstance(batch_size, (int, np.integer))
      or batch_size < 0
  ):
    raise ValueError(
        'batch_size must be None (a chunk from the memory budget), 0 (all inputs at once) or a '
        f'positive number of inputs per chunk; got {batch_size!r}.'
    )


def ntk_vp_fn(
    model: nn.Module,
    variables: Mapping[str, Any],
    x1,
    x2=None,
    *,
    trace_outputs: bool = True,
    rngs: Optional[Mapping[str, jax.Array]] = None,
    batch_size: Optional[int] = None,
    implementation: str = 'vector_products',
    **apply_kwargs,
) -> Callable[[jax.Array], jax.Array]:
  """A jittable v ↦ Θ(x1, x2) v that never forms the Jacobian: Θ v = J₁ (J₂ᵀ v).

  Args:
    model, variables, rngs, apply_kwargs: as in `empirical_ntk`.
    x1: (N₁, ...) inputs; x2: (N₂, ...) or None for x1.
    trace_outputs: True → v (N₂,) ↦ (N₁,), the output-averaged kernel;
      False → v (N₂, C) ↦ (N₁, C), the full kernel (one vjp, one jvp).
    batch_size: inputs per chunk: the vjp pass accumulates J₂ᵀv over chunks of x2 (a scan)
      and the jvp pass computes Θv chunk by chunk of x1, so memory grows with the chunk, not
      with N. None (default): `auto_vp_batch_size`, the largest chunk within a memory budget
      (all inputs at once when they fit); 0: all inputs at once. Same result up to summation
      order; the model must treat examples independently (evaluation mode, no batch
      statistics; the ECRN's drop mask is one per call, so the same in every chunk).
    implementation: 'vector_products' (the above: jittable, nothing N₁ × N₂ formed, one vjp
      and one jvp a product); or one of `empirical_ntk`'s ('auto', 'structured', 'jacobian',
      'generic'): Θ is materialized once by that path (variables and inputs concrete: not
      inside a jit) and every product is a matmul with it; that pays when many products are
      taken of one kernel (Lanczos, Hutchinson, CG) and N₁ × N₂ numbers fit in memory, as for
      a convolutional network on a few thousand probes (`products_pay`).
  Returns:
    The kernel–vector-product function; vmap it for several vectors.

  (Jacot et al. 2018; kernel-vector products as in Novak et al. 2022; docs/spec.md §2.2.)

  >>> import jax, numpy as np, ecrn_jax
  >>> model = ecrn_jax.MLP(ecrn_jax.MLPConfig(hidden_widths=(8,), out_dim=2, dtype='float32'))
  >>> x = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(3, 2)
  >>> variables = model.init(jax.random.PRNGKey(0), x)
  >>> matvec = ecrn_jax.ntk_vp_fn(model, variables, x)
  >>> v = np.ones(3, np.float32)
  >>> bool(np.allclose(matvec(v), ecrn_jax.empirical_ntk(model, variables, x) @ v, rtol=1e-4))
  True
  """
  if implementation != 'vector_products':
    if implementation not in IMPLEMENTATIONS:
      raise ValueError(
          "implementation must be 'vector_products' or one of "
          f'{list(IMPLEMENTATIONS)}, got {implementation!r}.'
      )
    return _kernel_products(
        empirical_ntk(
            model,
            variables,
            x1,
            x2,
            trace_outputs=trace_outputs,
            rngs=rngs,
            implementation=implementation,
            **apply_kwargs,
        ),
        bool(trace_outputs),
    )
  params, rest = split_variables(variables)
  x1, x2 = checked_inputs(x1, x2, 'auto')
  _check_batch_size(batch_size)
  frozen = freeze_kwargs(apply_kwargs)
  output_shape(model, variables, x1, rngs=rngs, **apply_kwargs)
  n = max(x1.shape[0], x2.shape[0])
  if batch_size is None:
    batch_size = auto_vp_batch_size(
        model, variables, x1, trace_outputs=bool(trace_outputs), rngs=rngs, **apply_kwargs
    )
  if batch_size == 0 or batch_size >= n:
    fn = _ntk_vp_jitted(model, frozen, bool(trace_outputs))
  else:
    chunk = -(-n // -(-n // int(batch_size)))  # equal chunks: the least padding
    fn = _ntk_vp_chunked(model, frozen, bool(trace_outputs), chunk)
  return functools.partial(fn, params, rest, rngs, x1, x2)


# Bytes the kernel materialized for products may take (`kernel_pays`).
KERNEL_BYTES = 1024 * 2**20


def kernel_pays(
    model: nn.Module,
    variables: Mapping[str, Any],
    x,
    num_products: int,
    *,
    trace_outputs: bool = True,
    memory_bytes: int = KERNEL_BYTES,
    **apply_kwargs,
) -> bool:
  """Whether Θ(x, x) materialized once (`empirical_ntk`, implementation='auto') and multiplied
  `num_products` times costs less than as many kernel–vector products (`costs`), with its
  N²(·C²) numbers within `memory_bytes`.

  >>> import jax, numpy as np, ecrn_jax
  >>> model = ecrn_jax.MLP(ecrn_jax.MLPConfig(hidden_widths=(8,), out_dim=2, dtype='float32'))
  >>> x = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(3, 2)
  >>> variables = model.init(jax.random.PRNGKey(0), x)
  >>> ecrn_jax.kernels.kernel_pays(model, variables, x, 100)
  True
  """
  params, rest = split_variables(variables)
  x, _ = checked_inputs(x, None, 'auto')
  frozen = freeze_kwargs(apply_kwargs)
  c = int(np.prod(output_shape(model, variables, x, **apply_kwargs)[1:]))
  n = x.shape[0] * (1 if trace_outputs else c)
  if n * n * np.dtype(jax.tree_util.tree_leaves(params)[0].dtype).itemsize > memory_bytes:
    return False
  trace = bool(trace_outputs)
  path, plan = empirical_lib.choose_path(
      model, frozen, params, rest, None, x, x, trace, 'auto', None, c
  )
  kernel = empirical_lib.path_costs(
      model, frozen, params, rest, None, x, x, trace, {path: plan}, None, c
  )[path]
  forward = empirical_lib.forward_cost(model, frozen, params, rest, None, x)
  products = costs.vector_products(forward, x.shape[0], x.shape[0], c, trace, num_products)
  return kernel + 2.0 * num_products * n * n < products
