"""Streaming data-plane routes through the real binary and the real testdata plugin: resources
(echo, a multi-chunk body whose chunks arrive separately), stream subscriptions over NDJSON and
WebSocket sharing one RunStream, publish, and the datasource proxy to a local HTTP server."""

import base64
import http.server
import json
import os
import socket
import tempfile
import threading
import time
import unittest

import websocket  # python3-websocket

from harness import Aggregator, wait_for

PLUGIN = "grafana-testdata-datasource"
GROUP = "testdata.grafana.app"
VERSION = "v0alpha1"
NAME = VERSION + "." + GROUP
BASE = "/apis/%s/%s" % (GROUP, VERSION)
DS = BASE + "/namespaces/default/datasources/testdata"
PROXY_DS = BASE + "/namespaces/default/datasources/proxied"
COLLECTION = "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices"


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request with what it saw, as JSON."""
    protocol_version = "HTTP/1.1"
    seen = []

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        record = {"method": self.command, "path": self.path,
                  "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
        RecordingHandler.seen.append(record)
        out = json.dumps(record).encode()
        self.send_response(207)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "upstream=1")
        self.send_header("X-Upstream", "python")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args):
        pass


def read_chunks(agg, path, count, timeout=20):
    """Reads a chunked response with a raw socket; returns [(arrival time, chunk bytes)]."""
    host, port = agg.host_port
    sock = socket.create_connection((host, port), timeout=timeout)
    auth = "".join("%s: %s\r\n" % kv for kv in agg.auth_header().items())
    sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n" % (path, host, port, auth)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, buf = buf.split(b"\r\n\r\n", 1)
    assert b" 200 " in head.split(b"\r\n")[0], head
    assert b"chunked" in head.lower(), head
    chunks = []
    while len(chunks) < count:
        while b"\r\n" not in buf:
            data = sock.recv(65536)
            if not data:
                return chunks
            buf += data
        size_line, buf = buf.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        while len(buf) < size + 2:
            buf += sock.recv(65536)
        chunks.append((time.monotonic(), buf[:size]))
        buf = buf[size + 2:]
    sock.close()
    return chunks


class NdjsonReader:
    """A streaming GET whose lines are read as they arrive."""

    def __init__(self, agg, path):
        self.conn = agg.connection(timeout=20)
        self.conn.request("GET", path)
        self.resp = self.conn.getresponse()

    def lines(self, n):
        out = []
        while len(out) < n:
            line = self.resp.readline()
            if not line:
                break
            out.append(json.loads(line))
        return out

    def close(self):
        self.conn.close()


class DataPlaneStreamsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        RecordingHandler.seen = []
        cls.upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
        cls.upstream_thread = threading.Thread(target=cls.upstream.serve_forever, daemon=True)
        cls.upstream_thread.start()
        cls.tmp = tempfile.mkdtemp(prefix="dpa-streams-")
        provisioning = os.path.join(cls.tmp, "datasources.yaml")
        with open(provisioning, "w") as f:
            f.write("""apiVersion: 1
datasources:
  - name: TestData
    type: %(plugin)s
    uid: testdata
  - name: Proxied
    type: %(plugin)s
    uid: proxied
    url: http://127.0.0.1:%(port)d/base
    basicAuth: true
    basicAuthUser: alice
    secureJsonData:
      basicAuthPassword: s3cret
