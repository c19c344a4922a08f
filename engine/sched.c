/*
 * sched.c - schedule dispatch, names, block addressing; the builders live in sched_<family>.c.
 */
#include <stdlib.h>
#include <string.h>

#include "sched_impl.h"

/* Far beyond any real job, and small enough that block and unit numbers fit 32 bits and the
 * simulator's per-pair keys fit 64. */
#define RDT_SCHED_MAX_RANKS (1 << 20)

static const char *const coll_names[RDT_COLL_COUNT] = {
    "allreduce", "reduce_scatter", "allgather", "broadcast", "reduce", "barrier", "alltoall"};
static const char *const algo_names[RDT_ALGO_COUNT] = {"ring", "recdbl", "rabenseifner", "tree",
                                                       "pairwise", "hier", "hiertree"};

const char *rdt_coll_name(rdt_coll_t coll)
{
    if ((unsigned)coll >= (unsigned)RDT_COLL_COUNT)
        return "invalid";
    return coll_names[coll];
}

const char *rdt_algo_name(rdt_algo_t algo)
{
    if ((unsigned)algo >= (unsigned)RDT_ALGO_COUNT)
        return "invalid";
    return algo_names[algo];
}

int rdt_coll_from_name(const char *name)
{
    int i;
    for (i = 0; name && i < RDT_COLL_COUNT; i++)
        if (!strcmp(name, coll_names[i]))
            return i;
    return -1;
}

int rdt_algo_from_name(const char *name)
{
    int i;
    for (i = 0; name && i < RDT_ALGO_COUNT; i++)
        if (!strcmp(name, algo_names[i]))
            return i;
    return -1;
}

int rdt_sched_supported(rdt_coll_t coll, rdt_algo_t algo)
{
    switch (coll) {
    case RDT_COLL_ALLREDUCE:
        return algo == RDT_ALGO_RING || algo == RDT_ALGO_RECDBL || algo == RDT_ALGO_RABENSEIFNER ||
               algo == RDT_ALGO_TREE || algo == RDT_ALGO_HIER || algo == RDT_ALGO_HIERTREE;
    case RDT_COLL_REDUCE_SCATTER:
        return algo == RDT_ALGO_RING || algo == RDT_ALGO_RABENSEIFNER || algo == RDT_ALGO_HIER;
    case RDT_COLL_ALLGATHER:
        return algo == RDT_ALGO_RING || algo == RDT_ALGO_RECDBL || algo == RDT_ALGO_HIER;
    case RDT_COLL_BROADCAST:
    case RDT_COLL_REDUCE:
        return algo == RDT_ALGO_RING || algo == RDT_ALGO_TREE || algo == RDT_ALGO_HIER;
    case RDT_COLL_BARRIER:
        return algo == RDT_ALGO_RECDBL;
    case RDT_COLL_ALLTOALL:
        return algo == RDT_ALGO_PAIRWISE;
    default:
        return 0;
    }
}

uint32_t rdt_sched_nunits(rdt_coll_t coll, int nranks)
{
    switch (coll) {
    case RDT_COLL_REDUCE_SCATTER:
    case RDT_COLL_ALLGATHER:
    case RDT_COLL_ALLTOALL:
        return nranks > 0 ? (uint32_t)nranks : 1;
    default:
        return 1;
    }
}

void rdt_coll_extents(rdt_coll_t coll, size_t count, size_t es, int nranks, size_t *in_p,
                      size_t *out_p)
{
    size_t total = count * es * rdt_sched_nunits(coll, nranks);
    *in_p = coll == RDT_COLL_ALLGATHER ? count * es : total;
    *out_p = coll == RDT_COLL_REDUCE_SCATTER ? count * es : total;
}

