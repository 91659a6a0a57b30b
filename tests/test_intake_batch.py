"""intake.build_batch's deliveries, field by field.

Each delivery is a copy of a per-rule template with its own seven fields
filled in (``_render``); these tests pin every field for an attributed and an
unattributed conversion, and check that no two deliveries share one object.
"""

from __future__ import annotations

from pathlib import Path

from gateway import clickid
from gateway.config import Config, load
from gateway.intake.decide import build_batch
from gateway.intake.params import parse_conversion
from gateway.store.base import Click, Delivery

NOW = 1_800_000_000.0

CONFIG = """
[delivery]
allow_private_targets = true
max_attempts = 7
schedule = [10.0, 60.0]

[[traffic_sources]]
name = "ts"
max_click_age = 3600

[[traffic_sources.postbacks]]
name = "ts:slow"
url = "https://pb.example/a?c={externalid}&p={payout}"
delay = 30
max_attempts = 4
schedule = [5.0, 50.0]

[[traffic_sources.postbacks]]
name = "ts:plain"
url = "https://pb.example/b?tx={txid}"

[[campaigns]]
id = "camp"
traffic_source = "ts"
offer_url = "https://offer.example/?s={click.id}"
"""


def _config(tmp_path: Path) -> Config:
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG)
    return load(path)


def test_every_field_of_an_attributed_and_an_unattributed_delivery(tmp_path: Path) -> None:
    config = _config(tmp_path)
    click_id = clickid.new_click_ids(NOW - 100, 1)[0]
    click = Click(
        click_id=click_id,
        campaign_id="camp",
        traffic_source="ts",
        created_at=NOW - 100,
        tokens={"externalid": "ext-1"},
    )
    attributed = parse_conversion([("cid", click_id), ("txid", "t1"), ("payout", "2.5")], config)
    unattributed = parse_conversion(
        [("externalid", "ext-9"), ("traffic_source", "ts"), ("txid", "t2"), ("payout", "1")],
        config,
    )
    assert not isinstance(attributed, tuple) and not isinstance(unattributed, tuple)
    rows, deliveries, results, _ = build_batch(
        config, [], [attributed, unattributed], {click_id: click}, {}, NOW
    )  # type: ignore[list-item]
    assert [r.outcome for r in results] == ["accepted", "accepted"]
    by_key = {(d.rule, d.conversion_id): d for d in deliveries}
    first, second = (r.conversion_id for r in rows)
    common = dict(
        delivery_id=0,
        status="queued",
        attempts=0,
        traffic_source="ts",
        method="GET",
        body=None,
        host="pb.example",
        created_at=NOW,
        answer_rule=None,
    )
    slow = dict(
        common,
        rule="ts:slow",
        next_at=NOW + 30,
        not_before=NOW + 30,
        max_attempts=4,
        schedule=[5.0, 50.0],
    )
    plain = dict(
        common, rule="ts:plain", next_at=NOW, not_before=NOW, max_attempts=7, schedule=[10.0, 60.0]
    )
    url_a = "https://pb.example/a?c=ext-1&p=2.5"
    url_b = "https://pb.example/b?tx=t1"
    expected = {
        ("ts:slow", first): Delivery(
            **slow,
            conversion_id=first,
            campaign_id="camp",
            url=url_a,
            display_url=url_a,
            click_time=NOW - 100,
            expires_at=NOW - 100 + 3600,
        ),
        ("ts:plain", first): Delivery(
            **plain,
            conversion_id=first,
            campaign_id="camp",
            url=url_b,
            display_url=url_b,
            click_time=NOW - 100,
            expires_at=NOW - 100 + 3600,
        ),
        ("ts:slow", second): Delivery(
            **slow,
            conversion_id=second,
            campaign_id="",
            url="https://pb.example/a?c=ext-9&p=1",
            display_url="https://pb.example/a?c=ext-9&p=1",
            click_time=None,
            expires_at=None,
        ),
        ("ts:plain", second): Delivery(
            **plain,
            conversion_id=second,
            campaign_id="",
            url="https://pb.example/b?tx=t2",
            display_url="https://pb.example/b?tx=t2",
            click_time=None,
            expires_at=None,
        ),
    }
    assert by_key == expected


def test_deliveries_of_one_rule_are_separate_objects(tmp_path: Path) -> None:
    """The store numbers each delivery in place: copies must not share state."""
    config = _config(tmp_path)
    click_id = clickid.new_click_ids(NOW - 100, 1)[0]
    click = Click(
        click_id=click_id,
        campaign_id="camp",
        traffic_source="ts",
        created_at=NOW - 100,
        tokens={"externalid": "ext-1"},
    )
    convs = [parse_conversion([("cid", click_id), ("txid", f"t{i}")], config) for i in range(3)]
    _, deliveries, _, _ = build_batch(config, [], convs, {click_id: click}, {}, NOW)  # type: ignore[arg-type]
    slow = [d for d in deliveries if d.rule == "ts:slow"]
    assert len(slow) == 3 and len({id(d) for d in slow}) == 3
    for number, d in enumerate(slow, start=1):
        assert isinstance(d, Delivery)
        d.delivery_id = number
    assert [d.delivery_id for d in slow] == [1, 2, 3]
    assert len({d.conversion_id for d in slow}) == 3
