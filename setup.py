"""Build the ``_fastrender._plan_c`` extension.

Cython and a C compiler are required: a missing one is a clear error, never a
silent pure-Python install.  ``FASTRENDER_NO_EXTENSIONS=1`` at build time
skips the extension on purpose and says so in a banner.

Switches, as environment variables (they reach PEP 517 builds too):
``FASTRENDER_CYTHON_ALWAYS=1`` re-runs Cython even if the .c is fresh,
``FASTRENDER_CYTHON_ANNOTATE=1`` writes the annotation HTML,
``FASTRENDER_CYTHON_DIRECTIVES=k=v,k=v`` adds compiler directives, and
``FASTRENDER_DEBUG=1`` turns on annotation and line tracing (CYTHON_TRACE).
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup

CYTHON_DEPENDENCY = "Cython>=3.0,<3.3"


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


NO_EXTENSIONS = _flag("FASTRENDER_NO_EXTENSIONS")
DEBUG = _flag("FASTRENDER_DEBUG")


def _directives() -> dict[str, object]:
    directives: dict[str, object] = {"language_level": "3", "embedsignature": True}
    if DEBUG:
        directives.update(linetrace=True, profile=True)
    for item in filter(None, os.environ.get("FASTRENDER_CYTHON_DIRECTIVES", "").split(",")):
        name, _, value = item.partition("=")
        directives[name.strip()] = value.strip()
    return directives


def _extensions() -> list[Extension]:
    try:
        import Cython
        from Cython.Build import cythonize
    except ImportError:
        raise RuntimeError(
            f"please install {CYTHON_DEPENDENCY} to build _fastrender "
            "(or set FASTRENDER_NO_EXTENSIONS=1 for a pure-Python build)"
        ) from None
    from packaging.requirements import Requirement

    if Cython.__version__ not in Requirement(CYTHON_DEPENDENCY).specifier:
        raise RuntimeError(
            f"_fastrender requires {CYTHON_DEPENDENCY}, found Cython {Cython.__version__}"
        )
    macros = [("CYTHON_TRACE", "1")] if DEBUG else []
    extension = Extension("_fastrender._plan_c", ["_fastrender/_plan_c.pyx"], define_macros=macros)
    return cythonize(
        [extension],
        compiler_directives=_directives(),
        annotate=DEBUG or _flag("FASTRENDER_CYTHON_ANNOTATE"),
        force=_flag("FASTRENDER_CYTHON_ALWAYS"),
    )


if NO_EXTENSIONS:
    banner = "*" * 72
    print(banner, file=sys.stderr)
    print(
        "FASTRENDER_NO_EXTENSIONS is set: installing the pure-Python renderer only.",
        file=sys.stderr,
    )
    print(banner, file=sys.stderr)
    setup()
else:
    setup(ext_modules=_extensions())
