# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Empirical NTK and NNGP of any Flax module: the materialized kernels.

Θ_θ(x, x') = (1/C) Σ_c ⟨∂f_c(x)/∂θ, ∂f_c(x')/∂θ⟩ with θ the 'params' collection only
(docs/spec.md §2). The full kernel, on request, has shape (N₁·C, N₂·C) with row index i·C + a
(a reshape of (N₁, C, N₂, C)). The kernel–vector products `ntk_vp_fn` are in
`vector_products.py`.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ecrn_jax._src import costs
from ecrn_jax._src import per_example
from ecrn_jax._src import structured
from ecrn_jax._src import structured_conv
from ecrn_jax._src.per_example import output_fn
from ecrn_jax._src.validation import check_finite_inputs

# Bytes allowed for the per-block tangents (block·C·P entries) when block_size is automatic.
_DEFAULT_BLOCK_BYTES = 256 * 2**20
# Bytes allowed for the per-example Jacobians of the 'jacobian' path (both sides together).
_JACOBIAN_BYTES = 1024 * 2**20
# Bytes allowed for the layer features of x2 kept by the structured path of any Flax module (the
# per-example weight gradients of its early convolutions: 115 MB an input for ResNet-18).
_FEATURE_BYTES = 4096 * 2**20


def split_variables(variables: Mapping[str, Any]) -> tuple[Any, dict]:
  if 'params' not in variables:
    raise ValueError(
        "variables must contain a 'params' collection (the output of "
        f'model.init); got collections {list(variables)}.'
    )
  rest = {k: v for k, v in variables.items() if k != 'params'}
  return variables['params'], rest


def freeze_kwargs(apply_kwargs: Mapping[str, Any]) -> tuple:
  try:
    frozen = tuple(sorted(apply_kwargs.items()))
    hash(frozen)
  except TypeError as e:
    raise ValueError(
        'extra apply arguments must be hashable static values (e.g. '
        'train=True); pass PRNG keys through rngs=.'
    ) from e
  return frozen


@functools.lru_cache(maxsize=64)
def _block_kernel_fn(model: nn.Module, frozen_kwargs: tuple, trace_outputs: bool):
  """Jitted Θ(x1_block, x2_block) from kernel–vector products with unit vectors.

  J₂ᵀ E for the unit vectors E of the x2 block comes from one vmapped vjp; J₁ (J₂ᵀ E)
  from one vmapped jvp. Memory: O(b₂·C·P) for the tangents.
  """
  f = output_fn(model, frozen_kwargs)

  @jax.jit
  def block(params, rest, rngs, x1, x2):
    out2, vjp_fn = jax.vjp(lambda p: f(p, rest, rngs, x2), params)
    n2, c = out2.shape
    units = jnp.eye(n2 * c, dtype=out2.dtype).reshape(n2 * c, n2, c)
    (tangents,) = jax.vmap(vjp_fn)(units)  # (n2·C) × P
    jvp = lambda t: jax.jvp(lambda p: f(p, rest, rngs, x1), (params,), (t,))[1]
    products = jax.vmap(jvp)(tangents)  # (n2·C, n1, C)
    products = products.reshape(n2, c, x1.shape[0], c)  # [j, b, i, a]
    if trace_outputs:
      return jnp.einsum('jcic->ij', products) / c  # (n1, n2)
    return jnp.transpose(products, (2, 3, 0, 1)).reshape(x1.shape[0] * c, n2 * c)

  return block


def _abstract(a) -> tuple[tuple, Any]:
  """(shape, dtype) of an array or a number."""
  dtype = getattr(a, 'dtype', None)
  return tuple(np.shape(a)), np.asarray(a).dtype if dtype is None else dtype


def _apply_for_shape(model, frozen: tuple, variables, x, rngs):
  return model.apply(variables, x, rngs=rngs, **dict(frozen))


