"""Benchmark fixtures: the same c/py implementation facade the test suite uses.

These benchmarks run only when asked for (``pytest bench``; testpaths is
``tests``).  Timing needs ``--benchmark-enable`` because pyproject disables
pytest-benchmark by default, so a plain ``pytest bench`` just checks outputs:
``make bench`` runs them for real.
"""

from __future__ import annotations

# The c/py implementation hooks and the ``fastrender_module`` fixture, shared with tests/.
from _fastrender._testing import (  # noqa: F401 - pytest finds hooks and fixtures by name
    fastrender_module,
    pytest_addoption,
    pytest_generate_tests,
)
