"""One pure `get_config(arg)` module per experiment name."""
