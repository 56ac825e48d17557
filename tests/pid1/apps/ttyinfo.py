"""APP for tests/pid1: reports its process group and the terminal's foreground group.

    ttyinfo.py OUT

Writes {"pid": ..., "pgrp": ..., "foreground": ... or null} as JSON to OUT;
foreground is tcgetpgrp(stdin), null when stdin is not a terminal.
"""

import json
import os
import sys

try:
    fg = os.tcgetpgrp(0)
except OSError:
    fg = None
with open(sys.argv[1], "w") as f:
    json.dump({"pid": os.getpid(), "pgrp": os.getpgrp(), "foreground": fg}, f)
