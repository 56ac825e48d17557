#!/usr/bin/env python3
"""Which signals end pgboot, and which --init passes on to APP (docs/init-mode.md "Signals").

Each case runs twice: with pgboot really PID 1 of a new PID namespace (unshare, see
test_pid1.py) and as a plain child of the test, where --init makes it a child
subreaper. The APP is tests/pid1/apps/allsignals.py, which records every signal
it receives, in order, so "exactly once" and "never" are both checked.

  - --init forwards every signal tini forwards (all catchable ones but SIGCHLD,
    SIGTTIN, SIGTTOU and the synchronous faults), each exactly once, to APP's pid
    or, with --init-group, to its process group;
  - a signal pgboot caused itself (SIGPIPE of its own log write to a closed
    stderr) is dropped, while the same signal sent by another process is forwarded;
  - before APP exists only SIGTERM, SIGINT, SIGHUP and SIGQUIT end pgboot; every
    other default-fatal signal (SIGALRM, SIGUSR1, SIGRTMIN+3, ...) is ignored.
"""

import os
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness.files import temp_dir  # noqa: E402
from harness.logs import events  # noqa: E402
from harness.proc import clean_env, pgboot_bin, quiet_cwd, run, spawn, wait_until  # noqa: E402
from harness.server import closed_url  # noqa: E402
from test_pid1 import APPS, PY, UNSHARE, Pid1Case, alive, ns_init_pid, read  # noqa: E402

RTMIN = signal.SIGRTMIN


def sig_name(signo):
    if RTMIN <= signo <= signal.SIGRTMAX:
        return "SIGRTMIN" if signo == RTMIN else "SIGRTMIN+%d" % (signo - RTMIN)
    return signal.Signals(signo).name


S = signal.Signals
# Every signal tini forwards (SIGTERM last: it ends the recorder).
FORWARDED = [S.SIGHUP, S.SIGINT, S.SIGQUIT, S.SIGUSR1, S.SIGUSR2, S.SIGPIPE, S.SIGALRM,
             S.SIGSTKFLT, S.SIGCONT, S.SIGTSTP, S.SIGURG, S.SIGXCPU, S.SIGXFSZ, S.SIGVTALRM,
             S.SIGPROF, S.SIGWINCH, S.SIGIO, S.SIGPWR] + list(range(RTMIN, signal.SIGRTMAX + 1))
# Read by pgboot but never passed on: reaping, the terminal stops, the faults.
NOT_FORWARDED = [S.SIGCHLD, S.SIGTTIN, S.SIGTTOU, S.SIGFPE, S.SIGILL, S.SIGSEGV, S.SIGBUS,
                 S.SIGABRT, S.SIGTRAP, S.SIGSYS]
# Default action "terminate" (or "core"), not one of the four that end pgboot.
DEFAULT_FATAL_IGNORED = [S.SIGALRM, S.SIGUSR1, S.SIGUSR2, S.SIGPIPE, S.SIGSTKFLT, S.SIGXCPU,
                         S.SIGXFSZ, S.SIGVTALRM, S.SIGPROF, S.SIGIO, S.SIGPWR,
                         RTMIN, RTMIN + 3, signal.SIGRTMAX]
TERMINATING = {S.SIGTERM: 143, S.SIGINT: 130, S.SIGHUP: 129, S.SIGQUIT: 131}


class SignalCase(Pid1Case):
    """start() runs pgboot as PID 1 (`pid1=True`) or as the test's child."""

    def start(self, args, pid1, env=None, **kw):
        """-> (Spawned, pid to signal) once pgboot reads its signals from the signalfd."""
        if pid1:
            return self.spawn_pid1(args, env=env, **kw)
        p = spawn(args, env=env or self.env(), test=self, **kw)
        wait_until(lambda: blocked(p.pid, S.SIGTERM), 10, "pgboot to block SIGTERM", 0.005)
        return p, p.pid

    def start_recorder(self, pid1, extra=(), **kw):
        d = temp_dir(self)
        p, pid = self.start(["--init"] + list(extra) + ["--", PY, os.path.join(APPS, "allsignals.py"),
                                                        d.path], pid1, **kw)
        wait_until(lambda: os.path.exists(d / "ready"), 20, "APP's signal mask")
        return d, p, pid


def kill_quietly(p):
    if p.poll() is None:
        p.kill()
        p.wait(10)


def blocked(pid, sig):
    text = read("/proc/%d/status" % pid) or ""
    for line in text.splitlines():
        if line.startswith("SigBlk:"):
            return bool(int(line.split()[1], 16) & (1 << (int(sig) - 1)))
    return False


def recorded(d):
    return (read(d / "signals") or "").split()


def both_modes(test_fn):
    """Runs test_fn(self, pid1) as PID 1 and as a subreaper, in subtests."""
    def run(self):
        for pid1 in (True, False):
            with self.subTest(pid1=pid1):
                test_fn(self, pid1)
    run.__name__ = test_fn.__name__
    run.__doc__ = test_fn.__doc__
    return run


