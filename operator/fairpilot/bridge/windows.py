"""Windows of prediction records: which records a ModelMonitor's next batch holds, and which
offsets may be committed. Plain objects, no Kafka, no store (bridge/predictions.py drives them).

One window is open per monitor and partition (`WindowKey`): records of one partition arrive in
offset order, so a monitor's windows of one partition hold consecutive runs of its records, and
the window's file name (`window_name`) says which: the same records make the same name, and the
highest last offset among a monitor's files of a partition (its *watermark*) says which of its
records are written already. A window closes when it holds `records` records, or `seconds`
after its first record came (by this process's clock), or early when the open windows together
hold more than `max_bytes` of records (the oldest first).

Offsets. A partition's offset may be committed up to the first record of its oldest window
that is not written yet (open, or closed and still being written), else up to what was
consumed. So a crash loses no record: the records of windows not yet written are read again,
and those of windows written already are skipped by the watermark (no line twice).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

MonitorKey = tuple[str, str, str]  # namespace, name, uid
TopicPartition = tuple[str, int]
WindowKey = tuple[MonitorKey, str, int]  # monitor, topic, partition

PREFIX, SUFFIX = "w-", ".jsonl"
# Offsets are written with leading zeros (an int64 has at most 19 digits): names then sort as
# their offsets do, which a listing that orders by time, then by name, relies on when two
# windows are written within one second (S3 lists times to the second).
OFFSET_DIGITS, PARTITION_DIGITS = 19, 5
MAX_TOPIC_IN_NAME = 100


def topic_in_name(topic: str) -> str:
    """The topic as a window's file name holds it: itself, or (a long one) a prefix and a hash,
    so that the name stays within the 255 bytes a file name may have."""
    if len(topic) <= MAX_TOPIC_IN_NAME:
        return topic
    digest = hashlib.sha256(topic.encode()).hexdigest()[:12]
    return f"{topic[: MAX_TOPIC_IN_NAME - 13]}~{digest}"


def window_name(topic: str, partition: int, first: int, last: int) -> str:
    """`w-<topic>-<partition>-<first offset>-<last offset>.jsonl`: one name per set of records."""
    return (
        f"{PREFIX}{topic_in_name(topic)}-{partition:0{PARTITION_DIGITS}d}-"
        f"{first:0{OFFSET_DIGITS}d}-{last:0{OFFSET_DIGITS}d}{SUFFIX}"
    )


_NAME = re.compile(rf"^{PREFIX}(.+)-(\d+)-(\d+)-(\d+){re.escape(SUFFIX)}$")


def parse_window_name(name: str) -> tuple[str, int, int, int] | None:
    """(topic as in the name, partition, first offset, last offset), or None for another file."""
    found = _NAME.match(name)
    if found is None:
        return None
    topic, partition, first, last = found.groups()
    return topic, int(partition), int(first), int(last)


def watermark(names: Iterable[str], topic: str, partition: int) -> int:
    """The last offset of `topic`/`partition` that a window among `names` holds; -1: none."""
    wanted = topic_in_name(topic)
    highest = -1
    for name in names:
        parsed = parse_window_name(name)
        if parsed is not None and parsed[0] == wanted and parsed[1] == partition:
            highest = max(highest, parsed[3])
    return highest


@dataclass
class Window:
    key: WindowKey
    opened: float  # when its first record came (the caller's clock, seconds)
    records: int  # the limits it closes at, as its monitor says now
    seconds: float
    items: list[tuple[int, Any]] = field(default_factory=list)  # (offset, record), in order
    size: int = 0  # bytes of the records, as consumed
    reason: str | None = None  # why it closed: count, time, memory

    @property
    def monitor(self) -> MonitorKey:
        return self.key[0]

    @property
    def topic(self) -> str:
        return self.key[1]

    @property
    def partition(self) -> int:
        return self.key[2]

    @property
    def first(self) -> int:
        return self.items[0][0]

    @property
    def last(self) -> int:
        return self.items[-1][0]

    @property
    def name(self) -> str:
        return window_name(self.topic, self.partition, self.first, self.last)


class Windows:
    """The open windows of every monitor and partition, and what may be committed."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.open: dict[WindowKey, Window] = {}
        self.closing: dict[WindowKey, list[Window]] = {}  # handed out, not written yet
        self.watermarks: dict[WindowKey, int] = {}
        self.buffered = 0  # bytes in open windows
        self.skipped = 0  # records found written already (a re-read after a restart)

    # -- the watermark: what a monitor's files of a partition hold already -----------------
    def knows(self, key: WindowKey) -> bool:
        return key in self.watermarks

    def learn(self, key: WindowKey, last_written: int) -> None:
        self.watermarks[key] = max(last_written, self.watermarks.get(key, -1))

    # -- records in, windows out -------------------------------------------------------------
    def add(
        self,
        key: WindowKey,
        offset: int,
        item: Any,
        size: int,
        *,
        records: int,
        seconds: float,
        now: float,
    ) -> list[Window]:
        """Put one record into its monitor's window of its partition; the windows it closes.

        A record at or below the watermark is in a written window already: skipped. The
        watermark must be known (`learn`) first."""
        if offset <= self.watermarks[key]:
            self.skipped += 1
            return []
        window = self.open.get(key)
        if window is None:
            window = self.open[key] = Window(key, now, records, seconds)
        window.records, window.seconds = records, seconds
        window.items.append((offset, item))
        window.size += size
        self.buffered += size
        closed = []
        if len(window.items) >= records:
            closed.append(self._close(key, "count"))
        while self.buffered > self.max_bytes and self.open:
            oldest = min(self.open.values(), key=lambda w: w.opened)
            closed.append(self._close(oldest.key, "memory"))
        return closed

    def due(self, now: float) -> list[Window]:
        """The windows whose time is up, oldest first."""
        late = sorted(
            (w for w in self.open.values() if now - w.opened >= w.seconds), key=lambda w: w.opened
        )
        return [self._close(w.key, "time") for w in late]

    def retune(self, limits: Callable[[MonitorKey], tuple[int, float] | None]) -> list[Window]:
        """Apply the monitors' limits as they are now: a window of a monitor that is gone (or
        no longer reads Kafka) is dropped, unwritten; one over a lowered count closes."""
        closed = []
        for key, window in list(self.open.items()):
            limit = limits(window.monitor)
            if limit is None:
                self._drop(key)
                continue
            window.records, window.seconds = limit
            if len(window.items) >= window.records:
                closed.append(self._close(key, "count"))
        return closed

    def written(self, window: Window) -> None:
        """`window` is in the store: its records no longer hold back the commit."""
        pending = self.closing.get(window.key, [])
        if window in pending:
            pending.remove(window)
        if not pending:
            self.closing.pop(window.key, None)
        self.learn(window.key, window.last)

    def revoke(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions another consumer takes over: their windows and watermarks are dropped
        (it reads the records again from the committed offset, and lists what is written)."""
        gone = set(partitions)
        for key in [k for k in self.open if (k[1], k[2]) in gone]:
            self._drop(key)
        for key in [k for k in self.closing if (k[1], k[2]) in gone]:
            del self.closing[key]
        for key in [k for k in self.watermarks if (k[1], k[2]) in gone]:
            del self.watermarks[key]

    # -- commits -----------------------------------------------------------------------------
    def hold(self, partition: TopicPartition) -> int | None:
        """The first offset of the partition that a window not yet written holds; None: none."""
        firsts = [w.first for k, w in self.open.items() if (k[1], k[2]) == partition]
        firsts += [
            w.first for k, ws in self.closing.items() if (k[1], k[2]) == partition for w in ws
        ]
        return min(firsts) if firsts else None

    def commits(self, consumed: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Per partition, the offset to commit: the next one to consume, unless a window not yet
        written holds a record before it."""
        offsets = {}
        for partition, position in consumed.items():
            held = self.hold(partition)
            offsets[partition] = position if held is None else min(position, held)
        return offsets

    # -- inside ------------------------------------------------------------------------------
    def _close(self, key: WindowKey, reason: str) -> Window:
        window = self.open.pop(key)
        window.reason = reason
        self.buffered -= window.size
        self.closing.setdefault(key, []).append(window)
        return window

    def _drop(self, key: WindowKey) -> None:
        window = self.open.pop(key)
        self.buffered -= window.size
