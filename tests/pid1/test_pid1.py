#!/usr/bin/env python3
"""pgboot as PID 1: exec mode and --init mode, black-box.

Every PID-1 test runs `unshare --pid --fork --mount-proc pgboot ...`: unshare
forks, and its child is PID 1 of a new PID namespace (with its own /proc). The
tests signal that process through its host pid, found as unshare's child. A
few tests run pgboot without unshare to cover --init as a child subreaper.
pgboot waits for the database before it starts APP, so every run points
DATABASE_URL at the shared test server (pg.start fixture).

Nothing sleeps blindly: tests wait for a marker file written by APP, for a log
line, or for a process state in /proc (bounded polls of a few ms).
"""

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import unittest

from harness.server import closed_url, url
from harness.proc import clean_env, is_root, pgboot_bin, quiet_cwd, run, spawn, wait_until
from harness.files import temp_dir
from harness.logs import events
from harness.case import PgbootTestCase, skip_if_sanitized, skip_loudly

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.join(HERE, "apps")
PY = sys.executable
# --kill-child: when unshare dies (a test's cleanup kills it), PID 1 of the
# namespace gets SIGKILL and the whole namespace goes with it; nothing leaks.
UNSHARE = [shutil.which("unshare") or "unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


# ---- helpers ------------------------------------------------------------------------

def read(path):
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None


def proc_status(pid):
    """/proc/PID/status as a dict of strings, {} once the process is gone."""
    text = read("/proc/%d/status" % pid) or ""
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def sig_fields(status_text):
    """(SigBlk, SigIgn) as ints from the text of a /proc/PID/status."""
    fields = dict(line.split(":", 1) for line in status_text.splitlines() if ":" in line)
    return int(fields["SigBlk"].strip(), 16), int(fields["SigIgn"].strip(), 16)


def bit(sig):
    return 1 << (int(sig) - 1)


def same_file(a, b):
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def ns_init_pid(unshare_pid, timeout=10):
    """Host pid of the process unshare forked (PID 1 of the new namespace)."""
    def child():
        for task in os.listdir("/proc/%d/task" % unshare_pid):
            kids = (read("/proc/%d/task/%s/children" % (unshare_pid, task)) or "").split()
            if kids:
                return int(kids[0])
        return None
    return wait_until(child, timeout, "unshare's child", interval=0.005)


def wait_handling_signals(pid, binary, timeout=10):
    """Waits until `pid` runs `binary` and has SIGTERM blocked: from then on pgboot
    reads SIGTERM from its signalfd and no signal sent to it can be lost."""
    def ready():
        if not same_file("/proc/%d/exe" % pid, binary):
            return False
        blk = proc_status(pid).get("SigBlk")
        return blk is not None and int(blk, 16) & SIGTERM_BIT
    wait_until(ready, timeout, "pid %d to run %s with signals blocked" % (pid, binary),
               interval=0.005)


def namespace_processes(init_pid, with_argv=False):
    """[(host pid, state)] of every process in init_pid's PID namespace, or
    [(host pid, state, argv)] with_argv."""
    ns = os.readlink("/proc/%d/ns/pid" % init_pid)
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/ns/pid" % name) != ns:
                continue
            text = read("/proc/%s/stat" % name)
            argv = (read("/proc/%s/cmdline" % name) or "").split("\0")[:-1]
        except OSError:
            continue
        if text:
            state = text[text.rindex(")") + 2]
            out.append((int(name), state, argv) if with_argv else (int(name), state))
    return out


def alive(pid):
    """Whether `pid` names a live (not zombie) process."""
    text = read("/proc/%d/stat" % pid)
    return bool(text) and text[text.rindex(")") + 2] not in "ZX"


class Pid1Case(PgbootTestCase):
    """Runs pgboot as PID 1 (or not) against the shared server."""

    def setUp(self):
        if not is_root():
            skip_loudly(self, "needs root: unshare --pid, chroot, mknod")

    def env(self, **extra):
        e = {"DATABASE_URL": url("postgres"), "PGBOOT_LOG_LEVEL": "debug"}
        e.update(extra)
        return e

    def run_pid1(self, args, env=None, timeout=30, **kw):
        """`unshare ... pgboot ARGS` to completion -> CompletedProcess."""
        return run(UNSHARE[1:] + [pgboot_bin()] + list(args),
                   env=env or self.env(), timeout=timeout, binary=UNSHARE[0], **kw)

    def spawn_pid1(self, args, env=None, root=None, **kw):
        """Starts `unshare ... pgboot ARGS` (or /pgboot in chroot `root`) and returns
        (Spawned, host pid of pgboot) once pgboot handles signals."""
        if root:
            cmd = UNSHARE[1:] + [CHROOT, root, "/pgboot"] + list(args)
            binary = os.path.join(root, "pgboot")
        else:
            cmd = UNSHARE[1:] + [pgboot_bin()] + list(args)
            binary = pgboot_bin()
        p = spawn(cmd, env=env or self.env(), test=self, binary=UNSHARE[0], **kw)
        pid = ns_init_pid(p.pid)
        wait_handling_signals(pid, binary)
        return p, pid

    def assertEvents(self, cp, name, n=None):
        evs = events(cp.stderr, name)
        if n is not None and len(evs) != n:
            self.fail("expected %d %s events, got %d:\n%s" % (n, name, len(evs), cp.stderr))
        return evs


# ---- exit codes -------------------------------------------------------------------------

class ExitCodes(Pid1Case):
    CODES = (0, 1, 2, 127, 128, 254, 255)

    def test_exec_mode_returns_app_code(self):
        for code in self.CODES:
            with self.subTest(code=code):
                cp = self.run_pid1(["--", "sh", "-c", "exit %d" % code])
                self.assertExit(cp, code)
                self.assertEvents(cp, "exec", 1)

    def test_init_mode_returns_app_code(self):
        for code in self.CODES:
            with self.subTest(code=code):
                cp = self.run_pid1(["--init", "--", "sh", "-c", "exit %d" % code])
                self.assertExit(cp, code)
                start = self.assertEvents(cp, "init.start", 1)[0]
                self.assertEqual(start["pid"], "2")  # pgboot is 1, APP the first child
                self.assertEqual(start["pid1"], "true")
                self.assertEqual(self.assertEvents(cp, "init.child_exit", 1)[0]["code"], str(code))

    def test_init_mode_app_killed_by_signal_gives_128_plus_n(self):
        for sig, code in ((signal.SIGTERM, 143), (signal.SIGUSR1, 138), (signal.SIGKILL, 137)):
            with self.subTest(signal=sig.name):
                cp = self.run_pid1(["--init", "--", "sh", "-c", "kill -%s $$" % sig.name[3:]])
                self.assertExit(cp, code)
                ev = self.assertEvents(cp, "init.child_exit", 1)[0]
                self.assertEqual(ev["signal"], sig.name)

    def test_app_that_cannot_be_executed_gives_127_or_126_in_both_modes(self):
        d = temp_dir(self)
        not_exec = d.write("not-executable", "#!/bin/sh\nexit 0\n", mode=0o644)
        for mode in ([], ["--init"]):
            for app, code in (("/nonexistent/app", 127), ("no-such-app-on-path", 127),
                              (not_exec, 126)):
                with self.subTest(mode=mode, app=app):
                    cp = self.run_pid1(mode + ["--", app])
                    self.assertExit(cp, code)
                    self.assertIn("cannot execute", cp.stderr)
                    if mode:
                        self.assertEvents(cp, "init.start", 0)


# ---- forwarding ---------------------------------------------------------------------------

class Forwarding(Pid1Case):

    def start_recorder(self):
        d = temp_dir(self)
        p, pid = self.spawn_pid1(["--init", "--", PY, os.path.join(APPS, "sigrecorder.py"), d])
        wait_until(lambda: os.path.exists(d / "ready"), 10, "APP's handlers", interval=0.005)
        return d, p, pid

    def test_sigterm_to_pid1_reaches_app_which_exits_0(self):
        d, p, pid = self.start_recorder()
        os.kill(pid, signal.SIGTERM)
        cp = p.finish(timeout=10)
        self.assertExit(cp, 0)
        self.assertTrue(os.path.exists(d / "term"), "APP never saw SIGTERM:\n" + cp.stderr)
        self.assertEqual(read(d / "signals"), "SIGTERM\n")

    def test_every_forwarded_signal_arrives_in_order(self):
        d, p, pid = self.start_recorder()
        sent = []
        for sig in (signal.SIGUSR1, signal.SIGWINCH, signal.SIGUSR2, signal.SIGHUP,
                    signal.SIGINT, signal.SIGQUIT, signal.SIGCONT):
            os.kill(pid, sig)
            sent.append(sig.name)
            expected = "".join(s + "\n" for s in sent)
            wait_until(lambda: read(d / "signals") == expected, 5, "%s at APP" % sig.name,
                       interval=0.005)
        self.assertTrue(p.poll() is None, "pgboot ended on a forwarded signal")
        os.kill(pid, signal.SIGTERM)
        cp = p.finish(timeout=10)
        self.assertExit(cp, 0)
        self.assertEqual(read(d / "signals").split(), sent + ["SIGTERM"])

    def test_app_ignoring_sigterm_keeps_running(self):
        # pgboot forwards and lets APP decide, as tini does; it does not end APP itself.
        d = temp_dir(self)
        script = "trap '' TERM; echo > %s/ready; while [ ! -e %s/stop ]; do sleep 0.02; done; exit 6"
        p, pid = self.spawn_pid1(["--init", "--", "sh", "-c", script % (d, d)])
        wait_until(lambda: os.path.exists(d / "ready"), 10, "APP ready", interval=0.005)
        os.kill(pid, signal.SIGTERM)
        p.wait_for_line(r"init\.forwarded .*signal=SIGTERM")
        self.assertIsNone(p.poll())
        d.write("stop", "")
        self.assertExit(p.finish(timeout=10), 6)


# ---- reaping ------------------------------------------------------------------------------

class Reaping(Pid1Case):

    def test_hundred_orphans_exiting_at_once_leave_no_zombie(self):
        d = temp_dir(self)
        p, pid = self.spawn_pid1(["--init", "--", PY, os.path.join(APPS, "orphans.py"), "100", d])
        released = wait_until(lambda: read(d / "released"), 60, "orphans released", interval=0.005)
        orphans = set(released.split())
        self.assertEqual(len(orphans), 100)

        # Once the orphans have exited, only pgboot and APP may be left: a zombie
        # would still be listed (state Z) until pgboot reaps it.
        wait_until(lambda: len(namespace_processes(pid)) == 2, 5,
                   "only pgboot and APP in the namespace", interval=0.005)
        # Every orphan was reaped by pgboot (debug event init.reaped, pids as the namespace sees them).
        wait_until(lambda: orphans <= {
            e["pid"] for e in events(p.err.text(), "init.reaped")}, 5, "100 init.reaped events",
            interval=0.005)
        self.assertNotIn("Z", [s for _, s in namespace_processes(pid)])
        os.kill(pid, signal.SIGTERM)
        self.assertExit(p.finish(timeout=10), 143)  # APP has no SIGTERM handler


# ---- leftovers after APP --------------------------------------------------------------------

GRANDCHILD_IGNORING_TERM = (
    "sh -c 'trap \"\" TERM; echo $$ > {d}/pid; exec sleep 1000' & "
    "while [ ! -s {d}/pid ]; do sleep 0.01; done; exit 3")


class Leftovers(Pid1Case):

    def test_grandchild_ignoring_sigterm_is_killed_after_grace(self):
        d = temp_dir(self)
        cp = self.run_pid1(["--init", "--init-grace", "1s", "--", "sh", "-c",
                            GRANDCHILD_IGNORING_TERM.format(d=d)])
        self.assertExit(cp, 3)
        gc = read(d / "pid").strip()
        evs = events(cp.stderr)
        names = [e.get("event") for e in evs]
        exit_i = names.index("init.child_exit")
        term = next(e for e in evs[exit_i:] if e.get("event") == "init.leftovers")
        kill = [e for e in evs[exit_i:] if e.get("event") == "init.leftovers"][1]
        self.assertEqual((term["signal"], term["scope"]), ("SIGTERM", "all"))
        self.assertEqual(kill["signal"], "SIGKILL")
        reaped = [e for e in evs if e.get("event") == "init.reaped" and e["pid"] == gc]
        self.assertEqual([e["code"] for e in reaped], ["137"], cp.stderr)
        waited = ts(kill) - ts(evs[exit_i])
        self.assertGreaterEqual(waited, 0.99, cp.stderr)
        self.assertLess(waited, 1.5, cp.stderr)
        self.assertLess(cp.elapsed, 5)

    def test_leftovers_that_obey_sigterm_do_not_wait_for_the_grace(self):
        cp = self.run_pid1(["--init", "--init-grace", "20s", "--", "sh", "-c",
                            "sleep 1000 & sleep 1000 & exit 4"])
        self.assertExit(cp, 4)
        self.assertLess(cp.elapsed, 5, cp.stderr)
        self.assertEqual([e["signal"] for e in self.assertEvents(cp, "init.leftovers")],
                         ["SIGTERM"])

    def test_no_leftovers_no_signals(self):
        cp = self.run_pid1(["--init", "--", "sh", "-c", "exit 0"])
        self.assertExit(cp, 0)
        self.assertEvents(cp, "init.leftovers", 0)

    def test_sigterm_during_the_grace_period_kills_at_once(self):
        d = temp_dir(self)
        p, pid = self.spawn_pid1(["--init", "--init-grace", "60s", "--", "sh", "-c",
                                  GRANDCHILD_IGNORING_TERM.format(d=d)])
        p.wait_for_line(r"init\.leftovers .*signal=SIGTERM")
        os.kill(pid, signal.SIGTERM)
        cp = p.finish(timeout=10)
        self.assertExit(cp, 3)
        self.assertLess(cp.elapsed, 10)
        self.assertEqual(self.assertEvents(cp, "init.grace_cut", 1)[0]["signal"], "SIGTERM")

    def test_subreaper_signals_its_descendants_and_nobody_else(self):
        # Not PID 1: pgboot is a child subreaper; the leftovers are B (orphaned,
        # so pgboot's child) and C (B's child: found only by walking /proc).
        stranger = subprocess.Popen(["sleep", "1000"])
        self.addCleanup(stranger.wait)
        self.addCleanup(stranger.kill)
        d = temp_dir(self)
        self.addCleanup(kill_listed, d, "b", "c")  # should the test fail half-way
        p = spawn(["--init", "--init-grace", "1s", "--", PY,
                   os.path.join(APPS, "leftovers.py"), d, "4"], env=self.env(), test=self)
        cp = p.finish(timeout=20)
        self.assertExit(cp, 4)
        start = self.assertEvents(cp, "init.start", 1)[0]
        self.assertEqual(start["pid1"], "false")
        term, kill = self.assertEvents(cp, "init.leftovers", 2)
        self.assertEqual((term["signal"], term["scope"], term["count"]),
                         ("SIGTERM", "descendants", "2"))
        self.assertEqual(kill["signal"], "SIGKILL")
        self.assertEqual(read(d / "log"), "C got SIGTERM\n")
        b, c = int(read(d / "b")), int(read(d / "c"))
        reaped = {e["pid"]: e["code"] for e in self.assertEvents(cp, "init.reaped")}
        self.assertEqual(reaped.get(str(b)), "137", cp.stderr)  # B was pgboot's child
        self.assertFalse(alive(b) or alive(c), "B or C survived pgboot")
        self.assertIsNone(stranger.poll(), "pgboot signalled a process that is not its descendant")


def kill_listed(d, *names):
    """SIGKILLs the leftovers.py processes whose pids are in files d/NAME, if alive."""
    for name in names:
        pid = int(read(os.path.join(d, name)) or 0)
        if pid and alive(pid) and "leftovers.py" in (read("/proc/%d/cmdline" % pid) or ""):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def ts(event):
    """Seconds of an event's timestamp (same day assumed)."""
    m = re.match(r".*T(\d\d):(\d\d):(\d\d(?:\.\d+)?)Z$", event["ts"])
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


# ---- while waiting for the database ------------------------------------------------------

class WaitingPid1(Pid1Case):

    def test_sigterm_while_waiting_for_a_server_that_never_comes(self):
        env = self.env(DATABASE_URL=closed_url(), PGBOOT_WAIT_TIMEOUT="60s")
        p, pid = self.spawn_pid1(["--init", "--", "sh", "-c", "exit 0"], env=env)
        p.wait_for_line(r"wait\.retry")
        t0 = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        cp = p.finish(timeout=10)
        self.assertExit(cp, 143)
        self.assertLess(p.exited_at - t0, 1.0, cp.stderr)
        self.assertEvents(cp, "init.start", 0)

    def test_contrast_a_shell_script_as_pid1_ignores_sigterm(self):
        # The kernel drops a signal to a namespace's init that has no handler
        # for it: a plain script as PID 1 cannot be stopped with SIGTERM.
        p = spawn(UNSHARE[1:] + ["sh", "-c", "while :; do sleep 0.05; done"],
                  binary=UNSHARE[0], test=self)
        pid = ns_init_pid(p.pid)
        wait_until(lambda: same_file("/proc/%d/exe" % pid, "/bin/sh"), 10, "sh as PID 1",
                   interval=0.005)
        os.kill(pid, signal.SIGTERM)
        with self.assertRaises(subprocess.TimeoutExpired):
            p.wait(1.0)
        os.kill(pid, signal.SIGKILL)
        p.finish(timeout=10)


# ---- signal mask and dispositions --------------------------------------------------------

class SignalState(Pid1Case):

    @staticmethod
    def ignore(*sigs):
        def pre():
            for s in sigs:
                signal.signal(s, signal.SIG_IGN)
        return pre

    def test_inherited_ignore_stays_and_nothing_stays_blocked_in_both_modes(self):
        pre = self.ignore(signal.SIGINT)
        base = run(UNSHARE[1:] + ["cat", "/proc/self/status"], binary=UNSHARE[0],
                   preexec_fn=pre)
        base_blk, base_ign = sig_fields(base.stdout)
        self.assertEqual(base_blk, 0)
        self.assertTrue(base_ign & bit(signal.SIGINT))
        for mode in ([], ["--init"]):
            with self.subTest(mode=mode):
                cp = self.run_pid1(mode + ["--", "cat", "/proc/self/status"], preexec_fn=pre)
                self.assertExit(cp, 0)
                blk, ign = sig_fields(cp.stdout)
                self.assertEqual(blk, 0, "APP inherited a blocked mask: %#x" % blk)
                self.assertEqual(ign, base_ign, "APP's ignored set: %#x, expected %#x"
                                 % (ign, base_ign))
                self.assertFalse(ign & (bit(signal.SIGTTIN) | bit(signal.SIGTTOU)))

    def test_inherited_sigchld_ignore_does_not_lose_app_status(self):
        # With SIGCHLD ignored the kernel would reap APP by itself; pgboot resets it
        # for itself and APP still inherits the ignore. (unshare --fork needs SIGCHLD,
        # so this runs without a namespace.)
        pre = self.ignore(signal.SIGCHLD, signal.SIGINT)
        cp = run(["--init", "--", "sh", "-c", "exit 9"], env=self.env(), preexec_fn=pre)
        self.assertExit(cp, 9)
        cp = run(["--init", "--", "cat", "/proc/self/status"], env=self.env(),
                 preexec_fn=pre)
        self.assertExit(cp, 0)
        blk, ign = sig_fields(cp.stdout)
        self.assertEqual(blk, 0)
        self.assertEqual(ign & (bit(signal.SIGCHLD) | bit(signal.SIGINT)),
                         bit(signal.SIGCHLD) | bit(signal.SIGINT))

    def test_pgboot_ignores_ttin_ttou_and_blocks_what_it_handles(self):
        d = temp_dir(self)
        p, pid = self.spawn_pid1(["--init", "--", PY, os.path.join(APPS, "sigrecorder.py"), d])
        wait_until(lambda: os.path.exists(d / "ready"), 10, "APP ready", interval=0.005)
        st = proc_status(pid)
        ign, blk = int(st["SigIgn"], 16), int(st["SigBlk"], 16)
        self.assertEqual(ign & (bit(signal.SIGTTIN) | bit(signal.SIGTTOU)),
                         bit(signal.SIGTTIN) | bit(signal.SIGTTOU))
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                  signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT, signal.SIGCHLD):
            self.assertTrue(blk & bit(s), "%s not blocked in pgboot" % s.name)
        os.kill(pid, signal.SIGTERM)
        self.assertExit(p.finish(timeout=10), 0)


