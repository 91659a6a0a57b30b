"""The dispatcher: owns in-flight deliveries, sends them, records every attempt.

Fresh deliveries arrive in memory through :meth:`Dispatcher.submit` right
after their commit; the store stays the source of truth, and refills
(``refill``) load what comes due from it.  Due deliveries wait in their
host's ready queue (``hostqueue``) for a connection slot; each slot is a
worker that sends its host's deliveries one after another and hands each
attempt to the group-committed log (``recorder``); a delivery moves on (done,
or scheduled again by the retry policy) once its attempt is committed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence

import msgspec

from gateway.clock import Clock, SystemClock
from gateway.dispatch.attempt import (
    dry_run_attempt,
    expired_attempt,
    from_answer,
    from_error,
    request_headers,
)
from gateway.dispatch.breaker import Breaker, HostView
from gateway.dispatch.hostqueue import HostQueues
from gateway.dispatch.ratelimit import HostRateLimiter
from gateway.dispatch.recorder import AttemptRecorder
from gateway.dispatch.refill import REFILL_INTERVAL, Refill
from gateway.dispatch.retention import purge_forever
from gateway.dispatch.retry import STORE_ERROR_DELAY, Decision, after_attempt, dry_run, expired
from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.tally import Tally, labelled
from gateway.dispatch.timer import HOST, Timer
from gateway.dispatch.transport.base import Answer, Transport, TransportError
from gateway.dispatch.transport.factory import make_transport
from gateway.dispatch.transport.redirects import REDIRECT_STATUSES, check_fixed_host, follow
from gateway.logs import DELIVERY_LOG
from gateway.metrics import Metrics
from gateway.store.base import Delivery, Store
from gateway.verdict import Verdict, host_trouble

__all__ = ("Dispatcher",)

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self,
        settings: DeliverySettings,
        store: Store,
        metrics: Metrics,
        clock: Clock | None = None,
        transport: Transport | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._metrics = metrics
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._now = self._clock.now
        self._transport = transport if transport is not None else make_transport(settings)
        self._rng = rng or random.Random()
        self._timer = Timer(self._clock)
        self._due_seq = self._timer.due_seq  # the submit path drops entries directly
        self._breaker = Breaker(failures=settings.breaker_failures, pause=settings.breaker_pause)
        self._hosts = HostQueues(
            max_connections=settings.max_connections,
            max_connections_per_host=settings.max_connections_per_host,
            breaker=self._breaker,
            limiter=HostRateLimiter(settings.rate_per_host),
            now=self._now,
            on_hold=self._timer.add_host,
        )
        self._recorder = AttemptRecorder(store)
        self._recorder.on_group = self._log_written
        self._recorder.on_flushed = self._after_log_write
        self._tally = Tally(labelled(metrics))  # metric updates, applied once per log group
        self._refill = Refill(store)
        self._recent_done = self._refill.recent_done
        self._known: dict[int, Delivery] = {}  # queued in memory or in flight
        #: Queued in the store (in memory or not) or in flight: the queue-depth
        #: gauge.  Counted from the store at start, then kept here.
        self._queued = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._unrecorded = 0  # attempts handed to the recorder, not yet committed
        self._idle = asyncio.Event()
        self._running = False
        self._loaded = False
        self._next_refill = float("inf")
        self._background: list[asyncio.Task[None]] = []
        #: Shadow mode: everything (``[delivery] dry_run``), or these traffic
        #: sources and (source, rule name) pairs; set from the live config
        #: (``runtime``, again on SIGHUP), read when a delivery comes up to be sent.
        self._dry_all = settings.dry_run
        self._dry_sources: frozenset[str] = frozenset()
        self._dry_rules: frozenset[tuple[str, str]] = frozenset()
        self._dry_any = self._dry_all  # one attribute read per attempt when off

    # -- public API ------------------------------------------------------------

    async def start(self) -> None:
        """Load queued deliveries from the store and start sending."""
        if self._running:
            return
        self._running = True
        try:
            self._queued = await self._store.queued_count()
        except Exception:
            log.exception("could not count queued deliveries in the store")
        await self._load(self._now())
        self._metrics.queue_depth.set(self._queued)
        self._loaded = True
        self._background = [
            asyncio.create_task(self._scheduler(), name="dispatch-scheduler"),
            asyncio.create_task(
                purge_forever(
                    self._store, self._clock, self.settings.retention_days, lambda: self._running
                ),
                name="dispatch-retention",
            ),
        ]
        for host in list(self._hosts.ready):
            self._pump(host)
        self._update_idle()

    def dry_run(self, sources: frozenset[str], rules: frozenset[tuple[str, str]]) -> None:
        """Shadow these traffic sources and (source, rule name) pairs from now on
        (the live config's, at start and on SIGHUP); read when a delivery comes up."""
        self._dry_sources, self._dry_rules = sources, rules
        self._dry_any = self._dry_all or bool(sources or rules)

    def submit(self, deliveries: Sequence[Delivery]) -> None:
        """Take freshly committed (or requeued) deliveries; non-blocking, call on the
        loop's thread."""
        self._queued += sum(1 for d in deliveries if d.status == "queued")
        self._take_in(deliveries)
        self._metrics.queue_depth.set(self._queued)
        self._update_idle()

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish in-flight attempts (up to ``timeout``), leave the rest queued in the store."""
        self._running = False
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background = []
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("stop: %d attempts cut short; they stay queued", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)
        await self._recorder.drain()
        self._tally.apply()
        await self._transport.close()
        self._idle.set()

    async def wait_idle(self) -> None:
        """Return once nothing is in flight and nothing is due now (tests)."""
        while True:
            self._update_idle()
            if self._idle.is_set():
                return
            self._idle.clear()
            await self._idle.wait()

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def in_flight(self) -> int:
        return self._hosts.inflight

    @property
    def running(self) -> bool:
        """Started and not stopped, with its scheduler alive (``/ready``)."""
        return self._running and all(not t.done() for t in self._background)

    def hosts(self) -> dict[str, HostView]:
        """Hosts with failures on record: their circuit, failures, pause and last reason."""
        return self._breaker.snapshot(self._now())

    # -- scheduling ------------------------------------------------------------

    def _take_in(self, deliveries: Sequence[Delivery]) -> None:
        now = self._now()
        horizon = now + REFILL_INTERVAL
        for d in deliveries:
            if d.status != "queued" or d.delivery_id in self._known:
                continue
            due = d.next_at if d.next_at is not None else now
            if due > horizon:
                continue  # the store holds it; a refill brings it back before it is due
            self._known[d.delivery_id] = d
            self._recent_done.discard(d.delivery_id)
            self._schedule(d, due, now)

    def _schedule(self, d: Delivery, due: float, now: float) -> None:
        if due <= now and self._running:
            self._due_seq.pop(d.delivery_id, None)
            self._hosts.push(d)
            self._pump(d.host)
            return
        self._timer.add(due, d.delivery_id, d.host)

    def _fire_due(self, now: float) -> None:
        for delivery_id, host in self._timer.pop_due(now):
            if delivery_id == HOST:
                if self._hosts.unhold(host, now):
                    self._pump(host)
                continue
            d = self._known.get(delivery_id)
            if d is not None:
                self._hosts.push(d)
                self._pump(host)

    def _pump(self, host: str) -> None:
        """Start workers for ``host``'s ready deliveries, as many as the caps allow."""
        if not self._running:
            return
        start = self._hosts.start
        while (d := start(host)) is not None:
            task = asyncio.create_task(self._worker(host, d))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _worker(self, host: str, d: Delivery | None) -> None:
        """One connection slot: send ``host``'s ready deliveries one after another.

        A worker leaves when its host has nothing ready (or is held), or when
        another host waits for a global slot, so slots rotate fairly.
        """
        hosts = self._hosts
        try:
            while d is not None:
                try:  # inline, not a helper coroutine: one frame less per I/O wake-up
                    await self._attempt(d)
                except asyncio.CancelledError:
                    raise  # stop(): the row stays queued in the store
                except Exception:
                    log.exception("delivery %d: attempt failed unexpectedly", d.delivery_id)
                    self._retry_later(d)
                # the slot goes round (hostqueue): checked here, not in a call, per attempt
                if not self._running or hosts.starved or host in hosts.held:
                    break
                if hosts.waiting_unproven or not hosts.may_continue(host):
                    break  # a host waits for probation room, or this one is back on it
                d = hosts.take(host) if hosts.ready.get(host) else None
        finally:
            hosts.release(host)
            # hosts waiting for a global slot go first, then this host again
            while (other := hosts.next_starved()) is not None:
                self._pump(other)
            self._pump(host)
            self._update_idle()

    def _retry_later(self, d: Delivery) -> None:
        if self._running and d.delivery_id in self._known:
            now = self._now()
            self._schedule(d, now + STORE_ERROR_DELAY, now)

    def _update_idle(self) -> None:
        now = self._now()
        busy = (
            self._hosts.inflight
            or self._unrecorded
            or self._hosts.waiting()
            or self._timer.due(now)
            or not self._loaded
            or self._refill.loading
            or self._next_refill <= now
        )
        if busy and self._running:
            self._idle.clear()
        else:
            self._idle.set()

    async def _scheduler(self) -> None:
        self._next_refill = self._now() + self._refill.every
        while self._running:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop every delivery
                log.exception("dispatcher scheduler error; going on")
                await asyncio.sleep(1.0)

    async def _tick(self) -> None:
        self._timer.start_tick()
        now = self._now()
        if now >= self._next_refill:
            more = await self._load(now)
            self._next_refill = self._now() + self._refill.pause(more, len(self._known))
        self._fire_due(self._now())
        self._update_idle()
        await self._timer.sleep(self._next_refill)

    async def _load(self, now: float) -> bool:
        """One refill; True when the next one should come soon."""
        fresh, more = await self._refill.load(now, self._known)
        if fresh:
            self._take_in(fresh)  # counted already (at start, or when committed)
            self._update_idle()
        return more

    # -- one attempt -----------------------------------------------------------

    async def _attempt(self, d: Delivery) -> None:
        """Send ``d`` and hand the result to the log; the slot moves on while the
        log write (grouped with others) completes."""
        started = self._now()
        if d.expires_at is not None and d.expires_at < started:
            self._record(d, expired(expired_attempt(d, started)), count=False)
            return
        if self._dry_any and (
            self._dry_all
            or d.traffic_source in self._dry_sources
            or (d.traffic_source, d.rule) in self._dry_rules
        ):
            self._record(d, dry_run(dry_run_attempt(d, started)), count=False)
            return
        t0 = time.perf_counter()
        answer: Answer | None = None
        body = None if d.body is None else d.body.encode()
        headers = request_headers(d.body)
        timeout = self.settings.timeout
        try:
            check_fixed_host(d.url, d.host)
            # redirects.send() inlined: an answer that is no redirect costs no extra frame
            answer = await self._transport.exchange(d.method, d.url, body, headers, timeout)
            if answer.status in REDIRECT_STATUSES:
                answer = await follow(
                    self._transport, answer, d.method, d.url, body, headers, timeout
                )
        except TransportError as exc:
            attempt, verdict = from_error(d, exc, started, exc.elapsed or time.perf_counter() - t0)
        except Exception as exc:  # a client's bug or an input nobody foresaw: still an attempt
            log.warning("delivery %d: attempt raised", d.delivery_id, exc_info=exc)
            answer = None
            error = TransportError(f"internal error: {type(exc).__name__}: {exc}"[:300])
            attempt, verdict = from_error(d, error, started, time.perf_counter() - t0)
        else:
            attempt, verdict = from_answer(d, answer, started)
        self._tally.observe(("delivery_latency", d.traffic_source), attempt.latency_ms / 1000.0)
        code = attempt.status_code
        if code is not None or verdict.outcome == "retry":  # a refused URL proves nothing
            if self._hosts.answered(d.host, code is not None):
                self._pump(d.host)  # off probation: its other deliveries may start now
        if host_trouble(code) or self._breaker.active:
            self._breaker_note(d.host, code, verdict)
        decision = after_attempt(d, attempt, verdict, answer, self.settings, self._now, self._rng)
        self._record(d, decision)

    def _breaker_note(self, host: str, code: int | None, verdict: Verdict) -> None:
        """Host trouble counts (a refused address does not); any other answer closes."""
        if host_trouble(code):
            if code is not None or verdict.outcome == "retry":
                self._breaker.failure(host, self._now(), verdict.reason)
        elif self._breaker.success(host):  # a probe came back: the host's queue goes
            self._hosts.unhold(host)
            self._pump(host)

    def _record(self, d: Delivery, decision: Decision, *, count: bool = True) -> None:
        """Hand the attempt to the log; the delivery moves on once it is committed."""
        self._unrecorded += 1
        self._recorder.add_tagged(
            (decision.attempt, decision.status, decision.next_at, count), (d, decision)
        )

    def _log_written(
        self, done: list[tuple[Delivery, Decision]], exc: BaseException | None
    ) -> None:
        """A group of attempts is committed (or failed to be): their deliveries move on."""
        self._unrecorded -= len(done)
        now = self._now()
        debug = log.isEnabledFor(logging.DEBUG)
        for d, decision in done:
            try:
                if exc is not None:
                    log.error(
                        "delivery %d: attempt not recorded (%s); trying again later",
                        d.delivery_id,
                        exc,
                    )
                    self._retry_later(d)
                else:
                    self._moved_on(d, decision, now, debug)
            except Exception:
                log.exception("delivery %d: could not move on", d.delivery_id)

    def _after_log_write(self) -> None:
        self._tally.apply()
        self._metrics.queue_depth.set(self._queued)
        self._update_idle()

    def _moved_on(self, d: Delivery, decision: Decision, now: float, debug: bool) -> None:
        a = decision.attempt
        source = d.traffic_source
        self._tally.finished(decision.counter, source, a.status_code)
        if decision.status == "queued":
            assert decision.next_at is not None
            d = msgspec.structs.replace(
                d,
                attempts=d.attempts + 1,
                next_at=decision.next_at,
                last_outcome=a.outcome,
                last_reason=a.reason,
            )
            if d.delivery_id in self._known and self._running:
                if decision.next_at > now + REFILL_INTERVAL:  # a long wait: the store's
                    del self._known[d.delivery_id]
                    self._due_seq.pop(d.delivery_id, None)
                    return
                self._known[d.delivery_id] = d
                self._schedule(d, decision.next_at, now)
            return
        if decision.status == "delivered":
            self._tally.observe(("end_to_end", source), max(0.0, now - d.created_at))
        elif decision.status == "failed":
            said = " ".join(a.body_prefix.split())[:200]  # redacted with the attempt
            DELIVERY_LOG.warning(
                "dead letter (%s): delivery %d (%s, rule %s) %s %s: %s%s",
                "rejected" if a.outcome == "rejected" else "retries spent",
                d.delivery_id,
                source,
                d.rule,
                d.method,
                a.url,
                a.reason,
                f"; answer: {said}" if said and said not in a.reason else "",
            )
        elif decision.status == "dry_run":
            DELIVERY_LOG.info(
                "dry run: delivery %d (%s, rule %s) not sent: %s %s",
                d.delivery_id,
                source,
                d.rule,
                d.method,
                d.display_url,
            )
        self._queued -= 1
        self._known.pop(d.delivery_id, None)
        self._due_seq.pop(d.delivery_id, None)
        self._recent_done.add(d.delivery_id)
        if debug:
            log.debug("delivery %d %s: %s", d.delivery_id, decision.status, a.reason)
