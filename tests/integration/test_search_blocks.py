"""Search through search blocks (migration 0004) finds exactly what a scan of every row finds.

The blocks are cut small here (a few rows each), so that a search crosses many of them and their
Bloom summaries rule most of them out; the answer must not change with how the blocks are cut, nor
when a write and a cut meet.
"""

import itertools
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
import requests

from tests.conftest import Launch
from tests.support.data import new_contact
from tests.support.infra import Infra
from tests.support.processes import TIMEOUT_FACTOR, wait_until
from tests.support.read_side import start_query_api

pytestmark = pytest.mark.integration

BLOCKED_SORTS = ["last_name", "-last_name", "first_name", "-first_name", "email", "-email"]
# Every live contact's bits are in the bloom of its block, in each blocked sort order.
_BLOOM_VIOLATIONS = """
    SELECT count(*) FROM contacts AS c
    CROSS JOIN LATERAL (VALUES ('first_name', c.first_name), ('last_name', c.last_name), ('email', c.email))
        AS k (sort_field, sort_key)
    CROSS JOIN LATERAL (
        SELECT bloom FROM search_blocks AS b
        WHERE b.sort_field = k.sort_field AND (b.lo_key, b.lo_id) <= (k.sort_key COLLATE "und-x-icu", c.id)
        ORDER BY b.lo_key DESC, b.lo_id DESC LIMIT 1
    ) AS block
    WHERE c.deleted_at IS NULL
      AND block.bloom & search_text_mask(c.search_text) <> search_text_mask(c.search_text)"""


@pytest.fixture(scope="module")
def query_api(launch_for_module: Launch) -> str:
    return start_query_api(launch_for_module, name="query-api-for-blocks")


@pytest.fixture
def owner(infra: Infra) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(infra.database_url, autocommit=True) as conn:
        yield conn


def cut(conn: psycopg.Connection[Any], target: int) -> None:
    conn.execute("CALL rebuild_search_blocks(%s)", (target,))


def every_match(conn: psycopg.Connection[Any], term: str, sort: str) -> list[int]:
    """The oracle: every live contact whose search text contains the term, in the sort's order."""
    field, direction = sort.lstrip("-"), "DESC" if sort.startswith("-") else "ASC"
    rows = conn.execute(
        f"""SELECT id FROM contacts WHERE deleted_at IS NULL AND strpos(search_text, lower(%s)) > 0
            ORDER BY {field} COLLATE "und-x-icu" {direction}, id {direction}""",
        (term,),
    ).fetchall()
    return [row[0] for row in rows]


def paged(http: requests.Session, query_api: str, term: str, sort: str, limit: int = 40) -> list[int]:
    """Every page of a search, followed by cursor."""
    ids: list[int] = []
    params: dict[str, Any] = {"search": term, "sort": sort, "limit": limit}
    while True:
        reply = http.get(f"{query_api}/api/contacts", params=params, timeout=30)
        assert reply.status_code == 200, reply.text
        page = reply.json()
        ids += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            return ids
        params["cursor"] = page["next_cursor"]


def insert_contacts(conn: psycopg.Connection[Any], tag: str, count: int) -> None:
    """Contacts with few distinct last names, so that each sits in a long run of equal keys."""
    first = ["Xanthe", "Ysolde", "Zéphyrine", "Quintus", "Ondine"]
    last = ["Quokkabury", "Quokkabury", "Quokkabury", "Quollington", "Ångström-Quist", "O'Quinn", "Quist"]
    with conn.cursor() as cursor:
        cursor.executemany(
            """INSERT INTO contacts (first_name, last_name, email, phone, version, created_at, updated_at)
               VALUES (%s, %s, %s, %s, 1, now(), now())""",
            [
                (f, ln, f"{f[:3]}.{i}.{tag}@blocks.example", f"+1 555 {i:07d}")
                for i, (f, ln) in enumerate(itertools.islice(itertools.cycle(itertools.product(first, last)), count))
            ],
        )