# ---- terminal --------------------------------------------------------------------------------

class Terminal(Pid1Case):
    """tini's isolate_child(): APP leads its own process group and, when there is a
    terminal, gets the foreground (pgboot only passes on a foreground it has)."""

    def run_on_pty(self, argv):
        master, slave = os.openpty()
        self.addCleanup(os.close, master)

        def controlling_tty():
            import fcntl
            import termios
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        p = subprocess.Popen(argv, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=clean_env(self.env()), cwd=quiet_cwd(),
                             start_new_session=True, preexec_fn=controlling_tty, text=True)
        os.close(slave)
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        return p.returncode, out, err

    def test_app_gets_own_group_and_the_foreground(self):
        d = temp_dir(self)
        rc, _, err = self.run_on_pty([pgboot_bin(), "--init", "--", PY,
                                      os.path.join(APPS, "ttyinfo.py"), d / "info"])
        self.assertEqual(rc, 0, err)
        info = json.loads(read(d / "info"))
        self.assertEqual(info["pgrp"], info["pid"])
        self.assertEqual(info["foreground"], info["pid"])

    def test_pgboot_in_the_background_does_not_steal_the_terminal(self):
        d = temp_dir(self)
        # A session leader (like a shell) starts pgboot in a background process group.
        wrapper = ("import os, sys\n"
                   "pid = os.fork()\n"
                   "if pid == 0:\n"
                   "    os.setpgid(0, 0)\n"
                   "    os.execv(sys.argv[1], sys.argv[1:])\n"
                   "print(os.getpgrp(), flush=True)\n"
                   "sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n")
        rc, out, err = self.run_on_pty([PY, "-c", wrapper, pgboot_bin(), "--init", "--",
                                        PY, os.path.join(APPS, "ttyinfo.py"), d / "info"])
        self.assertEqual(rc, 0, err)
        info = json.loads(read(d / "info"))
        self.assertEqual(info["pgrp"], info["pid"])
        self.assertEqual(info["foreground"], int(out.split()[0]))

    def test_without_terminal_app_still_leads_its_own_group(self):
        d = temp_dir(self)
        cp = self.run_pid1(["--init", "--", PY, os.path.join(APPS, "ttyinfo.py"), d / "info"])
        self.assertExit(cp, 0)
        info = json.loads(read(d / "info"))
        self.assertEqual((info["pid"], info["pgrp"], info["foreground"]), (2, 2, None))


