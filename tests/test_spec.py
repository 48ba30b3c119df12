"""The inline pipeline grammar: parse, print, parse again; errors point at the column."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from artfx.errors import SpecError
from artfx.spec import StepSpec, format_spec, parse_spec

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
values = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
bare_values = values.filter(lambda v: v != "")


@st.composite
def steps(draw):
    name = draw(names)
    keys = draw(st.lists(names, max_size=4, unique=True))
    params = tuple((k, draw(values)) for k in keys)
    bare = draw(st.none() | bare_values)
    return StepSpec(name, params, bare)


@settings(max_examples=300, deadline=None)
@given(st.lists(steps(), min_size=1, max_size=5))
def test_parse_print_parse_round_trip(spec_steps):
    text = format_spec(spec_steps)
    parsed = parse_spec(text)
    assert parsed == spec_steps
    assert format_spec(parsed) == text


def test_examples_from_the_design_notes():
    assert parse_spec("quantize,slic,style") == [StepSpec("quantize"), StepSpec("slic"), StepSpec("style")]
    s = parse_spec('quantize:k=8,slic:n=400:compactness=10,style:image="my photos/a,b.jpg"')
    assert s[0].params == (("k", "8"),)
    assert s[1].params == (("n", "400"), ("compactness", "10"))
    assert s[2].params == (("image", "my photos/a,b.jpg"),)
    assert parse_spec("quantize:8")[0].bare == "8"
    assert parse_spec("style:image=a.jpg|b.jpg:weights=1|0.45")[0].params == (
        ("image", "a.jpg|b.jpg"), ("weights", "1|0.45"))
    assert parse_spec("slic:edge-color=#ff0000")[0].params == (("edge_color", "#ff0000"),)
    assert parse_spec(" quantize , slic ") == [StepSpec("quantize"), StepSpec("slic")]


@pytest.mark.parametrize(
    "spec, column, words",
    [
        ("", None, "empty"),
        ("quantize,,slic", 10, "stage name"),
        ("quantize,", 10, "stage name"),
        ("Quantize", 1, "stage name"),
        ("quantize:k=8:k=9", 14, "twice"),
        ("quantize:k=8:9", 14, "first parameter"),
        ('style:image="a.jpg', 13, "unterminated"),
        ("quantize:=8", 10, "parameter name"),
        ("quantize:k=a=b", 13, "'='"),
        ("quantize;k=8", 9, "expected ','"),
        ("quantize:k=8 slic", 14, "expected ','"),
        ("quantize: k=8", 10, "unexpected space"),
    ],
)
def test_errors_name_the_column(spec, column, words):
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    assert words in str(err.value)
    assert err.value.column == column
    if column:
        assert f"column {column}" in str(err.value)
