"""Node: one raft group's engine on an asyncio loop (etcd raftexample's raft.go).

The node owns the RawNode, its MemoryStorage, the WAL, the snapshot files,
the peer transport and the applier thread, and drives them with etcd's Ready
cycle::

    tick / step / propose  ->  rd = rawnode.ready()
      1. save a received snapshot (file, then WAL marker), then the hard
         state and entries to the WAL: one fdatasync when rd.must_sync
      2. append the entries to MemoryStorage
      3. send rd.messages (after 1: never promise what is not on disk)
      4. apply conf changes here, hand normal entries to the applier thread
      5. rawnode.advance(rd)

Everything here runs on the loop's thread; only the applier thread runs
user code. Entry payloads carry a one-byte envelope so that a proposal can
be recognised when it commits (propose_and_wait) without the user seeing it.
"""
from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from easyraft._core.types import MsgType
from easyraft.applier import Applier
from easyraft.callbacks import Callbacks, State
from easyraft.config import Config, validate_url
from easyraft.core import (
    ConfChange,
    ConfChangeType,
    CoreConfig,
    Entry,
    EntryType,
    MemoryStorage,
    Message,
    ProposalDroppedError,
    RaftError,
    RawNode,
    Snapshot,
    SnapshotMetadata,
    StateType,
)
from easyraft.errors import (
    BusyError,
    ConfigError,
    RaftTimeoutError,
    ServerStoppedError,
    TooLargeError,
)
from easyraft.storage import fileutil, wal as wal_mod
from easyraft.storage.snap import Snapshotter
from easyraft.storage.wal import WAL
from easyraft.transport import TLSConfig, Transport

logger = logging.getLogger("easyraft.node")

# Entry payload envelope. Raw: b"\x00" + user data. Tagged: b"\x01" + u64
# proposer id + u64 sequence + user data, used by propose_and_wait.
_RAW = b"\x00"
_TAGGED = 1
_TAG = struct.Struct("<BQQ")

# Snapshot data envelope: magic, u32 length of a JSON membership record,
# the record, then the user's snapshot bytes. The membership (ids, URLs,
# removed ids) travels with the snapshot so a node caught up by snapshot
# knows every member's URL.
_SNAP_MAGIC = b"ERS1"
_SNAP_HEAD = struct.Struct("<4sI")

_STATE = {StateType.StateFollower: State.FOLLOWER, StateType.StateCandidate: State.CANDIDATE,
          StateType.StateLeader: State.LEADER, StateType.StatePreCandidate: State.PRE_CANDIDATE}


def encode_snapshot_data(peers: dict[int, str], removed: set[int], data: bytes) -> bytes:
    meta = json.dumps({"peers": {str(k): v for k, v in sorted(peers.items())},
                       "removed": sorted(removed)}).encode()
    return _SNAP_HEAD.pack(_SNAP_MAGIC, len(meta)) + meta + data


def decode_snapshot_data(blob: bytes) -> tuple[dict[int, str], set[int], bytes]:
    if len(blob) < _SNAP_HEAD.size:
        raise RaftError("node: snapshot data too short for its envelope")
    magic, n = _SNAP_HEAD.unpack_from(blob)
    if magic != _SNAP_MAGIC or _SNAP_HEAD.size + n > len(blob):
        raise RaftError("node: snapshot data has no valid membership envelope")
    try:
        meta = json.loads(blob[_SNAP_HEAD.size:_SNAP_HEAD.size + n])
        peers = {int(k): str(v) for k, v in meta["peers"].items()}
        removed = {int(i) for i in meta.get("removed", [])}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise RaftError(f"node: snapshot membership record is malformed: {e}") from None
    return peers, removed, blob[_SNAP_HEAD.size + n:]


def _check_payload(data: Any, size: int | None, limit: int) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    n = len(data)
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size > n:
            raise ValueError(f"size must be in 1..{n}, got {size!r}")
        data, n = data[:size], size
    if n == 0:
        raise ValueError("data must not be empty")
    if n > limit:
        raise TooLargeError(f"proposal of {n} bytes exceeds max_size_per_msg ({limit})")
    return bytes(data)


