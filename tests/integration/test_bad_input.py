"""Bad input at the HTTP layer gets a Status (or is timed out) and the server keeps serving."""

import json
import select
import socket
import time
import unittest

from harness import Aggregator, wait_for

BASE = "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices"


class BadInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.agg = Aggregator(args=["--header-timeout", "2"], with_plugins=False)
        cls.agg.start()

    @classmethod
    def tearDownClass(cls):
        cls.agg.stop()

    def assert_status(self, status, body, code, reason=None):
        self.assertEqual(status, code, body)
        doc = json.loads(body)
        self.assertEqual(doc["kind"], "Status")
        self.assertEqual(doc["code"], code)
        if reason:
            self.assertEqual(doc["reason"], reason)

    def test_oversized_headers_are_431(self):
        status, _, body = self.agg.request("GET", "/healthz", headers={"X-Big": "a" * (70 * 1024)})
        self.assert_status(status, body, 431)

    def test_oversized_body_is_413(self):
        status, _, body = self.agg.request("POST", BASE, body="x" * (4 * 1024 * 1024),
                                           headers={"Content-Type": "application/json"})
        self.assert_status(status, body, 413, "RequestEntityTooLarge")

    def test_malformed_json_and_yaml_are_400(self):
        status, _, body = self.agg.request("POST", BASE, body='{"kind": ',
                                           headers={"Content-Type": "application/json"})
        self.assert_status(status, body, 400, "BadRequest")
        status, _, body = self.agg.request("POST", BASE, body="kind: [unclosed\n  - x: :",
                                           headers={"Content-Type": "application/yaml"})
        self.assert_status(status, body, 400, "BadRequest")

    def test_wrong_kind_is_rejected(self):
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
        status, _, body = self.agg.request("POST", BASE, body=obj)
        self.assertIn(status, (400, 422), body)
        self.assertEqual(json.loads(body)["kind"], "Status")

    def test_slowloris_is_timed_out_while_others_are_served(self):
        slow = socket.create_connection(self.agg.host_port)
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        start = time.time()
        # Meanwhile a normal client is served at once.
        status, _, body = self.agg.request("GET", "/healthz", timeout=5)
        self.assertEqual((status, body), (200, b"ok"))
        closed = False
        while time.time() - start < 10 and not closed:
            readable, _, _ = select.select([slow], [], [], 0.2)
            if readable:
                try:
                    closed = True  # a response (408/400) or EOF: either way the server gave up
                    slow.recv(4096)
                except OSError:
                    pass
                break
            try:
                slow.sendall(b"X")  # keep dribbling header bytes
            except OSError:
                closed = True
        self.assertTrue(closed, "slow client was never cut off")
        elapsed = time.time() - start
        self.assertLess(elapsed, 8, "slow client held its connection for %.1fs" % elapsed)
        slow.close()

    def test_garbage_request_line_is_400(self):
        s = socket.create_connection(self.agg.host_port)
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        s.settimeout(5)
        data = s.recv(65536)
        s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data[:100])
        status, _, _ = self.agg.request("GET", "/healthz")
        self.assertEqual(status, 200)

    def test_a_rejected_request_is_logged_with_its_trace(self):
        # Rejected before any handler (framing error): its log line still has the request's trace.
        s = socket.create_connection(self.agg.host_port)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n"
                  b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\nabc")
        s.settimeout(5)
        data = s.recv(65536)
        s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data[:100])
        self.assertTrue(wait_for(lambda: '"trace_id":"0af7651916cd43dd8448eb211c80319c"' in self.agg.log(),
                                 timeout=10), self.agg.log())
        self.assertNotIn("escaped exception", self.agg.log())


if __name__ == "__main__":
    unittest.main()
