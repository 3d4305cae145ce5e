"""Everything the aggregator does not serve goes to the delegate, intact and streaming."""

import json
import time
import unittest

from delegate_server import DelegateServer
from harness import Aggregator, free_port



class DelegateTest(unittest.TestCase):
    def test_request_passes_intact(self):
        with DelegateServer() as delegate, Aggregator(delegate_url=delegate.url, with_plugins=False) as agg:
            status, _, body = agg.request(
                "POST", "/apis/foo.example.com/v1/namespaces/a/foos?b=2&a=1", body='{"x":1}',
                headers={"Content-Type": "application/json", "X-Custom": "yes",
                         "Connection": "keep-alive, X-Hop", "X-Hop": "drop-me"})
            self.assertEqual(status, 200)
            echo = json.loads(body)
            self.assertEqual(echo["method"], "POST")
            self.assertEqual(echo["path"], "/apis/foo.example.com/v1/namespaces/a/foos?b=2&a=1")
            self.assertEqual(echo["body"], '{"x":1}')
            self.assertEqual(echo["headers"]["x-custom"], "yes")
            self.assertNotIn("x-hop", echo["headers"])
            self.assertIn("127.0.0.1", echo["headers"]["x-forwarded-for"])

    def test_watch_streams_event_by_event(self):
        with DelegateServer() as delegate, Aggregator(delegate_url=delegate.url, with_plugins=False) as agg:
            conn = agg.connection()
            conn.request("GET", "/apis/stream.example.com/v1/watch?watch=true")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            arrivals = []
            while True:
                line = resp.fp.readline()  # chunk size line
                size = int(line.strip() or b"0", 16)
                if size == 0:
                    break
                data = resp.fp.read(size)
                resp.fp.readline()
                for event in data.splitlines():
                    arrivals.append((time.time(), json.loads(event)))
            conn.close()
            self.assertEqual([e["object"]["n"] for _, e in arrivals], [0, 1, 2, 3, 4])
            for received, event in arrivals:
                # Each event arrives as it is sent (the delegate sleeps 0.3 s between events),
                # not buffered until the end.
                self.assertLess(received - event["object"]["sent"], 0.25)

    def test_apis_merges_delegate_groups(self):
        with DelegateServer() as delegate, Aggregator(delegate_url=delegate.url, with_plugins=False) as agg:
            status, doc = agg.json("GET", "/apis", headers={"Accept": "application/json"})
            self.assertEqual(status, 200)
            names = [g["name"] for g in doc["groups"]]
            self.assertEqual(names[0], "aggregation.grafana.app")
            self.assertIn("foo.example.com", names)
            self.assertEqual(len(names), len(set(names)))

    def test_dead_delegate_is_503_status(self):
        url = "http://127.0.0.1:%d" % free_port()
        with Aggregator(delegate_url=url, with_plugins=False) as agg:
            status, doc = agg.json("GET", "/apis/foo.example.com/v1/foos")
            self.assertEqual(status, 503)
            self.assertEqual(doc["kind"], "Status")
            self.assertEqual(doc["code"], 503)
            self.assertEqual(doc["reason"], "ServiceUnavailable")
            # Our own API still answers.
            status, _ = agg.json("GET", "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices")
            self.assertEqual(status, 200)

    def test_no_delegate_is_404_status(self):
        with Aggregator(with_plugins=False) as agg:
            status, doc = agg.json("GET", "/apis/foo.example.com/v1/foos")
            self.assertEqual(status, 404)
            self.assertEqual(doc["kind"], "Status")
            self.assertEqual(doc["reason"], "NotFound")


if __name__ == "__main__":
    unittest.main()
