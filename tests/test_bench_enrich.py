"""bench/enrich.py's parts: the traffic mix and the step costs run (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

from bench.enrich import USER_AGENTS, step_costs, user_agent_mix
from tests.geo_data import write_geo


def test_user_agent_mix_is_zipf_like_with_a_unique_tail() -> None:
    mix = user_agent_mix(4000, seed=2)
    assert mix == user_agent_mix(4000, seed=2)
    unique = [a for a in mix if a not in USER_AGENTS]
    assert 0.03 < len(unique) / len(mix) < 0.07
    assert mix.count(USER_AGENTS[0]) > mix.count(USER_AGENTS[-1])


def test_step_costs_run_on_a_tiny_geo_folder(tmp_path: Path) -> None:
    costs = step_costs(write_geo(tmp_path / "geo"), n=200)
    assert len(costs) == 7 and all(us > 0 for us in costs.values())
