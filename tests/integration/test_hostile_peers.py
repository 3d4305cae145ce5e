"""Hostile delegates and bad client input against the real binary (issue: robustness). Every case:
the client gets a Status (or a cleanly cut stream), and the process and every other route keep
working. Each test here was a one-request outage before it was fixed."""

import http.client
import json
import os
import signal
import socket
import time
import unittest

from harness import Aggregator, example, wait_for
from hostile_delegate import HostileDelegate

BASE = "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices"


def raw_exchange(agg, data, timeout=10):
    """Sends raw bytes on a new connection, the admin token added after the request line, and
    returns everything read until the server closes (or `timeout`)."""
    s = socket.create_connection(agg.host_port, timeout=timeout)
    line, _, rest = data.partition(b"\r\n")
    auth = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in agg.auth_header().items())
    s.sendall(line + b"\r\n" + auth + rest)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    s.close()
    return out


class HostileDelegateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.delegate = HostileDelegate().__enter__()
        cls.agg = Aggregator(delegate_url=cls.delegate.url, with_plugins=False,
                             args=["--request-timeout", "3"])
        cls.agg.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.agg.stop()
        finally:
            cls.delegate.__exit__()

    def setUp(self):
        self.delegate.apis_doc = None

    def tearDown(self):
        # Whatever the case did, the process is alive and both its own routes and the delegate's
        # are still served.
        self.assertIsNone(self.agg.proc.poll(), "the aggregator exited:\n" + self.agg.log())
        status, _, body = self.agg.request("GET", "/healthz", timeout=5)
        self.assertEqual((status, body), (200, b"ok"))
        status, _, body = self.agg.request("GET", "/ok", timeout=5)
        self.assertEqual((status, body), (200, b"fine"))

    def assert_status(self, status, body, code):
        self.assertEqual(status, code, body)
        doc = json.loads(body)
        self.assertEqual((doc["kind"], doc["code"]), ("Status", code), doc)
        return doc

    def test_openapi_index_with_an_unexpected_delegate_document(self):
        # Regression: `kubectl apply` fetches /openapi/v3; a delegate index without "paths" (or
        # with a wrongly typed one) aborted the process.
        for _ in range(3):
            status, _, body = self.agg.request("GET", "/openapi/v3")
            self.assertEqual(status, 200, body)
            paths = json.loads(body)["paths"]
            self.assertIn("apis/aggregation.grafana.app/v0alpha1", paths)

    def test_wrongly_typed_discovery_documents(self):
        legacy = json.dumps({"kind": "APIGroupList", "groups": [
            {"name": 5}, 7, {"name": "bad.example.com", "versions": "nope"},
            {"name": "ok.example.com", "versions": [{"version": 1}, {"groupVersion": "ok.example.com/v1", "version": "v1"}],
             "preferredVersion": "v1"},
            {"name": "aggregation.grafana.app", "versions": {"a": 1}}]}).encode()
        self.delegate.apis_doc = (b"application/json", legacy)
        status, _, body = self.agg.request("GET", "/apis")
        self.assertEqual(status, 200, body)
        groups = {g["name"]: g for g in json.loads(body)["groups"]}
        self.assertIn("aggregation.grafana.app", groups)
        self.assertEqual([v["version"] for v in groups["ok.example.com"]["versions"]], ["v1"])

        aggregated = json.dumps({"kind": "APIGroupDiscoveryList", "items": [
            {"metadata": {"name": 3}}, {"metadata": "x"}, 9,
            {"metadata": {"name": "y.example.com"}, "versions": [{"version": 1}, "v2"]},
            {"metadata": {"name": "aggregation.grafana.app"}, "versions": [{"version": []}]}]}).encode()
        self.delegate.apis_doc = (b"application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                                  aggregated)
        status, _, body = self.agg.request(
            "GET", "/apis",
            headers={"Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"})
        self.assertEqual(status, 200, body)
        names = [i["metadata"]["name"] for i in json.loads(body)["items"]]
        self.assertIn("aggregation.grafana.app", names)
        self.assertIn("y.example.com", names)

    def test_large_upstream_headers(self):
        # Regression: a 17,000-byte header segfaulted (unbounded recursion while parsing).
        status, headers, body = self.agg.request("GET", "/big-header")
        self.assertEqual((status, body), (200, b"big"))
        self.assertEqual(len(headers["x-big"]), 17000)
        status, _, body = self.agg.request("GET", "/huge-header")
        doc = self.assert_status(status, body, 502)
        self.assertIn("too big a response header", doc["message"])

    def test_interim_response_flood(self):
        status, _, body = self.agg.request("GET", "/continue-flood")
        doc = self.assert_status(status, body, 502)
        self.assertIn("interim responses", doc["message"])

    def test_invalid_status_lines(self):
        for path in ("/status-000", "/unsolicited-101", "/garbage"):
            status, _, body = self.agg.request("GET", path)
            self.assert_status(status, body, 502)

    def test_broken_bodies_end_the_client_response(self):
        for path in ("/short-body", "/close-mid-chunk", "/bad-chunk"):
            conn = self.agg.connection(timeout=10)
            conn.request("GET", path)
            res = conn.getresponse()
            # The head was relayed before the body broke: the client sees a cut response.
            self.assertEqual(res.status, 200)
            with self.assertRaises(http.client.IncompleteRead):
                res.read()
            conn.close()

    def test_unsolicited_response_is_never_handed_to_the_next_client(self):
        for path, wait in (("/desync-now", None), ("/desync-idle", self.delegate.injected)):
            if wait:
                wait.clear()
            conn = self.agg.connection(timeout=10)  # one client connection: one I/O thread, one pool
            conn.request("GET", path)
            res = conn.getresponse()
            self.assertEqual(res.read(), b"first")
            if wait:
                self.assertTrue(wait.wait(10))
            for i in range(3):
                conn.request("GET", "/mine-%d" % i)
                res = conn.getresponse()
                self.assertEqual(res.read(), b"/mine-%d" % i, path)
            conn.close()

    def test_post_on_a_connection_that_dies_is_not_sent_twice(self):
        conn = self.agg.connection(timeout=10)
        conn.request("GET", "/close-idle-on-post")
        self.assertEqual(conn.getresponse().read(), b"primed")
        conn.request("POST", "/side-effect", body=b"", headers={"Content-Length": "0"})
        res = conn.getresponse()
        body = res.read()
        self.assertIn(res.status, (502, 503), body)
        self.assertEqual(json.loads(body)["kind"], "Status")
        conn.close()
        self.assertEqual(len(self.delegate.requests_for("/side-effect")), 1)

    def test_upgrade_requests_never_carry_client_identity_headers(self):
        s = socket.create_connection(self.agg.host_port, timeout=10)
        s.sendall(b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n"
                  b"X-Remote-User: admin\r\nX-Remote-Group: system:masters\r\n"
                  b"Authorization: Bearer " + self.agg.token.encode() + b"\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
        s.sendall(b"ping")
        self.assertEqual(s.recv(4096), b"ping")
        s.close()
        seen = self.delegate.headers["/upgrade"]
        self.assertNotIn("x-remote-user", seen)
        self.assertNotIn("x-remote-group", seen)
        # Pass-through mode: the client's own credentials go on for the delegate to judge.
        self.assertEqual(seen["authorization"], ["Bearer " + self.agg.token])

    def test_invalid_request_chunk_size_is_400(self):
        out = raw_exchange(self.agg, b"POST /anything HTTP/1.1\r\nHost: x\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out)


class BadClientInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.agg = Aggregator(datasources=example("provisioning/datasources.yaml"),
                             args=["--request-timeout", "2"])
        cls.agg.start()
        cls.agg.kubectl("apply", "-f", example("datasource.yml"))

    @classmethod
    def tearDownClass(cls):
        cls.agg.stop()

    def tearDown(self):
        self.assertIsNone(self.agg.proc.poll(), "the aggregator exited:\n" + self.agg.log())
        status, _, _ = self.agg.request("GET", BASE, timeout=5)
        self.assertEqual(status, 200)

    def assert_status(self, status, body, code):
        self.assertEqual(status, code, body)
        doc = json.loads(body)
        self.assertEqual((doc["kind"], doc["code"]), ("Status", code), doc)
        return doc

    def test_invalid_utf8_in_names_and_paths(self):
        # Regression: the name was echoed into the Status and json::dump() threw (exit 134).
        for path in (BASE + "/%ff", BASE + "/%c0%af", BASE + "/a%ffb/status"):
            status, _, body = self.agg.request("GET", path)
            doc = self.assert_status(status, body, 404)
            self.assertIn("\ufffd", doc["message"])
        status, _, body = self.agg.request(
            "POST", "/apis/testdata.datasource.grafana.app/v0alpha1/namespaces/%ff/datasources/testdata/query",
            body={"queries": [{"refId": "A"}]})
        self.assert_status(status, body, 400)
        status, _, body = self.agg.request("GET", BASE + "?labelSelector=%ff")
        self.assertIn(status, (400, 200), body)
        self.assertEqual(json.loads(body)["kind"], "Status" if status == 400 else "DataPlaneServiceList")

    def test_invalid_utf8_yaml_body(self):
        body = b"apiVersion: aggregation.grafana.app/v0alpha1\nkind: DataPlaneService\nmetadata:\n  name: \xff\n"
        status, _, out = self.agg.request("POST", BASE, body=body, headers={"Content-Type": "application/yaml"})
        self.assert_status(status, out, 400)

    def test_yaml_alias_bombs(self):
        # 9 levels of 9 aliases each: about 387 million nodes if expanded.
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
        for i in range(1, 10):
            refs = ", ".join(["*a%d" % (i - 1)] * 9)
            lines.append("a%d: &a%d [%s]" % (i, i, refs))
        bomb = "\n".join(lines) + "\n"
        started = time.time()
        status, _, out = self.agg.request("POST", BASE, body=bomb, headers={"Content-Type": "application/yaml"})
        doc = self.assert_status(status, out, 400)
        self.assertIn("excessive aliasing", doc["message"])
        self.assertLess(time.time() - started, 10)
        # A small body whose aliases expand to a 20 MB object.
        big = "x" * 500
        doc = ("apiVersion: aggregation.grafana.app/v0alpha1\nkind: DataPlaneService\n"
               "metadata:\n  name: v1.big.example.com\n  annotations:\n    a: &s " + big + "\n"
               "spec:\n  pluginID: testdata\n  group: big.example.com\n  version: v1\n"
               "  services: [{type: query}]\n  extra: &l [*s, *s, *s, *s, *s, *s, *s, *s]\n"
               "  more: &m [*l, *l, *l, *l, *l, *l, *l, *l]\n  most: [*m, *m, *m, *m, *m, *m, *m, *m]\n")
        status, _, out = self.agg.request("POST", BASE, body=doc, headers={"Content-Type": "application/yaml"})
        self.assert_status(status, out, 400)

    def test_stored_objects_are_limited_like_etcd(self):
        obj = {"apiVersion": "aggregation.grafana.app/v0alpha1", "kind": "DataPlaneService",
               "metadata": {"name": "v1.huge.example.com", "annotations": {"a": "x" * (2 << 20)}},
               "spec": {"pluginID": "testdata", "pluginType": "datasource", "group": "huge.example.com",
                        "version": "v1", "services": [{"type": "query"}]}}
        status, _, out = self.agg.request("POST", BASE, body=obj)
        self.assert_status(status, out, 413)

    def test_metadata_of_the_wrong_type_is_400(self):
        for meta in ({"labels": {"a": 5}}, {"annotations": {"a": True}}, {"finalizers": [{}]},
                     {"labels": []}, {"finalizers": "x"}):
            obj = {"apiVersion": "aggregation.grafana.app/v0alpha1", "kind": "DataPlaneService",
                   "metadata": dict({"name": "v1.typed.example.com"}, **meta),
                   "spec": {"pluginID": "testdata", "pluginType": "datasource",
                            "group": "typed.example.com", "version": "v1",
                            "services": [{"type": "query"}]}}
            status, _, out = self.agg.request("POST", BASE, body=obj)
            doc = self.assert_status(status, out, 400)
            self.assertIn("cannot unmarshal", doc["message"])

    def test_selectors_paths_and_versions(self):
        status, _, out = self.agg.request("GET", BASE + "?fieldSelector=metadata.name%3D%3D%3D")
        self.assert_status(status, out, 400)
        status, _, out = self.agg.request("GET", BASE + "/v0alpha1.testdata.datasource.grafana.app/")
        self.assert_status(status, out, 404)
        status, _, out = self.agg.request("GET", BASE)
        rv = int(json.loads(out)["metadata"]["resourceVersion"])
        self.agg.kubectl("label", "dataplaneservice", "v0alpha1.testdata.datasource.grafana.app",
                         "touched=yes", "--overwrite")
        # Exact: the state at that revision (from the watch cache), never the current one.
        status, _, out = self.agg.request(
            "GET", BASE + "?resourceVersion=%d&resourceVersionMatch=Exact" % rv)
        self.assertEqual(status, 200, out)
        doc = json.loads(out)
        self.assertEqual(doc["metadata"]["resourceVersion"], str(rv))
        for item in doc["items"]:
            self.assertNotIn("touched", item["metadata"].get("labels", {}))
        self.assertLessEqual(max(int(i["metadata"]["resourceVersion"]) for i in doc["items"]), rv)

    def test_watch_with_timeout_zero_does_not_end_at_once(self):
        conn = self.agg.connection(timeout=1.5)
        conn.request("GET", BASE + "?watch=true&timeoutSeconds=0")
        res = conn.getresponse()
        self.assertEqual(res.status, 200)
        res.fp.read1(65536)  # the ADDED event of the existing object
        with self.assertRaises(socket.timeout):
            res.fp.read1(65536)  # nothing more, and not the end of the stream either
        conn.close()

    def test_dripped_body_is_cut_at_the_request_timeout(self):
        s = socket.create_connection(self.agg.host_port, timeout=10)
        s.sendall(b"POST " + BASE.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer " + self.agg.token.encode() + b"\r\n"
                  b"Content-Length: 1000\r\n\r\n{")
        started = time.time()
        closed = False
        while time.time() - started < 8:
            try:
                s.sendall(b" ")
                data = s.recv(65536) if _readable(s, 0.5) else None
                if data is not None:
                    closed = True
                    break
            except OSError:
                closed = True
                break
        s.close()
        self.assertTrue(closed, "a dripped body held its connection")

    def test_metric_labels_stay_bounded(self):
        for i in range(60):
            raw_exchange(self.agg, b"M%dX /random-%d HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                                   b"Connection: close\r\n\r\n" % (i, i), timeout=2)
            self.agg.request("GET", "/apis/g%d.example.com/v1/namespaces/n/datasources/u/k%d" % (i, i))
        _, _, text = self.agg.request("GET", "/metrics")
        text = text.decode()
        self.assertNotIn("m1x", text.lower())
        self.assertNotIn('resource="k1"', text)
        self.assertIn('verb="other"', text)

    def test_sighup_reloads_and_keeps_serving(self):
        os.kill(self.agg.proc.pid, signal.SIGHUP)
        self.assertTrue(wait_for(lambda: "SIGHUP: datasource provisioning reloaded" in self.agg.log(), 10))
        status, _, _ = self.agg.request("GET", "/healthz")
        self.assertEqual(status, 200)


def _readable(sock, timeout):
    import select
    readable, _, _ = select.select([sock], [], [], timeout)
    return bool(readable)


if __name__ == "__main__":
    unittest.main()
