"""CRC-32C of 1 MiB: SSE4.2 path and table path vs crcmod (issue 3: >= 10x crcmod)."""
import os

import _storage_report as rep
import crcmod.predefined
import pytest

from easyraft._core import crc32c as mod

GROUP = "crc32c 1 MiB"
DATA = os.urandom(1 << 20)
crcmod_fn = crcmod.predefined.mkCrcFun("crc-32c")


@pytest.fixture(scope="module", autouse=True)
def _table(request):
    yield
    rep.print_table(request.config)


def test_bench_crc32c_baseline_crcmod(benchmark):
    benchmark(crcmod_fn, DATA)
    rep.record(GROUP, "baseline_crcmod", benchmark, len(DATA) / 1e9, "GB")


def test_bench_crc32c_table(benchmark):
    benchmark(mod.crc32c_table, DATA)
    rep.record(GROUP, "easyraft table (fallback)", benchmark, len(DATA) / 1e9, "GB")


@pytest.mark.skipif(not mod.HAVE_HARDWARE, reason="no SSE4.2 crc32 here")
def test_bench_crc32c_hardware(benchmark):
    benchmark(mod.crc32c_hardware, DATA)
    rep.record(GROUP, "easyraft sse4.2 x3", benchmark, len(DATA) / 1e9, "GB")
