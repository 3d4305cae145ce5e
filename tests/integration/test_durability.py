"""An acknowledged write survives kill -9: a burst of 500 creates, SIGKILL in the middle, restart,
and every create that got a 201 is there, with nothing half-written."""

import concurrent.futures
import json
import threading
import time
import unittest

from harness import Aggregator

BASE = "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices"


def service(i):
    group = "burst%d.example.grafana.app" % i
    return {
        "apiVersion": "aggregation.grafana.app/v0alpha1",
        "kind": "DataPlaneService",
        "metadata": {"name": "v1.%s" % group, "labels": {"burst": "yes"}},
        "spec": {"pluginID": "grafana-testdata-datasource", "pluginType": "datasource",
                 "group": group, "version": "v1", "services": [{"type": "query"}]},
    }


class DurabilityTest(unittest.TestCase):
    def test_kill9_during_burst_of_creates_loses_no_acknowledged_write(self):
        agg = Aggregator(with_plugins=False)
        agg.start()
        acknowledged = set()
        lock = threading.Lock()
        killed = threading.Event()

        def create(i):
            if killed.is_set():
                return
            try:
                status, _, body = agg.request("POST", BASE, service(i), timeout=10)
            except OSError:
                return
            if status == 201:
                with lock:
                    acknowledged.add(json.loads(body)["metadata"]["name"])

        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            futures = [pool.submit(create, i) for i in range(500)]
            # Kill once a good part of the burst has been acknowledged, while creates are in flight.
            deadline = time.time() + 60
            while time.time() < deadline:
                with lock:
                    if len(acknowledged) >= 150:
                        break
                time.sleep(0.005)
            agg.kill9()
            killed.set()
            concurrent.futures.wait(futures)

        self.assertGreaterEqual(len(acknowledged), 150)
        self.assertLess(len(acknowledged), 500, "the kill came after the burst; nothing was tested")
        agg.start()
        try:
            status, listing = agg.json("GET", BASE + "?labelSelector=burst%3Dyes")
            self.assertEqual(status, 200)
            stored = {item["metadata"]["name"]: item for item in listing["items"]}
            missing = acknowledged - set(stored)
            self.assertFalse(missing, "acknowledged creates lost: %s" % sorted(missing)[:10])
            for name, item in stored.items():
                # Nothing half-written: every stored object is whole and valid.
                self.assertEqual(item["kind"], "DataPlaneService")
                self.assertEqual(item["metadata"]["name"], "v1." + item["spec"]["group"])
                self.assertTrue(item["metadata"]["uid"])
                self.assertTrue(item["metadata"]["resourceVersion"])
                self.assertEqual(item["spec"]["services"], [{"type": "query"}])
        finally:
            agg.stop()


if __name__ == "__main__":
    unittest.main()
