#!/usr/bin/env python3
"""The integration docs quote the tested files verbatim, and nothing untested.

docs/integrations/*.md, docs/troubleshooting.md, docs/operations.md and
docs/pooler.md:
  - a fenced block right after `<!-- snippet: PATH -->` must appear verbatim
    in PATH (a repository file that a suite runs or checks);
  - every yaml or dockerfile block carries such a marker, or says openly
    `<!-- illustration: not a tested file -->`;
  - every example file is quoted somewhere, every integration page quotes one;
  - relative links (and their #anchors) resolve;
  - the troubleshooting page has a section for every exit code the README
    lists.

    python3 tests/compose/test_docs.py -v
"""

import glob
import os
import re
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("PGBOOT_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
DOCS = os.path.join(SOURCE_DIR, "docs")
PAGES = sorted(glob.glob(os.path.join(DOCS, "integrations", "*.md"))) + [
    os.path.join(DOCS, "troubleshooting.md"), os.path.join(DOCS, "operations.md"),
    os.path.join(DOCS, "pooler.md")]
INTEGRATIONS = ("dockerfile", "compose", "kubernetes", "helm", "ci")
QUOTED_FILES = ("docker-compose.yml", "docker-compose.dev.yml", "Dockerfile.migration",
                "examples/app/Dockerfile", "deploy/kubernetes/init-container.yaml",
                "deploy/kubernetes/job.yaml", "deploy/kubernetes/secret.yaml",
                "deploy/helm/app/templates/migrate-job.yaml", "deploy/helm/app/values.yaml",
                "deploy/ci/github-actions.yml", "docker-compose.gate.yml",
                "deploy/kubernetes/gate.yaml", "deploy/helm/app-gated/templates/migrate-job.yaml",
                "deploy/helm/app-gated/templates/deployment.yaml", "docker-compose.rollback.yml",
                "deploy/kubernetes/rollback-job.yaml", "deploy/compose/docker-compose.pooler.yml",
                "deploy/kubernetes/pooler.yaml")

SNIPPET = re.compile(r"^<!-- snippet: (\S+) -->$")
ILLUSTRATION = "<!-- illustration: not a tested file -->"
FENCE = re.compile(r"^```(\S*)$")


def blocks(path):
    """[(line number, language, marker line or "", body)] of the fenced blocks."""
    with open(path) as f:
        lines = f.read().split("\n")
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        j = i + 1
        while j < len(lines) and lines[j] != "```":
            j += 1
        if j == len(lines):
            raise AssertionError("%s:%d: unterminated code block" % (path, start + 1))
        marker = lines[start - 1] if start > 0 and lines[start - 1].startswith("<!--") else ""
        out.append((start + 1, lang, marker, "\n".join(lines[start + 1:j]) + "\n"))
        i = j + 1
    return out


def slug(heading):
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(path):
    with open(path) as f:
        return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", f.read(), re.M)}


class DocsTest(unittest.TestCase):
    maxDiff = None

    def test_snippets_appear_verbatim_in_their_files(self):
        count = 0
        for page in PAGES:
            for line, lang, marker, body in blocks(page):
                m = SNIPPET.match(marker)
                if not m:
                    continue
                count += 1
                where = "%s:%d" % (os.path.relpath(page, SOURCE_DIR), line)
                with self.subTest(where):
                    path = os.path.join(SOURCE_DIR, m.group(1))
                    self.assertTrue(os.path.isfile(path), "%s quotes a missing file %s" % (where, path))
                    with open(path) as f:
                        self.assertTrue(body in f.read(), "%s is not verbatim in %s:\n%s"
                                        % (where, m.group(1), body))
        self.assertGreaterEqual(count, len(QUOTED_FILES))

    def test_no_untested_yaml_or_dockerfile(self):
        for page in PAGES:
            for line, lang, marker, _ in blocks(page):
                if lang.lower() in ("yaml", "yml", "dockerfile"):
                    self.assertTrue(SNIPPET.match(marker) or marker == ILLUSTRATION,
                                    "%s:%d: a %s block without a snippet marker"
                                    % (os.path.relpath(page, SOURCE_DIR), line, lang))

    def test_every_example_file_is_quoted_and_every_page_quotes_one(self):
        quoted = {}
        for page in PAGES:
            for _, _, marker, _ in blocks(page):
                m = SNIPPET.match(marker)
                if m:
                    quoted.setdefault(os.path.basename(page)[:-3], set()).add(m.group(1))
        everything = set().union(*quoted.values())
        for f in QUOTED_FILES:
            self.assertIn(f, everything, "no page quotes %s" % f)
        for name in INTEGRATIONS:
            self.assertTrue(quoted.get(name), "docs/integrations/%s.md quotes no tested file" % name)

    def test_relative_links_resolve(self):
        for page in PAGES:
            with open(page) as f:
                text = f.read()
            for target in re.findall(r"\]\(([^)\s]+)\)", text):
                if re.match(r"^[a-z]+:", target):
                    continue
                path, _, anchor = target.partition("#")
                full = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
                with self.subTest(page=os.path.relpath(page, SOURCE_DIR), link=target):
                    self.assertTrue(os.path.exists(full), full)
                    if anchor:
                        self.assertIn(anchor, anchors(full))

    def test_troubleshooting_covers_every_exit_code(self):
        with open(os.path.join(SOURCE_DIR, "README.md")) as f:
            codes = re.findall(r"^\| (\d+(?:/\d+)?|128\+N) \|", f.read(), re.M)
        self.assertIn("5", codes)
        with open(os.path.join(DOCS, "troubleshooting.md")) as f:
            headings = re.findall(r"^## Exit (\S+(?: / \S+)?):", f.read(), re.M)
        for code in codes:
            self.assertIn(code.replace("/", " / "), headings)


if __name__ == "__main__":
    unittest.main()
