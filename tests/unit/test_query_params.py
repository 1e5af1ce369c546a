"""query-api's parameters and cursors, without a server."""

import base64
from datetime import UTC, datetime

import pytest
from query_api.errors import InvalidQuery, UnknownCursor
from query_api.params import (
    After,
    Sort,
    history_cursor,
    list_cursor,
    parse_history_query,
    parse_list_query,
)
from query_api.views import like_pattern


def test_defaults_are_sort_by_last_name_fifty_rows_no_search() -> None:
    query = parse_list_query({"search": "   "})
    assert (query.search, query.sort, query.limit, query.after) == (None, Sort("last_name", False), 50, None)


@pytest.mark.parametrize(
    ("sort", "key"),
    [("last_name", "Müller"), ("-email", "a@b.example"), ("-updated_at", datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC))],
)
def test_a_cursor_brings_back_the_sort_key_and_id_it_was_made_from(sort: str, key: str | datetime) -> None:
    parsed = parse_list_query({"sort": sort})
    cursor = list_cursor(parsed.sort, key, 42)
    assert parse_list_query({"sort": sort, "cursor": cursor}).after == After(key, 42)


def test_a_cursor_of_another_sort_is_unknown() -> None:
    cursor = list_cursor(Sort("last_name", False), "Lovelace", 7)
    with pytest.raises(UnknownCursor) as refused:
        parse_list_query({"sort": "-last_name", "cursor": cursor})
    assert refused.value.problem()["errors"][0]["field"] == "cursor"


def _forged(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("cursor", ["", "%%%", "abc=", "a b", "a\x00"])
def test_a_cursor_not_shaped_like_one_is_a_422(cursor: str) -> None:
    with pytest.raises(InvalidQuery) as refused:
        parse_list_query({"cursor": cursor})
    assert [error["field"] for error in refused.value.problem()["errors"]] == ["cursor"]


@pytest.mark.parametrize(
    ("sort", "cursor"),
    [
        ("last_name", _forged(b'{"s":"last_name","k":"x","i":0}')),
        ("last_name", _forged(b'{"s":"last_name","k":"x","i":9223372036854775808}')),
        ("last_name", _forged(b'{"s":"last_name","k":1,"i":5}')),
        ("last_name", _forged(b'{"s":"last_name","k":"x\\u0000","i":5}')),
        ("last_name", _forged(b'{"s":"last_name","k":"\\ud800","i":5}')),
        ("last_name", _forged(b'["last_name","x",5]')),
        ("last_name", _forged(b"[" * 3000 + b"]" * 3000)),
        ("last_name", _forged(b"\xff not JSON")),
        ("last_name", "A"),
        ("updated_at", list_cursor(Sort("updated_at", False), "yesterday", 5)),
        ("updated_at", list_cursor(Sort("updated_at", False), "2026-01-02T03:04:05", 5)),
        ("-updated_at", _forged(b'{"s":"-updated_at","k":["2026-01-02T03:04:05Z"],"i":5}')),
    ],
)
def test_a_forged_or_damaged_cursor_of_a_cursors_shape_is_unknown(sort: str, cursor: str) -> None:
    """A 404 naming the cursor: the page it names is not one we know (and nothing of it reaches SQL)."""
    parse_list_query({"sort": sort})  # the sort itself is fine
    with pytest.raises(UnknownCursor) as refused:
        parse_list_query({"sort": sort, "cursor": cursor})
    assert refused.value.status == 404
    assert [error["field"] for error in refused.value.problem()["errors"]] == ["cursor"]


def test_every_bad_parameter_is_named_at_once() -> None:
    with pytest.raises(InvalidQuery) as refused:
        parse_list_query({"limit": "-1", "sort": "id", "search": "a\x00b", "cursor": "=="})
    assert [error["field"] for error in refused.value.problem()["errors"]] == ["limit", "search", "sort", "cursor"]
    assert refused.value.status == 422


@pytest.mark.parametrize("sort", ["", " last_name", "last_name\x00", "LAST_NAME", "--email"])
def test_a_sort_outside_its_enum_is_refused(sort: str) -> None:
    with pytest.raises(InvalidQuery) as refused:
        parse_list_query({"sort": sort})
    assert [error["field"] for error in refused.value.problem()["errors"]] == ["sort"]


@pytest.mark.parametrize("search", ["\tAda", "Ada\n", "A\x7fda", " " * 150 + "x" * 51])
def test_a_search_is_checked_as_given_not_as_trimmed(search: str) -> None:
    """Its control characters and length count before trimming, as the OpenAPI document says."""
    with pytest.raises(InvalidQuery):
        parse_list_query({"search": search})


def test_history_cursor_round_trips_and_rejects_foreign_cursors() -> None:
    assert parse_history_query({"cursor": history_cursor(3), "limit": "2"}).before_version == 3
    with pytest.raises(UnknownCursor):
        parse_history_query({"cursor": list_cursor(Sort("email", False), "x", 1)})
    with pytest.raises(InvalidQuery):
        parse_history_query({"cursor": "not=a=cursor"})


def test_like_wildcards_and_the_escape_character_are_taken_literally() -> None:
    assert like_pattern("50%_a\\b") == "50\\%\\_a\\\\b"
