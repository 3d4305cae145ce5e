"""Several aggregator replicas on one real etcd cluster (DESIGN §7): Debian's etcd 3.4, three
members on loopback ports, three replicas with --storage-backend=etcd3. An apply through one
replica is routable on the others, a watch through one sees writes through another in order, a
stale update is 409 whichever replica it goes through, one replica alone writes the Available
condition and another takes over when it is killed; losing an etcd member loses no acknowledged
write, losing quorum makes writes 503 while reads and queries keep working, and compaction gives
410 to an old watch, after which the Python client relists."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from etcd_cluster import EtcdCluster
from harness import EXAMPLE_DATASOURCES, PLUGINS_DIR, Aggregator, example, wait_for
from pki import Pki

G, V, P = "aggregation.grafana.app", "v0alpha1", "dataplaneservices"
DPS = "/apis/%s/%s/%s" % (G, V, P)
QUERY = "/apis/testdata.datasource.grafana.app/v0alpha1/namespaces/default/datasources/testdata/query"


def body(group, plugin="p"):
    return {"apiVersion": G + "/" + V, "kind": "DataPlaneService",
            "metadata": {"name": "v1." + group},
            "spec": {"pluginID": plugin, "pluginType": "datasource", "group": group,
                     "version": "v1", "services": [{"type": "query"}]}}


def replicas(etcd, count, extra=(), **kwargs):
    args = ["--storage-backend", "etcd3", "--etcd-servers", etcd.servers] + list(extra)
    out = []
    for i in range(count):
        out.append(Aggregator(args=args + ["--replica-id", "replica-%d" % i], **kwargs).start())
    return out


def names(agg):
    status, listed = agg.json("GET", DPS)
    assert status == 200, listed
    return {i["metadata"]["name"] for i in listed["items"]}


def leads(agg):
    """Whether dataplane_aggregator_leader{replica=...} is 1 on this replica."""
    metrics = agg.request("GET", "/metrics")[2].decode()
    return re.search(r'^dataplane_aggregator_leader\{replica="[^"]*"\} 1$', metrics, re.M) is not None


def leader_of(aggs):
    """Index of the one live replica that leads, or None (none, or more than one)."""
    found = [i for i, a in enumerate(aggs) if a.proc and a.proc.poll() is None and leads(a)]
    return found[0] if len(found) == 1 else None


class ReplicasTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.etcd = EtcdCluster(3).start()
        cls.aggs = replicas(cls.etcd, 3, datasources=EXAMPLE_DATASOURCES)

    @classmethod
    def tearDownClass(cls):
        for agg in cls.aggs:
            if agg.proc and agg.proc.poll() is None:
                agg.stop()
        cls.etcd.stop()

    def test_apply_through_one_replica_is_routable_on_all(self):
        self.aggs[0].kubectl("apply", "-f", example("datasource.yml"))
        with open(example("query.json")) as f:
            query = f.read()
        for agg in self.aggs:
            self.assertTrue(wait_for(lambda: agg.request(
                "POST", QUERY, body=query, headers={"Content-Type": "application/json"})[0] == 200, 30),
                agg.log()[-2000:])
        # kubectl through another replica sees it, with the condition one replica wrote.
        out = self.aggs[2].kubectl("get", "dataplaneservices", "-o", "json").stdout
        items = {i["metadata"]["name"]: i for i in json.loads(out)["items"]}
        self.assertIn("v0alpha1.testdata.datasource.grafana.app", items)
        self.assertTrue(wait_for(lambda: any(
            c["type"] == "Available" and c["status"] == "True"
            for c in self.aggs[1].json("GET", DPS + "/v0alpha1.testdata.datasource.grafana.app")[1]
            .get("status", {}).get("conditions", [])), 30))

    def test_watch_through_one_replica_sees_writes_through_another_in_order(self):
        status, listed = self.aggs[1].json("GET", DPS)
        rv = listed["metadata"]["resourceVersion"]
        seen = []
        done = threading.Event()

        def watcher():
            conn = self.aggs[1].connection(timeout=60)
            conn.request("GET", DPS + "?watch=true&resourceVersion=%s&timeoutSeconds=30" % rv)
            resp = conn.getresponse()
            for line in resp:
                if not line.strip():
                    continue
                event = json.loads(line)
                name = event["object"]["metadata"]["name"]
                if name.startswith("v1.order"):
                    seen.append((event["type"], name, int(event["object"]["metadata"]["resourceVersion"])))
                if len([s for s in seen if s[0] == "DELETED"]) == 1:
                    break
            conn.close()
            done.set()

        t = threading.Thread(target=watcher, daemon=True)
        t.start()
        for i in range(5):
            self.assertEqual(self.aggs[2].json("POST", DPS, body("order%d.example.com" % i))[0], 201)
        self.assertEqual(self.aggs[0].request("DELETE", DPS + "/v1.order0.example.com")[0], 200)
        self.assertTrue(done.wait(60), seen)
        added = [n for (t_, n, _) in seen if t_ == "ADDED"]
        self.assertEqual(added, ["v1.order%d.example.com" % i for i in range(5)])
        self.assertEqual(seen[-1][:2], ("DELETED", "v1.order0.example.com"))
        rvs = [r for (_, _, r) in seen]
        self.assertEqual(rvs, sorted(rvs))
        for i in range(1, 5):
            self.aggs[0].request("DELETE", DPS + "/v1.order%d.example.com" % i)

    def test_kubectl_get_w_through_one_replica_sees_writes_through_another(self):
        env = dict(os.environ, HOME=self.aggs[0].home, KUBECONFIG=self.aggs[0].kubeconfig)
        # The default (Table) output with the event type first: "ADDED  v1.kw.example.com  ...".
        watcher = subprocess.Popen(["kubectl", "get", "dataplaneservices", "-w", "--output-watch-events"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(iter(watcher.stdout.readline, "")), daemon=True)
        reader.start()
        try:
            # The watch is open once the replica counts it.
            self.assertTrue(wait_for(lambda: (self.aggs[0].metric("dataplane_aggregator_watch_cache_watchers") or 0) >= 1, 30))
            self.assertEqual(self.aggs[1].json("POST", DPS, body("kw.example.com"))[0], 201)
            self.assertEqual(self.aggs[2].request("DELETE", DPS + "/v1.kw.example.com")[0], 200)
            events = lambda: [l.split()[:2] for l in list(lines) if "v1.kw.example.com" in l]
            self.assertTrue(wait_for(lambda: ["DELETED", "v1.kw.example.com"] in events(), 30), lines)
            self.assertEqual(events()[0], ["ADDED", "v1.kw.example.com"])
        finally:
            watcher.terminate()
            watcher.communicate(timeout=10)

    def test_stale_update_through_another_replica_is_409(self):
        status, created = self.aggs[0].json("POST", DPS, body("stale.example.com"))
        self.assertEqual(status, 201)
        status, patched = self.aggs[0].json(
            "PATCH", DPS + "/v1.stale.example.com", {"metadata": {"labels": {"a": "b"}}},
            headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(status, 200, patched)
        stale = dict(created)
        stale["spec"] = dict(created["spec"], pluginID="other")
        status, answer = self.aggs[2].json("PUT", DPS + "/v1.stale.example.com", stale)
        self.assertEqual(status, 409, answer)
        self.assertEqual(answer["reason"], "Conflict")
        self.aggs[1].request("DELETE", DPS + "/v1.stale.example.com")

    def test_one_replica_leads_and_all_report_their_own_view(self):
        self.assertEqual(self.aggs[0].json("POST", DPS, body("view.example.com", plugin="absent"))[0], 201)
        self.assertTrue(wait_for(lambda: leader_of(self.aggs) is not None, 30))
        leader = "replica-%d" % leader_of(self.aggs)
        for i, agg in enumerate(self.aggs):
            metrics = agg.request("GET", "/metrics")[2].decode()
            self.assertIn('replica="replica-%d"' % i, metrics)
            line = "[+]dataplaneservice-available/v1.view.example.com ok: False (PluginNotFound) as seen by replica-%d" % i
            self.assertTrue(wait_for(lambda: line in agg.request("GET", "/readyz?verbose")[2].decode(), 30))
            readyz = agg.request("GET", "/readyz?verbose")[2].decode()
            self.assertIn(", leader" if leader == "replica-%d" % i else ", follower of " + leader, readyz)
        self.aggs[1].request("DELETE", DPS + "/v1.view.example.com")

    def test_many_watchers_cost_one_etcd_watch(self):
        conns = []
        try:
            for _ in range(50):
                conn = self.aggs[0].connection(timeout=30)
                conn.request("GET", DPS + "?watch=true&timeoutSeconds=30")
                self.assertEqual(conn.getresponse().status, 200)
                conns.append(conn)
            self.assertGreaterEqual(self.aggs[0].metric("dataplane_aggregator_watch_cache_watchers"), 50)
            for agg in self.aggs:
                self.assertEqual(agg.metric("dataplane_aggregator_etcd_watches"), 1)
        finally:
            for conn in conns:
                conn.close()


class FailuresTest(unittest.TestCase):
    """Each test breaks the cluster; the replicas must recover without a restart."""

    def setUp(self):
        self.etcd = EtcdCluster(3).start()
        self.aggs = replicas(self.etcd, 2, with_plugins=False)

    def tearDown(self):
        for agg in self.aggs:
            if agg.proc and agg.proc.poll() is None:
                agg.stop()
        self.etcd.stop()

    def test_member_killed_during_creates_loses_no_acknowledged_write(self):
        acked, failed = [], []

        def creator():
            for i in range(500):
                status, answer = self.aggs[0].json("POST", DPS, body("k%03d.example.com" % i))
                if status == 201:
                    acked.append(answer["metadata"]["name"])
                else:
                    # Only a Status saying storage is unavailable, never a crash or a 500.
                    failed.append((status, answer))

        t = threading.Thread(target=creator)
        t.start()
        self.assertTrue(wait_for(lambda: len(acked) >= 100, 60))
        self.etcd.kill(0)
        t.join(300)
        self.assertFalse(t.is_alive())
        for status, answer in failed:
            self.assertIn(status, (409, 503, 504), answer)
        self.assertGreater(len(acked), 400)
        for agg in self.aggs:
            self.assertTrue(wait_for(lambda: set(acked) <= names(agg), 30),
                            set(acked) - names(agg))

    def test_quorum_lost_writes_503_reads_serve_then_recover(self):
        self.assertEqual(self.aggs[0].json("POST", DPS, body("before.example.com"))[0], 201)
        # A replica with the testdata plugin: its data plane must keep answering without etcd.
        self.aggs.append(Aggregator(args=["--storage-backend", "etcd3", "--etcd-servers", self.etcd.servers],
                                    datasources=EXAMPLE_DATASOURCES).start())
        self.aggs[2].kubectl("apply", "-f", example("datasource.yml"))
        with open(example("query.json")) as f:
            query = f.read()
        run_query = lambda: self.aggs[2].request("POST", QUERY, body=query,
                                                 headers={"Content-Type": "application/json"})[0]
        self.assertTrue(wait_for(lambda: run_query() == 200, 30))
        self.etcd.signal(1, signal.SIGSTOP)
        self.etcd.signal(2, signal.SIGSTOP)
        try:
            started = time.time()
            status, answer = self.aggs[0].json("POST", DPS, body("during.example.com"), timeout=70)
            self.assertEqual(status, 503, answer)
            self.assertIn("storage unavailable", answer["message"])
            self.assertLess(time.time() - started, 60)
            # Reads keep serving from the replicas' caches, and the data plane keeps routing.
            for agg in self.aggs:
                self.assertIn("v1.before.example.com", names(agg))
            self.assertEqual(run_query(), 200)
        finally:
            self.etcd.signal(1, signal.SIGCONT)
            self.etcd.signal(2, signal.SIGCONT)
        self.etcd.wait_healthy()
        self.assertTrue(wait_for(lambda: self.aggs[1].json("POST", DPS, body("after.example.com"))[0] in (201, 409), 60))
        for agg in self.aggs:
            self.assertTrue(wait_for(lambda: "v1.after.example.com" in names(agg), 30))

    def test_killed_leader_is_replaced_within_the_lease(self):
        self.assertTrue(wait_for(lambda: leader_of(self.aggs) is not None, 30))
        leader = leader_of(self.aggs)
        other = 1 - leader
        killed = time.time()
        self.aggs[leader].kill9()
        # The lease (TTL 15 s, renewed every 5 s) expires at most 15 s after the kill, and the other
        # replica, retrying every second, takes the key within a second of that.
        self.assertTrue(wait_for(lambda: leads(self.aggs[other]), 25),
                        self.aggs[other].log()[-2000:])
        self.assertLess(time.time() - killed, 17.5)
        # ... and writes conditions: a new object gets its Available condition.
        self.assertEqual(self.aggs[other].json("POST", DPS, body("late.example.com", plugin="absent"))[0], 201)
        self.assertTrue(wait_for(lambda: self.aggs[other].json("GET", DPS + "/v1.late.example.com")[1]
                                 .get("status", {}).get("conditions"), 30))


    def test_etcd_restarted_empty_is_noticed_and_relisted(self):
        for i in range(3):
            self.assertEqual(self.aggs[0].json("POST", DPS, body("lost%d.example.com" % i))[0], 201)
        status, listed = self.aggs[1].json("GET", DPS)
        old_rv = int(listed["metadata"]["resourceVersion"])
        self.etcd.restart_empty()
        # The replicas reconnect, notice the revision went backwards, relist (the objects are gone)
        # and keep resourceVersions increasing.
        self.assertTrue(wait_for(lambda: self.aggs[0].json("POST", DPS, body("new.example.com"))[0] in (201, 409), 60),
                        self.aggs[0].log()[-3000:])
        for agg in self.aggs:
            self.assertTrue(wait_for(lambda: names(agg) == {"v1.new.example.com"}, 30), names(agg))
            self.assertIn("etcd revision went backwards", agg.log())
            status, listed = agg.json("GET", DPS)
            self.assertGreater(int(listed["metadata"]["resourceVersion"]), old_rv)
            self.assertGreater(int(listed["items"][0]["metadata"]["resourceVersion"]), old_rv)


class NoFlappingTest(unittest.TestCase):
    def test_replicas_that_disagree_do_not_fight_over_the_condition(self):
        """Replica 0 runs the testdata plugin, replica 1's copy of it cannot start: they see the
        DataPlaneService differently, and only the leader's view is written, once."""
        broken_plugins = tempfile.mkdtemp(prefix="dpa-broken-plugins-")
        plugin = os.path.join(broken_plugins, "grafana-testdata-datasource")
        os.makedirs(plugin)
        shutil.copy(os.path.join(PLUGINS_DIR, "grafana-testdata-datasource", "plugin.json"), plugin)
        with open(os.path.join(plugin, "gpx_testdata_linux_amd64"), "w") as f:
            f.write("#!/bin/sh\nexit 1\n")
        os.chmod(os.path.join(plugin, "gpx_testdata_linux_amd64"), 0o755)
        testdata_only = os.path.join(broken_plugins, "datasources.yaml")
        with open(testdata_only, "w") as f:
            f.write("apiVersion: 1\ndatasources:\n"
                    "  - {name: TestData, type: grafana-testdata-datasource, uid: testdata}\n")
        with EtcdCluster(1) as etcd:
            args = ["--storage-backend", "etcd3", "--etcd-servers", etcd.servers]
            aggs = [Aggregator(args=args + ["--replica-id", "with-plugin"], datasources=EXAMPLE_DATASOURCES).start(),
                    Aggregator(args=args + ["--replica-id", "broken-plugin"], datasources=testdata_only,
                               plugins_dir=broken_plugins).start()]
            try:
                self.assertTrue(wait_for(lambda: leader_of(aggs) is not None, 30))
                leader = leader_of(aggs)
                aggs[1 - leader].kubectl("apply", "-f", example("datasource.yml"))
                name = "v0alpha1.testdata.datasource.grafana.app"
                views = {0: "True (Passed)", 1: "False (PluginUnavailable)"}
                for i, agg in enumerate(aggs):
                    self.assertTrue(wait_for(lambda: "dataplaneservice-available/%s ok: %s" % (name, views[i])
                                             in agg.request("GET", "/readyz?verbose")[2].decode(), 30))

                def written():
                    conditions = aggs[0].json("GET", DPS + "/" + name)[1].get("status", {}).get("conditions", [])
                    return [c for c in conditions if c["type"] == "Available"]

                expected = "True" if leader == 0 else "False"
                self.assertTrue(wait_for(lambda: written() and written()[0]["status"] == expected, 30), written())
                rv = aggs[0].json("GET", DPS + "/" + name)[1]["metadata"]["resourceVersion"]
                # Both replicas re-evaluate on a datasource reload; neither writes again.
                for agg in aggs:
                    agg.proc.send_signal(signal.SIGHUP)
                for agg in aggs:
                    self.assertTrue(wait_for(lambda: "SIGHUP: datasource provisioning reloaded" in agg.log(), 30))
                time.sleep(2)  # nothing to wait for: a write that should not happen
                self.assertEqual(aggs[1].json("GET", DPS + "/" + name)[1]["metadata"]["resourceVersion"], rv)
                self.assertEqual(written()[0]["status"], expected)
            finally:
                for agg in aggs:
                    agg.stop()
        shutil.rmtree(broken_plugins, ignore_errors=True)


