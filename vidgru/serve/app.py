"""The events service (FastAPI): REST API, the review page, /metrics, optional bearer-token auth.

Endpoints: ``GET /api/events`` (filters, paginated), ``GET /api/events/{id}``, its ``thumbnail.jpg`` and
``clip.mp4``, ``PUT``/``DELETE /api/events/{id}/review`` (false-positive mark), ``GET /api/cameras``,
``GET /metrics``, ``GET /healthz``; the page at ``/``; OpenAPI docs at ``/docs``.

Example::

    app = create_app(ServeSettings(sources=[Path("out/events.jsonl")], marks=Path("out/review.sqlite")))
    uvicorn.run(app, host="127.0.0.1", port=8080)
"""

from __future__ import annotations

import datetime as dt
import hmac
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from vidgru import __version__
from vidgru.serve.chart import score_chart
from vidgru.serve.marks import Mark, ReviewMarks
from vidgru.serve.metrics import ServiceMetrics
from vidgru.serve.store import EventQuery, EventStore, EventView, MediaKind

TOKEN_ENV = "VIDGRU_API_TOKEN"
TOKEN_COOKIE = "vidgru_token"
HERE = Path(__file__).parent
OPEN_PATHS = ("/healthz",)


@dataclass
class ServeSettings:
    sources: list[Path]
    marks: Path
    metrics_dir: Path | None = None
    token: str | None = None  # VIDGRU_API_TOKEN; None: no auth
    page_size: int = 50


class Review(BaseModel):
    false_positive: bool = Field(description="True: the event is a false alarm.")
    note: str = Field("", max_length=2000, description="Why, for whoever reads the export.")
    marked_at: str | None = Field(None, description="When it was marked (ISO-8601 UTC); set by the server.")


class EventOut(BaseModel):
    id: str
    camera: str
    type: str = Field(
        description="Latest record of the event: 'start' (still open) or 'end'; for camera tampering "
        "'camera_tampering' (live: still going while end_time is null) or 'camera_tampering_end'."
    )
    kind: str | None = Field(description="Camera tampering only: 'freeze', 'cover' or 'shift'.")
    start_time: float | str | None = Field(
        description="Seconds into the video (batch) or ISO-8601 UTC (live)."
    )
    end_time: float | str | None
    start_frame: int | None
    end_frame: int | None
    peak_frame: int | None
    peak_score: float
    threshold: float | None
    model: str | None
    box: list[int] | None
    reason: str | None = Field(description="What drove the peak: 'speed', 'appearance' or 'time_pattern'.")
    thumbnail_url: str | None = Field(description="The peak frame as JPEG, when the file is there.")
    clip_url: str | None = Field(description="An MP4 around the event, when recorded.")
    review: Review | None = Field(description="The operator's mark, if any.")
    source_file: str = Field(description="The JSONL file the event was read from.")


class EventDetail(EventOut):
    timeline: dict[str, Any] | None = Field(description="Scores around the event: {t0, step, scores}.")
    record: dict[str, Any] = Field(description="The merged record, as the event schema describes it.")


class EventPage(BaseModel):
    total: int
    offset: int
    limit: int
    events: list[EventOut]


class CameraOut(BaseModel):
    camera: str
    state: str = Field(description="online or offline (latest status record), unknown for recorded video.")
    since: str | None = Field(description="Time of the latest status record.")
    message: str
    events: int
    open_events: int
    last_event: float | str | None = Field(description="Start time of the newest event.")
    up: bool | None = Field(None, description="The pipeline's vidgru_camera_up, if it reports metrics.")
    fps: float | None = Field(None, description="Frames per second analysed, recently.")
    last_frame: str | None = Field(
        None, description="Capture time of the last analysed frame (ISO-8601 UTC)."
    )
    frames_analysed: float | None = None
    frames_dropped: float | None = None