class Forwarding(SignalCase):

    def send_each_and_check(self, pid1, extra=()):
        d, p, pid = self.start_recorder(pid1, extra)
        sent = []
        for sig in FORWARDED:
            os.kill(pid, sig)
            sent.append(sig_name(sig))
            wait_until(lambda: len(recorded(d)) >= len(sent), 10,
                       "%s at APP (got %s)" % (sig_name(sig), recorded(d)), 0.002)
        for sig in NOT_FORWARDED:
            os.kill(pid, sig)
        # SIGTERM last: once APP has it, every earlier forward has been delivered.
        os.kill(pid, signal.SIGTERM)
        cp = p.finish(timeout=20)
        self.assertExit(cp, 0)
        self.assertEqual(recorded(d), sent + ["SIGTERM"],
                         "each forwarded signal exactly once, in order; none of %s"
                         % [sig_name(s) for s in NOT_FORWARDED])
        return cp

    @both_modes
    def test_every_signal_tini_forwards_arrives_exactly_once(self, pid1):
        cp = self.send_each_and_check(pid1)
        ev = events(cp.stderr, "init.start")[0]
        self.assertEqual((ev["pid1"], ev["group"]), (str(pid1).lower(), "false"))
        forwarded = events(cp.stderr, "init.forwarded")
        # pgboot names signal 29 as glibc does (SIGPOLL), Python as SIGIO.
        self.assertEqual([e["signal"].replace("SIGPOLL", "SIGIO") for e in forwarded],
                         [sig_name(s) for s in FORWARDED] + ["SIGTERM"])
        self.assertEqual({e["pid"] for e in forwarded}, {ev["pid"]})

    @both_modes
    def test_with_init_group_every_signal_arrives_exactly_once(self, pid1):
        cp = self.send_each_and_check(pid1, ["--init-group"])
        self.assertEqual(events(cp.stderr, "init.start")[0]["group"], "true")
        self.assertTrue(all("pgid" in e for e in events(cp.stderr, "init.forwarded")), cp.stderr)

    @both_modes
    def test_sigpipe_of_pgboots_own_write_is_not_forwarded(self, pid1):
        # pgboot's stderr is a pipe nobody reads: every log line it writes (the
        # debug init.forwarded of each signal included) fails with EPIPE and
        # raises SIGPIPE, which the kernel reports as sent by pgboot itself.
        d = temp_dir(self)
        r, w = os.pipe()
        os.close(r)
        argv = [pgboot_bin(), "--init", "--", PY, os.path.join(APPS, "allsignals.py"), d.path]
        if pid1:
            argv = UNSHARE + argv
        p = subprocess.Popen(argv, env=clean_env(self.env()), cwd=quiet_cwd(),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=w)
        os.close(w)
        self.addCleanup(kill_quietly, p)
        pid = ns_init_pid(p.pid) if pid1 else p.pid
        wait_until(lambda: os.path.exists(d / "ready"), 20, "APP's signal mask")
        for sig in (S.SIGUSR1, S.SIGUSR2, S.SIGWINCH):
            os.kill(pid, sig)
            wait_until(lambda: recorded(d)[-1:] == [sig_name(sig)], 10, "%s at APP" % sig.name)
        # The same signal from another process is forwarded (also in the test above).
        os.kill(pid, signal.SIGPIPE)
        wait_until(lambda: len(recorded(d)) == 4, 10, "SIGPIPE from the test at APP")
        os.kill(pid, signal.SIGTERM)
        self.assertEqual(p.wait(20), 0)
        self.assertEqual(recorded(d), ["SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGPIPE", "SIGTERM"])

    @both_modes
    def test_sigalrm_sigpwr_and_sigrtmin_3_reach_the_app(self, pid1):
        d, p, pid = self.start_recorder(pid1)
        for sig in (S.SIGALRM, S.SIGPWR, RTMIN + 3):
            os.kill(pid, sig)
            wait_until(lambda: sig_name(sig) in recorded(d), 10, "%s at APP" % sig_name(sig))
        os.kill(pid, signal.SIGTERM)
        self.assertExit(p.finish(timeout=20), 0)
        self.assertEqual(recorded(d), ["SIGALRM", "SIGPWR", "SIGRTMIN+3", "SIGTERM"])


