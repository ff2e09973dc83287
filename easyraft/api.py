"""The RAFT_* functions of the C library, for code written against it.

Handles are RaftServer objects. Functions return the codes below instead of
raising; RAFT_GetLastError() says what went wrong in this thread's last call.
"""
from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from easyraft._version import __version__
from easyraft.callbacks import adapt
from easyraft.errors import (
    BusyError,
    ConfigError,
    ProposalDroppedError,
    RaftError,
    RaftTimeoutError,
    ServerStoppedError,
    TooLargeError,
)
from easyraft.server import RaftServer

RAFT_OK = 0
RAFT_ERR_NO_SERVER = 1
RAFT_ERR_TIMEOUT = 2
RAFT_ERR_DROPPED = 3
RAFT_ERR_INVALID = 4
RAFT_ERR_STOPPED = 5
RAFT_ERR_TOO_LARGE = 6
RAFT_ERR_BUSY = 7

RAFT_LOG_CRITICAL = -1
RAFT_LOG_ERROR = 0
RAFT_LOG_WARNING = 1
RAFT_LOG_NOTICE = 2
RAFT_LOG_INFO = 3
RAFT_LOG_DEBUG = 4
RAFT_LOG_TRACE = 5

# NOTICE sits between INFO and WARNING; TRACE below DEBUG.
NOTICE = 25
TRACE = 5
logging.addLevelName(NOTICE, "NOTICE")
logging.addLevelName(TRACE, "TRACE")
_LEVELS = {RAFT_LOG_CRITICAL: logging.CRITICAL, RAFT_LOG_ERROR: logging.ERROR,
           RAFT_LOG_WARNING: logging.WARNING, RAFT_LOG_NOTICE: NOTICE,
           RAFT_LOG_INFO: logging.INFO, RAFT_LOG_DEBUG: logging.DEBUG, RAFT_LOG_TRACE: TRACE}

_root = logging.getLogger("easyraft")
_state = threading.local()
_context: Any = None
_handler: logging.Handler | None = None


def _fail(code: int, err: BaseException | str) -> int:
    _state.last_error = str(err)
    return code


def _ok() -> int:
    _state.last_error = ""
    return RAFT_OK


def RAFT_GetLastError() -> str:  # noqa: N802 - the C library's name
    """What went wrong in this thread's last RAFT_* call ("" if nothing)."""
    return getattr(_state, "last_error", "")


def RAFT_SetContext(callbacks: Any) -> None:  # noqa: N802
    """Set the callbacks used by the next RAFT_NewRaftServer."""
    adapt(callbacks)    # refuse unusable objects now, not at server start
    global _context
    _context = callbacks


def RAFT_SetLogger(path: str | None, debug: int | bool = False) -> int:  # noqa: N802
    """Send the library's log to "stdout", "stderr", a file (appended) or nowhere (None)."""
    global _handler
    try:
        if path is None:
            handler: logging.Handler = logging.NullHandler()
        elif path == "stdout":
            handler = logging.StreamHandler(sys.stdout)
        elif path == "stderr":
            handler = logging.StreamHandler(sys.stderr)
        elif isinstance(path, str) and path:
            handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        else:
            return _fail(RAFT_ERR_INVALID, f"invalid log path {path!r}")
    except OSError as e:
        return _fail(RAFT_ERR_INVALID, f"cannot open log file {path!r}: {e}")
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if _handler is not None:
        _root.removeHandler(_handler)
        _handler.close()
    _handler = handler
    _root.addHandler(handler)
    _root.propagate = False
    _root.setLevel(logging.DEBUG if debug else logging.INFO)
    return _ok()


def RAFT_SetLogLevel(level: int) -> int:  # noqa: N802
    """Set the level: RAFT_LOG_CRITICAL (-1) .. RAFT_LOG_TRACE (5)."""
    if level not in _LEVELS:
        return _fail(RAFT_ERR_INVALID, f"unknown log level {level!r} (use -1..5)")
    _root.setLevel(_LEVELS[level])
    return _ok()


def RAFT_GetVersion(buf: bytearray | None = None) -> str:  # noqa: N802
    """Return the version; also copy it, NUL-terminated, into buf when given."""
    v = __version__
    if buf is not None:
        raw = v.encode()[: max(0, len(buf) - 1)] + b"\0"
        if len(buf):
            buf[: len(raw)] = raw
    return v


