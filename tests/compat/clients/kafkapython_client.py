"""kafka-python driver of the compat tests (JSON on stdin and stdout)."""
import base64
import json
import sys
import time

import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic


def dec(s):
    return None if s is None else base64.b64decode(s)


def enc(b):
    return None if b is None else base64.b64encode(b).decode()


def api_version(req):
    """req["api_version"] ("0.9", "0.10") pins the protocol kafka-python
    speaks instead of probing the broker (the legacy tests)."""
    v = req.get("api_version")
    return {"api_version": tuple(int(x) for x in v.split("."))} if v else {}


def produce(req):
    codec = req.get("codec", "none")
    p = KafkaProducer(bootstrap_servers=req["bootstrap"], acks="all", linger_ms=5, max_request_size=8 << 20,
                      compression_type=None if codec == "none" else codec, **api_version(req))
    futures = []
    for r in req["records"]:
        headers = [(h["key"], dec(h["value"])) for h in r.get("headers") or []]
        futures.append(p.send(req["topic"], key=dec(r["key"]), value=dec(r["value"]), partition=r["partition"], headers=headers))
    p.flush(60)
    out = []
    for f in futures:
        md = f.get(timeout=60)
        out.append({"partition": md.partition, "offset": md.offset})
    p.close()
    return out


def consume(req):
    c = KafkaConsumer(bootstrap_servers=req["bootstrap"], enable_auto_commit=False, group_id=None,
                      max_partition_fetch_bytes=8 << 20, fetch_max_wait_ms=100, **api_version(req))
    parts = sorted(c.partitions_for_topic(req["topic"]) or [])
    tps = [TopicPartition(req["topic"], p) for p in parts]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    got, deadline = [], time.time() + 60
    while len(got) < req["n"] and time.time() < deadline:
        for tp, msgs in c.poll(timeout_ms=500).items():
            for m in msgs:
                got.append({"partition": m.partition, "offset": m.offset, "key": enc(m.key), "value": enc(m.value),
                            "headers": [{"key": k, "value": enc(v)} for k, v in (m.headers or [])]})
    c.close()
    return got


def group_consume(req):
    """Consumes n records as the only member of a group (subscribe, poll,
    commit synchronously, close) and returns them (the legacy tests: with
    api_version (0, 9) this is JoinGroup/SyncGroup v0, OffsetCommit v2 and
    OffsetFetch v1)."""
    c = KafkaConsumer(req["topic"], bootstrap_servers=req["bootstrap"], group_id=req["group"], enable_auto_commit=False,
                      auto_offset_reset="earliest", fetch_max_wait_ms=100, **api_version(req))
    got, deadline = [], time.time() + 60
    while len(got) < req["n"] and time.time() < deadline:
        for tp, msgs in c.poll(timeout_ms=500).items():
            for m in msgs:
                got.append({"partition": m.partition, "offset": m.offset, "key": enc(m.key), "value": enc(m.value)})
    c.commit()
    c.close()
    return got


def produce_stream(req):
    """Produces until SIGTERM (the cluster failover test): record i has key
    and value "k%07d" and goes to partition i % partitions; one JSON line per
    delivery report as it arrives and one ("sent") per record handed to the
    client, then flushes. kafka-python 2.0 retries
    nothing unless told to, and has no idempotent producer."""
    import signal
    import threading
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    lock = threading.Lock()

    def emit(o):
        with lock:
            print(json.dumps(o), flush=True)

    p = KafkaProducer(bootstrap_servers=req["bootstrap"], acks="all", linger_ms=5, retries=1000, retry_backoff_ms=200)

    def ok(k):
        return lambda md: emit({"ev": "ack", "key": k, "partition": md.partition, "offset": md.offset})

    def failed(k):
        return lambda e: emit({"ev": "error", "key": k, "msg": repr(e)})

    i = 0
    while not stop:
        k = "k%07d" % i
        f = p.send(req["topic"], key=k.encode(), value=k.encode(), partition=i % req["partitions"])
        f.add_callback(ok(k))
        f.add_errback(failed(k))
        i += 1
        emit({"ev": "sent", "n": i})
        time.sleep(req["pause_ms"] / 1000)
    p.flush(150)
    p.close()
    emit({"ev": "done", "sent": i})


def admin(req):
    a = KafkaAdminClient(bootstrap_servers=req["bootstrap"])
    op, topic = req["op"], req["topic"]
    try:
        if op == "create_topic":
            a.create_topics([NewTopic(topic, req["partitions"], 1, topic_configs=req["configs"])])
            return {}
        if op == "describe_config":
            resp = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            for res in resp[0].resources:
                for entry in res[4]:
                    if entry[0] == req["key"]:
                        return {"value": entry[1]}
            return {"value": None}
        if op == "alter_config":
            resp = a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={req["key"]: req["value"]})])
            for res in resp.resources:
                if res[0] != 0:
                    raise RuntimeError("alter_configs error %d %s" % (res[0], res[1]))
            return {}
        if op == "delete_topic":
            a.delete_topics([topic])
            return {}
    finally:
        a.close()
    raise ValueError(op)


def member(req):
    """A long-running group member: JSON-lines events on stdout, commits
    after processing, SIGTERM closes (and leaves the group)."""
    import signal
    from kafka import ConsumerRebalanceListener
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    def emit(o):
        print(json.dumps(o), flush=True)

    assignor = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor,
                "sticky": StickyPartitionAssignor}[req["strategy"]]
    c = KafkaConsumer(bootstrap_servers=req["bootstrap"], group_id=req["group"], enable_auto_commit=False,
                      auto_offset_reset="earliest", session_timeout_ms=req["session_timeout_ms"],
                      heartbeat_interval_ms=1000, partition_assignment_strategy=[assignor], fetch_max_wait_ms=100)
    owned = set()

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            try:
                c.commit()
            except Exception as e:  # noqa: BLE001 - reported, not fatal
                emit({"ev": "error", "msg": "commit on revoke: %s" % e})
            owned.difference_update(tp.partition for tp in revoked)
            emit({"ev": "owned", "partitions": sorted(owned)})

        def on_partitions_assigned(self, assigned):
            owned.clear()
            owned.update(tp.partition for tp in assigned)
            emit({"ev": "owned", "partitions": sorted(owned)})

    c.subscribe([req["topic"]], listener=Listener())
    while not stop:
        batches = c.poll(timeout_ms=200)
        recs = [[m.partition, m.offset] for msgs in batches.values() for m in msgs]
        if recs:
            emit({"ev": "records", "recs": recs})
            try:
                c.commit()
            except Exception as e:  # noqa: BLE001 - reported, not fatal
                emit({"ev": "error", "msg": "commit: %s" % e})
    c.close()


def main():
    req = json.load(sys.stdin)
    if req["op"] == "version":
        print(json.dumps({"version": kafka.__version__}))
        return
    fn = {"produce": produce, "consume": consume, "group_consume": group_consume, "member": member, "produce_stream": produce_stream}.get(req["op"], admin)
    out = fn(req)
    if req["op"] not in ("member", "produce_stream"):
        print(json.dumps(out))


main()
