#!/usr/bin/python3
"""Replicas benchmark (issue "Scale-out"; DESIGN §7): three release aggregators with
--storage-backend=etcd3 on a three-member etcd (Debian's etcd 3.4, loopback, data on disk), all on
this machine, measured as a client sees them:

- create throughput through one replica, one connection and 8 concurrent ones, beside the same
  against one aggregator on SQLite;
- apply to routable on all three: 200 DataPlaneServices, each created through replica i % 3 and
  timed from the create's response until a query to its group is routed (not 404) on every replica;
- 1,000 watchers spread over the three replicas, started at one list's resourceVersion; one more
  object is created through replica 0 (once the status writes for the earlier ones are done) and
  the delay until each watcher has its ADDED event taken;
- dataplane_aggregator_etcd_watches on each replica while the watchers are open.

Usage: bench/replicas/replicas.py BUILD_DIR. Prints Markdown; bench/replicas/run.sh records it.
"""

import asyncio
import http.client
import json
import os
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench", "scale"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from scale import DPS, Aggregator, obj, pct, settle, watcher  # noqa: E402
from etcd_cluster import EtcdCluster  # noqa: E402

CREATES = 500
APPLIES = 200
WATCHERS = 1000


def post(conn, i):
    conn.request("POST", DPS, body=json.dumps(obj(i)), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    if r.status != 201:
        raise SystemExit("create %d: %d" % (i, r.status))


def creates_per_s(agg, start, count, connections):
    def worker(offset):
        c = http.client.HTTPConnection(agg.host, agg.port, timeout=60)
        for i in range(start + offset, start + count, connections):
            post(c, i)
        c.close()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(connections)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count / (time.perf_counter() - started)


def routed(conn, group):
    conn.request("POST", "/apis/%s/v1/namespaces/default/datasources/ds/query" % group, body="{}",
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    return r.status != 404


def apply_to_routable_everywhere(aggs, start, count):
    conns = [http.client.HTTPConnection(a.host, a.port, timeout=60) for a in aggs]
    took = []
    for n, i in enumerate(range(start, start + count)):
        post(conns[n % len(aggs)], i)
        created = time.perf_counter()
        group = obj(i)["spec"]["group"]
        for c in conns:
            while not routed(c, group):
                pass
        took.append((time.perf_counter() - created) * 1000)
    for c in conns:
        c.close()
    return sorted(took)


def metric(agg, name):
    c = http.client.HTTPConnection(agg.host, agg.port, timeout=30)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    return next(float(l.split()[1]) for l in text.splitlines() if l.startswith(name + " "))


async def fan_out(aggs, rv, watchers, new_index):
    name = obj(new_index)["metadata"]["name"]
    ready = asyncio.Semaphore(0)
    seen_at = []
    tasks = [asyncio.create_task(watcher(aggs[k % len(aggs)], rv, name, ready, seen_at))
             for k in range(watchers)]
    for _ in range(watchers):
        await ready.acquire()
    etcd_watches = [metric(a, "dataplane_aggregator_etcd_watches") for a in aggs]
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    await loop.run_in_executor(None, lambda: post(http.client.HTTPConnection(aggs[0].host, aggs[0].port), new_index))
    done, pending = await asyncio.wait(tasks, timeout=30)
    for t in pending:
        t.cancel()
    delays = sorted((t - started) * 1000 for t in seen_at)
    return delays, watchers - len(delays), etcd_watches


def main():
    build = sys.argv[1]
    sqlite = Aggregator(build)
    try:
        sqlite_one = creates_per_s(sqlite, 0, CREATES, 1)
        sqlite_eight = creates_per_s(sqlite, CREATES, CREATES, 8)
    finally:
        sqlite.stop()

    with EtcdCluster(3) as etcd:
        args = ["--storage-backend", "etcd3", "--etcd-servers", etcd.servers]
        aggs = [Aggregator(build, args + ["--replica-id", "r%d" % k]) for k in range(3)]
        try:
            etcd_one = creates_per_s(aggs[0], 0, CREATES, 1)
            etcd_eight = creates_per_s(aggs[0], CREATES, CREATES, 8)
            routable = apply_to_routable_everywhere(aggs, 2 * CREATES, APPLIES)
            # The leader's status writes for what was just created are done (as in bench/scale),
            # so the watchers measure one new object, not the replay of that backlog.
            for a in aggs:
                settle(a)
            c = http.client.HTTPConnection(aggs[1].host, aggs[1].port, timeout=60)
            c.request("GET", DPS + "?limit=1")
            rv = json.loads(c.getresponse().read())["metadata"]["resourceVersion"]
            c.close()
            delays, missed, etcd_watches = asyncio.run(fan_out(aggs, rv, WATCHERS, 2 * CREATES + APPLIES))
        finally:
            for a in aggs:
                a.stop()

    print("| | SQLite, one aggregator | etcd3, 3 members, 3 replicas |")
    print("|---|---:|---:|")
    print("| creates/s, 1 connection | %.0f | %.0f |" % (sqlite_one, etcd_one))
    print("| creates/s, 8 connections | %.0f | %.0f |" % (sqlite_eight, etcd_eight))
    print()
    print("| apply through one replica to routable on all three, %d applies: p50 / p99 / max (ms) | "
          "%d watchers over the 3 replicas, new object seen by each: p50 / p99 / max (ms) | missed within 30 s | "
          "etcd watches per replica |" % (APPLIES, WATCHERS))
    print("|---:|---:|---:|---:|")
    print("| %.1f / %.1f / %.1f | %.0f / %.0f / %.0f | %d | %s |" % (
        pct(routable, 50), pct(routable, 99), routable[-1], pct(delays, 50), pct(delays, 99),
        delays[-1] if delays else float("nan"), missed, ", ".join("%.0f" % w for w in etcd_watches)))


if __name__ == "__main__":
    main()
