"""No secret in any output (DESIGN §6): datasource secureJsonData and basic-auth passwords reach only
the plugin and the datasource, and bearer tokens are never echoed. A run through every route,
failures included (datasource down, bad bodies, unknown uids, 401/403), then every byte the
aggregator wrote is searched: response bodies and headers, its log (debug level, with the plugin's
stderr), the audit log and /metrics."""

import json
import os
import tempfile
import unittest

from harness import Aggregator, example, free_port, wait_for

SECRETS = ["S3CRET-basic-auth-7f3a", "S3CRET-api-key-91bd", "S3CRET-json-token-c2e0"]
BASE = "/apis/testdata.datasource.grafana.app/v0alpha1/namespaces/default/datasources"



class SecretsTest(unittest.TestCase):
    def test_secrets_never_leave_through_any_output(self):
        work = tempfile.mkdtemp(prefix="dpa-secrets-")
        datasources = os.path.join(work, "datasources.yaml")
        with open(datasources, "w") as f:
            f.write("apiVersion: 1\ndatasources:\n"
                    "  - name: Secret\n    type: grafana-testdata-datasource\n    uid: secret\n"
                    "    url: http://127.0.0.1:%d/base\n    basicAuth: true\n    basicAuthUser: alice\n"
                    "    jsonData: {timeout: 1}\n"
                    "    secureJsonData:\n      basicAuthPassword: %s\n      apiKey: %s\n"
                    "      token: %s\n" % (free_port(), SECRETS[0], SECRETS[1], SECRETS[2]))
        audit = os.path.join(work, "audit.log")
        outputs = []
        with Aggregator(datasources=datasources, args=["--audit-log-path", audit]) as agg:
            agg.kubectl("apply", "-f", example("datasource.yml"))
            wait_for(lambda: agg.request("GET", BASE + "/secret/health")[0] != 404, 60)

            def call(method, path, body=None, headers=None, authorization=True):
                status, hdrs, data = agg.request(method, path, body=body, headers=headers,
                                                 authorization=authorization)
                outputs.append(json.dumps(hdrs) + data.decode("utf-8", "replace"))
                return status

            with open(example("query.json")) as f:
                query = json.load(f)
            query["queries"][0]["datasource"]["uid"] = "secret"
            call("POST", BASE + "/secret/query", body=query)
            call("POST", BASE + "/secret/query", body=b"{not json", headers={"Content-Type": "application/json"})
            call("GET", BASE + "/secret/health")
            call("GET", BASE + "/secret/resources/echo", headers={"X-Test": "1"})
            call("POST", BASE + "/secret/resources/echo", body=b"x")
            # The datasource is down: the proxy's error must not carry its credentials.
            self.assertIn(call("GET", BASE + "/secret/proxy/api/v1/query?query=up"), (502, 503, 504))
            call("GET", BASE + "/nope/query")
            call("GET", "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices")
            call("GET", "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices?watch=1&timeoutSeconds=1")
            call("GET", "/apis")
            call("GET", "/apis/testdata.datasource.grafana.app/v0alpha1/metrics")
            self.assertEqual(call("GET", "/metrics", authorization=False), 401)
            call("GET", "/metrics", headers={"Authorization": "Bearer " + SECRETS[2]})
            call("GET", "/metrics")
            token = agg.token
            agg.stop()  # flushes the audit log; the data directory goes when the block ends
            with open(agg.log_path, encoding="utf-8", errors="replace") as f:
                outputs.append(f.read())
            with open(audit, encoding="utf-8", errors="replace") as f:
                outputs.append(f.read())
        everything = "\n".join(outputs)
        self.assertIn('"request"', everything)  # the log was read
        for secret in SECRETS + [token]:
            self.assertNotIn(secret, everything, "a secret leaked into an output")


if __name__ == "__main__":
    unittest.main()
