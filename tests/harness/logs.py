"""pgboot's log lines (text or JSON) as dicts: ts, level, event and the fields."""

import json
import re


def parse_json_lines(text):
    """Every non-empty line must be one JSON object; returns them in order.
    AssertionError names the first line that is not."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise AssertionError("line %d is not JSON (%s): %r" % (n, e, line)) from None
        if not isinstance(obj, dict):
            raise AssertionError("line %d is JSON but not an object: %r" % (n, line))
        out.append(obj)
    return out



_TEXT_LINE = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\dT[\d:.]+Z)\s+(?P<level>[A-Z]+)\s+(?P<event>\S+)(?P<rest>.*)$")
_TEXT_FIELD = re.compile(r'\s+([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_text_lines(text):
    """Text log lines (`TS LEVEL event k=v k="quoted"`) -> dicts shaped like the JSON
    lines (ts, level in lower case, event, fields as strings). Lines that are not log
    lines are returned as {"raw": line}."""
    out = []
    for line in text.splitlines():
        m = _TEXT_LINE.match(line)
        if not m:
            if line.strip():
                out.append({"raw": line})
            continue
        d = {"ts": m.group("ts"), "level": m.group("level").lower(), "event": m.group("event")}
        for k, v in _TEXT_FIELD.findall(m.group("rest")):
            if v.startswith('"'):
                try:
                    v = json.loads(v)
                except ValueError:
                    pass
            d[k] = v
        out.append(d)
    return out


def events(text, name=None):
    """Log events from stderr in either format; only those called `name` if given."""
    first = next((l for l in text.splitlines() if l.strip()), "")
    evs = parse_json_lines(text) if first.lstrip().startswith("{") else parse_text_lines(text)
    return [e for e in evs if name is None or e.get("event") == name]

