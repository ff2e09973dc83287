"""The sans-IO raft core (compiled from easyraft/_core).

Deterministic and free of I/O, threads and clocks: time is ``tick()``,
randomness a seeded generator in :class:`CoreConfig`. Drive it with the
Ready cycle described in :mod:`easyraft._core.rawnode`.
"""
from easyraft._core.progress import ProgressState
from easyraft._core.quorum import VoteResult
from easyraft._core.raft import CAMPAIGN_TRANSFER_CTX, CoreConfig
from easyraft._core.rawnode import ProgressStatus, RawNode, Ready, Status
from easyraft._core.storage import MemoryStorage
from easyraft._core.types import (
    CodecError,
    CompactedError,
    ConfChange,
    ConfChangeError,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MsgType,
    ProposalDroppedError,
    RaftError,
    ReadState,
    SnapOutOfDateError,
    Snapshot,
    SnapshotMetadata,
    SoftState,
    StateType,
    StepLocalMsgError,
    StepPeerNotFoundError,
    UnavailableError,
)

__all__ = [
    "CAMPAIGN_TRANSFER_CTX",
    "CodecError",
    "CompactedError",
    "ConfChange",
    "ConfChangeError",
    "ConfChangeType",
    "ConfState",
    "CoreConfig",
    "Entry",
    "EntryType",
    "HardState",
    "MemoryStorage",
    "Message",
    "MsgType",
    "ProgressState",
    "ProgressStatus",
    "ProposalDroppedError",
    "RaftError",
    "RawNode",
    "ReadState",
    "Ready",
    "SnapOutOfDateError",
    "Snapshot",
    "SnapshotMetadata",
    "SoftState",
    "StateType",
    "Status",
    "StepLocalMsgError",
    "StepPeerNotFoundError",
    "UnavailableError",
    "VoteResult",
]
