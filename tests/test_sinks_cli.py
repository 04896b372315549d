"""Events from real `vidgru analyze` runs reach real Redis, MQTT and webhook servers: every event once
per sink, nothing lost when a server restarts mid-run or when vidgru itself is SIGKILLed and run again."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
import yaml

from tests.conftest import FAST_CONFIG, run_cli
from tests.servers import MqttCollector, free_port
from tests.test_cli import assert_one_line_error
from vidgru.schemas import validate_record
from vidgru.synthetic import Intruder, SceneSpec, render_scene

SECRET_ENV = "VIDGRU_TEST_WEBHOOK_SECRET"


@pytest.fixture(scope="module")
def busy_clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three clips with three intruders each, so a run emits several events over several seconds."""
    root = tmp_path_factory.mktemp("busy")
    intruders = (Intruder(2, 2), Intruder(6.5, 2), Intruder(11, 2))
    paths = [root / f"busy_{i}.mp4" for i in range(3)]
    for i, path in enumerate(paths):
        render_scene(path, SceneSpec(seconds=15, seed=10 + i, intruders=intruders))
    return paths


def _yaml(sinks: list[dict], options: dict, **events: object) -> str:
    """The fast test config plus a delivery section: quick retries, a long drain for the outage tests, and
    a threshold low enough that the small test model reports most intruders."""
    options = {"retry_initial_s": 0.2, "retry_max_s": 2.0, "drain_timeout_s": 120, **options}
    sections = {"events": {"threshold": 1.0, **events}, "delivery": {"sinks": sinks, **options}}
    return FAST_CONFIG + yaml.safe_dump(sections, sort_keys=False)


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def keyset(records: list[dict]) -> set[tuple[str, str]]:
    return {(r["id"], r["type"]) for r in records}


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def start_analyze(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """`vidgru analyze` in its own process group, so a SIGKILL takes its Ray processes down with it."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "vidgru", "analyze", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            start_new_session=True,
        )


def finish(proc: subprocess.Popen[bytes], log: Path, timeout: float = 400) -> None:
    assert proc.wait(timeout=timeout) == 0, log.read_text()[-3000:]


def max_attempts(outbox: Path) -> int:
    with sqlite3.connect(outbox) as db:
        return db.execute("SELECT MAX(attempts) FROM deliveries").fetchone()[0]


def outbox_keys(outbox: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(outbox) as db:
        return {tuple(k.split("|")) for (k,) in db.execute("SELECT key FROM records")}  # type: ignore[misc]


def test_every_event_reaches_every_sink_once(
    model_dir: Path, busy_clips: list[Path], tmp_path: Path, redis_server, mosquitto, webhook, monkeypatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, webhook.secret)
    collector = MqttCollector(mosquitto.port)
    config = tmp_path / "c.yaml"
    config.write_text(
        _yaml(
            [
                {"type": "webhook", "url": webhook.url, "secret_env": SECRET_ENV},
                {"type": "redis", "url": redis_server.url},
                {"type": "mqtt", "port": mosquitto.port},
                {"type": "jsonl", "path": str(tmp_path / "copy.jsonl")},
            ],
            {"drain_timeout_s": 60},
            clip_seconds=1.0,
        )
    )
    events = tmp_path / "out" / "events.jsonl"
    result = run_cli(
        "analyze",
        *map(str, busy_clips),
        "--model",
        str(model_dir),
        "--events",
        str(events),
        "--config",
        str(config),
    )
    assert result.returncode == 0, result.stderr
    written = read_jsonl(events)
    assert len(written) >= 5, "the intruders should give several events"
    collector.wait_for(len(written))
    collector.close()
    for name, got in {
        "webhook": webhook.records(),
        "redis": redis_server.records(),
        "mqtt": collector.records(),
        "jsonl copy": read_jsonl(tmp_path / "copy.jsonl"),
    }.items():
        assert sorted(keyset(got)) == sorted(keyset(written)) and len(got) == len(written), name
        for record in got:
            validate_record(record)
    assert webhook.bad_signatures == 0
    # event clips: an MP4 beside each thumbnail, from 1 s before the event to 1 s after it
    for record in written:
        clip, thumb = Path(record["clip"]), Path(record["thumbnail"])
        assert clip.parent == thumb.parent and clip.stem == thumb.stem and clip.suffix == ".mp4"
        cap = cv2.VideoCapture(str(clip))
        frames = 0
        while cap.read()[0]:
            frames += 1
        cap.release()
        first, last = max(0, record["start_frame"] - 10), min(149, record["end_frame"] + 10)
        assert frames == last - first + 1, record


@pytest.mark.parametrize("server", ["redis", "mosquitto"])
def test_server_restart_mid_run_loses_nothing(
    server: str, model_dir: Path, busy_clips: list[Path], tmp_path: Path, request
) -> None:
    """The server stops as soon as vidgru has started, and comes back 10 s after the first event."""
    broker = request.getfixturevalue("redis_server" if server == "redis" else "mosquitto")
    collector = MqttCollector(broker.port) if server == "mosquitto" else None
    sink = (
        {"type": "redis", "url": broker.url} if server == "redis" else {"type": "mqtt", "port": broker.port}
    )
    config = tmp_path / "c.yaml"
    config.write_text(_yaml([sink], {}))
    events, log = tmp_path / "events.jsonl", tmp_path / "vidgru.log"
    outbox = tmp_path / "events.outbox.sqlite"
    proc = start_analyze(
        *map(str, busy_clips),
        "--model",
        str(model_dir),
        "--events",
        str(events),
        "--config",
        str(config),
        log=log,
    )
    try:
        wait_until(outbox.exists, 120, "vidgru to pass its start-up checks")
        broker.stop()
        wait_until(lambda: len(read_jsonl(events)) > 0 or proc.poll() is not None, 300, "the first event")
        time.sleep(10)
        broker.start()
        finish(proc, log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    written = read_jsonl(events)
    assert written, "the run should have found events"
    assert max_attempts(outbox) >= 2, "some delivery should have failed while the server was down"
    if collector is not None:
        collector.wait_for(len(written))
        collector.close()
        got = collector.records()
    else:
        got = broker.records()
    assert keyset(got) == keyset(written)  # duplicates allowed, losses not
    assert len(got) >= len(written)
    assert "delivery failed" in log.read_text()


def test_sigkill_mid_run_then_outbox_delivers(
    model_dir: Path, busy_clips: list[Path], tmp_path: Path, webhook
) -> None:
    webhook.status = 503  # the receiver is down for the whole first run
    config = tmp_path / "c.yaml"
    config.write_text(_yaml([{"type": "webhook", "url": webhook.url, "secret": webhook.secret}], {}))
    events, log, outbox = (
        tmp_path / "events.jsonl",
        tmp_path / "vidgru.log",
        tmp_path / "events.outbox.sqlite",
    )
    args = (
        *map(str, busy_clips),
        "--model",
        str(model_dir),
        "--events",
        str(events),
        "--config",
        str(config),
    )
    proc = start_analyze(*args, log=log)
    try:
        wait_until(lambda: len(read_jsonl(events)) > 0 or proc.poll() is not None, 400, "the first event")
        assert proc.poll() is None, "the run ended before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = read_jsonl(events)
    pending = outbox_keys(outbox)
    assert keyset(at_kill) <= pending and webhook.received == []

    # `vidgru deliver` sends what the outbox holds once the receiver is back
    webhook.status = 200
    result = run_cli("deliver", "--config", str(config), "--events", str(events))
    assert result.returncode == 0, result.stderr
    assert f"sinks[0] (webhook): {len(pending)} sent, 0 pending" in result.stdout
    assert keyset(webhook.records()) == pending and len(webhook.received) == len(pending)

    # and running the analysis again with the same outbox completes it
    rerun = start_analyze(*args, log=log)
    finish(rerun, log)
    written = read_jsonl(events)
    got = webhook.records()
    assert keyset(got) == keyset(written) and len(got) >= len(written)
    assert len(got) == len(keyset(got)), "an event already delivered is not sent again"
    for record in got:
        validate_record(record)


def test_unreachable_sink_stops_analyze_with_one_line(model_dir: Path, clips: dict, tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "c.yaml"
    config.write_text(
        _yaml([{"type": "stdout"}, {"type": "redis", "url": f"redis://127.0.0.1:{port}/0"}], {})
    )
    result = run_cli(
        "analyze", str(clips["intruder"]), "--model", str(model_dir), "--events", str(tmp_path / "e.jsonl"),
        "--config", str(config),
    )  # fmt: skip
    assert_one_line_error(
        result, 9, f"sinks[1] (redis): cannot reach redis://127.0.0.1:{port}", "start it or fix 'url'"
    )

    config.write_text(FAST_CONFIG + "delivery:\n  sinks:\n    - {type: kafka}\n")
    result = run_cli("analyze", str(clips["intruder"]), "--model", str(model_dir), "--config", str(config))
    assert_one_line_error(result, 2, "delivery.sinks.0.kafka.bootstrap_servers", "Field required")


def test_deliver_without_an_outbox_says_so(tmp_path: Path, webhook) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(_yaml([{"type": "webhook", "url": webhook.url, "secret": "s"}], {}))
    result = run_cli("deliver", "--config", str(config), "--events", str(tmp_path / "none.jsonl"))
    assert_one_line_error(result, 9, "no outbox at", "none.outbox.sqlite")
