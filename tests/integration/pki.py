"""Test certificates: a CA and the client and server certificates it signs (openssl, EC P-256)."""

import os
import subprocess
import tempfile


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class Pki:
    """A CA and certificates signed by it, written as PEM files into a temporary directory."""

    def __init__(self, name="ca"):
        self.dir = tempfile.mkdtemp(prefix="dpa-pki-")
        self.name = name
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", name + ".key", "-out", name + ".crt", "-days", "2", "-subj", "/CN=" + name,
                cwd=self.dir)

    def path(self, file):
        return os.path.join(self.dir, file)

    def issue(self, file, subject, server=False):
        """Signs a client (or server, for 127.0.0.1) certificate; returns (crt, key) paths."""
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", file + ".key", "-out", file + ".csr", "-subj", subject, cwd=self.dir)
        ext = os.path.join(self.dir, file + ".ext")
        with open(ext, "w") as f:
            f.write("extendedKeyUsage=%s\n" % ("serverAuth" if server else "clientAuth"))
            if server:
                f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl("x509", "-req", "-in", file + ".csr", "-CA", self.name + ".crt", "-CAkey", self.name + ".key",
                "-CAcreateserial", "-out", file + ".crt", "-days", "2", "-extfile", ext, cwd=self.dir)
        return self.path(file + ".crt"), self.path(file + ".key")
