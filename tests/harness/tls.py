"""TLS for tests: certificates made with openssl, and a PostgreSQL server with ssl=on.

    certs = make_certs(self)              # CA, server cert for localhost, wrong CA, client cert
    srv = start_tls_server(self, certs)   # its own cluster, its own port, stopped by cleanup
    srv.url(db, user=srv.ssl_user, password=srv.ssl_password,
            params={"sslmode": "verify-full", "sslrootcert": certs.ca_cert})

The server's pg_hba (written in full): the socket trusts everyone (administration);
`ssl_user` may only log in over TLS (hostssl, scram; plain TCP is rejected);
`cert_user` logs in over TLS with a client certificate whose CN is its name (cert, no
password); the superuser logs in over TCP with scram, with or without TLS.
"""

import os
import shutil
import subprocess

from harness.files import temp_dir
from harness.server import TestCluster
from harness.sql import lit, quote_ident

SSL_USER = "ssl_only"
SSL_PASSWORD = "Ssl-0nly-Pw!"
CERT_USER = "cert_user"


class Certs:
    """Paths of the PEM files: ca_cert/ca_key, server_cert/server_key (CN and SAN
    localhost, SAN 127.0.0.1, signed by the CA), wrong_ca_cert (a CA that signed nothing
    here), client_cert/client_key (CN = CERT_USER, signed by the CA); dir holds them."""

    def __init__(self, directory):
        self.dir = str(directory)
        p = lambda name: os.path.join(self.dir, name)
        self.ca_cert, self.ca_key = p("ca.crt"), p("ca.key")
        self.server_cert, self.server_key = p("server.crt"), p("server.key")
        self.wrong_ca_cert, self.wrong_ca_key = p("wrong-ca.crt"), p("wrong-ca.key")
        self.client_cert, self.client_key = p("client.crt"), p("client.key")


def _openssl(*args, cwd):
    p = subprocess.run(["openssl"] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, cwd=cwd, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed (exit %d):\n%s" % (" ".join(args), p.returncode,
                                                                  p.stdout))


# EC P-256 keys: as good as RSA for the tests, and generated in milliseconds.
_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _ca(cwd, cert, key, cn):
    _openssl("req", "-x509", *_KEY, "-keyout", key, "-out", cert, "-days", "30", "-subj",
             "/CN=" + cn, "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=cwd)


def _leaf(cwd, certs, cert, key, cn, ext):
    csr = cert + ".csr"
    extfile = cert + ".ext"
    with open(extfile, "w") as f:
        f.write(ext)
    _openssl("req", "-new", *_KEY, "-keyout", key, "-out", csr, "-subj", "/CN=" + cn, cwd=cwd)
    _openssl("x509", "-req", "-in", csr, "-CA", certs.ca_cert, "-CAkey", certs.ca_key,
             "-CAcreateserial", "-out", cert, "-days", "30", "-extfile", extfile, cwd=cwd)
    os.unlink(csr)
    os.unlink(extfile)
    os.chmod(key, 0o600)


def make_certs(test):
    """Generates the files of Certs in a temporary directory that test.addCleanup removes
    (test=None: the caller removes certs.dir)."""
    d = temp_dir(test, prefix="pgboot-tls-")
    os.chmod(d.path, 0o755)  # the server (user postgres) reads its files from here
    certs = Certs(d.path)
    _ca(d.path, certs.ca_cert, certs.ca_key, "pgboot test CA")
    _ca(d.path, certs.wrong_ca_cert, certs.wrong_ca_key, "pgboot wrong CA")
    _leaf(d.path, certs, certs.server_cert, certs.server_key, "localhost",
          "subjectAltName = DNS:localhost, IP:127.0.0.1\nextendedKeyUsage = serverAuth\n")
    _leaf(d.path, certs, certs.client_cert, certs.client_key, CERT_USER,
          "extendedKeyUsage = clientAuth\n")
    return certs


class TlsServer(TestCluster):
    """A TestCluster (see server.new_cluster) with ssl=on and the pg_hba above."""

    ssl_user = SSL_USER
    ssl_password = SSL_PASSWORD
    cert_user = CERT_USER

    def __init__(self, certs):
        super().__init__(prefix="pgboot-pgtls-")
        self.certs = certs

    def init(self):
        super().init()
        key = os.path.join(self.data_dir, "server.key")  # must be private to the server's user
        shutil.copy(self.certs.server_key, key)
        os.chmod(key, 0o600)
        if self.run_as:
            shutil.chown(key, user=self.run_as, group=self.run_as)
        with open(os.path.join(self.data_dir, "postgresql.conf"), "a") as f:
            f.write("ssl = on\n"
                    "ssl_cert_file = '%s'\n"
                    "ssl_key_file = '%s'\n"
                    "ssl_ca_file = '%s'\n" % (self.certs.server_cert, key, self.certs.ca_cert))
        with open(os.path.join(self.data_dir, "pg_hba.conf"), "w") as f:
            f.write("# pgboot test harness, TLS server\n"
                    "local     all all trust\n"
                    "hostssl   all %s 127.0.0.1/32 cert\n"
                    "hostssl   all %s 127.0.0.1/32 scram-sha-256\n"
                    "host      all %s 127.0.0.1/32 reject\n"
                    "host      all %s 127.0.0.1/32 reject\n"
                    "host      all all 127.0.0.1/32 scram-sha-256\n"
                    % (CERT_USER, SSL_USER, CERT_USER, SSL_USER))
        return self

    def start(self, wait=True, timeout=60):
        super().start(wait=wait, timeout=timeout)
        if wait:
            self.create_roles()
        return self

    def create_roles(self):
        """The two TLS users (idempotent; call it yourself after start(wait=False))."""
        self.admin_sql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %s) "
                       "THEN CREATE ROLE %s LOGIN PASSWORD %s; CREATE ROLE %s LOGIN; END IF; "
                       "END $$" % (lit(SSL_USER), quote_ident(SSL_USER), lit(SSL_PASSWORD),
                                   quote_ident(CERT_USER)))

    def url(self, db="postgres", user=None, password=None, host=None, port=None, params=None):
        """postgresql:// URI of this server; params ({"sslmode": ...}) become the query."""
        u = super().url(db, user=user, password=password, host=host, port=port)
        if password == "":
            u = u.replace(":@", "@", 1)
        if params:
            import urllib.parse
            u += "?" + urllib.parse.urlencode(params)
        return u

    def ssl_url(self, db="postgres", sslmode="verify-full", **params):
        """ssl_user's URI to localhost, verifying the server against the CA."""
        params = dict({"sslmode": sslmode, "sslrootcert": self.certs.ca_cert}, **params)
        return self.url(db, user=SSL_USER, password=SSL_PASSWORD, host="localhost", params=params)

    def cert_url(self, db="postgres", sslmode="verify-full", **params):
        """cert_user's URI: client certificate and key, no password."""
        params = dict({"sslmode": sslmode, "sslrootcert": self.certs.ca_cert,
                       "sslcert": self.certs.client_cert, "sslkey": self.certs.client_key},
                      **params)
        return self.url(db, user=CERT_USER, password="", host="localhost", params=params)


def start_tls_server(test, certs=None, wait=True):
    """initdb + start a TlsServer on a free port (certs from make_certs(test) unless given);
    test.addCleanup stops it and removes its directory (test=None: call destroy())."""
    certs = certs or make_certs(test)
    srv = TlsServer(certs)
    if test is not None:
        test.addCleanup(srv.destroy)
    try:
        srv.init()
        srv.start(wait=wait)
    except Exception:
        if test is None:
            srv.destroy()
        raise
    return srv
