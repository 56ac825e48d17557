#!/usr/bin/env python3
"""The foundation, black-box, against a real PostgreSQL 15: waiting (SPEC §3),
run mode's exec (§1), exit codes (§6), configuration precedence (§2), logs and
redaction (§7), the termination log and usage errors.

Every pgboot run here has a bounded --wait-timeout (or a run() timeout), so a
misclassified answer fails the test quickly instead of hanging the suite.
"""

import json
import os
import re
import signal
import socket
import sys
import threading
import time
import unittest
import urllib.parse

from harness.server import (PASSWORD, USER, closed_url, conninfo, drop_database, new_cluster,
                            new_database, new_role, pg, url)
from harness.sql import admin_sql, quote_ident
from harness.proc import clean_env, run, source_dir, spawn, wait_for_line
from harness.files import temp_dir
from harness.logs import events, parse_json_lines
from harness.case import PgbootTestCase


# A wrong password full of characters that URIs percent-encode and that
# redaction code tends to trip over.
WRONG_PASSWORD = "Wr0ng p@ss/%:!"

ALL_COMMANDS = ["run", "wait", "migrate", "up", "status", "info", "validate", "rollback", "down",
                "repair", "baseline", "new", "doctor", "version"]


class blackhole:
    """A TCP listener that accepts connections into its backlog and never answers."""

    def __enter__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        return self.sock.getsockname()[1], self.sock

    def __exit__(self, *exc):
        self.sock.close()


class Base(PgbootTestCase):
    @classmethod
    def setUpClass(cls):
        cls.db = new_database(prefix="waitrun")
        cls.addClassCleanup(drop_database, cls.db)

    def wait_args(self, *extra, db=None, timeout="10s"):
        return ["wait", "--database-url", url(db or self.db), "--wait-timeout", timeout] + list(extra)

    def assertNoSecrets(self, text):
        self.assertNoPassword(text, PASSWORD, WRONG_PASSWORD)


