"""The events the service shows, read from the JSONL event files that ``analyze`` and ``watch`` write.

The JSONL file is the complete record: every record goes there in the same call that puts it in the
outbox, and the outbox forgets delivered records after ``keep_delivered_days``, so only the JSONL is
read. Files are read again from where they were left when they grow (a live ``watch`` appends), and from
the start when they were rewritten (``analyze`` truncates its ``--events`` file). An event's ``start``
and ``end`` records share its id and merge into one :class:`EventView`; the same record in several files
(a second ``jsonl`` sink) counts once.

Example::

    store = EventStore([Path("out/events.jsonl")])
    page = store.query(EventQuery(camera="cam1", min_score=2.0), limit=20)
    store.media(page.events[0].id, "thumbnail")     # a Path under out/, or None
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

MediaKind = Literal["thumbnail", "clip"]
EVENT_TYPES = ("start", "end", "camera_tampering", "camera_tampering_end")
# A record of a later stage completes an earlier one with the same id, never the other way round.
_STAGE = {"start": 0, "camera_tampering": 0, "end": 1, "camera_tampering_end": 1}
STATUS_TYPES = ("camera_online", "camera_offline")


def parse_time(value: Any) -> float | None:
    """A record's time as a number: seconds into the video (batch) or seconds since the epoch (ISO)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        return moment.timestamp()
    return None


@dataclass
class EventView:
    """One event: its latest record merged over the earlier ones, and where it was read."""

    id: str
    record: dict[str, Any]  # the merged record, as the schema describes it
    file: Path  # the JSONL file of its latest record
    order: tuple[float, int]  # newest last: (wall-clock time, or the file's time for batch events; line)

    @property
    def camera(self) -> str:
        return str(self.record.get("camera") or self.record.get("source") or "")

    @property
    def type(self) -> str:
        return str(self.record.get("type"))

    @property
    def live(self) -> bool:
        """Live events carry ISO-8601 times; batch events carry seconds into the video."""
        return isinstance(self.record.get("start_time"), str)

    @property
    def start(self) -> float | None:
        return parse_time(self.record.get("start_time"))

    @property
    def end(self) -> float | None:
        return parse_time(self.record.get("end_time"))

    @property
    def tampering(self) -> bool:
        return self.type.startswith("camera_tampering")

    @property
    def open(self) -> bool:
        """Still going: a live event not ended yet, or a live tampering episode not over yet."""
        return self.type == "start" or (
            self.type == "camera_tampering" and self.record.get("end_time") is None
        )

    @property
    def peak_score(self) -> float:
        value = self.record.get("score" if self.tampering else "peak_score")
        return float(value) if isinstance(value, int | float) else 0.0


@dataclass
class CameraView:
    camera: str
    state: str  # online, offline, or unknown (no status record: a recorded video)
    since: str | None  # time of the latest status record
    message: str
    events: int
    open_events: int
    last_event: str | float | None  # start_time of its newest event


@dataclass
class EventQuery:
    """Filters of the event list; None means no filter. ``since``/``until`` select events that overlap
    the range: datetimes apply to live events, numbers (seconds into the video) to batch events."""

    camera: str | None = None
    type: str | None = None
    min_score: float | None = None
    since: float | dt.datetime | None = None
    until: float | dt.datetime | None = None
    ids: set[str] | None = None  # only these (e.g. the events marked false positive)
    exclude: set[str] | None = None


@dataclass
class Page:
    total: int
    events: list[EventView]


@dataclass
class _FileState:
    inode: int = -1
    offset: int = 0
    mtime: float = 0.0
    head: bytes = b""  # the file's first bytes when read: a rewrite of the same size shows here
    records: list[dict[str, Any]] = field(default_factory=list)


