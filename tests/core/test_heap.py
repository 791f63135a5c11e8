"""core/heap.py: what exists at the end of start is left out of later full collections; later garbage is not."""
from __future__ import annotations

import subprocess
import sys

from tests.paths import ROOT

PROBE = """
import gc
from core.heap import freeze_startup_heap

class Node:
    pass

kept = [Node() for _ in range(1000)]           # start-up state: lives as long as the process
cycle = Node(); cycle.me = cycle; del cycle      # start-up garbage: collected before the freeze, never frozen
frozen = freeze_startup_heap()
walked = {id(o) for o in gc.get_objects()}       # what later collections walk (the permanent generation is not)
later = Node(); later.me = later                 # a cycle made after start
alive = len([o for o in gc.get_objects() if type(o) is Node])
del later
gc.collect()
left = len([o for o in gc.get_objects() if type(o) is Node])
print(frozen, sum(id(n) in walked for n in kept), alive, left, gc.isenabled())
"""


def test_start_up_objects_are_frozen_and_later_cycles_still_collected():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=True).stdout.split()
    frozen, kept_walked, alive, left, enabled = int(out[0]), int(out[1]), int(out[2]), int(out[3]), out[4]
    assert frozen >= 1000          # the start-up objects (and the interpreter's own) went to the permanent generation
    assert kept_walked == 0        # a full collection no longer walks them
    assert alive == 1 and left == 0  # a cycle made after start is tracked and collected as before
    assert enabled == "True"