class Node:
    """A raft group member on the running asyncio loop (see module doc)."""

    def __init__(self, config: Config, callbacks: Callbacks) -> None:
        self.config = config
        self.callbacks = callbacks
        self.id = config.id
        self.cluster_id = config.cluster_id
        self.node_id = config.id          # RaftHandler
        self.loop: asyncio.AbstractEventLoop | None = None
        self.rawnode: RawNode | None = None
        self.storage = MemoryStorage()
        self.wal: WAL | None = None
        self.snapshotter = Snapshotter(config.snapdir)
        self.transport: Transport | None = None
        self.applier: Applier | None = None
        self.peers: dict[int, str] = dict(config.peer_urls)
        self.removed: set[int] = set()
        self.state = State.FOLLOWER
        self.failed: BaseException | None = None
        self.stopped = asyncio.Event()
        self._running = False
        self._stopping = False
        self._ready_scheduled = False
        self._ticker: asyncio.TimerHandle | None = None
        self._purger: asyncio.TimerHandle | None = None
        # Purged files not deleted yet, oldest first, and the one deletion
        # job that works through them in that order (see _purge_files).
        self._unlink_queue: list[str] = []
        self._unlinking: asyncio.Future[int] | None = None
        # Waiters on the applier's progress: heap of (index, seq, callback).
        self._applied = 0
        self._applied_waiters: list[tuple[int, int, Callable[[BaseException | None], None]]] = []
        self._seq = itertools.count(1)
        self._tagged: dict[int, asyncio.Future[tuple[int, int]]] = {}
        self._reads: dict[bytes, asyncio.Future[int]] = {}
        self._pending_cc: tuple[ConfChange, asyncio.Future[None]] | None = None
        # Highest index handed to the applier (or restored by snapshot).
        self._dispatched = 0
        self._snap_index = 0
        self._snap_in_progress = False
        self._snap_write: asyncio.Future[Snapshot] | None = None   # file being written
        self.snapshots_taken = 0
        self._loop_thread: int | None = None
        self._status_cache: dict[str, Any] = {"id": config.id, "cluster_id": config.cluster_id,
                                               "state": self.state.name, "running": False}

    # --- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Open storage, replay it, start peers; return once the replayed
        entries are applied (leader wait is the caller's choice)."""
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        cfg = self.config
        try:
            restart = self._open_storage()
        except BaseException:
            if self.wal is not None:
                self.wal.close()
            raise
        applied = self.storage.first_index() - 1
        self._dispatched = self._applied = self._snap_index = applied
        self.rawnode = RawNode(CoreConfig(
            id=self.id, election_tick=cfg.election_tick, heartbeat_tick=cfg.heartbeat_tick,
            storage=self.storage, applied=applied, max_size_per_msg=cfg.max_size_per_msg,
            max_inflight_msgs=cfg.max_inflight_msgs, pre_vote=cfg.pre_vote,
            check_quorum=cfg.check_quorum, seed=int.from_bytes(os.urandom(8), "little"),
            max_uncommitted_entries_size=max(64 * cfg.max_size_per_msg, 64 << 20),
            logger=logging.getLogger("easyraft.raft")))
        if not restart and not cfg.join:
            self.rawnode.bootstrap([(p.id, p.url.encode()) for p in cfg.peers])
        self.applier = Applier(self.callbacks, self.loop, on_applied=self._on_applied,
                               on_snapshot=self._on_snapshot_taken, on_fatal=self._on_fatal,
                               name=f"easyraft-applier-{self.cluster_id}-{self.id}")
        self.applier.start()
        snap = self.storage.snapshot()
        if snap.metadata.index > 0:
            _, _, user_data = decode_snapshot_data(snap.data)
            self.applier.put(("restore", user_data, snap.metadata.term, snap.metadata.index))
        tls = None
        if cfg.tls_cert_file or cfg.tls_ca_file:
            tls = TLSConfig(cert_file=cfg.tls_cert_file, key_file=cfg.tls_key_file,
                            ca_file=cfg.tls_ca_file)
        self.transport = Transport(self, cfg.url, max_size_per_msg=cfg.max_size_per_msg, tls=tls)
        try:
            await self.transport.start()
        except BaseException:
            self.applier.stop(1.0)
            assert self.wal is not None
            self.wal.close()
            raise
        for pid, url in self.peers.items():
            if pid != self.id:
                self.transport.add_peer(pid, url)
        self._running = True
        self._ticker = self.loop.call_later(cfg.tickms / 1000.0, self._tick)
        if cfg.purge_file_interval > 0:
            self._purger = self.loop.call_later(cfg.purge_file_interval, self._purge_files)
        replay_to = self.storage.initial_state()[0].commit
        self._kick()
        if replay_to > self._applied:
            try:
                await self.wait_applied(replay_to, None)
            except ServerStoppedError:
                if self.failed is None:
                    raise
                # recover_from_snapshot failed: the server exists, failed,
                # and answers every call with an error (it never exits).
                return
        logger.info("node %d of cluster %d started (%s) at term %d, commit %d, applied %d",
                    self.id, self.cluster_id, "restarted" if restart else
                    ("joining" if cfg.join else "new cluster"), self.rawnode.term,
                    self.rawnode.committed, self._applied)

    def _open_storage(self) -> bool:
        """Load snapshot + WAL into MemoryStorage. Returns True on a restart."""
        cfg = self.config
        meta = json.dumps({"id": cfg.id, "cluster_id": cfg.cluster_id}).encode()
        if not wal_mod.exists(cfg.waldir):
            self.wal = WAL.create(cfg.waldir, meta, segment_size=wal_mod.SEGMENT_SIZE)
            return False
        loaded = self.snapshotter.load_newest_available(
            valid=wal_mod.valid_snapshot_entries(cfg.waldir))
        snap_index = snap_term = 0
        if loaded is not None:
            snap, peers = loaded
            snap_index, snap_term = snap.metadata.index, snap.metadata.term
            speers, removed, _ = decode_snapshot_data(snap.data)
            self.peers.update(speers)
            self.peers.update(peers)
            self.removed |= removed
            self.storage.apply_snapshot(snap)
        self.wal = WAL.open(cfg.waldir, snap_index=snap_index, snap_term=snap_term,
                            segment_size=wal_mod.SEGMENT_SIZE)
        wal_meta, hs, entries = self.wal.read_all()
        try:
            m = json.loads(wal_meta)
            ok = m.get("id") == cfg.id and m.get("cluster_id") == cfg.cluster_id
        except (ValueError, AttributeError):
            ok = False
        if not ok:
            raise ConfigError("waldir", f"{cfg.waldir} holds the WAL of another node or "
                                        f"cluster (metadata {wal_meta[:80]!r})")
        if not hs.is_empty():
            self.storage.set_hard_state(hs)
        self.storage.append(entries)
        return True

    async def stop(self) -> None:
        """Stop ticking and talking, finish applying, close files. Idempotent."""
        if self._stopping:
            await self.stopped.wait()
            return
        self._stopping = True
        self._running = False
        for h in (self._ticker, self._purger):
            if h is not None:
                h.cancel()
        try:
            if self.transport is not None:
                await self.transport.stop()
            if self.applier is not None:
                await asyncio.get_running_loop().run_in_executor(None, self.applier.stop, 30.0)
        finally:
            try:
                # Worker-thread jobs first: a snapshot being written installs
                # itself through the WAL, and no file may change once closed.
                for job in (self._snap_write, self._unlinking):
                    if job is not None:
                        await asyncio.gather(job, return_exceptions=True)
            finally:
                self._close()

    def _close(self) -> None:
        try:
            if self.wal is not None:
                self.wal.close()
        finally:
            err = ServerStoppedError("server stopped")
            waiters: list[asyncio.Future[Any]] = [*self._tagged.values(), *self._reads.values()]
            for fut in waiters:
                if not fut.done():
                    fut.set_exception(err)
            if self._pending_cc is not None and not self._pending_cc[1].done():
                self._pending_cc[1].set_exception(err)
            self._status_cache = self._build_status()
            self.stopped.set()
            logger.info("node %d of cluster %d stopped", self.id, self.cluster_id)

    def check_running(self) -> None:
        if self.failed is not None:
            raise ServerStoppedError(f"server failed: {self.failed}")
        if not self._running:
            raise ServerStoppedError("server is stopped")

    # --- the Ready cycle -------------------------------------------------

    def _kick(self) -> None:
        if not self._ready_scheduled and self._running:
            self._ready_scheduled = True
            assert self.loop is not None
            self.loop.call_soon(self._process_ready)

    def _tick(self) -> None:
        if not self._running:
            return
        assert self.rawnode is not None and self.loop is not None
        self.rawnode.tick()
        self._kick()
        self._status_cache = self._build_status()
        self._ticker = self.loop.call_later(self.config.tickms / 1000.0, self._tick)

    def _process_ready(self) -> None:
        self._ready_scheduled = False
        rn = self.rawnode
        if rn is None or not self._running:
            return
        try:
            while rn.has_ready():
                self._handle_ready(rn.ready())
        except Exception as e:
            # Storage failed (disk full, I/O error): the node must not go on
            # as if its state were durable.
            logger.critical("node %d: fatal error in the ready loop: %r", self.id, e,
                            exc_info=True)
            self._on_fatal(e)

    def _handle_ready(self, rd: Any) -> None:
        rn = self.rawnode
        assert rn is not None and self.wal is not None and self.transport is not None
        if rd.soft_state is not None:
            state = _STATE[rd.soft_state.raft_state]
            if state != self.state:
                self.state = state
                assert self.applier is not None
                self.applier.put(("state", state))
        if rd.snapshot is not None:
            self._save_received_snapshot(rd.snapshot)
        if rd.hard_state is not None or rd.entries:
            self.wal.save(rd.hard_state, rd.entries, rd.must_sync and self.config.fsync)
        if rd.entries:
            self.storage.append(rd.entries)
        if rd.hard_state is not None:
            self.storage.set_hard_state(rd.hard_state)
        if rd.messages:
            self.transport.send(self._outgoing(rd.messages))
        if rd.committed_entries:
            self._dispatch(rd.committed_entries)
        for rs in rd.read_states:
            fut = self._reads.pop(rs.request_ctx, None)
            if fut is not None and not fut.done():
                fut.set_result(rs.index)
        rn.advance(rd)
        self._maybe_snapshot()

    def _outgoing(self, messages: list[Message]) -> list[Message]:
        # A snapshot older than a member's AddNode does not list that member,
        # and the member would refuse it (it must find itself in the
        # configuration). Send it a fresh one instead: this node applied the
        # AddNode (it tracks the member), so a snapshot taken now includes it.
        assert self.rawnode is not None
        out = messages
        for m in messages:
            if m.type != MsgType.MsgSnap:
                continue
            assert m.snapshot is not None  # the core always attaches one to a MsgSnap
            cs = m.snapshot.metadata.conf_state
            if m.to in cs.voters or m.to in cs.learners:
                continue
            if out is messages:
                out = list(messages)
            out.remove(m)
            logger.info("node %d: snapshot at %d predates member %d; taking a new one",
                        self.id, m.snapshot.metadata.index, m.to)
            self.rawnode.report_snapshot(m.to, False)
            if not self._snap_in_progress:
                self._request_snapshot(None)
        return out

    def _save_received_snapshot(self, snap: Snapshot) -> None:
        # The snapshot file first, then the WAL marker: recovery only trusts
        # a snapshot the WAL points at (raftexample's saveSnap order).
        assert self.wal is not None and self.applier is not None
        peers, removed, user_data = decode_snapshot_data(snap.data)
        self.snapshotter.save(snap, peers)
        self.wal.save_snapshot(snap.metadata.index, snap.metadata.term)
        self.storage.apply_snapshot(snap)
        self._set_membership(peers, removed)
        self.applier.put(("restore", user_data, snap.metadata.term, snap.metadata.index))
        self._dispatched = self._snap_index = snap.metadata.index

    def _dispatch(self, entries: list[Entry]) -> None:
        # Conf changes apply here, in log order with the rest; normal
        # entries go to the applier thread in one batch.
        assert self.applier is not None and self.rawnode is not None
        batch: list[tuple[bytes, int, int]] = []
        for e in entries:
            if e.type == EntryType.EntryConfChange:
                if batch:
                    self.applier.put(("apply", batch, batch[-1][2]))
                    batch = []
                self._apply_conf_change(e)
                # Nothing for the applier, but progress must still advance.
                self.applier.put(("apply", [], e.index))
            elif e.data:
                data = e.data
                if data[0] == _TAGGED and len(data) >= _TAG.size:
                    _, proposer, seq = _TAG.unpack_from(data)
                    if proposer == self.id:
                        self._on_tagged_commit(seq, e.term, e.index)
                    batch.append((data[_TAG.size:], e.term, e.index))
                elif data[:1] == _RAW:
                    batch.append((data[1:], e.term, e.index))
                else:
                    logger.error("node %d: entry %d has an unknown envelope 0x%02x; skipped",
                                 self.id, e.index, data[0])
                    self.applier.put(("apply", [], e.index))
            # Empty entries (a new leader's no-op) only move the index.
        if batch:
            self.applier.put(("apply", batch, batch[-1][2]))
        elif entries:
            self.applier.put(("apply", [], entries[-1].index))
        self._dispatched = entries[-1].index

    def _apply_conf_change(self, e: Entry) -> None:
        assert self.rawnode is not None and self.transport is not None
        try:
            cc = ConfChange.decode(e.data)
        except RaftError as err:
            logger.error("node %d: undecodable conf change at index %d: %s", self.id, e.index, err)
            return
        url = cc.context.decode("utf-8", errors="replace") if cc.context else ""
        self.rawnode.apply_conf_change(cc)
        t = cc.type
        if t in (ConfChangeType.ConfChangeAddNode, ConfChangeType.ConfChangeAddLearnerNode,
                 ConfChangeType.ConfChangeUpdateNode):
            if url:
                self.peers[cc.node_id] = url
                if cc.node_id != self.id:
                    self.transport.add_peer(cc.node_id, url)   # adds, or moves to the new URL
        elif t == ConfChangeType.ConfChangeRemoveNode:
            self.removed.add(cc.node_id)
            self.peers.pop(cc.node_id, None)
            if cc.node_id != self.id:
                self.transport.remove_peer(cc.node_id)
        logger.info("node %d applied conf change %s of node %d at index %d", self.id,
                    ConfChangeType(t).name, cc.node_id, e.index)
        pending = self._pending_cc
        if pending is not None and pending[0] == cc:
            self._pending_cc = None
            fut = pending[1]
            if not fut.done():
                fut.set_result(None)
        if t == ConfChangeType.ConfChangeRemoveNode and cc.node_id == self.id:
            logger.warning("node %d was removed from cluster %d; stopping", self.id,
                           self.cluster_id)
            assert self.loop is not None
            self.loop.create_task(self.stop())

    def _set_membership(self, peers: dict[int, str], removed: set[int]) -> None:
        assert self.transport is not None
        self.removed = set(removed)
        for pid in list(self.peers):
            if pid not in peers and pid != self.id:
                self.transport.remove_peer(pid)
        for pid, url in peers.items():
            if pid != self.id:
                self.transport.add_peer(pid, url)
        self.peers = dict(peers)
        self.peers.setdefault(self.id, self.config.url)

    # --- applier progress -------------------------------------------------

    def _on_applied(self, index: int) -> None:
        if index <= self._applied:
            return
        self._applied = index
        w = self._applied_waiters
        while w and w[0][0] <= index:
            _, _, cb = heapq.heappop(w)
            cb(None)

    def _after_applied(self, index: int, cb: Callable[[BaseException | None], None]) -> None:
        # cb(None) once `index` is applied, cb(error) if the node fails first.
        if self.failed is not None:
            cb(ServerStoppedError(f"server failed: {self.failed}"))
        elif index <= self._applied:
            cb(None)
        else:
            heapq.heappush(self._applied_waiters, (index, next(self._seq), cb))

    async def wait_applied(self, index: int, timeout: float | None) -> None:
        """Wait until the applier has applied `index`."""
        assert self.loop is not None
        fut: asyncio.Future[None] = self.loop.create_future()
        self._after_applied(index, lambda err: _settle(fut, None, err))
        await self._wait(fut, timeout, f"apply of index {index}")

    def _on_fatal(self, exc: BaseException) -> None:
        if self.failed is None:
            self.failed = exc
            logger.critical("node %d of cluster %d failed: %s", self.id, self.cluster_id, exc)
            err = ServerStoppedError(f"server failed: {exc}")
            waiters, self._applied_waiters = self._applied_waiters, []
            for _, _, cb in waiters:
                cb(err)
            assert self.loop is not None
            self.loop.create_task(self.stop())

    async def _wait(self, fut: asyncio.Future[Any], timeout: float | None, what: str) -> Any:
        # fut belongs to this wait alone (whoever settles it checks done()),
        # so a timer failing it is all a deadline needs: wait_for + shield
        # cost a task, two futures and their callbacks per proposal, a
        # sixth of the leader loop's time in the cluster benchmark.
        if timeout is None or fut.done():
            return await fut
        assert self.loop is not None
        timer = self.loop.call_later(timeout, _expire, fut, timeout, what)
        try:
            return await fut
        finally:
            timer.cancel()

    # --- snapshots -------------------------------------------------------

    def _maybe_snapshot(self) -> None:
        cfg = self.config
        if (cfg.manual_snap or self._snap_in_progress or cfg.snap_count == 0
                or self._dispatched - self._snap_index < cfg.snap_count):
            return
        self._request_snapshot(None)

    def _request_snapshot(self, fut: asyncio.Future[int] | None) -> None:
        assert self.applier is not None and self.rawnode is not None
        index = self._dispatched
        if index <= self._snap_index:
            if fut is not None and not fut.done():
                fut.set_result(self._snap_index)
            return
        self._snap_in_progress = True
        # Membership as of `index`: conf changes up to it were applied on
        # this thread when they were dispatched.
        token = (index, self.rawnode.conf_state, dict(self.peers), set(self.removed), fut)
        self.applier.put(("snapshot", index, token))

    def _on_snapshot_taken(self, token: Any, result: Any) -> None:
        # The file is written on a worker thread: encoding, compressing and
        # fsyncing a large state on the loop held up heartbeats long enough
        # to cost leadership. The loop only checks before and, once the file
        # is durable, installs the snapshot in memory and marks it in the WAL.
        index, conf_state, peers, removed, fut = token
        try:
            if isinstance(result, BaseException):
                raise result
            if not self._running:
                raise ServerStoppedError("server is stopping")
            if index <= self.storage.snapshot().metadata.index:
                raise RaftError(f"snapshot at {index} is older than the one already held")
            meta = SnapshotMetadata(index=index, term=self.storage.term(index),
                                    conf_state=conf_state)
        except Exception as e:  # noqa: BLE001 - a failed snapshot is reported, the node goes on
            self._snap_in_progress = False
            self._snapshot_failed(index, fut, e)
            return
        assert self.loop is not None
        write = self.loop.run_in_executor(None, self._write_snapshot, meta, peers, removed,
                                          result)
        self._snap_write = write
        write.add_done_callback(functools.partial(self._on_snapshot_written, meta, fut))

    def _write_snapshot(self, meta: SnapshotMetadata, peers: dict[int, str], removed: set[int],
                        data: bytes) -> Snapshot:
        # Worker thread: touches only the new snapshot file.
        snap = Snapshot(encode_snapshot_data(peers, removed, data), meta)
        self.snapshotter.save(snap, peers)
        return snap

    def _on_snapshot_written(self, meta: SnapshotMetadata, fut: asyncio.Future[int] | None,
                             write: asyncio.Future[Snapshot]) -> None:
        self._snap_write = None
        self._snap_in_progress = False
        index = meta.index
        try:
            snap = write.result()
            if index <= self.storage.snapshot().metadata.index:
                # A snapshot from the leader was installed meanwhile; this
                # file has no WAL marker, so recovery ignores it and purging
                # removes it.
                raise RaftError(f"snapshot at {index} is older than the one already held")
            assert self.wal is not None
            self.storage.create_snapshot(index, meta.conf_state, snap.data)
            self.wal.save_snapshot(index, meta.term)
            self._snap_index = index
            self.snapshots_taken += 1
            # Keep some entries so slow followers catch up from the log, not
            # from a whole snapshot.
            compact_to = index - self.config.snapshot_entries
            if compact_to > self.storage.first_index():
                self.storage.compact(compact_to)
            self.wal.release_to(index)
            logger.info("node %d saved snapshot at index %d (log compacted to %d)", self.id,
                        index, self.storage.first_index() - 1)
            if fut is not None and not fut.done():
                fut.set_result(index)
        except Exception as e:  # noqa: BLE001 - a failed snapshot is reported, the node goes on
            self._snapshot_failed(index, fut, e)

    def _snapshot_failed(self, index: int, fut: asyncio.Future[int] | None,
                         e: BaseException) -> None:
        logger.error("node %d: snapshot at index %d failed: %s", self.id, index, e)
        if fut is not None and not fut.done():
            fut.set_exception(e)

    def _purge_files(self) -> None:
        if not self._running:
            return
        assert self.wal is not None and self.loop is not None
        paths: list[str] = []
        try:
            # Decided here, deleted on a worker thread: unlinking a 64 MiB
            # segment took ~20 ms (page cache eviction), a stall of every
            # heartbeat and proposal if done on the loop.
            if self.config.max_wal_files:
                paths += [os.path.join(self.wal.dirpath, n)
                          for n in self.wal.purge(self.config.max_wal_files, unlink=False)]
            # Not while a snapshot file is being written: its temp file
            # would look stray.
            if self.config.max_snap_files and self._snap_write is None:
                paths += [os.path.join(self.snapshotter.dirpath, n)
                          for n in self.snapshotter.purge(self.config.max_snap_files,
                                                          unlink=False)]
        except OSError as e:
            logger.warning("node %d: purging old files failed: %s", self.id, e)
        self._unlink_queue += paths
        self._drain_unlink_queue()
        self._purger = self.loop.call_later(self.config.purge_file_interval, self._purge_files)

    def _drain_unlink_queue(self) -> None:
        # One job at a time over the queue, in order, stopping at a failure
        # (retried next purge): segments deleted out of order would leave a
        # gap that recovery refuses.
        if self._unlinking is not None or not self._unlink_queue:
            return
        assert self.loop is not None
        job = self.loop.run_in_executor(None, self._remove_files, list(self._unlink_queue))
        self._unlinking = job
        job.add_done_callback(self._unlinked)

    def _remove_files(self, paths: list[str]) -> int:
        try:
            done = fileutil.remove_files(paths)
        except OSError as e:
            done = 0
            logger.warning("node %d: removing purged file %s failed: %s", self.id, paths[0], e)
        else:
            if done < len(paths):
                logger.warning("node %d: removing purged file %s failed; retrying later",
                               self.id, paths[done])
        return done

    def _unlinked(self, job: asyncio.Future[int]) -> None:
        self._unlinking = None
        done = job.result() if not job.cancelled() and job.exception() is None else 0
        del self._unlink_queue[:done]
        if done and self._running:
            self._drain_unlink_queue()      # whatever was queued meanwhile

    async def snapshot(self, timeout: float | None = None) -> int:
        """Take a snapshot at the last dispatched index now; returns its index."""
        self.check_running()
        assert self.loop is not None
        if self._snap_in_progress:
            raise BusyError("a snapshot is already being taken")
        fut: asyncio.Future[int] = self.loop.create_future()
        self._request_snapshot(fut)
        return await self._wait(fut, timeout, "the snapshot")  # type: ignore[no-any-return]

    # --- proposals -------------------------------------------------------

    def _default_timeout(self, timeout: float | None) -> float:
        if timeout is None:
            return self.config.election_tick * self.config.tickms / 1000.0
        if timeout < 0:
            raise ValueError(f"timeout must be >= 0, got {timeout}")
        return timeout

    async def _until_accepted(self, step: Callable[[], None], timeout: float | None,
                              what: str) -> None:
        # Retry while there is no leader (or the pipeline is full) until the
        # deadline; the core has not taken the entry, so retrying is safe.
        deadline = time.monotonic() + self._default_timeout(timeout)
        while True:
            self.check_running()
            try:
                step()
                self._kick()
                return
            except ProposalDroppedError as e:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ProposalDroppedError(f"{what} not accepted: {e}") from None
                await asyncio.sleep(min(remaining, self.config.tickms / 1000.0))

    async def propose(self, data: bytes, size: int | None = None,
                      timeout: float | None = None) -> None:
        """Hand `data` to raft for replication (forwarded to the leader)."""
        self.check_running()
        payload = _RAW + _check_payload(data, size, self.config.max_size_per_msg)
        assert self.rawnode is not None
        rn = self.rawnode
        await self._until_accepted(lambda: rn.propose(payload), timeout, "proposal")

    async def propose_and_wait(self, data: bytes, timeout: float | None = None) -> tuple[int, int]:
        """Propose and wait until the entry is committed and applied here."""
        self.check_running()
        user = _check_payload(data, None, self.config.max_size_per_msg)
        assert self.loop is not None and self.rawnode is not None
        seq = next(self._seq)
        fut: asyncio.Future[tuple[int, int]] = self.loop.create_future()
        self._tagged[seq] = fut
        payload = _TAG.pack(_TAGGED, self.id, seq) + user
        rn = self.rawnode
        t0 = time.monotonic()
        timeout = self._default_timeout(timeout)
        try:
            await self._until_accepted(lambda: rn.propose(payload), timeout, "proposal")
            remaining = max(0.0, timeout - (time.monotonic() - t0))
            return await self._wait(fut, remaining, "the proposal to commit")  # type: ignore
        finally:
            self._tagged.pop(seq, None)

    def _on_tagged_commit(self, seq: int, term: int, index: int) -> None:
        fut = self._tagged.get(seq)
        if fut is not None:
            self._after_applied(index, lambda err: _settle(fut, (term, index), err))

    async def read_barrier(self, timeout: float | None = None) -> int:
        """Return a linearizable read index once it is applied here (ReadIndex)."""
        self.check_running()
        assert self.loop is not None and self.rawnode is not None
        timeout = self._default_timeout(timeout)
        t0 = time.monotonic()
        ctx = next(self._seq).to_bytes(8, "little") + os.urandom(8)
        fut: asyncio.Future[int] = self.loop.create_future()
        self._reads[ctx] = fut
        rn = self.rawnode

        def ask() -> None:
            if rn.lead == 0:
                raise ProposalDroppedError("no leader")
            rn.read_index(ctx)
        try:
            await self._until_accepted(ask, timeout, "read barrier")
            index = await self._wait(fut, max(0.0, timeout - (time.monotonic() - t0)),
                                     "the read index")
            await self.wait_applied(index, max(0.0, timeout - (time.monotonic() - t0)))
            return index  # type: ignore[no-any-return]
        finally:
            self._reads.pop(ctx, None)

    # --- membership ------------------------------------------------------

    async def _conf_change(self, cc: ConfChange, timeout: float | None) -> None:
        self.check_running()
        assert self.loop is not None and self.rawnode is not None
        if self._pending_cc is not None:
            raise BusyError("a membership change is already in progress on this server")
        timeout = self._default_timeout(timeout)
        fut: asyncio.Future[None] = self.loop.create_future()
        self._pending_cc = (cc, fut)
        rn = self.rawnode
        t0 = time.monotonic()
        try:
            try:
                await self._until_accepted(lambda: rn.propose_conf_change(cc), timeout,
                                           "membership change")
            except ProposalDroppedError as e:
                if "conf change refused" in str(e):
                    raise BusyError(str(e)) from None
                raise
            await self._wait(fut, max(0.0, timeout - (time.monotonic() - t0)),
                             "the membership change to apply")
        finally:
            if self._pending_cc is not None and self._pending_cc[1] is fut:
                self._pending_cc = None

    async def add_server(self, node_id: int, url: str, timeout: float | None = None) -> None:
        _check_id(node_id)
        validate_url(url, "url")
        if node_id in self.removed:
            raise ValueError(f"node id {node_id} was removed from this cluster and cannot be "
                             f"reused")
        await self._conf_change(ConfChange(ConfChangeType.ConfChangeAddNode, node_id,
                                           url.encode()), timeout)

    async def add_learner(self, node_id: int, url: str, timeout: float | None = None) -> None:
        _check_id(node_id)
        validate_url(url, "url")
        await self._conf_change(ConfChange(ConfChangeType.ConfChangeAddLearnerNode, node_id,
                                           url.encode()), timeout)

    async def remove_server(self, node_id: int, timeout: float | None = None) -> None:
        _check_id(node_id)
        await self._conf_change(ConfChange(ConfChangeType.ConfChangeRemoveNode, node_id, b""),
                                timeout)

    async def change_server(self, node_id: int, url: str, timeout: float | None = None) -> None:
        _check_id(node_id)
        validate_url(url, "url")
        await self._conf_change(ConfChange(ConfChangeType.ConfChangeUpdateNode, node_id,
                                           url.encode()), timeout)

    async def transfer_leadership(self, node_id: int, timeout: float | None = None) -> None:
        self.check_running()
        _check_id(node_id)
        assert self.rawnode is not None
        if node_id not in self.rawnode.conf_state.voters:
            raise ValueError(f"node {node_id} is not a voter")
        timeout = self._default_timeout(timeout)
        deadline = time.monotonic() + timeout
        while self.rawnode.lead != node_id:
            self.check_running()
            if self.rawnode.lead != 0 and self.rawnode.lead != node_id:
                self.rawnode.transfer_leader(node_id)
                self._kick()
            if time.monotonic() >= deadline:
                raise RaftTimeoutError(f"leadership did not move to {node_id} within "
                                       f"{timeout:.3f}s")
            await asyncio.sleep(self.config.tickms / 1000.0)

    async def wait_leader(self, timeout: float) -> int:
        """Wait until a leader is known; returns its id (0 on timeout)."""
        assert self.rawnode is not None
        deadline = time.monotonic() + timeout
        while self.rawnode.lead == 0 and time.monotonic() < deadline and self._running:
            await asyncio.sleep(min(self.config.tickms / 1000.0, 0.02))
        return int(self.rawnode.lead)

    # --- RaftHandler (called by the transport on the loop) ---------------

    def process(self, messages: list[Message]) -> None:
        rn = self.rawnode
        if rn is None or not self._running:
            return
        for m in messages:
            try:
                rn.step(m)
            except RaftError as e:
                logger.debug("node %d: dropped %s from %d: %s", self.id,
                             MsgType(m.type).name, m.frm, e)
            except Exception:   # one bad message must not cost the rest of the batch
                logger.warning("node %d: stepping %s from %d failed", self.id,
                               MsgType(m.type).name, m.frm, exc_info=True)
        self._kick()

    async def process_snapshot(self, message: Message) -> None:
        if self.rawnode is None or not self._running:
            raise ServerStoppedError("server is stopped")
        assert message.snapshot is not None  # SnapshotReceiver refuses a MsgSnap without one
        decode_snapshot_data(message.snapshot.data)   # refuse a foreign envelope early
        self.process([message])

    def report_unreachable(self, peer_id: int) -> None:
        if self.rawnode is not None and self._running:
            self.rawnode.report_unreachable(peer_id)
            self._kick()

    def report_snapshot(self, peer_id: int, ok: bool) -> None:
        if self.rawnode is not None and self._running:
            self.rawnode.report_snapshot(peer_id, ok)
            self._kick()

    def is_removed(self, peer_id: int) -> bool:
        return peer_id in self.removed

    def status(self) -> dict[str, Any]:
        """This node's status, callable from any thread.

        The core is not thread-safe, so off the loop's thread (the shared
        listener may run on another loop) this returns the copy the loop
        refreshes on every tick.
        """
        if self._loop_thread is not None and threading.get_ident() != self._loop_thread:
            return dict(self._status_cache)
        return self._build_status()

    def _build_status(self) -> dict[str, Any]:
        rn = self.rawnode
        st = rn.status() if rn is not None else None
        snap = self.storage.snapshot().metadata
        d: dict[str, Any] = {
            "id": self.id,
            "cluster_id": self.cluster_id,
            "state": self.state.name,
            "term": st.term if st else 0,
            "vote": st.vote if st else 0,
            "leader": st.lead if st else 0,
            "commit": st.commit if st else 0,
            "applied": self._applied,
            "snapshot_index": snap.index,
            "first_index": self.storage.first_index(),
            "last_index": st.last_index if st else self.storage.last_index(),
            "voters": list(st.voters) if st else [],
            "learners": list(st.learners) if st else [],
            "running": self._running,
            "failed": None if self.failed is None else str(self.failed),
            "commit_errors": self.applier.commit_errors if self.applier else 0,
        }
        if st is not None and st.progress:
            d["progress"] = {str(pid): {"match": p.match, "next": p.next, "state": p.state}
                             for pid, p in st.progress.items()}
        return d

    def peers_status(self) -> list[dict[str, Any]]:
        if self.transport is None:
            return []
        return [{k: p[k] for k in ("id", "url", "reachable", "active")}
                for p in self.transport.peer_status()]


def _expire(fut: asyncio.Future[Any], timeout: float, what: str) -> None:
    if not fut.done():
        fut.set_exception(RaftTimeoutError(f"timed out after {timeout:.3f}s waiting for "
                                           f"{what}; the outcome is unknown"))


def _settle(fut: asyncio.Future[Any], result: Any, err: BaseException | None) -> None:
    if not fut.done():
        if err is None:
            fut.set_result(result)
        else:
            fut.set_exception(err)


def _check_id(node_id: Any) -> None:
    if isinstance(node_id, bool) or not isinstance(node_id, int) or not 0 < node_id < (1 << 64):
        raise ValueError(f"node id must be an integer in 1..2**64-1, got {node_id!r}")
