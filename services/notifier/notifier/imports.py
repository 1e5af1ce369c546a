"""Import progress (SPEC §11), pushed to the importer's own connections only.

The import worker announces each batch as it commits (`NOTIFY import_progress`, in the batch's
transaction: command_api.store.ImportStore.advance); this listens on PostgreSQL, which the notifier
reads the stream's position from already, and sends `{"type": "import", "id", "status", "rows",
"created", "rejected"}` to every connection of the user who submitted the job. A notice missed while
the listener reconnects is made good by the next, and a client reads the whole job, with its rejected
rows, from `GET /api/imports/{id}`: these frames carry no `seq` and are never replayed.
"""

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Iterator

import psycopg
from prometheus_client import Counter
from websockets.asyncio.server import broadcast

from notifier.access import Client
from shared.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "import_progress"
SENT = Counter("notifier_import_progress_sent_total", "Import progress frames written to importers' connections")


class ImportProgress:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[int, set[Client]] = {}

    @contextlib.contextmanager
    def watching(self, client: Client) -> Iterator[None]:
        """While the block runs, the client gets the progress of its user's imports."""
        user_id = client.caller.id
        self._clients.setdefault(user_id, set()).add(client)
        try:
            yield
        finally:
            clients = self._clients.get(user_id, set())
            clients.discard(client)
            if not clients:
                self._clients.pop(user_id, None)

    async def run(self) -> None:
        """Stay listening: reconnect after any loss with capped, jittered exponential backoff."""
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._settings.database_url, autocommit=True, connect_timeout=5
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    failures = 0
                    async for notice in conn.notifies():
                        self.push(notice.payload)
            except (psycopg.Error, OSError) as error:
                log.warning("not listening for import progress: %s", error)
            failures += 1
            ceiling = min(self._settings.notifier_max_backoff_seconds, 0.25 * 2**failures)
            await asyncio.sleep(random.uniform(ceiling / 2, ceiling))

    def push(self, payload: str) -> None:
        """Send one notice to its importer's connections (a notice that is not one is logged and dropped)."""
        try:
            progress = json.loads(payload)
            owner = progress.pop("owner_id")
        except (ValueError, AttributeError, KeyError):
            log.warning("dropped a notice on %s that is not import progress", CHANNEL)
            return
        clients = self._clients.get(owner, set())
        if clients:
            broadcast(clients, json.dumps(progress))
            SENT.inc(len(clients))
