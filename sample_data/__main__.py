"""`python -m sample_data [COUNT]` (`make seed`): COUNT realistic contacts (500 by default), so that a first
run is not an empty page.

Names come from Faker in several locales and scripts (Latin, Cyrillic, Greek, Arabic, Devanagari, Han,
Kana, Hangul), addresses at example domains (RFC 2606), phone numbers as Faker writes them for each locale,
kept only when the contact model takes them. The contacts go in as an import job of the write side
(`command_api.imports`): each is one ordinary write, with its version, its event (`source` `seed`) and its
history. The job is applied here, unless a running import worker (`make run`) claims it first; either way
this waits for it to end and prints its counts.
"""

import secrets
import sys
import time

import psycopg
from command_api.handlers import ContactHandlers
from command_api.imports import ImportWorker
from command_api.store import ImportStore
from faker import Faker
from psycopg.rows import dict_row
from pydantic import ValidationError

from shared.contact_files import write_csv
from shared.db import open_pool
from shared.logs import configure_logging
from shared.models import ContactData
from shared.settings import get_settings

LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "pt_BR", "it_IT", "pl_PL", "ru_RU", "el_GR",
           "ar_AA", "hi_IN", "zh_CN", "ja_JP", "ko_KR"]  # fmt: skip
#: Locales whose user names are not ASCII: their addresses get an en_US user name.
NON_LATIN = frozenset({"ru_RU", "el_GR", "ar_AA", "hi_IN", "zh_CN", "ja_JP", "ko_KR"})
ACTOR: dict[str, object] = {"id": None, "name": "sample data"}
DEFAULT_COUNT = 500


def contacts(count: int, seed: int | None = None) -> list[dict[str, str]]:
    """`count` contacts with emails no other run makes (a token of this run's in each)."""
    fake = Faker(LOCALES, use_weighting=False)
    if seed is not None:
        Faker.seed(seed)
    run = secrets.token_hex(3)
    made: list[dict[str, str]] = []
    while len(made) < count:
        locale = LOCALES[len(made) % len(LOCALES)]
        person = fake[locale]
        user = fake["en_US" if locale in NON_LATIN else locale].user_name()
        contact = {
            "first_name": person.first_name(),
            "last_name": person.last_name(),
            "email": f"{user}.{run}.{len(made)}@example.{('com', 'org', 'net')[len(made) % 3]}",
            "phone": person.phone_number(),
        }
        try:
            ContactData.model_validate(contact)
        except ValidationError:
            continue  # a phone with an extension, a user name no address can hold: make another
        made.append(contact)
    return made


def main(argv: list[str]) -> None:
    count = int(argv[0]) if argv else DEFAULT_COUNT
    settings = get_settings()
    configure_logging("seed", settings.log_level)
    content = "".join(write_csv(contacts(count))).encode()
    pool = open_pool(settings, name="seed")
    try:
        with psycopg.connect(settings.database_url, autocommit=True, row_factory=dict_row) as conn:
            store = ImportStore(conn)
            job_id = str(store.insert_job(None, ACTOR, "seed", None, "text/csv", content)["id"])
            ImportWorker(ContactHandlers(pool), settings).run_job(conn, job_id)
            while (job := store.job(job_id)) is not None and job["status"] == "running":
                time.sleep(0.5)  # an import worker claimed it first
    finally:
        pool.close()
    assert job is not None
    print(f"sample data: {job['created']} contacts added, {job['rejected']} rejected (import {job_id})")


if __name__ == "__main__":
    main(sys.argv[1:])
