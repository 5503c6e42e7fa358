# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Deprecated: `ecrn_jax.files` (this name shadowed the standard library's `io`).

`from ecrn_jax import io` resolves through the package's `__getattr__` and never imports this
file; `import ecrn_jax.io` does, warns and binds `ecrn_jax.files` in its place.
"""

import sys
import warnings

from ecrn_jax import files
from ecrn_jax._src.deprecations import deprecation_message

warnings.warn(
    deprecation_message('ecrn_jax', 'io', 'ecrn_jax.files'), DeprecationWarning, stacklevel=2
)
sys.modules[__name__] = files
