"""Implementation modules of ecrn_jax; the public API is re-exported from `ecrn_jax`."""
