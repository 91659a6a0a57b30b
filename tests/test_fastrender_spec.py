"""The examples of spec/templates.md, section 6, on both implementations."""

from __future__ import annotations

import pytest

from _fastrender import TemplateError

EXAMPLES = [
    (
        "https://ts.example/pb?cid={externalid}&p={payout}",
        {"externalid": "a b&c", "payout": "1.50"},
        "https://ts.example/pb?cid=a%20b%26c&p=1.50",
    ),
    ("https://ts.example/pb?z={tName:zoneid}", {"var:zoneid": "42"}, "https://ts.example/pb?z=42"),
    ('https://ts.example/pb?x={var9}&j={"a":1}', {}, 'https://ts.example/pb?x=&j={"a":1}'),
    (
        "https://ts.example/pb?s={status|map:approved=1,*=0}&h={externalid|md5}",
        {"conversion.status": "approved", "externalid": "abc"},
        "https://ts.example/pb?s=1&h=900150983cd24fb0d6963f7d28e17f72",
    ),
    (
        "https://ts.example/pb?u={var:u|raw}",
        {"var:u": "a%20b&c=d e"},
        "https://ts.example/pb?u=a%20b&c=d%20e",
    ),
]


@pytest.mark.parametrize(("template", "values", "expected"), EXAMPLES)
def test_spec_example(fastrender_module, template, values, expected):
    assert fastrender_module.compile_template(template).render(values) == expected


def test_token_in_host_is_an_error_at_its_position(fastrender_module):
    with pytest.raises(TemplateError) as info:
        fastrender_module.compile_template("https://{externalid}.ts.example/")
    assert info.value.position == 8


def test_one_error_class_for_both(fastrender_module):
    assert fastrender_module.TemplateError is TemplateError