@functools.lru_cache(maxsize=64)
def _output_struct_cached(model, frozen: tuple, tree, leaves: tuple, x1: tuple):
  """`_output_struct` of the (variables, rngs) of `tree` with `leaves` ((shape, dtype) each) and
  an input of (shape, dtype) `x1`: traced once per model, arguments and shapes."""
  abstract = [jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in leaves]
  variables, rngs = jax.tree_util.tree_unflatten(tree, abstract)
  apply = functools.partial(_apply_for_shape, model, frozen)
  return jax.eval_shape(apply, variables, jax.ShapeDtypeStruct(*x1), rngs)


def _output_struct(model: nn.Module, variables, x, rngs, kwargs: Mapping[str, Any]):
  """jax.eval_shape of model.apply(variables, x[:1], rngs=rngs, **kwargs), from the shapes
  alone (x is not sliced: no program); cached unless the model or kwargs are unhashable."""
  shape = np.shape(x)
  x1 = ((min(1, shape[0]),) + tuple(shape[1:]), _abstract(x)[1])
  frozen = tuple(sorted(kwargs.items()))
  leaves, tree = jax.tree_util.tree_flatten((dict(variables), rngs))
  try:
    hash((model, frozen))
  except TypeError:  # e.g. mutable=[...]: traced at every call
    apply = lambda v, xb, r: model.apply(v, xb, rngs=r, **kwargs)
    return jax.eval_shape(apply, dict(variables), jax.ShapeDtypeStruct(*x1), rngs)
  return _output_struct_cached(model, frozen, tree, tuple(_abstract(a) for a in leaves), x1)


def output_shape(
    model: nn.Module, variables: Mapping[str, Any], x, *, name: str = 'x1', rngs=None, **kwargs
) -> tuple:
  """model.apply(variables, x[:1])'s shape, from shapes alone; a ValueError naming `name` when
  the variables do not fit inputs of x's shape (initialised on another number of features)."""
  try:
    out = _output_struct(model, variables, x, rngs, kwargs)
  except Exception as e:  # pylint: disable=broad-except   (flax/jax shape errors)
    if per_example.updates_batch_stats(e):
      raise ValueError(
          f'{type(model).__name__} cannot be differentiated as called: '
          f'{per_example.BATCH_STATS_UPDATE}.'
      ) from e
    first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    raise ValueError(
        f'the model cannot be applied to {name} of shape {tuple(x.shape[1:])} per example with '
        f'these variables ({first}); were the variables initialised on inputs with another '
        'number of features?'
    ) from e
  if isinstance(out, tuple) and 'mutable' in kwargs:  # (output, updated collections)
    out = out[0]
  return tuple(out.shape)


def _bytes_per_input(params, out_dim: int) -> int:
  """Bytes of one input's C·P numbers (its tangents, or its Jacobian) in the params' dtype."""
  itemsize = np.dtype(structured.params_dtype(params)).itemsize
  return out_dim * per_example.num_params(params) * itemsize