void rdt_sched_block_range(const rdt_sched_t *sched, uint32_t blk, size_t len, size_t *off_p,
                           size_t *n_p)
{
    uint32_t k = sched->nblocks / sched->nunits;
    uint32_t u, j;
    size_t q, rem;

    if (k == 1) { /* a block per unit (most schedules): no divisions on the per-message path */
        *off_p = (size_t)blk * len;
        *n_p = len;
        return;
    }
    u = blk / k;
    j = blk % k;
    q = len / k;
    rem = len % k;
    *off_p = (size_t)u * len + (size_t)j * q + (j < rem ? j : rem);
    *n_p = q + (j < rem ? 1 : 0);
}

/* Offset of block @p blk in the slice vector, also valid for blk == nblocks (the end). */
static size_t block_start(const rdt_sched_t *sched, uint32_t blk, size_t len)
{
    uint32_t k = sched->nblocks / sched->nunits;
    uint32_t u = blk / k, j = blk % k;
    size_t q = len / k, rem = len % k;

    return (size_t)u * len + (size_t)j * q + (j < rem ? j : rem);
}

size_t rdt_sched_region_len(const rdt_sched_t *sched, uint32_t blk_begin, uint32_t blk_end,
                            size_t len)
{
    if (blk_end <= blk_begin)
        return 0;
    return block_start(sched, blk_end, len) - block_start(sched, blk_begin, len);
}

void rdt_sched_append(rdt_sched_builder_t *b, rdt_opk_t kind, rdt_buf_t buf, rdt_buf_t src,
                      int peer, uint32_t round, uint32_t blk_begin, uint32_t blk_end)
{
    rdt_sched_t *s = b->s;
    rdt_sched_op_t *o;

    if (b->status != RDT_SUCCESS)
        return;
    if (s->nops == s->cap) {
        uint32_t cap = s->cap ? 2 * s->cap : 16;
        rdt_sched_op_t *ops = realloc(s->ops, (size_t)cap * sizeof(*ops));
        if (!ops) {
            b->status = RDT_ERR_NO_MEMORY;
            return;
        }
        s->ops = ops;
        s->cap = cap;
    }
    o = &s->ops[s->nops++];
    o->kind = (uint8_t)kind;
    o->buf = (uint8_t)buf;
    o->src = (uint8_t)((kind == RDT_OPK_RECV_REDUCE || kind == RDT_OPK_COPY) ? src : 0);
    o->reserved = 0;
    o->peer = kind == RDT_OPK_COPY ? -1 : peer;
    o->round = round;
    o->blk_begin = blk_begin;
    o->blk_end = blk_end;
}

void rdt_sched_sort_rounds(rdt_sched_t *s)
{
    uint32_t i, j;

    /* insertion sort: only used on short lists (a tree rank has a handful of ops) */
    for (i = 1; i < s->nops; i++) {
        rdt_sched_op_t o = s->ops[i];
        for (j = i; j > 0 && s->ops[j - 1].round > o.round; j--)
            s->ops[j] = s->ops[j - 1];
        s->ops[j] = o;
    }
}

/* One rank: nothing to exchange, OUTPUT = INPUT (a barrier has nothing at all). */
static void build_single(rdt_sched_builder_t *b)
{
    b->s->nunits = 1;
    b->s->nblocks = 1;
    if (b->s->coll != RDT_COLL_BARRIER)
        rdt_sched_copy(b, 0, RDT_BUF_OUTPUT, RDT_BUF_INPUT, 0, 1);
}

