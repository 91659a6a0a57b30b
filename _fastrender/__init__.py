"""Compiled postback templates.

The one place that chooses between the Cython plan and its pure-Python twin:
the twin wins under type checking, on non-CPython interpreters, when
``FASTRENDER_NO_EXTENSIONS`` is set, or when the extension is not built.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from ._errors import TemplateError

__all__ = ("NO_EXTENSIONS", "Plan", "TemplateError", "USE_EXTENSIONS", "compile_template")

#: True when the environment or the interpreter rules the compiled core out.
NO_EXTENSIONS = (
    bool(os.environ.get("FASTRENDER_NO_EXTENSIONS")) or sys.implementation.name != "cpython"
)

# USE_EXTENSIONS: True when ``compile_template`` builds compiled (Cython) plans.
if TYPE_CHECKING or NO_EXTENSIONS:
    from ._plan_py import Plan, compile_template

    USE_EXTENSIONS = False
else:
    try:
        from ._plan_c import Plan, compile_template
    except ImportError:  # not built: setup.py says so loudly at build time
        from ._plan_py import Plan, compile_template

        USE_EXTENSIONS = False
    else:
        USE_EXTENSIONS = True