def _review(mark: Mark | None) -> Review | None:
    if mark is None:
        return None
    return Review(false_positive=mark.false_positive, note=mark.note, marked_at=mark.marked_at)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Service:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.store = EventStore(settings.sources)
        self.marks = ReviewMarks(settings.marks)
        self.metrics = ServiceMetrics(settings.metrics_dir, self.store, self.marks)

    def event_out(self, view: EventView, marks: dict[str, Mark], detail: bool = False) -> EventOut:
        r = view.record
        base = f"/api/events/{view.id}"
        fields: dict[str, Any] = {
            "id": view.id,
            "camera": view.camera,
            "type": view.type,
            "start_time": r.get("start_time"),
            "end_time": r.get("end_time"),
            "start_frame": _int(r.get("start_frame")),
            "end_frame": _int(r.get("end_frame")),
            "peak_frame": _int(r.get("peak_frame")),
            "peak_score": view.peak_score,
            "threshold": r.get("threshold") if isinstance(r.get("threshold"), int | float) else None,
            "model": r.get("model") if isinstance(r.get("model"), str) else None,
            "box": r.get("box") if isinstance(r.get("box"), list) else None,
            "reason": r.get("reason") if isinstance(r.get("reason"), str) else None,
            "kind": r.get("kind") if view.tampering and isinstance(r.get("kind"), str) else None,
            "thumbnail_url": f"{base}/thumbnail.jpg" if self.store.media_of(view, "thumbnail") else None,
            "clip_url": f"{base}/clip.mp4" if self.store.media_of(view, "clip") else None,
            "review": _review(marks.get(view.id)),
            "source_file": str(view.file),
        }
        if detail:
            timeline = r.get("timeline")
            return EventDetail(**fields, timeline=timeline if isinstance(timeline, dict) else None, record=r)
        return EventOut(**fields)

    def cameras(self) -> list[CameraOut]:
        reported = self.metrics.cameras()
        out = [CameraOut(**vars(c), **reported.pop(c.camera, {})) for c in self.store.cameras()]
        # Cameras the pipeline reports that have no record yet (watching, nothing happened).
        for name, values in sorted(reported.items()):
            up = values.get("up")
            state = "unknown" if up is None else ("online" if up else "offline")
            out.append(
                CameraOut(
                    camera=name,
                    state=state,
                    since=None,
                    message="",
                    events=0,
                    open_events=0,
                    last_event=None,
                    **values,
                )
            )
        return out


