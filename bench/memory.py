#!/usr/bin/env python3
"""Peak RSS of pgboot for one single-statement migration of 1, 50 and 200 MB, for
validate, status, migrate --dry-run and migrate, beside the bound pgboot promises
(docs/reference.md, "Inputs pgboot refuses": the files' total size plus the largest
one plus 16 MB). Starts its own PostgreSQL (harness.server.new_cluster).

    PYTHONPATH=tests python3 bench/memory.py --pgboot build-release/pgboot
        [--sizes 1,50,200] [--out bench/results/memory.md]
"""
import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness.memory import MB, peak_rss, write_single_statement  # noqa: E402
from harness.server import new_cluster  # noqa: E402

COMMANDS = [("validate", ["validate"]), ("status", ["status"]),
            ("migrate --dry-run", ["migrate", "--dry-run"]), ("migrate", ["migrate"])]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pgboot", required=True)
    ap.add_argument("--sizes", default="1,50,200", help="file sizes in MB")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "memory.md"))
    args = ap.parse_args()
    cluster = new_cluster(None)
    work = tempfile.mkdtemp(prefix="pgboot-bench-mem-")
    rows = []
    try:
        cluster.start()
        for i, size in enumerate(int(s) for s in args.sizes.split(",")):
            mig = os.path.join(work, "m%d" % size)
            os.makedirs(mig)
            path = os.path.join(mig, "1_big.sql")
            write_single_statement(path, size * MB)
            file_bytes = os.path.getsize(path)
            bound = 2 * file_bytes + 16 * MB
            db = "mem%d" % i
            cluster.admin_sql("CREATE DATABASE %s" % db)
            base = ["--database-url", cluster.url(db), "--migrations-dir", mig,
                    "--wait-timeout", "60s"]
            for name, cmd in COMMANDS:
                code, peak, err = peak_rss(cmd + base, binary=args.pgboot)
                if code != 0:
                    sys.exit("%s on %d MB failed (exit %d): %s" % (name, size, code, err[-500:]))
                rows.append((size, name, peak, bound))
                print("%4d MB  %-18s peak %7.1f MB  bound %7.1f MB  %s" % (
                    size, name, peak / MB, bound / MB, "ok" if peak < bound else "OVER"),
                    flush=True)
            shutil.rmtree(mig)
    finally:
        cluster.destroy()
        shutil.rmtree(work, True)
    with open(args.out, "w") as f:
        f.write("# Peak RSS by migration size\n\n"
                "`bench/memory.py`: one single-statement migration, peak RSS (VmHWM and "
                "ru_maxrss) of each command against a fresh database, beside the bound "
                "(file size x 2 + 16 MB).\n\n"
                "| file | command | peak RSS | bound | within |\n|---|---|---|---|---|\n")
        for size, name, peak, bound in rows:
            f.write("| %d MB | `%s` | %.1f MB | %.1f MB | %s |\n" % (
                size, name, peak / MB, bound / MB, "yes" if peak < bound else "**no**"))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
