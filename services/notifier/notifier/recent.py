"""The recent events of the stream, bounded, so a client that reconnects can be given what it missed."""

from bisect import bisect_right


class RecentEvents:
    """Where this instance stands in the stream (`epoch`, `head`) and the events after `floor`.

    Every event of the epoch with a seq in (`floor`, `head`] that reached this instance is held, so
    a client positioned at or after `floor` can be resumed exactly; one before it cannot. The oldest
    events are let go once more than `capacity` are held (in bulk, by at most an eighth more).
    """

    def __init__(self, capacity: int) -> None:
        self.epoch: str | None = None
        self.head = 0
        self.floor = 0
        self.capacity = capacity
        self._slack = capacity // 8
        self._seqs: list[int] = []
        self._frames: list[bytes] = []

    def restart(self, epoch: str, seq: int) -> None:
        """Stand at `seq` of `epoch`, holding nothing: no event before it can be supplied."""
        self.epoch, self.head, self.floor = epoch, seq, seq
        self._seqs.clear()
        self._frames.clear()

    def append(self, seq: int, frame: bytes) -> None:
        assert seq > self.head, "events are appended in seq order"
        self._seqs.append(seq)
        self._frames.append(frame)
        self.head = seq
        excess = len(self._seqs) - self.capacity
        if excess > self._slack:
            self.floor = self._seqs[excess - 1]
            del self._seqs[:excess], self._frames[:excess]

    def has_seen(self, seq: int) -> bool:
        """Whether an event at `seq` of this epoch is held or lies before what this instance holds."""
        if seq <= self.floor:
            return True
        index = bisect_right(self._seqs, seq)
        return index > 0 and self._seqs[index - 1] == seq

    def after(self, epoch: str | None, seq: int, limit: int) -> list[tuple[int, bytes]] | None:
        """Up to `limit` events after `seq`, oldest first; None when this instance cannot supply them all."""
        if epoch != self.epoch or seq < self.floor:
            return None
        start = bisect_right(self._seqs, seq)
        return list(zip(self._seqs[start : start + limit], self._frames[start : start + limit], strict=True))

    def __len__(self) -> int:
        return len(self._seqs)
