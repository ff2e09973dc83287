"""Writer process for test_wal_crash: appends until killed, acking synced saves.

Usage: crash_writer.py DIR SEED SEGMENT_SIZE

Each line on stdout is the last index of a save(must_sync=True) that has
returned; it is written only after save() returns, so every acked index
must survive a SIGKILL at any moment.
"""
import hashlib
import random
import sys

from easyraft._core.types import Entry, HardState
from easyraft.storage.wal import WAL


def payload(index: int) -> bytes:
    h = hashlib.blake2b(index.to_bytes(8, "little"), digest_size=16).digest()
    return h * (1 + h[0] % 100)          # 16..1600 bytes, derived from the index


def main() -> None:
    dirpath, seed, seg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    if WAL.exists(dirpath):
        w = WAL.open(dirpath, segment_size=seg)
        _, hs, ents = w.read_all()
        last, term = (ents[-1].index if ents else 0), hs.term + 1
    else:
        w = WAL.create(dirpath, b"crash-test", segment_size=seg)
        last, term = 0, 1
    out = sys.stdout
    while True:
        n = rng.randint(1, 20)
        batch = [Entry(term=term, index=i, data=payload(i)) for i in range(last + 1, last + n + 1)]
        last += n
        sync = rng.random() < 0.8
        w.save(HardState(term=term, vote=1, commit=last), batch, must_sync=sync)
        if sync:
            out.write(f"{last}\n")
            out.flush()


if __name__ == "__main__":
    main()
