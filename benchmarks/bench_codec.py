"""Codec: encode + decode of one MsgApp carrying 64 entries of 512 B (issue 2, 5b).

Same-run baselines:
- baseline_struct_python: the same wire format (codec.pyx docstring) written
  with `struct` in plain Python, decoding into the same Entry/Message types;
- pickle_tuples: pickle.dumps/loads (protocol 5, C pickler) of the equivalent
  plain tuples, i.e. what a codec-less transport would do.
"""
import pickle
import struct

import pytest

from easyraft._core import codec
from easyraft._core.types import Entry, EntryType, Message, MsgType

GROUP = "codec MsgApp 64 x 512 B encode+decode"
N_ENTRIES, PAYLOAD = 64, 512


def make_msgapp():
    ents = [Entry(term=3, index=1000 + i, type=EntryType.EntryNormal, data=bytes([i]) * PAYLOAD)
            for i in range(N_ENTRIES)]
    return Message(type=MsgType.MsgApp, to=2, frm=1, term=3, log_term=3, index=999,
                   entries=ents, commit=998)


# --- the baseline: a struct-based codec of the same format --------------------

_HDR = struct.Struct("<BB7QI")
_U32 = struct.Struct("<I")
_ENT = struct.Struct("<QQBI")


def py_encode(m):
    parts = [_HDR.pack(m.type, 1 if m.reject else 0, m.to, m.frm, m.term, m.log_term, m.index,
                       m.commit, m.reject_hint, len(m.context)), m.context,
             _U32.pack(len(m.entries))]
    for e in m.entries:
        parts.append(_ENT.pack(e.term, e.index, e.type, len(e.data)))
        parts.append(e.data)
    return b"".join(parts)


def py_decode(buf):
    typ, flags, to, frm, term, log_term, index, commit, hint, nctx = _HDR.unpack_from(buf, 0)
    pos = _HDR.size
    ctx = buf[pos:pos + nctx]
    pos += nctx
    (ne,) = _U32.unpack_from(buf, pos)
    pos += 4
    ents = []
    for _ in range(ne):
        et, ei, ty, n = _ENT.unpack_from(buf, pos)
        pos += _ENT.size
        ents.append(Entry(et, ei, ty, buf[pos:pos + n]))
        pos += n
    if pos != len(buf):
        raise ValueError("trailing bytes")
    return Message(type=typ, to=to, frm=frm, term=term, log_term=log_term, index=index,
                   entries=ents, commit=commit, reject=bool(flags & 1), reject_hint=hint,
                   context=ctx)


def as_tuples(m):
    return (m.type, m.to, m.frm, m.term, m.log_term, m.index, m.commit, m.reject,
            m.reject_hint, m.context, [(e.term, e.index, e.type, e.data) for e in m.entries])


# --- benchmarks ------------------------------------------------------------------

@pytest.fixture(scope="module")
def msgapp():
    m = make_msgapp()
    # The baseline is only a baseline if it does the same work.
    assert py_encode(m) == codec.encode_message(m)
    assert py_decode(codec.encode_message(m)) == m
    return m


@pytest.mark.benchmark(group=GROUP)
def test_codec_compiled(benchmark, figures, msgapp):
    def run():
        return codec.decode_message(codec.encode_message(msgapp))
    assert benchmark(run) == msgapp
    figures(GROUP, "compiled encode_message+decode_message", benchmark, N_ENTRIES, "entries")


@pytest.mark.benchmark(group=GROUP)
def test_codec_baseline_struct_python(benchmark, figures, msgapp):
    def run():
        return py_decode(py_encode(msgapp))
    assert benchmark(run) == msgapp
    figures(GROUP, "baseline struct codec in Python", benchmark, N_ENTRIES, "entries")


@pytest.mark.benchmark(group=GROUP)
def test_codec_pickle_tuples(benchmark, figures, msgapp):
    t = as_tuples(msgapp)

    def run():
        return pickle.loads(pickle.dumps(t, protocol=5))
    assert benchmark(run) == t
    figures(GROUP, "pickle of equivalent tuples", benchmark, N_ENTRIES, "entries")


FRAMES_GROUP = "codec 3 x MsgApp(64 x 512 B) as frames"


@pytest.mark.benchmark(group=FRAMES_GROUP)
def test_codec_frames_compiled(benchmark, figures, msgapp):
    msgs = [msgapp] * 3

    def run():
        return codec.decode_frames(codec.encode_frames(msgs))
    got, _ = benchmark(run)
    assert got == msgs
    figures(FRAMES_GROUP, "compiled encode_frames+decode_frames", benchmark, 3 * N_ENTRIES,
            "entries")


@pytest.mark.benchmark(group=FRAMES_GROUP)
def test_codec_frames_baseline_struct_python(benchmark, figures, msgapp):
    msgs = [msgapp] * 3

    def run():
        buf = b"".join(_U32.pack(len(b)) + b for b in map(py_encode, msgs))
        out, pos = [], 0
        while pos + 4 <= len(buf):
            (n,) = _U32.unpack_from(buf, pos)
            out.append(py_decode(buf[pos + 4:pos + 4 + n]))
            pos += 4 + n
        return out
    assert benchmark(run) == msgs
    figures(FRAMES_GROUP, "baseline struct codec in Python", benchmark, 3 * N_ENTRIES, "entries")
