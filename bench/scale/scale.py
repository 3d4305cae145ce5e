#!/usr/bin/python3
"""Scale benchmark (issue "10,000 DataPlaneServices and 1,000 watchers"; DESIGN §5): the release
aggregator with N stored DataPlaneServices and W watchers, measured as a client sees it.

For each (objects, watchers) pair: create the objects (create rate), wait until the store is quiet
(the availability controller writes each object's status once), list them (list time, bytes), RSS
then, start W watches at the list's resourceVersion (time until every one has its response head), create
one more object and time until each watcher
has seen its ADDED event (p50/p99/max over watchers; watchers that never see it within the
deadline are counted), RSS of the process at the end, and apply-to-routable: 20 more objects created
one at a time, each timed from the create's response until a query to its group is routed (a 400
for the empty body instead of the 404 of an unknown group). Watches run on one asyncio loop over raw
sockets, so 1,000 of them cost the client little.

Usage: bench/scale/scale.py BUILD_DIR [OBJECTS:WATCHERS ...]   (default 100:10 100:1000
10000:10 10000:1000). Prints a Markdown table; bench/scale/run.sh records it in bench/README.md.
"""

import asyncio
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse

DPS = "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices"
DEADLINE = 30.0  # seconds a watcher may take to see the new object before it counts as missed


def obj(i):
    return {"apiVersion": "aggregation.grafana.app/v0alpha1", "kind": "DataPlaneService",
            "metadata": {"name": "v1.g%05d.example.com" % i, "labels": {"bench": "scale"}},
            "spec": {"pluginID": "bench-plugin", "pluginType": "datasource",
                     "group": "g%05d.example.com" % i, "version": "v1",
                     "services": [{"type": "query"}, {"type": "health"}]}}


class Aggregator:
    def __init__(self, build, extra_args=()):
        self.work = tempfile.mkdtemp(prefix="dpa-scale-")
        data = os.path.join(self.work, "data")
        self.log = open(os.path.join(self.work, "aggregator.log"), "wb")
        self.proc = subprocess.Popen(
            [os.path.join(build, "aggregator", "dataplane-aggregator"), "--port", "0",
             "--secure-port", "-1", "--anonymous-auth", "--data-dir", data, "--log-level", "error",
             "--max-requests-inflight", "0", "--max-connections", "20000"] + list(extra_args),
            stdout=self.log, stderr=subprocess.STDOUT)
        kubeconfig = os.path.join(data, "aggregator.kubeconfig")
        deadline = time.time() + 30
        while not os.path.exists(kubeconfig):
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit("aggregator did not start; see " + self.log.name)
            time.sleep(0.05)
        with open(kubeconfig) as f:
            url = next(line.split()[1] for line in f if "server:" in line)
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port

    def rss_mb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024

    def stop(self):
        self.proc.terminate()
        self.proc.wait(60)


