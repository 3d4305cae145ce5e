#!/usr/bin/python3
"""Soak (DESIGN §8, not in CI): the release aggregator under mixed load for a while, with its
resources sampled every 10 s. Flat means: after warm-up, RSS, open file descriptors and threads each
stay within 10 % of their value at the end of warm-up (300 s, or half a shorter run), no 5xx arrives that the chaos did not cause, and no plugin
process is left over.

Load, all at once, each by its own threads:
  queries      POST .../datasources/testdata/query (examples/query.json), back to back
  streams      subscribe to the testdata counter stream, read 20 packets, leave, again
  watches      GET dataplaneservices?watch=1&timeoutSeconds=5 until it ends, again
  writes       create a DataPlaneService, delete it, again
  delegate     GET /api/v1/namespaces through the delegate
Chaos: SIGKILL of the testdata plugin every 90 s (longer than the supervisor's 60 s healthy run, so
each restart comes after its initial 1 s back-off); the delegate stopped and restarted every 120 s.
From a kill (restart) until a request sent after it gets a 200 (plus a second for requests already
on their way), a 502/503 on the plugin routes (the delegate route) is expected, and so is a stream
read that times out; every other 5xx is not.
File descriptors and threads are compared between samples taken with the same number of plugin
processes running (each plugin process holds pipes, a socket and a reader thread).

Usage: bench/soak/soak.py BUILD_DIR [SECONDS]   (prints a Markdown table and a verdict; exit 1 when
not flat). bench/soak/run.sh builds the release binary and records the table in bench/README.md.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GROUP_PATH = "/apis/testdata.datasource.grafana.app/v0alpha1/namespaces/default/datasources/testdata"
DPS = "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices"
# Seconds before the reference sample: the store keeps five minutes of watch history in memory
# (StoreOptions::retain_duration), so memory grows with the writes until then by design.
WARMUP = 300
SAMPLE_EVERY = 10

DELEGATE_SOURCE = r'''
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        body = json.dumps({"kind": "NamespaceList", "apiVersion": "v1", "items": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def alive(pid):
    """True while the process exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Soak:
    def __init__(self, build, seconds):
        self.build = build
        self.seconds = seconds
        self.work = tempfile.mkdtemp(prefix="dpa-soak-")
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts = {}  # route -> {status: n}
        self.unexpected = []  # (elapsed, route, status, body)
        self.events = {"plugin": [], "delegate": []}  # chaos times (monotonic)
        # Per cause: when the last kill or restart happened, and when a request started after it
        # first got a 200 (None: not yet).
        self.chaos_at = {"plugin": None, "delegate": None}
        self.recovered_at = {"plugin": None, "delegate": None}
        self.delegate_port = free_port()
        self.delegate = None
        self.start_delegate()
        with open(os.path.join(ROOT, "examples", "query.json"), "rb") as f:
            self.query = f.read()

    # --- processes -------------------------------------------------------------------------
    def start_delegate(self):
        self.delegate = subprocess.Popen([sys.executable, "-c", DELEGATE_SOURCE, str(self.delegate_port)])

    def start_aggregator(self):
        data = os.path.join(self.work, "data")
        self.log = open(os.path.join(self.work, "aggregator.log"), "wb")
        self.agg = subprocess.Popen(
            [os.path.join(self.build, "aggregator", "dataplane-aggregator"), "--port", "0",
             "--secure-port", "-1", "--data-dir", data, "--log-level", "warn",
             "--plugins-dir", os.path.join(self.build, "plugins-dist"),
             "--datasources", os.path.join(ROOT, "examples", "provisioning", "datasources.yaml"),
             "--delegate-url", "http://127.0.0.1:%d" % self.delegate_port],
            stdout=self.log, stderr=subprocess.STDOUT)
        kubeconfig = os.path.join(data, "aggregator.kubeconfig")
        deadline = time.time() + 30
        while not os.path.exists(kubeconfig):
            if time.time() > deadline or self.agg.poll() is not None:
                raise SystemExit("aggregator did not start; see " + self.log.name)
            time.sleep(0.05)
        with open(kubeconfig) as f:
            self.url = next(line.split()[1] for line in f if "server:" in line)
        with open(os.path.join(data, "admin.token")) as f:
            self.token = f.read().strip()
        self.host, self.port = urllib.parse.urlsplit(self.url).hostname, urllib.parse.urlsplit(self.url).port

    # --- requests --------------------------------------------------------------------------
    def conn(self, timeout=30):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def headers(self, extra=None):
        h = {"Authorization": "Bearer " + self.token}
        h.update(extra or {})
        return h

    def record(self, route, status, body=b"", started=None):
        """One finished request; `started` is when it was sent (monotonic; default: now)."""
        cause = "delegate" if route == "delegate" else "plugin" if route in ("query", "stream") else None
        now = time.monotonic()
        started = now if started is None else started
        with self.lock:
            self.counts.setdefault(route, {}).setdefault(status, 0)
            self.counts[route][status] += 1
            chaos = self.chaos_at.get(cause)
            if status == 200 and chaos is not None and started > chaos and self.recovered_at[cause] is None:
                self.recovered_at[cause] = now
            if status >= 500 and route != "setup" and not self.expected(route, cause, status, now):
                self.unexpected.append((round(now - self.started), route, status, body[:200]))

    def expected(self, route, cause, status, now):
        """A failure the chaos explains: after a kill (restart) and before the route answered a
        request sent after it (with a second's grace for requests already on their way)."""
        if cause is None or self.chaos_at[cause] is None or now < self.chaos_at[cause]:
            return False
        recovered = self.recovered_at[cause]
        if recovered is not None and now > recovered + 1:
            return False
        return status in (502, 503) or (route == "stream" and status == 599)

    def request(self, route, method, path, body=None, headers=None):
        c = self.conn()
        started = time.monotonic()
        try:
            c.request(method, path, body=body, headers=self.headers(headers))
            r = c.getresponse()
            data = r.read()
            self.record(route, r.status, data, started)
            return r.status
        except OSError as e:
            self.record(route, 599, str(e).encode(), started)
            return 599
        finally:
            c.close()

    # --- load ------------------------------------------------------------------------------
    def queries(self):
        c = self.conn()
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                c.request("POST", GROUP_PATH + "/query", body=self.query, headers=self.headers())
                r = c.getresponse()
                data = r.read()
                self.record("query", r.status, data, started)
            except OSError as e:
                self.record("query", 599, str(e).encode(), started)
                c.close()
                c = self.conn()
        c.close()

    def streams(self):
        path = GROUP_PATH + "/stream/counter?data=%7B%22intervalMs%22%3A20%7D"
        while not self.stop.is_set():
            c = self.conn(timeout=20)
            started = time.monotonic()
            try:
                c.request("GET", path, headers=self.headers())
                r = c.getresponse()
                if r.status != 200:
                    self.record("stream", r.status, r.read(), started)
                    time.sleep(0.2)
                    continue
                for _ in range(20):
                    if not r.fp.readline():
                        break
                self.record("stream", 200, b"", started)
            except OSError as e:
                self.record("stream", 599, str(e).encode(), started)
            finally:
                c.close()

    def watches(self):
        while not self.stop.is_set():
            c = self.conn(timeout=30)
            try:
                c.request("GET", DPS + "?watch=1&timeoutSeconds=5", headers=self.headers())
                r = c.getresponse()
                r.read()
                self.record("watch", r.status)
            except OSError as e:
                self.record("watch", 599, str(e).encode())
            finally:
                c.close()

    def writes(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            name = "v1.soak-%d.example.com" % (n % 50)
            obj = {"apiVersion": "aggregation.grafana.app/v0alpha1", "kind": "DataPlaneService",
                   "metadata": {"name": name},
                   "spec": {"pluginID": "grafana-testdata-datasource", "pluginType": "datasource",
                            "group": "soak-%d.example.com" % (n % 50), "version": "v1",
                            "services": [{"type": "query"}]}}
            self.request("create", "POST", DPS, json.dumps(obj), {"Content-Type": "application/json"})
            self.request("delete", "DELETE", DPS + "/" + name)
            time.sleep(0.05)

    def delegated(self):
        while not self.stop.is_set():
            self.request("delegate", "GET", "/api/v1/namespaces")
            time.sleep(0.02)

    def chaos(self):
        next_kill, next_restart = 90, 120
        while not self.stop.wait(1):
            elapsed = time.monotonic() - self.started
            if elapsed >= next_kill:
                next_kill += 90
                # The clock starts once the processes are dead: a request sent before could
                # still be answered by them and must not count as the recovery.
                for pid in children(self.agg.pid):
                    os.kill(pid, signal.SIGKILL)
                with self.lock:
                    self.events["plugin"].append(time.monotonic())
                    self.chaos_at["plugin"] = time.monotonic()
                    self.recovered_at["plugin"] = None
            if elapsed >= next_restart:
                next_restart += 120
                self.delegate.kill()
                self.delegate.wait()
                with self.lock:
                    self.events["delegate"].append(time.monotonic())
                    self.chaos_at["delegate"] = time.monotonic()
                    self.recovered_at["delegate"] = None
                time.sleep(2)
                self.start_delegate()

    # --- run -------------------------------------------------------------------------------
    def sample(self):
        pid = self.agg.pid
        with self.lock:
            done = sum(sum(c.values()) for c in self.counts.values())
        return {"t": round(time.monotonic() - self.started),
                "rss_mb": proc_status(pid, "VmRSS") / 1024,
                "fds": len(os.listdir("/proc/%d/fd" % pid)),
                "threads": proc_status(pid, "Threads"),
                "plugins": len(children(pid)),
                "requests": done}

    def run(self):
        self.start_aggregator()
        obj = {"apiVersion": "aggregation.grafana.app/v0alpha1", "kind": "DataPlaneService",
               "metadata": {"name": "v0alpha1.testdata.datasource.grafana.app"},
               "spec": {"pluginID": "grafana-testdata-datasource", "pluginType": "datasource",
                        "group": "testdata.datasource.grafana.app", "version": "v0alpha1",
                        "services": [{"type": "query"}, {"type": "stream"}]}}
        self.started = time.monotonic()
        assert self.request("setup", "POST", DPS, json.dumps(obj), {"Content-Type": "application/json"}) == 201
        deadline = time.time() + 60
        while self.request("setup", "POST", GROUP_PATH + "/query", self.query) != 200:
            if time.time() > deadline:
                raise SystemExit("testdata never answered; see " + self.log.name)
            time.sleep(0.2)
        self.counts.clear()
        self.started = time.monotonic()
        workers = ([self.queries] * 4 + [self.streams] * 2 + [self.watches] * 2 +
                   [self.writes, self.delegated, self.chaos])
        threads = [threading.Thread(target=w, daemon=True) for w in workers]
        for t in threads:
            t.start()
        samples = []
        while time.monotonic() - self.started < self.seconds:
            time.sleep(SAMPLE_EVERY - (time.monotonic() - self.started) % SAMPLE_EVERY)
            samples.append(self.sample())
        self.stop.set()
        for t in threads:
            t.join(30)
        return samples

    def shutdown(self):
        """SIGTERM; returns (exit code or "hung", plugin processes left). A process that has not
        exited 60 s later is a failure of the soak: it is then killed with its plugins."""
        plugins = children(self.agg.pid)
        self.agg.send_signal(signal.SIGTERM)
        try:
            code = self.agg.wait(60)
        except subprocess.TimeoutExpired:
            code = "hung (no exit 60 s after SIGTERM; see %s)" % self.log.name
            for pid in children(self.agg.pid):
                os.kill(pid, signal.SIGKILL)
            self.agg.kill()
            self.agg.wait()
        left = [p for p in plugins if alive(p)]
        self.delegate.kill()
        return code, left


def verdict(samples, unexpected, leftover):
    warmup = min(WARMUP, samples[-1]["t"] // 2)
    reference = next(s for s in samples if s["t"] >= warmup)
    after = [s for s in samples if s["t"] >= reference["t"]]
    lines, flat = [], True
    for key in ("rss_mb", "fds", "threads"):
        alike = after if key == "rss_mb" else [s for s in after if s["plugins"] == reference["plugins"]]
        high = max(s[key] for s in alike)
        low = min(s[key] for s in alike)
        ok = high <= reference[key] * 1.10 and low >= reference[key] * 0.90
        flat = flat and ok
        lines.append("- %s: %s at %d s, then %s..%s: %s" % (
            key, fmt(reference[key]), reference["t"], fmt(low), fmt(high),
            "flat (within 10 %)" if ok else "NOT flat"))
    lines.append("- unexpected 5xx: %d%s" % (len(unexpected), "" if not unexpected else " " + repr(unexpected[:5])))
    lines.append("- plugin processes left after SIGTERM: %d" % len(leftover))
    return flat and not unexpected and not leftover, lines


def fmt(v):
    return "%.1f" % v if isinstance(v, float) else str(v)


def main():
    build = sys.argv[1]
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 600
    soak = Soak(build, seconds)
    try:
        samples = soak.run()
    finally:
        code, leftover = soak.shutdown()
    print("| t (s) | RSS (MB) | fds | threads | plugin processes | requests so far |")
    print("|---:|---:|---:|---:|---:|---:|")
    for s in samples:
        print("| %d | %.1f | %d | %d | %d | %d |" % (s["t"], s["rss_mb"], s["fds"], s["threads"],
                                                  s["plugins"], s["requests"]))
    print()
    print("Requests by route and status: " + json.dumps(
        {route: {str(k): v for k, v in sorted(c.items())} for route, c in sorted(soak.counts.items())}))
    print("Chaos: %d plugin SIGKILLs, %d delegate restarts; exit code after SIGTERM: %s" % (
        len(soak.events["plugin"]), len(soak.events["delegate"]), code))
    ok, lines = verdict(samples, soak.unexpected, leftover)
    ok = ok and code == 0
    print("\n".join(lines))
    print("VERDICT: " + ("flat" if ok else "NOT flat"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
