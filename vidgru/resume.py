"""Resumable batch analysis: a manifest beside the events file records each clip once its results are
written, so that running the same analysis again skips what is complete and never writes a result twice.

The manifest (``<events stem>.manifest``, beside the events file; not ``.jsonl``, so that ``vidgru serve``
does not take it for events) is one JSON object per line. The first describes the run (model id, the
settings that change results, where scores go) and the sizes of the events JSONL and the scores CSV
before any clip. Each further line commits one clip: its path, size and modification time,
and the sizes of both outputs just after its results, written only once those results are flushed and
synced. On resume, both outputs are cut back to the sizes in the last complete line, so results of a clip
that was being written when the run died are dropped and written again, once; a torn last line of the
manifest itself is dropped the same way.

Example::

    manifest = RunManifest.open(Path("out/events.jsonl"), Path("out/scores.csv"), run_identity(model, cfg, scores))
    todo = manifest.remaining(clips)          # raises ResumeError if a completed clip's file changed
    manifest.start()                          # cut the outputs back to the last commit (or start them)
    ...write a clip's events and scores...
    manifest.commit(clip, frames=180, events=2)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidgru.errors import ResumeError
from vidgru.outputs import SCORES_HEADER
from vidgru.sources import Clip

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1


def manifest_path(events: Path) -> Path:
    return events.with_name(f"{events.stem}.manifest")


def run_identity(model_id: str, settings: dict[str, Any], scores: Path | None) -> dict[str, Any]:
    """What must not change between a run and its resumption: the model, the settings that change its
    results (``settings``: JSON-able, e.g. the events and tampering config) and where scores go."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {
        "model": model_id,
        "settings": digest,
        "scores": None if scores is None else str(scores.resolve()),
    }


@dataclass(frozen=True)
class ClipStamp:
    """Which file a clip was: its path, size and modification time (for a folder of frames: the sum of the
    frame files' sizes and the latest of their times)."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, clip: Clip) -> ClipStamp:
        files = clip.frame_paths() if clip.kind == "frames" else [clip.path]
        stats = [f.stat() for f in files]
        return cls(
            str(clip.path.resolve()),
            sum(s.st_size for s in stats),
            max((s.st_mtime_ns for s in stats), default=0),
        )


def _size(path: Path | None) -> int | None:
    return None if path is None else path.stat().st_size


def _sync(path: Path) -> None:
    """Make what was written to ``path`` (through any file object, already flushed) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _cut(path: Path, size: int) -> None:
    """Truncate ``path`` back to ``size`` bytes (what a committed state left)."""
    if path.stat().st_size > size:
        with path.open("r+b") as fh:
            fh.truncate(size)


