"""WAL record framing: byte-exact against _ref, decoder error classes."""
import struct

import pytest
from hypothesis import given, settings, strategies as st

from easyraft._core import _ref, codec, crc32c as crcmod_
from easyraft._core.types import CodecError, Entry, HardState
from easyraft._core.walrec import (
    CorruptRecordError,
    Decoder,
    Encoder,
    RecordError,
    RecordType,
    TornTailError,
    frame_size,
)

CRC, ENTRY = RecordType.CRC, RecordType.ENTRY
SNAPSHOT, STATE = RecordType.SNAPSHOT, RecordType.STATE

entries_st = st.lists(
    st.builds(lambda t, i, ty, d: Entry(term=t, index=i, type=ty, data=d),
              st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 1),
              st.binary(max_size=700)),
    max_size=20)


def make_entries(n, size=100, start=1, term=1):
    return [Entry(term=term, index=start + i, data=bytes([i & 0xFF]) * size) for i in range(n)]


@settings(max_examples=200, deadline=None)
@given(entries=entries_st, hs=st.none() | st.builds(HardState, term=st.integers(0, 2**64 - 1),
                                                     vote=st.integers(0, 2**64 - 1),
                                                     commit=st.integers(0, 2**64 - 1)),
       chain=st.integers(0, 2**32 - 1))
def test_walrec_encode_matches_ref(entries, hs, chain):
    enc = Encoder(chain)
    got = enc.encode(entries, hs)
    want, want_chain = _ref.encode_batch(entries, hs, chain)
    assert got == want
    assert enc.chain == want_chain
    assert len(got) % 8 == 0


def test_walrec_entry_payload_is_codec_layout():
    e = Entry(term=7, index=9, type=1, data=b"payload")
    rec = Encoder().encode([e])
    assert rec[11:11 + 21 + 7] == codec.encode_entry(e)


def test_walrec_frame_size_is_8_aligned():
    for n in range(64):
        assert frame_size(n) % 8 == 0 and frame_size(n) >= 11 + n
        assert frame_size(n) == _ref.frame_size(n)
    with pytest.raises(ValueError):
        frame_size(-1)


@pytest.mark.parametrize("impl", ["table", "auto"])
def test_walrec_round_trip_with_states_and_markers(impl):
    crcmod_.use_implementation(impl)
    try:
        enc = Encoder()
        buf = (enc.encode_record(CRC, struct.pack("<I", 0)) + enc.encode(make_entries(10))
               + enc.encode([], HardState(term=1, vote=2, commit=3))
               + enc.encode_record(SNAPSHOT, struct.pack("<QQ", 5, 1))
               + enc.encode(make_entries(7, start=4, term=2), HardState(term=2, vote=2, commit=6)))
        dec = Decoder(buf + bytes(4096), chain=0)
        ents = []
        recs = []
        while (r := dec.decode(ents, after=0)) is not None:
            recs.append(r[:2])
        # Entries 4..10 of term 1 were overwritten by the term-2 ones.
        assert [(e.index, e.term) for e in ents] == [(1, 1), (2, 1), (3, 1),
                                                     *[(i, 2) for i in range(4, 11)]]
        assert recs == [(CRC, struct.pack("<I", 0)),
                        (STATE, codec.encode_hard_state(HardState(term=1, vote=2, commit=3))),
                        (SNAPSHOT, struct.pack("<QQ", 5, 1)),
                        (STATE, codec.encode_hard_state(HardState(term=2, vote=2, commit=6)))]
        assert dec.chain == enc.chain
        assert dec.offset == len(buf)
        # The slow path sees the same records.
        dec2 = Decoder(buf, chain=0)
        all_recs = []
        while (r := dec2.next_record()) is not None:
            all_recs.append(r)
        assert [(t, d, o) for t, d, o in all_recs] == list(_ref.decode_records(buf))
    finally:
        crcmod_.use_implementation("auto")


def test_walrec_decode_skips_entries_covered_by_snapshot():
    buf = Encoder().encode(make_entries(10))
    ents = []
    assert Decoder(buf).decode(ents, after=6) is None
    assert [e.index for e in ents] == [7, 8, 9, 10]


