# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Structured empirical NTK of any Flax module of Dense and Conv layers (and others, locally).

Every module that owns parameters directly is captured on its way through one batched forward
pass (`nn.intercept_methods`): its input, and — through a zero tangent ε added to its output —
the cotangents G_c = ∂f_c/∂(output) of the C outputs, from C backward passes over the block.

* `nn.Dense`, `nn.Conv` (one feature group, no mask) and the library's `Dense`: the output is
  y[s] = p̃[s] W̃ at every position s, with p̃ the input patch (the input itself for Dense, over
  any leading axes; Conv patches come from the layer itself applied with an identity kernel, so
  strides, padding, dilations are the layer's own) extended by a constant for the bias. So the
  per-example Jacobian is Σ_s p̃[s] ⊗ g_c[s], and the layer adds to Θ_c(x, x') either
  ⟨P̃ᵀG_c, P̃'ᵀG'_c⟩ ('gradient' form: per-example weight gradients, D·F numbers per output) or
  Σ_{s,s'} ⟨p̃_s, p̃'_s'⟩⟨g_c,s, g'_c,s'⟩ ('gram' form: S²(D + C·F) per pair of examples): the
  cheaper from the shapes (early convolutions with many positions: gradients; late ones and
  Dense layers: Gram matrices). Calls of one layer concatenate along the positions.
* every other module owning parameters (BatchNorm at running averages, LayerNorm, embeddings,
  a module's own `self.param`): its per-example gradients from a vmap of the single-example vjp
  of that module alone, fed the captured cotangents (a per-example Jacobian, but local).

It needs outputs whose rows depend on their own example only (`per_example.coupling`), and each
captured call on inputs and outputs with the examples on the leading axis. (Novak et al. 2022,
"Fast Finite Width Neural Tangent Kernel": structured derivatives; docs/spec.md §2.2.)
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ecrn_jax._src import structured
from ecrn_jax._src.models import Dense

_PROBE_BATCH = 3  # examples in the shape-only pass that finds the layers
_HIGHEST = jax.lax.Precision.HIGHEST


class Layer(NamedTuple):
  key: str  # the module's path, '/'-joined
  kind: str  # 'dense', 'conv' or 'local'
  leaves: tuple  # the names of the parameters it owns directly
  outputs: tuple  # per call: (per-example output shape, dtype name)
  positions: int  # S: positions over all calls (dense, conv)
  patch: int  # D̃: patch size with the bias constant (dense, conv); 1 (local)
  features: int  # F: output channels (dense, conv); its parameters (local)
  form: str  # 'gradient' or 'gram'
  scales: tuple  # (s_w, s_b) multiplying the patch and the bias constant


def _path_key(path) -> str:
  return '/'.join(str(getattr(k, 'key', getattr(k, 'name', k))) for k in path)


def owners(params) -> dict[tuple, tuple]:
  """{module path: names of the parameters it owns directly}."""
  result: dict[tuple, list] = {}
  for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]:
    names = tuple(str(getattr(k, 'key', getattr(k, 'name', k))) for k in path)
    result.setdefault(names[:-1], []).append(names[-1])
  return {k: tuple(sorted(v)) for k, v in result.items()}


class _Tracer:
  """The interceptor's state: which modules to capture, what they received, their ε."""

  def __init__(self, owned, eps):
    self.owned, self.eps = owned, eps
    self.active: set = set()
    self.calls: dict[tuple, list] = {}  # path → [(module, method, args, kwargs, output)]

  def __call__(self, next_fun, args, kw, context):
    module = context.module
    path = tuple(module.path)
    if context.method_name == 'setup' or path not in self.owned or path in self.active:
      return next_fun(*args, **kw)
    self.active.add(path)
    try:
      out = next_fun(*args, **kw)
    finally:
      self.active.discard(path)
    calls = self.calls.setdefault(path, [])
    unbound, variables = module.unbind()
    calls.append((unbound, variables, context.method_name, args, kw, out))
    if self.eps is not None:
      out = out + self.eps[f'{"/".join(path)}#{len(calls) - 1}']
    return out


def _apply(model, kwargs, params, rest, rngs, x, tracer):
  with nn.intercept_methods(tracer):
    out = model.apply({'params': params, **rest}, x, rngs=rngs, **kwargs)
  return out.reshape(out.shape[0], -1)


def _kind(module, method: str, leaves: tuple) -> str:
  """'dense', 'conv' or 'local'. flax's classes exactly: a subclass may change __call__."""
  if method != '__call__':
    return 'local'
  exact = type(module)
  if exact is nn.Dense and leaves in (('kernel',), ('bias', 'kernel')):
    return 'dense'
  if isinstance(module, Dense) and leaves == ('bias', 'kernel'):
    return 'dense'
  if (
      exact is nn.Conv
      and module.feature_group_count == 1
      and module.mask is None
      and leaves in (('kernel',), ('bias', 'kernel'))
  ):
    return 'conv'
  return 'local'


def _check_call(key: str, args, kw, out, batch: int) -> None:
  if not isinstance(out, jax.Array) or out.ndim < 1 or out.shape[0] != batch:
    raise structured.Unsupported(
        f'layer {key!r} returns {getattr(out, "shape", type(out).__name__)}, not an array with '
        'the examples on its leading axis.'
    )
  arrays = [a for a in jax.tree_util.tree_leaves((args, kw)) if isinstance(a, jax.Array)]
  if len(args) != 1 or len(arrays) != 1 or args[0].ndim < 1 or args[0].shape[0] != batch:
    raise structured.Unsupported(
        f'layer {key!r} is not called on one array with the examples on its leading axis.'
    )


def _costs(n1: int, n2: int, c: int, trace: bool, s: int, d: int, f: int) -> tuple[float, float]:
  """FLOPs of the 'gradient' and 'gram' forms of one layer for an n1 × n2 kernel."""
  pairs = c if trace else c * c  # output pairs (a, b) contracted per pair of examples
  gradient = 2.0 * (n1 + n2) * c * s * d * f + 2.0 * n1 * n2 * pairs * d * f
  gram = 2.0 * n1 * n2 * s * s * (d + pairs * f + pairs)
  return gradient, gram


def costs(n1: int, n2: int, c: int, trace: bool, layer: Layer) -> tuple[float, float]:
  """FLOPs of the 'gradient' and 'gram' forms of a 'dense' or 'conv' layer."""
  return _costs(n1, n2, c, trace, layer.positions, layer.patch, layer.features)


def _probe(model, frozen_kwargs, params, rest, x, batch: int) -> tuple[int, dict]:
  """(C, the captured calls) of a shape-only pass on `batch` examples."""
  tracer = _Tracer(owners(params), None)
  probe = jax.ShapeDtypeStruct((batch,) + tuple(x.shape[1:]), x.dtype)
  out = jax.eval_shape(
      lambda p, xx: _apply(model, dict(frozen_kwargs), p, rest, None, xx, tracer), params, probe
  )
  for path, calls in tracer.calls.items():
    for _, _, _, args, kw, output in calls:
      _check_call('/'.join(path), args, kw, output, batch)
  return out.shape[1], tracer.calls


def plan(model, frozen_kwargs, params, rest, x, n1: int, n2: int, trace: bool) -> tuple:
  """The layers (`Layer`s, in call order) for an n1 × n2 kernel; `Unsupported` (why) else.
  Two shape-only passes, on 3 and 4 examples: every captured call scales with the batch."""
  owned = owners(params)
  _probe(model, frozen_kwargs, params, rest, x, _PROBE_BATCH + 1)
  c, captured = _probe(model, frozen_kwargs, params, rest, x, _PROBE_BATCH)
  missing = sorted('/'.join(p) or '(root)' for p in set(owned) - set(captured))
  if missing:
    raise structured.Unsupported(f'the parameters of {missing[:3]} are used outside a call.')
  layers = []
  for path, calls in captured.items():
    key, leaves = '/'.join(path), owned[path]
    kinds = {_kind(call[0], call[2], leaves) for call in calls}
    outputs = tuple((tuple(call[5].shape[1:]), str(call[5].dtype)) for call in calls)
    kind = kinds.pop() if len(kinds) == 1 else 'local'
    module, variables = calls[0][0], calls[0][1]
    if kind == 'local':
      size = sum(math.prod(variables['params'][k].shape) for k in leaves)
      layers.append(Layer(key, 'local', leaves, outputs, 0, 1, size, 'gradient', (1.0, 1.0)))
      continue
    kernel = variables['params']['kernel'].shape
    d, f = math.prod(kernel[:-1]), kernel[-1]
    scales = (1.0, 1.0 if 'bias' in leaves else 0.0)
    if isinstance(module, Dense):
      w_scale, b_scale = structured.scales(module, d)
      scales = (math.sqrt(w_scale), math.sqrt(b_scale))
    s = sum(math.prod(shape[:-1]) for shape, _ in outputs)
    patch = d + (1 if 'bias' in leaves else 0)
    gradient, gram = _costs(n1, n2, c, trace, s, patch, f)
    form = 'gradient' if gradient < gram else 'gram'
    layers.append(Layer(key, kind, leaves, outputs, s, patch, f, form, scales))
  return tuple(layers)


def feature_numbers(layers: tuple, c: int) -> tuple[int, int]:
  """Numbers per example: (the features kept, the cotangents and patches of the pass)."""
  kept = transient = 0
  for l in layers:
    cotangents = sum(c * math.prod(shape) for shape, _ in l.outputs)
    transient += cotangents + l.positions * l.patch
    if l.form == 'gradient':  # 'local' too: patch 1, features = its parameters
      kept += c * l.patch * l.features
    else:
      kept += l.positions * (l.patch + c * l.features)
  return kept, transient


def gram_numbers(layers: tuple, c: int, trace: bool) -> int:
  """Numbers per pair of examples of the 'gram' contraction's intermediate."""
  pairs = 1 if trace else c * c
  return max([l.positions**2 * pairs for l in layers if l.form == 'gram'] + [1])


def _patches(layer: Layer, module, variables, x):
  """(n, S, D̃) patches of one call: the input at every position, then the bias constant. A
  Conv's come from the layer itself (its strides, padding, dilations) with one group per input
  channel and a one-hot kernel per window offset: S·D copies, not an S·D² identity convolution.
  Their order differs from the kernel's; only inner products of patches are taken."""
  n = x.shape[0]
  kernel = variables['params']['kernel']
  if layer.kind == 'conv':
    window, channels = kernel.shape[:-2], kernel.shape[-2]
    k = math.prod(window)
    one_hot = jnp.eye(k, dtype=kernel.dtype).reshape(window + (1, k))
    identity = module.clone(
        features=k * channels, feature_group_count=channels, use_bias=False, precision=_HIGHEST
    )
    x = identity.apply(
        {'params': {'kernel': jnp.tile(one_hot, (1,) * len(window) + (1, channels))}}, x
    )
  p = x.reshape(n, -1, x.shape[-1]) * layer.scales[0]
  if 'bias' in layer.leaves:
    p = jnp.concatenate([p, jnp.full(p.shape[:2] + (1,), layer.scales[1], p.dtype)], axis=-1)
  return p


def _local_gradients(layer: Layer, calls, cotangents):
  """(n, C, K) per-example gradients of the parameters the module owns directly."""
  total = None
  for i, (module, variables, method, args, kw, _) in enumerate(calls):
    g = cotangents[f'{layer.key}#{i}']
    params = variables['params']
    others = {k: v for k, v in variables.items() if k != 'params'}
    name = None if method == '__call__' else method

    def one(xi, gi, module=module, others=others, name=name, kw=kw, params=params):
      f = lambda p: module.apply({'params': p, **others}, xi[None], method=name, **kw)[0]
      _, vjp_fn = jax.vjp(f, params)
      (grads,) = jax.vmap(vjp_fn)(gi)
      return jnp.concatenate([grads[k].reshape(gi.shape[0], -1) for k in layer.leaves], axis=1)

    grads = jax.vmap(one, in_axes=(0, 1))(args[0], g)
    total = grads if total is None else total + grads
  return total


@functools.lru_cache(maxsize=64)
def features_fn(model: nn.Module, frozen_kwargs: tuple, layers: tuple):
  """Jitted x (b, ...) ↦ {'gradient': (b, C, K) or None, 'gram': {layer: (P̃, G)}}."""
  kwargs = dict(frozen_kwargs)
  owned = {tuple(l.key.split('/')) if l.key else (): l.leaves for l in layers}

  @jax.jit
  def features(params, rest, x):
    n = x.shape[0]
    eps0 = {
        f'{l.key}#{i}': jnp.zeros((n,) + shape, dtype)
        for l in layers
        for i, (shape, dtype) in enumerate(l.outputs)
    }
    captured: dict = {}

    def f(eps):
      tracer = _Tracer(owned, eps)
      out = _apply(model, kwargs, params, rest, None, x, tracer)
      captured.clear()
      captured.update({'/'.join(k): v for k, v in tracer.calls.items()})
      return out, {k: [(call[1], call[3][0]) for call in v] for k, v in captured.items()}

    out, vjp_fn, arrays = jax.vjp(f, eps0, has_aux=True)
    c = out.shape[1]
    seeds = jnp.broadcast_to(jnp.eye(c, dtype=out.dtype)[:, None, :], (c, n, c))
    (cotangents,) = jax.vmap(vjp_fn)(seeds)  # {call: (C, n, *output)}
    result: dict = {'gradient': [], 'gram': {}}
    for l in layers:
      calls = [
          (call[0], variables, call[2], (x_in,), call[4], None)
          for call, (variables, x_in) in zip(captured[l.key], arrays[l.key])
      ]
      if l.kind == 'local':
        result['gradient'].append(_local_gradients(l, calls, cotangents))
        continue
      p = jnp.concatenate([_patches(l, m, v, a[0]) for m, v, _, a, _, _ in calls], axis=1)
      g = jnp.concatenate(
          [cotangents[f'{l.key}#{i}'].reshape(c, n, -1, l.features) for i in range(len(calls))],
          axis=2,
      ).astype(p.dtype)
      if l.form == 'gradient':
        grads = jnp.einsum('nsd,cnsf->ncdf', p, g, precision=_HIGHEST)
        result['gradient'].append(grads.reshape(n, c, -1))
      else:
        result['gram'][l.key] = (p, g)
    # One (n, C, K) array of every per-example gradient: one matmul per pair of blocks.
    result['gradient'] = jnp.concatenate(result['gradient'], axis=2) if result['gradient'] else None
    return result

  return features


@functools.lru_cache(maxsize=64)
def contract_fn(trace_outputs: bool):
  """Jitted Θ of two blocks of features: (b₁, b₂) traced, else (b₁·C, b₂·C)."""

  @jax.jit
  def contract(feats1, feats2):
    total = 0.0
    j1, j2 = feats1['gradient'], feats2['gradient']
    if j1 is not None:
      n1, c, k = j1.shape
      if trace_outputs:
        total = jnp.matmul(j1.reshape(n1, c * k), j2.reshape(-1, c * k).T, precision=_HIGHEST)
      else:
        total = jnp.matmul(j1.reshape(n1 * c, k), j2.reshape(-1, k).T, precision=_HIGHEST)
        total = total.reshape(n1, c, -1, c)
    for key, (p1, g1) in feats1['gram'].items():
      p2, g2 = feats2['gram'][key]
      inputs = jnp.einsum('isd,jtd->ijst', p1, p2, precision=_HIGHEST)
      spec = 'ijst,cisf,cjtf->ij' if trace_outputs else 'ijst,aisf,bjtf->iajb'
      total = total + jnp.einsum(spec, inputs, g1, g2, precision=_HIGHEST)
    if trace_outputs:
      return total / _outputs(feats1)
    n1, c, n2, _ = total.shape
    return total.reshape(n1 * c, n2 * c)

  return contract


def _outputs(feats) -> int:
  if feats['gradient'] is not None:
    return feats['gradient'].shape[1]
  for _, g in feats['gram'].values():
    return g.shape[0]
  raise structured.Unsupported('no layer')


def itemsize(params) -> int:
  return np.dtype(structured.params_dtype(params)).itemsize
