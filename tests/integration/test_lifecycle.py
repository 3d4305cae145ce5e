"""Process lifecycle, health and metrics endpoints of the real binary."""

import os
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from harness import Aggregator, BINARY, children_of, _alive


class LifecycleTest(unittest.TestCase):
    def test_help_lists_flags_and_bad_flags_fail_clearly(self):
        r = subprocess.run([BINARY, "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0)
        for flag in ("--bind-address", "--port", "--secure-port", "--data-dir", "--plugins-dir",
                     "--datasources", "--delegate-url", "--config"):
            self.assertIn(flag, r.stdout)
        r = subprocess.run([BINARY, "--port", "x"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--port", r.stderr)

    def test_health_version_and_kubeconfig(self):
        with Aggregator(with_plugins=False) as agg:
            for path in ("/healthz", "/livez", "/readyz"):
                status, _, body = agg.request("GET", path)
                self.assertEqual((status, body), (200, b"ok"), path)
            status, _, body = agg.request("GET", "/readyz?verbose")
            self.assertEqual(status, 200)
            self.assertIn(b"[+]poststarthook/dataplaneservice-registration-controller ok", body)
            self.assertIn(b"readyz check passed", body)
            status, version = agg.json("GET", "/version")
            self.assertEqual(status, 200)
            self.assertIn("gitVersion", version)
            r = agg.kubectl("version", "-o", "json", check=False)
            self.assertIn("serverVersion", r.stdout)

    def test_metrics_pass_promtool(self):
        with Aggregator(with_plugins=False) as agg:
            agg.request("GET", "/apis")
            agg.request("GET", "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices")
            # A request is recorded once its response is written, which may be just after the
            # client has read it: poll briefly.
            deadline = time.time() + 5
            while True:
                status, headers, body = agg.request("GET", "/metrics")
                if b'verb="list"' in body or time.time() > deadline:
                    break
                time.sleep(0.05)
            self.assertEqual(status, 200)
            self.assertTrue(headers["content-type"].startswith("text/plain"))
            text = body.decode()
            self.assertIn('dataplane_aggregator_requests_total{code="200",resource="dataplaneservices",verb="list"}', text)
            self.assertIn("dataplane_aggregator_request_duration_seconds_bucket", text)
            self.assertIn("dataplane_aggregator_store_operation_duration_seconds", text)
            self.assertIn("dataplane_aggregator_open_watches", text)
            self.assertIn("dataplane_aggregator_route_table_size", text)
            r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                               timeout=30)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_sigterm_ends_watch_cleanly_and_leaves_no_plugin_process(self):
        agg = Aggregator()
        agg.start()
        # Wait for the testdata plugin process to be up.
        deadline = time.time() + 20
        while time.time() < deadline and not agg.plugin_pids():
            time.sleep(0.1)
        pids = agg.plugin_pids()
        self.assertTrue(pids, "the testdata plugin was not started:\n" + agg.log())
        conn = agg.connection(timeout=30)
        conn.request("GET", "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices?watch=true")
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        result = {}

        def drain():
            try:
                result["body"] = resp.read()  # returns when the terminating chunk arrives
                result["clean"] = True
            except Exception as e:  # noqa: BLE001 - any failure means the end was not clean
                result["error"] = repr(e)

        reader = threading.Thread(target=drain)
        reader.start()
        time.sleep(0.3)
        code = agg.stop()  # asserts the plugin pids are gone too
        reader.join(10)
        self.assertEqual(code, 0, agg.log())
        self.assertTrue(result.get("clean"), result)
        for pid in pids:
            self.assertFalse(_alive(pid))

    def test_kill9_of_the_aggregator_takes_its_plugins_down(self):
        agg = Aggregator()
        agg.start()
        deadline = time.time() + 20
        while time.time() < deadline and not agg.plugin_pids():
            time.sleep(0.1)
        self.assertTrue(agg.plugin_pids())
        agg.kill9()  # asserts the plugins died with it

    def test_https_with_generated_certificate(self):
        with Aggregator(args=["--secure-port", "0"], with_plugins=False) as agg:
            crt = os.path.join(agg.data_dir, "apiserver.crt")
            self.assertTrue(os.path.exists(crt))
            port = None
            for line in agg.log().splitlines():
                if '"msg":"serving"' in line:
                    import json
                    port = json.loads(line)["secure_port"]
            self.assertTrue(port)
            r = agg.curl("--cacert", crt, "https://localhost:%d/healthz" % port)
            self.assertEqual(r.stdout, b"ok")


if __name__ == "__main__":
    unittest.main()
