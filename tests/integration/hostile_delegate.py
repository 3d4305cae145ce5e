"""A delegate API server that misbehaves on purpose, for tests of what the aggregator does with bad
upstream replies. It speaks raw bytes over TCP (no HTTP library to keep it honest): each request
path picks one behaviour from BEHAVIOURS, and every request seen is recorded.

    with HostileDelegate() as d:
        agg = Aggregator(delegate_url=d.url)
"""

import socket
import ssl
import threading
import time


def response(status, body=b"", headers=(), reason=b"OK"):
    head = b"HTTP/1.1 %d %s\r\n" % (status, reason)
    for name, value in headers:
        head += b"%s: %s\r\n" % (name, value)
    head += b"Content-Length: %d\r\n\r\n" % len(body)
    return head + body


def json_response(body, content_type=b"application/json"):
    return response(200, body, [(b"Content-Type", content_type)])


# path -> bytes to send back (then the connection stays open for the next request), or a callable
# (delegate, conn) -> None that does the whole exchange itself.
BEHAVIOURS = {
    "/openapi/v3": json_response(b'{"hello": 1}'),
    "/openapi/v3-typed": json_response(b'{"paths": 5}'),
    "/big-header": response(200, b"big", [(b"X-Big", b"a" * 17000)]),
    "/huge-header": response(200, b"huge", [(b"X-Huge", b"a" * 100000)]),
    "/continue-flood": b"HTTP/1.1 100 Continue\r\n\r\n" * 200 + response(200, b"late"),
    "/status-000": b"HTTP/1.1 000 Zero\r\nContent-Length: 0\r\n\r\n",
    "/unsolicited-101": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nraw",
    "/garbage": b"HTTP/1.1 100 Continue\r\n\r\n\x00\x01garbage\r\n\r\n",
    "/bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "/ok": response(200, b"fine"),
    "/close": response(200, b"closed", [(b"Connection", b"close")]),
}


class HostileDelegate:
    """`tls`: (cert, key, client_ca) to serve HTTPS and require a client certificate from
    client_ca, as a front-proxy delegate does; the CN each path was asked with is in `peer_cn`."""

    def __init__(self, tls=None):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.seen = []  # (path, method) of every request, in arrival order
        self.headers = {}  # path -> the last request's headers (names lower-cased)
        self.peer_cn = {}  # path -> the client certificate's CN of the last request (TLS only)
        self.tls = None
        if tls:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(tls[0], tls[1])
            self.tls.load_verify_locations(tls[2])
            self.tls.verify_mode = ssl.CERT_REQUIRED
        self.lock = threading.Lock()
        self.injected = threading.Event()  # set once /desync-idle's extra response is written
        self.apis_doc = None  # (content_type, body) served for /apis when set
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self):
        scheme = "https" if self.tls else "http"
        return "%s://127.0.0.1:%d" % (scheme, self.listener.getsockname()[1])

    def requests_for(self, path):
        with self.lock:
            return [s for s in self.seen if s[0] == path]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.listener.close()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_request(conn, buffered):
        while b"\r\n\r\n" not in buffered:
            data = conn.recv(65536)
            if not data:
                return None, b""
            buffered += data
        head, _, rest = buffered.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        method, target = lines[0].split(b" ")[:2]
        length = 0
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.setdefault(name.strip().lower().decode(), []).append(value.strip().decode())
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            data = conn.recv(65536)
            if not data:
                break
            rest += data
        return (method.decode(), target.decode().split("?")[0], headers), rest[length:]

    def _serve(self, conn):
        buffered = b""
        cn = None
        try:
            if self.tls:
                conn = self.tls.wrap_socket(conn, server_side=True)
                subject = dict(item[0] for item in conn.getpeercert()["subject"])
                cn = subject.get("commonName")
            while True:
                request, buffered = self._read_request(conn, buffered)
                if request is None:
                    return
                method, path, headers = request
                with self.lock:
                    self.seen.append((path, method))
                    self.headers[path] = headers
                    self.peer_cn[path] = cn
                if not self._answer(conn, method, path):
                    return
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def _answer(self, conn, method, path):
        """Writes the behaviour for `path`; False when the connection must end."""
        if path == "/apis" and self.apis_doc:
            content_type, body = self.apis_doc
            conn.sendall(json_response(body, content_type))
            return True
        if path in BEHAVIOURS:
            conn.sendall(BEHAVIOURS[path])
            return path not in ("/unsolicited-101", "/garbage", "/bad-chunk", "/close")
        if path == "/desync-now":
            # A complete response followed at once by one nobody asked for.
            conn.sendall(response(200, b"first") + response(200, b"INJECTED"))
            return True
        if path == "/desync-idle":
            # The extra response arrives while the connection sits idle in the pool.
            conn.sendall(response(200, b"first"))
            time.sleep(0.05)
            conn.sendall(response(200, b"INJECTED"))
            self.injected.set()
            return True
        if path == "/short-body":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-this")
            return False
        if path == "/close-mid-chunk":
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
            return False
        if path == "/close-idle-on-post":
            # Answers; then, when the next request arrives on this connection, closes without a
            # reply: the client cannot know whether the request was acted on.
            conn.sendall(response(200, b"primed"))
            request, _ = self._read_request(conn, b"")
            if request is not None:
                with self.lock:
                    self.seen.append((request[1], request[0]))
            return False
        if path == "/upgrade":
            # Switches protocols and echoes one message back.
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
            data = conn.recv(65536)
            if data:
                conn.sendall(data)
            return False
        if path == "/silent":
            time.sleep(30)
            return False
        conn.sendall(response(200, path.encode()))
        return True