def test_walrec_decode_index_gap_is_corrupt():
    buf = Encoder().encode(make_entries(3) + make_entries(2, start=10))
    with pytest.raises(CorruptRecordError) as ei:
        Decoder(buf).decode([], after=0)
    assert ei.value.offset == 3 * frame_size(21 + 100)
    assert "gap" in ei.value.reason


def test_walrec_crc_chain_mismatch_is_corrupt():
    enc = Encoder(1234)
    buf = enc.encode_record(CRC, struct.pack("<I", 1234))
    assert Decoder(buf, chain=1234).next_record()[0] == CRC
    assert Decoder(buf, chain=None).next_record()[0] == CRC   # unknown start: trusted
    with pytest.raises(CorruptRecordError, match="chain"):
        Decoder(buf, chain=99).next_record()


def test_walrec_zero_tail_is_clean_end():
    buf = Encoder().encode(make_entries(2))
    dec = Decoder(buf + bytes(10_000))
    ents = []
    assert dec.decode(ents) is None
    assert len(ents) == 2 and dec.offset == len(buf)


def test_walrec_truncated_record_is_torn():
    buf = Encoder().encode(make_entries(2))
    for cut in range(frame_size(121) + 1, len(buf)):
        dec = Decoder(buf[:cut])
        ents = []
        with pytest.raises(TornTailError) as ei:
            dec.decode(ents)
        assert ei.value.offset == frame_size(121) == dec.offset
        assert len(ents) == 1


def test_walrec_bit_flip_is_corrupt_not_torn():
    buf = bytearray(Encoder().encode(make_entries(3)))
    rec = frame_size(121)
    for pos in [rec + 0, rec + 5, rec + 40, 2 * rec - 9]:
        bad = bytearray(buf)
        bad[pos] ^= 0x10
        with pytest.raises(CorruptRecordError) as ei:
            Decoder(bytes(bad)).decode([])
        assert ei.value.offset == rec


def test_walrec_unwritten_sector_is_torn():
    # A 2000-byte entry record spans sectors; zero one whole sector inside it.
    buf = bytearray(Encoder().encode([Entry(term=1, index=1, data=b"\xff" * 2000)]))
    buf[512:1024] = bytes(512)
    with pytest.raises(TornTailError):
        Decoder(bytes(buf)).decode([])


def test_walrec_zero_header_followed_by_data_is_torn():
    buf = Encoder().encode(make_entries(1))
    with pytest.raises(TornTailError) as ei:
        Decoder(buf + bytes(16) + b"\x01").decode([])
    assert ei.value.offset == len(buf)


@settings(max_examples=1500, deadline=None)
@given(data=st.binary(max_size=600), chain=st.none() | st.integers(0, 2**32 - 1))
def test_walrec_random_bytes_give_typed_errors(data, chain):
    dec = Decoder(data, chain=chain)
    try:
        while dec.decode([], after=0) is not None:
            pass
    except RecordError as exc:
        assert isinstance(exc, (TornTailError, CorruptRecordError))
        assert 0 <= exc.offset <= len(data) and exc.offset % 8 == 0
        assert str(exc).startswith("wal: ")


@settings(max_examples=500, deadline=None)
@given(n=st.integers(1, 6), pos=st.integers(0), value=st.integers(1, 255))
def test_walrec_damaged_valid_log_never_crashes(n, pos, value):
    buf = bytearray(Encoder().encode(make_entries(n, size=37), HardState(term=1)))
    pos %= len(buf)
    buf[pos] ^= value
    ents = []
    try:
        dec = Decoder(bytes(buf), chain=0)
        while dec.decode(ents) is not None:
            pass
    except RecordError as exc:
        assert exc.offset <= pos      # the damage is at or after the reported record
    # Either way, what was returned is a prefix of what was written.
    assert ents == make_entries(n, size=37)[:len(ents)]


def test_walrec_encode_rejects_wrong_types():
    with pytest.raises(TypeError):
        Encoder().encode([b"not an entry"])
    with pytest.raises(TypeError):
        Encoder().encode([], hard_state=object())
    with pytest.raises(ValueError):
        Encoder().encode_record(0, b"")
    assert issubclass(RecordError, CodecError)