class ProgressTest(unittest.TestCase):
    def test_idle_watches_get_bookmarks_as_etcd_moves_on(self):
        """Changes outside the aggregator's prefix move etcd's revision; its progress notifications
        move the replica's list resourceVersion and its watches' bookmarks along."""
        with EtcdCluster(1) as etcd:
            agg = replicas(etcd, 1, extra=["--watch-bookmark-interval", "1s"], with_plugins=False)[0]
            try:
                status, listed = agg.json("GET", DPS)
                rv = int(listed["metadata"]["resourceVersion"])
                conn = agg.connection(timeout=30)
                conn.request("GET", DPS + "?watch=true&allowWatchBookmarks=true&timeoutSeconds=20&resourceVersion=%d" % rv)
                resp = conn.getresponse()
                for i in range(3):
                    etcd.etcdctl("put", "/somebody-else/key%d" % i, "x")
                moved = json.loads(etcd.etcdctl("get", "/somebody-else/key2", "-w", "json"))["header"]["revision"]
                self.assertGreater(moved, rv)
                bookmark = None
                for line in resp:
                    event = json.loads(line)
                    self.assertEqual(event["type"], "BOOKMARK", event)  # nothing of ours changed
                    if int(event["object"]["metadata"]["resourceVersion"]) >= moved:
                        bookmark = event
                        break
                conn.close()
                self.assertIsNotNone(bookmark)
                self.assertGreaterEqual(int(agg.json("GET", DPS)[1]["metadata"]["resourceVersion"]), moved)
            finally:
                agg.stop()


