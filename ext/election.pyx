# cython: language_level=3, boundscheck=False, wraparound=False
"""The layer-2 election's inner loop in C: which node's SHA-256("<node>#<key>") is the smallest.

The speaker runs it for every Service it plans, over every candidate node (500 nodes: 500 hashes). The decision
stays in metallb_fast/speaker/election.py; this only replaces `min(candidates, key=node_hash)` there, and a test
checks both give the same node.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint32_t


cdef extern from "sha256.h":
    void mlbf_sha256_pair(const uint8_t *first, size_t first_len, const uint8_t *second, size_t second_len,
                          uint32_t out[8])


cdef inline bint _smaller(const uint32_t *a, const uint32_t *b) noexcept:
    cdef int word
    for word in range(8):
        if a[word] != b[word]:
            return a[word] < b[word]
    return False


def lowest_hash(list prefixes, bytes key):
    """The index in `prefixes` (each b"<node>#") of the smallest SHA-256(prefix + key); -1 when there is none."""
    cdef uint32_t best[8]
    cdef uint32_t digest[8]
    cdef Py_ssize_t best_index = -1, i
    cdef bytes prefix
    cdef const uint8_t *key_data = <const uint8_t *>PyBytes_AS_STRING(key)
    cdef size_t key_len = PyBytes_GET_SIZE(key)
    for i in range(len(prefixes)):
        prefix = prefixes[i]
        mlbf_sha256_pair(<const uint8_t *>PyBytes_AS_STRING(prefix), PyBytes_GET_SIZE(prefix), key_data, key_len,
                         digest)
        if best_index >= 0 and not _smaller(digest, best):
            continue
        best = digest
        best_index = i
    return best_index
