"""Querying runs, the best run, and differences between runs."""
