"""Group scenarios with confluent-kafka-python (librdkafka) for the compat tests.

Reads one JSON request on stdin, prints JSON-lines events while it runs and a
final {"ev": "result", ...} line. Scenarios:

delete_subscribed: one consumer subscribes to topics a and b; once it owns
    every partition of both, topic a is deleted with the client's admin API;
    the consumer must see a's partitions go, keep every partition of b and
    read records produced to b after the deletion; then close() is timed.
subscription_changes: n consumers of one group (cooperative-sticky) change
    their subscriptions among topics following a playbook; at the end every
    consumer subscribes to the final topic, and the result reports what each
    owns once the assignment is exclusive, complete and balanced (or the
    deadline passed).
"""
import json
import os
import sys
import threading
import time

import confluent_kafka
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient


def emit(o):
    print(json.dumps(o), flush=True)


def consumer_conf(req, strategy):
    conf = {"bootstrap.servers": req["bootstrap"], "group.id": req["group"], "auto.offset.reset": "earliest",
            "partition.assignment.strategy": strategy, "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000, "fetch.wait.max.ms": 100,
            # Clients notice a deleted topic through metadata refreshes.
            "topic.metadata.refresh.interval.ms": 2000}
    if os.environ.get("COMPAT_RDKAFKA_DEBUG"):
        conf["debug"] = os.environ["COMPAT_RDKAFKA_DEBUG"]
    return conf


def timed_close(c, limit):
    """close() in a thread: librdkafka's close can block for good, and the
    result must still be reported. Returns seconds, or None past limit."""
    done = threading.Event()
    start = time.time()

    def run():
        c.close()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    if done.wait(limit):
        return round(time.time() - start, 2)
    return None


def delete_subscribed(req):
    a_topic, b_topic = req["topics"]
    parts = {a_topic: req["partitions"][0], b_topic: req["partitions"][1]}
    owned = set()

    def on_assign(c, ps):
        if req["strategy"] == "cooperative-sticky":
            owned.update((p.topic, p.partition) for p in ps)
        else:
            owned.clear()
            owned.update((p.topic, p.partition) for p in ps)
        emit({"ev": "owned", "partitions": sorted(owned)})

    def on_revoke(c, ps):
        owned.difference_update((p.topic, p.partition) for p in ps)
        emit({"ev": "owned", "partitions": sorted(owned)})

    c = Consumer(consumer_conf(req, req["strategy"]))
    c.subscribe([a_topic, b_topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
    every = {(t, p) for t, n in parts.items() for p in range(n)}
    only_b = {(b_topic, p) for p in range(parts[b_topic])}

    state = {"got": 0}

    def poll_until(cond, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline and not cond():
            for m in c.consume(num_messages=100, timeout=0.2):
                if m.error():
                    emit({"ev": "error", "msg": str(m.error())})
                elif m.topic() == b_topic and m.value() == b"after-delete":
                    state["got"] += 1

    res = {"ev": "result", "libversion": confluent_kafka.libversion()[0]}
    poll_until(lambda: owned == every, 60)
    res["owned_before"] = sorted(owned)
    admin = AdminClient({"bootstrap.servers": req["bootstrap"]})
    admin.delete_topics([a_topic])[a_topic].result(30)
    emit({"ev": "deleted", "topic": a_topic})
    p = Producer({"bootstrap.servers": req["bootstrap"]})
    for i in range(req["records"]):
        p.produce(b_topic, b"after-delete", partition=i % parts[b_topic])
    p.flush(30)
    poll_until(lambda: owned == only_b and state["got"] >= req["records"], 60)
    res["owned_after"] = sorted(owned)
    res["b_records"] = state["got"]
    res["close_seconds"] = timed_close(c, req["close_limit_s"])
    emit(res)


def subscription_changes(req):
    n = req["consumers"]
    owned = [set() for _ in range(n)]
    cs = []
    for i in range(n):
        conf = consumer_conf(req, "cooperative-sticky")
        conf["client.id"] = "member-%d" % i
        cs.append(Consumer(conf))

    def callbacks(i):
        def on_assign(c, ps):
            owned[i].update((p.topic, p.partition) for p in ps)

        def on_revoke(c, ps):
            owned[i].difference_update((p.topic, p.partition) for p in ps)
        return on_assign, on_revoke

    def poll_all(until):
        while time.time() < until:
            for c in cs:
                m = c.poll(0.01)
                if m is not None and m.error():
                    emit({"ev": "error", "msg": str(m.error())})

    start = time.time()
    for step in req["playbook"]:
        poll_all(start + step["at_ms"] / 1000.0)
        i, topics = step["consumer"], step["topics"]
        emit({"ev": "subscribe", "consumer": i, "topics": topics, "at": round(time.time() - start, 1)})
        if topics:
            on_assign, on_revoke = callbacks(i)
            cs[i].subscribe(topics, on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
        else:
            cs[i].unsubscribe()
    final, parts = req["final_topic"], req["final_partitions"]
    want = {(final, p) for p in range(parts)}
    deadline = time.time() + req["settle_s"]
    while time.time() < deadline:
        poll_all(time.time() + 1)
        union = [tp for o in owned for tp in o]
        if len(union) == len(want) and set(union) == want and \
                max(len(o) for o in owned) - min(len(o) for o in owned) <= 1:
            break
    res = {"ev": "result", "owned": [sorted(o) for o in owned], "elapsed": round(time.time() - start, 1)}
    # The test reads the broker's view of the group now: keep the members
    # alive (polling) a little longer. The result goes out before the
    # consumers close, which is not what this scenario checks.
    emit({"ev": "settled"})
    poll_all(time.time() + 10)
    emit(res)
    for c in cs:
        timed_close(c, 15)


def main():
    req = json.load(sys.stdin)
    {"delete_subscribed": delete_subscribed, "subscription_changes": subscription_changes}[req["op"]](req)
    sys.stdout.flush()
    # A close that never returned leaves librdkafka threads behind: exit
    # without waiting for them.
    os._exit(0)


main()
