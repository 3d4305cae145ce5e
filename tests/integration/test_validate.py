"""`dataplane-aggregator validate`: the examples validate clean, and each class of problem is one
line naming the file, the path inside it and the reason, with exit 1."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import BINARY, PLUGINS_DIR, example
from pki import Pki


def validate(*args):
    r = subprocess.run([BINARY, "validate", *args], capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


DPS = """apiVersion: aggregation.grafana.app/v0alpha1
kind: DataPlaneService
metadata:
  name: v1.%(group)s
spec:
  pluginID: %(plugin)s
  pluginType: datasource
  group: %(group)s
  version: v1
  services:
    - type: query
"""


class ValidateTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="dpa-validate-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def base(self):
        return ["--plugins-dir", PLUGINS_DIR, "--datasources", example("provisioning/datasources.yaml")]

    def test_the_examples_validate_clean(self):
        code, out, err = validate(*self.base(), "-f", example("datasource.yml"))
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(out, "OK: 2 plugins, 2 datasources, 1 DataPlaneServices\n")

    def test_flags(self):
        code, _, err = validate("--port", "99999")
        self.assertEqual(code, 1)
        self.assertEqual(err, "flags: --port: out of range\n")

    def test_plugin_directories(self):
        plugins = os.path.join(self.dir, "plugins")
        self.write("plugins/broken/plugin.json", "{not json")
        self.write("plugins/nobinary/plugin.json",
                   '{"id": "nobinary", "type": "datasource", "backend": true, "executable": "gpx_nobinary"}')
        self.write("plugins/noexec/plugin.json",
                   '{"id": "noexec", "type": "datasource", "backend": true, "executable": "gpx_noexec"}')
        os.chmod(self.write("plugins/noexec/gpx_noexec_linux_amd64", "#!/bin/sh\n"), 0o644)
        code, _, err = validate("--plugins-dir", plugins)
        self.assertEqual(code, 1)
        lines = err.splitlines()
        self.assertTrue(any("broken/plugin.json" in l for l in lines), err)
        self.assertTrue(any("nobinary" in l for l in lines), err)
        self.assertIn("%s/noexec/plugin.json: executable: %s/noexec/gpx_noexec_linux_amd64 is not executable"
                      % (plugins, plugins), lines)

    def test_datasources(self):
        provisioning = self.write("datasources.yaml", """apiVersion: 1
datasources:
  - name: Loki
    type: loki
    uid: loki
""")
        code, _, err = validate("--plugins-dir", PLUGINS_DIR, "--datasources", provisioning)
        self.assertEqual(code, 1)
        self.assertEqual(err, '%s: datasources[Loki].type: no plugin "loki" in --plugins-dir or '
                              '--plugin-address\n' % provisioning)
        duplicate = self.write("dup.yaml", """apiVersion: 1
datasources:
  - {name: A, type: prometheus, uid: same}
  - {name: B, type: prometheus, uid: same}
""")
        code, _, err = validate("--plugins-dir", PLUGINS_DIR, "--datasources", duplicate)
        self.assertEqual(code, 1)
        self.assertIn(duplicate, err)
        self.assertIn("same", err)

    def test_the_server_refuses_to_start_with_the_same_messages(self):
        provisioning = self.write("datasources.yaml", "apiVersion: 1\ndatasources:\n"
                                  "  - {name: Loki, type: loki, uid: loki}\n")
        flags = ["--plugins-dir", PLUGINS_DIR, "--datasources", provisioning]
        code, _, err = validate(*flags)
        self.assertEqual(code, 1)
        server = subprocess.run([BINARY, "--port", "0", "--secure-port", "-1", "--data-dir",
                                 os.path.join(self.dir, "data"), *flags],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(server.returncode, 1)
        logged = [json.loads(l) for l in server.stdout.splitlines() + server.stderr.splitlines()
                  if l.startswith("{")]
        problems = [l["problem"] for l in logged if l.get("msg") == "invalid configuration"]
        self.assertEqual(problems, err.splitlines())
        self.assertFalse(any(l.get("msg") == "serving" for l in logged))

    def test_tls_and_auth_files(self):
        pki = Pki()
        try:
            crt, _ = pki.issue("server", "/CN=server", server=True)
            _, other_key = pki.issue("other", "/CN=other", server=True)
            tokens = self.write("tokens.csv", "only-one-column\n")
            code, _, err = validate("--tls-cert-file", crt, "--tls-private-key-file", other_key,
                                    "--token-auth-file", tokens)
            self.assertEqual(code, 1)
            self.assertIn("--tls-private-key-file %s: does not match --tls-cert-file" % other_key, err)
            self.assertIn("--token-auth-file %s: " % tokens, err)
        finally:
            shutil.rmtree(pki.dir, ignore_errors=True)

    def test_dataplaneservices(self):
        invalid = self.write("invalid.yaml", (DPS % {"group": "bad.example.com", "plugin": "prometheus"})
                             .replace("pluginType: datasource", "pluginType: panel")
                             .replace("version: v1\n", "version: v1\n  foo: bar\n"))
        missing = self.write("missing.yaml", DPS % {"group": "missing.example.com", "plugin": "absent"})
        both = self.write("dir/both.yaml", DPS % {"group": "a.example.com", "plugin": "prometheus"} + "---\n" +
                          DPS % {"group": "a.example.com", "plugin": "prometheus"})
        code, out, err = validate(*self.base(), "-f", invalid, "-f", missing, "-f", os.path.join(self.dir, "dir"))
        self.assertEqual(code, 1, out)
        lines = err.splitlines()
        self.assertIn("%s: spec.foo: unknown field" % invalid, lines)
        self.assertIn('%s: spec.pluginType: Unsupported value: "panel": supported values: "app", "datasource"'
                      % invalid, lines)
        self.assertIn('%s: spec.pluginID: no plugin "absent" in --plugins-dir or --plugin-address' % missing,
                      lines)
        self.assertIn("%s: document 2: spec.group: a.example.com/v1 is already claimed by %s document 1"
                      % (both, both), lines)
        self.assertEqual(len(lines), 4, err)


if __name__ == "__main__":
    unittest.main()
