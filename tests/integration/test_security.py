"""Authentication, authorization and identity end to end (DESIGN §6), with the real binary, kubectl,
curl, the Python kubernetes client, real certificates made by openssl and a delegate that records
what reaches it."""

import base64
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from delegate_server import DelegateServer, _Handler
from harness import Aggregator, example, wait_for
from pki import Pki
from hostile_delegate import HostileDelegate

BASE = "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices"
TESTDATA = "/apis/testdata.datasource.grafana.app/v0alpha1/namespaces/default/datasources/testdata"
with open(example("query.json")) as _f:
    QUERY = json.load(_f)


class SecureByDefaultTest(unittest.TestCase):
    """No authentication flags: a generated admin token is the only way in."""

    @classmethod
    def setUpClass(cls):
        cls.delegate = DelegateServer().__enter__()
        cls.agg = Aggregator(datasources=example("provisioning/datasources.yaml"),
                             delegate_url=cls.delegate.url).start()

    @classmethod
    def tearDownClass(cls):
        cls.agg.stop()
        cls.delegate.__exit__()

    def test_token_and_kubeconfig_are_private(self):
        for name in ("admin.token", "aggregator.kubeconfig"):
            mode = stat.S_IMODE(os.stat(os.path.join(self.agg.data_dir, name)).st_mode)
            self.assertEqual(mode, 0o600, name)
        self.assertGreaterEqual(len(self.agg.token), 64)

    def test_anonymous_gets_401_everywhere_but_health(self):
        for method, path in (("GET", BASE), ("GET", "/metrics"), ("GET", "/apis"),
                             ("POST", TESTDATA + "/query"), ("GET", "/api/v1/namespaces"),
                             ("GET", "/openapi/v3")):
            status, _, body = self.agg.request(method, path, authorization=False)
            self.assertEqual(status, 401, path)
            self.assertEqual(json.loads(body), {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                                "status": "Failure", "message": "Unauthorized",
                                                "reason": "Unauthorized", "code": 401})
        for path in ("/healthz", "/livez", "/readyz", "/version"):
            status, _, _ = self.agg.request("GET", path, authorization=False)
            self.assertEqual(status, 200, path)

    def test_bad_credentials_are_401(self):
        for value in ("Bearer wrong", "Bearer " + "x" * 60000, "Basic YWRtaW46YWRtaW4=", "Bearer",
                      "bearer  " + (self.agg.token or ""), "Bearer \x7f"):
            status, _, body = self.agg.request("GET", BASE, headers={"Authorization": value})
            # 400: a header value HTTP itself refuses (DEL); 431: over the header limit.
            self.assertIn(status, (400, 401, 431), value[:20])
            self.assertEqual(json.loads(body)["kind"], "Status")

    def test_kubectl_with_the_generated_kubeconfig_and_with_a_wrong_token(self):
        self.agg.kubectl("apply", "-f", example("datasource.yml"))
        out = self.agg.kubectl("get", "dataplaneservices", "-o", "name").stdout
        self.assertIn("v0alpha1.testdata.datasource.grafana.app", out)
        r = self.agg.kubectl("--token", "not-the-token", "get", "dataplaneservices", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Unauthorized", r.stderr)

    def test_client_identity_headers_never_reach_the_delegate_or_plugins(self):
        spoof = {"X-Remote-User": "admin", "X-Remote-Group": "system:masters",
                 "X-Remote-Extra-Role": "Admin", "X-Grafana-Org-Role": "Admin"}
        status, _, body = self.agg.request("GET", "/api/v1/x", headers=spoof)
        self.assertEqual(status, 200, body)
        seen = json.loads(body)["headers"]
        for name in ("x-remote-user", "x-remote-group", "x-remote-extra-role"):
            self.assertNotIn(name, seen)
        # Pass-through mode: the client's own credentials go on for the delegate to judge.
        self.assertEqual(seen["authorization"], "Bearer " + self.agg.token)
        # The plugin is told who authenticated (admin), not who a header claims to be.
        self.agg.kubectl("apply", "-f", example("datasource.yml"))
        # Until the group is routable the path goes to the delegate, which answers 200 too: wait
        # for the plugin's echo, which names the user.
        status, _, body = wait_for(lambda: (lambda r: r if r[0] == 200 and b'"user"' in r[2] else None)(
            self.agg.request("GET", TESTDATA + "/resources/echo", headers=spoof)), 60) or (0, 0, b"")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["user"]["login"], "admin")
        self.assertEqual(json.loads(body)["user"]["role"], "")


    def test_websocket_token_subprotocol(self):
        """Browsers cannot set Authorization on a WebSocket: kube's bearer-token subprotocol
        authenticates the stream instead, and the server answers with the other subprotocol."""
        import websocket  # python3-websocket
        self.agg.kubectl("apply", "-f", example("datasource.yml"))
        # Routable once the plugin answers (before that, the delegate answers 200 as well).
        wait_for(lambda: b'"user"' in self.agg.request("GET", TESTDATA + "/resources/echo")[2], 60)
        token_protocol = "base64url.bearer.authorization.k8s.io." + base64.urlsafe_b64encode(
            self.agg.token.encode()).decode().rstrip("=")
        host, port = self.agg.host_port
        url = "ws://%s:%d%s/stream/counter" % (host, port, TESTDATA)
        ws = websocket.create_connection(url, timeout=20, subprotocols=[token_protocol, "v1.dpa"])
        try:
            self.assertEqual(ws.getsubprotocol(), "v1.dpa")
            self.assertIn("schema", json.loads(ws.recv()))
        finally:
            ws.close()
        wrong = "base64url.bearer.authorization.k8s.io." + base64.urlsafe_b64encode(
            b"not-the-token").decode().rstrip("=")
        for protocols in ([wrong, "v1.dpa"], [token_protocol]):
            with self.assertRaises(websocket.WebSocketBadStatusException) as raised:
                websocket.create_connection(url, timeout=20, subprotocols=protocols)
            self.assertEqual(raised.exception.status_code, 401)


