# Type stub for the compiled easyraft._core.log. RaftLog has no Python-visible
# members beyond construction: the core uses it through its .pxd.
# tests/core/test_stubs.py checks it against the compiled module.
from typing import final

from easyraft._core.storage import MemoryStorage
from easyraft._core.types import CompactedError as CompactedError, RaftError as RaftError

@final
class RaftLog:
    def __init__(self, storage: MemoryStorage, max_next_ents_size: int = ...) -> None: ...
