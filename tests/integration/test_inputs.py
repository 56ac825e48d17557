#!/usr/bin/env python3
"""Inputs pgboot refuses, and how (docs/reference.md, "Inputs pgboot refuses"), and
the password rule for URI passwords holding an unescaped '/', '@' or ':'. Each case
failed before its fix: FIFO inputs hung in open() with SIGTERM blocked, /dev/zero
grew without bound, a directory read as empty, deep TOML crashed toml++, `dir =
true` became the directory "true", libpq quoted pieces of passwords, JSON lines
carried a server's raw bytes, and two messages named too little or too much."""
import os
import pathlib
import subprocess
import unittest

from harness.case import PgbootTestCase, time_limit
from harness.files import temp_dir
from harness.listeners import garbage_listener
from harness.logs import events, parse_json_lines
from harness.proc import clean_env, pgboot_bin, run
from harness.server import closed_url, free_port, new_database, url


def exit_reason(cp):
    """The reason of the final `exit` log line (either format)."""
    return [e for e in events(cp.stderr) if e["event"] == "exit"][-1]["reason"]


def password_runs(text, password, others=()):
    """The runs of min(4, len) characters of `password` left in `text` once every
    occurrence of `others` (the connection string's other values) is removed."""
    for other in sorted(others, key=len, reverse=True):
        text = text.replace(other, "\0")
    k = min(4, len(password))
    return sorted({password[i:i + k] for i in range(len(password) - k + 1)
                   if password[i:i + k] in text})


class FileInputs(PgbootTestCase):
    def setUp(self):
        self.dir = pathlib.Path(str(temp_dir(self)))

    def inputs(self, path):
        """(label, args, env, cwd) naming `path` as each file input."""
        cwd = self.dir / ("cwd-%d" % len(os.listdir(self.dir)))
        os.makedirs(cwd)
        os.symlink(path, cwd / "pgboot.toml")
        url = closed_url()
        return [
            ("DATABASE_URL_FILE", ["wait"], {"DATABASE_URL_FILE": str(path)}, None),
            ("--config", ["wait", "--config", str(path), "--database-url", url], {}, None),
            ("PGBOOT_CONFIG", ["wait", "--database-url", url], {"PGBOOT_CONFIG": str(path)},
             None),
            ("./pgboot.toml", ["wait", "--database-url", url], {}, str(cwd)),
        ]

    def assertRefusedAtOnce(self, path, kind):
        for label, args, env, cwd in self.inputs(path):
            with self.subTest(input=label, kind=kind):
                cp = run(args + ["--wait-timeout", "20s"], env=env, cwd=cwd, timeout=10)
                self.assertExit(cp, 2)
                self.assertLess(cp.elapsed, time_limit(2.0), "refused at once, not after the wait")
                reason = exit_reason(cp)
                self.assertIn("pgboot.toml" if cwd else str(path), reason)
                self.assertIn(kind, reason)

    def test_a_fifo_is_refused_at_once(self):
        fifo = self.dir / "fifo"
        os.mkfifo(fifo)
        self.assertRefusedAtOnce(fifo, "a FIFO")

    def test_a_directory_is_refused(self):
        d = self.dir / "d"
        os.makedirs(d)
        self.assertRefusedAtOnce(d, "a directory")

    def test_a_device_is_refused_without_reading_it(self):
        self.assertRefusedAtOnce("/dev/zero", "a character device")

    def test_kubernetes_secret_symlinks_keep_working(self):
        db = new_database(self)
        data = self.dir / "..2026_12_01_10_00_00.1"
        os.makedirs(data)
        with open(data / "url", "w") as f:
            f.write(url(db) + "\n")
        with open(data / "pgboot.toml", "w") as f:
            f.write('[wait]\ntimeout = "10s"\n')
        os.symlink(data.name, self.dir / "..data")
        os.symlink("..data/url", self.dir / "url")
        os.symlink("..data/pgboot.toml", self.dir / "pgboot.toml")
        cp = run(["wait", "--config", self.dir / "pgboot.toml"],
                 env={"DATABASE_URL_FILE": str(self.dir / "url")})
        self.assertExit(cp, 0)
        cp = run(["wait"], env={"DATABASE_URL_FILE": str(self.dir / "url")}, cwd=str(self.dir))
        self.assertExit(cp, 0)


