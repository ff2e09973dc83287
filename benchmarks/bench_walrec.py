"""WAL record framing: encode/decode 64 entries of 512 B (issue 3: encode within
2x of a plain b"".join of the payloads, measured in the same run)."""
import statistics
import time

import _storage_report as rep
import pytest

from easyraft._core import _ref
from easyraft._core.types import Entry
from easyraft._core.walrec import Decoder, Encoder, frame_size

ENC, DEC = "walrec encode 64 x 512 B", "walrec decode 64 x 512 B"
ENTRIES = [Entry(term=3, index=1000 + i, data=bytes([i]) * 512) for i in range(64)]
PAYLOADS = [e.data for e in ENTRIES]
MB = sum(map(len, PAYLOADS)) / 1e6


@pytest.fixture(scope="module", autouse=True)
def _table(request):
    yield
    rep.print_table(request.config)


def test_bench_walrec_baseline_join(benchmark):
    benchmark(b"".join, PAYLOADS)
    rep.record(ENC, "baseline b''.join(payloads)", benchmark, MB, "MB")


def test_bench_walrec_encode(benchmark):
    enc = Encoder()
    benchmark(enc.encode, ENTRIES)
    rep.record(ENC, "walrec.Encoder.encode", benchmark, MB, "MB")


class _Median:
    def __init__(self, sec):
        self.stats = type("S", (), {"stats": type("T", (), {"median": sec})()})()
        self.extra_info = {}


def test_bench_walrec_encode_vs_join_alternating(benchmark):
    """The goal's ratio, robust to a shared machine: each round times 200
    joins then 200 encodes back to back; the figure is the median over
    rounds of each (the pytest-benchmark entry is the pair)."""
    enc = Encoder()
    t_join, t_enc = [], []
    join = b"".join

    def pair():
        t0 = time.perf_counter()
        for _ in range(200):
            join(PAYLOADS)
        t1 = time.perf_counter()
        for _ in range(200):
            enc.encode(ENTRIES)
        t2 = time.perf_counter()
        t_join.append((t1 - t0) / 200)
        t_enc.append((t2 - t1) / 200)
    benchmark.pedantic(pair, rounds=300, iterations=1, warmup_rounds=10)
    group = ENC + " (alternating rounds)"
    rep.record(group, "baseline b''.join(payloads)", _Median(statistics.median(t_join)), MB, "MB")
    rep.record(group, "walrec.Encoder.encode", _Median(statistics.median(t_enc)), MB, "MB")
    benchmark.extra_info["ratio_median"] = statistics.median(
        e / j for e, j in zip(t_enc, t_join, strict=True))


def test_bench_walrec_encode_ref(benchmark):
    benchmark(_ref.encode_batch, ENTRIES[:8])
    rep.record(ENC, "_ref.encode_batch (8 entries)", benchmark, MB / 8, "MB")


def test_bench_walrec_decode_baseline_copy(benchmark):
    buf = Encoder().encode(ENTRIES)
    # Baseline: slicing the payloads out of the buffer, the least any decoder does.
    fs = frame_size(21 + 512)
    offs = [(32 + i * fs, 32 + i * fs + 512) for i in range(64)]
    assert [buf[a:b] for a, b in offs] == PAYLOADS
    benchmark(lambda: [buf[a:b] for a, b in offs])
    rep.record(DEC, "baseline slice payloads", benchmark, MB, "MB")


def test_bench_walrec_decode(benchmark):
    buf = Encoder().encode(ENTRIES)

    def run():
        out = []
        Decoder(buf, 0).decode(out, 999)     # the log continues after index 999
        return out
    assert run() == ENTRIES
    benchmark(run)
    rep.record(DEC, "walrec.Decoder.decode", benchmark, MB, "MB")