# ---- a FROM-scratch-like root -----------------------------------------------------------------

class ScratchRoot(Pid1Case):
    """A root holding only /pgboot, /etc/hosts, a static busybox (/bin/busybox) and
    /dev/null, as a FROM scratch image gets them from its runtime. No /proc."""

    def make_root(self):
        if not os.path.exists("/bin/busybox"):
            skip_loudly(self, "no /bin/busybox (Debian package busybox-static)")
        root = temp_dir(self)
        shutil.copy2(pgboot_bin(), root / "pgboot")
        root.write("etc/hosts", "127.0.0.1 localhost\n::1 localhost\n")
        os.makedirs(root / "bin")
        shutil.copy2("/bin/busybox", root / "bin/busybox")
        # Every container runtime provides /dev/null (busybox sh opens it for `&`).
        os.makedirs(root / "dev")
        os.mknod(root / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        # localhost is resolved from /etc/hosts by the static binary itself.
        return root, self.env(DATABASE_URL=url("postgres", host="localhost"))

    def test_exit_codes_in_both_modes(self):
        root, env = self.make_root()
        for mode in ([], ["--init"]):
            with self.subTest(mode=mode):
                cp = run(UNSHARE[1:] + [CHROOT, root.path, "/pgboot"] + mode +
                         ["--", "/bin/busybox", "sh", "-c", "echo $$ > /ran; exit 7"],
                         env=env, binary=UNSHARE[0])
                self.assertExit(cp, 7)
                self.assertEqual(read(root / "ran").strip(), "2" if mode else "1")

    def test_init_forwards_and_cleans_up_without_proc(self):
        root, env = self.make_root()
        script = ("trap 'echo got > /got; exit 0' TERM; /bin/busybox sleep 1000 & "
                  "echo > /ready; wait")
        p, pid = self.spawn_pid1(["--init", "--", "/bin/busybox", "sh", "-c", script],
                                 env=env, root=root.path)
        wait_until(lambda: os.path.exists(root / "ready"), 10, "APP ready", interval=0.005)
        # Signal only once the leftover runs sleep: a forked ash child that has not
        # exec'd yet still holds the trap, and would swallow the SIGTERM.
        wait_until(lambda: any(
            argv[1:2] == ["sleep"] for _, _, argv in namespace_processes(pid, with_argv=True)), 10,
            "the leftover to run sleep", interval=0.005)
        os.kill(pid, signal.SIGTERM)
        cp = p.finish(timeout=10)
        self.assertExit(cp, 0)
        self.assertEqual(read(root / "got"), "got\n")
        self.assertEqual(self.assertEvents(cp, "init.leftovers", 1)[0]["signal"], "SIGTERM")


# ---- memory ------------------------------------------------------------------------------------

class Memory(Pid1Case):

    def test_rss_while_supervising(self):
        skip_if_sanitized(self, "peak RSS")
        d = temp_dir(self)
        p, pid = self.spawn_pid1(["--init", "--", PY, os.path.join(APPS, "sigrecorder.py"), d])
        wait_until(lambda: os.path.exists(d / "ready"), 10, "APP ready", interval=0.005)
        rss = int(subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], stdout=subprocess.PIPE,
                                 text=True, check=True).stdout)
        st = proc_status(pid)
        anon, file_ = int(st["RssAnon"].split()[0]), int(st["RssFile"].split()[0])
        sys.stderr.write("\npgboot --init as PID 1: ps rss=%d kB (RssAnon %d kB, RssFile %d kB)\n"
                         % (rss, anon, file_))
        # The private part is what --init really costs; the rest is the binary's
        # clean, shared, reclaimable code pages.
        self.assertLess(anon, 2048)
        self.assertLess(rss, 16384)
        os.kill(pid, signal.SIGTERM)
        self.assertExit(p.finish(timeout=10), 0)


if __name__ == "__main__":
    unittest.main()
