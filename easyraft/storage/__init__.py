"""Durable storage: the write-ahead log and snapshot files (DESIGN §5).

Nothing here is imported by the core; the Node drives both.
"""
from easyraft.storage.snap import Snapshotter
from easyraft.storage.wal import WAL

__all__ = ["WAL", "Snapshotter"]
