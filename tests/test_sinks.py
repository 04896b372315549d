"""Delivery to real servers, without the video pipeline: the schema, the config, start-up errors, every
sink getting every record once, outages, and the outbox across restarts. Kafka runs against
confluent-kafka's own mock cluster (no Kafka broker can be installed from Debian's packages)."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path

import jsonschema
import pytest

from tests.servers import MqttCollector, free_port
from vidgru.config import DeliveryConfig, VidgruConfig, dump_config, load_config
from vidgru.delivery import open_delivery
from vidgru.errors import ConfigError, DeliveryError
from vidgru.events import Event, camera_status_record
from vidgru.schemas import event_schema, validate_record

EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "sinks.example.yaml"


def event(i: int, kind: str = "end", times: str = "seconds") -> dict:
    start, end = (
        (0.1 * i, 0.1 * i + 1.5) if times == "seconds" else ("2024-05-01T12:00:00Z", "2024-05-01T12:00:02Z")
    )
    ev = Event(
        f"ev-{i}",
        "cam1",
        i,
        i + 15,
        start,
        end,
        i + 7,
        2.5,
        40,
        1.5,
        "cam1@abc",
        [10, 20, 40, 50],
        "t.jpg",
        {"reason": "speed"},
    )
    return ev.to_record(kind)


def records(n: int) -> list[dict]:
    out = [event(i) for i in range(n)]
    out.insert(1, camera_status_record("cam1", False, "2024-05-01T12:00:00+00:00", "stream lost"))
    out.append(camera_status_record("cam1", True, "2024-05-01T12:00:30+00:00"))
    return out


def keys(recs: list[dict]) -> list[tuple[str, str]]:
    return sorted((r["id"], r["type"]) for r in recs)


def delivery_cfg(*sinks: dict, **options: object) -> DeliveryConfig:
    return DeliveryConfig.model_validate(
        {"sinks": list(sinks), "retry_initial_s": 0.1, "retry_max_s": 0.5, "drain_timeout_s": 20, **options}
    )


# --- the schema -------------------------------------------------------------------------------------


def test_schema_is_valid_and_takes_every_record_kind() -> None:
    jsonschema.Draft202012Validator.check_schema(event_schema())
    for record in [event(1), event(2, "start", "iso"), event(3, "end", "iso"), *records(0)]:
        validate_record(record)
    with_clip = {**event(4), "clip": "thumbs/cam1_000011_ev-4.mp4"}
    validate_record(with_clip)
    # 'reason' came within schema_version 1: records written before it still validate
    validate_record({k: v for k, v in event(5).items() if k != "reason"})


@pytest.mark.parametrize(
    "change",
    [
        {"type": "update"},
        {"schema_version": 2},
        {"box": [1, 2, 3]},
        {"start_time": "yesterday"},
        {"peak_score": "high"},
        {"camera": ""},
        {"reason": "boredom"},
    ],
)
def test_schema_rejects_bad_event_records(change: dict) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate_record({**event(1), **change})


def test_schema_rejects_bad_status_records() -> None:
    status = camera_status_record("cam1", True, "2024-05-01T12:00:00+00:00")
    for bad in (
        {**status, "time": "noon"},
        {**status, "type": "start"},
        {k: v for k, v in status.items() if k != "id"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate_record(bad)


# --- config -----------------------------------------------------------------------------------------


def _load(tmp_path: Path, text: str) -> DeliveryConfig:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_config(path).delivery


def test_example_config_loads() -> None:
    cfg = load_config(EXAMPLE).delivery
    assert [s.type for s in cfg.sinks] == ["jsonl", "stdout", "webhook", "redis", "mqtt", "kafka"]


@pytest.mark.parametrize(
    ("yaml_sinks", "needle"),
    [
        ("- {type: rabbitmq}", r"delivery\.sinks\.0.*'rabbitmq'.*expected tags"),
        ("- {url: 'redis://x'}", r"delivery\.sinks\.0.*discriminator 'type'"),
        ("- {type: webhook, url: 'ftp://h/x', secret: s}", r"delivery\.sinks\.0\.webhook\.url.*http"),
        ("- {type: webhook, url: 'http://h/x'}", r"delivery\.sinks\.0\.webhook.*secret_env"),
        ("- {type: redis, url: 'http://127.0.0.1:6379'}", r"delivery\.sinks\.0\.redis\.url.*redis://"),
        ("- {type: mqtt, port: 70000}", r"delivery\.sinks\.0\.mqtt\.port"),
        ("- {type: redis}\n    - {type: redis}", r"sinks\[0\] and sinks\[1\] are the same sink"),
        ("- {type: redis, stream: s, colour: red}", r"unknown key 'delivery\.sinks\.0\.redis\.colour'"),
    ],
)
def test_bad_sink_config_names_the_key(tmp_path: Path, yaml_sinks: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        _load(tmp_path, f"delivery:\n  sinks:\n    {yaml_sinks}\n")


def test_inline_secrets_are_not_written_back(tmp_path: Path) -> None:
    cfg = VidgruConfig()
    cfg.delivery = _load(
        tmp_path, "delivery:\n  sinks:\n    - {type: webhook, url: 'http://h/x', secret: hunter2}\n"
    )
    assert "hunter2" not in dump_config(cfg)


# --- start-up errors --------------------------------------------------------------------------------


def test_unreachable_sinks_fail_at_start_naming_the_sink(tmp_path: Path) -> None:
    closed = free_port()
    cases = [
        (
            {"type": "redis", "url": f"redis://127.0.0.1:{closed}/0"},
            rf"sinks\[1\] \(redis\): cannot reach redis://127\.0\.0\.1:{closed}",
        ),
        (
            {"type": "mqtt", "port": closed},
            rf"sinks\[1\] \(mqtt\): cannot reach mqtt://127\.0\.0\.1:{closed}",
        ),
        (
            {"type": "webhook", "url": f"http://127.0.0.1:{closed}/h", "secret": "s"},
            r"sinks\[1\] \(webhook\): cannot reach",
        ),
        (
            {"type": "kafka", "bootstrap_servers": f"127.0.0.1:{closed}", "timeout_s": 2},
            r"sinks\[1\] \(kafka\): cannot reach",
        ),
    ]
    for sink, needle in cases:
        cfg = delivery_cfg({"type": "stdout"}, sink)
        with pytest.raises(DeliveryError, match=needle) as err:
            open_delivery(cfg, tmp_path / "events.jsonl")
        assert "fix" in str(err.value) and err.value.exit_code == 9
        assert not (tmp_path / "events.outbox.sqlite").exists()  # nothing started


def test_missing_secret_env_is_named(tmp_path: Path, webhook) -> None:
    os.environ.pop("VIDGRU_TEST_UNSET_SECRET", None)
    cfg = delivery_cfg({"type": "webhook", "url": webhook.url, "secret_env": "VIDGRU_TEST_UNSET_SECRET"})
    with pytest.raises(
        DeliveryError, match=r"sinks\[0\] \(webhook\): environment variable VIDGRU_TEST_UNSET_SECRET"
    ):
        open_delivery(cfg, tmp_path / "events.jsonl")


def test_check_at_start_off_starts_and_delivers_when_the_sink_appears(tmp_path: Path, redis_server) -> None:
    redis_server.stop()
    cfg = delivery_cfg({"type": "redis", "url": redis_server.url}, check_at_start=False)
    delivery = open_delivery(cfg, tmp_path / "events.jsonl")
    sent = records(3)
    for r in sent:
        delivery.emit(r)
    time.sleep(1)
    redis_server.start()
    assert delivery.close() == {"sinks[0] (redis)": 0}
    assert keys(redis_server.records()) == keys(sent)


# --- delivery ---------------------------------------------------------------------------------------


def test_every_sink_gets_every_record_once(tmp_path: Path, redis_server, mosquitto, webhook, capfd) -> None:
    collector = MqttCollector(mosquitto.port)
    cfg = delivery_cfg(
        {"type": "jsonl", "path": str(tmp_path / "copy.jsonl")},
        {"type": "stdout"},
        {"type": "webhook", "url": webhook.url, "secret": "test-secret"},
        {"type": "redis", "url": redis_server.url, "maxlen": 1000},
        {"type": "mqtt", "port": mosquitto.port},
    )
    delivery = open_delivery(cfg, tmp_path / "events.jsonl")
    sent = records(6)
    for r in sent:
        delivery.emit(r)
    assert all(v == 0 for v in delivery.close().values())
    collector.wait_for(len(sent))
    collector.close()

    written = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert written == sent
    got = {
        "copy.jsonl": [json.loads(line) for line in (tmp_path / "copy.jsonl").read_text().splitlines()],
        "stdout": [json.loads(line) for line in capfd.readouterr().out.splitlines()],
        "webhook": webhook.records(),
        "redis": redis_server.records(),
        "mqtt": collector.records(),
    }
    for name, recs in got.items():
        assert keys(recs) == keys(sent), name  # each once: no duplicates without faults
        for r in recs:
            validate_record(r)
    assert webhook.bad_signatures == 0 and {r.path for r in webhook.received} == {"/hook"}
    assert all(r.headers["X-Vidgru-Event-Id"] == r.record()["id"] for r in webhook.received)
    # camera status: retained on <prefix>/<camera>/status, and vidgru's own availability around the run
    status = [json.loads(m.payload)["type"] for m in collector.on("vidgru/cam1/status")]
    assert status == ["camera_offline", "camera_online"]
    assert [m.payload for m in collector.on("vidgru/available")] == [b"online", b"offline"]
    late = MqttCollector(mosquitto.port, client_id="late-subscriber")
    late.wait_for(1, "vidgru/cam1/status", timeout=5)
    assert [json.loads(m.payload)["type"] for m in late.on("vidgru/cam1/status")] == ["camera_online"]
    assert late.on("vidgru/cam1/status")[0].retain
    late.close()


def test_webhook_retries_5xx_and_keeps_order(tmp_path: Path, webhook) -> None:
    webhook.status = 503
    cfg = delivery_cfg({"type": "webhook", "url": webhook.url, "secret": "test-secret"})
    delivery = open_delivery(cfg, tmp_path / "events.jsonl")
    sent = records(4)
    for r in sent:
        delivery.emit(r)
    time.sleep(1.5)
    assert webhook.received == []
    assert delivery.pending() == {"sinks[0] (webhook)": len(sent)}
    webhook.status = 200
    assert delivery.close() == {"sinks[0] (webhook)": 0}
    assert [r["id"] for r in webhook.records()] == [r["id"] for r in sent]  # oldest first
    with sqlite3.connect(tmp_path / "events.outbox.sqlite") as db:
        (attempts,) = db.execute("SELECT MAX(attempts) FROM deliveries").fetchone()
    assert attempts > 1


def test_wrong_secret_is_not_accepted_by_the_receiver(tmp_path: Path, webhook) -> None:
    cfg = delivery_cfg({"type": "webhook", "url": webhook.url, "secret": "wrong"}, drain_timeout_s=1)
    delivery = open_delivery(cfg, tmp_path / "events.jsonl")
    delivery.emit(event(1))
    delivery.close()
    assert webhook.received == [] and webhook.bad_signatures >= 1


def test_redis_outage_while_emitting_loses_nothing(tmp_path: Path, redis_server) -> None:
    cfg = delivery_cfg({"type": "redis", "url": redis_server.url})
    delivery = open_delivery(cfg, tmp_path / "events.jsonl")
    sent = records(30)
    stopped = threading.Event()

    def outage() -> None:
        redis_server.stop()
        stopped.set()
        time.sleep(3)
        redis_server.start()

    for i, r in enumerate(sent):
        if i == 10:
            threading.Thread(target=outage).start()
            stopped.wait(20)
        delivery.emit(r)  # never blocks on the dead server
        time.sleep(0.02)
    assert delivery.close() == {"sinks[0] (redis)": 0}
    got = redis_server.records()
    assert set(keys(got)) == set(keys(sent)) and len(got) >= len(sent)


def test_undelivered_records_are_sent_by_the_next_run(tmp_path: Path, webhook) -> None:
    webhook.status = 500
    cfg = delivery_cfg({"type": "webhook", "url": webhook.url, "secret": "test-secret"}, drain_timeout_s=0.5)
    first = open_delivery(cfg, tmp_path / "events.jsonl")
    sent = records(3)
    for r in sent:
        first.emit(r)
    assert first.close() == {"sinks[0] (webhook)": len(sent)}
    webhook.status = 200
    second = open_delivery(cfg, tmp_path / "events.jsonl")
    second.emit(sent[0])  # the same record again (a re-run): stored once, sent once
    assert second.close() == {"sinks[0] (webhook)": 0}
    assert keys(webhook.records()) == keys(sent)


def test_a_new_sink_gets_only_new_records(tmp_path: Path, webhook, redis_server) -> None:
    hook = {"type": "webhook", "url": webhook.url, "secret": "test-secret"}
    first = open_delivery(delivery_cfg(hook), tmp_path / "events.jsonl")
    first.emit(event(1))
    first.close()
    second = open_delivery(
        delivery_cfg(hook, {"type": "redis", "url": redis_server.url}), tmp_path / "events.jsonl"
    )
    second.emit(event(2))
    second.close()
    assert [r["id"] for r in redis_server.records()] == ["ev-2"]
    assert [r["id"] for r in webhook.records()] == ["ev-1", "ev-2"]


# --- kafka ------------------------------------------------------------------------------------------


def test_kafka_sink_against_the_client_mock_cluster(tmp_path: Path) -> None:
    """No Kafka broker installs here; librdkafka's mock cluster (test.mock.num.brokers) is a real
    in-process broker speaking the Kafka protocol, read back with a real Consumer."""
    confluent_kafka = pytest.importorskip("confluent_kafka")
    cfg = delivery_cfg(
        {
            "type": "kafka",
            "bootstrap_servers": "unused:9092",
            "topic": "alerts",
            "config": {"test.mock.num.brokers": 1},
        }
    )
    delivery = open_delivery(cfg, tmp_path / "events.jsonl")
    sent = records(5)
    for r in sent:
        delivery.emit(r)
    # The mock cluster lives inside the producer: find its address before the producer closes.
    producer = delivery.sinks[0]._producer  # type: ignore[attr-defined]
    broker = next(iter(producer.list_topics(timeout=5).brokers.values()))
    deadline = time.monotonic() + 20
    while any(delivery.pending().values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": f"{broker.host}:{broker.port}",
            "group.id": "t",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe(["alerts"])
    got: list[tuple[bytes, dict]] = []
    deadline = time.monotonic() + 30
    while len(got) < len(sent) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            got.append((message.key(), json.loads(message.value())))
    consumer.close()
    assert delivery.close() == {"sinks[0] (kafka)": 0}
    assert keys([r for _, r in got]) == keys(sent)
    assert all(key.decode() == r["id"] for key, r in got)


def test_outbox_forgets_only_delivered_records_past_retention(tmp_path: Path, webhook) -> None:
    hook = {"type": "webhook", "url": webhook.url, "secret": "test-secret"}
    first = open_delivery(delivery_cfg(hook), tmp_path / "events.jsonl")
    first.emit(event(1))
    first.close()
    webhook.status = 503
    second = open_delivery(delivery_cfg(hook, drain_timeout_s=0.2), tmp_path / "events.jsonl")
    second.emit(event(2))
    assert second.close() == {"sinks[0] (webhook)": 1}
    webhook.status = 200
    third = open_delivery(delivery_cfg(hook, keep_delivered_days=0), tmp_path / "events.jsonl")
    with sqlite3.connect(tmp_path / "events.outbox.sqlite") as db:
        assert [k for (k,) in db.execute("SELECT key FROM records")] == ["ev-2|end"]  # ev-1 forgotten
    third.emit(event(1))  # forgotten, so it counts as new
    assert third.close() == {"sinks[0] (webhook)": 0}
    assert [r["id"] for r in webhook.records()] == ["ev-1", "ev-2", "ev-1"]
