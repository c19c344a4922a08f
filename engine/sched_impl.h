/*
 * sched_impl.h - internals shared by the schedule builders (engine/sched*.c). Not part of the
 * contract with the executor: that is sched.h.
 */
#ifndef RDT_SCHED_IMPL_H
#define RDT_SCHED_IMPL_H

#include "sched.h"

/* A schedule under construction. Appends after a failed allocation are ignored and the first
 * failure is kept, so builders check once at the end instead of after every op. */
typedef struct rdt_sched_builder {
    rdt_sched_t *s;
    rdt_status_t status;
    const int *host_of; /* validated topology (sched.h), or NULL: one host */
} rdt_sched_builder_t;

/* Append one op (rounds must be appended in non-decreasing order, or sorted afterwards). */
void rdt_sched_append(rdt_sched_builder_t *b, rdt_opk_t kind, rdt_buf_t buf, rdt_buf_t src,
                      int peer, uint32_t round, uint32_t blk_begin, uint32_t blk_end);

static inline void rdt_sched_send(rdt_sched_builder_t *b, uint32_t round, int peer, rdt_buf_t buf,
                                  uint32_t b0, uint32_t b1)
{
    rdt_sched_append(b, RDT_OPK_SEND, buf, RDT_BUF_INPUT, peer, round, b0, b1);
}

static inline void rdt_sched_recv(rdt_sched_builder_t *b, uint32_t round, int peer, rdt_buf_t buf,
                                  uint32_t b0, uint32_t b1)
{
    rdt_sched_append(b, RDT_OPK_RECV, buf, RDT_BUF_INPUT, peer, round, b0, b1);
}

/* dst[b0, b1) = src[b0, b1) (op) what @p peer sends */
static inline void rdt_sched_recv_reduce(rdt_sched_builder_t *b, uint32_t round, int peer,
                                         rdt_buf_t dst, rdt_buf_t src, uint32_t b0, uint32_t b1)
{
    rdt_sched_append(b, RDT_OPK_RECV_REDUCE, dst, src, peer, round, b0, b1);
}

static inline void rdt_sched_copy(rdt_sched_builder_t *b, uint32_t round, rdt_buf_t dst,
                                  rdt_buf_t src, uint32_t b0, uint32_t b1)
{
    rdt_sched_append(b, RDT_OPK_COPY, dst, src, -1, round, b0, b1);
}

/* Stable sort of the ops by round, for builders that emit several interleaved streams. */
void rdt_sched_sort_rounds(rdt_sched_t *s);

/* floor(log2 x) and ceil(log2 x) for x >= 1; the largest power of two <= x. */
static inline int rdt_log2_floor(uint32_t x)
{
    return 31 - __builtin_clz(x);
}

static inline int rdt_log2_ceil(uint32_t x)
{
    return x <= 1 ? 0 : 32 - __builtin_clz(x - 1);
}

static inline int rdt_pow2_floor(int x)
{
    return 1 << rdt_log2_floor((uint32_t)x);
}

/*
 * The non-power-of-two fold shared by recursive doubling and Rabenseifner. With p' the largest
 * power of two <= p and e = p - p' extra ranks, the first 2e ranks pair up: the even one hands
 * its data to the odd one and sits out; the odd ones and the last p - 2e ranks form p' "new"
 * ranks 0 .. p'-1:
 *
 *   rank:     0   1   2   3   4   5   6        (p = 7, p' = 4, e = 3)
 *              \  |    \  |    \  |   |
 *   new rank:     0       1       2   3
 *   units:      [0,2)   [2,4)   [4,6) [6,7)    (rdt_fold_unit(n) .. rdt_fold_unit(n + 1))
 *
 * New rank n stands for the real ranks of units [rdt_fold_unit(n), rdt_fold_unit(n + 1)):
 * contiguous, so what a new rank owns is always one block range.
 */
static inline int rdt_fold_newrank(int rank, int extra)
{
    if (rank < 2 * extra)
        return (rank & 1) ? rank / 2 : -1;
    return rank - extra;
}

static inline int rdt_fold_realrank(int newrank, int extra)
{
    return newrank < extra ? 2 * newrank + 1 : newrank + extra;
}

static inline uint32_t rdt_fold_unit(int newrank, int extra)
{
    return (uint32_t)(newrank < extra ? 2 * newrank : newrank + extra);
}

/* Builders. s->coll, algo, rank, nranks, root are set and nranks >= 2; each sets nunits and
 * nblocks and appends its ops in round order (sched.c sets nrounds). */
void rdt_sched_ring_allreduce(rdt_sched_builder_t *b);
void rdt_sched_ring_reduce_scatter(rdt_sched_builder_t *b);
void rdt_sched_ring_allgather(rdt_sched_builder_t *b);
void rdt_sched_chain_broadcast(rdt_sched_builder_t *b);
void rdt_sched_chain_reduce(rdt_sched_builder_t *b);
void rdt_sched_recdbl_allreduce(rdt_sched_builder_t *b);
void rdt_sched_recdbl_allgather(rdt_sched_builder_t *b);
void rdt_sched_rabenseifner_allreduce(rdt_sched_builder_t *b);
void rdt_sched_rabenseifner_reduce_scatter(rdt_sched_builder_t *b);
void rdt_sched_dbtree_allreduce(rdt_sched_builder_t *b);
void rdt_sched_binomial_broadcast(rdt_sched_builder_t *b);
void rdt_sched_binomial_reduce(rdt_sched_builder_t *b);
void rdt_sched_pairwise_alltoall(rdt_sched_builder_t *b);
void rdt_sched_dissemination_barrier(rdt_sched_builder_t *b);
void rdt_sched_hier_allreduce(rdt_sched_builder_t *b);
void rdt_sched_hier_broadcast(rdt_sched_builder_t *b);
void rdt_sched_hier_reduce(rdt_sched_builder_t *b);
void rdt_sched_hier_allgather(rdt_sched_builder_t *b);
void rdt_sched_hier_reduce_scatter(rdt_sched_builder_t *b);
void rdt_sched_hier_tree_allreduce(rdt_sched_builder_t *b);

/*
 * Hosts of a topology (sched_hier.c), the plain-data view the hierarchical builders and the
 * pricer use: hosts numbered 0..nhosts-1 by their lowest rank, ranks of host h (ascending) at
 * members[first[h] .. first[h+1]). O(nranks) time and memory.
 */
typedef struct rdt_hosts {
    int nranks, nhosts, lmax;
    int *host;    /* per rank: its host number */
    int *local;   /* per rank: its local rank */
    int *first;   /* nhosts + 1 offsets into members */
    int *members; /* nranks ranks, grouped by host */
} rdt_hosts_t;

/* @p host_of NULL: one host. RDT_ERR_INVALID_ARG for an index outside [0, nranks). */
rdt_status_t rdt_hosts_init(rdt_hosts_t *h, int nranks, const int *host_of);
void rdt_hosts_fini(rdt_hosts_t *h);

static inline int rdt_hosts_size(const rdt_hosts_t *h, int host)
{
    return h->first[host + 1] - h->first[host];
}

/* Double binary tree (sched_tree.c), exposed for the tests: parent and children of @p rank in
 * tree 0 or 1 on @p nranks ranks (-1 where there is none). */
void rdt_sched_dbtree_links(int tree, int rank, int nranks, int *parent_p, int *child0_p,
                            int *child1_p);

#endif /* RDT_SCHED_IMPL_H */
