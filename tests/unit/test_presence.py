"""Presence without a network: who each client is told is on a contact, its bounds, and what instances say."""

import json
from collections.abc import Iterable
from typing import Any

import pytest
from notifier import messages
from notifier.access import Client
from notifier.presence import Announcement, ContactPresence, Presence, Present, merge
from websockets.asyncio.server import ServerConnection

from shared.identity import Caller
from shared.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tab(Client):
    """A connection as presence sees it: a caller, and the frames sent to it (no socket)."""

    def __init__(self, user_id: int, name: str, role: str = "editor") -> None:  # no super(): nothing to connect
        self.caller = Caller(user_id, f"user{user_id}", name, role, f"session-{user_id}", 0.0)
        self.frames: list[dict[str, Any]] = []

    def __hash__(self) -> int:
        return id(self)

    def users(self, contact_id: int) -> list[dict[str, Any]] | None:
        """What this tab was last told is on `contact_id` (None: nothing was said)."""
        said = [frame["users"] for frame in self.frames if frame["contact_id"] == contact_id]
        return said[-1] if said else None


def send(clients: Iterable[ServerConnection], frame: str) -> None:
    for client in clients:
        assert isinstance(client, Tab)
        client.frames.append(json.loads(frame))


def room(clock: Clock, **overrides: Any) -> tuple[Presence, list[Announcement]]:
    options = {"ttl": 20.0, "max_contacts": 3, "rate": 5.0, "burst": 4, **overrides}
    presence = Presence(send, clock=clock, **options)
    published: list[Announcement] = []
    presence.publish = published.append
    return presence, published


def say(presence: Presence, tab: Tab, contact_id: int, state: str | None) -> str | None:
    message = messages.parse_client_message(json.dumps({"type": "presence", "contact_id": contact_id, "state": state}))
    assert isinstance(message, messages.PresenceSet)
    return presence.announce(tab, message)


ADA, GRACE = {"id": 1, "name": "Ada Lovelace"}, {"id": 2, "name": "Grace Hopper"}


def test_every_client_is_told_who_is_on_a_contact_each_time_that_changes() -> None:
    presence, _ = room(Clock())
    ada, grace, viewer = Tab(1, "Ada Lovelace"), Tab(2, "Grace Hopper"), Tab(3, "Viewer", "viewer")
    for tab in (ada, grace, viewer):
        presence.join(tab)
    assert say(presence, ada, 42, "viewing") is None
    assert say(presence, grace, 42, "editing") is None
    assert viewer.users(42) == [{**ADA, "state": "viewing"}, {**GRACE, "state": "editing"}]
    frames = len(viewer.frames)
    assert say(presence, ada, 42, "viewing") is None
    assert len(viewer.frames) == frames, "no change, no message"
    presence.leave(grace)
    assert viewer.users(42) == [{**ADA, "state": "viewing"}]
    assert say(presence, ada, 42, None) is None
    assert viewer.users(42) == []


def test_a_client_that_joins_is_told_everyone_present_now() -> None:
    presence, _ = room(Clock())
    ada = Tab(1, "Ada Lovelace")
    presence.join(ada)
    say(presence, ada, 7, "viewing")
    say(presence, ada, 8, "editing")
    late = Tab(2, "Grace Hopper")
    presence.join(late)
    assert late.frames == [
        {"type": "presence", "contact_id": 7, "users": [{**ADA, "state": "viewing"}]},
        {"type": "presence", "contact_id": 8, "users": [{**ADA, "state": "editing"}]},
    ]


def test_one_person_in_two_tabs_is_shown_once_with_the_stronger_state() -> None:
    assert merge([Present(**ADA, state="viewing"), Present(**ADA, state="editing")]) == (
        Present(**ADA, state="editing"),
    )
    presence, _ = room(Clock())
    first, second, watcher = Tab(1, "Ada Lovelace"), Tab(1, "Ada Lovelace"), Tab(2, "Grace Hopper")
    for tab in (first, second, watcher):
        presence.join(tab)
    say(presence, first, 5, "viewing")
    say(presence, second, 5, "editing")
    assert watcher.users(5) == [{**ADA, "state": "editing"}]
    presence.leave(second)
    assert watcher.users(5) == [{**ADA, "state": "viewing"}]


def test_a_connection_is_on_at_most_max_contacts_and_a_refusal_changes_nothing() -> None:
    presence, _ = room(Clock(), max_contacts=2, burst=100)
    ada, watcher = Tab(1, "Ada Lovelace"), Tab(2, "Grace Hopper")
    presence.join(ada)
    presence.join(watcher)
    assert say(presence, ada, 1, "viewing") is None
    assert say(presence, ada, 2, "viewing") is None
    refused = say(presence, ada, 3, "viewing")
    assert refused is not None and "at most 2 contacts" in refused
    assert watcher.users(3) is None
    assert say(presence, ada, 2, "editing") is None, "a contact it is on may change state"
    assert say(presence, ada, 1, None) is None
    assert say(presence, ada, 3, "viewing") is None


