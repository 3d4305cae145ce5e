"""Watches served by the watch cache, against the real binary over real sockets: a watcher whose
client stops reading is cut off once 16 MiB wait for it, while the others receive every event;
and many watchers started at an old resourceVersion each get exactly the missed events, in
order."""

import json
import select
import socket
import threading
import time
import unittest

from harness import Aggregator, wait_for

DPS = "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices"


def obj(i, padding=0):
    o = {"apiVersion": "aggregation.grafana.app/v0alpha1", "kind": "DataPlaneService",
         "metadata": {"name": "v1.w%03d.example.com" % i},
         "spec": {"pluginID": "p", "pluginType": "datasource", "group": "w%03d.example.com" % i,
                  "version": "v1", "services": [{"type": "query"}]}}
    if padding:
        o["metadata"]["annotations"] = {"padding": "x" * padding}
    return o


class WatchStream:
    """A raw watch: the request on its own socket, the chunked response parsed by hand."""

    def __init__(self, agg, query, rcvbuf=None):
        host, port = agg.host_port
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((host, port))
        auth = "".join("%s: %s\r\n" % kv for kv in agg.auth_header().items())
        self.sock.sendall(("GET %s?%s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (DPS, query, auth)).encode())
        self.buf = b""
        self.ended = False  # terminating chunk or connection closed

    def _fill(self, timeout):
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return False
        data = self.sock.recv(1 << 20)
        if not data:
            self.ended = True
            return False
        self.buf += data
        return True

    def events(self, count=None, timeout=60, done=None):
        """Reads events until `count` arrived (or done(events) holds), the stream ended, or
        `timeout` passed."""
        if done is None:
            done = (lambda evs: False) if count is None else (lambda evs: len(evs) >= count)
        deadline = time.time() + timeout
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(max(0, deadline - time.time())) and (self.ended or time.time() > deadline):
                return []
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200"), head
        out, body = [], b""
        while not done(out) and time.time() < deadline:
            while b"\r\n" in self.buf:
                size_line, rest = self.buf.split(b"\r\n", 1)
                size = int(size_line, 16)
                if size == 0:
                    self.ended = True
                    return out
                if len(rest) < size + 2:
                    break
                body += rest[:size]
                self.buf = rest[size + 2:]
                while b"\n" in body:
                    line, body = body.split(b"\n", 1)
                    out.append(json.loads(line))
            if done(out):
                break
            if not self._fill(max(0, deadline - time.time())) and self.ended:
                return out
        return out

    def close(self):
        self.sock.close()


class WatchCacheTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.agg = Aggregator(with_plugins=False)
        cls.agg.start()

    @classmethod
    def tearDownClass(cls):
        cls.agg.stop()

    def create(self, o):
        status, out = self.agg.json("POST", DPS, o)
        self.assertEqual(status, 201, out)
        return out

    def test_a_stalled_watcher_is_cut_off_and_the_others_keep_receiving(self):
        _, listed = self.agg.json("GET", DPS)
        rv = listed["metadata"]["resourceVersion"]
        query = "watch=1&resourceVersion=%s" % rv
        readers = [WatchStream(self.agg, query) for _ in range(5)]
        stalled = WatchStream(self.agg, query, rcvbuf=4096)
        received = [[] for _ in readers]

        def added(events):
            return [e["object"]["metadata"]["name"] for e in events if e["type"] == "ADDED"]

        def read(i):
            # Each object is followed by its status write (MODIFIED, PluginNotFound).
            received[i] = readers[i].events(timeout=120, done=lambda evs: len(added(evs)) >= 14)

        threads = [threading.Thread(target=read, args=(i,)) for i in range(len(readers))]
        for t in threads:
            t.start()
        # 14 objects of 1.2 MB, each also written once more with its status: 34 MB of events for
        # every watcher, more than the 16 MiB one may have waiting.
        names = [self.create(obj(100 + i, padding=1200 * 1000))["metadata"]["name"] for i in range(14)]
        for t in threads:
            t.join(150)
        for got in received:
            self.assertEqual(added(got), names)
        # The stalled one, read now: what was queued before the cut, then the end of the stream.
        late = stalled.events(timeout=60)
        self.assertTrue(stalled.ended, "the stalled watcher was not cut off")
        self.assertLess(len(added(late)), 14)
        self.assertEqual(added(late), names[:len(added(late))])
        for r in readers:
            r.close()
        stalled.close()
        for name in names:
            self.agg.request("DELETE", DPS + "/" + name)

    def test_watchers_from_an_old_revision_get_exactly_the_missed_events(self):
        first = self.create(obj(1))
        rv = first["metadata"]["resourceVersion"]
        # A watcher that saw the changes live is the reference (status writes of the
        # availability controller interleave with them, so the sequence is not fixed).
        live = WatchStream(self.agg, "watch=1&resourceVersion=%s" % rv)
        self.create(obj(2))
        status, _ = self.agg.json("PATCH", DPS + "/v1.w001.example.com",
                                  {"metadata": {"labels": {"team": "a"}}},
                                  headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(status, 200)
        self.agg.request("DELETE", DPS + "/v1.w002.example.com")

        def through_delete(events):
            for i, e in enumerate(events):
                if e["type"] == "DELETED" and e["object"]["metadata"]["name"] == "v1.w002.example.com":
                    return events[:i + 1]
            return None

        def summary(events):
            return [(e["type"], e["object"]["metadata"]["name"],
                     e["object"]["metadata"]["resourceVersion"]) for e in events]

        reference = through_delete(live.events(timeout=30, done=through_delete))
        self.assertIsNotNone(reference)
        w002 = [t for t, n, _ in summary(reference) if n == "v1.w002.example.com"]
        self.assertEqual((w002[0], w002[-1]), ("ADDED", "DELETED"))
        self.assertIn(("MODIFIED", "v1.w001.example.com"), [(t, n) for t, n, _ in summary(reference)])
        revisions = [int(r) for _, _, r in summary(reference)]
        self.assertEqual(revisions, sorted(set(revisions)))
        watchers = [WatchStream(self.agg, "watch=1&resourceVersion=%s" % rv) for _ in range(50)]
        selected = WatchStream(self.agg, "watch=1&labelSelector=team%%3Da&resourceVersion=%s" % rv)
        # 50 + the selector's + the live one, all on the cache's single store watch.
        self.assertTrue(wait_for(
            lambda: self.agg.metric("dataplane_aggregator_watch_cache_watchers") >= 52, timeout=30))
        for w in watchers:
            got = through_delete(w.events(timeout=30, done=through_delete))
            self.assertEqual(summary(got), summary(reference))
            w.close()
        # The labelled one: w001 entered the selector when the label was added.
        got = selected.events(count=1, timeout=30)
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in got][:1],
                         [("ADDED", "v1.w001.example.com")])
        self.assertEqual(got[0]["object"]["metadata"]["labels"], {"team": "a"})
        selected.close()
        live.close()
        self.agg.request("DELETE", DPS + "/v1.w001.example.com")


if __name__ == "__main__":
    unittest.main()
