"""Pending linearizable reads awaiting a heartbeat quorum (etcd: read_only.go).

Raft thesis §6.4: the leader records its commit index, confirms it is still
leader with a round of heartbeats, and only then releases the read.
"""
cimport cython
from libc.stdint cimport uint64_t
from easyraft._core.types cimport Message, Entry, msg_entries


@cython.final
cdef class ReadIndexStatus:
    pass


@cython.final
cdef class ReadOnly:
    def __cinit__(self):
        self.pending_read_index = {}
        self.read_index_queue = []

    cdef void add_request(self, uint64_t index, Message m):
        cdef bytes ctx = (<Entry>msg_entries(m)[0]).data
        cdef ReadIndexStatus rs
        if ctx in self.pending_read_index:
            return
        rs = ReadIndexStatus.__new__(ReadIndexStatus)
        rs.req = m
        rs.index = index
        rs.acks = {}
        self.pending_read_index[ctx] = rs
        self.read_index_queue.append(ctx)

    cdef dict recv_ack(self, uint64_t id, bytes ctx):
        cdef ReadIndexStatus rs = self.pending_read_index.get(ctx)
        if rs is None:
            return None
        rs.acks[id] = True
        return rs.acks

    cdef list advance(self, Message m):
        # Release every request queued up to and including m.context: a
        # quorum acknowledging a later heartbeat confirms the earlier ones.
        cdef Py_ssize_t i, found = -1
        cdef list out = []
        for i in range(len(self.read_index_queue)):
            if self.read_index_queue[i] == m.context:
                found = i
                break
        if found < 0:
            return out
        for ctx in self.read_index_queue[:found + 1]:
            out.append(self.pending_read_index.pop(ctx))
        del self.read_index_queue[:found + 1]
        return out

    cdef bytes last_pending_request_ctx(self):
        if not self.read_index_queue:
            return b""
        return self.read_index_queue[-1]
