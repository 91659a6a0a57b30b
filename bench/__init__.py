"""Benchmarks: the pytest-benchmark suite and the ``python -m bench`` load tester."""
