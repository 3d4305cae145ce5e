"""The datasource exchange document against the real binary: 404 Status without --grafana-uid;
with it, only datasources whose plugin is installed and whose DataPlaneService is Available,
sorted, the same bytes from the endpoint and the file; a provisioning reload changes both; the
file is replaced atomically (a reader polling it never sees part of one); the endpoint is
read-only."""

import json
import os
import shutil
import tempfile
import threading
import unittest

from harness import Aggregator, example, wait_for

EXCHANGE = "/apis/aggregation.grafana.app/v0alpha1/datasourceexchange"
PROVISIONING = """apiVersion: 1
datasources:
  - name: TestData
    type: grafana-testdata-datasource
    uid: testdata
  - name: Prometheus
    type: prometheus
    uid: prometheus
    url: http://127.0.0.1:9090
%s"""
ANOTHER = """  - name: Another
    type: grafana-testdata-datasource
    uid: another
"""


def read(path):
    with open(path) as f:
        return f.read()


class DatasourceExchangeTest(unittest.TestCase):
    def test_not_published_without_a_grafana_uid(self):
        with Aggregator(datasources=example("provisioning/datasources.yaml")) as agg:
            status, answer = agg.json("GET", EXCHANGE)
            self.assertEqual(status, 404)
            self.assertEqual(answer["kind"], "Status")
            self.assertIn("--grafana-uid", answer["message"])

    def test_published_filtered_sorted_and_kept_current(self):
        work = tempfile.mkdtemp(prefix="dpa-exchange-")
        provisioning = os.path.join(work, "datasources.yaml")
        with open(provisioning, "w") as f:
            f.write(PROVISIONING % "")
        out = os.path.join(work, "exchange.json")
        agg = Aggregator(args=["--grafana-uid", "grafana-a", "--datasource-exchange-file", out],
                         datasources=provisioning).start()
        try:
            # No DataPlaneService is Available yet: nothing is served.
            status, _, body = agg.request("GET", EXCHANGE)
            self.assertEqual((status, body), (200, b"[]\n"))

            def document():
                status, headers, body = agg.request("GET", EXCHANGE)
                self.assertEqual(status, 200)
                self.assertEqual(headers["content-type"], "application/json")
                return body.decode()

            agg.kubectl("apply", "-f", example("datasource.yml"))
            expected = '[{"type":"grafana-testdata-datasource","uid":"testdata","grafana_uid":"grafana-a"}]\n'
            # The prometheus datasource has its plugin but no Available DataPlaneService: left out.
            self.assertTrue(wait_for(lambda: document() == expected, 30), document())
            self.assertTrue(wait_for(lambda: os.path.exists(out) and read(out) == expected, 10))

            # A reader polling the file while provisioning changes never sees part of a document.
            seen, torn, stop = set(), [], threading.Event()

            def reader():
                while not stop.is_set():
                    text = read(out)
                    try:
                        json.loads(text)
                        seen.add(text)
                    except ValueError:
                        torn.append(text)

            t = threading.Thread(target=reader)
            t.start()
            try:
                with open(provisioning + ".new", "w") as f:
                    f.write(PROVISIONING % ANOTHER)
                os.rename(provisioning + ".new", provisioning)
                both = ('[{"type":"grafana-testdata-datasource","uid":"another","grafana_uid":"grafana-a"},'
                        '{"type":"grafana-testdata-datasource","uid":"testdata","grafana_uid":"grafana-a"}]\n')
                self.assertTrue(wait_for(lambda: document() == both, 30), document())
                self.assertTrue(wait_for(lambda: both in seen, 10))
            finally:
                stop.set()
                t.join()
            self.assertEqual(torn, [])
            self.assertEqual(read(out), document())

            # Read-only.
            status, headers, _ = agg.request("PUT", EXCHANGE, body="[]")
            self.assertEqual(status, 405)
            self.assertEqual(headers["allow"], "GET, HEAD")
        finally:
            agg.stop()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
