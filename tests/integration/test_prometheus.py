"""The prometheus example plugin against a real Prometheus server that scrapes the aggregator's
own /metrics: a query through the aggregator returns the aggregator's own series."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import Aggregator, free_port

DPS = """apiVersion: aggregation.grafana.app/v0alpha1
kind: DataPlaneService
metadata:
  name: v0alpha1.prometheus.grafana.app
spec:
  pluginID: prometheus
  pluginType: datasource
  group: prometheus.grafana.app
  version: v0alpha1
  services:
    - type: query
    - type: health
"""



@unittest.skipUnless(shutil.which("prometheus"), "prometheus is not installed")
class PrometheusTest(unittest.TestCase):
    def test_query_returns_the_aggregators_own_series(self):
        work = tempfile.mkdtemp(prefix="dpa-prom-")
        prom_port = free_port()
        datasources = os.path.join(work, "datasources.yaml")
        with open(datasources, "w") as f:
            f.write("apiVersion: 1\ndatasources:\n  - name: Prometheus\n    type: prometheus\n"
                    "    uid: prometheus\n    url: http://127.0.0.1:%d\n" % prom_port)
        with Aggregator(datasources=datasources) as agg:
            host, port = agg.host_port
            config = os.path.join(work, "prometheus.yml")
            with open(config, "w") as f:
                f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n"
                        "  - job_name: dataplane-aggregator\n    authorization:\n"
                        "      credentials_file: %s\n    static_configs:\n"
                        "      - targets: ['%s:%d']\n"
                        % (os.path.join(agg.data_dir, "admin.token"), host, port))
            prom = subprocess.Popen(
                ["prometheus", "--config.file", config, "--storage.tsdb.path", os.path.join(work, "tsdb"),
                 "--web.listen-address", "127.0.0.1:%d" % prom_port],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "prometheus.log"), "wb"))
            try:
                dps = os.path.join(work, "prometheus-dps.yaml")
                with open(dps, "w") as f:
                    f.write(DPS)
                agg.kubectl("apply", "-f", dps)
                path = "/apis/prometheus.grafana.app/v0alpha1/namespaces/default/datasources/prometheus/query"
                query = {"queries": [{"refId": "A", "datasource": {"type": "prometheus", "uid": "prometheus"},
                                      "expr": "dataplane_aggregator_build_info", "range": True,
                                      "intervalMs": 1000}],
                         "from": "now-5m", "to": "now"}
                deadline = time.time() + 60
                frames = []
                last = None
                while time.time() < deadline:
                    status, body = agg.json("POST", path, query)
                    last = (status, body)
                    if status == 200:
                        frames = body["results"]["A"].get("frames") or []
                        if frames and frames[0]["data"]["values"] and frames[0]["data"]["values"][0]:
                            break
                    time.sleep(1)
                self.assertTrue(frames, "no frames from Prometheus: %s\n%s" % (last, agg.log()))
                frame = frames[0]
                fields = frame["schema"]["fields"]
                self.assertEqual(fields[0]["type"], "time")
                self.assertEqual(fields[1]["type"], "number")
                self.assertEqual(fields[1]["labels"]["job"], "dataplane-aggregator")
                self.assertEqual(fields[1]["labels"]["version"], "0.1.0")
                self.assertTrue(all(v == 1 for v in frame["data"]["values"][1]))
                # Health through the aggregator reaches the same Prometheus.
                status, health = agg.json("GET", path.replace("/query", "/health"))
                self.assertEqual(status, 200, health)
                self.assertEqual(health["status"], "OK")
            finally:
                prom.terminate()
                prom.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
