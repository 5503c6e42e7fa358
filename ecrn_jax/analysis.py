# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Kernel analysis: spectra, ΔΘ, alignment, generalization bounds, mode-wise convergence, and
their matrix-free estimators (Lanczos, deflated Hutchinson, conjugate gradients) driven by
kernel–vector products (`ecrn_jax.ntk_vp_fn`)."""

from ecrn_jax._src.matrix_free import conjugate_gradient
from ecrn_jax._src.matrix_free import deflated_estimate
from ecrn_jax._src.matrix_free import deflated_products
from ecrn_jax._src.matrix_free import difference_matvec
from ecrn_jax._src.matrix_free import frobenius_norm_estimate
from ecrn_jax._src.spectral import generalization_bound
from ecrn_jax._src.spectral import kernel_change
from ecrn_jax._src.spectral import kernel_statistics
from ecrn_jax._src.spectral import kernel_summary
from ecrn_jax._src.spectral import kernel_target_alignment
from ecrn_jax._src.matrix_free import matrix_free_products
from ecrn_jax._src.matrix_free import matrix_free_summary
from ecrn_jax._src.spectral import modewise_convergence
from ecrn_jax._src.spectral import modewise_prediction
from ecrn_jax._src.matrix_free import ratio_with_stderr
from ecrn_jax._src.spectral import spectrum
from ecrn_jax._src.matrix_free import top_eigenvalues

__all__ = [
    'conjugate_gradient',
    'deflated_estimate',
    'deflated_products',
    'difference_matvec',
    'frobenius_norm_estimate',
    'generalization_bound',
    'kernel_change',
    'kernel_statistics',
    'kernel_summary',
    'kernel_target_alignment',
    'matrix_free_products',
    'matrix_free_summary',
    'modewise_convergence',
    'modewise_prediction',
    'ratio_with_stderr',
    'spectrum',
    'top_eigenvalues',
]
