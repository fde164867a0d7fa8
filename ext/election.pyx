# cython: language_level=3, boundscheck=False, wraparound=False
"""The layer-2 election's inner loop in C: which node's SHA-256("<node>#<key>") is the smallest.

The speaker runs it for every Service it plans, over every candidate node (500 nodes: 500 hashes). The decision
stays in metallb_fast/speaker/election.py; this only replaces `min(candidates, key=node_hash)` there, and a test
checks both give the same node. The hash is libcrypto's SHA256_Init/Update/Final when it can be opened (they use
the CPU's SHA instructions: ~0.1 us per node instead of ~0.55 here), else ext/sha256.h.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint32_t
from libc.string cimport memcmp, memcpy
from posix.dlfcn cimport RTLD_NOW, dlopen, dlsym


cdef extern from "sha256.h":
    void mlbf_sha256_pair(const uint8_t *first, size_t first_len, const uint8_t *second, size_t second_len,
                          uint32_t out[8])

# OpenSSL's low-level SHA-256 (its one-shot SHA256() looks the digest up through EVP on every call in 3.x, which
# costs more than the hash). The context is opaque here: SHA256_CTX is 112 bytes; 256 leave room.
ctypedef int (*sha256_init)(void *context) noexcept
ctypedef int (*sha256_update)(void *context, const void *data, size_t length) noexcept
ctypedef int (*sha256_final)(unsigned char *digest, void *context) noexcept

cdef sha256_init openssl_init = NULL
cdef sha256_update openssl_update = NULL
cdef sha256_final openssl_final = NULL
cdef void *libcrypto = dlopen(b"libcrypto.so.3", RTLD_NOW)
if libcrypto != NULL:
    openssl_init = <sha256_init>dlsym(libcrypto, b"SHA256_Init")
    openssl_update = <sha256_update>dlsym(libcrypto, b"SHA256_Update")
    openssl_final = <sha256_final>dlsym(libcrypto, b"SHA256_Final")
cdef bint openssl_sha256 = openssl_init != NULL and openssl_update != NULL and openssl_final != NULL

OPENSSL = openssl_sha256


cdef inline void _digest(const uint8_t *prefix, size_t prefix_len, const uint8_t *key, size_t key_len,
                         bint openssl, uint8_t out[32]) noexcept:
    cdef unsigned long long context[32]  # aligned, larger than SHA256_CTX
    cdef uint32_t words[8]
    cdef int i
    if openssl:
        openssl_init(context)
        openssl_update(context, prefix, prefix_len)
        openssl_update(context, key, key_len)
        openssl_final(out, context)
        return
    mlbf_sha256_pair(prefix, prefix_len, key, key_len, words)
    for i in range(8):  # big-endian words: the digest's bytes in order
        out[4 * i] = words[i] >> 24
        out[4 * i + 1] = (words[i] >> 16) & 0xFF
        out[4 * i + 2] = (words[i] >> 8) & 0xFF
        out[4 * i + 3] = words[i] & 0xFF


cdef Py_ssize_t _lowest(list prefixes, bytes key, bint openssl):
    cdef uint8_t best[32]
    cdef uint8_t digest[32]
    cdef Py_ssize_t best_index = -1, i
    cdef bytes prefix
    cdef const uint8_t *key_data = <const uint8_t *>PyBytes_AS_STRING(key)
    cdef size_t key_len = PyBytes_GET_SIZE(key)
    for i in range(len(prefixes)):
        prefix = prefixes[i]
        _digest(<const uint8_t *>PyBytes_AS_STRING(prefix), PyBytes_GET_SIZE(prefix), key_data, key_len, openssl,
                digest)
        if best_index < 0 or memcmp(digest, best, 32) < 0:
            memcpy(best, digest, 32)
            best_index = i
    return best_index


def lowest_hash(list prefixes, bytes key):
    """The index in `prefixes` (each b"<node>#") of the smallest SHA-256(prefix + key); -1 when there is none."""
    return _lowest(prefixes, key, openssl_sha256)


def lowest_hash_portable(list prefixes, bytes key):
    """lowest_hash with ext/sha256.h whatever libcrypto offers (what a host without it runs; tests compare both)."""
    return _lowest(prefixes, key, False)