def _when(value: Any) -> str:
    """A record's time for people: '7.5 s' into a video, or '2026-11-25 10:58:04Z' for live events."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g} s"
    if isinstance(value, str):
        return value.replace("T", " ").replace(".000Z", "Z")
    return ""


def _token_ok(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    cookie = request.cookies.get(TOKEN_COOKIE)
    return cookie is not None and hmac.compare_digest(cookie.encode(), token.encode())


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e.get("loc", ()))
        parts.append(f"{where}: {e.get('msg')} (got {e.get('input')!r})")
    return "; ".join(parts)


Since = Annotated[
    str | None,
    Query(
        description="Events that end at or after this: an ISO-8601 date-time (live events, e.g. "
        "2026-11-25T10:00:00Z) or a number of seconds into the video (batch events)."
    ),
]
Until = Annotated[
    str | None,
    Query(description="Events that start at or before this: ISO-8601 date-time (live) or seconds (batch)."),
]


def _time_bound(name: str, value: str | None) -> float | dt.datetime | None:
    """A time filter: seconds into the video, or an ISO-8601 date-time (UTC if it names no zone)."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", name),
                    "msg": "expected an ISO-8601 date-time (e.g. 2026-11-25T10:00:00Z) or seconds into the video",
                    "input": value,
                }
            ]
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def create_app(settings: ServeSettings) -> FastAPI:
    service = _Service(settings)
    app = FastAPI(
        title="vidgru events",
        version=__version__,
        description="Events found by vidgru, their thumbnails, clips and score timelines; the cameras' state; "
        f"review marks. With {TOKEN_ENV} set, every endpoint but /healthz needs 'Authorization: Bearer <token>'.",
    )
    app.state.service = service
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["when"] = _when
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def require_token(request: Request, call_next: Any) -> Response:
        token = settings.token
        if not token or request.url.path in OPEN_PATHS or _token_ok(request, token):
            return await call_next(request)
        query = request.query_params.get("token")
        if (
            query is not None
            and request.method == "GET"
            and hmac.compare_digest(query.encode(), token.encode())
        ):
            # A browser brings the token once in the URL; the cookie carries it from then on.
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
            return response
        return JSONResponse(
            {
                "detail": f"missing or wrong token: send 'Authorization: Bearer <{TOKEN_ENV}>' "
                "(a browser: open /?token=<token> once)"
            },
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, err: RequestValidationError) -> JSONResponse:
        from fastapi.encoders import jsonable_encoder

        return JSONResponse(
            {"message": _validation_message(err), "detail": jsonable_encoder(err.errors())}, status_code=422
        )

    def query_or_422(
        camera: str | None,
        type_: str | None,
        min_score: float | None,
        since_text: str | None,
        until_text: str | None,
        false_positive: bool | None,
    ) -> tuple[EventQuery, dict[str, Mark]]:
        since, until = _time_bound("since", since_text), _time_bound("until", until_text)
        if since is not None and until is not None and type(since) is type(until) and since > until:  # type: ignore[operator]
            raise RequestValidationError(
                [
                    {
                        "type": "value_error",
                        "loc": ("query", "until"),
                        "msg": f"until is before since ({since_text}); swap them",
                        "input": until_text,
                    }
                ]
            )
        marks = service.marks.all()
        flagged = {k for k, m in marks.items() if m.false_positive}
        q = EventQuery(camera=camera, type=type_, min_score=min_score, since=since, until=until)
        if false_positive is True:
            q.ids = flagged
        elif false_positive is False:
            q.exclude = flagged
        return q, marks

    @app.get("/healthz", tags=["service"], summary="Liveness: 200 while the service runs (no token needed).")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/events", response_model=EventPage, tags=["events"], summary="Events, newest first.")
    def list_events(
        camera: Annotated[str | None, Query(description="Only this camera (or video file stem).")] = None,
        type: Annotated[
            Literal["start", "end", "camera_tampering", "camera_tampering_end"] | None,
            Query(
                description="'start': events still open; 'end': closed; 'camera_tampering' / "
                "'camera_tampering_end': tampering episodes by their latest record."
            ),
        ] = None,
        min_score: Annotated[
            float | None, Query(description="Only events whose peak score is at least this.")
        ] = None,
        since: Since = None,
        until: Until = None,
        false_positive: Annotated[
            bool | None, Query(description="true: only events marked false positive; false: only the others.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500, description="Events per page.")] = 50,
        offset: Annotated[int, Query(ge=0, description="Events to skip.")] = 0,
    ) -> EventPage:
        q, marks = query_or_422(camera, type, min_score, since, until, false_positive)
        page = service.store.query(q, offset, limit)
        return EventPage(
            total=page.total,
            offset=offset,
            limit=limit,
            events=[service.event_out(v, marks) for v in page.events],
        )

    def find(event_id: str) -> EventView:
        view = service.store.get(event_id)
        if view is None:
            raise HTTPException(404, f"no event with id {event_id!r}; list them at /api/events")
        return view

    @app.get("/api/events/{event_id}", response_model=EventDetail, tags=["events"], summary="One event.")
    def get_event(event_id: str) -> EventOut:
        return service.event_out(find(event_id), service.marks.all(), detail=True)

    def media(event_id: str, kind: MediaKind, media_type: str) -> FileResponse:
        find(event_id)
        path = service.store.media(event_id, kind)
        if path is None:
            raise HTTPException(404, f"event {event_id!r} has no {kind} file under the served folders")
        return FileResponse(path, media_type=media_type)

    @app.get("/api/events/{event_id}/thumbnail.jpg", tags=["events"], summary="The peak frame, box drawn.")
    def thumbnail(event_id: str) -> FileResponse:
        return media(event_id, "thumbnail", "image/jpeg")

    @app.get("/api/events/{event_id}/clip.mp4", tags=["events"], summary="The video around the event.")
    def clip(event_id: str) -> FileResponse:
        return media(event_id, "clip", "video/mp4")

    @app.put(
        "/api/events/{event_id}/review", response_model=Review, tags=["review"], summary="Mark an event."
    )
    def put_review(event_id: str, review: Review) -> Review:
        find(event_id)
        return _review(service.marks.set(event_id, review.false_positive, review.note))  # type: ignore[return-value]

    @app.delete("/api/events/{event_id}/review", status_code=204, tags=["review"], summary="Remove the mark.")
    def delete_review(event_id: str) -> Response:
        find(event_id)
        service.marks.clear(event_id)
        return Response(status_code=204)

    @app.get(
        "/api/cameras", response_model=list[CameraOut], tags=["cameras"], summary="Cameras and their state."
    )
    def cameras() -> list[CameraOut]:
        return service.cameras()

    @app.get("/metrics", tags=["service"], summary="Prometheus metrics of the pipeline and the review.")
    def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(
        request: Request,
        camera: str | None = None,
        type: Literal["start", "end", "camera_tampering", "camera_tampering_end"] | None = None,
        min_score: float | None = None,
        review: Literal["all", "false_positive", "unmarked"] = "all",
        offset: Annotated[int, Query(ge=0)] = 0,
        event: str | None = None,
    ) -> HTMLResponse:
        fp = {"all": None, "false_positive": True, "unmarked": False}[review]
        q, marks = query_or_422(camera or None, type, min_score, None, None, fp)
        size = settings.page_size
        listing = service.store.query(q, offset, size)
        selected = service.store.get(event) if event else None
        detail = service.event_out(selected, marks, detail=True) if selected else None
        chart = None
        if detail is not None:
            chart = score_chart(detail.timeline, detail.start_time, detail.end_time, detail.threshold or 0.0)  # type: ignore[attr-defined]
        filters = {
            "camera": camera or "",
            "type": type or "",
            "min_score": "" if min_score is None else min_score,
            "review": review,
        }

        def link(**changes: Any) -> str:
            params = {**filters, "offset": offset, **changes}
            return "/?" + urlencode({k: v for k, v in params.items() if v not in ("", None, 0, "all")})

        return templates.TemplateResponse(
            request,
            "index.html",
            {
                "cameras": service.cameras(),
                "events": [service.event_out(v, marks) for v in listing.events],
                "total": listing.total,
                "offset": offset,
                "size": size,
                "pages": max(1, math.ceil(listing.total / size)),
                "filters": filters,
                "link": link,
                "selected": detail,
                "missing": event if event and selected is None else None,
                "chart": chart,
                "version": __version__,
            },
        )

    return app
