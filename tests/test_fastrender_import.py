"""The public surface, and proof that the default import is the compiled core."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import _fastrender
from _fastrender import _plan_py

ROOT = Path(_fastrender.__file__).resolve().parent.parent
_NOT_PUBLIC = {"annotations", "TYPE_CHECKING"}


def _public_names(module: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name not in _NOT_PUBLIC
    }


def test_all_is_sorted_and_complete():
    assert list(_fastrender.__all__) == sorted(_fastrender.__all__)
    assert set(_fastrender.__all__) == _public_names(_fastrender)
    assert {"compile_template", "TemplateError"} <= set(_fastrender.__all__)


def test_twins_export_the_same_names(fastrender_module):
    assert (
        fastrender_module.__all__
        == _plan_py.__all__
        == ("Plan", "TemplateError", "compile_template")
    )
    for name in fastrender_module.__all__:
        assert hasattr(fastrender_module, name)


def test_selector_agrees_with_its_flags():
    expected = "_fastrender._plan_py" if not _fastrender.USE_EXTENSIONS else "_fastrender._plan_c"
    assert _fastrender.compile_template.__module__ == expected
    assert type(_fastrender.compile_template("https://h/")).__module__ == expected
    if _fastrender.NO_EXTENSIONS:
        assert not _fastrender.USE_EXTENSIONS


def _run_isolated(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    # -I ignores PYTHON* variables and the user site, so the checkout is put on
    # sys.path explicitly: the test sees exactly the tree under test.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FASTRENDER_")}
    environment.update(env)
    prelude = f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
    return subprocess.run(
        [sys.executable, "-I", "-W", "error", "-c", prelude + code],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


@pytest.mark.c_extension
@pytest.mark.skipif(
    bool(os.environ.get("FASTRENDER_NO_EXTENSIONS")), reason="pure-Python run asked for"
)
def test_c_extension_preferred_by_default():
    result = _run_isolated(
        "import _fastrender; "
        "assert _fastrender.USE_EXTENSIONS, 'compiled core not in use'; "
        "plan = _fastrender.compile_template('https://h/?x={externalid}'); "
        "assert type(plan).__module__ == '_fastrender._plan_c', type(plan).__module__; "
        "assert plan.render({'externalid': 'a b'}) == 'https://h/?x=a%20b'"
    )
    assert result.returncode == 0, result.stderr


def test_env_var_selects_the_twin():
    result = _run_isolated(
        "import _fastrender; "
        "assert not _fastrender.USE_EXTENSIONS and _fastrender.NO_EXTENSIONS; "
        "assert type(_fastrender.compile_template('https://h/')).__module__ == "
        "'_fastrender._plan_py'",
        FASTRENDER_NO_EXTENSIONS="1",
    )
    assert result.returncode == 0, result.stderr
