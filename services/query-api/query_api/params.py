"""What a read asks for: query parameters and opaque keyset cursors, validated, or a 422 that says why.

A cursor is base64url JSON of the last row's sort key and id (for history, its version); it also names
the sort it was made for, so it cannot be replayed against another order. One of base64url's shape that
is not a cursor we issued for this list is a 404 (the page it names is not one we know); any other is a 422.
"""

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from query_api.errors import InvalidQuery, UnknownCursor

SORT_FIELDS = ("last_name", "first_name", "email", "updated_at")
SORTS = tuple(sort for field in SORT_FIELDS for sort in (field, f"-{field}"))
EXPORT_FORMATS = ("csv", "vcard")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_SEARCH_LENGTH = 200
MAX_ID = 2**63 - 1
MAX_VERSION = 2**31 - 1
#: What a search term may hold (no control characters), as the OpenAPI document states it.
SEARCH_PATTERN = "^[^\\x00-\\x1f\\x7f]*$"
_CONTROL = re.compile("[\x00-\x1f\x7f]")
#: The shape of every cursor we issue (unpadded base64url), as the OpenAPI document states it.
CURSOR_PATTERN = "^[A-Za-z0-9_-]+$"
_CURSOR = re.compile(CURSOR_PATTERN)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_NOT_THIS_LIST = "not a cursor of this list; use next_cursor as given"


@dataclass(frozen=True)
class Sort:
    field: str
    descending: bool

    @property
    def name(self) -> str:
        return f"-{self.field}" if self.descending else self.field


@dataclass(frozen=True)
class After:
    """The position just past the previous page: its last row's sort key and id."""

    key: str | datetime
    id: int


@dataclass(frozen=True)
class ListQuery:
    search: str | None
    sort: Sort
    limit: int
    after: After | None = None


@dataclass(frozen=True)
class ExportQuery:
    """The whole list, or a search of it, in one sort order, as a file of `format` (SPEC §11)."""

    format: str
    search: str | None
    sort: Sort


@dataclass(frozen=True)
class HistoryQuery:
    limit: int
    before_version: int | None = None


def parse_list_query(args: Mapping[str, str]) -> ListQuery:
    errors: list[dict[str, str]] = []
    limit = _limit(args, errors)
    search = _search(args, errors)
    sort = _sort(args, errors)
    cursor = _cursor(args, errors)
    if errors:
        raise InvalidQuery(errors)
    return ListQuery(search, sort, limit, None if cursor is None else _list_position(_decode(cursor), sort))


def parse_export_query(args: Mapping[str, str]) -> ExportQuery:
    """`format` (csv, the default, or vcard), and `search` and `sort` as a list has them."""
    errors: list[dict[str, str]] = []
    export_format = args.get("format", "csv")
    if export_format not in EXPORT_FORMATS:
        errors.append({"field": "format", "message": f"one of {', '.join(EXPORT_FORMATS)}"})
    search = _search(args, errors)
    sort = _sort(args, errors)
    if errors:
        raise InvalidQuery(errors)
    return ExportQuery(export_format, search, sort)


def _sort(args: Mapping[str, str], errors: list[dict[str, str]]) -> Sort:
    sort_name = args.get("sort", "last_name")
    if sort_name not in SORTS:
        errors.append({"field": "sort", "message": f"sort by one of {', '.join(SORTS)}"})
        sort_name = "last_name"
    return Sort(sort_name.lstrip("-"), sort_name.startswith("-"))


def parse_history_query(args: Mapping[str, str]) -> HistoryQuery:
    errors: list[dict[str, str]] = []
    limit = _limit(args, errors)
    cursor = _cursor(args, errors)
    if errors:
        raise InvalidQuery(errors)
    if cursor is None:
        return HistoryQuery(limit)
    decoded = _decode(cursor)
    before = decoded.get("v") if isinstance(decoded, dict) else None
    if not (type(before) is int and 0 < before <= MAX_VERSION):
        raise UnknownCursor("not a cursor of this history; use next_cursor as given")
    return HistoryQuery(limit, before)


def list_cursor(sort: Sort, key: str | datetime, contact_id: int) -> str:
    value = key.isoformat() if isinstance(key, datetime) else key
    return _encode({"s": sort.name, "k": value, "i": contact_id})


def history_cursor(version: int) -> str:
    return _encode({"v": version})


def _limit(args: Mapping[str, str], errors: list[dict[str, str]]) -> int:
    raw = args.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_LIMIT:
        return int(raw)
    errors.append({"field": "limit", "message": f"an integer from 1 to {MAX_LIMIT}"})
    return DEFAULT_LIMIT


def _search(args: Mapping[str, str], errors: list[dict[str, str]]) -> str | None:
    """The search term, trimmed; its length and characters are checked as given, as the document states them."""
    search = args.get("search", "")
    if len(search) > MAX_SEARCH_LENGTH:
        errors.append({"field": "search", "message": f"at most {MAX_SEARCH_LENGTH} characters"})
    elif _CONTROL.search(search):
        errors.append({"field": "search", "message": "control characters cannot be searched for"})
    return search.strip() or None


def _cursor(args: Mapping[str, str], errors: list[dict[str, str]]) -> str | None:
    """The `cursor` given, if it has a cursor's shape (else a 422)."""
    raw = args.get("cursor")
    if raw is not None and not _CURSOR.fullmatch(raw):
        errors.append({"field": "cursor", "message": "a cursor is unpadded base64url; use next_cursor as given"})
        return None
    return raw


def _list_position(cursor: Any, sort: Sort) -> After:
    if not isinstance(cursor, dict) or set(cursor) != {"s", "k", "i"}:
        raise UnknownCursor(_NOT_THIS_LIST)
    if cursor["s"] != sort.name:
        raise UnknownCursor(f"this cursor pages sort={cursor['s']}, not sort={sort.name}")
    key, contact_id = cursor["k"], cursor["i"]
    if sort.field == "updated_at" and isinstance(key, str):
        try:
            key = datetime.fromisoformat(key)
        except ValueError:
            key = None
    if (
        not ((isinstance(key, datetime) and key.tzinfo is not None) or (isinstance(key, str) and _storable(key)))
        or type(contact_id) is not int
        or not 0 < contact_id <= MAX_ID
    ):
        raise UnknownCursor(_NOT_THIS_LIST)
    return After(key, contact_id)


def _storable(text: str) -> bool:
    """Whether PostgreSQL can take `text` (no NUL, no lone surrogate), as it took every sort key we issue."""
    return _UNSTORABLE.search(text) is None


def _encode(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(raw: str) -> Any:
    """What a cursor holds; None if it holds no JSON."""
    try:
        return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error, RecursionError):  # RecursionError: JSON nested too deep
        return None
