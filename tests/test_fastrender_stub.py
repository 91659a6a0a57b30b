"""The stub for the compiled module matches the twin it mirrors, and the runtime.

Without a type checker in the test dependencies, this compares the stub's
syntax tree with ``inspect`` on both twins: the same names, the same
parameters (names, kinds, defaults) and the same members on ``Plan``.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import _fastrender
from _fastrender import _plan_py
from _fastrender._testing import c_available

STUB = Path(_fastrender.__file__).with_name("_plan_c.pyi")
TREE = ast.parse(STUB.read_text(encoding="utf-8"))


def _stub_functions(body: list[ast.stmt]) -> dict[str, ast.FunctionDef]:
    return {node.name: node for node in body if isinstance(node, ast.FunctionDef)}


def _stub_class(name: str) -> ast.ClassDef:
    (node,) = [n for n in TREE.body if isinstance(n, ast.ClassDef) and n.name == name]
    return node


def _stub_parameters(node: ast.FunctionDef) -> list[tuple[str, str]]:
    args = node.args
    out = [(a.arg, "POSITIONAL_ONLY") for a in args.posonlyargs]
    out += [(a.arg, "POSITIONAL_OR_KEYWORD") for a in args.args]
    out += [(a.arg, "KEYWORD_ONLY") for a in args.kwonlyargs]
    return [(name, kind) for name, kind in out if name != "self"]


def _runtime_parameters(function: object) -> list[tuple[str, str]]:
    signature = inspect.signature(function)  # type: ignore[arg-type]
    return [(p.name, p.kind.name) for p in signature.parameters.values() if p.name != "self"]


def test_stub_all_matches_the_twin():
    (assign,) = [
        n
        for n in TREE.body
        if isinstance(n, ast.Assign) and n.targets[0].id == "__all__"  # type: ignore[attr-defined]
    ]
    assert ast.literal_eval(assign.value) == _plan_py.__all__


def test_stub_compile_template_matches_the_twin():
    node = _stub_functions(TREE.body)["compile_template"]
    assert _stub_parameters(node) == _runtime_parameters(_plan_py.compile_template)
    defaults = [ast.literal_eval(d) for d in node.args.kw_defaults if d is not None]
    runtime = inspect.signature(_plan_py.compile_template).parameters
    assert defaults == [runtime["dialect"].default, runtime["unknown"].default]


@pytest.mark.parametrize("method", ["render", "render_many", "__init__"])
def test_stub_plan_methods_match_the_twin(method):
    node = _stub_functions(_stub_class("Plan").body)[method]
    assert _stub_parameters(node) == _runtime_parameters(getattr(_plan_py.Plan, method))


def test_stub_plan_members_exist_on_both_twins():
    members = {
        node.name
        for node in _stub_class("Plan").body
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("__")
    }
    assert members == {"template", "tokens", "render", "render_many"}
    for member in members:
        assert hasattr(_plan_py.Plan, member)
    if c_available():
        from _fastrender import _plan_c  # noqa: PLC0415 - optional: absent when not built

        for member in members:
            assert hasattr(_plan_c.Plan, member)


@pytest.mark.c_extension
@pytest.mark.skipif(not c_available(), reason="compiled _fastrender not built")
def test_compiled_methods_are_positional_only_like_the_twin():
    from _fastrender import _plan_c  # noqa: PLC0415 - optional: absent when not built

    for module in (_plan_c, _plan_py):
        plan = module.compile_template("https://h/?x={var1}")
        assert plan.render({"var1": 1}) == "https://h/?x=1"
        assert plan.render_many([{"var1": 2}]) == ["https://h/?x=2"]
        with pytest.raises(TypeError):
            plan.render(values={"var1": 1})
        with pytest.raises(TypeError):
            plan.render_many(many=[{"var1": 2}])
