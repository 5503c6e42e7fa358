# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Kernel analysis (docs/spec.md §3–4).

- Spectral statistics of a materialized kernel, on the host in float64: the spectrum, ΔΘ,
  kernel–target alignment, the generalization bound of Arora et al. (2019) and the mode-wise
  convergence of linearized gradient descent (Lee et al. 2019).
- Their matrix-free estimators from kernel–vector products (`ecrn_jax.ntk_vp_fn`): Lanczos,
  deflated Hutchinson, conjugate gradients.
- Finite- vs infinite-width convergence of the empirical kernels to the twin's.
"""

# pylint: disable=g-importing-member
from ecrn_jax._src.convergence import ConvergenceResult
from ecrn_jax._src.convergence import finite_vs_infinite
from ecrn_jax._src.convergence import fit_power_law
from ecrn_jax._src.convergence import relative_frobenius_error
from ecrn_jax._src.hutchinson import deflated_estimate
from ecrn_jax._src.hutchinson import deflated_products
from ecrn_jax._src.hutchinson import frobenius_norm_estimate
from ecrn_jax._src.hutchinson import ratio_with_stderr
from ecrn_jax._src.matrix_free import conjugate_gradient
from ecrn_jax._src.matrix_free import difference_matvec
from ecrn_jax._src.matrix_free import matrix_free_products
from ecrn_jax._src.matrix_free import matrix_free_summary
from ecrn_jax._src.matrix_free import top_eigenvalues
from ecrn_jax._src.spectral import generalization_bound
from ecrn_jax._src.spectral import kernel_change
from ecrn_jax._src.spectral import kernel_statistics
from ecrn_jax._src.spectral import kernel_summary
from ecrn_jax._src.spectral import kernel_target_alignment
from ecrn_jax._src.spectral import modewise_convergence
from ecrn_jax._src.spectral import modewise_prediction
from ecrn_jax._src.spectral import spectrum

__all__ = [
    # Spectral statistics (host, float64).
    'generalization_bound',
    'kernel_change',
    'kernel_statistics',
    'kernel_summary',
    'kernel_target_alignment',
    'modewise_convergence',
    'modewise_prediction',
    'spectrum',
    # Matrix-free estimators (JAX).
    'conjugate_gradient',
    'deflated_estimate',
    'deflated_products',
    'difference_matvec',
    'frobenius_norm_estimate',
    'matrix_free_products',
    'matrix_free_summary',
    'ratio_with_stderr',
    'top_eigenvalues',
    # Finite vs infinite width.
    'ConvergenceResult',
    'finite_vs_infinite',
    'fit_power_law',
    'relative_frobenius_error',
]