class TokenFileAndAbacTest(unittest.TestCase):
    """403 messages end with the authorizer's reason (ABAC: "No policy matched."), as kube's do."""
    @classmethod
    def setUpClass(cls):
        work = tempfile.mkdtemp(prefix="dpa-authz-")
        tokens = os.path.join(work, "tokens.csv")
        with open(tokens, "w") as f:
            f.write('admintoken-0123456789,root,0,"system:masters"\n'
                    "alicetoken-0123456789,alice,1\n"
                    'bobtoken-0123456789,bob,2,"dev,ops"\n'
                    "malloryjunk-0123456789,mallory,3\n")
        policy = os.path.join(work, "abac.jsonl")
        with open(policy, "w") as f:
            for spec in (
                    {"user": "alice", "apiGroup": "aggregation.grafana.app", "resource": "dataplaneservices",
                     "readonly": True},
                    {"user": "bob", "apiGroup": "testdata.datasource.grafana.app", "namespace": "default",
                     "resource": "datasources"},
                    {"group": "system:authenticated", "nonResourcePath": "/apis", "readonly": True},
                    {"group": "system:authenticated", "nonResourcePath": "/apis/*", "readonly": True},
                    {"user": "root", "resource": "users", "apiGroup": "*", "namespace": "*"}):
                f.write(json.dumps({"apiVersion": "abac.authorization.kubernetes.io/v1beta1",
                                    "kind": "Policy", "spec": spec}) + "\n")
        cls.agg = Aggregator(datasources=example("provisioning/datasources.yaml"),
                             args=["--token-auth-file", tokens, "--authorization-mode", "ABAC",
                                   "--authorization-policy-file", policy]).start()
        cls.as_root = {"Authorization": "Bearer admintoken-0123456789"}
        cls.as_alice = {"Authorization": "Bearer alicetoken-0123456789"}
        cls.as_bob = {"Authorization": "Bearer bobtoken-0123456789"}
        cls.agg.kubectl("--token", "admintoken-0123456789", "apply", "-f", example("datasource.yml"))
        assert wait_for(lambda: cls.agg.request("POST", TESTDATA + "/query", body=QUERY,
                                                headers=cls.as_root)[0] == 200, 60), cls.agg.log()

    @classmethod
    def tearDownClass(cls):
        cls.agg.stop()

    def test_no_admin_token_is_generated_when_authentication_is_configured(self):
        self.assertFalse(os.path.exists(os.path.join(self.agg.data_dir, "admin.token")))

    def test_alice_reads_dataplaneservices_only(self):
        status, _, _ = self.agg.request("GET", BASE, headers=self.as_alice)
        self.assertEqual(status, 200)
        status, _, _ = self.agg.request("GET", BASE + "/v0alpha1.testdata.datasource.grafana.app",
                                        headers=self.as_alice)
        self.assertEqual(status, 200)
        status, _, body = self.agg.request("DELETE", BASE + "/v0alpha1.testdata.datasource.grafana.app",
                                           headers=self.as_alice)
        self.assertEqual(status, 403)
        doc = json.loads(body)
        self.assertEqual(doc["reason"], "Forbidden")
        self.assertEqual(doc["message"],
                         'dataplaneservices.aggregation.grafana.app "v0alpha1.testdata.datasource.grafana.app" '
                         'is forbidden: User "alice" cannot delete resource "dataplaneservices" in API group '
                         '"aggregation.grafana.app" at the cluster scope: No policy matched.')
        status, _, _ = self.agg.request("POST", TESTDATA + "/query", body=QUERY, headers=self.as_alice)
        self.assertEqual(status, 403)

    def test_bob_queries_testdata_in_default_only(self):
        status, _, body = self.agg.request("POST", TESTDATA + "/query", body=QUERY, headers=self.as_bob)
        self.assertEqual(status, 200, body)
        other_ns = TESTDATA.replace("/namespaces/default/", "/namespaces/org-2/")
        status, _, body = self.agg.request("POST", other_ns + "/query", body=QUERY, headers=self.as_bob)
        self.assertEqual(status, 403)
        self.assertEqual(json.loads(body)["message"],
                         'datasources.testdata.datasource.grafana.app "testdata" is forbidden: User "bob" '
                         'cannot create resource "datasources/query" in API group '
                         '"testdata.datasource.grafana.app" in the namespace "org-2": No policy matched.')
        status, _, _ = self.agg.request("GET", BASE, headers=self.as_bob)
        self.assertEqual(status, 403)

    def test_unknown_token_is_401_and_non_resource_paths_are_authorized(self):
        status, _, _ = self.agg.request("GET", BASE, headers={"Authorization": "Bearer nope"})
        self.assertEqual(status, 401)
        status, _, _ = self.agg.request("GET", "/apis", headers=self.as_alice)
        self.assertEqual(status, 200)
        status, _, body = self.agg.request("GET", "/metrics", headers=self.as_alice)
        self.assertEqual(status, 403)
        self.assertEqual(json.loads(body)["message"],
                         'forbidden: User "alice" cannot get path "/metrics": No policy matched.')

    def test_impersonation(self):
        # root (system:masters) may impersonate alice, and then has alice's rights only.
        status, _, _ = self.agg.request("GET", BASE, headers=dict(self.as_root, **{"Impersonate-User": "alice"}))
        self.assertEqual(status, 200)
        status, _, _ = self.agg.request("POST", TESTDATA + "/query", body=QUERY,
                                        headers=dict(self.as_root, **{"Impersonate-User": "alice"}))
        self.assertEqual(status, 403)
        # bob may not impersonate anyone.
        status, _, body = self.agg.request("GET", BASE, headers=dict(self.as_bob, **{"Impersonate-User": "alice"}))
        self.assertEqual(status, 403)
        self.assertEqual(json.loads(body)["message"],
                         'users "alice" is forbidden: User "bob" cannot impersonate resource "users" in API '
                         'group "" at the cluster scope: No policy matched.')
        # A group without a user is a bad request.
        status, _, _ = self.agg.request("GET", BASE, headers=dict(self.as_root, **{"Impersonate-Group": "x"}))
        self.assertEqual(status, 400)


