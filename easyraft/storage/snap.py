"""Snapshot files (etcd: server/etcdserver/api/snap/snapshotter.go).

One file per snapshot, ``%016x-%016x.snap`` (term, index), so names sort
oldest to newest. Layout:

  8 bytes   magic b"ERSNAP\\x00\\x01" (format version 1)
  u32       CRC-32C of every byte after this field
  ...       one lz4 frame holding:
              u32 n | n bytes codec snapshot metadata (index, term, conf state)
              u32 count | count x (u64 id | u32 n | n bytes URL, UTF-8)
              u64 n | n bytes the application's snapshot data

The membership with URLs rides along with the conf state so that a node
restarted with its original config still knows the members added at run
time (DESIGN §3).

Writes are atomic: temp file, fsync, rename, fsync of the directory; a
crash leaves either the old set of files or the new one (plus a stray
``.tmp`` that purge() removes). A file that fails its CRC or format check
is renamed ``*.snap.broken`` on load (as etcd does) and the next older one
is tried, with a warning.
"""
from __future__ import annotations

import logging
import os
import re
import struct
import threading
from collections.abc import Iterable

import lz4.frame

from easyraft._core.codec import decode_snapshot_metadata, encode_snapshot_metadata
from easyraft._core.crc32c import crc32c
from easyraft._core.types import CodecError, Snapshot
from easyraft.errors import CorruptSnapshotError
from easyraft.storage import fileutil

logger = logging.getLogger("easyraft.snap")

MAGIC = b"ERSNAP\x00\x01"
_NAME_RE = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.snap$")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_PEER = struct.Struct("<QI")
_TMP_SUFFIX = ".tmp"
_BROKEN_SUFFIX = ".broken"


def snap_name(term: int, index: int) -> str:
    return f"{term:016x}-{index:016x}.snap"


def parse_snap_name(name: str) -> tuple[int, int] | None:
    """Return (term, index) for a snapshot file name, else None."""
    m = _NAME_RE.match(name)
    return (int(m.group(1), 16), int(m.group(2), 16)) if m else None


def encode_snapshot_file(snapshot: Snapshot, peers: dict[int, str]) -> bytes:
    """Return the file contents for `snapshot` and `peers` (id -> URL)."""
    meta = encode_snapshot_metadata(snapshot.metadata)
    parts = [_U32.pack(len(meta)), meta, _U32.pack(len(peers))]
    for node_id, url in sorted(peers.items()):
        raw = url.encode("utf-8")
        parts += [_PEER.pack(node_id, len(raw)), raw]
    parts += [_U64.pack(len(snapshot.data)), snapshot.data]
    body: bytes = lz4.frame.compress(b"".join(parts))
    return MAGIC + _U32.pack(crc32c(body)) + body


def decode_snapshot_file(raw: bytes, name: str = "<bytes>") -> tuple[Snapshot, dict[int, str]]:
    """Parse and check a snapshot file's contents; CorruptSnapshotError if bad."""
    def bad(reason: str) -> CorruptSnapshotError:
        return CorruptSnapshotError(f"snap: {name}: {reason}")

    if len(raw) < len(MAGIC) + 4 or raw[:len(MAGIC)] != MAGIC:
        raise bad("not a snapshot file (bad magic)")
    want = _U32.unpack_from(raw, len(MAGIC))[0]
    body = memoryview(raw)[len(MAGIC) + 4:]
    if crc32c(body) != want:
        raise bad("crc mismatch")
    try:
        plain = lz4.frame.decompress(body)
    except RuntimeError as exc:   # lz4 reports every frame error as RuntimeError
        raise bad(f"lz4: {exc}") from None
    try:
        pos = 0
        (n,) = _U32.unpack_from(plain, pos)
        pos += 4
        if pos + n > len(plain):
            raise bad("truncated metadata")
        meta = decode_snapshot_metadata(plain[pos:pos + n])
        pos += n
        (count,) = _U32.unpack_from(plain, pos)
        pos += 4
        peers = {}
        for _ in range(count):
            node_id, n = _PEER.unpack_from(plain, pos)
            pos += _PEER.size
            if pos + n > len(plain):
                raise bad("truncated peer URL")
            peers[node_id] = plain[pos:pos + n].decode("utf-8")
            pos += n
        (n,) = _U64.unpack_from(plain, pos)
        pos += 8
        if pos + n != len(plain):
            raise bad("data length does not match the file")
        data = plain[pos:pos + n]
    except (struct.error, CodecError, UnicodeDecodeError) as exc:
        raise bad(f"malformed body: {exc}") from None
    return Snapshot(data=data, metadata=meta), peers


