"""The dispatcher's small parts: schedule, Retry-After, breaker, rate limit, outcome."""

from __future__ import annotations

import email.utils
import math
import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.dispatch.breaker import Breaker
from gateway.dispatch.judge import error_verdict, judge
from gateway.dispatch.ratelimit import HostRateLimiter
from gateway.dispatch.retry import (
    MAX_RETRY_AFTER,
    RETRY_JITTER,
    RETRY_MAX_ATTEMPTS,
    RETRY_SCHEDULE,
    Decision,
    after_attempt,
    jittered,
    limits,
    next_delay,
    parse_retry_after,
    rule_retry,
)
from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.tally import Tally, observe_many
from gateway.dispatch.transport.base import Answer
from gateway.store.base import Attempt, Delivery
from gateway.verdict import Verdict, classify_status, host_trouble


def test_default_schedule_with_jitter_bounds() -> None:
    rng = random.Random(7)
    for i, base in enumerate(RETRY_SCHEDULE, start=1):
        for _ in range(200):
            d = next_delay(i, RETRY_SCHEDULE, 0.2, rng=rng)
            assert d is not None and base * 0.8 <= d <= base * 1.2
    assert next_delay(len(RETRY_SCHEDULE) + 1, RETRY_SCHEDULE, 0.2) is None
    assert next_delay(0, RETRY_SCHEDULE, 0.2) is None


def test_jitter_spreads_values() -> None:
    rng = random.Random(1)
    values = {round(jittered(100.0, 0.2, rng), 3) for _ in range(50)}
    assert len(values) > 40
    assert jittered(100.0, 0.0) == 100.0
    assert jittered(-5.0, 0.2) == 0.0


def test_retry_after_is_honoured_and_clamped() -> None:
    assert next_delay(1, [10.0], 0.0, retry_after=120.0, max_retry_after=3600) == 120.0
    assert next_delay(1, [10.0], 0.0, retry_after=99999.0, max_retry_after=600) == 600.0
    assert next_delay(1, [10.0], 0.0, retry_after=1.0) == 10.0  # never earlier than the schedule


def test_parse_retry_after() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 0 ", now) == 0.0
    date = email.utils.formatdate(now + 90, usegmt=True)
    assert parse_retry_after(date, now) == pytest.approx(90.0, abs=1.0)
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now) == 0.0
    for bad in (None, "", "soon", "-5", "1.5e3", "Wed, 99 Foo 2026"):
        assert parse_retry_after(bad, now) is None


def test_breaker_opens_probes_and_closes() -> None:
    b = Breaker(failures=3, pause=30.0)
    now = 1000.0
    for _ in range(2):
        b.failure("h", now)
        assert b.blocked_until("h", now) is None
    b.failure("h", now)
    assert b.blocked_until("h", now + 1) == now + 30
    assert b.blocked_until("other", now) is None
    # the pause is over: one probe, the rest wait
    assert b.blocked_until("h", now + 30) is None
    assert b.blocked_until("h", now + 30) is not None
    b.failure("h", now + 31)  # probe failed: pause doubles
    assert b.blocked_until("h", now + 32) == now + 31 + 60
    assert b.blocked_until("h", now + 91) is None  # next probe
    b.success("h")
    assert b.blocked_until("h", now + 92) is None and not b.is_open("h")


def test_breaker_success_resets_the_count() -> None:
    b = Breaker(failures=2, pause=5.0)
    b.failure("h", 0.0)
    b.success("h")
    b.failure("h", 0.0)
    assert b.blocked_until("h", 0.0) is None


def test_rate_limiter() -> None:
    lim = HostRateLimiter(2.0, burst=2)
    assert lim.reserve("h", 0.0) == 0.0
    assert lim.reserve("h", 0.0) == 0.0
    assert lim.reserve("h", 0.0) == pytest.approx(0.5)
    assert lim.reserve("other", 0.0) == 0.0
    assert lim.reserve("h", 0.5) == 0.0
    assert HostRateLimiter(None).reserve("h", 0.0) == 0.0


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (408, "retry"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
        (599, "retry"),
        (400, "rejected"),
        (404, "rejected"),
        (410, "rejected"),
        (302, "rejected"),
    ],
)
def test_judge_by_status(status: int, outcome: str) -> None:
    assert judge(None, status, "").outcome == outcome


def test_judge_with_a_preset_body_rule() -> None:
    pytest.importorskip("gateway.sources.answers")
    assert judge("exoclick", 200, "ERROR: tag invalid").outcome == "rejected"
    assert judge("exoclick", 200, "OK").outcome == "delivered"
    assert judge("exoclick", 503, "").outcome == "retry"


def test_unknown_rule_falls_back_to_status() -> None:
    assert judge("no-such-preset-xyz", 200, "ERROR").outcome == "delivered"


def test_error_verdicts() -> None:
    assert error_verdict("timeout").outcome == "retry"
    assert error_verdict("blocked", final=True).outcome == "rejected"


# -- decide: the pure next-state rule ----------------------------------------


def _delivery(**kw: object) -> Delivery:
    fields: dict[str, object] = dict(
        conversion_id="c",
        traffic_source="s",
        campaign_id="k",
        rule="r",
        method="GET",
        url="http://x/",
        display_url="http://x/",
        body=None,
        host="x",
        click_time=0.0,
        not_before=0.0,
        max_attempts=3,
        created_at=0.0,
        delivery_id=1,
        status="queued",
        attempts=0,
        next_at=0.0,
    )
    fields.update(kw)
    return Delivery(**fields)  # type: ignore[arg-type]


def _attempt(outcome: str = "retry") -> Attempt:
    return Attempt(
        delivery_id=1,
        started_at=0.0,
        url="http://x/",
        status_code=500,
        error=None,
        latency_ms=1.0,
        body_prefix="",
        outcome=outcome,
        reason="HTTP 500",
    )


