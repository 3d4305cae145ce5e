"""Unary data-plane routes through the real binary and the real testdata plugin: query, health,
metrics, admission, conversion, availability conditions, a plugin SIGKILLed mid-query, and
malformed Arrow from a plugin."""

import base64
import json
import os
import signal
import threading
import time
import unittest

from harness import Aggregator, EXAMPLE_DATASOURCES, children_of, wait_for

PLUGIN = "grafana-testdata-datasource"
GROUP = "testdata.grafana.app"
VERSION = "v0alpha1"
NAME = VERSION + "." + GROUP
BASE = "/apis/%s/%s" % (GROUP, VERSION)
QUERY = BASE + "/namespaces/default/datasources/testdata/query"
COLLECTION = "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices"


def dataplaneservice(name=NAME, plugin=PLUGIN, group=GROUP, version=VERSION,
                     services=("query", "health", "metrics", "admission", "conversion")):
    return {
        "apiVersion": "aggregation.grafana.app/v0alpha1",
        "kind": "DataPlaneService",
        "metadata": {"name": name},
        "spec": {"pluginID": plugin, "pluginType": "datasource", "group": group,
                 "version": version, "services": [{"type": t} for t in services]},
    }


def query_body(scenario="random_walk", **extra):
    q = {"refId": "A", "datasource": {"type": PLUGIN, "uid": "testdata"},
         "scenarioId": scenario, "intervalMs": 1000, "maxDataPoints": 60}
    q.update(extra)
    return {"from": "now-5m", "to": "now", "queries": [q]}


def available_condition(agg, name):
    status, obj = agg.json("GET", COLLECTION + "/" + name)
    if status != 200:
        return None
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Available":
            return c
    return None


class DataPlaneUnaryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.agg = Aggregator(datasources=EXAMPLE_DATASOURCES).start()
        status, body = cls.agg.json("POST", COLLECTION, dataplaneservice())
        assert status == 201, (status, body)
        ok = wait_for(lambda: cls.agg.request("POST", QUERY, query_body())[0] == 200, timeout=60)
        assert ok, cls.agg.log()

    @classmethod
    def tearDownClass(cls):
        cls.agg.stop()

    def test_query_returns_frames(self):
        status, headers, body = self.agg.request("POST", QUERY, query_body())
        self.assertEqual(status, 200, body)
        self.assertTrue(headers["content-type"].startswith("application/json"))
        self.assertTrue(body.startswith(b'{\n  "results": {\n    "A": {\n      "status": 200,'), body[:200])
        result = json.loads(body)["results"]["A"]
        self.assertEqual(result["status"], 200)
        frame = result["frames"][0]
        self.assertEqual([f["type"] for f in frame["schema"]["fields"]][:1], ["time"])
        self.assertGreater(len(frame["data"]["values"][0]), 0)

    def test_query_errors_have_real_codes(self):
        status, body = self.agg.json("POST", QUERY, {"queries": [{"refId": "A"}]})
        self.assertEqual((status, body["message"]), (400, "missing datasource reference"))
        wrong = query_body()
        wrong["queries"][0]["datasource"]["type"] = "prometheus"
        status, body = self.agg.json("POST", QUERY, wrong)
        self.assertEqual((status, body["message"]), (400, "invalid datasource type"))
        status, body = self.agg.json("POST", BASE + "/namespaces/default/datasources/nope/query",
                                     query_body())
        self.assertEqual((status, body["message"]), (400, "invalid datasource UID"))
        unknown = query_body()
        unknown["queries"][0]["datasource"]["uid"] = "nope"
        status, body = self.agg.json("POST", BASE + "/namespaces/default/datasources/nope/query",
                                     unknown)
        self.assertEqual(status, 404, body)
        status, _, body = self.agg.request("POST", QUERY, b"{not json",
                                           {"Content-Type": "application/json"})
        self.assertEqual(status, 400, body)
        status, headers, _ = self.agg.request("GET", QUERY)
        self.assertEqual(status, 405)
        self.assertEqual(headers.get("allow"), "POST")
        # Per-refId errors stay inside a 200.
        status, body = self.agg.json("POST", QUERY, query_body("error", errorStatus=418))
        self.assertEqual(status, 200)
        self.assertEqual(body["results"]["A"]["status"], 418)
        self.assertIn("error", body["results"]["A"])

    def test_query_timeout_param_gives_504(self):
        status, body = self.agg.json("POST", QUERY + "?timeout=200ms", query_body("slow", delayMs=3000))
        self.assertEqual(status, 504, body)
        self.assertEqual(body["kind"], "Status")

    def test_malformed_arrow_is_502_and_server_stays_up(self):
        garbage = base64.b64encode(b"ARROW1\x00\x00\xff\xff\xff\x7f" + b"\x01" * 64).decode()
        status, body = self.agg.json("POST", QUERY, query_body("raw_frame", frameBase64=garbage))
        self.assertEqual(status, 502, body)
        status, _, _ = self.agg.request("POST", QUERY, query_body())
        self.assertEqual(status, 200)

    def test_health(self):
        status, body = self.agg.json("GET", BASE + "/namespaces/default/datasources/testdata/health")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["status"], "OK")
        self.assertEqual(body["details"]["uid"], "testdata")
        status, body = self.agg.json("GET", BASE + "/namespaces/default/datasources/nope/health")
        self.assertEqual(status, 404, body)

    def test_metrics(self):
        status, headers, body = self.agg.request("GET", BASE + "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        self.assertIn(b"# TYPE", body)

    def test_admission_mutate_and_validate(self):
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                  "request": {"uid": "abc-1", "operation": "CREATE",
                              "kind": {"group": "example.com", "version": "v1", "kind": "Thing"},
                              "object": {"apiVersion": "example.com/v1", "kind": "Thing",
                                         "metadata": {"name": "t1"}, "spec": {}}}}
        status, _, body = self.agg.request("POST", BASE + "/admission/mutate", json.dumps(review),
                                           {"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(status, 200, body)
        out = json.loads(body)
        self.assertEqual(out["kind"], "AdmissionReview")
        self.assertEqual(out["response"]["uid"], "abc-1")
        self.assertTrue(out["response"]["allowed"])
        self.assertEqual(out["response"]["patchType"], "JSONPatch")
        patch = json.loads(base64.b64decode(out["response"]["patch"]))
        self.assertTrue(any(op["op"] == "add" and op["path"].startswith("/metadata/labels")
                            for op in patch), patch)
        review["request"]["object"]["spec"]["deny"] = True
        status, out = self.agg.json("POST", BASE + "/admission/validate", review)
        self.assertEqual(status, 200)
        self.assertFalse(out["response"]["allowed"])
        self.assertEqual(out["response"]["status"]["code"], 403)
        self.assertEqual(out["response"]["status"]["status"], "Failure")
        status, _, _ = self.agg.request("POST", BASE + "/admission/validate", json.dumps(review),
                                        {"Content-Type": "text/plain"})
        self.assertEqual(status, 415)

    def test_conversion(self):
        review = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
                  "request": {"uid": "c-1", "desiredAPIVersion": "example.com/v2",
                              "objects": [{"apiVersion": "example.com/v1", "kind": "Thing",
                                           "metadata": {"name": "t1"},
                                           "spec": {"oldName": "x"}}]}}
        status, out = self.agg.json("POST", BASE + "/conversion", review)
        self.assertEqual(status, 200, out)
        self.assertEqual(out["response"]["uid"], "c-1")
        self.assertEqual(out["response"]["result"]["status"], "Success")
        converted = out["response"]["convertedObjects"][0]
        self.assertEqual(converted["apiVersion"], "example.com/v2")
        self.assertEqual(converted["spec"], {"newName": "x"})

    def test_unlisted_service_is_delegated(self):
        # No `stream`/`route` services listed: such paths are not data-plane routes (404 from the
        # missing delegate, not a plugin call).
        status, body = self.agg.json("GET", BASE + "/namespaces/default/datasources/testdata/stream/x")
        self.assertEqual(status, 404, body)

    def test_available_condition_passed(self):
        c = wait_for(lambda: (lambda c: c if c and c["status"] == "True" else None)(
            available_condition(self.agg, NAME)))
        self.assertIsNotNone(c, available_condition(self.agg, NAME))
        self.assertEqual(c["reason"], "Passed")

    def create_without_plugin(self, group):
        """Creates v1.<group>, served by a plugin that is not installed; returns its name."""
        name = "v1." + group
        status, body = self.agg.json("POST", COLLECTION, dataplaneservice(
            name=name, plugin="no-such-plugin", group=group, version="v1", services=("query",)))
        self.assertEqual(status, 201, body)
        return name

    def test_missing_plugin_is_plugin_not_found(self):
        name = self.create_without_plugin("missing.example.com")
        try:
            c = wait_for(lambda: available_condition(self.agg, name))
            self.assertIsNotNone(c)
            self.assertEqual((c["status"], c["reason"]), ("False", "PluginNotFound"))
            q = query_body()
            q["queries"][0]["datasource"] = {"type": "no-such-plugin", "uid": "x"}
            status, body = self.agg.json(
                "POST", "/apis/missing.example.com/v1/namespaces/default/datasources/x/query", q)
            self.assertIn(status, (404, 503), body)
        finally:
            self.agg.request("DELETE", COLLECTION + "/" + name)

    def test_availability_series_follow_the_services(self):
        def series():
            _, _, body = self.agg.request("GET", "/metrics")
            out = {}
            for line in body.decode().splitlines():
                if line.startswith("dataplane_aggregator_dataplaneservice_available{"):
                    labels, value = line.rsplit(" ", 1)
                    name = labels.split('name="', 1)[1].split('"', 1)[0]
                    self.assertIn('replica="', labels)
                    out[name] = float(value)
            return out

        name = self.create_without_plugin("gone.example.com")
        try:
            self.assertTrue(wait_for(lambda: series().get(name) == 0.0), series())
            self.assertTrue(wait_for(lambda: series().get(NAME) == 1.0), series())
        finally:
            self.agg.request("DELETE", COLLECTION + "/" + name)
        # A deleted service leaves no series behind.
        self.assertTrue(wait_for(lambda: name not in series()), series())
        self.assertEqual(series().get(NAME), 1.0)

    def test_zz_plugin_killed_mid_query_then_recovers(self):
        pids = [p for p in children_of(self.agg.proc.pid)]
        self.assertTrue(pids, "no plugin process found")
        result = {}

        def slow_query():
            result["status"], result["body"] = self.agg.json(
                "POST", QUERY, query_body("slow", delayMs=5000))

        t = threading.Thread(target=slow_query)
        t.start()
        time.sleep(0.5)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        t.join(30)
        self.assertIn(result.get("status"), (502, 503), result)
        self.assertEqual(result["body"]["kind"], "Status")
        # While it is down: 503; after the supervisor restarts it, queries succeed again.
        ok = wait_for(lambda: self.agg.request("POST", QUERY, query_body())[0] == 200, timeout=60)
        self.assertTrue(ok, self.agg.log())


if __name__ == "__main__":
    unittest.main()
