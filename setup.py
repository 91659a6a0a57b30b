"""Build the ``_fastrender._plan_c`` extension.

Cython and a C compiler are required: a missing one is a clear error, never a
silent pure-Python install.  ``FASTRENDER_NO_EXTENSIONS=1`` at build time
skips the extension on purpose and says so.  Switches (uvloop/asyncpg style):
``--cython-always``, ``--cython-annotate``, ``--cython-directives=k=v,...``;
``FASTRENDER_DEBUG=1`` turns on annotation and line tracing.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext

CYTHON_DEPENDENCY = "Cython>=3.0,<3.3"
NO_EXTENSIONS = bool(os.environ.get("FASTRENDER_NO_EXTENSIONS"))
DEBUG = bool(os.environ.get("FASTRENDER_DEBUG"))
HERE = os.path.dirname(os.path.abspath(__file__))


class build_ext(_build_ext):
    user_options = _build_ext.user_options + [
        ("cython-always", None, "run cythonize even if the .c file exists"),
        ("cython-annotate", None, "write the Cython annotation HTML"),
        ("cython-directives=", None, "Cython compiler directives, k=v,k=v"),
    ]
    boolean_options = _build_ext.boolean_options + ["cython-always", "cython-annotate"]

    def initialize_options(self) -> None:
        super().initialize_options()
        self.cython_always = False
        self.cython_annotate = DEBUG
        self.cython_directives: str | dict[str, object] | None = None

    def finalize_options(self) -> None:
        if getattr(self, "_initialized", False):
            return
        try:
            import Cython
            from Cython.Build import cythonize
        except ImportError:
            raise RuntimeError(
                f"please install {CYTHON_DEPENDENCY} to build _fastrender "
                "(or set FASTRENDER_NO_EXTENSIONS=1 for a pure-Python build)"
            ) from None
        from packaging.requirements import Requirement

        requirement = Requirement(CYTHON_DEPENDENCY)
        if Cython.__version__ not in requirement.specifier:
            raise RuntimeError(
                f"_fastrender requires {CYTHON_DEPENDENCY}, found Cython {Cython.__version__}"
            )
        directives: dict[str, object] = {"language_level": "3", "embedsignature": True}
        if DEBUG:
            directives.update(linetrace=True, profile=True)
        if isinstance(self.cython_directives, str):
            for item in filter(None, self.cython_directives.split(",")):
                name, _, value = item.partition("=")
                directives[name.strip()] = value.strip()
        for ext in self.distribution.ext_modules or ():
            if DEBUG:
                ext.define_macros.append(("CYTHON_TRACE", "1"))
        self.distribution.ext_modules[:] = cythonize(
            self.distribution.ext_modules,
            compiler_directives=directives,
            annotate=self.cython_annotate,
            force=self.cython_always,
        )
        super().finalize_options()
        self._initialized = True


if NO_EXTENSIONS:
    print("*" * 72, file=sys.stderr)
    print("FASTRENDER_NO_EXTENSIONS is set: building the pure-Python renderer only.", file=sys.stderr)
    print("*" * 72, file=sys.stderr)
    setup()
else:
    setup(
        ext_modules=[Extension("_fastrender._plan_c", ["_fastrender/_plan_c.pyx"])],
        cmdclass={"build_ext": build_ext},
    )
