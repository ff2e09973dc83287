"""Property: cut the last segment anywhere; replay returns exactly the
entries whose records lie wholly before the cut (STYLE 8.4)."""
import os
import shutil

from hypothesis import HealthCheck, given, settings, strategies as st

from easyraft._core.types import Entry
from easyraft._core.walrec import frame_size
from easyraft.storage import wal as walmod
from easyraft.storage.wal import WAL

SEG = 8192


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(0, 900), min_size=1, max_size=40),
       batch=st.integers(1, 7), cut=st.floats(0, 1), zero_fill=st.booleans())
def test_wal_truncation_anywhere_in_tail_yields_prefix(tmp_path, sizes, batch, cut, zero_fill):
    d = str(tmp_path / "wal")
    shutil.rmtree(d, ignore_errors=True)      # tmp_path is shared by the examples
    # Non-zero payload bytes: zero-filling a record's zeros would change nothing.
    entries = [Entry(term=1, index=i + 1, data=bytes([i % 255 + 1]) * n)
               for i, n in enumerate(sizes)]
    w = WAL.create(d, b"m", segment_size=SEG)
    for lo in range(0, len(entries), batch):
        w.save(None, entries[lo:lo + batch], must_sync=True)
    w.close()
    tail = os.path.join(d, walmod.list_segments(d)[-1].name)
    recs = [r for r in walmod.dump(d) if r.file == tail]
    with open(tail, "rb") as f:
        size = len(f.read())
    last = recs[-1]
    sizers = {"entry": lambda v: 21 + len(v.data), "state": lambda v: 24,
              "snapshot": lambda v: 16, "metadata": len, "crc": lambda v: 4}
    last_len = sizers[last.type](last.value)
    end = last.offset + frame_size(last_len)
    # The segment's three header records (crc, metadata, snapshot marker or
    # hard state) were synced before it got its name: never torn.
    start = recs[3].offset if len(recs) > 3 else end
    offset = start + int(cut * (end - start))
    if zero_fill:
        # Preallocated space: what never reached the disk reads as zeros,
        # a whole sector at a time, as in a torn write.
        offset = max(start, offset // 512 * 512)
        with open(tail, "r+b") as f:
            f.seek(offset)
            f.write(bytes(size - offset))
    else:
        os.truncate(tail, offset)
    # Entries in earlier segments survive; in the tail, those whose record
    # ends at or before the cut, up to the first that does not. A record
    # ends at its frame end for a truncation, and at its last data byte for
    # a zero fill (its padding is zeros already).
    in_tail = {r.value.index: r.offset for r in recs if r.type == "entry"}
    want = []
    for e in entries:
        off = in_tail.get(e.index)
        rec_end = 11 + 21 + len(e.data) if zero_fill else frame_size(21 + len(e.data))
        if off is not None and off + rec_end > offset:
            break
        want.append(e)
    w2 = WAL.open(d, segment_size=SEG)
    try:
        _, _, got = w2.read_all()
    finally:
        w2.close()
    assert got == want
