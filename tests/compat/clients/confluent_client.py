"""confluent-kafka-python (librdkafka) driver of the compat tests.

Reads one JSON request on stdin, does it against the broker, prints one JSON
result on stdout. Bytes travel as base64; null stays null.
"""
import base64
import json
import os
import sys
import time

import confluent_kafka
from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic


# req["conf"], when present, is extra client configuration (the legacy
# tests pass api.version.request=false and broker.version.fallback).


def dec(s):
    return None if s is None else base64.b64decode(s)


def enc(b):
    return None if b is None else base64.b64encode(b).decode()


def produce(req):
    conf = {"bootstrap.servers": req["bootstrap"], "compression.type": req.get("codec", "none"),
            "enable.idempotence": req.get("idempotent", False), "message.max.bytes": 8 << 20,
            "linger.ms": 5, "acks": "all"}
    conf.update(req.get("conf") or {})
    p = Producer(conf)
    out = [None] * len(req["records"])

    def report(i):
        def cb(err, msg):
            out[i] = {"error": str(err)} if err else {"partition": msg.partition(), "offset": msg.offset()}
        return cb

    for i, r in enumerate(req["records"]):
        headers = [(h["key"], dec(h["value"])) for h in r.get("headers") or []]
        while True:
            try:
                p.produce(req["topic"], key=dec(r["key"]), value=dec(r["value"]), partition=r["partition"],
                          headers=headers or None, on_delivery=report(i))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    p.flush(60)
    return out


def consume(req):
    c = Consumer({"bootstrap.servers": req["bootstrap"], "group.id": "compat-unused", "enable.auto.commit": False,
                  "fetch.message.max.bytes": 8 << 20, "fetch.wait.max.ms": 100, **(req.get("conf") or {})})
    md = c.list_topics(req["topic"], timeout=20)
    parts = sorted(md.topics[req["topic"]].partitions)
    c.assign([TopicPartition(req["topic"], p, OFFSET_BEGINNING) for p in parts])
    got = poll_n(c, req["n"])
    c.close()
    return got


def poll_n(c, n):
    """Polls c until it returned n records (or 60 s passed)."""
    got, deadline = [], time.time() + 60
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            raise RuntimeError(str(m.error()))
        got.append({"partition": m.partition(), "offset": m.offset(), "key": enc(m.key()), "value": enc(m.value()),
                    "headers": [{"key": k, "value": enc(v)} for k, v in (m.headers() or [])]})
    return got


