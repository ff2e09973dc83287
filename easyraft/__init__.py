"""easyraft: Raft consensus for Python with etcd raft's semantics.

Importing the package is cheap: the server and the RAFT_* functions load
on first use.
"""
from typing import TYPE_CHECKING, Any

from easyraft._version import __version__
from easyraft.callbacks import Callbacks, State
from easyraft.config import Config
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

if TYPE_CHECKING:
    from easyraft.server import RaftServer

_API_NAMES = (
    "RAFT_OK", "RAFT_ERR_NO_SERVER", "RAFT_ERR_TIMEOUT", "RAFT_ERR_DROPPED", "RAFT_ERR_INVALID",
    "RAFT_ERR_STOPPED", "RAFT_ERR_TOO_LARGE", "RAFT_ERR_BUSY",
    "RAFT_LOG_CRITICAL", "RAFT_LOG_ERROR", "RAFT_LOG_WARNING", "RAFT_LOG_NOTICE",
    "RAFT_LOG_INFO", "RAFT_LOG_DEBUG", "RAFT_LOG_TRACE",
    "RAFT_SetContext", "RAFT_SetLogger", "RAFT_SetLogLevel", "RAFT_GetVersion",
    "RAFT_NewRaftServer", "RAFT_DeleteRaftServer", "RAFT_Propose", "RAFT_Snapshot",
    "RAFT_AddServer", "RAFT_DelServer", "RAFT_ChangeServer", "RAFT_GetStatus",
    "RAFT_GetPeersStatus", "RAFT_GetLastError",
)


def __getattr__(name: str) -> Any:
    if name == "RaftServer":
        from easyraft.server import RaftServer
        return RaftServer
    if name in _API_NAMES:
        from easyraft import api
        return getattr(api, name)
    if name == "aio":
        import importlib
        return importlib.import_module("easyraft.aio")
    raise AttributeError(f"module 'easyraft' has no attribute {name!r}")


__all__ = [
    "BusyError",
    "Callbacks",
    "CodecError",
    "Config",
    "ConfigError",
    "CorruptSnapshotError",
    "CorruptWALError",
    "ProposalDroppedError",
    "RaftError",
    "RaftServer",
    "RaftTimeoutError",
    "ServerStoppedError",
    "State",
    "TooLargeError",
    "WALLockedError",
    "__version__",
    *_API_NAMES,
]
