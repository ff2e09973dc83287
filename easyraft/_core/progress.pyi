# Type stub for the compiled easyraft._core.progress (follower progress).
# tests/core/test_stubs.py checks it against the compiled module.
import enum
from typing import final

from easyraft._core.inflights import Inflights

class ProgressState(enum.IntEnum):
    StateProbe = 0
    StateReplicate = 1
    StateSnapshot = 2

@final
class Progress:
    # Writable fields (cdef public).
    match: int
    next: int
    state: int  # a ProgressState value
    pending_snapshot: int
    recent_active: bool
    probe_sent: bool
    is_learner: bool
    def __init__(self, match: int = 0, next: int = 1, max_inflight: int = 256,
                 is_learner: bool = False) -> None: ...
    @property
    def inflights(self) -> Inflights: ...
    @property
    def state_name(self) -> str: ...

@final
class ProgressTracker:
    def __init__(self, max_inflight: int) -> None: ...
    @property
    def voters(self) -> tuple[int, ...]: ...
    @property
    def learners(self) -> tuple[int, ...]: ...
    @property
    def progress(self) -> dict[int, Progress]: ...
    @property
    def max_inflight(self) -> int: ...
