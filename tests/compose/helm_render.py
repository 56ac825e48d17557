#!/usr/bin/env python3
"""`helm template` for the charts in deploy/helm, without helm (Debian 12 has no package).

    python3 tests/compose/helm_render.py deploy/helm/app [--release NAME] [--revision N]
                                         [--set KEY.PATH=VALUE ...] > manifests.yaml

Renders every templates/*.yaml of a chart with the chart's values.yaml (and
--set overrides) into plain manifests on stdout, each document headed by
`# Source: CHART/templates/FILE`, as `helm template` does. Only the subset of
Helm's template language the charts use is understood:

  {{ .Values.a.b }}, {{ .Release.Name }}, {{ .Release.Revision }}, {{ .Chart.Name }} ...
  {{ .Path | quote }}

Anything else -- functions, pipelines other than `quote`, control flow
(if/range/with/define/include), whitespace trimming ({{- -}}), a path that is
not set or not a scalar -- is an error naming the action (exit 1), never
passed through: a chart that grows beyond this subset fails its tests loudly
until this script (or a real helm) can check it.
"""

import argparse
import json
import os
import re
import sys

import yaml

_ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)
_PATH = re.compile(r"(\.[A-Za-z_][A-Za-z0-9_]*)+")


def render(template, context):
    """Replaces each {{ .Path.to.value }} or {{ .Path | quote }} with its value;
    anything else raises ValueError."""
    def action(m):
        expr = m.group(1)
        if expr.startswith("-") or expr.endswith("-"):
            raise ValueError("whitespace trimming is not supported: {{%s}}" % expr)
        parts = [p.strip() for p in expr.split("|")]
        if not _PATH.fullmatch(parts[0]):
            raise ValueError("unsupported template action: {{%s}}" % expr)
        value = context
        for key in parts[0].split(".")[1:]:
            if not isinstance(value, dict) or key not in value:
                raise ValueError("{{%s}}: %s is not set" % (expr, parts[0]))
            value = value[key]
        if isinstance(value, (dict, list)) or value is None:
            raise ValueError("{{%s}} is not a scalar: %r" % (expr, value))
        text = str(value).lower() if isinstance(value, bool) else str(value)
        for f in parts[1:]:
            if f != "quote":
                raise ValueError("unsupported template function %r in {{%s}}" % (f, expr))
            text = json.dumps(text)
        return text
    return _ACTION.sub(action, template)


def _set(values, assignment):
    """Applies one --set KEY.PATH=VALUE (VALUE parsed as YAML: 1 is a number)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not _PATH.fullmatch("." + key):
        raise ValueError("--set wants KEY.PATH=VALUE, not %r" % assignment)
    *parents, last = key.split(".")
    node = values
    for k in parents:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ValueError("--set %s: %s is not a map" % (assignment, k))
    node[last] = yaml.safe_load(raw) if raw else ""


def chart_context(chart_dir, release="test-release", revision=1, sets=()):
    """The template context Helm would give: .Values, .Release and .Chart."""
    with open(os.path.join(chart_dir, "Chart.yaml")) as f:
        chart = yaml.safe_load(f)
    with open(os.path.join(chart_dir, "values.yaml")) as f:
        values = yaml.safe_load(f) or {}
    for s in sets:
        _set(values, s)
    return {"Values": values,
            "Release": {"Name": release, "Namespace": "default", "Service": "Helm",
                        "Revision": revision},
            "Chart": {"Name": chart["name"], "Version": chart["version"],
                      "AppVersion": chart["appVersion"]}}


def render_chart(chart_dir, release="test-release", revision=1, sets=()):
    """[(name, text)] for templates/*.yaml in name order; name is CHART/templates/FILE."""
    ctx = chart_context(chart_dir, release, revision, sets)
    tdir = os.path.join(chart_dir, "templates")
    out = []
    for name in sorted(os.listdir(tdir)):
        if name == "NOTES.txt":  # helm template does not render it either
            continue
        if not name.endswith((".yaml", ".yml")):
            raise ValueError("%s: only plain *.yaml templates are supported" % name)
        with open(os.path.join(tdir, name)) as f:
            text = f.read()
        try:
            out.append(("%s/templates/%s" % (ctx["Chart"]["Name"], name), render(text, ctx)))
        except ValueError as e:
            raise ValueError("%s: %s" % (os.path.join(tdir, name), e)) from None
    return out


def render_objects(chart_dir, release="test-release", revision=1, sets=()):
    """[(name, object)] of every document the chart renders to."""
    return [(name, d) for name, text in render_chart(chart_dir, release, revision, sets)
            for d in yaml.safe_load_all(text) if d]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("chart")
    ap.add_argument("--release", default="test-release")
    ap.add_argument("--revision", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    a = ap.parse_args(argv[1:])
    try:
        docs = render_chart(a.chart, a.release, a.revision, a.sets)
    except (ValueError, OSError, yaml.YAMLError) as e:
        print("helm_render: %s" % e, file=sys.stderr)
        return 1
    for name, text in docs:
        sys.stdout.write("---\n# Source: %s\n%s%s" % (name, text, "" if text.endswith("\n") else "\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