""" % {"plugin": PLUGIN, "port": cls.upstream.server_address[1]})
        cls.agg = Aggregator(datasources=provisioning).start()
        obj = {"apiVersion": "aggregation.grafana.app/v0alpha1", "kind": "DataPlaneService",
               "metadata": {"name": NAME},
               "spec": {"pluginID": PLUGIN, "pluginType": "datasource", "group": GROUP,
                        "version": VERSION,
                        "services": [{"type": t} for t in
                                     ("route", "stream", "datasource-proxy", "metrics")]}}
        status, body = cls.agg.json("POST", COLLECTION, obj)
        assert status == 201, (status, body)
        ok = wait_for(lambda: cls.agg.request("GET", DS + "/resources/echo")[0] == 200, timeout=60)
        assert ok, cls.agg.log()

    @classmethod
    def tearDownClass(cls):
        cls.agg.stop()
        cls.upstream.shutdown()

    def plugin_metric(self, name):
        status, _, body = self.agg.request("GET", BASE + "/metrics")
        self.assertEqual(status, 200, body)
        for line in body.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    # --- resources -------------------------------------------------------------------------
    def test_resource_echo(self):
        status, headers, body = self.agg.request(
            "POST", DS + "/resources/echo/sub?x=1&y=two", body=b'{"hello":1}',
            # The caller's own credentials (the admin token) never reach the plugin.
            headers=dict({"Content-Type": "application/json", "X-Custom": "yes",
                          "Cookie": "grafana_session=secret"}, **self.agg.auth_header()))
        self.assertEqual(status, 200, body)
        self.assertTrue(headers["content-type"].startswith("application/json"))
        echo = json.loads(body)
        self.assertEqual(echo["method"], "POST")
        self.assertEqual(echo["path"], "echo/sub")
        self.assertEqual(echo["url"], "echo/sub?x=1&y=two")
        self.assertEqual(echo["body"], '{"hello":1}')
        self.assertEqual(echo["headers"].get("X-Custom"), ["yes"])
        self.assertNotIn("Cookie", echo["headers"])
        self.assertNotIn("Authorization", echo["headers"])

    def test_resource_chunks_arrive_separately(self):
        chunks = read_chunks(self.agg, DS + "/resources/stream?chunks=5", 5)
        self.assertEqual([c for _, c in chunks],
                         [("chunk %d\n" % i).encode() for i in range(1, 6)])
        # The plugin waits 20 ms between chunks; a buffered relay would deliver them together.
        self.assertGreater(chunks[-1][0] - chunks[0][0], 0.05)

    def test_resource_status_and_unknown_datasource(self):
        status, _, _ = self.agg.request("GET", DS + "/resources/status/418")
        self.assertEqual(status, 418)
        status, _, body = self.agg.request(
            "GET", BASE + "/namespaces/default/datasources/nope/resources/echo")
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(body)["kind"], "Status")

    # --- streams ---------------------------------------------------------------------------
    def test_counter_shared_by_ndjson_and_websocket_subscribers(self):
        path = DS + "/stream/counter?data=" + '{"intervalMs":50}'.replace('"', "%22").replace(
            "{", "%7B").replace("}", "%7D").replace(":", "%3A")
        a = NdjsonReader(self.agg, path)
        b = NdjsonReader(self.agg, path)
        host, port = self.agg.host_port
        ws = websocket.create_connection("ws://%s:%d%s" % (host, port, path), timeout=20,
                                         header=["%s: %s" % kv for kv in self.agg.auth_header().items()])
        try:
            self.assertEqual(a.resp.status, 200)
            self.assertEqual(a.resp.getheader("Content-Type"), "application/x-ndjson")
            first_a = a.lines(4)
            first_b = b.lines(4)
            ws_messages = [json.loads(ws.recv()) for _ in range(4)]
            for msgs in (first_a, first_b, ws_messages):
                self.assertEqual(len(msgs), 4)
                self.assertIn("schema", msgs[0])  # the subscribe response data comes first
                for m in msgs[1:]:
                    self.assertIn("data", m)
            # One RunStream for the channel, whatever the number of subscribers.
            self.assertEqual(self.plugin_metric("testdata_streams_running"), 1)
        finally:
            a.close()
            b.close()
            ws.close()
        # Cancelled once the last subscriber is gone.
        self.assertTrue(wait_for(lambda: self.plugin_metric("testdata_streams_running") == 0,
                                 timeout=10), self.agg.log())

    def test_subscribe_refusals(self):
        status, _, body = self.agg.request("GET", DS + "/stream/denied")
        self.assertEqual(status, 403, body)
        status, _, body = self.agg.request("GET", DS + "/stream/nothing-here")
        self.assertEqual(status, 404, body)

    def test_publish_echo(self):
        reader = NdjsonReader(self.agg, DS + "/stream/echo")
        try:
            self.assertEqual(reader.resp.status, 200)
            time.sleep(0.3)  # let the echo RunStream start
            status, _, body = self.agg.request("POST", DS + "/stream/echo",
                                               body=b'{"message":"hi"}')
            self.assertEqual(status, 200, body)
            self.assertEqual(json.loads(body), {})
            got = reader.lines(1)
            self.assertEqual(got, [{"message": "hi"}])
        finally:
            reader.close()
        status, _, _ = self.agg.request("POST", DS + "/stream/counter", body=b"{}")
        self.assertEqual(status, 403)

    # --- datasource proxy ------------------------------------------------------------------
    def test_datasource_proxy(self):
        RecordingHandler.seen = []
        status, headers, body = self.agg.request(
            "POST", PROXY_DS + "/proxy/api/v1/query?query=up&time=1", body=b"q=1",
            headers=dict({"Content-Type": "application/x-www-form-urlencoded",
                          "Cookie": "grafana_session=x"}, **self.agg.auth_header()))
        self.assertEqual(status, 207, body)
        self.assertEqual(headers.get("x-upstream"), "python")
        self.assertNotIn("set-cookie", headers)
        seen = json.loads(body)
        self.assertEqual(seen["method"], "POST")
        self.assertEqual(seen["path"], "/base/api/v1/query?query=up&time=1")
        self.assertEqual(seen["body"], "q=1")
        self.assertEqual(seen["headers"]["authorization"],
                         "Basic " + base64.b64encode(b"alice:s3cret").decode())
        self.assertNotIn("cookie", seen["headers"])

    def test_datasource_proxy_upstream_down(self):
        # The testdata datasource has no url: 400; an unknown one: 404.
        status, _, _ = self.agg.request("GET", DS + "/proxy/x")
        self.assertEqual(status, 400)
        status, _, _ = self.agg.request(
            "GET", BASE + "/namespaces/default/datasources/nope/proxy/x")
        self.assertEqual(status, 404)


if __name__ == "__main__":
    unittest.main()
