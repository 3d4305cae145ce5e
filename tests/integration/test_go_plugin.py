"""A plugin built the way Grafana's are (Go, grpc-go, hashicorp/go-plugin's Serve), dropped into a
plugins directory: the aggregator starts it with the go-plugin handshake, queries it (the golden
SDK frame comes back as Grafana's frame JSON), maps its gRPC errors, health-checks it, restarts it
after SIGKILL and stops it through GRPCController.Shutdown. The same plugin misbehaves on request
(a 100 MB reply, malformed Arrow, a reply that is not protobuf, no answer, an exit mid-call, a
stream that floods or dies), and each case must end in a Status or a clean stream end while the
process keeps serving. Source: tests/integration/goplugin/. Built here with Debian's Go toolchain
and Go packages (GOPATH mode, no network)."""

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import Aggregator, BUILD_DIR, SOURCE_DIR, wait_for

PLUGIN = "dpa-go-datasource"
GROUP = "go.example.com"
COLLECTION = "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices"
DATASOURCE = "/apis/%s/v1/namespaces/default/datasources/go" % GROUP
# The Grafana SDK fixtures, as copied for the frames tests.
FIXTURES = os.path.join(SOURCE_DIR, "tests", "frames", "testdata")
GOLDEN_ARROW = os.path.join(FIXTURES, "all_types.golden.arrow")
GOLDEN_JSON = os.path.join(FIXTURES, "all_types.golden.json")


def build_go_plugin(plugins_dir):
    """Builds goplugin/ into <plugins_dir>/go/ with a plugin.json, as a plugin archive unpacks."""
    work = tempfile.mkdtemp(prefix="dpa-goplugin-")
    try:
        shutil.copy(os.path.join(os.path.dirname(__file__), "goplugin", "main.go"), work)
        shutil.copy(GOLDEN_ARROW, os.path.join(work, "golden.arrow"))
        target = os.path.join(plugins_dir, "go")
        os.makedirs(target)
        cache = os.path.join(BUILD_DIR or tempfile.gettempdir(), "go-cache")
        env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode", GOCACHE=cache,
                   GOFLAGS="", CGO_ENABLED="0")
        # Grafana's binary name: <executable>_<os>_<GOARCH>.
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        subprocess.run(["go", "build", "-o", os.path.join(target, "gpx_go_linux_" + arch), "."],
                       cwd=work, env=env, check=True, capture_output=True, timeout=300)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with open(os.path.join(target, "plugin.json"), "w") as f:
        json.dump({"id": PLUGIN, "type": "datasource", "name": "Go datasource", "backend": True,
                   "executable": "gpx_go", "info": {"version": "1.0.0"}}, f)


def query(ref_ids):
    return {"queries": [{"refId": r, "datasource": {"type": PLUGIN, "uid": "go"}} for r in ref_ids]}


class GoPluginTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="dpa-go-it-")
        plugins = os.path.join(cls.dir, "plugins")
        try:
            build_go_plugin(plugins)
        except subprocess.CalledProcessError as e:
            raise AssertionError("go build failed:\n" + e.stderr.decode(errors="replace"))
        datasources = os.path.join(cls.dir, "datasources.yaml")
        with open(datasources, "w") as f:
            f.write("apiVersion: 1\ndatasources:\n  - name: Go\n    type: %s\n    uid: go\n" % PLUGIN)
        cls.agg = Aggregator(plugins_dir=plugins, datasources=datasources).start()
        status, body = cls.agg.json("POST", COLLECTION, {
            "apiVersion": "aggregation.grafana.app/v0alpha1", "kind": "DataPlaneService",
            "metadata": {"name": "v1." + GROUP},
            "spec": {"pluginID": PLUGIN, "pluginType": "datasource", "group": GROUP, "version": "v1",
                     "services": [{"type": "query"}, {"type": "health"}, {"type": "stream"}]}})
        assert status == 201, (status, body)
        ok = wait_for(lambda: cls.agg.request("POST", DATASOURCE + "/query", query(["A"]))[0] == 200,
                      timeout=60)
        assert ok, cls.agg.log()

    @classmethod
    def tearDownClass(cls):
        cls.agg.stop()  # also asserts the plugin process is gone
        shutil.rmtree(cls.dir, ignore_errors=True)

    def go_pid(self):
        pids = self.agg.plugin_pids()
        self.assertEqual(len(pids), 1, pids)
        return pids[0]

    def test_query_returns_the_golden_frame(self):
        status, body = self.agg.json("POST", DATASOURCE + "/query", query(["A", "B"]))
        self.assertEqual(status, 200, body)
        with open(GOLDEN_JSON) as f:
            golden = json.load(f)
        for ref in ("A", "B"):
            result = body["results"][ref]
            self.assertEqual(result["status"], 200)
            self.assertEqual(result["frames"], [golden])

    def test_plugin_context_user_is_the_authenticated_user(self):
        # The admin token authenticates as "admin"; a header claiming another user changes nothing.
        status, body = self.agg.json("POST", DATASOURCE + "/query", query(["whoami"]),
                                     headers={"X-Grafana-User": "mallory", "X-Remote-User": "mallory"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["results"]["whoami"]["error"], "login=admin")

    def test_grpc_errors_become_status(self):
        status, body = self.agg.json("POST", DATASOURCE + "/query", query(["fail"]))
        self.assertEqual(status, 502, body)
        self.assertEqual(body["kind"], "Status")
        # grpc-go percent-encodes the message on the wire.
        self.assertEqual(body["message"], "plugin %s failed: go says no: 100%% \u2717" % PLUGIN)

    def test_health(self):
        status, body = self.agg.json("GET", DATASOURCE + "/health")
        self.assertEqual((status, body["status"]), (200, "OK"), body)
        self.assertTrue(body["message"].startswith("go plugin ok; traceparent=00-"), body)

    def test_trace_context_reaches_the_plugin(self):
        # Both plugin transports: QueryData (our HTTP/2 channel) and CheckHealth (gRPC's channel).
        sent = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}
        seen = "traceparent=%(traceparent)s tracestate=%(tracestate)s" % sent
        status, body = self.agg.json("POST", DATASOURCE + "/query", query(["trace"]), headers=sent)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["results"]["trace"]["error"], seen)
        status, body = self.agg.json("GET", DATASOURCE + "/health", headers=sent)
        self.assertEqual((status, body["message"]), (200, "go plugin ok; " + seen), body)
        self.assertTrue(wait_for(lambda: '"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"' in self.agg.log(),
                                 timeout=10), self.agg.log())

        # No traceparent (or an invalid one): a new trace, the same in the plugin and the log line.
        for headers in ({}, {"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01", "tracestate": "a=b"}):
            status, body = self.agg.json("POST", DATASOURCE + "/query", query(["trace"]), headers=headers)
            self.assertEqual(status, 200, body)
            got = body["results"]["trace"]["error"]
            self.assertRegex(got, r"^traceparent=00-[0-9a-f]{32}-[0-9a-f]{16}-00 tracestate=$")
            trace_id = got[len("traceparent=00-"):][:32]
            self.assertNotEqual(trace_id, "0" * 32)
            self.assertTrue(wait_for(lambda: '"trace_id":"%s"' % trace_id in self.agg.log(), timeout=10),
                            self.agg.log())

    def test_sigkill_restarts_and_queries_work_again(self):
        first = self.go_pid()
        os.kill(first, signal.SIGKILL)
        restarted = wait_for(lambda: [p for p in self.agg.plugin_pids() if p != first], timeout=30)
        self.assertTrue(restarted, self.agg.log())
        ok = wait_for(lambda: self.agg.request("POST", DATASOURCE + "/query", query(["A"]))[0] == 200,
                      timeout=30)
        self.assertTrue(ok, self.agg.log())


    # --- a plugin that misbehaves (DESIGN §8): a Status for the client, the process unharmed ---

    def assert_still_serving(self):
        status, body = self.agg.json("POST", DATASOURCE + "/query", query(["A"]))
        self.assertEqual(status, 200, body)
        self.assertEqual(self.agg.request("GET", COLLECTION)[0], 200)

    def test_malformed_replies_are_502(self):
        for ref, text in (("badarrow", "arrow"), ("badproto", "querydataresponse")):
            status, body = self.agg.json("POST", DATASOURCE + "/query", query([ref]))
            self.assertEqual(status, 502, body)
            self.assertEqual(body["kind"], "Status")
            self.assertIn(text, body["message"].lower())
            self.assert_still_serving()

    def test_a_plugin_that_never_answers_is_504(self):
        started = time.monotonic()
        status, body = self.agg.json("POST", DATASOURCE + "/query?timeout=1s", query(["hang"]))
        self.assertEqual(status, 504, body)
        self.assertEqual(body["reason"], "Timeout")
        self.assertLess(time.monotonic() - started, 20)
        self.assert_still_serving()

    def test_a_100_mb_reply_leaves_memory_bounded(self):
        sizes = []
        for _ in range(3):
            status, body = self.agg.json("POST", DATASOURCE + "/query", query(["huge"]))
            # 100 MB of zeros where an Arrow frame should be.
            self.assertEqual(status, 502, body)
            self.assert_still_serving()
            sizes.append(self.agg.rss_kb())
        # Each reply is freed: the third costs no more than the first did.
        self.assertLess(sizes[2] - sizes[0], 200 * 1024, sizes)

    def test_a_plugin_that_dies_mid_call_is_restarted(self):
        first = self.go_pid()
        status, body = self.agg.json("POST", DATASOURCE + "/query", query(["exit"]))
        self.assertIn(status, (502, 503), body)
        self.assertEqual(body["kind"], "Status")
        ok = wait_for(lambda: self.agg.request("POST", DATASOURCE + "/query", query(["A"]))[0] == 200,
                      timeout=30)
        self.assertTrue(ok, self.agg.log())
        self.assertNotEqual(self.go_pid(), first)  # one process, the new one: none leaked

    def stream(self, path, rcvbuf=None):
        """A raw GET of a plugin stream; returns the socket after sending the request."""
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(20)
        s.connect(self.agg.host_port)
        s.sendall(("GET %s/stream/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                   % (DATASOURCE, path, self.agg.token)).encode())
        return s

    def test_a_stream_whose_plugin_dies_keeps_the_process_serving(self):
        first = self.go_pid()
        s = self.stream("die")
        got = b""
        while got.count(b'"n":') < 3:
            data = s.recv(65536)
            self.assertTrue(data, got)
            got += data
        self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:200])
        s.close()
        ok = wait_for(lambda: [p for p in self.agg.plugin_pids() if p != first] and
                      self.agg.request("POST", DATASOURCE + "/query", query(["A"]))[0] == 200, timeout=30)
        self.assertTrue(ok, self.agg.log())
        self.assertEqual(len(wait_for(lambda: len(self.agg.plugin_pids()) == 1 and
                                      self.agg.plugin_pids(), timeout=30)), 1)

    def test_a_flooding_stream_drops_only_the_slow_subscriber(self):
        dropped_before = self.agg.metric("dataplane_aggregator_stream_slow_subscribers_dropped_total") or 0
        received = [0]
        stop = threading.Event()
        fast = self.stream("flood")

        def read_fast():
            while not stop.is_set():
                try:
                    data = fast.recv(1 << 20)
                except OSError:
                    return
                if not data:
                    return
                received[0] += len(data)

        reader = threading.Thread(target=read_fast, daemon=True)
        reader.start()
        slow = self.stream("flood", rcvbuf=4096)  # same channel; never read
        try:
            dropped = wait_for(lambda: (self.agg.metric(
                "dataplane_aggregator_stream_slow_subscribers_dropped_total") or 0) > dropped_before, 90)
            self.assertTrue(dropped, self.agg.log())
            # The fast subscriber was not dropped with it: its stream goes on.
            after_drop = received[0]
            self.assertTrue(wait_for(lambda: received[0] > after_drop + (1 << 20), 30))
            self.assertTrue(reader.is_alive())
            self.assert_still_serving()
        finally:
            stop.set()
            fast.close()
            slow.close()
            reader.join(10)


if __name__ == "__main__":
    unittest.main()