class TomlInputs(PgbootTestCase):
    def config(self, text):
        return temp_dir(self).write("pgboot.toml", text)

    def test_deep_nesting_is_exit_2_naming_the_file_never_a_crash(self):
        for text in ["a" + ".a" * 99999 + " = 1\n", "[" + "a." * 19999 + "a]\n",
                     "x = " + "[" * 20000 + "\n"]:
            cfg = self.config(text)
            cp = run(["wait", "--config", cfg, "--database-url", closed_url()])
            self.assertExit(cp, 2)  # was -11 (SIGSEGV) for the first two
            self.assertIn(str(cfg), cp.stderr)
            self.assertIn("nested too deeply", cp.stderr)

    def test_a_value_of_the_wrong_type_is_exit_2_naming_the_key(self):
        for text, key in [("[migrations]\ndir = true\n", "migrations.dir"),
                          ("[wait]\ntimeout = 30\n", "wait.timeout"),
                          ("[log]\nlevel = 1\n", "log.level")]:
            cfg = self.config(text)
            cp = run(["status", "--config", cfg, "--database-url", closed_url()])
            self.assertExit(cp, 2)
            self.assertIn("key " + key, cp.stderr)


class Passwords(PgbootTestCase):
    """A URI password with an unescaped '/', '@' or ':' (libpq parses pieces of it as
    port, host or dbname and quotes them): no 4 characters of it in any line."""

    def check(self, uri, password, others, code):
        term = temp_dir(self).write("termination-log", "")
        for fmt in ("text", "json"):
            cp = run(["wait", "--database-url", uri, "--wait-timeout", "700ms",
                      "--log-level", "debug", "--log-format", fmt, "--termination-log", term],
                     env={"PGBOOT_WAIT_LOG_INTERVAL": "100ms"})
            self.assertExit(cp, code)
            with open(term) as f:
                out = cp.stdout + cp.stderr + f.read()
            self.assertEqual(password_runs(out, password, others), [], out)
        return cp

    def test_unescaped_slash(self):
        cp = self.check("postgres://u:Leak/Sl4sh@localhost/db", "Leak/Sl4sh",
                        ["postgres://", "u", "localhost", "db"], 2)
        self.assertEqual(exit_reason(cp),
                         'invalid integer value "***" for connection option "port"')

    def test_unescaped_at(self):
        port = free_port()
        cp = self.check("postgres://u:Le@kAtt4ck@127.0.0.1:%d/db" % port, "Le@kAtt4ck",
                        ["postgres://", "u", "127.0.0.1", str(port), "db"], 3)
        self.assertIn("wait.retry", cp.stderr)

    def test_unescaped_colon_and_slash(self):
        self.check("postgres://u:Pa55/w:rd@127.0.0.1/db", "Pa55/w:rd",
                   ["postgres://", "u", "127.0.0.1", "db"], 2)

    def test_a_scheme_typo_masks_only_the_password(self):
        cp = run(["wait", "--database-url", "postgre://u:secretpw@h/db"])
        self.assertExit(cp, 2)
        self.assertIn('missing "=" after "postgre://u:***@h/db"', exit_reason(cp))
        self.assertNotIn("secretpw", cp.stderr)


class Messages(PgbootTestCase):
    def test_wait_max_interval_zero_names_the_value_and_its_source(self):
        cp = run(["wait", "--wait-max-interval=0", "--database-url", closed_url()])
        self.assertExit(cp, 2)
        self.assertIn('"0" for --wait-max-interval (from flag --wait-max-interval)',
                      exit_reason(cp))
        cp = run(["wait", "--database-url", closed_url()],
                 env={"PGBOOT_WAIT_MAX_INTERVAL": "0"})
        self.assertExit(cp, 2)
        self.assertIn("environment PGBOOT_WAIT_MAX_INTERVAL", cp.stderr)


class JsonLogs(PgbootTestCase):
    def test_a_server_answering_garbage_gives_utf8_json_lines(self):
        srv = garbage_listener(self, payload=b"\xff\xfe\xc3(\xed\xa0\x80garbage\x80\n\x00\x01")
        db_url = "postgresql://u:pw@127.0.0.1:%d/db?sslmode=disable" % srv.port
        p = subprocess.run([pgboot_bin(), "wait", "--database-url", db_url,
                            "--wait-timeout", "600ms", "--log-format", "json",
                            "--log-level", "debug"], env=clean_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 3, p.stderr)
        text = p.stderr.decode("utf-8")  # strict: a UnicodeDecodeError fails the test
        lines = parse_json_lines(text)
        self.assertTrue(any(e["event"] == "wait.retry" for e in lines))
        self.assertEqual(lines[-1]["event"], "exit")


if __name__ == "__main__":
    unittest.main()
