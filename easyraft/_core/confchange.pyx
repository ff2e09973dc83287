"""Simple membership changes (etcd: confchange/confchange.go, Simple)."""
from libc.stdint cimport uint64_t

from easyraft._core.progress cimport Progress, ProgressTracker
from easyraft._core.types cimport (ConfChange, ConfState, ConfChangeAddNode,
                                   ConfChangeAddLearnerNode, ConfChangeRemoveNode,
                                   ConfChangeUpdateNode)


cdef void _init_progress(ProgressTracker prs, uint64_t id, uint64_t last_index, bint is_learner):
    # Probe a new member from our last index: the first MsgApp finds out
    # quickly whether it has anything at all. It counts as recently active
    # so CheckQuorum does not depose a leader that just added it.
    cdef Progress pr = prs.init_progress(id, 0, max(last_index, 1), is_learner)
    pr.recent_active = True


cdef str confchange_apply_simple(ProgressTracker prs, ConfChange cc, uint64_t last_index):
    cdef uint64_t id = cc.node_id
    cdef set voters = set(prs.voters)
    cdef set learners = set(prs.learners)
    cdef Progress pr
    if id == 0:
        # A change replaced with node 0 was refused upstream: ignore it.
        return None
    if cc.type == ConfChangeAddNode:
        if id in voters:
            return None
        pr = prs.get(id)
        if pr is None:
            _init_progress(prs, id, last_index, False)
        else:
            pr.is_learner = False   # promote a learner
        learners.discard(id)
        voters.add(id)
    elif cc.type == ConfChangeAddLearnerNode:
        if id in learners:
            return None
        if id in voters and len(voters) == 1:
            return f"demoting node {id} would leave no voter"
        pr = prs.get(id)
        if pr is None:
            _init_progress(prs, id, last_index, True)
        else:
            pr.is_learner = True    # demote a voter
        voters.discard(id)
        learners.add(id)
    elif cc.type == ConfChangeRemoveNode:
        if id in voters and len(voters) == 1:
            return f"removing node {id} would leave no voter"
        voters.discard(id)
        learners.discard(id)
        prs.progress.pop(id, None)
    elif cc.type == ConfChangeUpdateNode:
        # Only the peer URL changed; it lives above the core.
        return None
    else:
        return f"unknown conf change type {cc.type}"
    prs.set_config(tuple(voters), tuple(learners))
    return None


cdef void confchange_restore(ProgressTracker prs, ConfState cs, uint64_t last_index):
    prs.progress.clear()
    for id in cs.voters:
        _init_progress(prs, id, last_index, False)
    for id in cs.learners:
        _init_progress(prs, id, last_index, True)
    prs.set_config(cs.voters, cs.learners)