def test_presence_messages_beyond_the_rate_are_refused_until_the_allowance_refills() -> None:
    clock = Clock()
    presence, _ = room(clock, rate=2.0, burst=3)
    ada = Tab(1, "Ada Lovelace")
    presence.join(ada)
    assert [say(presence, ada, 1, state) for state in ("viewing", "editing", "viewing")] == [None, None, None]
    refused = say(presence, ada, 1, "editing")
    assert refused is not None and "too many presence messages" in refused
    clock.now += 0.5
    assert say(presence, ada, 1, "editing") is None


def test_a_viewer_cannot_be_editing() -> None:
    presence, _ = room(Clock())
    viewer = Tab(3, "Viewer", "viewer")
    presence.join(viewer)
    assert say(presence, viewer, 1, "editing") == "a viewer cannot be editing a contact"
    assert say(presence, viewer, 1, "viewing") is None


def test_each_change_here_is_announced_for_its_contact_and_a_refresh_announces_them_all() -> None:
    presence, published = room(Clock())
    ada = Tab(1, "Ada Lovelace")
    presence.join(ada)
    say(presence, ada, 1, "viewing")
    say(presence, ada, 2, "editing")
    presence.leave(ada)
    assert [(a.instance, [(c.contact_id, [u.state for u in c.users]) for c in a.contacts]) for a in published] == [
        (presence.instance, [(1, ["viewing"])]),
        (presence.instance, [(2, ["editing"])]),
        (presence.instance, [(1, [])]),
        (presence.instance, [(2, [])]),
    ]
    assert all(a.ttl == 20.0 for a in published)
    assert list(presence.announcements()) == []


def test_an_instance_that_stops_withdraws_everyone_on_it() -> None:
    presence, published = room(Clock())
    ada = Tab(1, "Ada Lovelace")
    presence.join(ada)
    say(presence, ada, 1, "viewing")
    say(presence, ada, 2, "editing")
    published.clear()
    presence.withdraw()
    assert [(c.contact_id, c.users) for a in published for c in a.contacts] == [(1, []), (2, [])]


def announcement(instance: str, contact_id: int, users: list[dict[str, Any]], ttl: float = 20.0) -> Announcement:
    return Announcement(
        instance=instance,
        ttl=ttl,
        contacts=[ContactPresence(contact_id=contact_id, users=[Present(**u) for u in users])],
    )


def test_another_instances_presence_is_shown_until_it_runs_out_or_is_withdrawn() -> None:
    clock = Clock()
    presence, _ = room(clock)
    watcher = Tab(9, "Watcher")
    presence.join(watcher)
    presence.heard(announcement("other", 42, [{**GRACE, "state": "editing"}], ttl=5))
    assert watcher.users(42) == [{**GRACE, "state": "editing"}]
    clock.now += 4
    presence.heard(announcement("other", 42, [{**GRACE, "state": "editing"}], ttl=5))  # a refresh
    clock.now += 4
    presence.expire()
    assert watcher.users(42) == [{**GRACE, "state": "editing"}], "refreshed 4 s ago, good for 5"
    clock.now += 1
    presence.expire()
    assert watcher.users(42) == []

    presence.heard(announcement("other", 43, [{**GRACE, "state": "viewing"}]))
    presence.heard(announcement("other", 43, []))
    assert watcher.users(43) == []


def test_an_instance_ignores_its_own_announcements() -> None:
    presence, published = room(Clock())
    ada, watcher = Tab(1, "Ada Lovelace"), Tab(2, "Grace Hopper")
    presence.join(ada)
    presence.join(watcher)
    say(presence, ada, 1, "viewing")
    say(presence, ada, 1, None)
    frames = len(watcher.frames)
    presence.heard(published[0])  # its own, come back late
    assert len(watcher.frames) == frames


@pytest.mark.parametrize(
    "message",
    [
        '{"type": "presence", "contact_id": "42", "state": "viewing"}',
        '{"type": "presence", "contact_id": 0, "state": "viewing"}',
        '{"type": "presence", "contact_id": 1.0, "state": "viewing"}',
        '{"type": "presence", "contact_id": true, "state": "viewing"}',
        '{"type": "presence", "contact_id": 9223372036854775808, "state": "viewing"}',
        '{"type": "presence", "contact_id": 1, "state": "typing"}',
        '{"type": "presence", "contact_id": 1}',
    ],
)
def test_a_malformed_presence_message_is_a_client_message_error(message: str) -> None:
    with pytest.raises(messages.ClientMessageError, match="invalid presence"):
        messages.parse_client_message(message)


def test_the_default_ttl_and_keepalive_make_anyone_gone_within_30_seconds() -> None:
    defaults = Settings()
    assert defaults.notifier_presence_ttl_seconds + 1 <= 30  # a killed instance's, expired on a 1 s tick
    assert defaults.notifier_ping_interval_seconds + defaults.notifier_ping_timeout_seconds <= 30  # a silent tab's
