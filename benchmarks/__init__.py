# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0
