"""A real etcd cluster for integration tests: Debian's `etcd` (3.4) members on free loopback ports
with their data in a temporary directory (../shared/reference/etcd-v3-api.md §5).

    with EtcdCluster(3) as etcd:
        Aggregator(args=["--storage-backend", "etcd3", "--etcd-servers", etcd.servers])
        etcd.signal(0, signal.SIGSTOP)
"""

import ctypes
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request

from harness import free_port, wait_for


def _die_with_parent():
    """In the child before exec: SIGKILL when the test process goes, however it goes."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class EtcdCluster:
    def __init__(self, members=3, pki=None):
        """With `pki` (pki.Pki), clients must connect over TLS with a certificate it signed:
        self.client_cert is one (crt, key) pair."""
        self.members = members
        self.pki = pki
        if pki:
            self.server_cert = pki.issue("etcd-server", "/CN=etcd", server=True)
            self.client_cert = pki.issue("etcd-client", "/CN=dataplane-aggregator")
        self.dir = tempfile.mkdtemp(prefix="dpa-etcd-")
        self.client_ports = [free_port() for _ in range(members)]
        self.peer_ports = [free_port() for _ in range(members)]
        self.procs = [None] * members
        self.generation = 0

    @property
    def urls(self):
        scheme = "https" if self.pki else "http"
        return ["%s://127.0.0.1:%d" % (scheme, p) for p in self.client_ports]

    @property
    def servers(self):
        """The value of --etcd-servers."""
        return ",".join(self.urls)

    def _command(self, i):
        name = "m%d" % i
        client = self.urls[i]
        peer = "http://127.0.0.1:%d" % self.peer_ports[i]
        initial = ",".join("m%d=http://127.0.0.1:%d" % (j, p) for j, p in enumerate(self.peer_ports))
        return ["etcd", "--name", name,
                "--data-dir", os.path.join(self.dir, "g%d" % self.generation, name),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", "dpa-it-%d-%d" % (os.getpid(), self.generation),
                "--log-level", "error",
                # Progress notifications every second (kube runs etcd with 5 s; the default is
                # 10 min), so idle watches see etcd's revision move.
                "--experimental-watch-progress-notify-interval", "1s"] + ([
                    "--cert-file", self.server_cert[0], "--key-file", self.server_cert[1],
                    "--client-cert-auth", "--trusted-ca-file", self.pki.path("ca.crt")]
                    if self.pki else [])

    def start(self):
        for i in range(self.members):
            self.start_member(i)
        self.wait_healthy()
        return self

    def start_member(self, i):
        with open(os.path.join(self.dir, "m%d.log" % i), "ab") as log:
            self.procs[i] = subprocess.Popen(self._command(i), stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True, preexec_fn=_die_with_parent)

    def healthy(self, i):
        context = None
        if self.pki:
            context = ssl.create_default_context(cafile=self.pki.path("ca.crt"))
            context.load_cert_chain(*self.client_cert)
        try:
            with urllib.request.urlopen(self.urls[i] + "/health", timeout=2, context=context) as r:
                return json.loads(r.read()).get("health") == "true"
        except (OSError, ValueError):
            return False

    def wait_healthy(self, timeout=30):
        """Every running, not stopped member reports a leader."""
        running = [i for i, p in enumerate(self.procs) if p and p.poll() is None]
        assert wait_for(lambda: all(self.healthy(i) for i in running), timeout), \
            "etcd did not become healthy:\n" + self.log()

    def signal(self, i, sig):
        self.procs[i].send_signal(sig)

    def kill(self, i):
        self.procs[i].kill()
        self.procs[i].wait()

    def restart_empty(self):
        """Every member killed and started again on the same ports with no data (a disaster)."""
        for i in range(self.members):
            self.kill(i)
        self.generation += 1
        self.start()

    def etcdctl(self, *args):
        tls = ["--cacert", self.pki.path("ca.crt"), "--cert", self.client_cert[0],
               "--key", self.client_cert[1]] if self.pki else []
        return subprocess.run(["etcdctl", "--endpoints", ",".join(self.urls)] + tls + list(args),
                              check=True, capture_output=True, text=True).stdout

    def log(self):
        out = []
        for i in range(self.members):
            try:
                with open(os.path.join(self.dir, "m%d.log" % i), "rb") as f:
                    out.append("--- m%d\n%s" % (i, f.read().decode("utf-8", "replace")[-3000:]))
            except FileNotFoundError:
                pass
        return "\n".join(out)

    def stop(self):
        for p in self.procs:
            if p and p.poll() is None:
                try:
                    p.send_signal(signal.SIGCONT)
                except ProcessLookupError:
                    pass
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