class InitGroup(SignalCase):
    """tini -g: a shell wrapper's child gets the signal too. dash (Debian's sh)
    catches SIGINT in `sh -c` and waits for its child: sent to sh alone, the
    SIGINT ends nothing."""

    def start_wrapped_sleep(self, pid1, extra):
        p, pid = self.start(["--init"] + extra + ["--init-grace", "30s", "--",
                                                  "sh", "-c", "sleep 100"], pid1)
        p.wait_for_line(r"init\.start")
        sleeper = wait_until(lambda: next((c for c in descendants(pid) if (
            read("/proc/%d/cmdline" % c) or "").startswith("sleep\0")), None), 10, "sleep to run")
        return p, pid, sleeper

    @both_modes
    def test_shell_wrapped_sleep_ends_on_sigint(self, pid1):
        p, pid, _ = self.start_wrapped_sleep(pid1, ["--init-group"])
        t0 = time.monotonic()
        os.kill(pid, signal.SIGINT)
        cp = p.finish(timeout=20)
        # sleep died of SIGINT, then sh re-raised it on itself (its exit is 128+2).
        self.assertExit(cp, 130)
        # Not the 30 s grace: nothing was left over.
        self.assertLess(p.exited_at - t0, 5, cp.stderr)
        self.assertEqual(events(cp.stderr, "init.leftovers"), [], cp.stderr)
        ev = events(cp.stderr, "init.forwarded")
        self.assertEqual([(e["signal"], e.get("pgid")) for e in ev],
                         [("SIGINT", events(cp.stderr, "init.start")[0]["pid"])])

    def test_init_group_without_init_is_a_usage_error_in_run_mode_only(self):
        for args in (["--init-group", "--", "true"], ["run", "--init-group", "--", "true"]):
            cp = run(args, env=self.env())
            self.assertExit(cp, 2)
            self.assertIn("--init-group", cp.stderr)
            self.assertIn("--init ", cp.stderr.replace("--init-group", ""))
        cp = run(["--", "true"], env=self.env(PGBOOT_INIT_GROUP="true"))
        self.assertExit(cp, 2)
        self.assertExit(run(["wait", "--init-group"], env=self.env()), 0)

    @both_modes
    def test_contrast_without_init_group_sigint_reaches_only_the_shell(self, pid1):
        p, pid, sleeper = self.start_wrapped_sleep(pid1, [])
        os.kill(pid, signal.SIGINT)
        p.wait_for_line(r"init\.forwarded .*signal=SIGINT")
        time.sleep(0.5)  # a negative: give a wrongly delivered SIGINT time to act
        self.assertTrue(alive(sleeper), "sleep got the SIGINT without --init-group")
        self.assertIsNone(p.poll())
        os.kill(pid, signal.SIGTERM)  # sh does not catch SIGTERM: it ends, sleep is a leftover
        cp = p.finish(timeout=20)
        self.assertExit(cp, 143)
        self.assertEqual([e["signal"] for e in events(cp.stderr, "init.leftovers")], ["SIGTERM"])


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in os.listdir("/proc/%d/task" % p) if os.path.isdir("/proc/%d" % p) else []:
            kids = (read("/proc/%d/task/%s/children" % (p, task)) or "").split()
            out += [int(k) for k in kids]
            todo += [int(k) for k in kids]
    return out


class BeforeApp(SignalCase):
    """While waiting for the database: APP does not exist yet."""

    def waiting(self, pid1):
        env = self.env(DATABASE_URL=closed_url(), PGBOOT_WAIT_TIMEOUT="60s")
        p, pid = self.start(["--init", "--", "sh", "-c", "exit 0"], pid1, env=env)
        p.wait_for_line(r"wait\.retry")
        return p, pid

    @both_modes
    def test_other_default_fatal_signals_do_not_end_pgboot(self, pid1):
        p, pid = self.waiting(pid1)
        for sig in DEFAULT_FATAL_IGNORED:
            os.kill(pid, sig)
        # pgboot read them all (nothing pending) and is still waiting.
        wait_until(lambda: not pending(pid), 10, "pgboot to consume the signals")
        n = len(events(p.err.text(), "wait.retry"))
        wait_until(lambda: len(events(p.err.text(), "wait.retry")) > n, 10, "another wait.retry")
        self.assertTrue(alive(pid), "pgboot ended on one of %s" % DEFAULT_FATAL_IGNORED)
        self.assertIsNone(p.poll())
        os.kill(pid, signal.SIGTERM)
        cp = p.finish(timeout=10)
        self.assertExit(cp, 143)
        self.assertEqual(events(cp.stderr, "init.start"), [])

    @both_modes
    def test_sigalrm_during_the_wait_does_not_end_pgboot(self, pid1):
        p, pid = self.waiting(pid1)
        os.kill(pid, signal.SIGALRM)
        n = len(events(p.err.text(), "wait.retry"))
        wait_until(lambda: len(events(p.err.text(), "wait.retry")) > n, 10, "another wait.retry")
        self.assertIsNone(p.poll(), "SIGALRM ended pgboot")
        os.kill(pid, signal.SIGINT)
        self.assertExit(p.finish(timeout=10), 130)

    @both_modes
    def test_the_four_terminating_signals_end_it_with_128_plus_n(self, pid1):
        for sig, code in TERMINATING.items():
            with self.subTest(signal=sig.name):
                p, pid = self.waiting(pid1)
                t0 = time.monotonic()
                os.kill(pid, sig)
                cp = p.finish(timeout=10)
                self.assertExit(cp, code)
                self.assertLess(p.exited_at - t0, 2, cp.stderr)


def pending(pid):
    """The signals pending for pid (process-wide and its main thread), as a mask."""
    text = read("/proc/%d/status" % pid) or ""
    mask = 0
    for line in text.splitlines():
        if line.startswith(("SigPnd:", "ShdPnd:")):
            mask |= int(line.split()[1], 16)
    return mask


if __name__ == "__main__":
    unittest.main()
