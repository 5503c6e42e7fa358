# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Shims for JAX APIs that moved between the versions ecrn_jax runs on.

ecrn_jax runs on the current JAX (what `pip install jax` resolves, e.g. 0.10) and still on
jax 0.5.3 (the reference stack with neural-tangents 0.6.5, used to cross-check the native
infinite-width kernels). Two APIs it needs changed place in between:

* 64-bit mode as a context manager: jax 0.5.3 has only `jax.experimental.enable_x64()`; current
  JAX removed `jax.experimental.enable_x64` and has `jax.enable_x64(True)` instead.
* `shard_map`: jax 0.5.3 has only `jax.experimental.shard_map.shard_map` (replication checking
  switched off with `check_rep=False`); current JAX has `jax.shard_map` (the flag is
  `check_vma=False`) and deprecates or drops the experimental module.

Each shim picks the new API when the running JAX has it, else the old one, so that the same
code works on both. Nothing else in the package should import the moved names directly.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import jax


@contextlib.contextmanager
def _x64(enabled: bool) -> Iterator[None]:
  if hasattr(jax, 'enable_x64'):
    manager = jax.enable_x64(enabled)
  else:
    from jax import experimental  # pylint: disable=g-import-not-at-top

    # Only on older JAX (jax 0.5.3 has them); current releases and their stubs removed both.
    manager = (
        experimental.enable_x64()  # type: ignore[attr-defined]
        if enabled
        else experimental.disable_x64()  # type: ignore[attr-defined]
    )
  with manager:
    yield


def enable_x64():
  """Turns 64-bit JAX (`jax_enable_x64`) on for the body of the `with`, then restores it.

  Uses `jax.enable_x64(True)` where JAX has it (current releases, which removed
  `jax.experimental.enable_x64`), else `jax.experimental.enable_x64()` (jax 0.5.3, which has no
  `jax.enable_x64`). Either way the setting is scoped (thread-local), so the caller's global
  `jax_enable_x64` is left as it was.
  """
  return _x64(True)


def disable_x64():
  """Turns 64-bit JAX off for the body of the `with` (`jax.enable_x64(False)`, or
  `jax.experimental.disable_x64()` on jax 0.5.3), then restores it."""
  return _x64(False)


def shard_map(f: Callable[..., Any], mesh, in_specs, out_specs) -> Callable[..., Any]:
  """`shard_map(f, mesh=mesh, in_specs=..., out_specs=...)` without replication checks.

  `jax.shard_map(..., check_vma=False)` where JAX has it (current releases), else
  `jax.experimental.shard_map.shard_map(..., check_rep=False)` (jax 0.5.3). The check is off in
  both because the mapped kernel functions compute per-shard tiles whose replication
  (varying-manual-axes) JAX cannot always infer; the outputs are laid out by `out_specs` alone.
  """
  new_shard_map = getattr(jax, 'shard_map', None)
  if new_shard_map is not None:
    return new_shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
  from jax.experimental.shard_map import shard_map as old_shard_map  # pylint: disable=g-import-not-at-top

  return old_shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_rep=False)
