"""The write-ahead log: segment files of framed records (etcd: server/storage/wal).

A WAL directory holds segments named ``%016x-%016x.wal`` (sequence, index of
the first entry expected in it), plus the ``.lock`` file. Every segment
starts with a CRC record (the record chain so far), the metadata record and,
after the first, the hard state; then entry, state and snapshot-marker
records (layout: easyraft/_core/walrec.pxd). A segment is preallocated with
zeros to ``segment_size``; when full it is truncated to its last record and
synced, and the next one - zero-filled and synced ahead of time by a
background thread - gets its header, a sync, and its name (cut).

Durability (what the caller may rely on):
  * save(..., must_sync=True) returns after one fdatasync covering every
    record written since the last sync: the Node calls it once per Ready,
    so all proposals in that Ready share the sync (group commit).
  * save(..., must_sync=False) only writes (page cache); a later synced
    save, save_snapshot, a cut or close() makes it durable.
  * save_snapshot() always syncs; a cut syncs the full segment (fsync) and
    the new one, renames it into place and syncs the directory; create()
    syncs the first segment and the directory (and its parent if it made
    the directory).
  * close() syncs before releasing the lock.
  * After an fdatasync or write error the WAL refuses further use
    (WALFailedError): the kernel may have dropped the dirty pages, so a
    retried sync could report success for lost data ("fsyncgate").

Recovery (read_all): a torn tail of the last segment - a record cut short,
an unwritten zero sector inside a record, or bytes after a zero header - is
zero-filled with a WARNING naming file and offset: it was never synced, so
never acknowledged. Everything else that does not decode - a CRC mismatch
with no sign of a cut-short write, an index gap, a missing or out-of-order
segment, a broken chain between segments - raises CorruptWALError(file,
offset, reason) and nothing is changed on disk (not even a torn tail:
the repair waits until the whole log has checked out).
"""
from __future__ import annotations

import gc
import logging
import os
import re
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, NamedTuple, TypeVar

from easyraft._core.codec import decode_entry
from easyraft._core.types import CodecError, Entry, HardState
from easyraft._core.walrec import CorruptRecordError, Decoder, Encoder, RecordType, TornTailError
from easyraft.errors import CorruptWALError, WALFailedError
from easyraft.storage import fileutil

logger = logging.getLogger("easyraft.wal")

_T = TypeVar("_T")

SEGMENT_SIZE = 64 * 1024 * 1024
# Smallest segment accepted: room for the segment header records plus data.
MIN_SEGMENT_SIZE = 4096

_NAME_RE = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")
_TMP_SUFFIX = ".tmp"
_SNAP = struct.Struct("<QQ")
_CRC = struct.Struct("<I")
_STATE = struct.Struct("<QQQ")

METADATA = RecordType.METADATA
ENTRY = RecordType.ENTRY
STATE = RecordType.STATE
CRC = RecordType.CRC
SNAPSHOT = RecordType.SNAPSHOT


def segment_name(seq: int, index: int) -> str:
    return f"{seq:016x}-{index:016x}.wal"


def parse_segment_name(name: str) -> tuple[int, int] | None:
    """Return (sequence, first index) for a segment file name, else None."""
    m = _NAME_RE.match(name)
    return (int(m.group(1), 16), int(m.group(2), 16)) if m else None


class Segment(NamedTuple):
    seq: int
    # First entry index expected in it (last index + 1 at cut). The field
    # shadows tuple.index(), which nothing calls.
    index: int  # type: ignore[assignment]
    name: str


def list_segments(dirpath: str) -> list[Segment]:
    """Return the segments in `dirpath` in sequence order (no continuity check)."""
    segs = []
    for name in os.listdir(dirpath):
        parsed = parse_segment_name(name)
        if parsed is not None:
            segs.append(Segment(parsed[0], parsed[1], name))
    segs.sort()
    return segs


