"""The ``serve`` section: what ``vidgru serve`` reviews and where it keeps its own state.

Example::

    serve:
      events: [runs/nightly/events.jsonl, /var/lib/vidgru/live/]   # files, or folders of *.jsonl
      metrics_dir: /var/lib/vidgru/metrics                         # the pipeline's VIDGRU_METRICS_DIR
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from vidgru.config.base import StrictModel


class ServeConfig(StrictModel):
    """The events service: REST API, review page and /metrics ('vidgru serve')."""

    events: list[Path] = Field(
        default_factory=list,
        description="Event JSONL files (the --events of analyze or watch) or folders searched recursively for "
        "*.jsonl; read again as they grow. Thumbnails and clips are served only from these folders.",
    )
    marks: Path | None = Field(
        None,
        description="SQLite file for review marks (false positives); null: review.sqlite beside the first "
        "events path.",
    )
    metrics_dir: Path | None = Field(
        None,
        description="Folder the pipeline processes write their metrics to (their VIDGRU_METRICS_DIR), shown "
        "at /metrics; null: $VIDGRU_METRICS_DIR, or only the service's own metrics.",
    )
    host: str = Field(
        "127.0.0.1", min_length=1, description="Address to listen on (0.0.0.0: every interface)."
    )
    port: int = Field(8080, ge=1, le=65535, description="Port to listen on.")
    page_size: int = Field(50, ge=1, le=500, description="Events per page on the review page.")
