# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Implementation modules of ecrn_jax; the public API is re-exported from `ecrn_jax`."""
