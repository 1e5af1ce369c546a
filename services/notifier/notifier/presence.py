"""Presence (SPEC §11): who is viewing or editing which contact, across every notifier instance.

An instance knows its own connections' presence exactly, and the other instances' from what they announce on
`contacts.presence` (presence_bus.py). An announcement names its instance and, for some contacts, the people
present on each there; it holds for its `ttl`. Each instance announces a contact as soon as its own set there
changes, and all of its contacts every third of the TTL; an entry not announced again within the TTL is
dropped, so the people on a killed instance are gone within it. Nothing is written anywhere.

Every client is sent `{"type": "presence", "contact_id", "users"}` whenever the set of people on a contact
changes (over all instances, each person once with the strongest state of their tabs), and right after its
hello one such message for each contact someone is on. A connection may be on at most `max_contacts`
contacts and send presence messages at `rate` a second (bursts of `burst`); a message beyond either, or
`editing` from a viewer, is answered with an error message and changes nothing.
"""

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Literal

from prometheus_client import Counter, Gauge
from pydantic import BaseModel, Field, StrictInt, StringConstraints
from websockets.asyncio.server import ServerConnection

from notifier import messages
from notifier.access import Client
from shared.identity import Caller

#: Contacts per announcement: a refresh of many contacts goes out in several.
ANNOUNCE_CHUNK = 500
#: From weakest to strongest: a person with one tab viewing and another editing is editing.
STATES = ("viewing", "editing")

PRESENT = Gauge("notifier_presence_contacts", "Contacts someone is on, over every instance")
REFUSED = Counter("notifier_presence_refused_total", "Presence messages refused", ["reason"])

#: `send(clients, frame)`: write a frame to clients without waiting on any (Fanout.broadcast).
Send = Callable[[Iterable[ServerConnection], str], None]


class Present(BaseModel, frozen=True):
    """One person on a contact, as clients see them."""

    id: StrictInt
    name: str
    state: Literal["viewing", "editing"]


class ContactPresence(BaseModel):
    contact_id: Annotated[StrictInt, Field(ge=1, le=messages.MAX_CONTACT_ID)]
    users: Annotated[list[Present], Field(max_length=10_000)]  # empty: nobody on it at that instance any more


class Announcement(BaseModel):
    """What one instance says on `contacts.presence`: who is on these contacts there, for the next `ttl` s."""

    instance: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    ttl: Annotated[float, Field(gt=0, le=30)]
    contacts: Annotated[list[ContactPresence], Field(max_length=ANNOUNCE_CHUNK)]


Users = tuple[Present, ...]


def merge(people: Iterable[Present]) -> Users:
    """Each person once, with the strongest state any of their tabs has, in name order."""
    strongest: dict[int, Present] = {}
    for person in people:
        held = strongest.get(person.id)
        if held is None or STATES.index(person.state) > STATES.index(held.state):
            strongest[person.id] = person
    return tuple(sorted(strongest.values(), key=lambda person: (person.name, person.id)))


class TokenBucket:
    """`rate` a second, `burst` at once."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate, self._burst = rate, burst
        self._tokens, self._at = float(burst), now

    def take(self, now: float) -> bool:
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class _Tab:
    """One connection's presence: the contacts it is on, and its allowance of messages."""

    def __init__(self, caller: Caller, bucket: TokenBucket) -> None:
        self.caller = caller
        self.bucket = bucket
        self.states: dict[int, str] = {}


