"""Experiments of ecrn_jax: `python -m experiments.run --config=NAME`."""
