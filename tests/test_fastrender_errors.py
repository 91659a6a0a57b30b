"""Compile errors: positions, did-you-mean, the fixed-destination rule, modifiers."""

from __future__ import annotations

import pickle

import pytest

from _fastrender import TemplateError

BASE = "https://ts.example/pb?cid="


def _error(module, template: str, **options) -> TemplateError:
    with pytest.raises(TemplateError) as info:
        module.compile_template(template, **options)
    return info.value


def test_template_error_is_a_value_error_with_position():
    error = TemplateError("boom at 3", 3)
    assert isinstance(error, ValueError)
    assert error.position == 3
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), str(again), again.position) == (TemplateError, "boom at 3", 3)


def test_misspelt_token_names_the_closest(fastrender_module):
    template = "https://ts.example/postback?goal=712&cid={extrnalid}"
    assert template.index("{extrnalid}") == 41
    error = _error(fastrender_module, template)
    assert error.position == 41
    assert str(error) == "unknown token {extrnalid} at 41; did you mean {externalid}?"


def test_unknown_token_without_a_close_match(fastrender_module):
    error = _error(fastrender_module, BASE + "{qqqqqqqq}")
    assert error.position == len(BASE)
    assert str(error) == f"unknown token {{qqqqqqqq}} at {len(BASE)}"


def test_misspelt_argument_token(fastrender_module):
    error = _error(fastrender_module, BASE + "{tNme:zoneid}")
    assert "did you mean {tName:zoneid}?" in str(error)


def test_did_you_mean_follows_the_dialect(fastrender_module):
    error = _error(fastrender_module, BASE + "{contry_code}", dialect="binom")
    assert "did you mean {country_code}?" in str(error)


@pytest.mark.parametrize(
    "template",
    [
        "https://{externalid}.h/",
        "https://u:{externalid}@h/",
        "https://h:{externalid}/",
        "{externalid}://h/",
        "https://h.{externalid}",
        "//{externalid}/pb",
        "https://{var:host}/pb?x={externalid}",
        "{ip}:8080/pb",
    ],
)
def test_token_in_scheme_or_authority_is_rejected_at_its_position(fastrender_module, template):
    error = _error(fastrender_module, template)
    assert error.position == template.index("{")
    assert "scheme or host" in str(error)


def test_first_offending_token_is_reported(fastrender_module):
    template = "https://ok.example/{var1}?u=https://{var2}.evil/"
    # A token after the path starts is data, whatever it looks like.
    assert fastrender_module.compile_template(template).tokens == ("var1", "var2")
    template = "https://a{var1}b.{var2}/"
    assert _error(fastrender_module, template).position == template.index("{var1}")


@pytest.mark.parametrize(
    "template",
    [
        "https://h/{externalid}",
        "https://h?x={externalid}",
        "https://h#{externalid}",
        "https://h:8080/{externalid}",
        "https://u:p@h/{externalid}",
        "{externalid}",
        "/relative/{externalid}",
        "mailto:{externalid}",
    ],
)
def test_token_after_the_authority_is_accepted(fastrender_module, template):
    assert fastrender_module.compile_template(template).tokens == ("externalid",)


def test_literal_braces_in_the_host_are_not_tokens(fastrender_module):
    plan = fastrender_module.compile_template('https://{"a"}.h/?x={externalid}')
    assert plan.render({"externalid": "1"}) == 'https://{"a"}.h/?x=1'


def test_unknown_keep_leaves_unknown_tokens_as_text(fastrender_module):
    template = "https://ts.example/?a={nope}&b={externalid}&c={var}&d={Nope:x}&e={zz|md5}"
    plan = fastrender_module.compile_template(template, unknown="keep")
    assert plan.tokens == ("externalid",)
    assert plan.render({"externalid": "x y"}) == (
        "https://ts.example/?a={nope}&b=x%20y&c={var}&d={Nope:x}&e={zz|md5}"
    )


def test_unknown_keep_in_the_host_is_literal(fastrender_module):
    plan = fastrender_module.compile_template("https://{nope}.h/{var1}", unknown="keep")
    assert plan.render({"var1": "v"}) == "https://{nope}.h/v"


