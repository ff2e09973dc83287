"""CRC-32C kernels against crcmod's crc-32c and the _ref oracle."""
import crcmod.predefined
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from easyraft._core import _ref, crc32c as mod

crcmod_crc32c = crcmod.predefined.mkCrcFun("crc-32c")

PATHS = (["table"] + (["hardware"] if mod.HAVE_HARDWARE else [])
         + (["clmul"] if mod.HAVE_CLMUL else []))


@pytest.fixture(params=PATHS)
def path(request):
    # crc32c() dispatches through the selected path; restore auto afterwards.
    mod.use_implementation(request.param)
    yield request.param
    mod.use_implementation("auto")


def test_crc32c_known_vector():
    # RFC 3720 (iSCSI) B.4: 32 bytes of zeros -> 0x8a9136aa; "123456789" -> 0xe3069283.
    assert mod.crc32c(bytes(32)) == 0x8A9136AA
    assert mod.crc32c(b"123456789") == 0xE3069283
    assert mod.crc32c_table(b"123456789") == 0xE3069283


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 255, 767, 768, 769, 24575, 24576, 24577, 100_003,
                               1 << 20])
def test_crc32c_sizes_match_crcmod(path, n):
    data = bytes((i * 131 + 7) & 0xFF for i in range(n))
    assert mod.crc32c(data) == crcmod_crc32c(data)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=70_000), split=st.integers(min_value=0), offset=st.integers(0, 7))
def test_crc32c_random_buffers_match_crcmod_on_both_paths(data, split, offset):
    want = crcmod_crc32c(data)
    assert mod.crc32c_table(data) == want
    if mod.HAVE_HARDWARE:
        assert mod.crc32c_hardware(data) == want
    # Continuation from a previous CRC, at any split point and misalignment.
    split %= len(data) + 1
    assert mod.crc32c(data[split:], mod.crc32c(data[:split])) == want
    view = memoryview(b"\0" * offset + data)[offset:]
    assert mod.crc32c(view) == want


# The fixture only selects the path for the whole test; examples share it.
@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=st.binary(max_size=3000), b=st.binary(max_size=3000), c=st.binary(max_size=3000))
def test_crc32c_x3_kernels_match_single(path, a, b, c):
    want = (crcmod_crc32c(a), crcmod_crc32c(b), crcmod_crc32c(c))
    assert mod.crc32c_x3(a, b, c) == want
    assert mod.crc32c_copy_x3(a, b, c) == ((a, b, c), want)


def test_crc32c_ref_oracle_matches():
    data = bytes(range(256)) * 3
    assert _ref.crc32c(data) == crcmod_crc32c(data) == mod.crc32c(data)


def test_crc32c_use_implementation_selects_path():
    try:
        assert mod.use_implementation("table") == "table"
        assert mod.implementation() == "table"
        assert mod.use_implementation("auto") == ("clmul" if mod.HAVE_CLMUL else
                                                  "hardware" if mod.HAVE_HARDWARE else "table")
        assert mod.implementation() == mod.use_implementation("auto")
        if mod.HAVE_HARDWARE:
            assert mod.use_implementation("hardware") == mod.implementation() == "hardware"
        if not mod.HAVE_CLMUL:
            with pytest.raises(RuntimeError):
                mod.use_implementation("clmul")
        with pytest.raises(ValueError):
            mod.use_implementation("nope")
    finally:
        mod.use_implementation("auto")


def test_crc32c_rejects_non_buffer():
    with pytest.raises(TypeError):
        mod.crc32c("text")


def test_crc32c_and_walrec_are_compiled():
    from easyraft._core import walrec
    for m in (mod, walrec):
        assert m.__file__.endswith((".so", ".pyd")), m.__file__


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plen=st.integers(0, 40), seed=st.binary(min_size=3, max_size=3),
       a=st.binary(max_size=2000), b=st.binary(max_size=2000), c=st.binary(max_size=2000))
def test_crc32c_prefix_copy_x3_matches_single(path, plen, seed, a, b, c):
    prefixes = [bytes([s]) * plen for s in seed]
    copies, crcs = mod.crc32c_prefix_copy_x3(prefixes, [a, b, c])
    assert copies == (a, b, c)
    assert crcs == tuple(crcmod_crc32c(p + x) for p, x in zip(prefixes, (a, b, c), strict=True))


def _prefix_copy_cases():
    # The hybrid kernel splits each payload at 32m and 64m, m = min(len) // 64
    # capped at 128, and hands a remainder of >= 768 bytes to the 3-stream
    # loop: equal lengths around every split, the cap, and unequal triples.
    cases = [(n, n, n) for n in range(0, 200)]
    cases += [(n, n, n) for n in (255, 256, 511, 512, 513, 540, 575, 576, 1023, 1024, 4096)]
    cases += [(n, n, n) for n in (128 * 64 - 1, 128 * 64, 128 * 64 + 767, 128 * 64 + 768, 20000)]
    cases += [(64, 65, 2000), (3000, 512, 700), (1000, 1000, 63), (9000, 16500, 8300)]
    return cases


@pytest.mark.parametrize("plen", [0, 3, 8, 28, 36])
def test_crc32c_prefix_copy_x3_split_points(path, plen):
    import random
    rnd = random.Random(plen)
    for lens in _prefix_copy_cases():
        prefixes = [rnd.randbytes(plen) for _ in range(3)]
        payloads = [rnd.randbytes(n) for n in lens]
        copies, crcs = mod.crc32c_prefix_copy_x3(prefixes, payloads)
        assert copies == tuple(payloads), lens
        assert crcs == tuple(crcmod_crc32c(p + x)
                             for p, x in zip(prefixes, payloads, strict=True)), lens