class Presence:
    def __init__(
        self,
        send: Send,
        ttl: float,
        max_contacts: int,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.instance = uuid.uuid4().hex
        self.ttl = ttl
        #: Puts an announcement on `contacts.presence`; the bus sets it while connected, else it is dropped.
        self.publish: Callable[[Announcement], None] = lambda _announcement: None
        self._send = send
        self._max_contacts = max_contacts
        self._rate, self._burst = rate, burst
        self._clock = clock
        self._tabs: dict[Client, _Tab] = {}
        self._here: dict[int, dict[Client, str]] = {}  # contact → this instance's connections on it
        self._there: dict[int, dict[str, tuple[Users, float]]] = {}  # contact → other instance → (users, until)
        self._shown: dict[int, Users] = {}  # contact → who clients were last told is on it (absent: nobody)
        PRESENT.set_function(lambda: len(self._shown))

    def join(self, client: Client) -> None:
        """Serve `client` presence: who is on each contact now, then every change."""
        self._tabs[client] = _Tab(client.caller, TokenBucket(self._rate, self._burst, self._clock()))
        for contact_id, users in self._shown.items():
            self._send([client], _frame(contact_id, users))

    def leave(self, client: Client) -> None:
        """`client` is gone: so is its presence, everywhere."""
        tab = self._tabs.pop(client, None)
        for contact_id in list(tab.states) if tab else ():
            self._set_here(client, contact_id, None)

    def announce(self, client: Client, message: messages.PresenceSet) -> str | None:
        """Apply a presence message of `client`'s; the error to answer it with when it is refused."""
        tab = self._tabs[client]
        contact_id, state = message.contact_id, message.state
        if not tab.bucket.take(self._clock()):
            REFUSED.labels("rate").inc()
            return f"too many presence messages: at most {self._rate:g} a second, {self._burst} at once"
        if state == "editing" and not tab.caller.may("editor"):
            REFUSED.labels("role").inc()
            return "a viewer cannot be editing a contact"
        if state is not None and contact_id not in tab.states and len(tab.states) >= self._max_contacts:
            REFUSED.labels("contacts").inc()
            return f"presence on at most {self._max_contacts} contacts at once: send state null for one first"
        if tab.states.get(contact_id) != state:
            self._set_here(client, contact_id, state)
        return None

    def heard(self, announcement: Announcement) -> None:
        """Another instance's announcement (our own come back too, and are ignored)."""
        if announcement.instance == self.instance:
            return
        until = self._clock() + announcement.ttl
        for entry in announcement.contacts:
            there = self._there.setdefault(entry.contact_id, {})
            if entry.users:
                there[announcement.instance] = (merge(entry.users), until)
            else:
                there.pop(announcement.instance, None)
            if not there:
                del self._there[entry.contact_id]
            self._show(entry.contact_id)

    def expire(self) -> None:
        """Forget what other instances have not announced again within its TTL."""
        now = self._clock()
        for contact_id, there in list(self._there.items()):
            gone = [instance for instance, (_, until) in there.items() if until <= now]
            for instance in gone:
                del there[instance]
            if not there:
                del self._there[contact_id]
            if gone:
                self._show(contact_id)

    def announcements(self, withdrawn: bool = False) -> Iterator[Announcement]:
        """This instance's whole presence, `ANNOUNCE_CHUNK` contacts an announcement; `withdrawn`: with nobody on
        any of them any more."""
        contact_ids = list(self._here)
        for start in range(0, len(contact_ids), ANNOUNCE_CHUNK):
            yield self._announcement(contact_ids[start : start + ANNOUNCE_CHUNK], withdrawn)

    def withdraw(self) -> None:
        """This instance is stopping: tell the others that its people are gone, rather than let them run out."""
        for announcement in self.announcements(withdrawn=True):
            self.publish(announcement)

    async def run(self) -> None:
        """Announce this instance's presence every third of the TTL; expire the others' as it runs out."""
        tick = min(1.0, self.ttl / 4)
        due = 0.0
        while True:
            self.expire()
            if self._clock() >= due:
                for announcement in self.announcements():
                    self.publish(announcement)
                due = self._clock() + self.ttl / 3
            await asyncio.sleep(tick)

    def _set_here(self, client: Client, contact_id: int, state: str | None) -> None:
        tab, here = self._tabs.get(client), self._here.setdefault(contact_id, {})
        if state is None:
            if tab:
                tab.states.pop(contact_id, None)
            here.pop(client, None)
            if not here:
                del self._here[contact_id]
        else:
            assert tab is not None
            tab.states[contact_id] = here[client] = state
        self.publish(self._announcement([contact_id]))
        self._show(contact_id)

    def _local(self, contact_id: int) -> Users:
        here = self._here.get(contact_id, {})
        return merge(
            Present(id=client.caller.id, name=client.caller.name, state=state) for client, state in here.items()
        )

    def _announcement(self, contact_ids: list[int], withdrawn: bool = False) -> Announcement:
        contacts = [
            ContactPresence(contact_id=contact_id, users=[] if withdrawn else list(self._local(contact_id)))
            for contact_id in contact_ids
        ]
        return Announcement(instance=self.instance, ttl=self.ttl, contacts=contacts)

    def _show(self, contact_id: int) -> None:
        """Tell every client who is on `contact_id`, if that changed."""
        there = (person for users, _ in self._there.get(contact_id, {}).values() for person in users)
        users = merge([*self._local(contact_id), *there])
        if users == self._shown.get(contact_id, ()):
            return
        if users:
            self._shown[contact_id] = users
        else:
            del self._shown[contact_id]
        self._send(list(self._tabs), _frame(contact_id, users))


def _frame(contact_id: int, users: Users) -> str:
    return messages.presence(contact_id, [person.model_dump() for person in users])
