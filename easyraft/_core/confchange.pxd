# Simple (one node at a time) membership changes applied to a tracker
# (etcd: confchange/confchange.go, Changer.Simple). Joint consensus is not
# offered: with one change at a time, old and new majorities always overlap
# (Raft thesis §4.1).
from libc.stdint cimport uint64_t
from easyraft._core.progress cimport ProgressTracker
from easyraft._core.types cimport ConfChange, ConfState

# Apply cc to prs in place. Returns an error message (str) when the change
# must be ignored (it would leave no voter), else None. Deterministic, so
# every node ignores the same committed change.
cdef str confchange_apply_simple(ProgressTracker prs, ConfChange cc, uint64_t last_index)

# Rebuild prs from a persisted ConfState (etcd: confchange.Restore).
cdef void confchange_restore(ProgressTracker prs, ConfState cs, uint64_t last_index)