class RunManifest:
    """The record of which clips an analysis into ``events`` (and ``scores``) has completed."""

    def __init__(self, events: Path, scores: Path | None, run: dict[str, Any]) -> None:
        self.events, self.scores, self.run = events, scores, run
        self.path = manifest_path(events)
        self.done: dict[str, dict[str, Any]] = {}  # clip name -> its commit line
        self._offsets: tuple[int, int | None] | None = None  # outputs' sizes at the last commit
        self._valid_bytes = 0  # the manifest's length up to its last complete line

    @classmethod
    def open(cls, events: Path, scores: Path | None, run: dict[str, Any], fresh: bool = False) -> RunManifest:
        """Read the manifest of an earlier run into ``events``, if any. ``fresh``: ignore it (the outputs
        are started again). Raises :class:`ResumeError` if that run used another model, other settings
        or another scores file."""
        manifest = cls(events, scores, run)
        if fresh:
            return manifest
        if not manifest.path.is_file():
            _refuse_foreign(events, scores, manifest.path)
            return manifest
        if not events.is_file():
            return manifest
        raw = manifest.path.read_bytes()
        lines, valid = [], 0
        for line in raw.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn by a crash while it was written: that clip was never committed
            try:
                lines.append(json.loads(line))
            except ValueError:
                break
            valid += len(line)
        if not lines or lines[0].get("manifest") != MANIFEST_VERSION:
            # No header made it to disk: nothing was committed, and the outputs, if they hold anything, are
            # not this kind of run's.
            _refuse_foreign(events, scores, manifest.path)
            return manifest
        header = lines[0]
        for key in ("model", "settings", "scores"):
            if header["run"].get(key) != run[key]:
                raise ResumeError(
                    f"{events} holds results of an earlier run with another {key} "
                    f"({header['run'].get(key)!r}, now {run[key]!r}); pass other --events/--scores paths, "
                    "or --fresh to analyse everything again into these"
                )
        if scores is not None and not scores.is_file():
            return manifest  # the scores file was removed: its committed part cannot be trusted either
        manifest._valid_bytes = valid
        manifest._offsets = (header["events_offset"], header["scores_offset"])
        for record in lines[1:]:
            manifest.done[record["clip"]] = record
            manifest._offsets = (record["events_offset"], record["scores_offset"])
        return manifest

    @property
    def resuming(self) -> bool:
        return self._offsets is not None

    def remaining(self, clips: Sequence[Clip]) -> list[Clip]:
        """The clips not yet complete, in order. A complete clip whose file has changed since is an error:
        analysing it again would leave its old results in the outputs beside the new ones."""
        todo = []
        for clip in clips:
            record = self.done.get(clip.name)
            if record is None:
                todo.append(clip)
                continue
            stamp = ClipStamp.of(clip)
            if (record["path"], record["size"], record["mtime_ns"]) != (
                stamp.path,
                stamp.size,
                stamp.mtime_ns,
            ):
                raise ResumeError(
                    f"{clip.path} is not the file whose results {self.events} holds (was {record['path']}, "
                    f"{record['size']} bytes); pass other --events/--scores paths, or --fresh to analyse "
                    "everything again"
                )
        return todo

    def start(self) -> None:
        """Before the outputs are opened: cut them, and the manifest, back to the last commit. A fresh run
        removes an old manifest first (its outputs are about to be started again, and it must not
        outlive them) and starts its own once the outputs exist (:meth:`begin`)."""
        if self._offsets is None:
            self.path.unlink(missing_ok=True)
            return
        events_at, scores_at = self._offsets
        _cut(self.events, events_at)
        if self.scores is not None and scores_at is not None:
            _cut(self.scores, scores_at)
        _cut(self.path, self._valid_bytes)
        log.info("resuming: %d clip(s) complete in %s", len(self.done), self.events)

    def begin(self) -> None:
        """A fresh run, after its outputs were created (and the scores header written and flushed): write the
        manifest's first line with the outputs' sizes."""
        if self.resuming:
            return
        header = {
            "manifest": MANIFEST_VERSION,
            "run": self.run,
            "events_offset": _size(self.events),
            "scores_offset": _size(self.scores),
        }
        self._write(header, mode="w")
        self._offsets = (header["events_offset"], header["scores_offset"])  # type: ignore[assignment]

    def commit(self, clip: Clip, frames: int, events: int) -> None:
        """``clip``'s events and scores are written and flushed: make them durable, then record them."""
        _sync(self.events)
        if self.scores is not None:
            _sync(self.scores)
        stamp = ClipStamp.of(clip)
        record = {
            "clip": clip.name,
            "path": stamp.path,
            "size": stamp.size,
            "mtime_ns": stamp.mtime_ns,
            "frames": frames,
            "events": events,
            "events_offset": _size(self.events),
            "scores_offset": _size(self.scores),
        }
        self._write(record, mode="a")
        self.done[clip.name] = record

    def _write(self, record: dict[str, Any], mode: str) -> None:
        with self.path.open(mode, encoding="utf-8") as fh:
            fh.write(json.dumps(record, separators=(",", ":")) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _refuse_foreign(events: Path, scores: Path | None, manifest: Path) -> None:
    """Outputs that hold data but no record of a resumable run (another tool's file, an events file that
    ``vidgru watch`` or ``vidgru evaluate`` wrote) are not overwritten unless the user says so."""
    # A run stopped between writing the scores' header and the manifest's leaves just the header.
    header = ",".join(SCORES_HEADER).encode()
    for path, option in ((events, "--events"), (scores, "--scores")):
        if path is None or not path.is_file() or path.stat().st_size == 0:
            continue
        if path == scores and path.stat().st_size <= len(header) + 2 and path.read_bytes().strip() == header:
            continue
        raise ResumeError(
            f"{option} {path} already holds data that no earlier 'vidgru analyze' recorded (no "
            f"{manifest.name}); pass --fresh to overwrite it, or give another {option} path"
        )
