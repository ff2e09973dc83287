# Ring buffer of the last indexes of in-flight MsgApp to one follower
# (etcd: tracker/inflights.go). Bounds optimistic replication: when full,
# the leader stops sending to that follower until acks free slots.
from libc.stdint cimport uint64_t

cdef class Inflights:
    cdef Py_ssize_t start     # slot of the oldest in-flight message
    cdef Py_ssize_t count     # number in flight; invariant: 0 <= count <= size
    cdef Py_ssize_t size      # capacity (max_inflight_msgs)
    cdef uint64_t *buffer     # buffer[(start + i) % size], ascending indexes

    cdef int add(self, uint64_t index) except -1
    cdef void free_le(self, uint64_t to) noexcept
    cdef void free_first_one(self) noexcept
    cdef bint full(self) noexcept
    cdef void reset(self) noexcept
