# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Helpers and result types of the kernel functions (`ecrn_jax.empirical_ntk`, `ntk_vp_fn`,
`infinite_kernel_fn`, `batch`), and the infinite-width twin in neural-tangents `stax`, the
reference the native kernels are tested against (imported lazily, docs/spec.md §2.3)."""

# pylint: disable=g-importing-member
from ecrn_jax._src.batch_stats import precise_batch_stats
from ecrn_jax._src.vector_products import auto_vp_batch_size
from ecrn_jax._src.vector_products import kernel_pays
from ecrn_jax._src.infinite.masks import ExpectedKernels
from ecrn_jax._src.infinite.reference import stax_twin
from ecrn_jax._src.infinite.reference import to_stax_params
from ecrn_jax._src.infinite.twin import InfiniteKernels
from ecrn_jax._src.infinite.twin import block_scales
from ecrn_jax._src.infinite.twin import embed_inputs

__all__ = [
    'ExpectedKernels',
    'InfiniteKernels',
    'auto_vp_batch_size',
    'block_scales',
    'embed_inputs',
    'kernel_pays',
    'precise_batch_stats',
    'stax_twin',
    'to_stax_params',
]
