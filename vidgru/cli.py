"""The ``vidgru`` command line. Library errors become one line on stderr and an exit code."""

from __future__ import annotations

import functools
import gc
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from vidgru.errors import PartialDecodeError, VidgruError

app = typer.Typer(
    name="vidgru",
    help="Find unusual behaviour in surveillance video. Train on a camera's normal footage, then analyse "
    "recordings; events go to a JSONL file with a thumbnail of each.\n\n"
    "Start with 'vidgru demo' to see the whole pipeline on a generated scene.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Paragraphs reflow to the terminal's width, instead of keeping the docstrings' line breaks.
    rich_markup_mode="markdown",
)
err_console = Console(stderr=True, soft_wrap=True)
out_console = Console(soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

# Options that take several values, as in `--normal a.mp4 b.mp4` after shell globbing.
MULTI_VALUE_OPTIONS = ("--normal",)


def _fail(message: str, code: int) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _handle_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ray.exceptions import RayError, RayTaskError

        try:
            return fn(*args, **kwargs)
        except VidgruError as err:
            raise _fail(str(err), err.exit_code) from None
        except RayTaskError as err:
            cause = err.cause
            if isinstance(cause, VidgruError):
                raise _fail(str(cause), cause.exit_code) from None
            raise _fail(f"a Ray worker failed: {type(cause).__name__}: {cause}", 1) from None
        except RayError as err:
            raise _fail(f"Ray failed: {str(err).splitlines()[0]}", 1) from None
        except KeyboardInterrupt:
            raise _fail("interrupted; outputs written so far are kept", 130) from None
        except OSError as err:  # a path the up-front checks could not foresee (a disk that filled, say)
            where = f"{err.filename}: " if err.filename else ""
            raise _fail(
                f"{where}{err.strerror or err}; check the path, its permissions and free space", 3
            ) from None

    return wrapper  # type: ignore[return-value]


def _setup_logging(verbose: bool) -> None:
    if not verbose:
        # FFmpeg's own lines ("moov atom not found") would come before vidgru's one-line error about the
        # same file; --verbose keeps them. Set before OpenCV opens a video, and inherited by Ray's workers.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    # Rich's handler wraps a long warning over several lines to fit its columns; where stderr is a file or
    # a pipe (a service's log, CI) each record stays one line.
    handler: logging.Handler = (
        RichHandler(console=err_console, show_path=False)
        if err_console.is_terminal
        else logging.StreamHandler(sys.stderr)
    )
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s" if err_console.is_terminal else "%(levelname)s %(message)s",
        handlers=[handler],
        force=True,
    )


@contextmanager
def _progress() -> Iterator[Progress]:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
        disable=not err_console.is_terminal and os.environ.get("VIDGRU_PROGRESS") != "1",
    ) as progress:
        yield progress


def _expected_frames(clips: Sequence[Any]) -> int | None:
    from vidgru.batches import probe_clip

    counts = [probe_clip(c) for c in clips]
    return None if any(n is None for n in counts) else sum(counts)  # type: ignore[misc]


def _load_cfg(config: Path | None, address: str | None) -> Any:
    from vidgru.config import load_config

    cfg = load_config(config)
    if address:
        cfg.ray.address = address
    return cfg


def _report_decode_problems(reports: Sequence[Any]) -> None:
    problems = [r.problem for r in reports if r.problem]
    if problems:
        for problem in problems[:-1]:
            err_console.print(f"[bold red]error:[/] {problem}", highlight=False, soft_wrap=True)
        raise PartialDecodeError(problems[-1])


ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config; see configs/default.yaml for every key.")
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address", envvar="RAY_ADDRESS", help="Ray cluster to run on (default: start a local Ray)."
    ),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log what each stage does.")]


