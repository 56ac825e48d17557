"""Fake servers on 127.0.0.1 for the network's bad days: a port that accepts and never
answers, and one that answers garbage. Each one runs an accept thread until the test's
cleanup closes it.

    port = silent_listener(self).port     # connect() succeeds, then nothing ever comes
    g = garbage_listener(self)            # every connection gets g.payload, then EOF
    url(db, port=g.port)                  # (harness.server.url)
"""

import socket
import threading


class Listener:
    """A listening socket on a free port; each accepted connection is handed to `serve`
    on the accept thread. `.port`, `.accepted` (connections so far), close()."""

    def __init__(self, serve):
        self._serve = serve
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.host = "127.0.0.1"
        self.port = self._sock.getsockname()[1]
        self.accepted = 0
        self._conns = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                self.accepted += 1
                self._conns.append(conn)
            try:
                self._serve(conn)
            except OSError:
                pass

    def close(self):
        """Stops accepting and closes every connection. Idempotent."""
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
        except OSError:
            pass
        self._sock.close()
        for c in conns:
            try:
                c.close()
            except OSError:
                pass
        self._thread.join(5)


def _keep_silent(conn):
    """Holds the connection open and reads nothing: the client's first read blocks."""


def silent_listener(test):
    """A Listener that accepts every connection and never sends a byte (connections
    stay open until close()). test.addCleanup closes it (test=None: call close())."""
    lst = Listener(_keep_silent)
    if test is not None:
        test.addCleanup(lst.close)
    return lst


# Not a PostgreSQL message: an HTTP answer, as from a port that belongs to someone else.
GARBAGE = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"


def garbage_listener(test, payload=GARBAGE, close_after=True):
    """A Listener that answers every connection with `payload` at once (without reading
    the client's startup packet) and then closes it (close_after=False keeps it open).
    test.addCleanup closes the listener (test=None: call close())."""
    def serve(conn):
        conn.sendall(payload)
        if close_after:
            conn.shutdown(socket.SHUT_WR)
    lst = Listener(serve)
    lst.payload = payload
    if test is not None:
        test.addCleanup(lst.close)
    return lst