def test_searches_through_blocks_find_every_match_once_in_order_however_the_blocks_are_cut(
    owner: psycopg.Connection[Any], command_api: str, query_api: str, http: requests.Session
) -> None:
    tag = uuid.uuid4().hex[:8]
    insert_contacts(owner, tag, 420)
    terms = [
        "quokkab",  # one run of equal last names: together in last-name order, spread in the others
        "ysol",  # a first name
        "ångström-q",  # non-ASCII, across a hyphen
        "o'quinn",  # an apostrophe
        "lde quo",  # across first and last name
        f"{tag}@blocks",  # in every email of this test
        "555 0000",  # phone digits
        "qu",  # shorter than a trigram: no block can be ruled out
        "quokkaburyx",  # nothing
    ]
    for target in (None, 16, 3):  # as the rows came (blocks not cut for them), then cut small, then smaller
        if target is not None:
            cut(owner, target)
        for term, sort in itertools.product(terms, BLOCKED_SORTS):
            assert paged(http, query_api, term, sort) == every_match(owner, term, sort), (target, term, sort)

    # Writes after the cut: new contacts, and renamed ones, are found by the new names, not the old.
    renamed = [row[0] for row in owner.execute("SELECT id FROM contacts WHERE last_name = 'Quist' LIMIT 5")]
    for contact_id in renamed:
        reply = http.patch(f"{command_api}/api/contacts/{contact_id}", json={"last_name": "Quagmire"}, timeout=10)
        assert reply.status_code == 200, reply.text
    for _ in range(3):
        contact = new_contact(last_name="Quokkabury", email=f"late.{uuid.uuid4().hex[:8]}.{tag}@blocks.example")
        assert http.post(f"{command_api}/api/contacts", json=contact, timeout=30).status_code == 201
    for term, sort in itertools.product(["quagmire", "quokkab", "quist", f"{tag}@blocks"], BLOCKED_SORTS):
        assert paged(http, query_api, term, sort) == every_match(owner, term, sort), (term, sort)
    assert owner.execute(_BLOOM_VIOLATIONS).fetchone() == (0,)


def waiting_on_search_blocks(conn: psycopg.Connection[Any]) -> bool:
    """Whether a session waits for a lock on search_blocks (a cut behind a write, or a write behind a cut)."""
    waiting = conn.execute("SELECT count(*) FROM pg_locks WHERE relation = 'search_blocks'::regclass AND NOT granted")
    return waiting.fetchone() == (1,)


def test_a_cut_waits_for_a_write_under_way_and_counts_it(
    owner: psycopg.Connection[Any], infra: Infra, query_api: str, http: requests.Session
) -> None:
    tag = uuid.uuid4().hex[:8]
    insert_contacts(owner, tag, 60)
    with (
        psycopg.connect(infra.database_url) as writer,
        psycopg.connect(infra.database_url) as cutter,
        ThreadPoolExecutor(1) as pool,
    ):
        insert_contacts(writer, f"{tag}-late", 1)  # its transaction stays open
        cutting = pool.submit(cut, cutter, 4)
        wait_until(lambda: waiting_on_search_blocks(owner), message="the cut to wait")
        writer.commit()
        cutting.result(timeout=60 * TIMEOUT_FACTOR)  # the cut's own failure fails the test
        cutter.commit()
    assert owner.execute(_BLOOM_VIOLATIONS).fetchone() == (0,)
    late = every_match(owner, f"{tag}-late@", BLOCKED_SORTS[0])
    assert len(late) == 1, "the write under way was committed"
    for sort in BLOCKED_SORTS:
        assert paged(http, query_api, f"{tag}-late@", sort) == late, sort


def test_a_write_waits_for_a_cut_under_way_and_lands_in_the_new_blocks(
    owner: psycopg.Connection[Any], infra: Infra, command_api: str, query_api: str, http: requests.Session
) -> None:
    tag = uuid.uuid4().hex[:8]
    insert_contacts(owner, tag, 60)

    def create() -> int:
        contact = new_contact(last_name=f"Quokkabury-{tag}", email=f"during.{tag}@blocks.example")
        reply = http.post(f"{command_api}/api/contacts", json=contact, timeout=60)
        assert reply.status_code == 201, reply.text
        return int(reply.json()["id"])

    with psycopg.connect(infra.database_url) as cutter, ThreadPoolExecutor(1) as pool:
        cut(cutter, 4)  # its transaction stays open
        writing = pool.submit(create)
        wait_until(lambda: waiting_on_search_blocks(owner), message="the write to wait")
        cutter.commit()
        created = writing.result(timeout=60 * TIMEOUT_FACTOR)  # the write's own failure fails the test
    assert every_match(owner, f"quokkabury-{tag}", BLOCKED_SORTS[0]) == [created]
    assert owner.execute(_BLOOM_VIOLATIONS).fetchone() == (0,)
    for sort in BLOCKED_SORTS:
        assert paged(http, query_api, f"quokkabury-{tag}", sort) == [created], sort
