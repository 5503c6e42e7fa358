# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The layers and helpers the networks are made of (docs/spec.md §1): the Dense layer of both
parameterizations (the structured empirical NTK applies to models built from it), the Fourier
features of Tancik et al. (2020), and the dtype names of the configs. The networks and their
configurations themselves (`ECRN`, `MLP`, `ECRNConfig`, `MLPConfig`) are at the top level."""

# pylint: disable=g-importing-member
from ecrn_jax._src.config import ArchConfig
from ecrn_jax._src.models import Dense
from ecrn_jax._src.models import FourierFeatures
from ecrn_jax._src.models import fourier_embed
from ecrn_jax._src.models import fourier_matrix
from ecrn_jax._src.models import jit_apply
from ecrn_jax._src.models import resolve_dtype

__all__ = [
    'ArchConfig',
    'Dense',
    'FourierFeatures',
    'fourier_embed',
    'fourier_matrix',
    'jit_apply',
    'resolve_dtype',
]
