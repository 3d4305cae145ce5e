"""Debian's python3-kubernetes client against the aggregator's own API: CustomObjectsApi
create/get/list/patch/replace, 409 on a stale replace, watch from a resourceVersion, and 410 for a
compacted one (the binary runs with --store-history-revisions 5)."""

import unittest

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from harness import Aggregator, wait_for

G, V, P = "aggregation.grafana.app", "v0alpha1", "dataplaneservices"


def body(group, plugin="p"):
    return {"apiVersion": G + "/" + V, "kind": "DataPlaneService",
            "metadata": {"name": "v1." + group},
            "spec": {"pluginID": plugin, "pluginType": "datasource", "group": group,
                     "version": "v1", "services": [{"type": "query"}]}}


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.agg = Aggregator(args=["--store-history-revisions", "5", "--store-history-duration", "0",
                                   "--store-compaction-interval", "0"], with_plugins=False)
        cls.agg.start()
        cls.api = client.CustomObjectsApi(config.new_client_from_config(cls.agg.kubeconfig))

    @classmethod
    def tearDownClass(cls):
        cls.agg.stop()

    def test_crud_and_conflict(self):
        created = self.api.create_cluster_custom_object(G, V, P, body("crud.example.com"))
        self.assertEqual(created["metadata"]["generation"], 1)
        got = self.api.get_cluster_custom_object(G, V, P, "v1.crud.example.com")
        self.assertEqual(got["metadata"]["uid"], created["metadata"]["uid"])
        # The availability controller writes the object's status too (its plugin is missing):
        # once that write is in, this test is the object's only writer, and the replace below
        # with the patch's resourceVersion cannot meet a 409 from the controller's write.
        def condition_written():
            obj = self.api.get_cluster_custom_object(G, V, P, "v1.crud.example.com")
            return any(c.get("type") == "Available"
                       for c in (obj.get("status") or {}).get("conditions") or [])
        self.assertTrue(wait_for(condition_written, timeout=30))
        listed = self.api.list_cluster_custom_object(G, V, P)
        self.assertIn("v1.crud.example.com", [i["metadata"]["name"] for i in listed["items"]])
        patched = self.api.patch_cluster_custom_object(G, V, P, "v1.crud.example.com",
                                                       {"metadata": {"labels": {"a": "b"}}})
        self.assertEqual(patched["metadata"]["labels"], {"a": "b"})
        replaced_body = dict(patched)
        replaced_body["spec"] = dict(patched["spec"], pluginID="q")
        replaced = self.api.replace_cluster_custom_object(G, V, P, "v1.crud.example.com", replaced_body)
        self.assertEqual(replaced["spec"]["pluginID"], "q")
        self.assertEqual(replaced["metadata"]["generation"], 2)
        with self.assertRaises(ApiException) as ctx:
            self.api.replace_cluster_custom_object(G, V, P, "v1.crud.example.com", replaced_body | {
                "metadata": dict(replaced_body["metadata"], resourceVersion=patched["metadata"]["resourceVersion"])})
        self.assertEqual(ctx.exception.status, 409)
        with self.assertRaises(ApiException) as ctx:
            self.api.get_cluster_custom_object(G, V, P, "v1.missing.example.com")
        self.assertEqual(ctx.exception.status, 404)
        self.api.delete_cluster_custom_object(G, V, P, "v1.crud.example.com")

    def test_watch_from_resource_version(self):
        first = self.api.create_cluster_custom_object(G, V, P, body("w1.example.com"))
        rv = first["metadata"]["resourceVersion"]
        self.api.create_cluster_custom_object(G, V, P, body("w2.example.com"))
        self.api.patch_cluster_custom_object(G, V, P, "v1.w2.example.com", {"spec": {"pluginID": "z"}})
        seen = []
        w = watch.Watch()
        for event in w.stream(self.api.list_cluster_custom_object, G, V, P,
                              resource_version=rv, timeout_seconds=3):
            # The availability controller also writes status (MODIFIED) on w1: only w2's own
            # events are this test's.
            if event["object"]["metadata"]["name"] != "v1.w2.example.com":
                continue
            seen.append((event["type"], event["object"]["metadata"]["name"]))
            if len(seen) == 2:
                w.stop()
        self.assertEqual(seen, [("ADDED", "v1.w2.example.com"), ("MODIFIED", "v1.w2.example.com")])
        for n in ("v1.w1.example.com", "v1.w2.example.com"):
            self.api.delete_cluster_custom_object(G, V, P, n)

    def test_watch_from_compacted_version_is_410(self):
        first = self.api.create_cluster_custom_object(G, V, P, body("old.example.com"))
        old_rv = first["metadata"]["resourceVersion"]
        for i in range(12):
            self.api.patch_cluster_custom_object(G, V, P, "v1.old.example.com",
                                                 {"metadata": {"labels": {"i": str(i)}}})
        # Raw events: an ERROR event carrying a 410 Expired Status, then the stream ends.
        status, _, data = self.agg.request(
            "GET", "/apis/%s/%s/%s?watch=true&resourceVersion=%s" % (G, V, P, old_rv))
        self.assertEqual(status, 200)
        lines = [l for l in data.decode().splitlines() if l]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn('"ERROR"', lines[0])
        self.assertIn('"code":410', lines[0])
        w = watch.Watch()
        with self.assertRaises(ApiException) as ctx:
            for _ in w.stream(self.api.list_cluster_custom_object, G, V, P,
                              resource_version=old_rv, timeout_seconds=3):
                pass
        self.assertEqual(ctx.exception.status, 410)
        # What an informer does next: relist, and watch from the list's resourceVersion.
        listed = self.api.list_cluster_custom_object(G, V, P)
        self.assertIn("v1.old.example.com", [i["metadata"]["name"] for i in listed["items"]])
        self.api.patch_cluster_custom_object(G, V, P, "v1.old.example.com",
                                             {"metadata": {"labels": {"i": "after-relist"}}})
        seen = []
        for event in w.stream(self.api.list_cluster_custom_object, G, V, P,
                              resource_version=listed["metadata"]["resourceVersion"],
                              timeout_seconds=5):
            if event["object"]["metadata"]["name"] != "v1.old.example.com":
                continue
            seen.append(event["object"]["metadata"]["labels"]["i"])
            if "after-relist" in seen:
                w.stop()
        self.assertIn("after-relist", seen)
        self.api.delete_cluster_custom_object(G, V, P, "v1.old.example.com")


if __name__ == "__main__":
    unittest.main()
