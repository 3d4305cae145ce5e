"""Starts the real dataplane-aggregator binary for integration tests and talks to it.

Environment (set by ctest, see CMakeLists.txt): DPA_BINARY, DPA_PLUGINS_DIR, DPA_SOURCE_DIR.
Every aggregator listens on port 0 with its own temporary data directory; the actual URL is read
from the kubeconfig it writes on start (<data-dir>/aggregator.kubeconfig).

    with Aggregator(datasources=EXAMPLE_DATASOURCES) as agg:
        agg.kubectl("apply", "-f", example("datasource.yml"))
        status, headers, body = agg.request("GET", "/readyz")
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse

BINARY = os.environ.get("DPA_BINARY", "")
PLUGINS_DIR = os.environ.get("DPA_PLUGINS_DIR", "")
SOURCE_DIR = os.environ.get("DPA_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD_DIR = os.environ.get("DPA_BUILD_DIR", "")


def example(name):
    """Path of a file under examples/."""
    return os.path.join(SOURCE_DIR, "examples", name)


EXAMPLE_DATASOURCES = example("provisioning/datasources.yaml")


def free_port():
    """A loopback TCP port nothing listens on (for a server a test starts, or one that is down)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(predicate, timeout=30, interval=0.1):
    """Polls predicate until it returns something truthy (returned) or timeout passes (then its
    last value is returned)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


class Aggregator:
    """One aggregator process. Use as a context manager; stop() also checks that no plugin
    process it started is left behind."""

    def __init__(self, args=(), datasources=None, plugins_dir=None, delegate_url=None,
                 data_dir=None, env=None, with_plugins=True):
        self.extra_args = list(args)
        self.datasources = datasources
        self.plugins_dir = plugins_dir if plugins_dir is not None else (PLUGINS_DIR if with_plugins else None)
        self.delegate_url = delegate_url
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="dpa-it-")
        self.home = tempfile.mkdtemp(prefix="dpa-home-")  # kubectl's discovery cache lives here
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.url = None
        self.log_path = os.path.join(self.data_dir, "aggregator.log")

    # --- lifecycle -------------------------------------------------------------------------
    def command(self):
        cmd = [BINARY, "--port", "0", "--secure-port", "0", "--data-dir", self.data_dir,
               "--log-level", "debug"]
        if self.plugins_dir:
            cmd += ["--plugins-dir", self.plugins_dir]
        if self.datasources:
            cmd += ["--datasources", self.datasources]
        if self.delegate_url:
            cmd += ["--delegate-url", self.delegate_url]
        return cmd + self.extra_args

    def start(self, timeout=30):
        assert BINARY, "DPA_BINARY is not set (run through ctest)"
        try:
            os.unlink(self.kubeconfig)
        except FileNotFoundError:
            pass
        self._log = open(self.log_path, "ab")
        start_offset = self._log.tell()  # a restart appends: read only this run's lines
        self.proc = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("aggregator exited with %s:\n%s" % (self.proc.returncode, self.log()))
            if os.path.exists(self.kubeconfig):
                # The plain-HTTP URL the tests talk to is on the "serving" line (the kubeconfig
                # names the HTTPS port, where kubectl sends its token).
                with open(self.log_path, "rb") as f:
                    f.seek(start_offset)
                    lines = f.read().decode("utf-8", "replace").splitlines()
                serving = [json.loads(line) for line in lines if '"msg":"serving"' in line]
                if serving:
                    self.url = serving[-1]["url"]
                    self.secure_port = serving[-1]["secure_port"]
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError("aggregator did not write its kubeconfig:\n" + self.log())
        self.wait_ready(deadline - time.time())
        return self

    def wait_ready(self, timeout=30):
        deadline = time.time() + max(timeout, 1)
        while time.time() < deadline:
            try:
                status, _, _ = self.request("GET", "/readyz", timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("aggregator never became ready:\n" + self.log())

    def stop(self, timeout=15):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return None
        plugin_pids = self.plugin_pids()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("aggregator did not stop within %ss after SIGTERM" % timeout)
        code = self.proc.returncode
        self.proc = None
        self._log.close()
        self._assert_gone(plugin_pids)
        self.assert_no_sanitizer_report()
        return code

    # ASan/LSan headers, and UBSan's "<file>:<line>:<col>: runtime error:" (not a Go plugin's
    # "panic: runtime error:", which is the plugin's own business).
    SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|:\d+:\d+: runtime error:")

    def assert_no_sanitizer_report(self):
        """The sanitizer build reports memory errors, leaks at exit and undefined behaviour of
        the aggregator and of its plugins (their stderr is re-logged) into this log."""
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return
        found = self.SANITIZER_REPORT.search(text)
        if found:
            at = found.start()
            raise AssertionError("sanitizer report in the aggregator's log:\n" +
                                 text[max(0, at - 2000):at + 8000])

    def kill9(self):
        """SIGKILL the aggregator (no cleanup of its own); its plugins must die with it."""
        plugin_pids = self.plugin_pids()
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self._log.close()
        self._assert_gone(plugin_pids, timeout=5)
        self.assert_no_sanitizer_report()  # errors found before the kill (no leak check: no exit)

    def restart(self):
        if self.proc is not None:
            self.stop()
        return self.start()

    def _assert_gone(self, pids, timeout=5):
        deadline = time.time() + timeout
        alive = list(pids)
        while alive and time.time() < deadline:
            alive = [p for p in alive if _alive(p)]
            time.sleep(0.05)
        assert not alive, "plugin processes left behind: %s" % alive

    def plugin_pids(self):
        """Pids of live processes whose parent is the aggregator."""
        if self.proc is None:
            return []
        return children_of(self.proc.pid)

    def rss_kb(self):
        """The aggregator's resident set size (VmRSS), in KiB."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def metric(self, name):
        """The value of an unlabelled sample in /metrics, or None."""
        _, _, body = self.request("GET", "/metrics")
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-20000:]
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            if self.proc is not None:
                self.stop()
        finally:
            if self._own_dir and exc[0] is None:
                shutil.rmtree(self.data_dir, ignore_errors=True)
            shutil.rmtree(self.home, ignore_errors=True)

    # --- clients ---------------------------------------------------------------------------
    @property
    def kubeconfig(self):
        return os.path.join(self.data_dir, "aggregator.kubeconfig")

    @property
    def host_port(self):
        u = urllib.parse.urlsplit(self.url)
        return u.hostname, u.port

    @property
    def token(self):
        """The generated admin token (DESIGN §6: started without authentication flags, the
        aggregator writes <data-dir>/admin.token and puts it into its kubeconfig); None when the
        test configured authentication itself."""
        try:
            with open(os.path.join(self.data_dir, "admin.token")) as f:
                return f.read().strip() or None
        except FileNotFoundError:
            return None

    def auth_header(self):
        """{"Authorization": "Bearer <admin token>"}, or {} without one."""
        token = self.token
        return {"Authorization": "Bearer " + token} if token else {}

    def connection(self, timeout=30):
        """An HTTPConnection whose requests carry the admin token (unless the caller sets its own
        Authorization header, or passes authorization=False to request())."""
        host, port = self.host_port
        return _AuthedConnection(host, port, timeout=timeout, auth=self.auth_header())

    def request(self, method, path, body=None, headers=None, timeout=30, authorization=True):
        """One request on a fresh connection: (status, headers dict lower-cased, body bytes). It
        carries the admin token unless `authorization` is False or headers name their own."""
        conn = self.connection(timeout)
        if not authorization:
            conn.auth = {}
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
                headers = dict({"Content-Type": "application/json"}, **(headers or {}))
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None, timeout=30):
        status, hdrs, data = self.request(method, path, body, headers, timeout)
        return status, (json.loads(data) if data else None)

    def kubectl(self, *args, check=True, input=None, timeout=60):
        env = dict(os.environ, HOME=self.home, KUBECONFIG=self.kubeconfig)
        r = subprocess.run(["kubectl", *args], capture_output=True, text=True, input=input,
                           env=env, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("kubectl %s failed (%d):\nstdout: %s\nstderr: %s"
                                 % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def curl(self, *args, check=True, timeout=60):
        """curl with the admin token."""
        auth = ["-H", "Authorization: Bearer " + self.token] if self.token else []
        r = subprocess.run(["curl", "-sS", *auth, *args], capture_output=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("curl %s failed: %s" % (args, r.stderr))
        return r


class _AuthedConnection(http.client.HTTPConnection):
    def __init__(self, host, port, timeout, auth):
        super().__init__(host, port, timeout=timeout)
        self.auth = auth

    def request(self, method, url, body=None, headers=None, **kwargs):
        headers = dict(headers or {})
        if not any(k.lower() == "authorization" for k in headers):
            headers.update(self.auth)
        return super().request(method, url, body=body, headers=headers, **kwargs)


def children_of(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    return out


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False
