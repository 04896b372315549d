"""``vidgru events export``: every event with its review mark, as JSONL (the record plus ``review``) or CSV.

Example::

    with open("reviewed.csv", "w", newline="") as out:
        export_events(EventStore([Path("events.jsonl")]), ReviewMarks(Path("review.sqlite")), out, "csv")
"""

from __future__ import annotations

import csv
import json
from typing import Literal, TextIO

from vidgru.serve.marks import ReviewMarks
from vidgru.serve.store import EventStore

ExportFormat = Literal["jsonl", "csv"]
CSV_COLUMNS = (
    "id",
    "camera",
    "type",
    "start_time",
    "end_time",
    "peak_score",
    "threshold",
    "model",
    "thumbnail",
    "clip",
    "false_positive",
    "note",
    "marked_at",
    "source_file",
)


def export_events(store: EventStore, marks: ReviewMarks, out: TextIO, fmt: ExportFormat) -> int:
    """Write every event, oldest first; returns how many. ``false_positive`` is empty for unmarked events."""
    reviewed = marks.all()
    events = list(reversed(store.all()))
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore") if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    for view in events:
        mark = reviewed.get(view.id)
        review = (
            None
            if mark is None
            else {"false_positive": mark.false_positive, "note": mark.note, "marked_at": mark.marked_at}
        )
        if writer is None:
            out.write(json.dumps({**view.record, "review": review}, separators=(",", ":")) + "\n")
            continue
        row = {k: view.record.get(k) for k in CSV_COLUMNS}
        row.update(
            camera=view.camera,
            source_file=str(view.file),
            false_positive="" if mark is None else str(mark.false_positive).lower(),
            note="" if mark is None else mark.note,
            marked_at="" if mark is None else mark.marked_at,
        )
        writer.writerow(row)
    return len(events)