def _bound(value: float | dt.datetime | None) -> tuple[bool, float] | None:
    """(is a wall-clock time, as seconds) of a query bound."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return True, moment.timestamp()
    return False, float(value)


class EventStore:
    """All events of the configured JSONL files and folders, kept up to date on each call."""

    def __init__(self, sources: Sequence[Path]) -> None:
        self.sources = [Path(s) for s in sources]
        self.roots = [(s if s.is_dir() else s.parent).resolve() for s in self.sources]
        self._files: dict[Path, _FileState] = {}
        self._lock = threading.Lock()
        self._events: dict[str, EventView] = {}
        self._status: dict[str, dict[str, Any]] = {}
        self.skipped_lines = 0

    def files(self) -> list[Path]:
        found: list[Path] = []
        for source in self.sources:
            if source.is_dir():
                found += sorted(p for p in source.rglob("*.jsonl") if p.is_file())
            elif source.is_file():
                found.append(source)
        return list(dict.fromkeys(found))

    def refresh(self) -> None:
        """Read what was appended to the files since the last call (all of a file that was rewritten)."""
        with self._lock:
            changed = False
            present = self.files()
            for gone in set(self._files) - set(present):
                del self._files[gone]
                changed = True
            for path in present:
                changed |= self._read(path)
            if changed:
                self._rebuild()

    def _read(self, path: Path) -> bool:
        try:
            stat = path.stat()
        except OSError:
            return False
        state = self._files.setdefault(path, _FileState())
        if stat.st_size == state.offset and state.mtime == stat.st_mtime and stat.st_ino == state.inode:
            return False
        try:
            with path.open("rb") as fh:
                head = fh.read(len(state.head))
                if stat.st_ino != state.inode or stat.st_size < state.offset or head != state.head:
                    state.inode, state.offset, state.records = stat.st_ino, 0, []
                fh.seek(state.offset)
                data = fh.read()
        except OSError as err:
            log.warning("cannot read %s: %s", path, err)
            return False
        state.mtime = stat.st_mtime
        if state.offset == 0:
            state.head = data[:4096]
        complete = data.rfind(b"\n") + 1  # a line still being written is read next time
        state.offset += complete
        for line in data[:complete].splitlines():
            record = self._parse(line)
            if record is not None:
                state.records.append(record)
        return True

    def _parse(self, line: bytes) -> dict[str, Any] | None:
        if not line.strip():
            return None
        try:
            record = json.loads(line)
        except ValueError:
            self.skipped_lines += 1
            return None
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            self.skipped_lines += 1
            return None
        if record.get("type") not in EVENT_TYPES + STATUS_TYPES:
            self.skipped_lines += 1
            return None
        return record

    def _rebuild(self) -> None:
        events: dict[str, EventView] = {}
        status: dict[str, dict[str, Any]] = {}
        line = 0
        for path, state in self._files.items():
            for record in state.records:
                line += 1
                if record["type"] in STATUS_TYPES:
                    camera = str(record.get("camera", ""))
                    known = status.get(camera)
                    if known is None or (parse_time(record.get("time")) or 0) >= (
                        parse_time(known.get("time")) or 0
                    ):
                        status[camera] = record
                    continue
                event_id = record["id"]
                view = events.get(event_id)
                if view is None:
                    start = record.get("start_time")
                    wall = parse_time(start) if isinstance(start, str) else state.mtime
                    events[event_id] = EventView(event_id, dict(record), path, (wall or 0.0, line))
                elif _STAGE[record["type"]] >= _STAGE.get(view.type, 0):
                    view.record.update(record)  # the end record completes the start record
                    view.file = path
        self._events, self._status = events, status

    def get(self, event_id: str) -> EventView | None:
        self.refresh()
        return self._events.get(event_id)

    def all(self) -> list[EventView]:
        self.refresh()
        return sorted(self._events.values(), key=lambda v: v.order, reverse=True)

    def query(self, q: EventQuery, offset: int = 0, limit: int | None = None) -> Page:
        """Events matching ``q``, newest first."""
        since, until = _bound(q.since), _bound(q.until)
        matches = [v for v in self.all() if self._matches(v, q, since, until)]
        end = None if limit is None else offset + limit
        return Page(len(matches), matches[offset:end])

    @staticmethod
    def _matches(
        v: EventView, q: EventQuery, since: tuple[bool, float] | None, until: tuple[bool, float] | None
    ) -> bool:
        if q.camera is not None and v.camera != q.camera:
            return False
        if q.type is not None and v.type != q.type:
            return False
        if q.min_score is not None and v.peak_score < q.min_score:
            return False
        if q.ids is not None and v.id not in q.ids:
            return False
        if q.exclude is not None and v.id in q.exclude:
            return False
        start, end = v.start, v.end
        if since is not None and (since[0] != v.live or end is None or end < since[1]):
            return False
        return until is None or (until[0] == v.live and start is not None and start <= until[1])

    def cameras(self) -> list[CameraView]:
        events = self.all()
        names = sorted({v.camera for v in events} | set(self._status))
        out = []
        for name in names:
            mine = [v for v in events if v.camera == name]
            status = self._status.get(name)
            state = "unknown" if status is None else status["type"].removeprefix("camera_")
            out.append(
                CameraView(
                    camera=name,
                    state=state,
                    since=None if status is None else status.get("time"),
                    message="" if status is None else str(status.get("message", "")),
                    events=len(mine),
                    open_events=sum(1 for v in mine if v.open),
                    last_event=mine[0].record.get("start_time") if mine else None,
                )
            )
        return out

    def media(self, event_id: str, kind: MediaKind) -> Path | None:
        """The event's thumbnail or clip, if it exists under one of the sources' folders (never elsewhere)."""
        view = self.get(event_id)
        return None if view is None else self.media_of(view, kind)

    def media_of(self, view: EventView, kind: MediaKind) -> Path | None:
        """:meth:`media` of an event already looked up (no re-reading of the files)."""
        value = view.record.get(kind)
        if not isinstance(value, str) or not value:
            return None
        for candidate in self._candidates(Path(value), view.file):
            try:
                resolved = candidate.resolve(strict=True)
            except (OSError, RuntimeError):
                continue
            if resolved.is_file() and any(resolved.is_relative_to(root) for root in self.roots):
                return resolved
        return None

    @staticmethod
    def _candidates(path: Path, events_file: Path) -> Iterable[Path]:
        """Where a recorded path may be now: as written (absolute, or relative to where the pipeline ran,
        often the service's folder too), relative to the events file, or in the events file's
        ``<stem>_thumbnails`` folder (the service started elsewhere)."""
        yield path
        if not path.is_absolute():
            yield events_file.parent / path
        yield events_file.parent / f"{events_file.stem}_thumbnails" / path.name