class AuditTest(unittest.TestCase):
    def test_one_event_per_request_with_user_verb_and_code(self):
        work = tempfile.mkdtemp(prefix="dpa-audit-")
        path = os.path.join(work, "audit.log")
        with Aggregator(args=["--audit-log-path", path], with_plugins=False) as agg:
            agg.request("GET", BASE, headers={"User-Agent": "audit-test", "X-Forwarded-For": "10.1.2.3",
                                              "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
            agg.request("DELETE", BASE + "/missing")
            agg.request("GET", BASE, authorization=False)
            agg.request("GET", "/healthz")  # open: not audited
        with open(path) as f:
            events = [json.loads(line) for line in f]
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        by_verb = {(e["verb"], e["responseStatus"]["code"]): e for e in events}
        listed = by_verb[("list", 200)]
        self.assertEqual((listed["kind"], listed["apiVersion"], listed["level"]),
                         ("Event", "audit.k8s.io/v1", "Metadata"))
        self.assertEqual(listed["user"]["username"], "admin")
        self.assertIn("system:masters", listed["user"]["groups"])
        self.assertEqual(listed["objectRef"], {"resource": "dataplaneservices", "apiGroup": "aggregation.grafana.app",
                                               "apiVersion": "v0alpha1"})
        self.assertEqual(listed["sourceIPs"], ["10.1.2.3", "127.0.0.1"])
        self.assertEqual(listed["userAgent"], "audit-test")
        self.assertEqual(listed["annotations"]["authorization.k8s.io/decision"], "allow")
        self.assertEqual(listed["annotations"]["dataplane.grafana.app/trace-id"], "4bf92f3577b34da6a3ce929d0e0e4736")
        # A request without a traceparent is audited with the trace the aggregator started for it.
        self.assertRegex(by_verb[("delete", 404)]["annotations"]["dataplane.grafana.app/trace-id"], "^[0-9a-f]{32}$")
        self.assertEqual(by_verb[("delete", 404)]["objectRef"]["name"], "missing")
        self.assertEqual(by_verb[("list", 401)]["user"], {})
        self.assertEqual(len(events), 3)

    def test_a_full_disk_does_not_stop_requests(self):
        with Aggregator(args=["--audit-log-path", "/dev/full"], with_plugins=False) as agg:
            for _ in range(20):
                status, _, _ = agg.request("GET", BASE)
                self.assertEqual(status, 200)

            def dropped():
                _, _, text = agg.request("GET", "/metrics")
                for line in text.decode().splitlines():
                    if line.startswith('dataplane_aggregator_audit_events_total{result="dropped"}'):
                        return float(line.split()[-1])
                return 0
            self.assertGreaterEqual(wait_for(lambda: dropped() >= 20 and dropped(), 10), 20)


class _ReviewHandler(BaseHTTPRequestHandler):
    """TokenReview at /authenticate and SubjectAccessReview at /authorize: token "good-*" is user
    "web-<rest>"; "slow-*" answers after 3 s; users may only `get`/`list`; /metrics is denied."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.calls.append((self.path, review))
        if self.path == "/authenticate":
            token = review["spec"]["token"]
            if token.startswith("slow-"):
                time.sleep(3)
            ok = token.startswith("good-") or token.startswith("slow-")
            status = {"authenticated": ok}
            if ok:
                status["user"] = {"username": "web-" + token.split("-", 1)[1], "uid": "42",
                                  "groups": ["webhook-users"], "extra": {"role": ["Editor"]}}
        else:
            spec = review["spec"]
            verb = (spec.get("resourceAttributes") or spec.get("nonResourceAttributes"))["verb"]
            if spec.get("nonResourceAttributes", {}).get("path") == "/metrics":
                status = {"allowed": False, "denied": True, "reason": "no metrics for you"}
            else:
                status = {"allowed": verb in ("get", "list", "create")}
        body = json.dumps({"apiVersion": review["apiVersion"], "kind": review["kind"],
                           "status": status}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class WebhookTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = ThreadingHTTPServer(("127.0.0.1", 0), _ReviewHandler)
        cls.server.calls = []
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        work = tempfile.mkdtemp(prefix="dpa-webhook-")
        url = "http://127.0.0.1:%d" % cls.server.server_address[1]

        def kubeconfig(name, path):
            file = os.path.join(work, name)
            with open(file, "w") as f:
                f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: w\n  cluster:\n"
                        "    server: %s%s\nusers:\n- name: u\n  user: {}\ncontexts:\n"
                        "- name: c\n  context: {cluster: w, user: u}\ncurrent-context: c\n" % (url, path))
            return file
        cls.agg = Aggregator(datasources=example("provisioning/datasources.yaml"), args=[
            "--authentication-token-webhook-config-file", kubeconfig("authn.yaml", "/authenticate"),
            "--authorization-mode", "Webhook",
            "--authorization-webhook-config-file", kubeconfig("authz.yaml", "/authorize"),
            "--webhook-timeout", "1s"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.agg.stop()
        cls.server.shutdown()

    def calls(self, path):
        return [c for p, c in self.server.calls if p == path]

    def test_allowed_denied_and_cached(self):
        headers = {"Authorization": "Bearer good-alice"}
        status, _, body = self.agg.request("GET", BASE, headers=headers)
        self.assertEqual(status, 200, body)
        authn, authz = len(self.calls("/authenticate")), len(self.calls("/authorize"))
        review = self.calls("/authorize")[-1]
        self.assertEqual(review["apiVersion"], "authorization.k8s.io/v1")
        self.assertEqual(review["spec"]["user"], "web-alice")
        self.assertIn("webhook-users", review["spec"]["groups"])
        self.assertEqual(review["spec"]["resourceAttributes"]["resource"], "dataplaneservices")
        # The same request again is answered from both caches.
        status, _, _ = self.agg.request("GET", BASE, headers=headers)
        self.assertEqual(status, 200)
        self.assertEqual((len(self.calls("/authenticate")), len(self.calls("/authorize"))), (authn, authz))
        status, _, body = self.agg.request("DELETE", BASE + "/x", headers=headers)
        self.assertEqual(status, 403)
        status, _, body = self.agg.request("GET", "/metrics", headers=headers)
        self.assertEqual(status, 403)
        self.assertEqual(json.loads(body)["message"],
                         'forbidden: User "web-alice" cannot get path "/metrics": no metrics for you')

    def test_unknown_slow_and_down(self):
        status, _, _ = self.agg.request("GET", BASE, headers={"Authorization": "Bearer bad-token"})
        self.assertEqual(status, 401)
        started = time.time()
        status, _, _ = self.agg.request("GET", BASE, headers={"Authorization": "Bearer slow-bob"})
        self.assertEqual(status, 401)  # past --webhook-timeout: not authenticated
        self.assertLess(time.time() - started, 2.9)

    def test_webhook_down_is_401_not_an_open_door(self):
        work = tempfile.mkdtemp(prefix="dpa-webhook-down-")
        down = os.path.join(work, "authn.yaml")
        with open(down, "w") as f:
            # Port 1 on loopback: nothing listens, the connection is refused at once.
            f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: w\n  cluster:\n"
                    "    server: http://127.0.0.1:1/authenticate\nusers:\n- name: u\n  user: {}\n"
                    "contexts:\n- name: c\n  context: {cluster: w, user: u}\ncurrent-context: c\n")
        with Aggregator(args=["--authentication-token-webhook-config-file", down],
                        with_plugins=False) as agg:
            for token in ("good-alice", "anything"):
                status, _, body = agg.request("GET", BASE, headers={"Authorization": "Bearer " + token})
                self.assertEqual(status, 401, body)
            status, _, _ = agg.request("GET", BASE, authorization=False)
            self.assertEqual(status, 401)

    def test_plugin_sees_the_webhook_user(self):
        # The webhook lets its users get, list and create: enough for a first apply.
        self.agg.kubectl("--token", "good-root", "apply", "-f", example("datasource.yml"))
        # Routable once the registration controller has the object and the plugin is up.
        status, _, body = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(self.agg.request(
            "GET", TESTDATA + "/resources/echo",
            headers={"Authorization": "Bearer good-carol", "X-Grafana-User": "mallory"})), 60) or (0, 0, b"")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["user"]["login"], "web-carol")
        self.assertEqual(json.loads(body)["user"]["role"], "Editor")


class _TlsDelegate(DelegateServer):
    """The recording delegate over TLS, requiring a client certificate from `client_ca`."""

    def __init__(self, cert, key, client_ca):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.seen = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.httpd.server_address[1]


class FrontProxyAndClientCertTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = Pki("front-proxy-ca")
        delegate_cert = cls.pki.issue("delegate", "/CN=delegate", server=True)
        proxy_cert = cls.pki.issue("proxy-client", "/CN=front-proxy-client")
        cls.clients = Pki("client-ca")
        cls.carol = cls.clients.issue("carol", "/CN=carol/O=viewers/O=system:masters")
        cls.stranger = Pki("other-ca").issue("eve", "/CN=eve/O=system:masters")
        cls.proxy_cert = proxy_cert
        cls.intruder = cls.pki.issue("intruder", "/CN=intruder")  # the proxies' CA, not an allowed name
        cls.delegate = _TlsDelegate(*delegate_cert, cls.pki.path("front-proxy-ca.crt")).__enter__()
        cls.tokens = os.path.join(cls.pki.dir, "tokens.csv")
        with open(cls.tokens, "w") as f:
            f.write('sometoken-0123456789,dave,7,"devs"\n')
        cls.agg = Aggregator(
            delegate_url=cls.delegate.url, datasources=example("provisioning/datasources.yaml"),
            args=["--secure-port", "0", "--client-ca-file", cls.clients.path("client-ca.crt"),
                  "--requestheader-client-ca-file", cls.pki.path("front-proxy-ca.crt"),
                  "--requestheader-allowed-names", "front-proxy-client",
                  "--token-auth-file", cls.tokens,
                  "--delegate-ca-file", cls.pki.path("front-proxy-ca.crt"),
                  "--proxy-client-cert-file", proxy_cert[0], "--proxy-client-key-file", proxy_cert[1]]).start()

    @classmethod
    def tearDownClass(cls):
        cls.agg.stop()
        cls.delegate.__exit__()

    def secure_url(self):
        with open(self.agg.log_path) as f:
            for line in f:
                if '"serving"' in line:
                    return "https://127.0.0.1:%d" % json.loads(line)["secure_port"]
        raise AssertionError("no serving line")

    def test_delegate_sees_the_authenticated_identity_only(self):
        headers = {"Authorization": "Bearer sometoken-0123456789", "X-Remote-User": "admin",
                   "X-Remote-Group": "system:masters", "Impersonate-User": "root"}
        # AlwaysAllow lets dave impersonate root; the delegate is told root, and never sees the
        # Impersonate-* or Authorization headers, nor the client's X-Remote-*.
        status, _, body = self.agg.request("GET", "/api/v1/pods", headers=headers)
        self.assertEqual(status, 200, body)
        seen = json.loads(body)["headers"]
        self.assertEqual(seen["x-remote-user"], "root")
        self.assertEqual(seen["x-remote-group"], "system:authenticated")
        self.assertNotIn("impersonate-user", seen)
        self.assertNotIn("authorization", seen)
        del headers["Impersonate-User"]
        status, _, body = self.agg.request("GET", "/api/v1/pods", headers=headers)
        self.assertEqual(status, 200, body)
        seen = json.loads(body)["headers"]
        self.assertEqual(seen["x-remote-user"], "dave")
        self.assertEqual(seen["x-remote-uid"], "7")
        self.assertNotIn("authorization", seen)
        self.assertNotIn("impersonate-user", seen)
        record = self.delegate.seen[-1]
        self.assertEqual(record["headers"]["x-remote-user"], "dave")

    def test_python_client_with_a_client_certificate(self):
        from kubernetes import client, config
        import base64

        def b64(path):
            with open(path, "rb") as f:
                return base64.b64encode(f.read()).decode()

        kubeconfig = {
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": self.secure_url(),
                                                   "insecure-skip-tls-verify": True}}],
            "users": [{"name": "u", "user": {"client-certificate-data": b64(self.carol[0]),
                                            "client-key-data": b64(self.carol[1])}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}
        api_client = config.new_client_from_config_dict(kubeconfig)
        api = client.CustomObjectsApi(api_client)
        listed = api.list_cluster_custom_object("aggregation.grafana.app", "v0alpha1", "dataplaneservices")
        self.assertEqual(listed["kind"], "DataPlaneServiceList")

    def curl_status(self, cert, headers, path=BASE):
        args = ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}"]
        if cert:
            args += ["--cert", cert[0], "--key", cert[1]]
        for header in headers:
            args += ["-H", header]
        return subprocess.run(args + [self.secure_url() + path], capture_output=True, text=True).stdout

    def test_request_headers_only_from_an_allowed_front_proxy(self):
        claim = ["X-Remote-User: erin", "X-Remote-Group: system:masters"]
        self.assertEqual(self.curl_status(self.proxy_cert, claim), "200")
        # Same CA, a name not in --requestheader-allowed-names: the headers are not believed.
        self.assertEqual(self.curl_status(self.intruder, claim), "401")
        self.assertEqual(self.curl_status(None, claim), "401")

    def test_hostile_identity_input_is_a_status_or_harmless(self):
        dave = {"Authorization": "Bearer sometoken-0123456789"}
        # 1,000 impersonated groups (AlwaysAllow lets dave impersonate).
        groups = "".join("Impersonate-Group: g%d\r\n" % i for i in range(1000)).encode()
        s = socket.create_connection(self.agg.host_port, timeout=20)
        s.sendall(b"GET " + BASE.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  b"Authorization: Bearer sometoken-0123456789\r\nImpersonate-User: many\r\n" + groups + b"\r\n")
        reply = b""
        while True:
            data = s.recv(65536)
            if not data:
                break
            reply += data
        s.close()
        self.assertTrue(reply.startswith(b"HTTP/1.1 200") or reply.startswith(b"HTTP/1.1 431"), reply[:200])
        # A user name that spells CR/LF with %-escapes stays one header value toward the delegate.
        status, _, body = self.agg.request("GET", "/api/v1/pods", headers=dict(
            dave, **{"Impersonate-User": "root%0D%0AX-Remote-Group: system:masters"}))
        self.assertEqual(status, 200, body)
        seen = json.loads(body)["headers"]
        self.assertEqual(seen["x-remote-user"], "root%0D%0AX-Remote-Group: system:masters")
        self.assertEqual(seen["x-remote-group"], "system:authenticated")
        self.assertEqual(self.agg.request("GET", "/healthz")[0], 200)

    def test_certificate_from_another_ca_is_401(self):
        url = self.secure_url() + BASE
        r = subprocess.run(["curl", "-sk", "--cert", self.stranger[0], "--key", self.stranger[1],
                            "-o", "/dev/null", "-w", "%{http_code}", url], capture_output=True, text=True)
        self.assertEqual(r.stdout, "401")
        r = subprocess.run(["curl", "-sk", "--cert", self.carol[0], "--key", self.carol[1],
                            "-o", "/dev/null", "-w", "%{http_code}", url], capture_output=True, text=True)
        self.assertEqual(r.stdout, "200")


class CredentialFilesTest(unittest.TestCase):
    """Certificates, CA bundles and the token file are read again when they change, with no
    restart (DESIGN §6, as kube-apiserver does), and a broken replacement keeps the last good one.
    Also front-proxy mode for Upgrade requests, with the token in Authorization or a WebSocket
    subprotocol."""

    @classmethod
    def setUpClass(cls):
        cls.front = Pki("front-proxy-ca")
        cls.delegate = HostileDelegate(tls=(*cls.front.issue("delegate", "/CN=delegate", server=True),
                                            cls.front.path("front-proxy-ca.crt"))).__enter__()
        cls.proxy_1 = cls.front.issue("proxy-1", "/CN=front-proxy-client")
        cls.proxy_2 = cls.front.issue("proxy-2", "/CN=front-proxy-client-2")
        cls.serving = Pki("serving-ca")
        cls.server_1 = cls.serving.issue("server-1", "/CN=server-1", server=True)
        cls.server_2 = cls.serving.issue("server-2", "/CN=server-2", server=True)
        cls.clients_1 = Pki("client-ca-1")
        cls.clients_2 = Pki("client-ca-2")
        cls.frank = cls.clients_2.issue("frank", "/CN=frank/O=system:masters")
        # The files the aggregator is pointed at: copies, replaced by the tests.
        cls.dir = tempfile.mkdtemp(prefix="dpa-reload-")
        cls.files = {name: os.path.join(cls.dir, name) for name in
                     ("tls.crt", "tls.key", "client-ca.crt", "tokens.csv", "proxy.crt", "proxy.key")}
        cls.replace("tls.crt", cls.server_1[0])
        cls.replace("tls.key", cls.server_1[1])
        cls.replace("client-ca.crt", cls.clients_1.path("client-ca-1.crt"))
        cls.replace("proxy.crt", cls.proxy_1[0])
        cls.replace("proxy.key", cls.proxy_1[1])
        cls.write_tokens('token-dave-0123456789,dave,7,"devs"\n')
        cls.agg = Aggregator(
            delegate_url=cls.delegate.url,
            args=["--tls-cert-file", cls.files["tls.crt"], "--tls-private-key-file", cls.files["tls.key"],
                  "--client-ca-file", cls.files["client-ca.crt"], "--token-auth-file", cls.files["tokens.csv"],
                  "--delegate-ca-file", cls.front.path("front-proxy-ca.crt"),
                  "--proxy-client-cert-file", cls.files["proxy.crt"],
                  "--proxy-client-key-file", cls.files["proxy.key"]]).start()

    @classmethod
    def tearDownClass(cls):
        cls.agg.stop()
        cls.delegate.__exit__()

    @classmethod
    def replace(cls, name, source):
        """Replaces a file the way tools do: a new file renamed over the old one."""
        shutil.copyfile(source, cls.files[name] + ".new")
        os.replace(cls.files[name] + ".new", cls.files[name])

    @classmethod
    def write_tokens(cls, text):
        with open(cls.files["tokens.csv"] + ".new", "w") as f:
            f.write(text)
        os.replace(cls.files["tokens.csv"] + ".new", cls.files["tokens.csv"])

    def as_token(self, token, path=BASE):
        return self.agg.request("GET", path, headers={"Authorization": "Bearer " + token},
                                authorization=False)[0]

    def served_cn(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", self.agg.secure_port), timeout=10) as raw:
            with ctx.wrap_socket(raw) as tls:
                der = tls.getpeercert(binary_form=True)
        out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"], input=der,
                             capture_output=True, check=True).stdout.decode()
        return out.strip().split("CN = ")[-1]

    def log_has(self, text, after):
        with open(self.agg.log_path) as f:
            return text in f.read()[after:]

    def log_size(self):
        return os.path.getsize(self.agg.log_path)

    def test_token_file(self):
        self.assertEqual(self.as_token("token-dave-0123456789"), 200)
        self.assertEqual(self.as_token("token-erin-0123456789"), 401)
        self.write_tokens('token-erin-0123456789,erin,8,"devs"\n')
        self.assertEqual(wait_for(lambda: self.as_token("token-erin-0123456789") == 200, 20), True)
        self.assertEqual(self.as_token("token-dave-0123456789"), 401)
        # A broken file is refused and the last good one stays in force.
        mark = self.log_size()
        self.write_tokens("only-one-column\n")
        self.assertTrue(wait_for(lambda: self.log_has("not reloaded", mark), 20), self.agg.log())
        self.assertEqual(self.as_token("token-erin-0123456789"), 200)
        self.write_tokens('token-dave-0123456789,dave,7,"devs"\n')
        self.assertEqual(wait_for(lambda: self.as_token("token-dave-0123456789") == 200, 20), True)

    def test_client_ca_file(self):
        url = "https://127.0.0.1:%d%s" % (self.agg.secure_port, BASE)

        def with_frank():
            return subprocess.run(["curl", "-sk", "--cert", self.frank[0], "--key", self.frank[1], "-o",
                                   "/dev/null", "-w", "%{http_code}", url],
                                  capture_output=True, text=True).stdout

        self.assertEqual(with_frank(), "401")
        self.replace("client-ca.crt", self.clients_2.path("client-ca-2.crt"))
        self.assertEqual(wait_for(lambda: with_frank() == "200", 20), True)

    def test_serving_certificate(self):
        self.assertEqual(self.served_cn(), "server-1")
        # The certificate first, the key a moment later: in between they do not match, and the
        # server keeps serving the old pair until both are in place.
        mark = self.log_size()
        self.replace("tls.crt", self.server_2[0])
        wait_for(lambda: self.log_has("serving certificate", mark), 5)
        self.assertEqual(self.served_cn(), "server-1")
        self.replace("tls.key", self.server_2[1])
        self.assertEqual(wait_for(lambda: self.served_cn() == "server-2", 20), True)

    def test_proxy_client_certificate(self):
        def delegate_saw():
            # /close: the delegate ends each connection, so every request makes a new one.
            status, _, body = self.agg.request(
                "GET", "/close", headers={"Authorization": "Bearer token-dave-0123456789"})
            self.assertEqual(status, 200, body)
            return self.delegate.peer_cn["/close"]

        self.assertEqual(delegate_saw(), "front-proxy-client")
        self.replace("proxy.key", self.proxy_2[1])
        self.replace("proxy.crt", self.proxy_2[0])
        self.assertEqual(wait_for(lambda: delegate_saw() == "front-proxy-client-2", 20), True)

    def upgrade(self, headers):
        s = socket.create_connection(self.agg.host_port, timeout=10)
        head = "GET /upgrade HTTP/1.1\r\nHost: x\r\n" + "".join(
            "%s: %s\r\n" % kv for kv in headers) + "\r\n"
        s.sendall(head.encode())
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
        s.close()
        return got.split(b"\r\n")[0], self.delegate.headers["/upgrade"]

    def test_upgrade_in_front_proxy_mode(self):
        spoof = [("X-Remote-User", "admin"), ("X-Remote-Group", "system:masters"),
                 ("Connection", "Upgrade")]
        status, seen = self.upgrade(spoof + [("Upgrade", "test"),
                                             ("Authorization", "Bearer token-dave-0123456789")])
        self.assertTrue(status.startswith(b"HTTP/1.1 101"), status)
        self.assertEqual(seen["x-remote-user"], ["dave"])
        self.assertEqual(seen["x-remote-group"], ["devs", "system:authenticated"])
        self.assertNotIn("authorization", seen)
        # The token as a WebSocket subprotocol: the delegate gets the identity and the other
        # subprotocols, never the token.
        token = base64.urlsafe_b64encode(b"token-dave-0123456789").decode().rstrip("=")
        status, seen = self.upgrade(spoof + [
            ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Protocol", "base64url.bearer.authorization.k8s.io." + token + ", chat")])
        self.assertTrue(status.startswith(b"HTTP/1.1 101"), status)
        self.assertEqual(seen["x-remote-user"], ["dave"])
        self.assertEqual(seen["sec-websocket-protocol"], ["chat"])
        self.assertNotIn("authorization", seen)


if __name__ == "__main__":
    unittest.main()
