"""Memory the in-memory log spends per entry beyond the entry's payload.

Run: python benchmarks/memory_per_entry.py [N]

The payload bytes objects are created before measuring, so what is counted
is only the log's own bookkeeping: the term and type arrays and the list
slot that references the payload. For comparison the same entries are kept
as a list of Entry objects (what a naive port would hold) and as a list of
(term, index, type, data) tuples.
"""
import sys
import tracemalloc

from easyraft.core import Entry, MemoryStorage


def measure(n: int) -> dict[str, float]:
    payloads = [b"%015d" % i for i in range(n)]   # distinct 15-byte payloads
    out = {}

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    storage = MemoryStorage()
    chunk = 10_000
    for lo in range(0, n, chunk):
        storage.append([Entry(1, i + 1, 0, payloads[i]) for i in range(lo, min(n, lo + chunk))])
    out["MemoryStorage"] = (tracemalloc.get_traced_memory()[0] - base) / n
    del storage

    base = tracemalloc.get_traced_memory()[0]
    entries = [Entry(1, i + 1, 0, payloads[i]) for i in range(n)]
    out["list[Entry]"] = (tracemalloc.get_traced_memory()[0] - base) / n
    del entries

    base = tracemalloc.get_traced_memory()[0]
    tuples = [(1, i + 1, 0, payloads[i]) for i in range(n)]
    out["list[tuple]"] = (tracemalloc.get_traced_memory()[0] - base) / n
    del tuples
    tracemalloc.stop()
    return out


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    for name, per_entry in measure(n).items():
        print(f"{name:15s} {per_entry:6.1f} bytes/entry beyond the payload object  (n={n})")