def _decide(
    d: Delivery,
    attempt: Attempt,
    verdict: Verdict,
    retry_after: str | None,
    s: DeliverySettings,
    now: float,
) -> Decision:
    answer = None
    if retry_after is not None:
        answer = Answer(
            status=503,
            headers={"retry-after": retry_after},
            body_prefix=b"",
            elapsed=0.0,
            final_url="http://x/",
        )
    return after_attempt(d, attempt, verdict, answer, s, lambda: now)


def test_decide_outcomes() -> None:
    s = DeliverySettings(jitter=0.0, schedule=[10.0, 20.0], max_attempts=5)
    ok = _decide(_delivery(), _attempt("delivered"), Verdict("delivered", "HTTP 200"), None, s, 100)
    assert (ok.status, ok.next_at, ok.counter) == ("delivered", None, "delivered")
    no = _decide(_delivery(), _attempt("rejected"), Verdict("rejected", "HTTP 404"), None, s, 100)
    assert (no.status, no.counter) == ("failed", "failed")
    retry = Verdict("retry", "HTTP 500")
    first = _decide(_delivery(), _attempt(), retry, None, s, 100)
    assert (first.status, first.next_at, first.counter) == ("queued", 110.0, "retries")
    second = _decide(_delivery(attempts=1), _attempt(), retry, "60", s, 100)
    assert second.next_at == 160.0  # Retry-After longer than the schedule's 20 s
    spent = _decide(_delivery(attempts=2), _attempt(), retry, None, s, 100)
    assert spent.status == "failed" and "gave up after 3 attempts" in spent.attempt.reason
    # the schedule ran out before max_attempts: dead letter too
    out = _decide(_delivery(attempts=2, max_attempts=9), _attempt(), retry, None, s, 100)
    assert out.status == "failed"
    # max_attempts <= 0 on the delivery: the settings decide
    dflt = _decide(_delivery(attempts=1, max_attempts=0), _attempt(), retry, None, s, 100)
    assert dflt.next_at == 120.0


def test_delivered_reads_neither_the_clock_nor_the_answer() -> None:
    def no_clock() -> float:
        raise AssertionError("the clock was read")

    s = DeliverySettings()
    ok = after_attempt(
        _delivery(), _attempt("delivered"), Verdict("delivered", "HTTP 200"), None, s, no_clock
    )
    assert ok.status == "delivered"


def test_one_fallback_for_attempts_and_schedule() -> None:
    s = DeliverySettings(schedule=[1.0, 2.0], max_attempts=3)
    assert limits(5, [9.0], s) == (5, [9.0])
    assert limits(0, None, s) == (3, [1.0, 2.0])
    assert limits(-1, [], s) == (3, [])  # a delivery's empty schedule: no retries
    # a rule's unset (or empty) overrides: the settings'
    assert rule_retry(None, None, s) == (3, [1.0, 2.0])
    assert rule_retry(0, [], s) == (3, [1.0, 2.0])
    assert rule_retry(2, [7.0], s) == (2, [7.0])
    assert rule_retry(None, None, s)[1] is s.schedule  # shared, not copied per rule


def test_settings_take_the_policy_defaults() -> None:
    s = DeliverySettings()
    assert s.schedule == list(RETRY_SCHEDULE) and s.max_attempts == RETRY_MAX_ATTEMPTS
    assert s.jitter == RETRY_JITTER and s.max_retry_after == MAX_RETRY_AFTER


@pytest.mark.parametrize(
    ("status", "trouble"),
    [
        (None, True),
        (408, True),
        (429, True),
        (500, True),
        (503, True),
        (599, True),
        (200, False),
        (302, False),
        (400, False),
        (404, False),
        (600, False),
    ],
)
def test_host_trouble(status: int | None, trouble: bool) -> None:
    assert host_trouble(status) is trouble
    if status is not None:  # the same statuses are the ones retried
        assert (classify_status(status).outcome == "retry") is trouble


def test_tally_applies_what_observe_and_inc_would() -> None:
    r1, r2 = CollectorRegistry(), CollectorRegistry()
    buckets = (0.005, 0.01, 0.1, 1.0, 10.0)
    h1 = Histogram("h", "h", ["s"], buckets=buckets, registry=r1)
    h2 = Histogram("h", "h", ["s"], buckets=buckets, registry=r2)
    values = [0.0, 0.005, 0.0051, 0.01, 0.5, 1.0, 9.99, 10.0, 10.01, 1e9, 0.1, 0.1]
    for v in values:
        h1.labels("a").observe(v)
    observe_many(h2.labels("a"), values)
    observe_many(h2.labels("a"), [math.nan])  # like observe(): in the sum, in no bucket
    h1.labels("a").observe(math.nan)
    s1 = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in r1.collect()
        for s in m.samples
        if not s.name.endswith("_created")
    }
    s2 = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in r2.collect()
        for s in m.samples
        if not s.name.endswith("_created")
    }
    assert s1.keys() == s2.keys()
    for k in s1:
        assert (math.isnan(s1[k]) and math.isnan(s2[k])) or s1[k] == s2[k], k

    c = Counter("c", "c", ["s", "k"], registry=CollectorRegistry())
    t = Tally(lambda name, *labels: {"c": c, "h": h2}[name].labels(*labels))
    for _ in range(3):
        t.inc(("c", "x", "2xx"))
    t.observe(("h", "b"), 0.5)
    assert c.labels("x", "2xx")._value.get() == 0  # nothing until apply()
    t.apply()
    t.apply()  # idempotent once applied
    assert c.labels("x", "2xx")._value.get() == 3
    assert h2.labels("b")._sum.get() == 0.5
