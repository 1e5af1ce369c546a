"""A WebSocket client run inside a notifier's container, on that instance's own /ws (nothing else reaches one
instance of a scaled service):

    docker exec -i <notifier container> python - TOKEN COUNT SECONDS < tests/compose/listen.py

prints the hello, then each contact event, one JSON line each, until COUNT events have come or SECONDS passed.
Only the standard library and `websockets` (the notifier's image has it).
"""

import json
import sys
import time

from websockets.sync.client import connect


def listen(token: str, count: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    with connect(f"ws://127.0.0.1:8003/ws?access_token={token}") as socket:
        print(socket.recv(timeout=10), flush=True)
        seen = 0
        while seen < count and (left := deadline - time.monotonic()) > 0:
            try:
                message = socket.recv(timeout=left)
            except TimeoutError:
                return
            if str(json.loads(message).get("type", "")).startswith("contact."):
                seen += 1
                print(message, flush=True)


if __name__ == "__main__":
    listen(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