class TlsTest(unittest.TestCase):
    def test_client_certificate_to_etcd(self):
        pki = Pki()
        with EtcdCluster(1, pki=pki) as etcd:
            tls = ["--etcd-cafile", pki.path("ca.crt"), "--etcd-certfile", etcd.client_cert[0],
                   "--etcd-keyfile", etcd.client_cert[1]]
            agg = replicas(etcd, 1, extra=tls, with_plugins=False)[0]
            try:
                self.assertEqual(agg.json("POST", DPS, body("tls.example.com"))[0], 201)
                self.assertIn("tls.example.com", etcd.etcdctl("get", "--prefix", "/registry/dataplane-aggregator/"))
            finally:
                agg.stop()
            # Without a client certificate etcd refuses the connection: the replica does not start
            # serving (it retries for a minute, saying why, then exits).
            bare = Aggregator(args=["--storage-backend", "etcd3", "--etcd-servers", etcd.servers,
                                    "--etcd-cafile", pki.path("ca.crt")], with_plugins=False)
            try:
                with self.assertRaises(RuntimeError):
                    bare.start(timeout=5)
                self.assertIn("etcd not ready, retrying", bare.log())
            finally:
                bare.proc.kill()
                bare.proc.wait()
        shutil.rmtree(pki.dir, ignore_errors=True)