class WaitTest(Base):
    def test_ready_server_exits_0_with_wait_ready(self):
        cp = run(self.wait_args())
        self.assertExit(cp, 0)
        self.assertRegex(cp.stderr, r"\bwait\.ready\b")
        self.assertEqual(cp.stdout, "", "wait prints logs to stderr only")
        self.assertLess(cp.elapsed, 2.0)

    def test_ready_via_env_and_keyvalue_conninfo(self):
        with self.subTest("DATABASE_URL"):
            cp = run(["wait", "--wait-timeout", "10s"], env={"DATABASE_URL": url(self.db)})
            self.assertExit(cp, 0)
            self.assertRegex(cp.stderr, r"\bwait\.ready\b")
        with self.subTest("key=value"):
            cp = run(["wait", "--wait-timeout", "10s",
                      "--database-url", conninfo(self.db)])
            self.assertExit(cp, 0)
            self.assertNoSecrets(cp.stderr)

    def test_proceeds_within_500ms_of_server_accepting(self):
        cluster = new_cluster(self)
        p = spawn(["wait", "--database-url", cluster.url("postgres"),
                   "--wait-timeout", "30s", "--log-level", "debug"], test=self)
        p.wait_for_line(r"\bwait\.retry\b", timeout=10)  # it is really waiting
        time.sleep(max(0.0, 2.0 - (time.monotonic() - p.started_at)))  # the server comes ~2 s later

        # The honest "accepting" instant: the first real scram login + SELECT 1
        # of a psql loop polling every ~20 ms.
        first_login = []
        stop = threading.Event()

        def probe():
            while not stop.is_set():
                if cluster.tcp_login_ok("postgres", timeout=2):
                    first_login.append(time.monotonic())
                    return
                stop.wait(0.02)

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        self.addCleanup(stop.set)
        started = time.monotonic()
        cluster.start(wait=False)
        cp = p.finish(timeout=30)
        prober.join(30)
        self.assertExit(cp, 0)
        self.assertTrue(first_login, "the probe never logged in")
        self.assertGreater(p.exited_at, started, "pgboot exited before the server was started")
        lag = p.exited_at - first_login[0]
        sys.stderr.write("[exit - first probe login: %+.3fs] " % lag)
        self.assertLess(lag, 0.5, "pgboot exited %.3fs after the server accepted logins" % lag)
        self.assertRegex(cp.stderr, r"\bwait\.ready\b")

    def test_wrong_password_exit_4_fast_names_user_and_host_not_password(self):
        cp = run(["wait", "--wait-timeout", "30s",
                  "--database-url", url(self.db, password=WRONG_PASSWORD)])
        self.assertExit(cp, 4)
        self.assertLess(cp.elapsed, 1.0, "authentication failure must not be retried")
        self.assertIn(USER, cp.stderr)
        self.assertIn("127.0.0.1", cp.stderr)
        self.assertNoSecrets(cp.stderr + cp.stdout)

    def test_wrong_password_in_keyvalue_and_query_forms_is_redacted(self):
        forms = {
            "key=value": conninfo(self.db, password=WRONG_PASSWORD),
            "?password=": url(self.db, password="") + "?" + urllib.parse.urlencode(
                {"password": WRONG_PASSWORD}),
        }
        for name, dsn in forms.items():
            with self.subTest(name):
                cp = run(["wait", "--wait-timeout", "30s", "--database-url", dsn,
                          "--log-level", "debug"])
                self.assertExit(cp, 4)
                self.assertNoSecrets(cp.stderr + cp.stdout)

    def test_missing_database_exit_4(self):
        cp = run(self.wait_args(db="no_such_db_%d" % os.getpid(), timeout="30s"))
        self.assertExit(cp, 4)
        self.assertLess(cp.elapsed, 1.0)
        self.assertIn("no_such_db_", cp.stderr)

    def test_closed_port_times_out_exit_3_with_reason(self):
        cp = run(["wait", "--database-url", closed_url(self.db), "--wait-timeout", "1s"])
        self.assertExit(cp, 3)
        self.assertGreaterEqual(cp.elapsed, 0.9, "gave up before the deadline")
        self.assertLess(cp.elapsed, 2.5, "overran the 1s deadline")
        self.assertRegex(cp.stderr, r"(?i)refused", "the last reason must be printed")
        self.assertNoSecrets(cp.stderr)

    def test_insufficient_privilege_exit_4(self):
        db = new_database(self)
        admin_sql("REVOKE CONNECT ON DATABASE %s FROM PUBLIC" % quote_ident(db))
        role = new_role(self, password="R0le-Pw!")
        cp = run(["wait", "--wait-timeout", "30s",
                  "--database-url", url(db, user=role, password="R0le-Pw!")])
        self.assertExit(cp, 4)
        self.assertLess(cp.elapsed, 1.0)
        self.assertNoPassword(cp.stderr, "R0le-Pw!")

    def test_no_password_supplied_exit_4(self):
        cp = run(["wait", "--wait-timeout", "30s", "--database-url", url(self.db, password="")],
                 env={"PGPASSFILE": "/nonexistent"})
        self.assertExit(cp, 4)
        self.assertLess(cp.elapsed, 1.0)

    def test_too_many_connections_is_retried_with_its_own_cap(self):
        # A role's CONNECTION LIMIT answers 53300, like a full server.
        role = new_role(self, password="R0le-Pw!", options="LOGIN CONNECTION LIMIT 0")
        cp = run(["wait", "--wait-timeout", "1500ms", "--wait-max-interval", "300ms",
                  "--log-level", "debug", "--database-url", url(self.db, user=role, password="R0le-Pw!")])
        self.assertExit(cp, 3, "53300 is transient, not fatal")
        self.assertGreaterEqual(cp.elapsed, 1.4)
        self.assertIn("too many connections", cp.stderr)
        retries = events(cp.stderr, "wait.retry")
        self.assertGreaterEqual(len(retries), 2)
        sleeps = [int(e["sleep_ms"]) for e in retries if "sleep_ms" in e]
        self.assertTrue(sleeps, "wait.retry lines carry no sleep_ms: %s" % cp.stderr)
        self.assertLessEqual(max(sleeps), 300, "sleep above --wait-max-interval")

    def test_backoff_cap_100ms_while_refused(self):
        # With a 100 ms cap a refused port is tried at least 10 times a second.
        cp = run(["wait", "--database-url", closed_url(self.db), "--wait-timeout", "1s",
                  "--wait-max-interval", "5s", "--log-level", "debug"])
        self.assertExit(cp, 3)
        retries = events(cp.stderr, "wait.retry")
        self.assertGreaterEqual(len(retries), 8, cp.stderr)
        sleeps = [int(e["sleep_ms"]) for e in retries if "sleep_ms" in e]
        self.assertTrue(sleeps and max(sleeps) <= 100, "sleeps above 100 ms: %s" % sleeps)

    def test_unresolvable_host_and_missing_socket_are_transient(self):
        cases = {
            "unresolvable host": ({}, ["--database-url", url(self.db, host="no-such-host.invalid")]),
            "missing Unix socket": ({"PGHOST": temp_dir(self).path, "PGPORT": "5999",
                                     "PGUSER": USER, "PGDATABASE": self.db}, []),
        }
        for name, (env, args) in cases.items():
            with self.subTest(name):
                cp = run(["wait", "--wait-timeout", "500ms"] + args, env=env)
                self.assertExit(cp, 3)
                self.assertGreaterEqual(cp.elapsed, 0.45)

    def test_libpq_environment_when_no_url(self):
        info = pg()
        cp = run(["wait", "--wait-timeout", "10s"],
                 env={"PGHOST": info["socket_dir"], "PGPORT": info["port"], "PGUSER": USER,
                      "PGDATABASE": self.db})
        self.assertExit(cp, 0)

    def test_sets_application_name(self):
        db = new_database(self)
        cp = run(["wait", "--wait-timeout", "10s", "--database-url", url(db)])
        self.assertExit(cp, 0)
        wait_for_line(pg()["log_file"],
                      r"connection authorized: user=%s database=%s application_name=pgboot@%s\b"
                      % (USER, db, re.escape(socket.gethostname())), timeout=5)

    def test_attempt_never_runs_past_the_deadline(self):
        # A server that accepts TCP and never answers: the attempt itself must
        # be cut at the deadline (libpq's connect_timeout does not apply).
        with blackhole() as (port, _):
            cp = run(["wait", "--database-url", url(self.db, port=port), "--wait-timeout", "1s"])
        self.assertExit(cp, 3)
        self.assertGreaterEqual(cp.elapsed, 0.9)
        self.assertLess(cp.elapsed, 2.0, "the attempt overran the deadline")

    def test_unparsable_connection_strings_exit_2(self):
        bad = [
            "postgresql://localhost:notaport/db",
            "host=x port=abc",
            "postgresql://127.0.0.1:99999/db",
            "postgresql://[::1",
            "host=127.0.0.1 nosuchoption=1",
            "host=127.0.0.1 sslmode=bogus",
        ]
        for dsn in bad:
            with self.subTest(dsn=dsn):
                cp = run(["wait", "--database-url", dsn, "--wait-timeout", "5s"])
                self.assertExit(cp, 2)
                self.assertLess(cp.elapsed, 1.0, "a configuration error must not be retried")


