# ReadIndex bookkeeping on the leader (etcd: read_only.go, ReadOnlySafe).
from libc.stdint cimport uint64_t
from easyraft._core.types cimport Message

cdef class ReadIndexStatus:
    cdef readonly Message req       # the MsgReadIndex being served
    cdef readonly uint64_t index    # commit index when the request arrived
    cdef dict acks                  # voter id -> True, heartbeat acks seen

cdef class ReadOnly:
    cdef dict pending_read_index    # request ctx -> ReadIndexStatus
    cdef list read_index_queue      # request ctxs in arrival order

    cdef void add_request(self, uint64_t index, Message m)
    cdef dict recv_ack(self, uint64_t id, bytes ctx)
    cdef list advance(self, Message m)
    cdef bytes last_pending_request_ctx(self)
