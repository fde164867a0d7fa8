# cython: language_level=3
# Per-source flood limit for the ring responder: the GCRA token buckets of metallb_fast/dataplane/floodlimit.py
# (conform() and TokenBuckets, same integers, same key, same least-recently-used eviction) in C, so that a loop
# can charge a frame without the GIL. One table per loop; its owner serialises access (the loop's table mutex).
# Only struct declarations and inline functions: cimporting this needs no compiled module of its own.

from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp, memcpy, memset


from wire_contract cimport FLOOD_KEY_LEN  # floodlimit.KEY_LEN: mac[6], family, 0, address[16]


cdef enum:
    FLOOD_NONE = -1


cdef struct FloodBucket:
    uint8_t key[FLOOD_KEY_LEN]
    uint64_t tat  # theoretical arrival time, CLOCK_MONOTONIC ns
    int32_t chain  # next bucket in the same hash slot
    int32_t older  # least-recently-used list: towards the eviction end
    int32_t newer


cdef struct FloodTable:
    uint64_t interval_ns  # T; 0 = off
    uint64_t tolerance_ns  # tau = (burst - 1) * T
    uint32_t capacity
    uint32_t count
    uint32_t mask  # hash slots - 1 (a power of two, at least twice the capacity)
    int32_t *slots
    FloodBucket *buckets
    int32_t oldest
    int32_t newest


cdef inline void flood_table_free(FloodTable *t) noexcept nogil:
    free(t.slots)
    free(t.buckets)
    t.slots = NULL
    t.buckets = NULL


cdef inline int flood_table_init(FloodTable *t, uint32_t capacity) noexcept nogil:
    """0, or -1 when out of memory (nothing to free then)."""
    cdef uint32_t n_slots = 1
    memset(t, 0, sizeof(FloodTable))
    while n_slots < 2 * capacity:
        n_slots <<= 1
    t.slots = <int32_t *>calloc(n_slots, sizeof(int32_t))
    t.buckets = <FloodBucket *>calloc(capacity, sizeof(FloodBucket))
    if t.slots == NULL or t.buckets == NULL:
        flood_table_free(t)
        return -1
    memset(t.slots, 0xFF, n_slots * sizeof(int32_t))  # FLOOD_NONE in every slot
    t.capacity = capacity
    t.mask = n_slots - 1
    t.oldest = FLOOD_NONE
    t.newest = FLOOD_NONE
    return 0


cdef inline uint32_t _flood_hash(const uint8_t *key) noexcept nogil:
    cdef uint32_t h = 2166136261u  # FNV-1a
    cdef int i
    for i in range(FLOOD_KEY_LEN):
        h = (h ^ key[i]) * 16777619u
    return h


cdef inline void _flood_unlink_lru(FloodTable *t, int32_t i) noexcept nogil:
    cdef FloodBucket *b = &t.buckets[i]
    if b.older != FLOOD_NONE:
        t.buckets[b.older].newer = b.newer
    else:
        t.oldest = b.newer
    if b.newer != FLOOD_NONE:
        t.buckets[b.newer].older = b.older
    else:
        t.newest = b.older


cdef inline void _flood_append_lru(FloodTable *t, int32_t i) noexcept nogil:
    t.buckets[i].older = t.newest
    t.buckets[i].newer = FLOOD_NONE
    if t.newest != FLOOD_NONE:
        t.buckets[t.newest].newer = i
    else:
        t.oldest = i
    t.newest = i


cdef inline int32_t *_flood_slot_of(FloodTable *t, const uint8_t *key) noexcept nogil:
    """The link (slot head or a bucket's chain field) that holds key's bucket, or the FLOOD_NONE link ending its
    chain."""
    cdef int32_t *link = &t.slots[_flood_hash(key) & t.mask]
    while link[0] != FLOOD_NONE and memcmp(t.buckets[link[0]].key, key, FLOOD_KEY_LEN) != 0:
        link = &t.buckets[link[0]].chain
    return link


cdef inline int32_t _flood_insert(FloodTable *t, const uint8_t *key) noexcept nogil:
    """A bucket for a source not in the table: a free one, else the least recently used one's, evicted."""
    cdef int32_t i
    cdef int32_t *link
    if t.count < t.capacity:
        i = t.count
        t.count += 1
    else:
        i = t.oldest
        link = _flood_slot_of(t, t.buckets[i].key)
        link[0] = t.buckets[i].chain
        _flood_unlink_lru(t, i)
    link = _flood_slot_of(t, key)  # the FLOOD_NONE link ending key's chain
    memcpy(t.buckets[i].key, key, FLOOD_KEY_LEN)
    t.buckets[i].chain = FLOOD_NONE
    link[0] = i
    _flood_append_lru(t, i)
    return i


cdef inline bint flood_allow(FloodTable *t, const uint8_t *key, uint64_t now_ns) noexcept nogil:
    """TokenBuckets.allow: whether a frame from `key` at now_ns is answered; charges its bucket when it is. A
    lookup refreshes the source (over the limit or not); a source not seen before starts with a full bucket."""
    cdef int32_t i
    cdef uint64_t start
    if t.interval_ns == 0:
        return True
    i = _flood_slot_of(t, key)[0]
    if i == FLOOD_NONE:
        i = _flood_insert(t, key)
        t.buckets[i].tat = now_ns + t.interval_ns
        return True
    _flood_unlink_lru(t, i)
    _flood_append_lru(t, i)
    start = t.buckets[i].tat if t.buckets[i].tat > now_ns else now_ns
    if start - now_ns > t.tolerance_ns:
        return False
    t.buckets[i].tat = start + t.interval_ns
    return True


cdef inline void flood_key(uint8_t *key, const uint8_t *frame, uint8_t family, const uint8_t *sender,
                           int addr_len) noexcept nogil:
    """floodlimit.source_key: the Ethernet source, the family, a zero, the sender address padded with zeros."""
    memset(key, 0, FLOOD_KEY_LEN)
    memcpy(key, frame + 6, 6)
    key[6] = family
    memcpy(key + 8, sender, addr_len)
