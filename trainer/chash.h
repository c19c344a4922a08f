/*
 * chash.h - consistent hashing with virtual nodes, for placing parameter keys on the servers
 * of the parameter-server mode. Each server owns @p vnodes points on a 64-bit ring; a key goes
 * to the owner of the first point at or after the key's hash (wrapping). Adding one server to
 * S moves only the keys that now fall on its points: about 1/(S+1) of them.
 */
#ifndef RDT_TRAIN_CHASH_H
#define RDT_TRAIN_CHASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t hash;
    int server;
} rdt_chash_point_t;

typedef struct {
    int nservers;
    int vnodes;
    size_t npoints;
    rdt_chash_point_t *points; /* sorted by hash (ties by server) */
} rdt_chash_t;

/** 64-bit hash of a byte string (well mixed: FNV-1a followed by a 64-bit finaliser). */
uint64_t rdt_chash_hash(const void *data, size_t len);
/** The hash of a NUL-terminated key such as "layer1.w.3". */
uint64_t rdt_chash_key(const char *key);

/**
 * A ring of the servers with the given ids (any distinct ints, e.g. ranks), @p vnodes points
 * each (point j of server s hashes "server:<s>#<j>"). Returns 0, or -1 (bad arguments: no
 * servers, vnodes < 1, duplicate ids; or out of memory).
 */
int rdt_chash_init(rdt_chash_t *c, const int *server_ids, int nservers, int vnodes);
/** The server id that owns @p key_hash. */
int rdt_chash_lookup(const rdt_chash_t *c, uint64_t key_hash);
void rdt_chash_free(rdt_chash_t *c);

#endif
