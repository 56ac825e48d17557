#!/usr/bin/env python3
"""Fault suite: peers and inputs that misbehave. A listener that accepts and never
answers, one that answers garbage, and a FIFO (or a directory) as every file
pgboot reads or writes: DATABASE_URL_FILE, PGBOOT_DATABASE_URL_FILE, --config,
./pgboot.toml, the migrations directory and its up, down and verify files, the
termination log and the metrics file.

Each case asserts the exit code and that the answer comes in time (the deadline,
or at once); the listener and input-file cases also that SIGTERM is answered
within 1 s, and the listener cases that the password never shows.
"""

import os
import random
import signal
import subprocess
import time
import unittest

from harness.case import PgbootTestCase, time_limit
from harness.files import temp_dir
from harness.listeners import garbage_listener, silent_listener
from harness.logs import events, parse_json_lines
from harness.proc import clean_env, pgboot_bin, run, spawn, wait_until
from harness.server import closed_url, url

PASSWORD = "Fault-Pw-7c1e"


def listener_url(listener):
    return "postgresql://app:%s@127.0.0.1:%d/app" % (PASSWORD, listener.port)


def garbage(seed):
    """Bytes no PostgreSQL sends: not UTF-8, NULs, then random bytes."""
    r = random.Random(seed)
    return (b"\xff\xfe HTTP/1.1 400 Bad Request\r\n\x00\x80\xc3(" +
            bytes(r.randrange(256) for _ in range(200)))


# An authentication request claiming a 2 GB message.
HUGE_LENGTH = b"R\x7f\xff\xff\xff\x00\x00\x00\x05"


class ListenerTest(PgbootTestCase):
    def wait_args(self, listener, timeout="2s", *extra):
        return ["wait", "--database-url", listener_url(listener), "--wait-timeout",
                timeout] + list(extra)

    def _times_out(self, ln, *extra):
        cp = run(self.wait_args(ln, "2s", *extra), timeout=time_limit(15))
        self.assertExit(cp, 3, "not ready within --wait-timeout")
        self.assertGreater(ln.accepted, 0, "pgboot reached the listener")
        self.assertLess(cp.elapsed, time_limit(3.5), "the deadline (2 s) is kept")
        self.assertNoPassword(cp.stdout + cp.stderr, PASSWORD)
        return cp

    def _sigterm(self, ln):
        p = spawn(self.wait_args(ln, "60s"), test=self)
        wait_until(lambda: ln.accepted > 0, time_limit(10), "pgboot connected")
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        cp = p.finish(time_limit(10))
        self.assertExit(cp, 143)
        self.assertLess(p.exited_at - t0, time_limit(1.0), "SIGTERM answered within 1 s")
        self.assertNoPassword(cp.stdout + cp.stderr, PASSWORD)

    def test_silent_listener_times_out_exit_3(self):
        self._times_out(silent_listener(self))

    def test_silent_listener_sigterm_143(self):
        self._sigterm(silent_listener(self))

    def test_garbage_listener_times_out_exit_3(self):
        self._times_out(garbage_listener(self, garbage(1)))

    def test_garbage_listener_sigterm_143(self):
        self._sigterm(garbage_listener(self, garbage(2)))

    def test_huge_message_length_times_out_exit_3(self):
        self._times_out(garbage_listener(self, HUGE_LENGTH))

    def test_garbage_listener_text_logs_are_log_lines(self):
        cp = self._times_out(garbage_listener(self, garbage(3)), "--log-level", "debug")
        for e in events(cp.stderr):
            self.assertNotIn("raw", e, "every stderr line is a log line: %r" % e)

    def test_garbage_listener_json_logs_are_utf8_json(self):
        ln = garbage_listener(self, garbage(4))
        cmd = [pgboot_bin()] + self.wait_args(ln, "2s", "--log-format", "json", "--log-level",
                                              "debug")
        p = subprocess.run(cmd, env=clean_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=time_limit(15))
        self.assertEqual(p.returncode, 3)
        text = p.stderr.decode("utf-8")  # UnicodeDecodeError is the failure
        self.assertGreater(len(parse_json_lines(text)), 0)


