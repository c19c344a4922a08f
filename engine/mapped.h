/*
 * mapped.h - memory the ranks of one host can map (rdt_mem_alloc), and this process's mappings
 * of its peers' allocations, for the direct collectives of exec.c.
 */
#ifndef RDT_MAPPED_H
#define RDT_MAPPED_H

#include <stddef.h>
#include <stdint.h>

#include "rdmatrain.h"

/* Where a buffer lives, as a peer on the same host needs to know it to map it. Exchanged
 * between processes of one host only (native byte order). serial 0: not in an allocation. */
typedef struct rdt_mapped_desc {
    uint64_t serial; /* the allocation's number in its process (its memfd's name says it) */
    uint64_t size;   /* bytes of the allocation (its memfd's size) */
    uint64_t offset; /* of the buffer inside it */
    int32_t pid;     /* the owner */
    int32_t fd;      /* the allocation's memfd in the owner */
} rdt_mapped_desc_t;

/* Fill @p d for [buf, buf + len) if that range lies inside one rdt_mem_alloc allocation of this
 * process (returns 1), else zero it (returns 0; also for a NULL @p buf). */
int rdt_mapped_find(const void *buf, size_t len, rdt_mapped_desc_t *d);

/* A communicator's mappings of its peers' allocations (opaque; NULL is an empty cache). */
typedef struct rdt_mapped_cache rdt_mapped_cache_t;

/* A call begins (creating the cache on first use): what rdt_mapped_peer returns stays mapped
 * until the next rdt_mapped_call. -1: out of memory. */
int rdt_mapped_call(rdt_mapped_cache_t **cache_p);

/* The address in this process of the buffer @p d describes in rank @p rank's process, mapping
 * the allocation on first use (read-write, shared). On failure returns NULL with one sentence in
 * @p err (what failed and why; the caller names the rank and host). */
unsigned char *rdt_mapped_peer(rdt_mapped_cache_t **cache_p, int rank, const rdt_mapped_desc_t *d,
                               char *err, size_t errlen);

/* Unmap everything and free the cache. */
void rdt_mapped_cache_free(rdt_mapped_cache_t *cache);

#endif /* RDT_MAPPED_H */
