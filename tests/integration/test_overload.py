"""Overload (DESIGN §8): in-flight limits answer 429 with Retry-After at once instead of letting a
slow datasource or a crowd of requests starve everyone else; watches and streams are not counted.
Ordering is asserted on events (the fast requests finish while the slow ones are still in flight),
not on timings."""

import http.client
import json
import os
import tempfile
import threading
import unittest

from harness import Aggregator, example, wait_for

DS = "/apis/testdata.datasource.grafana.app/v0alpha1/namespaces/default/datasources/"
BASE = "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices"


def query(uid, scenario="random_walk", delay_ms=0):
    return {"queries": [{"refId": "A", "datasource": {"type": "grafana-testdata-datasource", "uid": uid},
                         "scenarioId": scenario, "delayMs": delay_ms}],
            "from": "now-5m", "to": "now"}


class SlowRequests:
    """`count` concurrent slow queries; records each status as it arrives."""

    def __init__(self, agg, uid, count, delay_ms):
        self.statuses = []
        self.retry_after = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._one, args=(agg, uid, delay_ms), daemon=True)
                        for _ in range(count)]
        for t in self.threads:
            t.start()

    def _one(self, agg, uid, delay_ms):
        try:
            status, headers, body = agg.request("POST", DS + uid + "/query",
                                                body=query(uid, "slow", delay_ms), timeout=60)
        except OSError:
            status, headers, body = 0, {}, b""
        with self.lock:
            self.statuses.append(status)
            if status == 429:
                self.retry_after.append((headers.get("retry-after"), json.loads(body)))

    def count(self, status):
        with self.lock:
            return sum(1 for s in self.statuses if s == status)

    def join(self):
        for t in self.threads:
            t.join(60)


class OverloadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        work = tempfile.mkdtemp(prefix="dpa-overload-")
        cls.datasources = os.path.join(work, "datasources.yaml")
        with open(cls.datasources, "w") as f:
            f.write("apiVersion: 1\ndatasources:\n"
                    "  - {name: Slow, type: grafana-testdata-datasource, uid: slowds}\n"
                    "  - {name: Fast, type: grafana-testdata-datasource, uid: fastds}\n")

    def start(self, *args):
        agg = Aggregator(datasources=self.datasources, args=list(args)).start()
        agg.kubectl("apply", "-f", example("datasource.yml"))
        self.assertTrue(wait_for(lambda: agg.request("POST", DS + "fastds/query", body=query("fastds"))[0] == 200, 60))
        return agg

    def test_a_slow_datasource_does_not_starve_another_or_the_api(self):
        agg = self.start("--max-datasource-requests-inflight", "20")
        try:
            slow = SlowRequests(agg, "slowds", 200, delay_ms=8000)
            # 20 are in flight, 180 were refused at once.
            self.assertTrue(wait_for(lambda: slow.count(429) == 180, 30), slow.statuses)
            retry, status = slow.retry_after[0]
            self.assertEqual(retry, "1")
            self.assertEqual((status["kind"], status["reason"], status["code"]),
                             ("Status", "TooManyRequests", 429))
            # Another datasource and the aggregator's own API are served while they are.
            for _ in range(5):
                code, _, body = agg.request("POST", DS + "fastds/query", body=query("fastds"))
                self.assertEqual(code, 200, body)
            out = agg.kubectl("get", "dataplaneservices", "-o", "name").stdout
            self.assertIn("v0alpha1.testdata.datasource.grafana.app", out)
            self.assertEqual(slow.count(200), 0, "the slow queries were still running")
            slow.join()
            self.assertEqual(slow.count(200), 20)
            # The slots came back: the datasource serves again.
            code, _, _ = agg.request("POST", DS + "slowds/query", body=query("slowds"))
            self.assertEqual(code, 200)
        finally:
            agg.stop()

    def test_global_limits_count_requests_not_watches(self):
        agg = self.start("--max-mutating-requests-inflight", "3", "--max-requests-inflight", "2",
                         "--max-datasource-requests-inflight", "0")
        watches = []
        try:
            # Watches hold connections, not slots: more of them than the read-only limit all stream.
            for _ in range(4):
                conn = agg.connection(timeout=30)
                conn.request("GET", BASE + "?watch=true")
                res = conn.getresponse()
                self.assertEqual(res.status, 200)
                watches.append(conn)
            slow = SlowRequests(agg, "slowds", 5, delay_ms=8000)
            self.assertTrue(wait_for(lambda: slow.count(429) == 2, 30), slow.statuses)
            # Read-only requests have their own pool: not taken by the mutating ones.
            code, _, _ = agg.request("GET", BASE)
            self.assertEqual(code, 200)
            code, _, body = agg.request("POST", DS + "fastds/query", body=query("fastds"))
            self.assertEqual(code, 429, body)
            slow.join()
            self.assertEqual(slow.count(200), 3)
            code, _, _ = agg.request("POST", DS + "fastds/query", body=query("fastds"))
            self.assertEqual(code, 200)
        finally:
            for conn in watches:
                conn.close()
            agg.stop()


if __name__ == "__main__":
    unittest.main()