class FileInputTest(PgbootTestCase):
    """SPEC §12: a FIFO, directory or device as a file input is exit 2 naming the
    file, at once, never a hang (and SIGTERM is answered whatever happens)."""

    def setUp(self):
        self.dir = temp_dir(self)
        self.url = url()

    def fifo(self, name):
        path = self.dir / name
        os.mkfifo(path)
        return path

    def cases(self, kind):
        """(name, args, env, cwd, path) for each file input, the input being `kind`."""
        make = self.fifo if kind == "fifo" else (lambda n: os.makedirs(self.dir / n) or self.dir / n)
        url_file, own_file = make("url"), make("own-url")
        cfg, toml_dir = make("config.toml"), self.dir / "cwd"
        os.makedirs(toml_dir)
        local = (self.fifo if kind == "fifo" else (lambda n: os.makedirs(n) or n))(
            os.path.join(toml_dir, "pgboot.toml"))
        return [
            ("DATABASE_URL_FILE", ["wait"], {"DATABASE_URL_FILE": url_file}, None, url_file),
            ("PGBOOT_DATABASE_URL_FILE", ["wait"], {"PGBOOT_DATABASE_URL_FILE": own_file}, None,
             own_file),
            ("--config", ["wait", "--database-url", self.url, "--config", cfg], {}, None, cfg),
            ("./pgboot.toml", ["wait", "--database-url", self.url], {}, toml_dir, "pgboot.toml"),
        ]

    def _refused_at_once(self, kind):
        for name, args, env, cwd, path in self.cases(kind):
            with self.subTest(input=name):
                p = spawn(args + ["--wait-timeout", "5s"], env=env, cwd=cwd, test=self)
                cp = p.finish(time_limit(3))
                self.assertExit(cp, 2, "%s as %s" % (kind, name))
                self.assertIn(os.path.basename(path), cp.stderr, "the error names the file")
                self.assertLess(cp.elapsed, time_limit(1.0), "at once")

    def _sigterm_answered(self, kind):
        for name, args, env, cwd, _ in self.cases(kind):
            with self.subTest(input=name):
                p = spawn(args + ["--wait-timeout", "60s"], env=env, cwd=cwd, test=self)
                try:
                    p.wait(0.5)  # a fixed pgboot has already refused the file
                except Exception:
                    pass
                t0 = time.monotonic()
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                cp = p.finish(time_limit(2))
                self.assertIn(cp.returncode, (2, 143), cp.stderr)
                self.assertLess(time.monotonic() - t0, time_limit(1.0), "SIGTERM answered in 1 s")

    def test_fifo_inputs_are_refused_at_once_exit_2(self):
        self._refused_at_once("fifo")

    def test_fifo_inputs_never_block_sigterm(self):
        self._sigterm_answered("fifo")

    def test_directory_inputs_are_refused_exit_2(self):
        self._refused_at_once("dir")

    def test_fifo_migration_files_are_exit_8_at_once_naming_each(self):
        # Migration files are read before any connection: a FIFO named like one
        # (up, down or verify part), or as the directory itself, is never opened.
        mig = self.dir / "migrations"
        os.makedirs(mig)
        self.dir.write("migrations/1_a.up.sql", "CREATE TABLE a (id int);\n")
        names = ["2_pipe.sql", "1_a.down.sql", "1_a.verify.sql"]
        for name in names:
            os.mkfifo(os.path.join(mig, name))
        for args in (["validate"], ["migrate", "--database-url", closed_url()]):
            with self.subTest(command=args[0]):
                p = spawn(args + ["--migrations-dir", mig, "--wait-timeout", "5s"], test=self)
                cp = p.finish(time_limit(3))
                self.assertExit(cp, 8)
                for name in names:
                    self.assertIn("%s:1: not a regular file" % name, cp.stderr)
                self.assertLess(cp.elapsed, time_limit(1.0), "at once")
        cp = run(["validate", "--migrations-dir", self.fifo("dir-pipe")], timeout=time_limit(3))
        self.assertExit(cp, 8)
        self.assertIn("dir-pipe", cp.stderr)

    def test_fifo_outputs_never_block_the_exit(self):
        # The termination log is written only when it is a writable file that
        # exists; a FIFO without a reader must not hold the exit. The metrics
        # file is replaced by rename, so a FIFO there becomes the metrics file.
        tlog, metrics = self.fifo("termination-log"), self.fifo("metrics.prom")
        args = ["wait", "--database-url", closed_url(), "--wait-timeout", "1s",
                "--termination-log", tlog]
        p = spawn(args + ["--metrics-file", metrics], test=self)
        cp = p.finish(time_limit(5))
        self.assertExit(cp, 3)
        self.assertLess(cp.elapsed, time_limit(3.0), "the 1 s deadline, then the exit")
        self.assertTrue(os.path.isfile(metrics), "the metrics file replaced the FIFO")
        with open(metrics) as f:
            self.assertIn("pgboot_", f.read())
        # With a reader on the FIFO, the reason is written to it: it was tried, not skipped.
        reader = os.open(tlog, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        cp = spawn(args, test=self).finish(time_limit(5))
        self.assertExit(cp, 3)
        self.assertIn(b"database not ready", os.read(reader, 4096))

    def test_toml_line_ending_backslash_before_non_ascii_parses(self):
        # toml++ 3.3.0 reaches TOML_UNREACHABLE here (upstream #190; tests/fuzz/README.md):
        # the release binary must still read the value. Files are read before any
        # connection, so the directory's name shows in the exit-8 error.
        cfg = self.dir.write("pgboot.toml", '[migrations]\ndir = """\\\n\u00a7x"""\n')
        cp = run(["migrate", "--config", cfg, "--database-url", closed_url(),
                         "--wait-timeout", "1s"], timeout=time_limit(10))
        self.assertExit(cp, 8)
        self.assertIn("directory \u00a7x", cp.stderr)


if __name__ == "__main__":
    unittest.main()