@app.command()
@_handle_errors
def train(
    normal: Annotated[
        list[Path],
        typer.Option(
            "--normal", help="Normal footage: video files, folders of videos, or folders of frames."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
    config: ConfigOpt = None,
    address: AddressOpt = None,
    memory: Annotated[
        int | None,
        typer.Option(
            "--memory",
            min=0,
            help="Train the behaviour GRU (off by default) with this many steps of memory (behaviour.memory): "
            "0 streams its state through the whole video; 1 sees one step at a time (the ablation).",
        ),
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Fit a model on a camera's normal footage.

    The footage should show only ordinary activity. vidgru learns how things move in each part of the
    picture (a short-window GRU, with synthetic speed-ups of that footage as examples of the unusual).
    With --memory it also learns how long things stay and how they come and go (a GRU per tracked object
    whose memory spans the whole video, with the footage's own time held, played back and forth, or
    stopped and restarted as examples); that model is off by default. Scores are calibrated on a
    held-out part so that threshold 1.0 means the same on every camera.

    Example: vidgru train --normal footage/cam1/normal/*.mp4 --out models/cam1
    """
    _setup_logging(verbose)
    from vidgru.jobs import train_model
    from vidgru.model_store import check_model_out
    from vidgru.sources import discover_clips
    from workers.pipeline import RayFeaturePipeline

    cfg = _load_cfg(config, address)
    check_model_out(out)  # before the work: an unwritable --out would otherwise lose the trained model
    if memory is not None:
        cfg.behaviour.enabled, cfg.behaviour.memory = True, memory
    clips = discover_clips(normal)
    total = _expected_frames(clips)
    started = time.monotonic()
    with _progress() as progress:
        frames_task = progress.add_task("extracting features", total=total)
        train_task = progress.add_task("training GRU", total=None, visible=False)
        pipeline = RayFeaturePipeline(cfg)

        def on_train(_: str, done: int, of: int) -> None:
            progress.update(train_task, completed=done, total=of, visible=True)

        model, reports = train_model(
            clips, cfg, pipeline, out, lambda n: progress.advance(frames_task, n), on_train
        )
    meta = model.meta
    out_console.print(
        f"trained [bold]{meta['model_id']}[/] on {meta['frames']} frames of {len(clips)} clip(s) "
        f"in {time.monotonic() - started:.0f}s -> {out}",
        highlight=False,
    )
    _report_decode_problems(reports)


@app.command()
@_handle_errors
def analyze(
    paths: Annotated[
        list[Path],
        typer.Argument(metavar="PATHS", help="Video files, folders of videos, or folders of frames."),
    ],
    model_dir: Annotated[Path, typer.Option("--model", "-m", help="Model directory from 'vidgru train'.")],
    events: Annotated[
        Path, typer.Option("--events", "-e", help="JSONL file for events; thumbnails go beside it.")
    ] = Path("events.jsonl"),
    scores: Annotated[
        Path | None,
        typer.Option("--scores", "-s", help="CSV of every frame's score: video,frame,time,score."),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", "-t", help="Calibrated score that opens an event.")
    ] = None,
    config: ConfigOpt = None,
    address: AddressOpt = None,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh", help="Analyse every clip again, overwriting the outputs, instead of resuming."
        ),
    ] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Score recorded video with a trained model and write events.

    Each frame gets a calibrated score (0 is typical of the training footage, 1 is its 99th percentile).
    A run of frames above the threshold becomes one event in the JSONL file, with a thumbnail of its
    peak frame and the box of the region that drove it.

    Resumable: run it again with the same --events/--scores and it skips the clips already complete
    (recorded in a .manifest file beside the events), writing every clip's results exactly once.

    Example: vidgru analyze recordings/*.mp4 --model models/cam1 --events events.jsonl --scores scores.csv
    """
    _setup_logging(verbose)
    model, cfg = _model_and_config(model_dir, config, address, threshold)
    from vidgru.sources import discover_clips

    results = _run_analysis(discover_clips(paths), model, cfg, events, scores, resume=True, fresh=fresh)
    _report_decode_problems([r.report for r in results])


def _model_and_config(
    model_dir: Path, config: Path | None, address: str | None, threshold: float | None
) -> tuple[Any, Any]:
    from vidgru.model_store import load_model

    model = load_model(model_dir)
    cfg = model.config.model_copy(deep=True)
    # Where events go belongs to this run, never to the training run whose config the model kept.
    cfg.delivery = type(cfg.delivery)()
    if config is not None:
        user = _load_cfg(config, None)
        cfg.events, cfg.ray, cfg.delivery = user.events, user.ray, user.delivery
        cfg.tampering = user.tampering

        # A run may leave the behaviour GRUs out (to compare, or to save their cost) when its config says
        # so in as many words: a config written for the events or the sinks, without a behaviour section,
        # keeps the model whole. The rest of the section describes how the model was trained and stays
        # the model's.
        def said_off(key: str) -> bool:
            return key in user.behaviour.model_fields_set and not getattr(user.behaviour, key)

        if said_off("enabled"):
            cfg.behaviour.enabled = model.config.behaviour.enabled = False
            model.behaviour = model.tracks = None
        if said_off("region_model"):
            cfg.behaviour.region_model = model.config.behaviour.region_model = False
            model.behaviour = model.behaviour_calibration = None
    if address:
        cfg.ray.address = address
    if threshold is not None:
        from pydantic import ValidationError

        from vidgru.errors import InputError

        try:
            cfg.events.threshold = threshold  # validated as the config key is: a finite number above 0
        except ValidationError as err:
            raise InputError(
                f"--threshold {threshold}: {err.errors()[0]['msg']}; give a calibrated score above 0 (1 is the "
                "99th percentile of normal frames; the default is 1.5)"
            ) from err
    return model, cfg


def _freeze_loaded_objects() -> None:
    """Put what is loaded so far (modules, the models) out of the garbage collector's reach: it lives as
    long as the process. Otherwise the tracker's many short-lived objects set off full collections that walk
    all of it: on UCSD Ped2's 2,010 test frames, 0.15 s of the driver's CPU with the behaviour model, 0.02 s
    with this. (No collection first: it would cost about what it saves, and little is garbage yet.)"""
    gc.freeze()


def _run_analysis(
    all_clips: Sequence[Any],
    model: Any,
    cfg: Any,
    events: Path,
    scores: Path | None,
    resume: bool = False,
    fresh: bool = False,
) -> list[Any]:
    """``resume``: record each clip as it completes (vidgru/resume.py) and skip the clips an earlier run
    into the same outputs completed, unless ``fresh``; without it the outputs are written afresh."""
    import torch

    from vidgru import telemetry
    from vidgru.batches import probe_clip
    from vidgru.delivery import open_delivery
    from vidgru.jobs import analyze_clips
    from vidgru.outputs import ScoresCsv, check_output_file
    from vidgru.resume import RunManifest, manifest_path, run_identity
    from workers.pipeline import RayFeaturePipeline

    # Before anything is read, cut or wiped (--fresh): outputs that cannot be written stop the run here.
    check_output_file(events, "--events")
    if scores is not None:
        check_output_file(scores, "--scores")
    telemetry.enable()  # VIDGRU_METRICS_DIR, VIDGRU_METRICS_PORT: before anything is counted
    # The driver's GRU scoring runs beside the decoders and CNN actors: a second torch thread only contends
    # with them for the cores (measured on 2 cores: about 5% fewer frames/s with two).
    torch.set_num_threads(1)
    if model.tracks is not None:
        from vidgru.tracks import import_tracker_early

        import_tracker_early()
    _freeze_loaded_objects()
    clips, manifest = list(all_clips), None
    if resume:
        settings = {
            "events": cfg.events.model_dump(mode="json"),
            "tampering": cfg.tampering.model_dump(mode="json"),
            "behaviour": model.behaviour is not None,
        }
        identity = run_identity(str(model.meta.get("model_id", "unknown")), settings, scores)
        manifest = RunManifest.open(events, scores, identity, fresh=fresh)
        clips = manifest.remaining(all_clips)
        manifest.start()
    else:
        # Outputs written afresh: a manifest of an earlier analyze into them would describe other bytes.
        manifest_path(events).unlink(missing_ok=True)
    skipped = len(all_clips) - len(clips)
    counts = [probe_clip(c) for c in clips]  # fails fast on an unreadable clip; sizes the progress bar
    total = None if any(n is None for n in counts) else sum(counts)  # type: ignore[misc]
    appending = manifest is not None and manifest.resuming
    sink = open_delivery(cfg.delivery, events, append=appending)
    csv = ScoresCsv(scores, append=appending) if scores else None
    if manifest is not None:
        manifest.begin()
    media = cfg.events.thumbnails or cfg.events.clip_seconds > 0
    thumbs = events.parent / f"{events.stem}_thumbnails" if media else None
    started, results = time.monotonic(), []
    try:
        with _progress() as progress:
            task = progress.add_task(f"analysing 0/{len(clips)} clips", total=total)
            analysed = analyze_clips(
                clips,
                model,
                RayFeaturePipeline(cfg) if clips else None,  # type: ignore[arg-type]
                cfg.events,
                [sink],
                csv,
                thumbs,
                lambda n: progress.advance(task, n),
                cfg.tampering,
                counts,
            )
            for result in analysed if clips else ():
                # The clip's events and scores are written and flushed: now it counts as complete.
                if manifest is not None:
                    manifest.commit(result.clip, len(result.scores), len(result.events))
                results.append(result)
                progress.update(task, description=f"analysing {len(results)}/{len(clips)} clips")
    finally:
        sink.close()
        if csv:
            csv.close()
    elapsed = time.monotonic() - started
    frames = sum(len(r.scores) for r in results)
    if skipped:
        out_console.print(
            f"{skipped} clip(s) already complete in {events} (from an earlier run), skipped", highlight=False
        )
    out_console.print(
        f"analysed {frames} frames of {len(clips)} clip(s) in {elapsed:.1f}s ({frames / elapsed:.1f} frames/s): "
        f"{sum(len(r.events) for r in results)} event(s)"
        + (
            f", {n_tamper} camera tampering episode(s)"
            if (n_tamper := sum(len(r.tampering) for r in results))
            else ""
        )
        + f" -> {events}"
        + (f", scores -> {scores}" if scores else ""),
        highlight=False,
    )
    return results


@app.command()
@_handle_errors
def evaluate(
    paths: Annotated[list[Path], typer.Argument(metavar="PATHS", help="Labelled video files or folders.")],
    model_dir: Annotated[Path, typer.Option("--model", "-m", help="Model directory from 'vidgru train'.")],
    labels: Annotated[Path, typer.Option("--labels", "-l", help="Labels JSON (format below).")],
    events: Annotated[Path, typer.Option("--events", "-e", help="JSONL file for the events.")] = Path(
        "evaluate-events.jsonl"
    ),
    scores: Annotated[Path | None, typer.Option("--scores", "-s", help="CSV of every frame's score.")] = None,
    report: Annotated[
        Path | None, typer.Option("--report", "-r", help="Folder for a PNG per clip and summary.json.")
    ] = None,
    threshold: Annotated[float | None, typer.Option("--threshold", "-t", help="Event threshold.")] = None,
    config: ConfigOpt = None,
    address: AddressOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Measure a model on labelled footage: frame-level AUC and event precision/recall.

    Prints micro AUC (all frames of all clips pooled) on the calibrated scores and after per-clip min-max
    normalisation (the convention in papers), macro AUC (mean over clips holding both classes), and
    event-level precision (events that overlap a labelled range) and recall (labelled ranges that some
    event overlaps) at the model's threshold.

    Labels JSON: `{"videos": {"FILE_STEM": {"frames": 180, "anomalous": [[60, 180]]}}}`, with 0-based
    [start, end) frame ranges; "frames" is optional and checked against what was decoded.
    UCSD Ped2's labels.json has this format.

    Example: vidgru evaluate ped2/test/ --model models/ped2 --labels ped2/labels.json --report report/
    """
    _setup_logging(verbose)
    from vidgru.metrics import LabelsError, evaluate_clips, load_labels
    from vidgru.outputs import check_output_folder
    from vidgru.report import write_report
    from vidgru.sources import discover_clips

    truth = load_labels(labels)  # fail on bad labels before any work
    clips = discover_clips(paths)
    unlabelled = [clip.name for clip in clips if clip.name not in truth]
    if unlabelled:
        raise LabelsError(
            f"no labels for {', '.join(unlabelled)} in {labels}; add them to the labels file or leave them out"
        )
    if report is not None:
        check_output_folder(report, "--report")
    model, cfg = _model_and_config(model_dir, config, address, threshold)
    results = _run_analysis(clips, model, cfg, events, scores)
    result = evaluate_clips(
        {r.clip.name: r.scores for r in results},
        truth,
        {r.clip.name: [(e.start_frame, e.end_frame) for e in r.events] for r in results},
    )

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    out_console.print(
        f"frame AUC micro (raw calibrated): {fmt(result.micro_auc)}\n"
        f"frame AUC micro (per-clip normalised): {fmt(result.micro_auc_normalised)}\n"
        f"frame AUC macro: {fmt(result.macro_auc)}\n"
        f"events at threshold {cfg.events.threshold:g}: precision {fmt(result.event_precision)}, "
        f"recall {fmt(result.event_recall)}",
        highlight=False,
    )
    if report is not None:
        written = write_report(
            report,
            result,
            {r.clip.name: (r.fps, r.scores) for r in results},
            truth,
            cfg.events.threshold,
            {"model": model.meta.get("model_id")},
        )
        out_console.print(f"report: {len(written) - 1} plot(s) and summary.json in {report}", highlight=False)
    _report_decode_problems([r.report for r in results])


@app.command()
@_handle_errors
def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the footage, model and events.")
    ] = Path("vidgru-demo"),
    address: AddressOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Run the whole pipeline on a generated scene: no data of yours needed.

    Renders a walkway where figures walk, and a second scene where a fast object cuts through twice;
    trains on the first, analyses the second on Ray, and prints the events it found.
    """
    _setup_logging(verbose)
    from vidgru.config import VidgruConfig
    from vidgru.delivery import open_delivery
    from vidgru.demo import make_demo_footage
    from vidgru.jobs import analyze_clips, train_model
    from vidgru.metrics import load_labels, overlaps
    from vidgru.outputs import check_output_folder
    from vidgru.sources import discover_clips
    from workers.pipeline import RayFeaturePipeline

    check_output_folder(out, "--out")
    started = time.monotonic()
    out_console.print(f"rendering demo footage in {out}/footage ...")
    footage = make_demo_footage(out)
    cfg = VidgruConfig()
    if address:
        cfg.ray.address = address
    train_clips, test_clips = discover_clips(footage.train), discover_clips(footage.test)
    events_path = out / "events.jsonl"
    with _progress() as progress:
        pipeline = RayFeaturePipeline(cfg)
        t1 = progress.add_task("training: features", total=_expected_frames(train_clips))
        t2 = progress.add_task("training: GRU", total=None, visible=False)
        model, _ = train_model(
            train_clips,
            cfg,
            pipeline,
            out / "model",
            lambda n: progress.advance(t1, n),
            lambda _s, d, n: progress.update(t2, completed=d, total=n, visible=True),
        )
        t3 = progress.add_task("analysing", total=_expected_frames(test_clips))
        sink = open_delivery(cfg.delivery, events_path)
        try:
            results = list(
                analyze_clips(
                    test_clips,
                    model,
                    pipeline,
                    cfg.events,
                    [sink],
                    None,
                    out / "events_thumbnails",
                    lambda n: progress.advance(t3, n),
                )
            )
        finally:
            sink.close()
    labels = load_labels(footage.labels)
    for result in results:
        truth = labels[result.clip.name].anomalous
        _, found = overlaps([(e.start_frame, e.end_frame) for e in result.events], truth)
        out_console.print(
            f"{result.clip.name}: {len(result.events)} event(s); {found} of {len(truth)} staged intrusions found",
            highlight=False,
        )
        for e in result.events:
            out_console.print(
                f"  {e.start_time:>6.1f}s-{e.end_time:.1f}s  peak {e.peak_score:.2f} at frame {e.peak_frame}  "
                f"{e.thumbnail}",
                highlight=False,
                soft_wrap=True,
            )
    out_console.print(
        f"events: {events_path}\nthumbnails: {out / 'events_thumbnails'}\nmodel: {out / 'model'}\n"
        f"done in {time.monotonic() - started:.0f}s",
        highlight=False,
    )


@app.command()
@_handle_errors
def deliver(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML config with a 'delivery' section.")],
    events: Annotated[
        Path | None,
        typer.Option("--events", "-e", help="The run's events JSONL; its outbox is EVENTS.outbox.sqlite."),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds to keep trying (default: drain_timeout_s).")
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Send what an outbox still holds to its sinks, e.g. after a run was killed or a sink was down.

    Every record is stored in the outbox before any sink sees it, and marked per sink once delivered;
    this sends the rest and exits 0 when nothing is left, or 9 naming the sinks that still lack records.
    Running 'vidgru analyze' again with the same outbox does the same as a side effect.

    Example: vidgru deliver --config sinks.yaml --events out/events.jsonl
    """
    _setup_logging(verbose)
    from vidgru import telemetry
    from vidgru.delivery import open_delivery, outbox_path
    from vidgru.errors import DeliveryError

    if timeout is not None and not 0 <= timeout < float("inf"):
        raise DeliveryError(f"--timeout {timeout}: give a number of seconds, 0 or more")
    telemetry.enable()  # what it sends counts in vidgru_events_emitted_total, as analyze's deliveries do
    cfg = _load_cfg(config, None).delivery
    if not cfg.sinks:
        raise DeliveryError(f"{config}: 'delivery.sinks' is empty; nothing to deliver to")
    if events is None and cfg.outbox is None:
        raise DeliveryError("pass --events (the outbox sits beside it) or set 'delivery.outbox'")
    if events is not None:
        cfg.outbox = outbox_path(cfg, events)
    if not cfg.outbox.is_file():
        raise DeliveryError(
            f"no outbox at {cfg.outbox}; pass the --events file of the run, or 'delivery.outbox'"
        )
    delivery = open_delivery(cfg, None)
    left = delivery.close(cfg.drain_timeout_s if timeout is None else timeout)
    for label, sent in delivery.delivered().items():
        out_console.print(f"{label}: {sent} sent, {left.get(label, 0)} pending", highlight=False)
    stuck = [label for label, count in left.items() if count]
    if stuck:
        raise DeliveryError(
            f"{', '.join(stuck)} still lack(s) records (see above); they stay in {cfg.outbox}: bring the sink "
            "back and run this again"
        )


def _watch_sinks(events: Path, delivery: Any) -> list[Any]:
    """Where ``watch`` sends its records: the JSONL file, and through the outbox every configured sink."""
    from vidgru.delivery import open_delivery

    return [open_delivery(delivery, events, append=True)]  # a restarted watch must not wipe earlier events


@app.command()
@_handle_errors
def watch(
    config: Annotated[
        Path,
        typer.Option("--config", "-c", help="Cameras YAML; configs/cameras.example.yaml shows every key."),
    ],
    events: Annotated[
        Path, typer.Option("--events", "-e", help="JSONL file for events; thumbnails go beside it.")
    ] = Path("watch-events.jsonl"),
    scores: Annotated[
        Path | None,
        typer.Option(
            "--scores", "-s", help="CSV of every analysed frame: camera,frame,captured,scored,score."
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option("--duration", help="Stop after this many seconds (default: run until stopped)."),
    ] = None,
    status_every: Annotated[
        float,
        typer.Option("--status-every", help="Seconds between status lines (fps in/analysed, drops, state)."),
    ] = 10.0,
    address: AddressOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Watch live cameras and write events as they open and close.

    Each camera in the config (RTSP, HTTP MJPEG or HLS, a webcam index, or a file replayed in real time)
    is read by its own Ray actor; frames of all cameras go through the CNN together, and each camera keeps
    its own GRU state. Events are written when they start and when they end (same id), with ISO-8601 UTC
    times of capture. When analysis falls behind, the oldest frames are dropped and counted, never queued
    without bound. A camera that fails or stalls is reported with a camera_offline record and reopened
    with exponential backoff, forever; camera_online follows when frames come back. Ctrl-C or SIGTERM
    ends open events, flushes and exits 0.

    Example: vidgru watch --config cameras.yaml --events alerts.jsonl --status-every 30
    """
    _setup_logging(verbose)
    import signal
    import threading

    from vidgru import telemetry
    from vidgru.config.cameras import load_cameras_config
    from vidgru.errors import InputError
    from vidgru.live import LiveScoresCsv
    from vidgru.outputs import check_output_file
    from vidgru.watching import plan_cameras
    from workers.runtime import ensure_ray
    from workers.watch import watch as watch_cameras

    if duration is not None and not duration > 0:
        raise InputError(
            f"--duration {duration}: give a number of seconds above 0, or leave it out to run until stopped"
        )
    if not status_every > 0:
        raise InputError(f"--status-every {status_every}: give a number of seconds above 0")
    check_output_file(events, "--events")
    if scores is not None:
        check_output_file(scores, "--scores")
    cfg = load_cameras_config(config)
    if address:
        cfg.ray.address = address
    plans = plan_cameras(cfg, events.parent / f"{events.stem}_thumbnails", str(config))
    sinks = _watch_sinks(events, cfg.delivery)  # a sink that is misconfigured stops us before any work
    if any(p.model.tracks is not None for p in plans):
        from vidgru.tracks import import_tracker_early

        import_tracker_early()
    _freeze_loaded_objects()
    telemetry.enable()  # before Ray starts, so its workers inherit where metrics go
    ensure_ray(cfg.ray)  # before the handlers: Ray's own SIGTERM handler would kill the process unflushed
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}

    def show(lines: list[str]) -> None:
        for line in lines:
            err_console.print(line, highlight=False, soft_wrap=True)

    csv = LiveScoresCsv(scores) if scores else None
    try:
        result = watch_cameras(cfg, plans, sinks, stop, duration, status_every, show, csv)
    finally:
        for sink in sinks:
            sink.close()
        if csv:
            csv.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    lines = [*result.cameras, f"stopped: {result.records} record(s) -> {events}"]
    out_console.print("\n".join(lines), highlight=False)


EventsOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--events",
        "-e",
        help="Event JSONL file or folder of them (repeat for several); adds to serve.events.",
    ),
]
MarksOpt = Annotated[
    Path | None,
    typer.Option(
        "--marks", help="SQLite file of review marks (default: review.sqlite beside the first events)."
    ),
]


def _review_config(
    config: Path | None, events: list[Path] | None, marks: Path | None, waiting: bool
) -> tuple[Any, list[Path], Path]:
    """The serve section with the command line's additions; the event sources must exist. ``waiting``
    (serve): a file may be missing while its folder exists, as a watch run's before it writes, and is noted;
    an export has nothing to wait for."""
    from vidgru.errors import SourceNotFoundError
    from vidgru.serve.marks import default_marks_path

    cfg = _load_cfg(config, None).serve
    sources = [*cfg.events, *(events or [])]
    if not sources:
        raise SourceNotFoundError(
            "no event files given: pass --events FILE (repeatable) or set 'serve.events'"
        )
    for source in sources:
        if source.exists():
            continue
        if not (waiting and source.parent.is_dir()):
            raise SourceNotFoundError(
                f"events path {source} does not exist; pass the --events file (or its folder) of an analyze or "
                "watch run"
            )
        # A typo looks the same as a watch run yet to write: say which it is taken for.
        err_console.print(
            f"note: {source} does not exist yet; it is read once a run writes it", highlight=False
        )
    return cfg, sources, marks or cfg.marks or default_marks_path(sources)


@app.command()
@_handle_errors
def serve(
    config: ConfigOpt = None,
    events: EventsOpt = None,
    marks: MarksOpt = None,
    metrics_dir: Annotated[
        Path | None,
        typer.Option(
            "--metrics-dir",
            envvar="VIDGRU_METRICS_DIR",
            help="Folder the pipeline writes its metrics to (its VIDGRU_METRICS_DIR); shown at /metrics.",
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (default 127.0.0.1, or serve.host).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", "-p", min=0, max=65535, help="Port to listen on (default 8080, or serve.port)."
        ),
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Serve the events for review: a web page, a REST API and Prometheus metrics.

    The page at / lists the cameras and their state, and the events with thumbnails; an opened event
    shows its score timeline against the threshold and can be marked as a false positive (kept in the
    marks file, exported by 'vidgru events export'). The API is at /api (OpenAPI docs at /docs); /metrics
    holds the pipeline's vidgru_* metrics when analyze/watch run with the same VIDGRU_METRICS_DIR.
    Event files are read again as they grow, so a running 'vidgru watch' shows up live.

    With VIDGRU_API_TOKEN set, every endpoint but /healthz needs `Authorization: Bearer TOKEN`; in a
    browser, open `/?token=TOKEN` once (a cookie keeps it).

    Example: VIDGRU_API_TOKEN=s3cret vidgru serve --events out/events.jsonl --port 8080
    """
    _setup_logging(verbose)
    import socket

    import uvicorn

    from vidgru.errors import ConfigError
    from vidgru.serve.app import TOKEN_ENV, ServeSettings, create_app

    cfg, sources, marks_path = _review_config(config, events, marks, waiting=True)
    host, port = host or cfg.host, port or cfg.port
    try:
        socket.create_server((host, port)).close()
    except OSError as err:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {err.strerror or err}; pick another --port (or check --host)"
        ) from err
    token = os.environ.get(TOKEN_ENV) or None
    settings = ServeSettings(sources, marks_path, metrics_dir or cfg.metrics_dir, token, cfg.page_size)
    web = create_app(settings)
    held = len(web.state.service.store.all())
    out_console.print(
        f"serving {held} event(s) from {', '.join(map(str, sources))} at http://{host}:{port}/ "
        f"({'token required' if token else 'no token: anyone who can reach the port can read'}); "
        f"marks -> {marks_path}" + (f"; metrics from {settings.metrics_dir}" if settings.metrics_dir else ""),
        highlight=False,
    )
    uvicorn.run(web, host=host, port=port, log_level="info" if verbose else "warning", access_log=verbose)


events_app = typer.Typer(
    help="The events the pipeline wrote, with their review marks.", no_args_is_help=True, add_completion=False
)
app.add_typer(events_app, name="events")


class ExportFormatOpt(str, Enum):
    jsonl = "jsonl"
    csv = "csv"


@events_app.command("export")
@_handle_errors
def events_export(
    config: ConfigOpt = None,
    events: EventsOpt = None,
    marks: MarksOpt = None,
    fmt: Annotated[
        ExportFormatOpt, typer.Option("--format", "-f", help="jsonl or csv.")
    ] = ExportFormatOpt.jsonl,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="File to write (default: standard output).")
    ] = None,
) -> None:
    """Write every event with its review mark (false positive or not, note, when), oldest first.

    JSONL: each event's merged record plus "review": {"false_positive", "note", "marked_at"} or null.
    CSV: id, camera, type, start_time, end_time, peak_score, threshold, model, thumbnail, clip,
    false_positive (true/false, empty if unmarked), note, marked_at, source_file.

    Example: vidgru events export --events out/events.jsonl --format csv --out reviewed.csv
    """
    from vidgru.errors import InputError
    from vidgru.outputs import check_output_file
    from vidgru.serve.export import export_events
    from vidgru.serve.marks import ReviewMarks
    from vidgru.serve.store import EventStore

    cfg, sources, marks_path = _review_config(config, events, marks, waiting=False)
    if out is not None:
        check_output_file(out, "--out")
    if (marks or cfg.marks) and not marks_path.is_file():
        raise InputError(f"no review marks file at {marks_path}; pass the --marks file 'vidgru serve' used")
    if not marks_path.is_file():
        err_console.print(
            f"no review marks yet ({marks_path}); exporting the events unmarked", highlight=False
        )
    with tempfile.TemporaryDirectory() as scratch:
        review = ReviewMarks(marks_path if marks_path.is_file() else Path(scratch) / "none.sqlite")
        try:
            if out is None:
                count = export_events(EventStore(sources), review, sys.stdout, fmt.value)
            else:
                with out.open("w", newline="", encoding="utf-8") as fh:
                    count = export_events(EventStore(sources), review, fh, fmt.value)
        finally:
            review.close()
    err_console.print(f"exported {count} event(s)" + (f" -> {out}" if out else ""), highlight=False)


def _expand_multi_values(argv: list[str]) -> list[str]:
    """Rewrite ``--normal a b c`` as ``--normal a --normal b --normal c`` (click takes one value per flag)."""
    out: list[str] = []
    current: str | None = None
    for arg in argv:
        if arg.startswith("-"):
            current = arg if arg in MULTI_VALUE_OPTIONS else None
            out.append(arg)
        elif current is not None and out[-1] != current:
            out += [current, arg]
        else:
            out.append(arg)
    return out


# Typer may ship its own copy of click: its exception classes are reached through typer's public ones.
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def main() -> None:
    try:
        # Not standalone: click's usage errors come back here, to be one line like every other error,
        # instead of the framework's boxed panel.
        code = app(args=_expand_multi_values(sys.argv[1:]), prog_name="vidgru", standalone_mode=False)
    except _UsageError as err:
        if type(err).__name__ == "NoArgsIsHelpError" and err.ctx is not None:
            help_text = err.ctx.get_help()  # typer's rich help prints itself and returns ""
            if help_text:
                out_console.print(help_text, highlight=False)
            raise SystemExit(2) from None
        command = err.ctx.command_path if err.ctx is not None else "vidgru"
        message = " ".join(err.format_message().split()).rstrip(".")
        err_console.print(
            f"[bold red]error:[/] {message}; see '{command} --help'", highlight=False, soft_wrap=True
        )
        raise SystemExit(2) from None
    except typer.Abort:
        err_console.print("[bold red]error:[/] interrupted", highlight=False)
        raise SystemExit(130) from None
    except _ClickException as err:
        err_console.print(f"[bold red]error:[/] {err.format_message()}", highlight=False, soft_wrap=True)
        raise SystemExit(err.exit_code) from None
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
