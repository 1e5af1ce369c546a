"""What a read asks for: query parameters and opaque keyset cursors, validated, or a 422 that says why.

A cursor is base64url JSON of the last row's sort key and id (for history, its version); it also names
the sort it was made for, so it cannot be replayed against another order.
"""

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from query_api.errors import InvalidQuery

SORT_FIELDS = ("last_name", "first_name", "email", "updated_at")
SORTS = tuple(sort for field in SORT_FIELDS for sort in (field, f"-{field}"))
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_SEARCH_LENGTH = 200
MAX_ID = 2**63 - 1
MAX_VERSION = 2**31 - 1


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
class HistoryQuery:
    limit: int
    before_version: int | None = None


def parse_list_query(args: Mapping[str, str]) -> ListQuery:
    errors: list[dict[str, str]] = []
    limit = _limit(args, errors)
    search = _search(args, errors)
    sort_name = args.get("sort") or "last_name"
    if sort_name not in SORTS:
        errors.append({"field": "sort", "message": f"sort by one of {', '.join(SORTS)}"})
        sort_name = "last_name"
    sort = Sort(sort_name.lstrip("-"), sort_name.startswith("-"))
    after = None
    if "cursor" in args:
        after = _decode_list_cursor(args["cursor"], sort, errors)
    if errors:
        raise InvalidQuery(errors)
    return ListQuery(search, sort, limit, after)


def parse_history_query(args: Mapping[str, str]) -> HistoryQuery:
    errors: list[dict[str, str]] = []
    limit = _limit(args, errors)
    before = None
    if "cursor" in args:
        cursor = _decode(args["cursor"])
        before = cursor.get("v") if isinstance(cursor, dict) else None
        if not (type(before) is int and 0 < before <= MAX_VERSION):
            errors.append({"field": "cursor", "message": "not a cursor of this history; use next_cursor as given"})
    if errors:
        raise InvalidQuery(errors)
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
    search = args.get("search", "").strip()
    if len(search) > MAX_SEARCH_LENGTH:
        errors.append({"field": "search", "message": f"at most {MAX_SEARCH_LENGTH} characters"})
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in search):
        errors.append({"field": "search", "message": "control characters cannot be searched for"})
    return search or None


def _decode_list_cursor(raw: str, sort: Sort, errors: list[dict[str, str]]) -> After | None:
    cursor = _decode(raw)
    if not isinstance(cursor, dict) or set(cursor) != {"s", "k", "i"}:
        errors.append({"field": "cursor", "message": "not a cursor of this list; use next_cursor as given"})
        return None
    if cursor["s"] != sort.name:
        errors.append({"field": "cursor", "message": f"this cursor pages sort={cursor['s']}, not sort={sort.name}"})
        return None
    key, contact_id = cursor["k"], cursor["i"]
    if sort.field == "updated_at" and isinstance(key, str):
        try:
            key = datetime.fromisoformat(key)
        except ValueError:
            key = None
    if (
        not isinstance(key, str | datetime)
        or (isinstance(key, datetime) and key.tzinfo is None)
        or type(contact_id) is not int
        or not 0 < contact_id <= MAX_ID
    ):
        errors.append({"field": "cursor", "message": "not a cursor of this list; use next_cursor as given"})
        return None
    return After(key, contact_id)


def _encode(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(raw: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error):
        return None