def RAFT_NewRaftServer(ctx: Any, json_config: Any) -> RaftServer | None:  # noqa: N802
    """Start a server; None on failure (RAFT_GetLastError says why)."""
    if _context is None:
        _fail(RAFT_ERR_INVALID, "no callbacks: call RAFT_SetContext first")
        return None
    try:
        server = RaftServer(json_config, _context, ctx=ctx)
    except (RaftError, ValueError, TypeError, OSError) as e:
        _fail(RAFT_ERR_INVALID, e)
        return None
    _ok()
    return server


def RAFT_DeleteRaftServer(handle: Any) -> None:  # noqa: N802
    """Stop a server and release it; deleting twice is harmless."""
    if isinstance(handle, RaftServer):
        handle.close()


def _server(handle: Any) -> RaftServer | None:
    # A closed (deleted) server is no server; one that stopped by itself
    # (removed from the cluster, failed) still answers RAFT_ERR_STOPPED.
    if not isinstance(handle, RaftServer) or handle.closed:
        return None
    return handle


def _run(handle: Any, fn: Any) -> int:
    s = _server(handle)
    if s is None:
        return _fail(RAFT_ERR_NO_SERVER, "unknown or deleted server handle")
    try:
        fn(s)
    except TooLargeError as e:
        return _fail(RAFT_ERR_TOO_LARGE, e)
    except BusyError as e:
        return _fail(RAFT_ERR_BUSY, e)
    except RaftTimeoutError as e:
        return _fail(RAFT_ERR_TIMEOUT, e)
    except ProposalDroppedError as e:
        return _fail(RAFT_ERR_DROPPED, e)
    except ServerStoppedError as e:
        return _fail(RAFT_ERR_STOPPED, e)
    except (ConfigError, ValueError, TypeError) as e:
        return _fail(RAFT_ERR_INVALID, e)
    except RaftError as e:
        return _fail(RAFT_ERR_STOPPED, e)
    return _ok()


def RAFT_Propose(handle: Any, data: Any, size: int | None = None,  # noqa: N802
                 timeoutms: int | None = None) -> int:
    """Propose data (its first `size` bytes); 0 once accepted for replication."""
    if timeoutms is not None and (isinstance(timeoutms, bool) or not isinstance(timeoutms, int)
                                  or timeoutms < 0):
        return _fail(RAFT_ERR_INVALID, f"timeoutms must be a non-negative int, got {timeoutms!r}")
    timeout = None if timeoutms is None else timeoutms / 1000.0
    return _run(handle, lambda s: s.propose(data, timeout, size=size))


def RAFT_Snapshot(handle: Any) -> int:  # noqa: N802
    """Take and save a snapshot now."""
    return _run(handle, lambda s: s.snapshot(60.0))


def RAFT_AddServer(handle: Any, node_id: int, url: str) -> int:  # noqa: N802
    """Add a voter; 0 once the change is committed and applied here."""
    return _run(handle, lambda s: s.add_server(node_id, url, _membership_timeout(s)))


def RAFT_DelServer(handle: Any, node_id: int) -> int:  # noqa: N802
    """Remove a member; 0 once the change is committed and applied here."""
    return _run(handle, lambda s: s.remove_server(node_id, _membership_timeout(s)))


def RAFT_ChangeServer(handle: Any, node_id: int, url: str) -> int:  # noqa: N802
    """Change a member's URL; 0 once committed and applied here."""
    return _run(handle, lambda s: s.change_server(node_id, url, _membership_timeout(s)))


def _membership_timeout(s: RaftServer) -> float:
    # A few election timeouts: room for a leader election in between.
    c = s.config
    return max(5.0, 5 * c.election_tick * c.tickms / 1000.0)


def RAFT_GetStatus(handle: Any) -> str | None:  # noqa: N802
    """This node's status as JSON text (None for a bad handle)."""
    import json
    s = _server(handle)
    if s is None:
        _fail(RAFT_ERR_NO_SERVER, "unknown or deleted server handle")
        return None
    try:
        return json.dumps(s.status())
    except RaftError as e:
        _fail(RAFT_ERR_STOPPED, e)
        return None


def RAFT_GetPeersStatus(handle: Any) -> str | None:  # noqa: N802
    """Per-peer id, url, reachable, active (seconds since heard, -1 never) as JSON."""
    import json
    s = _server(handle)
    if s is None:
        _fail(RAFT_ERR_NO_SERVER, "unknown or deleted server handle")
        return None
    try:
        return json.dumps(s.peers_status())
    except RaftError as e:
        _fail(RAFT_ERR_STOPPED, e)
        return None
