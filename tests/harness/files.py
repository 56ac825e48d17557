"""Temporary directories and migration files, removed by the test's cleanup."""

import os
import shutil
import tempfile


class TempDir(os.PathLike):
    """A temporary directory: str()/os.fspath() give its path; removed by close(),
    at the end of a `with`, or by the test's cleanup."""

    def __init__(self, prefix="pgboot-test-"):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def __fspath__(self):
        return self.path

    def __str__(self):
        return self.path

    def __truediv__(self, name):
        return os.path.join(self.path, name)

    def write(self, name, content, mode=None):
        """Writes a file (str as UTF-8, bytes as is) and returns its path."""
        path = os.path.join(self.path, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content.encode("utf-8") if isinstance(content, str) else content)
        if mode is not None:
            os.chmod(path, mode)
        return path

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def temp_dir(test=None, prefix="pgboot-test-"):
    """A TempDir, removed by test.addCleanup when a TestCase is given."""
    d = TempDir(prefix)
    if test is not None:
        test.addCleanup(d.close)
    return d



def temp_migrations(test, files):
    """A TempDir holding migration files: {"1_init.sql": "-- migrate:up\\n...", ...}
    (str written as UTF-8, bytes verbatim), removed by test.addCleanup (test=None:
    use it as `with temp_migrations(None, {...}) as d:`)."""
    d = temp_dir(test, prefix="pgboot-migrations-")
    for name, content in files.items():
        d.write(name, content)
    return d


def up(sql, opts=""):
    """A native migration file with only an up section: `-- migrate:up[ OPTS]` + sql."""
    return "-- migrate:up%s\n%s" % ((" " + opts) if opts else "", sql)