def test_unknown_keep_still_checks_known_tokens(fastrender_module):
    error = _error(fastrender_module, "https://{externalid}.h/", unknown="keep")
    assert error.position == 8
    error = _error(fastrender_module, BASE + "{externalid|md6}", unknown="keep")
    assert error.position == len(BASE) + len("{externalid|")


@pytest.mark.parametrize(
    ("token", "fragment", "message"),
    [
        ("{externalid|md6}", "md6", "unknown modifier |md6 at {}; did you mean |md5?"),
        ("{externalid|upper|zzz}", "zzz", "unknown modifier |zzz at {}"),
        ("{externalid|raw|md5}", "raw", "modifier |raw at {} must be the last modifier"),
        ("{externalid|raw|raw}", "raw", "modifier |raw at {} must be the last modifier"),
        ("{externalid|raw:x}", "raw", "modifier |raw at {} takes no argument"),
        ("{externalid|md5:x}", "md5", "modifier |md5 at {} takes no argument"),
        ("{externalid|map}", "map", "modifier |map at {} needs a list, e.g. |map:approved=1,*=0"),
        ("{externalid|map:a}", "map", "modifier |map at {}: 'a' is not KEY=VALUE"),
        ("{var:x|upper|map:a=1,b}", "map", "modifier |map at {}: 'b' is not KEY=VALUE"),
    ],
)
def test_modifier_errors(fastrender_module, token, fragment, message):
    template = BASE + token
    position = template.index("|" + fragment) + 1
    error = _error(fastrender_module, template)
    assert error.position == position
    assert str(error) == message.format(position)


def test_modifier_grammar_misses_are_literal_text(fastrender_module):
    # Upper-case modifier names and empty modifiers do not match the grammar.
    template = BASE + "{externalid|MD5}{externalid|}{externalid |md5}"
    plan = fastrender_module.compile_template(template)
    assert plan.tokens == ()
    assert plan.render({}) == template


@pytest.mark.parametrize(
    ("options", "exception"),
    [
        ({"dialect": "voluum"}, ValueError),
        ({"unknown": "drop"}, ValueError),
    ],
)
def test_bad_options(fastrender_module, options, exception):
    with pytest.raises(exception) as info:
        fastrender_module.compile_template(BASE, **options)
    assert not isinstance(info.value, TemplateError)


@pytest.mark.parametrize("template", [b"https://h/", None, 42])
def test_template_must_be_str(fastrender_module, template):
    with pytest.raises(TypeError, match="template must be str"):
        fastrender_module.compile_template(template)


def test_template_with_a_lone_surrogate(fastrender_module):
    error = _error(fastrender_module, "https://h/\ud800?x={var1}")
    assert error.position == len("https://h/")


def test_options_are_keyword_only(fastrender_module):
    with pytest.raises(TypeError):
        fastrender_module.compile_template(BASE, "binom")


@pytest.mark.parametrize(
    "template",
    [
        " https://{externalid}.h/",
        "\x00\x1f https://{externalid}.h/",
        "\thttps://{externalid}.h/",
        "ht\ttps://{externalid}.h/",
        "https:/\n/{externalid}.h/",
        "https:\\\\{externalid}.h/",
        "https:/\\{externalid}.h/",
        "https:/{externalid}.h/",
        "https:{externalid}.h/",
        "https:///{externalid}.h/",
        "HTTPS://{externalid}.h/",
        "wss://{externalid}/",
        "ftp://u@{externalid}/",
    ],
)
def test_lenient_url_spellings_cannot_put_a_token_in_the_host(fastrender_module, template):
    error = _error(fastrender_module, template)
    assert error.position == template.index("{")


@pytest.mark.parametrize(
    "template",
    [
        "https://h\\{externalid}",  # a backslash ends a special scheme's host
        "https://h/\t{externalid}",
        "mailto:\\\\{externalid}",  # not a special scheme: backslashes are data
        "urn:{externalid}",
    ],
)
def test_lenient_reading_still_accepts_tokens_after_the_host(fastrender_module, template):
    assert fastrender_module.compile_template(template).tokens == ("externalid",)