def _inputs_within(budget_bytes: int, per_input: int) -> int:
  """Inputs per block (1 to 512) whose C·P numbers stay near `budget_bytes`."""
  return int(max(1, min(512, budget_bytes // max(1, per_input))))


def _padded_blocks(x: jax.Array, block_size: int):
  """Yields (block padded to block_size rows, number of valid rows): one compiled shape."""
  for start in range(0, x.shape[0], block_size):
    block = x[start : start + block_size]
    valid = block.shape[0]
    if valid < block_size < x.shape[0]:
      pad = jnp.zeros((block_size - valid,) + block.shape[1:], block.dtype)
      block = jnp.concatenate([block, pad])
    yield block, valid


def _generic_rows(model, frozen, params, rest, rngs, x1, x2, trace_outputs, block_size):
  """Yields (first row, row tile) of the kernel, a block of x1 at a time."""
  block = _block_kernel_fn(model, frozen, trace_outputs)
  start = 0
  for b1, n1 in _padded_blocks(x1, block_size):
    cols = []
    for b2, n2 in _padded_blocks(x2, block_size):
      k = block(params, rest, rngs, b1, b2)
      c1, c2 = k.shape[0] // b1.shape[0], k.shape[1] // b2.shape[0]
      cols.append(k[: n1 * c1, : n2 * c2])
    rows = jnp.concatenate(cols, axis=1)
    yield start, rows
    start += rows.shape[0]


def _feature_rows(compute, contract, x1, x2, block_size: int, per_input: int, scale: int, budget):
  """Yields (first row, row tile): the features of blocks of x1 (`compute`: block ↦ features,
  `per_input` bytes an input) contracted with x2's blocks. x2's features are kept when they fit
  `budget`; else they are computed again for every panel of x1's blocks (as many blocks as fit
  half of `budget`), so that x2 is passed over once per panel."""

  def blocks(x):
    for xb, n in _padded_blocks(x, block_size):
      yield compute(xb), n

  kept = list(blocks(x2)) if x2.shape[0] * per_input <= budget else None
  panel = 1 if kept is not None else max(1, budget // 2 // max(1, per_input * block_size))
  source = iter(kept if (kept is not None and x2 is x1) else blocks(x1))
  start = 0
  while True:
    firsts = [f for _, f in zip(range(panel), source)]
    if not firsts:
      return
    cols: list[list] = [[] for _ in firsts]
    for f2, n2 in kept or blocks(x2):
      for col, (f1, n1) in zip(cols, firsts):
        col.append(contract(f1, f2)[: n1 * scale, : n2 * scale])
    for col in cols:
      rows = jnp.concatenate(col, axis=1) if len(col) > 1 else col[0]
      yield start, rows
      start += rows.shape[0]


def _jacobian_rows(model, frozen, params, rest, x1, x2, trace_outputs, block_size, out_dim):
  """Row tiles from per-example Jacobians (`per_example`), `_feature_rows`' blocks."""
  jacobians = per_example.jacobian_fn(model, frozen)
  per_input = _bytes_per_input(params, out_dim)
  block_size = block_size or _inputs_within(_JACOBIAN_BYTES // 2, per_input)
  return _feature_rows(
      lambda xb: jacobians(params, rest, None, xb),
      per_example.contract_fn(trace_outputs),
      x1,
      x2,
      block_size,
      per_input,
      1 if trace_outputs else out_dim,
      _JACOBIAN_BYTES // 2,
  )


def _layer_rows(model, frozen, layers, params, rest, x1, x2, trace_outputs, block_size, out_dim):
  """Row tiles from the layer features of any Flax module (`structured_conv`): blocks whose
  cotangents and features stay near half of `_JACOBIAN_BYTES` and whose Gram intermediates stay
  near `_DEFAULT_BLOCK_BYTES`; x2's features kept within `_FEATURE_BYTES`."""
  features = structured_conv.features_fn(model, frozen, layers)
  itemsize = structured_conv.itemsize(params)
  kept, transient = structured_conv.feature_numbers(layers, out_dim)
  if block_size is None:
    gram = structured_conv.gram_numbers(layers, out_dim, trace_outputs) * itemsize
    block_size = min(
        _inputs_within(_JACOBIAN_BYTES // 2, (kept + transient) * itemsize),
        max(1, int(np.sqrt(_DEFAULT_BLOCK_BYTES / gram))),
    )
  return _feature_rows(
      lambda xb: features(params, rest, xb),
      structured_conv.contract_fn(trace_outputs),
      x1,
      x2,
      block_size,
      kept * itemsize,
      1 if trace_outputs else out_dim,
      _FEATURE_BYTES,
  )


def _structured_rows(model, frozen, layers, params, rest, rngs, x1, x2, trace_outputs, block_size):
  """Yields (first row, row tile) of the kernel: the layer features of x1 and x2 once, then
  row tiles of x1 against all of x2 (about `_DEFAULT_BLOCK_BYTES` of work per tile)."""
  features = structured.features_fn(model, frozen, layers)
  contract = structured.contract_fn(layers, trace_outputs)

  def all_features(x):
    blocks = []
    for xb, n in _padded_blocks(x, block_size):
      feats = features(params, rest, rngs, xb)
      blocks.append({k: (a[:n], g[:, :n]) for k, (a, g) in feats.items()})
    if len(blocks) == 1:
      return blocks[0]
    return {
        k: (
            jnp.concatenate([b[k][0] for b in blocks]),
            jnp.concatenate([b[k][1] for b in blocks], axis=1),
        )
        for k in blocks[0]
    }

  feats1 = all_features(x1)
  feats2 = feats1 if x2 is x1 else all_features(x2)
  n1, n2 = x1.shape[0], x2.shape[0]
  c = list(feats1.values())[0][1].shape[0]
  outputs = 1 if trace_outputs else c
  itemsize = np.dtype(structured.params_dtype(params)).itemsize
  per_row = n2 * (1 if trace_outputs else c * c) * 3 * itemsize
  tile = int(max(1, min(n1, _DEFAULT_BLOCK_BYTES // max(1, per_row))))
  for start in range(0, n1, tile):
    valid = min(tile, n1 - start)
    rows_feats = {}
    for k, (a, g) in feats1.items():
      a, g = a[start : start + tile], g[:, start : start + tile]
      if valid < tile:
        a = jnp.concatenate([a, jnp.zeros((tile - valid,) + a.shape[1:], a.dtype)])
        g = jnp.concatenate(
            [g, jnp.zeros(g.shape[:1] + (tile - valid,) + g.shape[2:], g.dtype)], axis=1
        )
      rows_feats[k] = (a, g)
    yield start * outputs, contract(rows_feats, feats2)[: valid * outputs]


def _check_out(out, shape: tuple) -> None:
  if not (hasattr(out, 'shape') and hasattr(out, 'dtype') and hasattr(out, '__setitem__')):
    raise ValueError(
        'out must be a writable array such as a numpy array or np.lib.format.open_memmap(path, '
        f"'w+', dtype, {shape}); got {type(out).__name__}."
    )
  if tuple(out.shape) != shape:
    raise ValueError(f"out must have the kernel's shape {shape}, got {tuple(out.shape)}.")
  if getattr(out, 'flags', None) is not None and not out.flags.writeable:
    raise ValueError('out is read-only; open the memmap with mode "w+" or "r+".')


def _assemble(row_tiles, out):
  """The kernel from its row tiles: concatenated, or written into `out` as they come."""
  if out is None:
    tiles = [tile for _, tile in row_tiles]
    return jnp.concatenate(tiles, axis=0) if len(tiles) > 1 else tiles[0]
  for start, tile in row_tiles:
    out[start : start + tile.shape[0]] = np.asarray(tile)
  if hasattr(out, 'flush'):
    out.flush()
  return out


IMPLEMENTATIONS = ('auto', 'structured', 'jacobian', 'generic')


def checked_inputs(x1, x2, implementation: str) -> tuple[jax.Array, jax.Array]:
  """(x1, x2) as arrays, x2 = x1 when None, after checking them and `implementation`."""
  check_finite_inputs('x1', x1)
  if x2 is not None:
    check_finite_inputs('x2', x2)
  x1 = jnp.asarray(x1)
  x2 = x1 if x2 is None else jnp.asarray(x2)
  if x1.ndim < 2 or x2.ndim < 2:
    raise ValueError(
        f'x1 and x2 must be batched, shape (N, ...); got {x1.shape} and '
        f'{x2.shape}. For one example use x[None].'
    )
  if x1.shape[1:] != x2.shape[1:]:
    raise ValueError(
        f'x1 and x2 must have the same feature shape, got {x1.shape[1:]} and {x2.shape[1:]}.'
    )
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(
        f'implementation must be one of {list(IMPLEMENTATIONS)}, got {implementation!r}.'
    )
  return x1, x2


def _check_block_size(block_size) -> None:
  if block_size is not None and (
      isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1
  ):
    raise ValueError(f'block_size must be a positive integer or None, got {block_size!r}.')


def _dense_fan(layers, params) -> list[tuple[int, int]]:
  """(n_in, n_out) of every layer of a `structured.plan`."""
  fan = []
  for l in layers:
    node = structured._get(params, l.key)  # pylint: disable=protected-access
    matrix = node['kernel'] if l.kind == 'dense' else node['B']
    fan.append((int(matrix.shape[0]), int(l.out_shape[1])))
  return fan


@functools.lru_cache(maxsize=64)
def _forward_cost_cached(model, frozen, tree, shapes: tuple, x_shape: tuple, x_dtype):
  abstract = [jax.ShapeDtypeStruct(s, d) for s, d in shapes]
  params, rest = jax.tree_util.tree_unflatten(tree, abstract)
  x = jax.ShapeDtypeStruct((1,) + x_shape, x_dtype)
  return costs.forward_cost(output_fn(model, frozen), params, rest, None, x)


def forward_cost(model, frozen, params, rest, rngs, x) -> tuple[float, float]:
  """`costs.forward_cost`, cached by the shapes when there are no rngs (the tracker's calls)."""
  if rngs:
    return costs.forward_cost(output_fn(model, frozen), params, rest, rngs, x)
  leaves, tree = jax.tree_util.tree_flatten((params, rest))
  shapes = tuple(
      (tuple(np.shape(a)), np.dtype(getattr(a, 'dtype', None) or np.asarray(a).dtype))
      for a in leaves
  )
  return _forward_cost_cached(model, frozen, tree, shapes, tuple(x.shape[1:]), np.dtype(x.dtype))


def path_costs(model, frozen, params, rest, rngs, x1, x2, trace, plans, block_size, out_dim):
  """{path: estimated cost} of every path in `plans` ({'dense' | 'layers' | 'jacobian' |
  'generic': plan or None}); `costs` says how they are estimated."""
  forward = forward_cost(model, frozen, params, rest, rngs, x1)
  item = np.dtype(structured.params_dtype(params)).itemsize
  p = per_example.num_params(params)
  shape = dict(n1=x1.shape[0], n2=x2.shape[0], c=out_dim, trace=trace, p=p, itemsize=item)
  shape['same'] = x2 is x1
  shape['block'] = block_size or _inputs_within(_JACOBIAN_BYTES // 2, out_dim * p * item)
  n1, n2 = x1.shape[0], x2.shape[0]
  result = {}
  for path, plan in plans.items():
    if path == 'dense':
      result[path] = costs.structured_dense(forward, _dense_fan(plan, params), shape)
    elif path == 'layers':
      layer_costs = lambda l: structured_conv.costs(n1, n2, out_dim, trace, l)
      result[path] = costs.structured_layers(forward, plan, shape, layer_costs)
    elif path == 'jacobian':
      result[path] = costs.jacobian(forward, shape, _JACOBIAN_BYTES)
    else:
      result[path] = costs.generic(forward, n1, n2, out_dim)
  return result


def choose_path(
    model, frozen, params, rest, rngs, x1, x2, trace, implementation, block_size, out_dim
):
  """(path, plan): 'dense' or 'layers' (the structured forms, with their layers), 'jacobian' or
  'generic' (plan None). 'auto': the applicable path of least `path_costs`; the generic path
  alone for modules that couple examples. A ValueError where the path asked for does not apply.
  """
  if implementation == 'generic':
    return 'generic', None
  why = per_example.coupling(model, frozen, params, rest, rngs, x1)
  if why == per_example.BATCH_STATS_UPDATE:
    raise ValueError(f'{type(model).__name__} cannot be differentiated as called: {why}.')
  if implementation == 'jacobian':
    if why is not None:
      raise ValueError(
          f"implementation='jacobian' does not apply to {type(model).__name__}: {why}. Use "
          "implementation='generic' (or 'auto', which picks it for such modules)."
      )
    return 'jacobian', None
  plans: dict[str, Any] = {}
  reasons = []
  for kind in ('dense', 'layers'):
    try:
      if not isinstance(model, nn.Module):
        raise structured.Unsupported(f'{type(model).__name__} is not a Flax module.')
      if kind == 'dense':
        plans[kind] = structured.plan(model, frozen, params, rest, rngs, x1[:1])
      elif plans:  # the same Gram form for Dense layers: no cheaper, not planned again
        break
      elif why is not None:
        raise structured.Unsupported(f'{why}.')
      else:
        n1, n2 = x1.shape[0], x2.shape[0]
        plans[kind] = structured_conv.plan(model, frozen, params, rest, x1, n1, n2, trace)
    except Exception as e:  # pylint: disable=broad-except
      # 'auto' must never fail where another path works: any surprise → the next path.
      reasons.append(str(e))
  if implementation == 'structured':
    for kind in ('dense', 'layers'):
      if kind in plans:
        return kind, plans[kind]
    raise ValueError(
        f"implementation='structured' does not apply: {reasons[-1]} Use "
        "implementation='jacobian' or 'generic' (or 'auto')."
    ) from None
  if why is not None and not plans:
    return 'generic', None
  if why is None:
    plans['jacobian'] = None
  plans['generic'] = None
  estimates = path_costs(
      model, frozen, params, rest, rngs, x1, x2, trace, plans, block_size, out_dim
  )
  path = costs.cheapest(estimates)
  return path, plans[path]


def empirical_ntk(
    model: nn.Module,
    variables: Mapping[str, Any],
    x1,
    x2=None,
    *,
    trace_outputs: bool = True,
    block_size: Optional[int] = None,
    implementation: str = 'auto',
    rngs: Optional[Mapping[str, jax.Array]] = None,
    out=None,
    **apply_kwargs,
) -> jax.Array:
  """The empirical NTK of `model` at `variables`, materialized in blocks.

  Differentiates the 'params' collection only; other collections (e.g. a fixed Fourier
  matrix B) are held constant. Works for any Flax module whose output is (N, ...).

  Args:
    model: a Flax module; `model.apply(variables, x, rngs=rngs, **apply_kwargs)` → (N, C).
    variables: its variables, with a 'params' collection.
    x1: (N₁, ...) inputs.
    x2: (N₂, ...) inputs, or None for x1.
    trace_outputs: True → (N₁, N₂) kernel averaged over the C outputs;
      False → the full (N₁·C, N₂·C) kernel, row index i·C + a.
    block_size: inputs per block; None picks 256 for the structured path of Dense networks,
      a size that keeps the cotangents and features of a block near 512 MiB (x2's features
      kept within 4 GiB, else recomputed per panel of x1's blocks) for that of other modules,
      the per-example Jacobians near 512 MiB a side for the jacobian path and, for the generic
      one, a size that keeps the per-block tangents (block·C·P numbers) near 256 MiB.
    implementation: 'structured' uses the per-layer form Σ_l (s_w² A_l A_l'ᵀ + s_b²) ⊙
      (G_l G_l'ᵀ) (see `ecrn_jax._src.structured`) for a network of ecrn_jax Dense layers (a
      factor ~width cheaper at large N), and for any other Flax module whose output rows
      depend on their own example only, the same form layer by layer: flax Dense and Conv
      layers as input patches × output cotangents, other parameter owners (BatchNorm,
      LayerNorm, ...) by their own per-example vjps (`ecrn_jax._src.structured_conv`;
      ResNet-18's kernel from one forward and C backward passes); 'jacobian' contracts per-example
      Jacobians (C backward passes per example, leaf by leaf, a block of examples at a time),
      for any module whose output rows depend on their own example only (Conv, pooling,
      BatchNorm with running averages; not with batch statistics, nor with `rngs`); 'generic'
      builds Θ from kernel–vector products with unit vectors (J₁(J₂ᵀE), one vmapped vjp and jvp
      per block pair), for any module. 'auto' takes, among those that apply, the one of least
      estimated cost (`ecrn_jax._src.costs`: FLOPs and bytes from the module's jaxpr and layer
      shapes), the generic path for modules that couple examples. All are exact. A module that
      updates 'batch_stats' in the call (BatchNorm on batch statistics) gets a ValueError: pass
      train=False, or mutable=('batch_stats',) for the kernel at batch statistics (generic).
    rngs: rngs passed to apply (e.g. {'dropout': key} with train=True: the kernel of
      the one drop mask that key draws).
    out: None, or a writable array of the kernel's shape (e.g.
      `np.lib.format.open_memmap(path, 'w+', np.float32, (N₁, N₂))`) that receives the kernel
      a row tile at a time: the kernel is then never whole in memory, only the layer features
      (O(N·width) per layer) and one tile (~256 MiB of work), so a 20,000 × 20,000 kernel
      builds in bounded memory. Cast to out's dtype.
    **apply_kwargs: static extra arguments of apply (e.g. train=True).
  Returns:
    The kernel, (N₁, N₂) or (N₁·C, N₂·C), in the parameters' dtype; `out` itself when given.

  (Jacot et al. 2018; the structured per-layer form: Novak et al. 2022, "Fast Finite Width Neural
  Tangent Kernel"; docs/spec.md §2.1-2.2.)

  >>> import jax, numpy as np, ecrn_jax
  >>> model = ecrn_jax.MLP(ecrn_jax.MLPConfig(hidden_widths=(8,), out_dim=2, dtype='float32'))
  >>> x = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(3, 2)
  >>> variables = model.init(jax.random.PRNGKey(0), x)
  >>> ecrn_jax.empirical_ntk(model, variables, x).shape
  (3, 3)
  >>> ecrn_jax.empirical_ntk(model, variables, x, x[:2], trace_outputs=False).shape
  (6, 4)
  """
  params, rest = split_variables(variables)
  x1, x2 = checked_inputs(x1, x2, implementation)
  frozen = freeze_kwargs(apply_kwargs)
  out_dim = int(np.prod(output_shape(model, variables, x1, rngs=rngs, **apply_kwargs)[1:]))
  _check_block_size(block_size)
  path, layers = choose_path(
      model,
      frozen,
      params,
      rest,
      rngs,
      x1,
      x2,
      bool(trace_outputs),
      implementation,
      block_size,
      out_dim,
  )
  scale = 1 if trace_outputs else out_dim
  shape = (x1.shape[0] * scale, x2.shape[0] * scale)
  if out is not None:
    _check_out(out, shape)
  trace = bool(trace_outputs)
  if path == 'dense':
    rows = _structured_rows(
        model, frozen, layers, params, rest, rngs, x1, x2, trace, block_size or 256
    )
  elif path == 'layers':
    rows = _layer_rows(model, frozen, layers, params, rest, x1, x2, trace, block_size, out_dim)
  elif path == 'jacobian':
    rows = _jacobian_rows(model, frozen, params, rest, x1, x2, trace, block_size, out_dim)
  else:
    if block_size is None:
      block_size = _inputs_within(_DEFAULT_BLOCK_BYTES, _bytes_per_input(params, out_dim))
    rows = _generic_rows(model, frozen, params, rest, rngs, x1, x2, trace, block_size)
  kernel = _assemble(rows, out)
  assert kernel.shape == shape, kernel.shape
  return kernel


def empirical_nngp(
    model: nn.Module,
    variables: Mapping[str, Any],
    x1,
    x2=None,
    *,
    rngs: Optional[Mapping[str, jax.Array]] = None,
    **apply_kwargs,
) -> jax.Array:
  """One Monte Carlo sample of the NNGP: f(x1) f(x2)ᵀ / C, shape (N₁, N₂).

  Its expectation over initializations is the NNGP kernel; with a wide readout
  (C = width) a single network already averages over C independent readout rows.

  >>> import jax, numpy as np, ecrn_jax
  >>> model = ecrn_jax.MLP(ecrn_jax.MLPConfig(hidden_widths=(8,), out_dim=2, dtype='float32'))
  >>> x = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(3, 2)
  >>> variables = model.init(jax.random.PRNGKey(0), x)
  >>> ecrn_jax.empirical_nngp(model, variables, x).shape
  (3, 3)
  """
  check_finite_inputs('x1', x1)
  if x2 is not None:
    check_finite_inputs('x2', x2)
  x1 = jnp.asarray(x1)
  # flax's stubs type `rngs` as a dict (apply also takes a FrozenDict), and apply's result as
  # output | (output, updated variables); without `mutable` it is the output.
  f1 = model.apply(variables, x1, rngs=rngs, **apply_kwargs)  # type: ignore[arg-type]
  f1 = f1.reshape(f1.shape[0], -1)  # type: ignore[union-attr]
  if x2 is None:
    f2 = f1
  else:
    f2 = model.apply(
        variables, jnp.asarray(x2), rngs=rngs, **apply_kwargs  # type: ignore[arg-type]
    )
    f2 = f2.reshape(f2.shape[0], -1)  # type: ignore[union-attr]
  return f1 @ f2.T / f1.shape[1]