class Snapshotter:
    """Save, load and purge snapshot files in one directory (made if missing)."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = dirpath
        if not os.path.isdir(dirpath):
            os.makedirs(dirpath, exist_ok=True)
            # The directory's own name must be durable before files in it
            # can be: a crash could otherwise lose the whole directory.
            fileutil.fsync_dir(os.path.dirname(os.path.abspath(dirpath)))

    def names(self) -> list[str]:
        """Snapshot file names, oldest first."""
        found = []
        for name in os.listdir(self.dirpath):
            parsed = parse_snap_name(name)
            if parsed is not None:
                found.append((parsed, name))
        found.sort()
        return [name for _, name in found]

    def save(self, snapshot: Snapshot, peers: dict[int, str]) -> str | None:
        """Write `snapshot` with the membership `peers` (id -> URL) durably.

        Returns the file name, or None for an empty snapshot (index 0),
        which etcd does not save either. Save the file before the WAL's
        snapshot marker: an orphaned file is harmless, a marker without its
        file is not.
        """
        meta = snapshot.metadata
        if meta.index == 0:
            return None
        name = snap_name(meta.term, meta.index)
        path = os.path.join(self.dirpath, name)
        # Unique per writer: the node writes its own snapshots on a worker
        # thread while one received from the leader may be saved on the loop.
        tmp = f"{path}.{os.getpid()}-{threading.get_ident()}{_TMP_SUFFIX}"
        raw = encode_snapshot_file(snapshot, peers)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0),
                     0o644)
        try:
            fileutil.pwrite_all(fd, raw, 0)
            fileutil.fsync(fd)
        except BaseException:
            os.close(fd)
            os.remove(tmp)   # never leave a partial file behind (etcd does the same)
            raise
        os.close(fd)
        os.rename(tmp, path)
        fileutil.fsync_dir(self.dirpath)
        return name

    def load(self, name: str) -> tuple[Snapshot, dict[int, str]]:
        """Load one snapshot file by name; CorruptSnapshotError if it is damaged."""
        path = os.path.join(self.dirpath, name)
        with open(path, "rb") as f:
            raw = f.read()
        snap, peers = decode_snapshot_file(raw, path)
        parsed = parse_snap_name(name)
        if parsed is not None and parsed != (snap.metadata.term, snap.metadata.index):
            raise CorruptSnapshotError(
                f"snap: {path}: holds term {snap.metadata.term} index {snap.metadata.index}, "
                f"not what its name says")
        return snap, peers

    def load_newest_available(
        self, valid: Iterable[tuple[int, int]] | None = None
    ) -> tuple[Snapshot, dict[int, str]] | None:
        """Return (snapshot, peers) from the newest loadable file, or None.

        `valid`, when given, is a collection of (term, index) pairs (e.g.
        wal.valid_snapshot_entries()): only those files are considered, so
        a file orphaned by a crash before its WAL marker is skipped. A
        damaged file is renamed *.broken with a warning and an older one is
        tried.
        """
        allowed = None if valid is None else {(int(t), int(i)) for t, i in valid}
        for name in reversed(self.names()):
            if allowed is not None and parse_snap_name(name) not in allowed:
                continue
            try:
                return self.load(name)
            except CorruptSnapshotError as exc:
                broken = os.path.join(self.dirpath, name + _BROKEN_SUFFIX)
                logger.warning("%s; renamed to %s, trying an older snapshot", exc, broken)
                os.rename(os.path.join(self.dirpath, name), broken)
        return None

    def purge(self, max_files: int, valid: Iterable[tuple[int, int]] | None = None, *,
              unlink: bool = True) -> list[str]:
        """Remove the oldest snapshot files while more than `max_files` remain.

        0 keeps everything. Never removes the newest file, nor the newest
        one in `valid` (the one recovery would load when a newer file is an
        orphan). Also removes stray temp files. Returns the names removed;
        with unlink=False those files are left for the caller to delete
        (fileutil.remove_files, from any thread: see WAL.purge).
        """
        for name in os.listdir(self.dirpath):
            if name.endswith(_TMP_SUFFIX) and ".snap" in name:
                os.remove(os.path.join(self.dirpath, name))
        if max_files <= 0:
            return []
        names = self.names()
        protected = set(names[-max_files:])
        if valid is not None:
            allowed = {(int(t), int(i)) for t, i in valid}
            for name in reversed(names):
                if parse_snap_name(name) in allowed:
                    protected.add(name)
                    break
        removed = [name for name in names if name not in protected]
        if removed:
            if unlink:
                fileutil.remove_files([os.path.join(self.dirpath, n) for n in removed])
            logger.info("snap: purged %d file(s) from %s", len(removed), self.dirpath)
        return removed
