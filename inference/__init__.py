"""Drivers and experiments: the command line and the end-to-end pruning pipeline."""
