# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The infinite-width twin (docs/spec.md §2.3–2.5): one entry point and one combinator.

- `kernel_fn.py`: `infinite_kernel_fn(config, ...)`, the twin's kernel function for every variant
  (evaluation mode, one drop mask, the expectation over masks, infinitely many Fourier
  features, native or neural-tangents);
- `batching.py`: `batch(kernel_fn, batch_size=...)`, the same kernels in tiles over devices;
- `twin.py`: the native recursions, on `dual.py`'s dual activations;
- `masks.py`: the expectation over stochastic-depth masks;
- `reference.py`: the twin in neural-tangents `stax` (imported lazily);
- `deprecated.py`: the functions these replace, as thin wrappers.
"""