def create_all(agg, start, count):
    c = http.client.HTTPConnection(agg.host, agg.port, timeout=60)
    for i in range(start, start + count):
        c.request("POST", DPS, body=json.dumps(obj(i)), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status != 201:
            raise SystemExit("create %d: %d" % (i, r.status))
    c.close()


def settle(agg):
    """Waits until the resourceVersion stays put for a second (status writes are done)."""
    last = None
    while True:
        rv = list_all(agg)[2]
        if rv == last:
            return
        last = rv
        time.sleep(1)


def apply_to_routable(agg, start, count):
    c = http.client.HTTPConnection(agg.host, agg.port, timeout=60)
    took = []
    for i in range(start, start + count):
        c.request("POST", DPS, body=json.dumps(obj(i)), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        created = time.perf_counter()
        path = "/apis/%s/v1/namespaces/default/datasources/ds/query" % obj(i)["spec"]["group"]
        while True:
            c.request("POST", path, body="{}", headers={"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            if r.status != 404:
                break
        took.append((time.perf_counter() - created) * 1000)
    c.close()
    return sorted(took)


def list_all(agg):
    c = http.client.HTTPConnection(agg.host, agg.port, timeout=120)
    started = time.perf_counter()
    c.request("GET", DPS)
    r = c.getresponse()
    body = r.read()
    took = time.perf_counter() - started
    c.close()
    doc = json.loads(body)
    return took, len(body), doc["metadata"]["resourceVersion"], len(doc["items"])


async def watcher(agg, rv, name, ready, seen_at):
    reader, writer = await asyncio.open_connection(agg.host, agg.port)
    writer.write(("GET %s?watch=1&resourceVersion=%s HTTP/1.1\r\nHost: x\r\n\r\n" % (DPS, rv)).encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit("watch: " + head.decode(errors="replace")[:200])
    ready.release()
    needle = name.encode()
    try:
        while True:
            line = await reader.readline()  # chunk sizes and event lines alike
            if not line:
                return
            if needle in line:
                seen_at.append(time.perf_counter())
                return
    finally:
        writer.close()


async def fan_out(agg, rv, watchers, new_index):
    name = obj(new_index)["metadata"]["name"]
    ready = asyncio.Semaphore(0)
    seen_at = []
    connecting = time.perf_counter()
    tasks = [asyncio.create_task(watcher(agg, rv, name, ready, seen_at)) for _ in range(watchers)]
    for _ in range(watchers):
        await ready.acquire()
    started = time.perf_counter()
    watch_start_ms = (started - connecting) * 1000
    await asyncio.get_running_loop().run_in_executor(None, create_all, agg, new_index, 1)
    done, pending = await asyncio.wait(tasks, timeout=DEADLINE)
    for t in pending:
        t.cancel()
    delays = sorted((t - started) * 1000 for t in seen_at)
    return delays, watchers - len(delays), watch_start_ms


def pct(values, p):
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def run(build, objects, watchers):
    agg = Aggregator(build)
    try:
        started = time.perf_counter()
        create_all(agg, 0, objects)
        create_rate = objects / (time.perf_counter() - started)
        settle(agg)
        list_s, list_bytes, rv, items = list_all(agg)
        assert items == objects, (items, objects)
        rest_mb = agg.rss_mb()
        delays, missed, watch_start_ms = asyncio.run(fan_out(agg, rv, watchers, objects))
        end_mb = agg.rss_mb()
        routable = apply_to_routable(agg, objects + 1, 20)
        return {"objects": objects, "watchers": watchers, "create_per_s": create_rate,
                "list_ms": list_s * 1000, "list_mb": list_bytes / 1e6, "watch_start_ms": watch_start_ms,
                "p50": pct(delays, 50), "p99": pct(delays, 99), "max": delays[-1] if delays else float("nan"),
                "missed": missed, "rest_mb": rest_mb, "rss_mb": end_mb,
                "routable_p50": pct(routable, 50), "routable_max": routable[-1]}
    finally:
        agg.stop()


def main():
    build = sys.argv[1]
    pairs = sys.argv[2:] or ["100:10", "100:1000", "10000:10", "10000:1000"]
    print("| objects | watchers | creates/s | list (ms, MB) | RSS with the objects (MB) | all watches started (ms) | new object seen by every watcher: p50 / p99 / max (ms) | missed within %d s | RSS with the watchers (MB) | apply to routable: p50 / max (ms) |" % DEADLINE)
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for pair in pairs:
        objects, watchers = (int(x) for x in pair.split(":"))
        r = run(build, objects, watchers)
        print("| {objects} | {watchers} | {create_per_s:.0f} | {list_ms:.0f}, {list_mb:.1f} | {rest_mb:.0f} | "
              "{watch_start_ms:.0f} | {p50:.0f} / {p99:.0f} / {max:.0f} | {missed} | {rss_mb:.0f} | "
              "{routable_p50:.1f} / {routable_max:.1f} |".format(**r), flush=True)


if __name__ == "__main__":
    main()