class RunModeTest(Base):
    def run_app(self, app, env=None, **kw):
        env = dict(env or {})
        env.setdefault("DATABASE_URL", url(self.db))
        return run(["--wait-timeout", "10s", "--"] + app, env=env, **kw)

    def test_app_exit_code_passes_through(self):
        cp = self.run_app(["sh", "-c", "exit 7"])
        self.assertExit(cp, 7)
        self.assertRegex(cp.stderr, r"\bwait\.ready\b")

    def test_app_not_found_127(self):
        for app in ["/nonexistent", "no-such-command-%d" % os.getpid()]:
            with self.subTest(app=app):
                cp = self.run_app([app])
                self.assertExit(cp, 127)
                self.assertIn(app, cp.stderr)

    def test_app_not_executable_126(self):
        d = temp_dir(self)
        script = d.write("app.sh", "#!/bin/sh\nexit 0\n", mode=0o644)
        for app in [script, d.path]:
            with self.subTest(app=app):
                cp = self.run_app([app])
                self.assertExit(cp, 126)

    def test_argv_reaches_app_unchanged(self):
        args = ["plain", "with  two spaces ", "", "it's", '"double"', "$HOME", "${PATH}", "`id`",
                "back\\slash", "new\nline", "tab\there", "ünïcödé ☃ 日本", "--", "--help",
                "--wait-timeout", "*", "-"]
        app = [sys.executable, "-c", "import sys,json; print(json.dumps(sys.argv[1:]))"]
        cp = self.run_app(app + args)
        self.assertExit(cp, 0)
        self.assertEqual(json.loads(cp.stdout), args)

    def test_environment_reaches_app_unchanged(self):
        env = clean_env({"DATABASE_URL": url(self.db), "PGBOOT_EXTRA": "a b=c $HOME ☃",
                         "EMPTY_VAR": "", "PGBOOT_LOG_LEVEL": "debug"})
        cp = self.run_app(["env", "-0"], env=env)
        self.assertExit(cp, 0)
        got = dict(item.split("=", 1) for item in cp.stdout.split("\0") if item)
        self.assertEqual(got, env)

    def test_failed_wait_does_not_start_app(self):
        marker = os.path.join(temp_dir(self).path, "started")
        cp = self.run_app(["sh", "-c", "touch '%s'" % marker],
                          env={"DATABASE_URL": url(self.db, password=WRONG_PASSWORD)})
        self.assertExit(cp, 4)
        self.assertFalse(os.path.exists(marker), "the app ran although the wait failed")


