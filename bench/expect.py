"""The traffic model: what the tester sends, and what every postback must be.

The expected URLs are rendered here with the pure-Python twin
(``_fastrender._plan_py``) from the values the tester itself sent, never from
anything the gateway answers, so a gateway bug cannot hide in the oracle.

A conversion *chain* is the life of one (click, transaction id) key: a first
conversion (approved, or pending), maybe an exact duplicate (must fire
nothing), maybe a status change pending -> approved (fires once more).  Each
step is sent only after the previous one was answered, so the order the
gateway sees is the order the model assumes.  A step answered with anything
but 2xx ends its chain, and only steps answered 2xx expect a postback.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
from collections import Counter, deque
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, urlsplit

from _fastrender._plan_py import Plan, compile_template
from bench.load import Outcome, Request
from bench.sink import Record

__all__ = (
    "Chain",
    "Click",
    "ConversionSource",
    "Source",
    "Step",
    "Verdict",
    "api_click_requests",
    "click_requests",
    "compare",
    "make_clicks",
    "make_sources",
    "register",
)

# Template shapes seen in real networks (reference/traffic-sources.md): query
# parameters, the click id in the path, a status glued to literal text (MGID),
# a hash and a status map.  Each renders the key and status, so every expected
# postback URL is distinct.
_SHAPES = (
    "/ts{i}/pb?cid={{externalid}}&payout={{payout}}&tx={{transaction.id}}&st={{conversion.status}}"
    "&z={{var1}}",
    "/ts{i}/conversion/{{externalid}}/aid/7?txid={{transaction.id}}&p={{payout}}&s={{status}}"
    "&zone={{var:zoneid}}",
    "/ts{i}/postback?c={{externalid}}&e={{conversion.status}}123456&r={{payout}}&t={{txid}}",
    "/ts{i}/tag.php?goal=g{i}&tag={{externalid}}&value={{payout}}&h={{transaction.id|md5}}"
    "&s={{conversion.status|map:approved=1,pending=2,*=0}}",
)
_PAYOUTS = ("1.5", "0.25", "3.75", "10.1", "0.05", "2")
_ODD_IDS = ("a b&c=d", "x/y?z#w", "ünï-cødé", "50%_off~")


@dataclass(frozen=True)
class Source:
    """One traffic source with one campaign and one postback rule."""

    index: int
    name: str
    campaign_id: str
    template: str  # full URL, gateway tokens

    def render(self, values: dict[str, str]) -> str:
        return _plan(self.template).render(values)


_PLANS: dict[str, Plan] = {}


def _plan(template: str) -> Plan:
    plan = _PLANS.get(template)
    if plan is None:
        plan = _PLANS[template] = compile_template(template)
    return plan


def make_sources(n: int, sink_base: str) -> list[Source]:
    """``n`` sources whose postbacks all land on ``sink_base`` (http://host:port)."""
    return [
        Source(i, f"ts{i}", f"camp{i}", sink_base + _SHAPES[i % len(_SHAPES)].format(i=i))
        for i in range(n)
    ]


@dataclass
class Click:
    source: Source
    externalid: str
    zoneid: str
    click_id: str | None = None  # the gateway's, once registered


def make_clicks(sources: list[Source], n: int, rng: random.Random) -> list[Click]:
    """``n`` clicks spread over the sources; one in eight carries an id that needs encoding."""
    alphabet = string.ascii_letters + string.digits
    clicks = []
    for i in range(n):
        ext = "".join(rng.choices(alphabet, k=16))
        if i % 8 == 7:
            ext = f"{_ODD_IDS[i // 8 % len(_ODD_IDS)]}-{ext}"
        clicks.append(Click(sources[i % len(sources)], ext, str(rng.randint(1000, 99999))))
    return clicks


def click_requests(clicks: list[Click]) -> list[Request]:
    """``GET /click/{campaign}?externalid=...`` for each click (tag: the Click)."""
    return [
        Request(
            method="GET",
            target=f"/click/{quote(c.source.campaign_id, safe='')}"
            f"?externalid={quote(c.externalid, safe='')}&zoneid={c.zoneid}",
            tag=c,
        )
        for c in clicks
    ]


def api_click_requests(clicks: list[Click], batch: int = 100) -> list[Request]:
    """``POST /api/clicks`` with ``batch`` clicks each (tag: the list of Clicks)."""
    requests = []
    for start in range(0, len(clicks), batch):
        group = clicks[start : start + batch]
        items = [
            {"campaign_id": c.source.campaign_id, "externalid": c.externalid, "zoneid": c.zoneid}
            for c in group
        ]
        requests.append(
            Request(method="POST", target="/api/clicks", json=json.dumps(items).encode(), tag=group)
        )
    return requests


def register(outcome: Outcome) -> None:
    """Store the gateway's click ids from a click answer (either kind) on its Clicks."""
    if isinstance(outcome.request.tag, Click):
        outcome.request.tag.click_id = click_id_from(outcome)
        return
    if outcome.status != 200:
        return
    results = json.loads(outcome.body)
    if isinstance(results, dict):
        results = results.get("results", [])
    group: list[Click] = outcome.request.tag  # type: ignore[assignment]
    for click, result in zip(group, results, strict=False):
        if isinstance(result, dict) and result.get("status") == "accepted":
            click.click_id = result.get("click_id")


def click_id_from(outcome: Outcome) -> str | None:
    """The click id from the 302's offer URL (``...?click={click.id}``)."""
    if outcome.status not in (301, 302, 303, 307) or not outcome.location:
        return None
    found = parse_qs(urlsplit(outcome.location).query).get("click")
    return found[0] if found else None


@dataclass
class Step:
    status: str  # canonical: what the postback must say
    word: str  # what the tester sends
    kind: str  # new | duplicate | update
    expected_url: str | None = None  # None: must fire nothing
    answered_at: float | None = None  # time.time() of a 2xx answer
    answer: int = 0


@dataclass
class Chain:
    click: Click
    txid: str
    payout: str
    steps: list[Step]
    sent: int = 0  # steps handed out
    aborted: bool = False

    def values(self, status: str) -> dict[str, str]:
        return {
            "externalid": self.click.externalid,
            "payout": self.payout,
            "var1": self.click.zoneid,
            "var:zoneid": self.click.zoneid,
            "transaction.id": self.txid,
            "conversion.status": status,
        }

    def request(self, index: int) -> Request:
        step = self.steps[index]
        target = (
            f"/postback?cid={quote(self.click.click_id or '', safe='')}&payout={self.payout}"
            f"&txid={self.txid}&status={step.word}"
        )
        return Request(method="GET", target=target, tag=(self, index))


def _chain(click: Click, txid: str, rng: random.Random, dup: float, update: float) -> Chain:
    payout = rng.choice(_PAYOUTS)
    first = "pending" if rng.random() < update else "approved"
    word = {"approved": rng.choice(("approved", "approved", "sale")), "pending": "pending"}[first]
    steps = [Step(first, word, "new")]
    if rng.random() < dup:
        steps.append(Step(first, word, "duplicate"))
    if first == "pending":
        steps.append(Step("approved", "approved", "update"))
    chain = Chain(click, txid, payout, steps)
    for step in steps:
        if step.kind != "duplicate":
            step.expected_url = click.source.render(chain.values(step.status))
    return chain


class ConversionSource:
    """Hands out conversion steps: ready follow-ups first, then new chains.

    ``budget`` caps the requests (count mode); without it chains go on until
    the load generator's duration ends.
    """

    def __init__(
        self, clicks: list[Click], *, budget: int | None, dup: float, update: float, seed: int = 7
    ) -> None:
        self.clicks = [c for c in clicks if c.click_id]
        if not self.clicks:
            raise ValueError("no registered clicks to convert")
        self.rng = random.Random(seed)
        self.budget, self.dup, self.update = budget, dup, update
        self.chains: list[Chain] = []
        self.ready: deque[tuple[Chain, int]] = deque()
        self.issued = 0  # requests handed out or promised by started chains
        self.waiting = 0  # chains with a step in flight and more to send
        self.expecting = 0  # postbacks the answers so far promise (live progress)
        self.wakeup = asyncio.Event()
        self.prepared: deque[Chain] = deque()  # built (and rendered) ahead of the timed phase

    def prepare(self, n: int) -> None:
        """Build and render the next ``n`` chains now, so the timed phase only hands
        them out (rendering the expected URLs is the tester's work, not the load)."""
        if self.budget is not None:
            n = min(n, max(0, self.budget - self.issued) - len(self.prepared))
        for _ in range(max(0, n)):
            number = len(self.chains) + len(self.prepared)
            click = self.clicks[number % len(self.clicks)]
            self.prepared.append(_chain(click, f"T{number:07d}", self.rng, self.dup, self.update))

    async def next_request(self) -> Request | None:
        while True:
            if self.ready:
                chain, index = self.ready.popleft()
                return chain.request(index)
            if self.budget is None or self.issued < self.budget:
                return self._start()
            if self.waiting == 0:
                return None
            self.wakeup.clear()
            await self.wakeup.wait()

    def _start(self) -> Request:
        if self.prepared:
            chain = self.prepared.popleft()
        else:
            n = len(self.chains)
            click = self.clicks[n % len(self.clicks)]
            chain = _chain(click, f"T{n:07d}", self.rng, self.dup, self.update)
        if self.budget is not None:
            chain.steps = chain.steps[: max(1, self.budget - self.issued)]
        self.issued += len(chain.steps)
        self.chains.append(chain)
        chain.sent = 1
        if len(chain.steps) > 1:
            self.waiting += 1
        return chain.request(0)

    def answered(self, outcome: Outcome) -> None:
        chain, index = outcome.request.tag  # type: ignore[misc]
        step = chain.steps[index]
        step.answer = outcome.status
        if 200 <= outcome.status < 300:
            step.answered_at = outcome.answered_at
            self.expecting += step.expected_url is not None
        else:
            chain.aborted = True
        more = not chain.aborted and index + 1 < len(chain.steps)
        if more:
            self.ready.append((chain, index + 1))
            chain.sent = index + 2
        elif len(chain.steps) > 1:
            self.waiting -= 1
        self.wakeup.set()

    def expected(self) -> dict[str, float]:
        """Expected postback URL -> when its conversion was answered (time.time())."""
        out: dict[str, float] = {}
        for chain in self.chains:
            for step in chain.steps:
                if step.expected_url is not None and step.answered_at is not None:
                    out[step.expected_url] = step.answered_at
        return out

    def kinds(self) -> Counter[str]:
        """Answered-2xx steps by kind (new / duplicate / update)."""
        return Counter(s.kind for c in self.chains for s in c.steps if s.answered_at is not None)


@dataclass
class Verdict:
    expected: int
    received: int  # records at the sink
    lost: list[str] = field(default_factory=list)
    duplicated: dict[str, int] = field(default_factory=dict)  # url -> extra copies
    wrong: list[str] = field(default_factory=list)  # arrived, never expected
    e2e: list[float] = field(default_factory=list)  # seconds, answer -> first arrival
    last_arrival: float | None = None

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.wrong)


def compare(expected: dict[str, float], records: list[Record]) -> Verdict:
    """Check every record against every expected URL, byte for byte."""
    arrivals: dict[str, list[float]] = {}
    for rec in records:
        arrivals.setdefault(f"{rec.scheme}://{rec.host}{rec.target}", []).append(rec.t)
    verdict = Verdict(expected=len(expected), received=len(records))
    for url, answered_at in expected.items():
        times = arrivals.get(url)
        if not times:
            verdict.lost.append(url)
            continue
        if len(times) > 1:
            verdict.duplicated[url] = len(times) - 1
        # the sink can get it before the tester reads the 2xx: that counts as 0
        verdict.e2e.append(max(0.0, min(times) - answered_at))
    verdict.wrong = [url for url in arrivals if url not in expected]
    if records:
        verdict.last_arrival = max(r.t for r in records)
    return verdict
