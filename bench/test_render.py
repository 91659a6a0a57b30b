"""Render benchmarks: both _fastrender twins against the baselines users would write.

One pass renders the whole corpus (bench/corpus.py: 14 networks' postbacks,
about 20% of values needing percent-encoding), so per-URL time is the
reported time divided by ``URLS``.  Every benchmark checks its URLs against
the corpus oracle.  Run for real with::

    .venv/bin/python -m pytest bench --benchmark-enable --benchmark-disable-gc \\
        --benchmark-group-by=group --benchmark-columns=min,median,ops
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from bench import render
from bench.corpus import CASES, SAFE, all_rows, encoded_share

URLS = all_rows()
EXPECTED = render.expected()
ROUNDS = {"rounds": 50, "warmup_rounds": 5, "iterations": 5}


def _check(benchmark: Any, run: render.Runner, rounds: dict[str, int] = ROUNDS) -> None:
    assert run() == EXPECTED  # once outside the timer: a wrong answer fails fast
    urls = benchmark.pedantic(run, **rounds)
    assert urls == EXPECTED
    benchmark.extra_info["urls_per_round"] = URLS


def test_corpus_shape():
    assert len(CASES) >= 10
    assert 0.17 <= encoded_share() <= 0.23
    assert len(set(EXPECTED)) > URLS // 2


# ----------------------------------------------------------------------------- the corpus


@pytest.mark.benchmark(group="render-corpus")
def test_fastrender_render(benchmark, fastrender_module):
    _check(benchmark, render.fastrender_render(fastrender_module))


@pytest.mark.benchmark(group="render-corpus")
def test_fastrender_render_many(benchmark, fastrender_module):
    _check(benchmark, render.fastrender_render_many(fastrender_module))


_SLOW = {"rounds": 10, "warmup_rounds": 1, "iterations": 1}


@pytest.mark.benchmark(group="render-corpus")
def test_baseline_format_map_lazy_quote(benchmark):
    _check(benchmark, render.format_map_lazy(), _SLOW)


@pytest.mark.benchmark(group="render-corpus")
def test_baseline_format_map_eager_quote(benchmark):
    _check(benchmark, render.format_map_eager(), _SLOW)


@pytest.mark.benchmark(group="render-corpus")
def test_baseline_re_sub_quote(benchmark):
    _check(benchmark, render.re_sub_quote(), _SLOW)


@pytest.mark.benchmark(group="render-corpus")
def test_baseline_string_template(benchmark):
    _check(benchmark, render.string_template(), _SLOW)


@pytest.mark.benchmark(group="render-corpus")
def test_baseline_str_replace(benchmark):
    _check(benchmark, render.str_replace(), _SLOW)


# ----------------------------------------------------------------------------- one URL

_ONE = CASES[0]  # ExoClick: two tokens, the commonest shape
_ONE_ROW = _ONE.rows[0]
_ONE_URL = _ONE.expected[0]


@pytest.mark.benchmark(group="render-one")
def test_one_url_fastrender(benchmark, fastrender_module):
    plan = fastrender_module.compile_template(_ONE.template)
    assert benchmark(plan.render, _ONE_ROW) == _ONE_URL


@pytest.mark.benchmark(group="render-one")
def test_one_url_format_map_lazy_quote(benchmark):
    template = _ONE.template  # ExoClick's tokens are valid format fields as they are
    row = render.QuotingDict(_ONE_ROW)
    assert benchmark(template.format_map, row) == _ONE_URL


@pytest.mark.benchmark(group="render-one")
def test_one_url_eager_quote_format(benchmark):
    template = _ONE.template

    def run() -> str:
        return template.format(
            **{k: urllib.parse.quote(str(v), safe=SAFE) for k, v in _ONE_ROW.items()}
        )

    assert benchmark(run) == _ONE_URL


# ----------------------------------------------------------------------------- compile


@pytest.mark.benchmark(group="compile")
def test_compile_corpus(benchmark, fastrender_module):
    def run() -> list[Any]:
        return [fastrender_module.compile_template(case.template) for case in CASES]

    plans = benchmark(run)
    assert [plan.tokens for plan in plans] == [case.keys for case in CASES]
