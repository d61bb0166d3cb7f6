"""Benchmarks that print ratios measured in one run: training-step speed (python -m playground bench) and
what an open page costs a run (make bench-page)."""
