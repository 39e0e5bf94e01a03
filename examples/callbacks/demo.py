"""Run the callbacks example (build it first: ./build.sh builds and runs this)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import cosmoext._hook  # noqa: E402

cosmoext._hook.install()

import callbacks  # noqa: E402  (callbacks.cosmoext, found by the hook)

import cosmoext._runtime as rt  # noqa: E402

print("loaded", callbacks.__file__)

# 1. C qsort, Python comparator (closure made in C with cosmoext_closure_new)
words = ["pear", "Fig", "apple", "kiwi", "Banana"]
print(callbacks.sort(words, lambda a, b: (a.lower() > b.lower()) - (a.lower() < b.lower())))


# ... and a comparator closure made in Python: "i(pp)" receives two int *
def by_last_digit(pa: int, pb: int) -> int:
    a, b = callbacks.peek_int(pa), callbacks.peek_int(pb)
    return (a % 10 - b % 10) or (a - b)


with rt.closure(by_last_digit, "i(pp)") as cmp:
    print(callbacks.sort_ints([31, 12, 5, 44, 20, 13], cmp.address))

# 2. a C event loop calling many Python callbacks
log: list[tuple[int, int]] = []
timers = [(functools.partial(lambda i, tick: log.append((i, tick)), i), 1 + i % 5)
          for i in range(200)]
print("fired", callbacks.run_loop(timers, 10), "callbacks;", len(log), "logged")

# ... driven by closures made in Python (the loop runs without the GIL)
closures = [rt.closure(lambda tick, i=i: log.append((i, tick)), "v(l)") for i in range(50)]
print("fired", callbacks.run_loop_addresses([(c.address, 2) for c in closures], 10))
for c in closures:
    c.free()
print("pool:", rt.closure_info())