class SignalTest(Base):
    def assertSignalExit(self, signo, code):
        p = spawn(["wait", "--database-url", closed_url(self.db), "--wait-timeout", "60s",
                   "--log-level", "debug"], test=self)
        p.wait_for_line(r"\bwait\.retry\b", timeout=10)
        sent = time.monotonic()
        p.send_signal(signo)
        cp = p.finish(timeout=10)
        self.assertExit(cp, code, "after %s" % signal.Signals(signo).name)
        self.assertLess(p.exited_at - sent, 1.0, "slow to answer the signal")

    def test_sigterm_while_waiting_exit_143(self):
        self.assertSignalExit(signal.SIGTERM, 143)

    def test_sigint_while_waiting_exit_130(self):
        self.assertSignalExit(signal.SIGINT, 130)

    def test_sigterm_during_a_connection_attempt_exit_143(self):
        with blackhole() as (port, sock):
            p = spawn(["wait", "--database-url", url(self.db, port=port),
                       "--wait-timeout", "60s"], test=self)
            sock.settimeout(10)
            conn, _ = sock.accept()  # pgboot is inside an attempt, waiting for an answer
            self.addCleanup(conn.close)
            conn.settimeout(10)
            self.assertTrue(conn.recv(8), "libpq sent nothing")
            sent = time.monotonic()
            p.send_signal(signal.SIGTERM)
            cp = p.finish(timeout=10)
        self.assertExit(cp, 143)
        self.assertLess(p.exited_at - sent, 1.0, "slow to answer SIGTERM during an attempt")


