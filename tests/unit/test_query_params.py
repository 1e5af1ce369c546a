"""query-api's parameters and cursors, without a server."""

import base64
from datetime import UTC, datetime

import pytest
from query_api.errors import InvalidQuery
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


def test_a_cursor_of_another_sort_is_refused() -> None:
    cursor = list_cursor(Sort("last_name", False), "Lovelace", 7)
    with pytest.raises(InvalidQuery) as refused:
        parse_list_query({"sort": "-last_name", "cursor": cursor})
    assert refused.value.problem()["errors"][0]["field"] == "cursor"


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "%%%",
        base64.urlsafe_b64encode(b'{"s":"last_name","k":"x","i":0}').decode(),
        base64.urlsafe_b64encode(b'{"s":"last_name","k":1,"i":5}').decode(),
        base64.urlsafe_b64encode(b'["last_name","x",5]').decode(),
        list_cursor(Sort("updated_at", False), "yesterday", 5),
    ],
)
def test_a_forged_or_damaged_cursor_is_a_422(cursor: str) -> None:
    with pytest.raises(InvalidQuery):
        parse_list_query({"sort": "updated_at" if "updated" in cursor else "last_name", "cursor": cursor})


def test_every_bad_parameter_is_named_at_once() -> None:
    with pytest.raises(InvalidQuery) as refused:
        parse_list_query({"limit": "-1", "sort": "id", "search": "a\x00b"})
    assert [error["field"] for error in refused.value.problem()["errors"]] == ["limit", "search", "sort"]
    assert refused.value.status == 422


def test_history_cursor_round_trips_and_rejects_foreign_cursors() -> None:
    assert parse_history_query({"cursor": history_cursor(3), "limit": "2"}).before_version == 3
    with pytest.raises(InvalidQuery):
        parse_history_query({"cursor": list_cursor(Sort("email", False), "x", 1)})


def test_like_wildcards_and_the_escape_character_are_taken_literally() -> None:
    assert like_pattern("50%_a\\b") == "50\\%\\_a\\\\b"
