"""Plain-Python reference kernels: test oracles and benchmark baselines only.

The package never imports this module. Each function restates a compiled
kernel in the most obvious Python, so the two can be compared byte for byte
(tests) and timed side by side (benchmarks).
"""
from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Protocol

_POLY = 0x82F63B78


def _make_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return table


CRC32C_TABLE = _make_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C, one table lookup per byte (the textbook Sarwate loop)."""
    c = crc ^ 0xFFFFFFFF
    table = CRC32C_TABLE
    for b in bytes(data):
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# --- WAL record framing (easyraft/_core/walrec.pxd has the layout) ----------

RECORD_HEADER_SIZE = 11
METADATA, ENTRY, STATE, CRC, SNAPSHOT = 1, 2, 3, 4, 5


def frame_size(data_len: int) -> int:
    return (RECORD_HEADER_SIZE + data_len + 7) // 8 * 8


def encode_entry(term: int, index: int, type: int, data: bytes) -> bytes:
    """codec's Entry layout: u64 term | u64 index | u8 type | u32 n | data."""
    return struct.pack("<QQBI", term, index, type, len(data)) + data


class _CrcFn(Protocol):
    def __call__(self, data: bytes, crc: int = 0, /) -> int: ...


class _EntryLike(Protocol):
    @property
    def term(self) -> int: ...
    @property
    def index(self) -> int: ...
    @property
    def type(self) -> int: ...
    @property
    def data(self) -> bytes: ...


class _HardStateLike(Protocol):
    @property
    def term(self) -> int: ...
    @property
    def vote(self) -> int: ...
    @property
    def commit(self) -> int: ...


def encode_record(type: int, data: bytes, crc_fn: _CrcFn = crc32c) -> bytes:
    """One framed record: u32 crc | u32 len | u8 type | 2 zero bytes | data | pad."""
    body = struct.pack("<IB2x", len(data), type) + data
    pad = frame_size(len(data)) - RECORD_HEADER_SIZE - len(data)
    return struct.pack("<I", crc_fn(body)) + body + b"\0" * pad


def fold_chain(chain: int, record: bytes, crc_fn: _CrcFn = crc32c) -> int:
    """The segment chain after `record`: it folds the record's 4 CRC bytes."""
    return crc_fn(record[:4], chain)


def encode_batch(entries: Iterable[_EntryLike], hard_state: _HardStateLike | None = None,
                 chain: int = 0, crc_fn: _CrcFn = crc32c) -> tuple[bytes, int]:
    """What walrec.Encoder(chain).encode(entries, hard_state) returns, and the
    chain after it. `entries` are objects with term/index/type/data."""
    out = []
    for e in entries:
        rec = encode_record(ENTRY, encode_entry(e.term, e.index, e.type, e.data), crc_fn)
        chain = fold_chain(chain, rec, crc_fn)
        out.append(rec)
    if hard_state is not None:
        data = struct.pack("<QQQ", hard_state.term, hard_state.vote, hard_state.commit)
        rec = encode_record(STATE, data, crc_fn)
        chain = fold_chain(chain, rec, crc_fn)
        out.append(rec)
    return b"".join(out), chain


def decode_records(buf: bytes, crc_fn: _CrcFn = crc32c) -> Iterator[tuple[int, bytes, int]]:
    """Yield (type, data, offset) for each good record; stop at a zero header.

    Raises ValueError at the first bad record (no torn/corrupt distinction:
    that is the compiled decoder's job, tested against this one on good input).
    """
    pos = 0
    while pos + RECORD_HEADER_SIZE <= len(buf):
        crc, n, typ = struct.unpack_from("<IIB", buf, pos)
        if crc == 0 and n == 0 and typ == 0:
            return
        end = pos + frame_size(n)
        if end > len(buf) or crc_fn(buf[pos + 4:pos + RECORD_HEADER_SIZE + n]) != crc:
            raise ValueError(f"bad record at {pos}")
        yield typ, bytes(buf[pos + RECORD_HEADER_SIZE:pos + RECORD_HEADER_SIZE + n]), pos
        pos = end