class LogTest(Base):
    def test_json_logs_parse_and_hide_password(self):
        cp = run(["wait", "--wait-timeout", "30s", "--log-format", "json", "--log-level", "debug",
                  "--database-url", url(self.db, password=WRONG_PASSWORD)])
        self.assertExit(cp, 4)
        lines = parse_json_lines(cp.stderr)
        self.assertTrue(lines, "no log lines at all")
        for obj in lines:
            for key in ("ts", "level", "event"):
                self.assertIn(key, obj, obj)
            self.assertRegex(obj["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(obj["level"], ("debug", "info", "warn", "error"))
        self.assertNoSecrets(cp.stderr)

    def test_json_logs_while_retrying(self):
        cp = run(["wait", "--database-url", closed_url(self.db), "--wait-timeout", "500ms"],
                 env={"PGBOOT_LOG_FORMAT": "json", "PGBOOT_LOG_LEVEL": "debug"})
        self.assertExit(cp, 3)
        lines = parse_json_lines(cp.stderr)
        retries = [e for e in lines if e.get("event") == "wait.retry"]
        self.assertGreaterEqual(len(retries), 2, "every attempt is logged at debug")
        self.assertTrue(all(e.get("level") == "debug" for e in retries))
        self.assertNoSecrets(cp.stderr)

    def test_text_logs_shape(self):
        cp = run(self.wait_args())
        self.assertExit(cp, 0)
        evs = events(cp.stderr)
        self.assertTrue(evs)
        for e in evs:
            self.assertNotIn("raw", e, "not a `TS LEVEL event k=v` line: %r" % e.get("raw"))
        self.assertIn("wait.ready", [e["event"] for e in evs])


class ConfigTest(Base):
    def toml(self, text):
        return temp_dir(self).write("pgboot.toml", text)

    def assertTimesOutAfter(self, cp, low, high):
        self.assertExit(cp, 3)
        self.assertGreaterEqual(cp.elapsed, low)
        self.assertLess(cp.elapsed, high)

    def test_flag_beats_env_beats_toml_beats_default_wait_timeout(self):
        dead = closed_url(self.db)
        cfg = self.toml('[wait]\ntimeout = "20s"\n')
        with self.subTest("flag beats env"):
            cp = run(["wait", "--database-url", dead, "--wait-timeout", "300ms"],
                     env={"PGBOOT_WAIT_TIMEOUT": "20s"}, timeout=15)
            self.assertTimesOutAfter(cp, 0.25, 2.0)
        with self.subTest("env beats TOML"):
            cp = run(["wait", "--database-url", dead, "--config", cfg],
                     env={"PGBOOT_WAIT_TIMEOUT": "300ms"}, timeout=15)
            self.assertTimesOutAfter(cp, 0.25, 2.0)
        with self.subTest("TOML beats default (60s)"):
            short = self.toml('[wait]\ntimeout = "300ms"\n')
            cp = run(["wait", "--database-url", dead, "--config", short], timeout=15)
            self.assertTimesOutAfter(cp, 0.25, 2.0)
        with self.subTest("PGBOOT_CONFIG names the file"):
            short = self.toml('[wait]\ntimeout = "300ms"\n')
            cp = run(["wait", "--database-url", dead], env={"PGBOOT_CONFIG": short}, timeout=15)
            self.assertTimesOutAfter(cp, 0.25, 2.0)
        with self.subTest("./pgboot.toml is read when present"):
            d = temp_dir(self)
            d.write("pgboot.toml", '[wait]\ntimeout = "300ms"\n')
            cp = run(["wait", "--database-url", dead], cwd=d.path, timeout=15)
            self.assertTimesOutAfter(cp, 0.25, 2.0)

    def test_log_level_precedence(self):
        # Observable through the per-attempt wait.retry lines (debug) of a short
        # wait on a closed port, and the final error (always printed).
        def levels(cp):
            self.assertExit(cp, 3)
            return {e.get("level") for e in events(cp.stderr)}

        def args(*extra):
            return ["wait", "--database-url", closed_url(self.db), "--wait-timeout", "300ms"] + list(extra)

        cfg_debug = self.toml('[log]\nlevel = "debug"\n')
        cfg_error = self.toml('[log]\nlevel = "error"\n')
        with self.subTest("default is info"):
            got = levels(run(args()))
            self.assertNotIn("debug", got)
            self.assertIn("error", got)
        with self.subTest("TOML beats default"):
            self.assertIn("debug", levels(run(args("--config", cfg_debug))))
        with self.subTest("env beats TOML"):
            got = levels(run(args("--config", cfg_debug), env={"PGBOOT_LOG_LEVEL": "error"}))
            self.assertEqual(got, {"error"})
        with self.subTest("flag beats env"):
            got = levels(run(args("--config", cfg_error, "--log-level", "debug"),
                             env={"PGBOOT_LOG_LEVEL": "error"}))
            self.assertIn("debug", got)

    def test_database_url_flag_beats_env(self):
        cp = run(["wait", "--wait-timeout", "10s", "--database-url", url(self.db)],
                 env={"DATABASE_URL": url(self.db, password=WRONG_PASSWORD)})
        self.assertExit(cp, 0)

    def test_database_url_and_file_both_set_exit_2(self):
        f = temp_dir(self).write("url", url(self.db) + "\n")
        cp = run(["wait", "--wait-timeout", "10s"],
                 env={"DATABASE_URL": url(self.db), "DATABASE_URL_FILE": f})
        self.assertExit(cp, 2)
        self.assertIn("DATABASE_URL_FILE", cp.stderr)
        self.assertNoSecrets(cp.stderr)

    def test_database_url_file_with_trailing_newline(self):
        f = temp_dir(self).write("url", url(self.db) + "\n")
        cp = run(["wait", "--wait-timeout", "10s"], env={"DATABASE_URL_FILE": f})
        self.assertExit(cp, 0)
        self.assertRegex(cp.stderr, r"\bwait\.ready\b")

    def test_bad_duration_names_key_value_and_source(self):
        cases = {
            "flag": (["--wait-timeout", "10parsecs"], {}, None, "10parsecs", ["--wait-timeout"]),
            "env": ([], {"PGBOOT_WAIT_TIMEOUT": "ten"}, None, "ten", ["PGBOOT_WAIT_TIMEOUT"]),
            "env, no unit": ([], {"PGBOOT_WAIT_TIMEOUT": "10"}, None, "10",
                             ["PGBOOT_WAIT_TIMEOUT"]),
            "toml": ([], {}, '[wait]\ntimeout = "5 minutes"\n', "5 minutes", ["wait.timeout"]),
        }
        self.assertBadValues(cases)

    def test_bad_boolean_names_key_value_and_source(self):
        self.assertBadValues({
            "flag": (["--init=perhaps"], {}, None, "perhaps", ["--init"]),
            "env": ([], {"PGBOOT_INIT": "perhaps"}, None, "perhaps", ["PGBOOT_INIT"]),
            "toml": ([], {}, '[run]\ninit = "perhaps"\n', "perhaps", ["run.init"]),
        })

    def assertBadValues(self, cases):
        """Each case {name: (flags, env, toml, value, names)} exits 2 naming the
        value, every name and, for TOML, the file."""
        for name, (flags, env, toml, value, names) in cases.items():
            with self.subTest(name):
                args = ["wait", "--database-url", url(self.db)] + flags
                if toml:
                    path = self.toml(toml)
                    args += ["--config", path]
                    names = names + [path]
                cp = run(args, env=env)
                self.assertExit(cp, 2)
                self.assertIn(value, cp.stderr)
                for n in names:
                    self.assertIn(n, cp.stderr)

    def test_booleans_accept_every_spelling(self):
        for v in ["true", "FALSE", "1", "0", "yes", "No", "on", "OFF"]:
            with self.subTest(v):
                cp = run(self.wait_args(), env={"PGBOOT_OUT_OF_ORDER": v})
                self.assertExit(cp, 0)


class TerminationLogTest(Base):
    def test_written_on_failure_without_password(self):
        path = temp_dir(self).write("termination-log", "")
        cp = run(["wait", "--wait-timeout", "30s", "--termination-log", path,
                  "--database-url", url(self.db, password=WRONG_PASSWORD)])
        self.assertExit(cp, 4)
        with open(path, encoding="utf-8") as f:
            content = f.read()
        self.assertTrue(content.strip(), "nothing written to the termination log")
        self.assertEqual(content.count("\n"), 1, "one line: %r" % content)
        self.assertTrue(content.endswith("\n"))
        self.assertNoSecrets(content)

    def test_not_created_when_missing(self):
        d = temp_dir(self)
        path = os.path.join(d.path, "termination-log")
        cp = run(["wait", "--wait-timeout", "30s", "--database-url",
                  url(self.db, password=WRONG_PASSWORD)], env={"PGBOOT_TERMINATION_LOG": path})
        self.assertExit(cp, 4)
        self.assertFalse(os.path.exists(path), "pgboot created the termination log")


class UsageTest(Base):
    def test_unknown_option_2(self):
        cp = run(["wait", "--no-such-option"])
        self.assertExit(cp, 2)
        self.assertIn("no-such-option", cp.stderr)

    def test_app_without_dashdash_2(self):
        cp = run(["sh", "-c", "exit 0"], env={"DATABASE_URL": url(self.db)})
        self.assertExit(cp, 2)

    def test_no_app_in_run_mode_2(self):
        for args in [[], ["run"], ["--"], ["run", "--"]]:
            with self.subTest(args=args):
                self.assertExit(run(args, env={"DATABASE_URL": url(self.db)}), 2)

    def test_app_after_wait_2(self):
        cp = run(["wait", "--", "true"], env={"DATABASE_URL": url(self.db)})
        self.assertExit(cp, 2)

    def test_command_option_on_wrong_command_2(self):
        for args in [["wait", "--dry-run"], ["--dry-run", "wait"], ["wait", "--yes"],
                     ["--target", "3", "--", "true"]]:
            with self.subTest(args=args):
                cp = run(args, env={"DATABASE_URL": url(self.db)})
                self.assertExit(cp, 2)

    def test_options_anywhere_before_dashdash(self):
        cp = run(["--wait-timeout", "10s", "wait", "--database-url", url(self.db)])
        self.assertExit(cp, 0)

    def test_help_mentions_every_command(self):
        cp = run(["--help"])
        self.assertExit(cp, 0)
        for cmd in ALL_COMMANDS:
            self.assertRegex(cp.stdout, r"(?m)^\s+(\S+, )?%s\b" % cmd,
                             "--help does not list %r" % cmd)
        self.assertIn("--wait-timeout", cp.stdout)

    def test_every_setting_of_help_is_in_both_settings_tables(self):
        # --help is written from the settings table; the two docs tables are written by hand.
        cp = run(["--help"])
        self.assertExit(cp, 0)
        settings = cp.stdout.split(" Global options:")[1].split(" Command options:")[0]
        flags = set(re.findall(r"(?m)^\s+--([a-z-]+)", settings)) - {"help", "version", "config"}
        envs = set()
        for group in re.findall(r"\(env\s+([^)]*(?:\(_FILE\)[^)]*)*)\)", settings):
            for name in re.findall(r"\b([A-Z][A-Z0-9_]+)(\(_FILE\))?", group):
                envs.add(name[0])
                if name[1]:
                    envs.add(name[0] + "_FILE")
        envs -= {"PGBOOT_CONFIG"}
        self.assertIn("DATABASE_URL_FILE", envs)
        self.assertIn("lock-mode", flags)
        self.assertIn("PGBOOT_LOCK_MODE", envs)
        for doc in ("configuration.md", "reference.md"):
            with open(os.path.join(source_dir(), "docs", doc)) as f:
                table = [line for line in f if line.startswith("| ")]
            rows = [line for line in table if line.startswith("| `--")]
            for flag in sorted(flags):
                with self.subTest(doc=doc, flag=flag):
                    self.assertTrue(any(line.startswith("| `--%s`" % flag) for line in rows),
                                    "docs/%s has no row for --%s" % (doc, flag))
            for env in sorted(envs):
                with self.subTest(doc=doc, env=env):
                    self.assertTrue(any("`%s`" % env in line for line in table),
                                    "docs/%s has no row naming %s" % (doc, env))

    def test_version(self):
        for args in [["--version"], ["version"]]:
            with self.subTest(args=args):
                cp = run(args)
                self.assertExit(cp, 0)
                self.assertRegex(cp.stdout, r"^pgboot \d+\.\d+\.\d+")


if __name__ == "__main__":
    unittest.main()
