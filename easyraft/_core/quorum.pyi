# Type stub for the compiled easyraft._core.quorum (majority quorum math).
# tests/core/test_stubs.py checks it against the compiled module.
import enum
from collections.abc import Sequence

class VoteResult(enum.IntEnum):
    VotePending = 1
    VoteLost = 2
    VoteWon = 3

def committed_index(acked: Sequence[int]) -> int: ...
def vote_result(granted: int, rejected: int, n: int) -> VoteResult: ...