static void build_dispatch(rdt_sched_builder_t *b)
{
    rdt_coll_t coll = b->s->coll;
    rdt_algo_t algo = b->s->algo;

    if (b->s->nranks == 1) {
        build_single(b);
        return;
    }
    switch (coll) {
    case RDT_COLL_ALLREDUCE:
        if (algo == RDT_ALGO_RING)
            rdt_sched_ring_allreduce(b);
        else if (algo == RDT_ALGO_RECDBL)
            rdt_sched_recdbl_allreduce(b);
        else if (algo == RDT_ALGO_RABENSEIFNER)
            rdt_sched_rabenseifner_allreduce(b);
        else if (algo == RDT_ALGO_HIER)
            rdt_sched_hier_allreduce(b);
        else if (algo == RDT_ALGO_HIERTREE)
            rdt_sched_hier_tree_allreduce(b);
        else
            rdt_sched_dbtree_allreduce(b);
        break;
    case RDT_COLL_REDUCE_SCATTER:
        if (algo == RDT_ALGO_RING)
            rdt_sched_ring_reduce_scatter(b);
        else if (algo == RDT_ALGO_HIER)
            rdt_sched_hier_reduce_scatter(b);
        else
            rdt_sched_rabenseifner_reduce_scatter(b);
        break;
    case RDT_COLL_ALLGATHER:
        if (algo == RDT_ALGO_RING)
            rdt_sched_ring_allgather(b);
        else if (algo == RDT_ALGO_HIER)
            rdt_sched_hier_allgather(b);
        else
            rdt_sched_recdbl_allgather(b);
        break;
    case RDT_COLL_BROADCAST:
        if (algo == RDT_ALGO_RING)
            rdt_sched_chain_broadcast(b);
        else if (algo == RDT_ALGO_HIER)
            rdt_sched_hier_broadcast(b);
        else
            rdt_sched_binomial_broadcast(b);
        break;
    case RDT_COLL_REDUCE:
        if (algo == RDT_ALGO_RING)
            rdt_sched_chain_reduce(b);
        else if (algo == RDT_ALGO_HIER)
            rdt_sched_hier_reduce(b);
        else
            rdt_sched_binomial_reduce(b);
        break;
    case RDT_COLL_BARRIER:
        rdt_sched_dissemination_barrier(b);
        break;
    default:
        rdt_sched_pairwise_alltoall(b);
        break;
    }
}

rdt_status_t rdt_sched_build(rdt_coll_t coll, rdt_algo_t algo, int rank, int nranks, int root,
                             rdt_sched_t **sched_p)
{
    return rdt_sched_build_topo(coll, algo, rank, nranks, root, NULL, sched_p);
}

rdt_status_t rdt_sched_build_topo(rdt_coll_t coll, rdt_algo_t algo, int rank, int nranks,
                                  int root, const int *host_of, rdt_sched_t **sched_p)
{
    rdt_sched_builder_t b;
    rdt_sched_t *s;
    uint32_t i;

    if (!sched_p)
        return RDT_ERR_INVALID_ARG;
    if (!rdt_sched_supported(coll, algo))
        return RDT_ERR_UNSUPPORTED;
    if (nranks < 1 || nranks > RDT_SCHED_MAX_RANKS || rank < 0 || rank >= nranks)
        return RDT_ERR_INVALID_ARG;
    for (i = 0; host_of && i < (uint32_t)nranks; i++)
        if (host_of[i] < 0 || host_of[i] >= nranks)
            return RDT_ERR_INVALID_ARG;
    if (coll != RDT_COLL_BROADCAST && coll != RDT_COLL_REDUCE)
        root = 0;
    else if (root < 0 || root >= nranks)
        return RDT_ERR_INVALID_ARG;

    s = calloc(1, sizeof(*s));
    if (!s)
        return RDT_ERR_NO_MEMORY;
    s->coll = coll;
    s->algo = algo;
    s->rank = rank;
    s->nranks = nranks;
    s->root = root;
    b.s = s;
    b.status = RDT_SUCCESS;
    b.host_of = host_of;
    build_dispatch(&b);
    if (b.status != RDT_SUCCESS) {
        rdt_sched_destroy(s);
        return b.status;
    }
    for (i = 0; i < s->nops; i++)
        if (s->ops[i].round + 1 > s->nrounds)
            s->nrounds = s->ops[i].round + 1;
    *sched_p = s;
    return RDT_SUCCESS;
}

void rdt_sched_destroy(rdt_sched_t *sched)
{
    if (!sched)
        return;
    free(sched->ops);
    free(sched);
}
