"""A TokenReview / SubjectAccessReview webhook for the authentication benchmark: the admin token
(argv[2]) is user admin in system:masters, every other token is user "bench"; every request is
allowed. It prints one line per review it answers, so its output shows the cache keeps it idle."""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, ADMIN = int(sys.argv[1]), sys.argv[2]
reviews = {"/authenticate": 0, "/authorize": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reviews[self.path] = reviews.get(self.path, 0) + 1
        print(self.path, reviews[self.path], flush=True)
        if self.path == "/authenticate":
            admin = review["spec"]["token"] == ADMIN
            status = {"authenticated": True,
                      "user": {"username": "admin" if admin else "bench",
                               "groups": ["system:masters"] if admin else ["bench"]}}
        else:
            status = {"allowed": True}
        body = json.dumps({"apiVersion": review["apiVersion"], "kind": review["kind"],
                           "status": status}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