def exists(dirpath: str) -> bool:
    """Return True when `dirpath` holds at least one WAL segment."""
    try:
        return bool(list_segments(dirpath))
    except FileNotFoundError:
        return False


def _check_sequence(dirpath: str, segs: list[Segment]) -> None:
    # Purging removes the oldest segments first, so what remains must be a
    # run of consecutive sequence numbers; a hole is a lost segment.
    for prev, seg in pairwise(segs):
        if seg.seq != prev.seq + 1:
            raise CorruptWALError(os.path.join(dirpath, seg.name), 0,
                                  f"missing segment: expected sequence {prev.seq + 1:016x} "
                                  f"after {prev.name}")


def _read_file(path: str) -> bytes:
    with open(path, "rb", buffering=0) as f:
        return f.read()


def _last_nonzero_end(data: bytes) -> int:
    # End of the last non-zero byte: where a torn tail's garbage stops.
    return len(bytes(data).rstrip(b"\0"))


def _read_segment_start(path: str, dec: Decoder) -> int:
    # Every segment opens with its CRC record (the decoder checks the chain
    # value in it). It was synced before the segment got its name, so any
    # damage here is corruption, even in the last segment. Returns the chain.
    try:
        rec = dec.next_record()
    except (CorruptRecordError, TornTailError) as exc:
        raise CorruptWALError(path, exc.offset, exc.reason) from None
    if rec is None or rec[0] != CRC:
        raise CorruptWALError(path, 0, "segment does not start with a crc record")
    return int(_CRC.unpack(rec[1])[0])


# Segment preparation: zero-fill and sync this much at a time, pausing
# between steps (see _FilePipeline).
_FILL_STEP = 1 << 20
_FILL_PAUSE = 0.002


class _FilePipeline:
    """Prepare the next segment file in the background (etcd: file_pipeline.go).

    Writing 64 MiB of zeros and syncing them takes ~100 ms here; done inside
    a cut it would stall the Ready loop (and heartbeats) that long once per
    segment. One worker thread keeps one zero-filled, synced file ready
    under a temporary name; a cut only writes the segment header into it
    and renames it. The worker touches nothing but its own temp file.

    It fills in steps of _FILL_STEP, each synced, with a pause between
    steps. One sync at the end left 64 MiB of allocated, unwritten blocks
    for the WAL's next fdatasync to wait on (with ext4's ordered data, the
    journal commit that sync forces writes them first): a 1-entry save
    took up to 63-70 ms while a segment was being prepared. In steps the
    worst measured was 8-9 ms (benchmarks/bench_wal.py, both ways in one
    run), for ~250 ms of background work per segment.
    """

    def __init__(self, dirpath: str, size: int) -> None:
        self._dirpath = dirpath
        self._size = size
        self._count = 0                    # worker thread only
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="easyraft-wal-prealloc")
        self._next = self._pool.submit(self._alloc)

    def _alloc(self) -> tuple[str, int]:
        path = os.path.join(self._dirpath, f"{self._count % 2}{_TMP_SUFFIX}")
        self._count += 1
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            off = 0
            while off < self._size:
                n = min(_FILL_STEP, self._size - off)
                fileutil.zero_range(fd, off, off + n)
                fileutil.fdatasync(fd)
                off += n
                # Room for the WAL's own syncs between steps; close() cuts it short.
                if off < self._size and self._stop.wait(_FILL_PAUSE):
                    break
        except BaseException:
            os.close(fd)
            os.remove(path)
            raise
        return path, fd

    def take(self) -> tuple[str, int]:
        """Return (temp path, fd) of a ready file; the caller owns both."""
        path, fd = self._next.result()     # re-raises the worker's error (e.g. ENOSPC)
        self._next = self._pool.submit(self._alloc)
        return path, fd

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True)
        try:
            path, fd = self._next.result()
        except BaseException:   # noqa: BLE001 - a failed preparation leaves nothing behind
            return
        os.close(fd)
        os.remove(path)


