"""kubectl (v1.32, unmodified, default validation) against the aggregator's own API:
apply/get/get -o yaml/apply again/apply --server-side/label/patch/delete --wait/get -w, plus the
bad-input answers curl sees (400/422 with the right field)."""

import json
import os
import subprocess
import tempfile
import time
import unittest

import yaml

from harness import Aggregator, example

BASE = "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices"
NAME = "v0alpha1.testdata.datasource.grafana.app"


def manifest(**spec_changes):
    with open(example("datasource.yml")) as f:
        obj = yaml.safe_load(f)
    obj["spec"].update(spec_changes)
    return obj


class KubectlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.agg = Aggregator(with_plugins=False)
        cls.agg.start()

    @classmethod
    def tearDownClass(cls):
        cls.agg.stop()

    def write_manifest(self, obj):
        fd, path = tempfile.mkstemp(suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(obj, f)
        self.addCleanup(os.unlink, path)
        return path

    def test_1_lifecycle(self):
        k = self.agg.kubectl
        r = k("apply", "-f", example("datasource.yml"))
        self.assertIn("dataplaneservice.aggregation.grafana.app/%s created" % NAME, r.stdout)

        r = k("get", "dataplaneservices")
        header = r.stdout.splitlines()[0].split()
        self.assertEqual(header, ["NAME", "PLUGIN", "GROUP/VERSION", "SERVICES", "AVAILABLE", "AGE"])
        self.assertIn(NAME, r.stdout)
        self.assertIn("grafana-testdata-datasource", r.stdout)
        self.assertIn("testdata.datasource.grafana.app/v0alpha1", r.stdout)
        self.assertIn("dataplane", k("api-resources").stdout)
        self.assertIn(NAME, k("get", "dataplane").stdout)  # the category

        obj = yaml.safe_load(k("get", "dataplaneservice", NAME, "-o", "yaml").stdout)
        self.assertEqual(obj["spec"]["pluginID"], "grafana-testdata-datasource")
        self.assertEqual(obj["metadata"]["generation"], 1)
        self.assertTrue(obj["metadata"]["uid"])
        self.assertIn("kubectl.kubernetes.io/last-applied-configuration", obj["metadata"]["annotations"])

        r = k("apply", "-f", example("datasource.yml"))
        self.assertIn("unchanged", r.stdout)
        changed = self.write_manifest(manifest(services=[{"type": "query"}, {"type": "health"}]))
        r = k("apply", "-f", changed)
        self.assertIn("configured", r.stdout)
        obj = json.loads(k("get", "dataplaneservice", NAME, "-o", "json").stdout)
        self.assertEqual([s["type"] for s in obj["spec"]["services"]], ["query", "health"])
        self.assertEqual(obj["metadata"]["generation"], 2)

        r = k("apply", "--server-side", "--force-conflicts", "-f", example("datasource.yml"))
        self.assertIn("serverside-applied", r.stdout)
        obj = json.loads(k("get", "dataplaneservice", NAME, "-o", "json",
                           "--show-managed-fields").stdout)
        self.assertEqual(len(obj["spec"]["services"]), 8)
        self.assertIn("kubectl", [m["manager"] for m in obj["metadata"]["managedFields"]])

        k("label", "dataplaneservice", NAME, "team=observability")
        self.assertIn(NAME, k("get", "dataplaneservices", "-l", "team=observability").stdout)
        self.assertNotIn(NAME, k("get", "dataplaneservices", "-l", "team!=observability",
                                 "--no-headers").stdout)

        k("patch", "dataplaneservice", NAME, "--type=merge", "-p", '{"spec":{"pluginType":"app"}}')
        obj = json.loads(k("get", "dataplaneservice", NAME, "-o", "json").stdout)
        self.assertEqual(obj["spec"]["pluginType"], "app")
        bad = k("patch", "dataplaneservice", NAME, "--type=merge", "-p",
                '{"spec":{"pluginType":"panel"}}', check=False)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("spec.pluginType", bad.stderr)

        # get -w sees MODIFIED and DELETED while another kubectl changes the object.
        env = dict(os.environ, HOME=self.agg.home, KUBECONFIG=self.agg.kubeconfig)
        watcher = subprocess.Popen(["kubectl", "get", "dataplaneservices", "-w",
                                    "--output-watch-events", "-o", "json"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            time.sleep(1.5)
            k("label", "dataplaneservice", NAME, "watched=yes")
            r = k("delete", "dataplaneservice", NAME, "--wait=true", timeout=60)
            self.assertIn("deleted", r.stdout)
            time.sleep(1.0)
        finally:
            watcher.terminate()
            out, _ = watcher.communicate(timeout=10)
        self.assertIn("ADDED", out)
        self.assertIn("MODIFIED", out)
        self.assertIn("DELETED", out)
        r = k("get", "dataplaneservice", NAME, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("NotFound", r.stderr)

    def test_2_strict_validation_rejects_unknown_fields(self):
        obj = manifest()
        obj["metadata"]["name"] = "v0alpha1.strict.example.com"
        obj["spec"]["group"] = "strict.example.com"
        obj["spec"]["foo"] = "bar"
        r = self.agg.kubectl("apply", "-f", self.write_manifest(obj), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('spec.foo', r.stderr)
        self.assertIn('unknown field', r.stderr)
        self.assertNotIn("--validate=false", r.stderr)

    def test_3_curl_bad_input(self):
        def post(body, content_type="application/json"):
            r = self.agg.curl("-o", "-", "-w", "\n%{http_code}", "-X", "POST",
                              "-H", "Content-Type: " + content_type, "--data-binary", body,
                              self.agg.url + BASE)
            text, code = r.stdout.decode().rsplit("\n", 1)
            return int(code), json.loads(text)

        code, status = post("{not json")
        self.assertEqual(code, 400)
        self.assertEqual(status["kind"], "Status")
        code, _ = post("a: [1\n", "application/yaml")
        self.assertEqual(code, 400)
        wrong_kind = manifest()
        wrong_kind["kind"] = "APIService"
        code, _ = post(json.dumps(wrong_kind))
        self.assertEqual(code, 400)
        wrong_api = manifest()
        wrong_api["apiVersion"] = "apiregistration.k8s.io/v1"
        code, _ = post(json.dumps(wrong_api))
        self.assertEqual(code, 400)

        cases = [
            ({"metadata": {"name": "wrong"}}, "metadata.name"),
            ({"spec": {"group": "Bad_Group"}}, "spec.group"),
            ({"spec": {"version": "1.0"}}, "spec.version"),
            ({"spec": {"pluginID": ""}}, "spec.pluginID"),
            ({"spec": {"pluginType": "panel"}}, "spec.pluginType"),
            ({"spec": {"services": [{"type": "query"}, {"type": "health"}, {"type": "bogus"}]}},
             "spec.services[2].type"),
            ({"spec": {"services": [{"type": "query"}, {"type": "query"}]}}, "spec.services[1].type"),
            ({"spec": {"services": [{"type": "query"}, {"type": "route", "path": "relative"}]}},
             "spec.services[1].path"),
            ({"spec": {"services": [{"type": "query"}, {"type": "route", "path": "/a", "method": "FETCH"}]}},
             "spec.services[1].method"),
        ]
        for change, field in cases:
            obj = manifest()
            obj["metadata"].update(change.get("metadata", {}))
            obj["spec"].update(change.get("spec", {}))
            if "group" in change.get("spec", {}) or "version" in change.get("spec", {}):
                obj["metadata"]["name"] = obj["spec"]["version"] + "." + obj["spec"]["group"]
            code, status = post(json.dumps(obj))
            self.assertEqual(code, 422, (field, status))
            self.assertIn(field, [c["field"] for c in status["details"]["causes"]], status)


if __name__ == "__main__":
    unittest.main()
