"""easyraft: Raft consensus for Python with etcd raft's semantics."""
from easyraft._version import __version__
from easyraft.errors import (
    BusyError,
    CodecError,
    ConfigError,
    CorruptSnapshotError,
    CorruptWALError,
    ProposalDroppedError,
    RaftError,
    RaftTimeoutError,
    ServerStoppedError,
    TooLargeError,
    WALLockedError,
)

__all__ = [
    "BusyError",
    "CodecError",
    "ConfigError",
    "CorruptSnapshotError",
    "CorruptWALError",
    "ProposalDroppedError",
    "RaftError",
    "RaftTimeoutError",
    "ServerStoppedError",
    "TooLargeError",
    "WALLockedError",
    "__version__",
]