class WAL:
    """A write-ahead log in one directory; see the module docstring.

    Not thread-safe: the Node's loop thread is its only user.
    """

    def __init__(self, dirpath: str, lock: fileutil.DirLock, segments: list[Segment],
                 segment_size: int, snap_index: int, snap_term: int) -> None:
        if segment_size < MIN_SEGMENT_SIZE:
            raise ValueError(f"wal: segment_size must be at least {MIN_SEGMENT_SIZE}")
        self.dirpath = dirpath
        self.segment_size = segment_size
        self._lock = lock
        self._segments = segments          # every segment on disk, in sequence order
        self._snap_index = snap_index      # the snapshot the WAL was opened at
        self._snap_term = snap_term
        self._start = 0                    # position in _segments where reading starts
        self._fd: int | None = None        # the tail segment, open for appending
        self._offset = 0                   # end of the last record in the tail
        self._encoder: Encoder | None = None
        self._metadata = b""
        self._state = HardState()          # last hard state written or read
        self._last_index = 0               # last entry index written (etcd: enti)
        self._last_snap_index = 0          # newest snapshot marker in the log
        self._release_index = 0            # release_to() bound for purge
        self._ready = False                # appending allowed (after create or read_all)
        self._failed: BaseException | None = None
        self._pipeline: _FilePipeline | None = None

    # --- create / open ------------------------------------------------------

    @classmethod
    def create(cls, dirpath: str, metadata: bytes, segment_size: int = SEGMENT_SIZE) -> WAL:
        """Create a WAL in `dirpath` (made if missing) and return it ready to append.

        Raises FileExistsError when the directory already holds a WAL and
        WALLockedError when another WAL object holds it.
        """
        metadata = bytes(metadata)
        created = not os.path.isdir(dirpath)
        os.makedirs(dirpath, exist_ok=True)
        if created:
            fileutil.fsync_dir(os.path.dirname(os.path.abspath(dirpath)))
        lock = fileutil.DirLock(dirpath)
        try:
            if exists(dirpath):
                raise FileExistsError(f"wal: {dirpath} already holds a WAL")
            _remove_tmp_files(dirpath)
            w = cls(dirpath, lock, [], segment_size, 0, 0)
            w._metadata = metadata
            w._encoder = Encoder(0)
            fd = os.open(os.path.join(dirpath, f"create{_TMP_SUFFIX}"),
                         os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
            try:
                fileutil.preallocate(fd, segment_size)
            except BaseException:
                os.close(fd)
                raise
            w._install_segment(0, 0, os.path.join(dirpath, f"create{_TMP_SUFFIX}"), fd)
            w._pipeline = _FilePipeline(dirpath, segment_size)
            w._ready = True
            return w
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open(cls, dirpath: str, snap_index: int = 0, snap_term: int = 0,
             segment_size: int = SEGMENT_SIZE) -> WAL:
        """Open the WAL in `dirpath` at the snapshot (snap_index, snap_term).

        Takes the directory lock (WALLockedError if held). Call read_all()
        next: it replays the log and prepares appending.
        """
        lock = fileutil.DirLock(dirpath)
        try:
            segs = list_segments(dirpath)
            if not segs:
                raise FileNotFoundError(f"wal: no WAL segments in {dirpath}")
            _remove_tmp_files(dirpath)
            _check_sequence(dirpath, segs)
            w = cls(dirpath, lock, segs, segment_size, snap_index, snap_term)
            # Start at the last segment whose first index <= snap_index: it
            # holds the snapshot marker (etcd: searchIndex).
            start = None
            for i, seg in enumerate(segs):
                if seg.index <= snap_index:
                    start = i
            if start is None:
                raise CorruptWALError(os.path.join(dirpath, segs[0].name), 0,
                                      f"no segment covers snapshot index {snap_index} "
                                      f"(first segment starts at index {segs[0].index})")
            w._start = start
            return w
        except BaseException:
            lock.release()
            raise

    exists = staticmethod(exists)

    # --- reading -------------------------------------------------------------

    def read_all(self) -> tuple[bytes, HardState, list[Entry]]:
        """Replay the log: return (metadata, hard_state, entries after the snapshot).

        Entries a later leader overwrote are replaced; a torn tail is
        zero-filled with a warning; anything else damaged raises
        CorruptWALError, and the WAL is closed (lock released): it cannot be
        used. Afterwards the WAL appends at the end of the log.
        """
        if self._ready:
            raise RuntimeError("wal: read_all() may only be called once, right after open()")
        # Replay allocates one Entry per record, all kept alive: every few
        # hundred allocations the cyclic GC would rescan the growing list,
        # which cost up to 2/3 of a 1M-entry replay. Entries hold only bytes
        # and cannot form cycles, so pausing the collector loses nothing.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._read_all()
        except BaseException:
            self.close()
            raise
        finally:
            if gc_was_enabled:
                gc.enable()

    def _read_all(self) -> tuple[bytes, HardState, list[Entry]]:
        entries: list[Entry] = []
        metadata = None
        state = HardState()
        snap_found = self._snap_index == 0 and self._snap_term == 0
        torn = None
        chain = None
        last_seen = self._snap_index
        segs = self._segments[self._start:]
        for k, seg in enumerate(segs):
            path = os.path.join(self.dirpath, seg.name)
            is_tail = k == len(segs) - 1
            data = _read_file(path)
            dec = Decoder(data, chain)
            try:
                _read_segment_start(path, dec)
                while True:
                    try:
                        rec = dec.decode(entries, self._snap_index)
                    except CorruptRecordError as exc:
                        raise CorruptWALError(path, exc.offset, exc.reason) from None
                    except TornTailError as exc:
                        if not is_tail:
                            raise CorruptWALError(path, exc.offset, exc.reason) from None
                        torn = (path, data, exc)     # repaired once the whole log checks out
                        rec = None
                    if rec is None:
                        break
                    typ, payload, off = rec
                    if typ == METADATA:
                        if metadata is None:
                            metadata = payload
                        elif payload != metadata:
                            raise CorruptWALError(path, off,
                                                  "metadata differs from earlier segments")
                    elif typ == STATE:
                        state = _decode(path, off, decode_hard_state, payload)
                    elif typ == SNAPSHOT:
                        index, term = _decode(path, off, _SNAP.unpack, payload)
                        self._last_snap_index = max(self._last_snap_index, index)
                        last_seen = max(last_seen, index)
                        if index == self._snap_index:
                            if term != self._snap_term:
                                raise CorruptWALError(
                                    path, off, f"snapshot marker at index {index} has term {term}, "
                                               f"expected {self._snap_term}")
                            snap_found = True
                    elif typ == CRC:
                        raise CorruptWALError(path, off, "crc record inside a segment")
                if not is_tail and dec.offset != len(data):
                    raise CorruptWALError(path, dec.offset, f"segment ends before its last "
                                                            f"{len(data) - dec.offset} bytes")
                chain = dec.chain
                end = dec.offset
            finally:
                dec.close()
        if not snap_found:
            raise CorruptWALError(os.path.join(self.dirpath, segs[0].name), 0,
                                  f"snapshot marker (index {self._snap_index}, term "
                                  f"{self._snap_term}) not found")
        if metadata is None:
            raise CorruptWALError(os.path.join(self.dirpath, segs[0].name), 0, "no metadata record")
        if torn is not None:
            self._repair_torn_tail(*torn)
        self._metadata = metadata
        self._state = state
        self._last_index = max(entries[-1].index if entries else 0, last_seen)
        assert chain is not None  # set by every segment, and there is at least one
        self._encoder = Encoder(chain)
        self._open_tail(end)
        self._pipeline = _FilePipeline(self.dirpath, self.segment_size)
        self._ready = True
        return metadata, state, entries

    def _repair_torn_tail(self, path: str, data: bytes, exc: TornTailError) -> None:
        end = _last_nonzero_end(data)
        logger.warning("wal: torn tail in %s at offset %d (%s): discarding %d bytes that were "
                       "never synced", path, exc.offset, exc.reason, end - exc.offset)
        fd = os.open(path, os.O_RDWR)
        try:
            fileutil.zero_range(fd, exc.offset, end)
            fileutil.fdatasync(fd)
        finally:
            os.close(fd)

    def _open_tail(self, end: int) -> None:
        seg = self._segments[-1]
        fd = os.open(os.path.join(self.dirpath, seg.name), os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        try:
            if os.fstat(fd).st_size < self.segment_size:
                # A tail that was cut to size (crash during a cut) or never
                # preallocated: restore the zeros appends should land in.
                fileutil.preallocate(fd, self.segment_size)
                fileutil.fdatasync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._offset = end

    # --- writing -------------------------------------------------------------

    def save(self, hard_state: HardState | None, entries: Iterable[Entry],
             must_sync: bool = True) -> None:
        """Append `entries` then `hard_state` (either may be empty/None).

        With must_sync, returns after one fdatasync that makes this call and
        every earlier unsynced one durable.
        """
        self._check_writable()
        if hard_state is not None and hard_state.term == 0 and hard_state.vote == 0 \
                and hard_state.commit == 0:
            hard_state = None          # etcd never writes an empty hard state either
        if not entries and hard_state is None:
            return
        if not isinstance(entries, list):
            entries = list(entries)
        assert self._encoder is not None  # _check_writable: read_all() ran
        buf = self._encoder.encode(entries, hard_state)
        self._write(buf)
        if entries:
            self._last_index = entries[-1].index
        if hard_state is not None:
            self._state = hard_state
        if self._offset >= self.segment_size:
            self._cut()
        elif must_sync:
            self.sync()

    def save_snapshot(self, index: int, term: int) -> None:
        """Append a snapshot marker and sync.

        Call it after the snapshot file is saved (a marker must never point
        at a snapshot that does not exist; the reverse is harmless).
        """
        self._check_writable()
        assert self._encoder is not None  # _check_writable: read_all() ran
        self._write(self._encoder.encode_record(SNAPSHOT, _SNAP.pack(index, term)))
        self._last_index = max(self._last_index, index)
        self._last_snap_index = max(self._last_snap_index, index)
        if self._offset >= self.segment_size:
            self._cut()
        else:
            self.sync()

    def sync(self) -> None:
        """Make everything written so far durable (one fdatasync)."""
        self._check_writable()
        assert self._fd is not None  # _check_writable: open
        try:
            fileutil.fdatasync(self._fd)
        except OSError as exc:
            self._fail(exc)
            raise

    def _write(self, buf: bytes) -> None:
        assert self._fd is not None  # callers ran _check_writable
        try:
            fileutil.pwrite_all(self._fd, buf, self._offset)
        except OSError as exc:
            self._fail(exc)
            raise
        self._offset += len(buf)

    def _check_writable(self) -> None:
        if self._failed is not None:
            raise WALFailedError(f"wal: unusable after an earlier I/O error: {self._failed}")
        if self._fd is None:
            if self._lock.locked and not self._ready:
                raise RuntimeError("wal: read_all() must be called before appending")
            raise WALFailedError("wal: closed")

    def _fail(self, exc: BaseException) -> None:
        self._failed = exc
        logger.error("wal: I/O error in %s, refusing further writes: %s", self.dirpath, exc)

    def _cut(self) -> None:
        # Close the full segment at its last record (durably: fsync covers
        # the new size), then start the next one. A crash in between leaves
        # the old segment as an exact-size tail, which open() re-extends.
        assert self._fd is not None and self._pipeline is not None  # callers: _check_writable
        try:
            os.ftruncate(self._fd, self._offset)
            fileutil.fsync(self._fd)
        except OSError as exc:
            self._fail(exc)
            raise
        try:
            tmp, fd = self._pipeline.take()
        except OSError as exc:
            self._fail(exc)
            raise
        self._install_segment(self._segments[-1].seq + 1, self._last_index + 1, tmp, fd)

    def _install_segment(self, seq: int, index: int, tmp: str, fd: int) -> None:
        # Write the segment header into a zero-filled file under a temporary
        # name, sync it, then rename it into place and sync the directory,
        # so a segment name never points at a half-written header. Takes
        # ownership of fd.
        name = segment_name(seq, index)
        path = os.path.join(self.dirpath, name)
        assert self._encoder is not None  # created (create) or read_all() ran (open)
        header = self._encoder.encode_record(CRC, _CRC.pack(self._encoder.chain))
        header += self._encoder.encode_record(METADATA, self._metadata)
        if seq == 0:
            # etcd starts a new log with an empty snapshot marker: opening at
            # snapshot (0, 0) then finds its marker like any other.
            header += self._encoder.encode_record(SNAPSHOT, _SNAP.pack(0, 0))
        else:
            header += self._encoder.encode([], self._state)
        try:
            fileutil.pwrite_all(fd, header, 0)
            fileutil.fdatasync(fd)
            os.rename(tmp, path)
            fileutil.fsync_dir(self.dirpath)
        except BaseException as exc:
            os.close(fd)
            if isinstance(exc, OSError):
                self._fail(exc)
            raise
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd
        self._offset = len(header)
        self._segments.append(Segment(seq, index, name))

    # --- release / purge -------------------------------------------------------

    def release_to(self, index: int) -> None:
        """Allow purge() to remove segments wholly before `index`.

        The Node calls it with the index of a snapshot it has saved (file
        and WAL marker). purge() never goes past the newest marker either.
        """
        self._release_index = max(self._release_index, index)

    def purge(self, max_files: int, *, unlink: bool = True) -> list[str]:
        """Remove the oldest released segments while more than `max_files` exist.

        0 keeps everything. Only segments before the one holding
        min(release_to index, newest snapshot marker) go: recovery opens at
        that segment. Returns the names removed.

        With unlink=False the segments leave the WAL but their files stay
        for the caller to delete (fileutil.remove_files), from any thread:
        unlinking a 64 MiB segment evicts its cached pages and took ~20 ms
        here, too long for an event loop. A crash before the files go only
        leaves old segments that recovery skips and the next purge removes.
        """
        if max_files <= 0:
            return []
        limit = min(self._release_index, self._last_snap_index)
        keep_from = 0
        for i, seg in enumerate(self._segments):
            if seg.index <= limit:
                keep_from = i
        removed = []
        while len(self._segments) > max_files and keep_from > 0:
            seg = self._segments.pop(0)
            keep_from -= 1
            removed.append(seg.name)
        if removed:
            if unlink:
                fileutil.remove_files([os.path.join(self.dirpath, n) for n in removed])
            logger.info("wal: purged %d segment(s) from %s: %s", len(removed), self.dirpath,
                        ", ".join(removed))
        return removed

    # --- misc ----------------------------------------------------------------

    @property
    def last_index(self) -> int:
        """Index of the last entry (or snapshot marker) written or read."""
        return self._last_index

    @property
    def hard_state(self) -> HardState:
        return self._state

    @property
    def segments(self) -> list[str]:
        """Names of the segments on disk, oldest first."""
        return [s.name for s in self._segments]

    def close(self) -> None:
        """Sync what was written, close the tail and release the lock. Idempotent."""
        try:
            if self._fd is not None and self._failed is None:
                fileutil.fdatasync(self._fd)
        finally:
            if self._pipeline is not None:
                self._pipeline.close()
                self._pipeline = None
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._lock.release()

    def __enter__(self) -> WAL:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - a forgotten close still drops the lock
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()


def decode_hard_state(payload: bytes) -> HardState:
    # The STATE payload is codec's HardState layout (u64 term, vote, commit).
    # Decoded here rather than with codec.decode_hard_state, which at commit
    # 3e6532f builds HardState.new(_u64(&r), _u64(&r), _u64(&r)): C leaves
    # argument evaluation order unspecified and gcc swaps term and commit.
    if len(payload) != _STATE.size:
        raise CodecError(f"wal: hard state record of {len(payload)} bytes")
    term, vote, commit = _STATE.unpack(payload)
    return HardState(term=term, vote=vote, commit=commit)


def _decode(path: str, offset: int, fn: Callable[[bytes], _T], payload: bytes) -> _T:
    try:
        return fn(payload)
    except (CodecError, struct.error) as exc:
        raise CorruptWALError(path, offset, f"undecodable record: {exc}") from None


def _remove_tmp_files(dirpath: str) -> None:
    # Leftovers of a create or cut that crashed before its rename, and of
    # the preallocation pipeline. Only the lock holder calls this.
    for name in os.listdir(dirpath):
        if name.endswith(_TMP_SUFFIX):
            os.remove(os.path.join(dirpath, name))


# --- operator tools: verify / dump / repair / snapshot markers ------------------

class WALRecord(NamedTuple):
    """One record as the operator tools see it."""
    file: str
    offset: int
    type: str           # "crc", "metadata", "entry", "state", "snapshot", or "torn" (last)
    # By type: int chain | bytes | Entry | HardState | (index, term) | reason str.
    value: Any


@dataclass
class Problem:
    file: str
    offset: int
    reason: str
    torn: bool          # True: a torn tail open() would truncate; False: corruption


@dataclass
class VerifyReport:
    segments: list[str] = field(default_factory=list)
    records: int = 0
    entries: int = 0
    first_index: int = 0
    last_index: int = 0
    snapshots: list[tuple[int, int]] = field(default_factory=list)   # (index, term)
    hard_state: HardState = field(default_factory=HardState)
    torn: Problem | None = None
    corrupt: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.corrupt is None


_TYPE_NAMES: dict[int, str] = {CRC: "crc", METADATA: "metadata", ENTRY: "entry", STATE: "state",
                               SNAPSHOT: "snapshot"}


def dump(dirpath: str) -> Iterator[WALRecord]:
    """Yield every record of the WAL in `dirpath`, oldest first (read-only).

    Starts at the oldest segment present. A torn tail ends the stream with a
    record of type "torn"; corruption raises CorruptWALError after the good
    records before it.
    """
    segs = list_segments(dirpath)
    if not segs:
        raise FileNotFoundError(f"wal: no WAL segments in {dirpath}")
    _check_sequence(dirpath, segs)
    chain = None
    for k, seg in enumerate(segs):
        path = os.path.join(dirpath, seg.name)
        is_tail = k == len(segs) - 1
        data = _read_file(path)
        dec = Decoder(data, chain)
        try:
            yield WALRecord(path, 0, "crc", _read_segment_start(path, dec))
            while True:
                try:
                    rec = dec.next_record()
                except CorruptRecordError as exc:
                    raise CorruptWALError(path, exc.offset, exc.reason) from None
                except TornTailError as exc:
                    if not is_tail:
                        raise CorruptWALError(path, exc.offset, exc.reason) from None
                    yield WALRecord(path, exc.offset, "torn", exc.reason)
                    return
                if rec is None:
                    break
                typ, payload, off = rec
                if typ == ENTRY:
                    value: Any = _decode(path, off, decode_entry, payload)
                elif typ == STATE:
                    value = _decode(path, off, decode_hard_state, payload)
                elif typ == SNAPSHOT:
                    value = _decode(path, off, _SNAP.unpack, payload)
                elif typ == CRC:
                    raise CorruptWALError(path, off, "crc record inside a segment")
                else:
                    value = payload
                yield WALRecord(path, off, _TYPE_NAMES[typ], value)
            if not is_tail and dec.offset != len(data):
                raise CorruptWALError(path, dec.offset, f"segment ends before its last "
                                                        f"{len(data) - dec.offset} bytes")
            chain = dec.chain
        finally:
            dec.close()


def verify(dirpath: str) -> VerifyReport:
    """Check every segment in `dirpath` without changing anything.

    The report's `corrupt` names the first damaged record (file, offset,
    reason); `torn` a torn tail, which open() would truncate.
    """
    report = VerifyReport(segments=[s.name for s in list_segments(dirpath)])
    try:
        for rec in dump(dirpath):
            if rec.type == "torn":
                report.torn = Problem(rec.file, rec.offset, rec.value, True)
                break
            report.records += 1
            if rec.type == "entry":
                report.entries += 1
                if report.first_index == 0:
                    report.first_index = rec.value.index
                report.last_index = rec.value.index
            elif rec.type == "state":
                report.hard_state = rec.value
            elif rec.type == "snapshot":
                report.snapshots.append(rec.value)
    except CorruptWALError as exc:
        report.corrupt = Problem(exc.file, exc.offset, exc.reason, False)
    return report


def repair(dirpath: str) -> Problem | None:
    """Zero-fill a torn tail of the last segment; return what was repaired.

    Takes the lock. Refuses (CorruptWALError) when the damage is not a torn
    tail: mid-log corruption needs an operator, not a truncation.
    """
    lock = fileutil.DirLock(dirpath)
    try:
        report = verify(dirpath)
        if report.corrupt is not None:
            raise CorruptWALError(report.corrupt.file, report.corrupt.offset, report.corrupt.reason)
        if report.torn is None:
            return None
        data = _read_file(report.torn.file)
        end = _last_nonzero_end(data)
        fd = os.open(report.torn.file, os.O_RDWR)
        try:
            fileutil.zero_range(fd, report.torn.offset, end)
            fileutil.fdatasync(fd)
        finally:
            os.close(fd)
        logger.warning("wal: repaired torn tail in %s at offset %d (%s): zeroed %d bytes",
                       report.torn.file, report.torn.offset, report.torn.reason,
                       end - report.torn.offset)
        return report.torn
    finally:
        lock.release()


def valid_snapshot_entries(dirpath: str) -> list[tuple[int, int]]:
    """Return the (term, index) of every snapshot marker the WAL's hard state
    has committed, oldest first (etcd: wal.ValidSnapshotEntries).

    A Snapshotter should only load one of these: a snapshot file whose marker
    never reached the WAL was orphaned by a crash. Read-only, no lock; a
    torn tail is ignored, corruption raises CorruptWALError. Entries are
    checked but not kept (the node calls this at every start).
    """
    segs = list_segments(dirpath)
    if not segs:
        raise FileNotFoundError(f"wal: no WAL segments in {dirpath}")
    _check_sequence(dirpath, segs)
    snaps: list[tuple[int, int]] = []
    state = HardState()
    chain = None
    skip: list[Entry] = []
    for k, seg in enumerate(segs):
        path = os.path.join(dirpath, seg.name)
        data = _read_file(path)
        dec = Decoder(data, chain)
        try:
            _read_segment_start(path, dec)
            while True:
                try:
                    # after = 2**64 - 1: every entry is decoded, none kept.
                    rec = dec.decode(skip, 0xFFFFFFFFFFFFFFFF)
                except CorruptRecordError as exc:
                    raise CorruptWALError(path, exc.offset, exc.reason) from None
                except TornTailError as exc:
                    if k != len(segs) - 1:
                        raise CorruptWALError(path, exc.offset, exc.reason) from None
                    rec = None
                if rec is None:
                    break
                typ, payload, off = rec
                if typ == SNAPSHOT:
                    index, term = _decode(path, off, _SNAP.unpack, payload)
                    snaps.append((term, index))
                elif typ == STATE:
                    state = _decode(path, off, decode_hard_state, payload)
                elif typ == CRC:
                    raise CorruptWALError(path, off, "crc record inside a segment")
            chain = dec.chain
        finally:
            dec.close()
    return [(t, i) for t, i in snaps if i <= state.commit]