def group_consume(req):
    """Consumes n records as the only member of a group (subscribe, poll,
    commit synchronously, close) and returns them (the legacy tests: with
    an old broker.version.fallback this is JoinGroup/SyncGroup v0,
    OffsetCommit v2 and OffsetFetch v1)."""
    c = Consumer({"bootstrap.servers": req["bootstrap"], "group.id": req["group"], "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100, **(req.get("conf") or {})})
    c.subscribe([req["topic"]])
    got = poll_n(c, req["n"])
    c.commit(asynchronous=False)
    c.close()
    return got


def member(req):
    """A long-running group member: JSON-lines events on stdout, commits
    after processing, SIGTERM closes (and leaves the group)."""
    import signal
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    def emit(o):
        print(json.dumps(o), flush=True)

    conf = {"bootstrap.servers": req["bootstrap"], "group.id": req["group"], "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "session.timeout.ms": req["session_timeout_ms"],
            "heartbeat.interval.ms": 1000, "partition.assignment.strategy": req["strategy"], "fetch.wait.max.ms": 100}
    if req.get("instance_id"):
        conf["group.instance.id"] = req["instance_id"]
    if os.environ.get("COMPAT_RDKAFKA_DEBUG"):
        conf["debug"] = os.environ["COMPAT_RDKAFKA_DEBUG"]
    c = Consumer(conf)
    owned = set()
    # processed: partition -> next offset after the last processed record.
    # Commits name these offsets: the consumer's positions can run ahead of
    # what the application saw around a rebalance.
    processed = {}

    def commit(parts, why):
        offs = [TopicPartition(req["topic"], p, processed[p]) for p in parts if p in processed]
        if not offs:
            return
        try:
            c.commit(offsets=offs, asynchronous=False)
        except confluent_kafka.KafkaException as e:
            emit({"ev": "error", "msg": "commit %s: %s" % (why, e)})

    def on_assign(consumer, parts):
        owned.update(p.partition for p in parts)
        emit({"ev": "owned", "partitions": sorted(owned)})

    def on_revoke(consumer, parts):
        commit([p.partition for p in parts], "on revoke")
        for p in parts:
            processed.pop(p.partition, None)
        owned.difference_update(p.partition for p in parts)
        emit({"ev": "owned", "partitions": sorted(owned)})

    def on_lost(consumer, parts):
        for p in parts:
            processed.pop(p.partition, None)
        owned.difference_update(p.partition for p in parts)
        emit({"ev": "owned", "partitions": sorted(owned)})

    c.subscribe([req["topic"]], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    while not stop:
        msgs = c.consume(num_messages=200, timeout=0.2)
        recs = []
        for m in msgs:
            if m.error():
                emit({"ev": "error", "msg": str(m.error())})
            else:
                recs.append([m.partition(), m.offset()])
                processed[m.partition()] = m.offset() + 1
        if recs:
            emit({"ev": "records", "recs": recs})
            commit(sorted({r[0] for r in recs}), "after processing")
    c.close()
    return None


def produce_stream(req):
    """Produces until SIGTERM (the cluster failover test): record i has key
    and value "k%07d" and goes to partition i % partitions; one JSON line per
    delivery report as it arrives and one ("sent") per record handed to the
    client, then flushes and reports how many records the client still held."""
    import signal
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    def emit(o):
        print(json.dumps(o), flush=True)

    p = Producer({"bootstrap.servers": req["bootstrap"], "acks": "all", "enable.idempotence": req["idempotent"],
                  "linger.ms": 5, "message.timeout.ms": 120000})

    def report(err, msg):
        k = msg.key().decode()
        if err:
            emit({"ev": "error", "key": k, "msg": str(err)})
        else:
            emit({"ev": "ack", "key": k, "partition": msg.partition(), "offset": msg.offset()})

    i = 0
    while not stop:
        k = "k%07d" % i
        try:
            p.produce(req["topic"], key=k, value=k, partition=i % req["partitions"], on_delivery=report)
        except BufferError:
            p.poll(0.1)
            continue
        i += 1
        emit({"ev": "sent", "n": i})
        p.poll(req["pause_ms"] / 1000)
    left = p.flush(150)
    emit({"ev": "done", "sent": i, "unreported": left})


def admin(req):
    a = AdminClient({"bootstrap.servers": req["bootstrap"]})
    op, topic = req["op"], req["topic"]
    if op == "create_topic":
        fs = a.create_topics([NewTopic(topic, req["partitions"], 1, config=req["configs"])])
        fs[topic].result(30)
        return {}
    if op == "describe_config":
        fs = a.describe_configs([ConfigResource("topic", topic)])
        entries = list(fs.values())[0].result(30)
        e = entries.get(req["key"])
        return {"value": e.value if e else None}
    if op == "alter_config":
        # librdkafka 2.0 has only the non-incremental AlterConfigs: it
        # replaces the topic's overrides, so send the whole wanted set.
        fs = a.alter_configs([ConfigResource("topic", topic, set_config={req["key"]: req["value"]})])
        list(fs.values())[0].result(30)
        return {}
    if op == "delete_topic":
        a.delete_topics([topic])[topic].result(30)
        return {}
    raise ValueError(op)


def main():
    req = json.load(sys.stdin)
    if req["op"] == "version":
        print(json.dumps({"version": "%s, librdkafka %s" % (confluent_kafka.version()[0], confluent_kafka.libversion()[0])}))
        return
    fn = {"produce": produce, "consume": consume, "group_consume": group_consume, "member": member,
          "produce_stream": produce_stream}.get(req["op"], admin)
    out = fn(req)
    if req["op"] not in ("member", "produce_stream"):
        print(json.dumps(out))


main()