class CompactionTest(unittest.TestCase):
    def test_compaction_gives_410_and_the_python_client_relists(self):
        with EtcdCluster(1) as etcd:
            aggs = replicas(etcd, 2, extra=["--etcd-compaction-interval", "3s"], with_plugins=False)
            try:
                api = client.CustomObjectsApi(config.new_client_from_config(aggs[1].kubeconfig))
                first = api.create_cluster_custom_object(G, V, P, body("old.example.com"))
                old_rv = first["metadata"]["resourceVersion"]
                for i in range(5):
                    api.patch_cluster_custom_object(G, V, P, "v1.old.example.com",
                                                    {"metadata": {"labels": {"i": str(i)}}})

                def expired(agg):
                    status, _, data = agg.request(
                        "GET", DPS + "?watch=true&timeoutSeconds=1&resourceVersion=%s" % old_rv)
                    return status == 200 and b'"code":410' in data

                # Two compaction rounds later (the first only records a revision), on both.
                for agg in aggs:
                    self.assertTrue(wait_for(lambda: expired(agg), 30), agg.log()[-2000:])
                w = watch.Watch()
                with self.assertRaises(ApiException) as ctx:
                    for _ in w.stream(api.list_cluster_custom_object, G, V, P,
                                      resource_version=old_rv, timeout_seconds=3):
                        pass
                self.assertEqual(ctx.exception.status, 410)
                listed = api.list_cluster_custom_object(G, V, P)
                self.assertIn("v1.old.example.com", [i["metadata"]["name"] for i in listed["items"]])
                # The change comes once the watch is open (history here is only seconds long).
                patcher = threading.Timer(0.5, lambda: aggs[0].json(
                    "PATCH", DPS + "/v1.old.example.com", {"metadata": {"labels": {"i": "after-relist"}}},
                    headers={"Content-Type": "application/merge-patch+json"}))
                patcher.start()
                seen = []
                for event in w.stream(api.list_cluster_custom_object, G, V, P,
                                      resource_version=listed["metadata"]["resourceVersion"],
                                      timeout_seconds=10):
                    seen.append(event["object"]["metadata"].get("labels", {}).get("i"))
                    if "after-relist" in seen:
                        w.stop()
                patcher.join()
                self.assertIn("after-relist", seen)
            finally:
                for agg in aggs:
                    agg.stop()


if __name__ == "__main__":
    unittest.main()
