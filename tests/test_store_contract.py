"""What every store backend promises, through the ``Store`` seam only.

Each test runs once per backend (``tests/store_fixtures.py``); what only
SQLite promises (threads, WAL, its file format) is in ``test_store_sqlite.py``.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.store.base import (
    Click,
    Conversion,
    ConversionFilter,
    DeliveryFilter,
    DeliveryStatus,
    Found,
    NewDelivery,
    Rewrite,
    Store,
    Wanted,
    Writes,
)
from tests.store_fixtures import StoreBackend
from tests.store_helpers import (
    NOW,
    attempt,
    click,
    conversion,
    lookup,
    new_delivery,
    record,
    write_rows,
)

_dirs = itertools.count()


async def test_a_group_writes_everything_and_numbers_its_deliveries(store: Store) -> None:
    stored = await write_rows(store, [click(1), click(2)], [conversion(1)], [new_delivery()] * 2)
    ids = [d.delivery_id for d in stored]
    assert len(set(ids)) == 2 and ids == sorted(ids)  # one source and campaign: in order
    assert all(d.status == "queued" and d.next_at == NOW and d.attempts == 0 for d in stored)
    found = await lookup(store, ["c1", "c2", "nope"], ["c1|t:1", "nope"])
    assert sorted(found.clicks) == ["c1", "c2"]
    assert found.clicks["c1"] == click(1)
    assert list(found.conversions) == ["c1|t:1"] and found.conversions["c1|t:1"] == conversion(1)
    listed = await store.list_deliveries(DeliveryFilter(), after_id=None, limit=10)
    assert listed == stored


async def test_every_delivery_field_comes_back_as_given(store: Store) -> None:
    given_ = [
        new_delivery("v1"),
        NewDelivery(
            conversion_id="v2",
            traffic_source="other",
            campaign_id="k",
            rule="campaign:pb",
            method="POST",
            url="https://i.example/p",
            display_url="https://i.example/p",
            body='{"a": 1}',
            host="i.example",
            click_time=None,
            not_before=NOW + 600,
            max_attempts=1,
            created_at=NOW,
            schedule=None,
            expires_at=None,
            answer_rule=None,
        ),
    ]
    stored = await write_rows(store, deliveries=given_)
    for new, d in zip(given_, stored, strict=True):
        read = await store.get_delivery(d.delivery_id)
        assert read is not None and read == d
        for field in NewDelivery.__struct_fields__:
            assert getattr(read, field) == getattr(new, field), field
        progress = (read.status, read.attempts, read.next_at, read.updated_at)
        assert progress == ("queued", 0, new.not_before, new.created_at)
    assert await store.get_delivery(max(d.delivery_id for d in stored) + 1) is None


async def test_a_known_dedup_key_is_an_update_and_a_known_click_is_kept(store: Store) -> None:
    await write_rows(store, [click(1)], [conversion(1, "pending", payout="1")])
    again = click(1)
    again.tokens = {"externalid": "other"}
    update = conversion(1, "approved", payout="2")
    update.conversion_id = "v-later"
    await write_rows(store, [again], [update])
    found = await lookup(store, ["c1"], ["c1|t:1"])
    assert found.clicks["c1"].tokens == {"externalid": "x1"}  # the first click stays
    stored = found.conversions["c1|t:1"]
    # one conversion per dedup key: the first row, with the new status and tokens
    assert (stored.conversion_id, stored.status, stored.tokens) == (
        "v1",
        "approved",
        {"payout": "2"},
    )


async def test_lookups_see_every_earlier_commit(store: Store) -> None:
    """Groups commit one after another: a group started while another is in
    flight decides on what that one wrote (the dedup decision relies on it)."""
    wanted = Wanted(click_ids=["c1"], dedup_keys=["c1|t:1"], size=1)
    seen: list[Found] = []

    def decide(found: Found) -> tuple[Writes, bool]:
        seen.append(found)
        if found.conversions:
            return Writes(), False  # a duplicate: nothing to write
        return Writes(clicks=[click(1)], conversions=[conversion(1)]), True

    results = await asyncio.gather(*(store.commit_group(wanted, decide) for _ in range(3)))
    assert [accepted for _, accepted in results] == [True, False, False]
    assert seen[0].clicks == {} and seen[0].conversions == {}
    assert all(list(f.clicks) == ["c1"] and list(f.conversions) == ["c1|t:1"] for f in seen[1:])


async def test_a_raising_decide_writes_nothing(store: Store) -> None:
    def decide(found: Found) -> tuple[Writes, None]:
        raise ValueError("bad rule")

    with pytest.raises(ValueError, match="bad rule"):
        await store.commit_group(Wanted(click_ids=["c1"], dedup_keys=[], size=1), decide)
    assert await store.queued_count() == 0
    await write_rows(store, [click(2)], deliveries=[new_delivery()])  # the store is usable
    found = await lookup(store, ["c1", "c2"])
    assert list(found.clicks) == ["c2"]
    assert await store.queued_count() == 1


async def test_commit_group_hands_back_what_decide_returned(store: Store) -> None:
    committed, extra = await store.commit_group(
        Wanted(click_ids=[], dedup_keys=["k"], size=2),
        lambda found: (Writes(deliveries=[new_delivery("v9")]), ("x", found.conversions)),
    )
    assert extra == ("x", {})
    assert [d.conversion_id for d in committed.deliveries] == ["v9"]


async def test_claims_page_by_next_at_then_id(store: Store) -> None:
    times = [NOW + 5, NOW, NOW + 5, NOW + 1, NOW, NOW + 5, NOW + 2]
    stored = await write_rows(store, deliveries=[new_delivery(not_before=t) for t in times])
    expected = sorted(stored, key=lambda d: (d.not_before, d.delivery_id))
    pages: list[list[int]] = []
    after = None
    while True:
        page = await store.claim_due(NOW, 3, 30.0, ahead=10, after=after)
        pages.append([d.delivery_id for d in page])
        if len(page) < 3:
            break
        after = (page[-1].next_at or 0.0, page[-1].delivery_id)
    assert [i for p in pages for i in p] == [d.delivery_id for d in expected]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [d.delivery_id for d in await store.claim_due(NOW + 1, 10, 30.0)] == [
        d.delivery_id for d in expected[:3]
    ]


async def test_due_record_attempts_and_log(store: Store) -> None:
    first, later = await write_rows(
        store, deliveries=[new_delivery(), new_delivery(not_before=NOW + 60)]
    )
    assert await store.queued_count() == 2
    due = await store.claim_due(NOW, 10, 30.0)
    assert [d.delivery_id for d in due] == [first.delivery_id]
    await record(store, attempt(first.delivery_id), status="queued", next_at=NOW + 10)
    assert await store.claim_due(NOW + 5, 10, 30.0) == []
    assert {d.delivery_id for d in await store.claim_due(NOW + 60, 10, 30.0)} == {
        first.delivery_id,
        later.delivery_id,
    }
    await store.record_attempts(
        [
            (attempt(first.delivery_id, "delivered"), "delivered", None, True),
            (attempt(later.delivery_id, "paused"), "queued", NOW + 90, False),
        ]
    )
    await store.record_attempts([])  # nothing to write
    stored = await store.get_delivery(first.delivery_id)
    assert stored is not None and stored.status == "delivered" and stored.attempts == 2
    assert stored.last_outcome == "delivered" and stored.last_reason == "HTTP 503"
    assert stored.next_at is None and stored.schedule == [1.0, 2.0]
    assert stored.updated_at == NOW + 1 + 12.5 / 1000
    paused = await store.get_delivery(later.delivery_id)
    assert paused is not None and paused.attempts == 0 and paused.next_at == NOW + 90
    assert await store.queued_count() == 1
    log = await store.list_attempts(first.delivery_id)
    assert [a.outcome for a in log] == ["retry", "delivered"]
    assert log[0] == attempt(first.delivery_id)
    assert await store.list_attempts(later.delivery_id + 100) == []


async def test_list_filters_and_cursor(store: Store) -> None:
    news = [
        new_delivery(source="a" if i % 2 else "b", campaign=f"k{i % 3}", created=NOW + i)
        for i in range(10)
    ]
    stored = await write_rows(store, deliveries=news)
    ids = sorted(d.delivery_id for d in stored)
    page1 = await store.list_deliveries(DeliveryFilter(), after_id=None, limit=4)
    page2 = await store.list_deliveries(DeliveryFilter(), after_id=page1[-1].delivery_id, limit=4)
    page3 = await store.list_deliveries(DeliveryFilter(), after_id=page2[-1].delivery_id, limit=4)
    assert [d.delivery_id for d in page1 + page2 + page3] == ids
    only_a = await store.list_deliveries(
        DeliveryFilter(traffic_source="a"), after_id=None, limit=50
    )
    assert len(only_a) == 5 and all(d.traffic_source == "a" for d in only_a)
    k0 = await store.list_deliveries(DeliveryFilter(campaign_id="k0"), after_id=None, limit=50)
    assert len(k0) == 4
    since = await store.list_deliveries(DeliveryFilter(since=NOW + 7), after_id=None, limit=50)
    assert len(since) == 3
    queued = await store.list_deliveries(DeliveryFilter(status="queued"), after_id=None, limit=50)
    assert len(queued) == 10
    assert await store.list_deliveries(DeliveryFilter(), after_id=None, limit=0) == []


async def test_requeue_failed_and_by_id(store: Store) -> None:
    a, b, c = (d.delivery_id for d in await write_rows(store, deliveries=[new_delivery()] * 3))
    await record(store, attempt(a, "rejected"), status="failed", next_at=None)
    await record(store, attempt(b, "delivered"), status="delivered", next_at=None)
    back = await store.requeue(DeliveryFilter(), ids=None, now=NOW + 500)
    assert [d.delivery_id for d in back] == [a]
    assert back[0].status == "queued" and back[0].attempts == 0 and back[0].next_at == NOW + 500
    again = await store.requeue(DeliveryFilter(), ids=[b, c], now=NOW + 600)
    assert [d.delivery_id for d in again] == [b]  # c was still queued
    assert await store.requeue(DeliveryFilter(), ids=[], now=NOW + 700) == []
    assert len(await store.list_attempts(a)) == 1  # history kept
    assert {d.delivery_id for d in await store.claim_due(NOW + 600, 10, 30.0)} == {a, b, c}


async def test_a_held_delivery_is_stored_aside_and_never_due(store: Store) -> None:
    """``held`` (a network macro left in it): stored with its reason, never due, not
    counted queued, listed by status, and sent only once requeued by id."""
    held = msgspec.structs.replace(new_delivery(), held="externalid is '${SUBID}'")
    stored = await write_rows(store, deliveries=[new_delivery(), held])
    ok, aside = stored
    assert ok.status == "queued" and ok.held is None
    assert (aside.status, aside.next_at, aside.last_outcome) == ("held", None, "held")
    assert aside.last_reason == "externalid is '${SUBID}'"
    assert await store.queued_count() == 1
    due = await store.claim_due(NOW + 10**6, 10, 30.0)
    assert [d.delivery_id for d in due] == [ok.delivery_id]
    [listed] = await store.list_deliveries(DeliveryFilter(status="held"), after_id=None, limit=9)
    assert listed.delivery_id == aside.delivery_id and listed.last_reason == aside.last_reason
    assert await store.requeue(DeliveryFilter(), ids=None, now=NOW + 1) == []  # failed only
    [back] = await store.requeue(DeliveryFilter(), ids=[aside.delivery_id], now=NOW + 2)
    assert back.status == "queued" and back.next_at == NOW + 2


async def test_lookups_by_every_key(store: Store) -> None:
    """A click, a conversion and their deliveries, found by any key a person quotes."""
    ours = Click(
        click_id="ck1",
        campaign_id="camp",
        traffic_source="ts",
        created_at=NOW,
        tokens={"externalid": "net-77"},
    )
    by_click = Conversion(
        conversion_id="cv1",
        click_id="ck1",
        dedup_key="ck1|t:A",
        status="approved",
        created_at=NOW,
        tokens={"transaction.id": "TX-A"},
    )
    upstream = Conversion(
        conversion_id="cv2",
        click_id=None,
        dedup_key="ext:up-9|t:B",
        status="approved",
        created_at=NOW + 5,
        tokens={"externalid": "up-9", "transaction.id": "TX-B"},
    )
    news = [
        msgspec.structs.replace(new_delivery("cv1"), rule="r1", host="a.example"),
        msgspec.structs.replace(new_delivery("cv1"), rule="r2", host="b.example"),
        msgspec.structs.replace(new_delivery("cv2", created=NOW + 5), rule="r1"),
        new_delivery("other"),
    ]
    stored = await write_rows(store, [ours], [by_click, upstream], news)
    ids = {d.conversion_id + d.rule: d.delivery_id for d in stored}
    assert await store.get_click("ck1") == ours and await store.get_click("nope") is None
    assert await store.get_conversion("cv2") == upstream
    assert await store.get_conversion("nope") is None

    async def convs(**keys: str) -> list[str]:
        wanted = msgspec.convert(keys, ConversionFilter)
        return [c.conversion_id for c in await store.find_conversions_by(wanted, limit=10)]

    assert await convs(click_id="ck1") == ["cv1"]
    assert await convs(externalid="net-77") == ["cv1"]  # through its click
    assert await convs(externalid="up-9") == ["cv2"]  # its own
    assert await convs(transaction_id="TX-B") == ["cv2"]
    assert await convs(transaction_id="TX-") == []  # exact, not a prefix
    assert await convs(externalid="net-7") == []

    async def listed(**keys: Any) -> list[int]:
        rows = await store.list_deliveries(DeliveryFilter(**keys), after_id=None, limit=50)
        return [d.delivery_id for d in rows]

    assert await listed(conversion_id="cv1") == [ids["cv1r1"], ids["cv1r2"]]
    assert await listed(click_id="ck1") == [ids["cv1r1"], ids["cv1r2"]]
    assert await listed(externalid="net-77", rule="r2") == [ids["cv1r2"]]
    assert await listed(externalid="up-9") == [ids["cv2r1"]]
    assert await listed(transaction_id="TX-A") == [ids["cv1r1"], ids["cv1r2"]]
    assert await listed(transaction_id="nope") == []
    assert await listed(host="b.example") == [ids["cv1r2"]]
    assert await listed(rule="r1", until=NOW + 1) == [ids["cv1r1"]]
    assert await listed(rule="r1", since=NOW + 1) == [ids["cv2r1"]]


async def test_rewrite_replaces_the_url_and_queues_afresh(store: Store) -> None:
    """Fix-and-replay: a finished delivery gets the new URL and a fresh budget (or is
    held); a queued one is left alone; the attempt log keeps the old attempts."""
    a, b, c = (d.delivery_id for d in await write_rows(store, deliveries=[new_delivery()] * 3))
    await record(store, attempt(a, "rejected"), status="failed", next_at=None)
    await record(store, attempt(b, "rejected"), status="failed", next_at=None)

    def fixed(delivery_id: int, held: str | None = None) -> Rewrite:
        return Rewrite(
            delivery_id=delivery_id,
            url="https://new.example/pb?c=1&k=SECRET",
            display_url="https://new.example/pb?c=1&k=***",
            body="x=1",
            host="new.example",
            method="POST",
            answer_rule="inline:{}",
            held=held,
        )

    out = await store.rewrite([fixed(a), fixed(b, "still a macro"), fixed(c)], now=NOW + 50)
    assert [d.delivery_id for d in out] == [a, b]  # c was queued: untouched
    first, second = out
    assert (first.status, first.attempts, first.next_at) == ("queued", 0, NOW + 50)
    assert (first.url, first.display_url, first.body) == (
        "https://new.example/pb?c=1&k=SECRET",
        "https://new.example/pb?c=1&k=***",
        "x=1",
    )
    assert (first.host, first.method, first.answer_rule) == ("new.example", "POST", "inline:{}")
    assert (second.status, second.next_at, second.last_reason) == ("held", None, "still a macro")
    untouched = await store.get_delivery(c)
    assert untouched is not None and untouched.url == new_delivery().url
    assert len(await store.list_attempts(a)) == 1
    assert a in {d.delivery_id for d in await store.claim_due(NOW + 60, 10, 30.0)}


async def test_add_missing_writes_each_rule_once_per_conversion(store: Store) -> None:
    """Backfill: a (conversion, rule) that has a delivery is skipped, so twice sends once."""
    await write_rows(store, deliveries=[new_delivery("v1")])  # rule "global" for v1
    late = [
        msgspec.structs.replace(new_delivery(conv), rule=rule)
        for conv, rule in (("v1", "global"), ("v1", "late"), ("v2", "late"), ("v2", "late"))
    ]
    written = await store.add_missing(late)
    assert [(d.conversion_id, d.rule, d.status) for d in written] == [
        ("v1", "late", "queued"),
        ("v2", "late", "queued"),
    ]
    assert await store.add_missing(late) == []
    listed = await store.list_deliveries(DeliveryFilter(rule="late"), after_id=None, limit=10)
    assert [d.delivery_id for d in listed] == [d.delivery_id for d in written]
    held = msgspec.structs.replace(new_delivery("v3"), rule="late", held="macro")
    [aside] = await store.add_missing([held])
    assert aside.status == "held" and await store.queued_count() == 3


async def test_recent_host_attempts_newest_first_with_their_host(store: Store) -> None:
    other = msgspec.structs.replace(new_delivery(), host="other.example")
    a, b = (d.delivery_id for d in await write_rows(store, deliveries=[new_delivery(), other]))
    await record(store, attempt(a, "retry", started=NOW + 1), status="queued", next_at=NOW + 9)
    await record(store, attempt(b, "delivered", started=NOW + 2), status="delivered", next_at=None)
    await record(store, attempt(a, "delivered", started=NOW + 3), status="delivered", next_at=None)
    seen = await store.recent_host_attempts(since=NOW, limit=10)
    assert [(h.host, h.outcome, h.latency_ms) for h in seen] == [
        ("h.example", "delivered", 12.5),
        ("other.example", "delivered", 12.5),
        ("h.example", "retry", 12.5),
    ]
    assert len(await store.recent_host_attempts(since=NOW, limit=2)) == 2
    assert [h.outcome for h in await store.recent_host_attempts(since=NOW + 2.5, limit=10)] == [
        "delivered"
    ]


async def test_purge_removes_finished_only(store: Store) -> None:
    a, b = (d.delivery_id for d in await write_rows(store, deliveries=[new_delivery()] * 2))
    await record(store, attempt(a, "delivered"), status="delivered", next_at=None)
    assert await store.purge(NOW) == 0
    assert await store.purge(NOW + 10) == 1
    assert await store.get_delivery(a) is None and await store.list_attempts(a) == []
    assert await store.get_delivery(b) is not None


# -- filtered listing, paging, requeue and purge against a model of every row ------------------

_writes = st.lists(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]), st.sampled_from(["k1", "k2", ""]), st.integers(0, 5)
        ),
        min_size=1,
        max_size=12,
    ),
    min_size=1,
    max_size=6,
)
_filters = st.builds(
    DeliveryFilter,
    status=st.none() | st.sampled_from(["queued", "failed"]),
    traffic_source=st.none() | st.sampled_from(["a", "b", "zz"]),
    campaign_id=st.none() | st.sampled_from(["k1", "k2", "", "zz"]),
    since=st.none() | st.integers(0, 6).map(lambda t: NOW + t),
)


def _delivery(source: str, campaign: str, created: float) -> NewDelivery:
    d = new_delivery(source=source, campaign=campaign, created=created)
    d.not_before = created
    return d


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    writes=_writes,
    f=_filters,
    page=st.integers(1, 7),
    purge=st.booleans(),
    failing=st.integers(2, 4),
)
def test_filters_and_pages_match_a_model_of_every_row(
    store_backend: StoreBackend,
    tmp_path: Path,
    writes: list[list[tuple[str, str, int]]],
    f: DeliveryFilter,
    page: int,
    purge: bool,
    failing: int,
) -> None:
    def matches(row: tuple[int, str, str, float, DeliveryStatus], f: DeliveryFilter) -> bool:
        _, source, campaign, created, status = row
        return (
            (f.status is None or status == f.status)
            and (f.traffic_source is None or source == f.traffic_source)
            and (f.campaign_id is None or campaign == f.campaign_id)
            and (f.since is None or created >= f.since)
        )

    async def run() -> None:
        directory = tmp_path / f"s{next(_dirs)}"
        directory.mkdir()
        store = store_backend.make(directory)
        await store.open()
        try:
            model: dict[int, tuple[int, str, str, float, DeliveryStatus]] = {}
            for write in writes:  # creation times in any order, as clocks allow
                stored = await write_rows(
                    store, deliveries=[_delivery(s, c, NOW + t) for s, c, t in write]
                )
                for d in stored:
                    row = (d.delivery_id, d.traffic_source, d.campaign_id, d.created_at)
                    model[d.delivery_id] = (*row, "queued")
            ordered = sorted(model)
            failed = ordered[failing - 1 :: failing]
            await store.record_attempts(
                [(attempt(i, "rejected", started=NOW), "failed", None, True) for i in failed]
            )
            for i in failed:
                model[i] = (*model[i][:4], "failed")
            if purge:  # finished deliveries go
                await store.purge(NOW + 100)
                model = {i: row for i, row in model.items() if row[4] == "queued"}
            want = [i for i in sorted(model) if matches(model[i], f)]
            got: list[int] = []
            after = None
            while True:
                rows = await store.list_deliveries(f, after_id=after, limit=page)
                got.extend(d.delivery_id for d in rows)
                if len(rows) < page:
                    break
                after = rows[-1].delivery_id
            assert got == want
            # requeue with the same filters (no status: the failed ones) picks among them
            unfiltered = DeliveryFilter(
                traffic_source=f.traffic_source, campaign_id=f.campaign_id, since=f.since
            )
            picked = [
                i
                for i in sorted(model)
                if model[i][4] == "failed" and matches(model[i], unfiltered)
            ]
            requeued = await store.requeue(unfiltered, ids=None, now=NOW + 50)
            assert [d.delivery_id for d in requeued] == picked
            assert all(d.status == "queued" for d in requeued)
        finally:
            await store.close()

    asyncio.run(run())
