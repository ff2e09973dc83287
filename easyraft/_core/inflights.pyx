"""In-flight append window (etcd: tracker/inflights.go)."""
cimport cython
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.stdint cimport uint64_t


@cython.final
cdef class Inflights:
    def __cinit__(self, Py_ssize_t size):
        if size <= 0:
            raise ValueError(f"raft: inflights size must be > 0, got {size}")
        self.buffer = <uint64_t *>PyMem_Malloc(size * sizeof(uint64_t))
        if self.buffer == NULL:
            raise MemoryError()
        self.size = size
        self.start = 0
        self.count = 0

    def __dealloc__(self):
        PyMem_Free(self.buffer)

    cdef int add(self, uint64_t index) except -1:
        # Callers check full() first (progress.is_paused); overflowing would
        # lose track of a message, so it is a bug, loudly.
        if self.count == self.size:
            raise AssertionError("raft: cannot add into a full inflights")
        cdef Py_ssize_t slot = self.start + self.count
        if slot >= self.size:
            slot -= self.size
        self.buffer[slot] = index
        self.count += 1
        return 0

    cdef void free_le(self, uint64_t to) noexcept:
        # Frees every in-flight message whose last index is <= to.
        if self.count == 0 or to < self.buffer[self.start]:
            return
        cdef Py_ssize_t i = 0, idx = self.start
        while i < self.count:
            if to < self.buffer[idx]:
                break
            idx += 1
            if idx >= self.size:
                idx -= self.size
            i += 1
        self.count -= i
        self.start = idx
        if self.count == 0:
            self.start = 0

    cdef void free_first_one(self) noexcept:
        if self.count:
            self.free_le(self.buffer[self.start])

    cdef bint full(self) noexcept:
        return self.count == self.size

    cdef void reset(self) noexcept:
        self.count = 0
        self.start = 0

    # Python-visible view for tests and status.
    def __len__(self):
        return self.count

    @property
    def capacity(self):
        return self.size

    def py_add(self, uint64_t index):
        self.add(index)

    def py_free_le(self, uint64_t to):
        self.free_le(to)

    def py_full(self):
        return self.full()
