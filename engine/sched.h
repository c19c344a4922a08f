/*
 * sched.h - collective schedules as data.
 *
 * A builder is a pure function (collective, algorithm, rank, nranks, root) -> the list of
 * operations that rank performs. Builders never touch a transport; the executor (exec.c) walks
 * the list and does the I/O, the simulator (sim.c) replays every rank's list in one process.
 *
 * The data model
 * --------------
 * A collective moves a *vector* of `nunits` units, each of `count` elements (count is the
 * per-rank count the user passed: allreduce/broadcast/reduce have nunits = 1; allgather,
 * reduce_scatter and alltoall have nunits = nranks, unit u belonging to rank u).
 *
 * The executor cuts every unit into *slices* of at most S elements and runs the schedule once per
 * slice, independently (that is the pipelining: slice k+1 travels while slice k is reduced).
 * A slice therefore is a smaller vector of nunits pieces of len elements each (len <= S).
 * The schedule addresses a slice by *blocks*: the slice is cut into `nblocks` blocks,
 * `nblocks / nunits` per unit piece, balanced inside a piece (see rdt_sched_block_range()).
 * A region of an operation is a half-open range of blocks [blk_begin, blk_end) of one buffer;
 * it may cover several units (it is then several contiguous pieces of memory).
 *
 * Buffers, all addressed in vector space:
 *  - INPUT  the user's send buffer. allgather: only unit `rank` exists. broadcast: root only.
 *           Never written.
 *  - OUTPUT the user's receive buffer. reduce_scatter: only unit `rank` exists. reduce: root
 *           only. Every rank's OUTPUT must hold the result when its last round completes.
 *  - TEMP   working space the executor provides per slice (a whole slice vector), for partial
 *           results a rank forwards but does not keep (reduce_scatter, reduce on non-roots,
 *           broadcast/reduce relays). Contents undefined at the start of a slice.
 * Builders must accept INPUT and OUTPUT being the same memory (the in-place case: allreduce,
 * broadcast, reduce alias the whole vector; allgather's INPUT is OUTPUT's unit `rank`;
 * reduce_scatter's OUTPUT is INPUT's unit `rank`; alltoall aliases the whole vector): a region of
 * INPUT must be read before, or by the same op that, writes the aliased region of OUTPUT.
 * The simulator runs every schedule both ways.
 *
 * Operations (see rdt_sched_op_t): SEND a region to a peer; RECV a region from a peer; RECV_REDUCE
 * (dst = src (op) incoming, the incoming data staged by the executor); COPY a region between
 * buffers. Ordering rules, which the simulator checks:
 *  - ops are sorted by round; round r of a slice starts when every op of round r-1 of the same
 *    slice has completed; ops of one round run concurrently, so within a round no op may write
 *    memory that another op of the round reads or writes;
 *  - messages between two ranks are matched in order: the k-th SEND from a to b (in list order)
 *    pairs with the k-th RECV or RECV_REDUCE from a at b. A region that spans several units is
 *    moved as one message per unit it touches (a *segment*: the blocks of the region inside that
 *    unit), so matching is per segment: the j-th segment a sends to b pairs with the j-th
 *    segment b receives from a, and the two must have the same number of elements for every
 *    slice length (same block indices on both ends, or blocks of the same position j inside
 *    their units, guarantee it);
 *  - a zero-element message is still a message (barrier is made of them), and a region of zero
 *    blocks is one such message.
 * A COPY's source and destination may be the very same memory (in place: allgather's own unit,
 * a broadcast root, alltoall's own unit): the executor skips it then, or uses memmove.
 *
 * AVG. Builders reduce with SUM and never scale. After the last round of a slice the executor
 * (and the simulator) calls rdt_reduce_scale_avg(divisor = nranks) on that slice's final
 * results: allreduce: the whole OUTPUT slice; reduce_scatter: OUTPUT unit `rank`; reduce: the
 * root's OUTPUT. Nothing else (a relay's TEMP, partial sums) is ever scaled.
 */
#ifndef RDT_SCHED_H
#define RDT_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "rdmatrain.h"

typedef enum {
    RDT_COLL_ALLREDUCE,
    RDT_COLL_REDUCE_SCATTER,
    RDT_COLL_ALLGATHER,
    RDT_COLL_BROADCAST,
    RDT_COLL_REDUCE,
    RDT_COLL_BARRIER,
    RDT_COLL_ALLTOALL,
    RDT_COLL_COUNT
} rdt_coll_t;

/*
 * Algorithms. Not every algorithm exists for every collective: rdt_sched_supported() tells.
 *  allreduce:      RING, RECDBL, RABENSEIFNER, TREE (pipelined double binary tree)
 *  reduce_scatter: RING, RABENSEIFNER (recursive halving, any rank count)
 *  allgather:      RING, RECDBL (recursive doubling, any rank count)
 *  broadcast:      RING (chain), TREE (binomial)
 *  reduce:         RING (chain), TREE (binomial)
 *  barrier:        RECDBL (dissemination)
 *  alltoall:       PAIRWISE
 *  allreduce, reduce_scatter, allgather, broadcast, reduce:
 *                  HIER (hierarchical: needs the host of every rank, see rdt_sched_build_topo)
 *
 * What the builders produce (p ranks, p' = largest power of two <= p; rounds for p >= 2; one
 * rank is always nunits 1, nblocks 1, a single COPY INPUT -> OUTPUT, none for barrier):
 * (fold: +1 or +2 rounds when p is not a power of two)
 *  coll / algo                  nunits nblocks  rounds                 TEMP
 *  allreduce ring                 1     p       2(p-1)                 no
 *  allreduce recdbl               1     1       log2 p' (+2 fold; +1   yes, alternates with OUTPUT
 *                                               copy if odd, no fold)
 *  allreduce rabenseifner         1     p'      2 log2 p' (+2 fold)    no
 *  allreduce tree                 1     2       ~3 log2 p              no (OUTPUT accumulates)
 *  reduce_scatter ring            p     p       p-1                    yes, partial sums
 *  reduce_scatter rabenseifner    p     p       log2 p' (+2 fold)      yes, partial sums
 *  allgather ring                 p     p       p-1 (2 if p = 2)       no
 *  allgather recdbl               p     p       log2 p' + 1 (+1 fold)  no
 *  broadcast ring / tree          1     1       p-1 / ceil(log2 p)+1   no
 *  reduce ring / tree             1     1       p-1 / ceil(log2 p)     non-roots accumulate in it
 *  barrier recdbl                 1     1       ceil(log2 p)           no (regions [0,0))
 *  alltoall pairwise              p     p       p (p even), p+1 (odd)  yes, one unit per round
 *  allreduce hier                 1     G*H     2(G-1) + 2(H-1)        no
 *    (H hosts, G = most ranks on one host; sched_hier.c draws it: intra-host ring
 *     reduce-scatter, inter-host ring allreduce of 1/G of the vector per group among the
 *     ranks owning it, intra-host ring allgather)
 *  reduce_scatter hier            p     p       (G-1) + (H-1)          yes, partial sums
 *  allgather hier                 p     p       (H-1) + (L-1) (+1 copy) no
 *  broadcast hier                 1     1       <= ceil(log2 H) + ceil(log2 G) (+1 copy) no
 *  reduce hier                    1     1       ceil(log2 G) + ceil(log2 H)  non-roots
 *    (sched_hier_coll.c: binomial trees over host leaders and inside hosts for broadcast and
 *     reduce; for allgather and reduce_scatter a direct exchange between hosts in which every
 *     unit crosses to every other host once, and an intra-host ring of "sets" of units)
 */
typedef enum {
    RDT_ALGO_RING,
    RDT_ALGO_RECDBL,
    RDT_ALGO_RABENSEIFNER,
    RDT_ALGO_TREE,
    RDT_ALGO_PAIRWISE,
    RDT_ALGO_HIER,
    RDT_ALGO_HIERTREE, /* allreduce: trees inside hosts, recursive doubling between leaders */
    RDT_ALGO_COUNT
} rdt_algo_t;

typedef enum { RDT_BUF_INPUT, RDT_BUF_OUTPUT, RDT_BUF_TEMP, RDT_BUF_COUNT } rdt_buf_t;

typedef enum {
    RDT_OPK_SEND,        /* send buf[region] to peer */
    RDT_OPK_RECV,        /* receive from peer into buf[region] */
    RDT_OPK_RECV_REDUCE, /* buf[region] = src[region] (op) data received from peer */
    RDT_OPK_COPY         /* buf[region] = src[region] (local) */
} rdt_opk_t;

typedef struct rdt_sched_op {
    uint8_t kind;       /* rdt_opk_t */
    uint8_t buf;        /* rdt_buf_t: SEND source, else destination */
    uint8_t src;        /* rdt_buf_t: RECV_REDUCE local operand, COPY source; else unused (0) */
    uint8_t reserved;   /* 0 */
    int32_t peer;       /* SEND, RECV, RECV_REDUCE; -1 for COPY */
    uint32_t round;
    uint32_t blk_begin; /* region [blk_begin, blk_end) in blocks of the slice */
    uint32_t blk_end;
} rdt_sched_op_t;

typedef struct rdt_sched {
    rdt_coll_t coll;
    rdt_algo_t algo;
    int rank;
    int nranks;
    int root;          /* broadcast, reduce; 0 otherwise */
    uint32_t nunits;   /* 1 or nranks, see above */
    uint32_t nblocks;  /* multiple of nunits */
    uint32_t nrounds;  /* rounds are 0 .. nrounds-1 */
    uint32_t nops;
    rdt_sched_op_t *ops; /* nops entries, sorted by round; owned by the schedule */
    uint32_t cap;        /* allocated entries of ops */
} rdt_sched_t;

/* @return 1 if @p algo implements @p coll. */
int rdt_sched_supported(rdt_coll_t coll, rdt_algo_t algo);

/* Lower-case names ("allreduce", "ring", ...) and the reverse lookups (-1 if unknown). */
const char *rdt_coll_name(rdt_coll_t coll);
const char *rdt_algo_name(rdt_algo_t algo);
int rdt_coll_from_name(const char *name);
int rdt_algo_from_name(const char *name);

/* nunits of the vector for @p coll on @p nranks ranks (1 or nranks). */
uint32_t rdt_sched_nunits(rdt_coll_t coll, int nranks);

/* Bytes of the send and receive buffers of @p coll with @p count elements of @p es bytes (per
 * unit) on @p nranks ranks: the whole vector, except allgather's input and reduce_scatter's
 * output, which are one unit. The caller checks for overflow. */
void rdt_coll_extents(rdt_coll_t coll, size_t count, size_t es, int nranks, size_t *in_p,
                      size_t *out_p);

/*
 * Build the schedule of @p rank. Pure: no I/O, no global state; O(steps) time and memory, so
 * that 4,096 ranks build in milliseconds. @p root is ignored except for broadcast and reduce.
 * Returns RDT_ERR_UNSUPPORTED if !rdt_sched_supported(coll, algo), RDT_ERR_INVALID_ARG for a
 * bad rank/nranks/root, RDT_ERR_NO_MEMORY. On success *sched_p is owned by the caller
 * (rdt_sched_destroy).
 */
rdt_status_t rdt_sched_build(rdt_coll_t coll, rdt_algo_t algo, int rank, int nranks, int root,
                             rdt_sched_t **sched_p);

/*
 * Topology. @p host_of has nranks entries: the host of each rank, an index in [0, nranks)
 * (any numbering: hosts are ordered by their lowest rank, and the ranks of a host, its *local
 * ranks*, by rank). NULL means one host. Only hierarchical algorithms (RDT_ALGO_HIER and
 * RDT_ALGO_HIERTREE) look at it; every other builder gives the same schedule as
 * rdt_sched_build, which is rdt_sched_build_topo(..., NULL, ...). A schedule built from a topology is valid only for that
 * topology: every rank must be given the same @p host_of. RDT_ERR_INVALID_ARG for an index out
 * of range.
 */
rdt_status_t rdt_sched_build_topo(rdt_coll_t coll, rdt_algo_t algo, int rank, int nranks,
                                  int root, const int *host_of, rdt_sched_t **sched_p);

/* Number of hosts and the most ranks on one host of @p host_of (NULL: 1 host of nranks).
 * Returns 0, or -1 (outputs untouched) if nranks < 1 or an index is out of range. O(nranks). */
int rdt_sched_host_shape(int nranks, const int *host_of, int *nhosts_p, int *lmax_p);
void rdt_sched_destroy(rdt_sched_t *sched);

/*
 * Element range of block @p blk for a slice whose unit pieces have @p len elements:
 * unit u = blk / (nblocks / nunits), j = blk % (nblocks / nunits), k = nblocks / nunits;
 * the piece is cut into k balanced parts: part j starts at j * (len / k) + min(j, len % k).
 * Returns the offset of the block inside the slice vector (u * len + start) and its length.
 */
void rdt_sched_block_range(const rdt_sched_t *sched, uint32_t blk, size_t len, size_t *off_p,
                           size_t *n_p);

/* Elements of region [blk_begin, blk_end) (all its segments) for unit pieces of @p len
 * elements. O(1). */
size_t rdt_sched_region_len(const rdt_sched_t *sched, uint32_t blk_begin, uint32_t blk_end,
                            size_t len);

/*
 * Simulator. Replays the schedules of all ranks of (coll, algo, nranks, root) in one process on
 * real memory: every rank gets INPUT filled with a known pattern, operations run in a legal
 * order (round by round per rank, messages matched in order per pair), and every rank's OUTPUT
 * is compared element by element with a reference computed directly from the inputs.
 * It fails on: a wrong element, a deadlock (no rank can make progress), an unmatched or
 * size-mismatched message, a region outside the buffers that exist for that rank, a write race
 * inside a round, a schedule not sorted by round.
 * Messages are cut into per-unit segments and matched exactly as the executor does, and are
 * rendezvous: a send completes only once its receive is posted (the strictest transport), so a
 * schedule that needs buffered sends deadlocks here. Races are checked on blocks (independent of
 * sizes), with INPUT and OUTPUT as one memory when params->in_place. Outputs and TEMP start
 * poisoned, so reading what was never written shows as a wrong element. barrier has no data:
 * instead every rank must have heard, through a chain of messages, from every other rank.
 * Returns RDT_SUCCESS, or RDT_ERR_INTERNAL (schedule defect), RDT_ERR_UNSUPPORTED,
 * RDT_ERR_INVALID_ARG, RDT_ERR_NO_MEMORY; result_p->error names the first problem.
 */
typedef struct rdt_sim_params {
    rdt_coll_t coll;
    rdt_algo_t algo;
    int nranks;
    int root;
    size_t count;     /* elements per unit */
    size_t slice;     /* slice length S in elements (0: one slice) */
    rdt_dtype_t dtype;
    rdt_op_t op;
    int in_place;
    /*
     * Float SUM/AVG only: random inputs in [-1, 1) whose sums round, instead of exact ones.
     * Results are then checked against the exact sum within the rounding bound of any
     * summation order, and an allreduce must give every rank the same bits (the cross-rank
     * determinism that exact inputs cannot show). Ignored for other types and ops.
     */
    int inexact;
    /* Host of each rank (nranks entries, see rdt_sched_build_topo), or NULL: one host. The
     * schedules are built for it, and the messages between ranks of different hosts are
     * counted in the result. */
    const int *host_of;
} rdt_sim_params_t;

typedef struct rdt_sim_result {
    rdt_status_t status;   /* RDT_SUCCESS if everything checked out */
    char error[256];       /* the first problem found, in a sentence */
    uint64_t wrong;        /* wrong elements over all ranks */
    uint32_t max_rounds;   /* longest schedule in rounds */
    uint64_t msgs;         /* messages per slice, all ranks */
    uint64_t max_rank_bytes; /* most bytes sent by one rank over the whole collective */
    /* With params->host_of: bytes sent from one host to another over the whole collective
     * (all slices), in total and for the host that sends the most and the least. 0 without. */
    uint64_t inter_host_bytes;
    uint64_t max_host_bytes;
    uint64_t min_host_bytes;
    /* ... and received by one host from the others: the most and the least over the hosts. */
    uint64_t max_host_recv_bytes;
    uint64_t min_host_recv_bytes;
} rdt_sim_result_t;

rdt_status_t rdt_sim_run(const rdt_sim_params_t *params, rdt_sim_result_t *result_p);

/*
 * rdt_sim_run on schedules given by the caller instead of built (tests build broken ones by
 * hand to prove the checks work): @p scheds holds params->nranks schedules, index = rank, all
 * for params->coll with the same nunits and nblocks (algo and root are taken from params).
 * Returns what rdt_sim_run returns (result_p->status).
 */
rdt_status_t rdt_sim_run_scheds(const rdt_sim_params_t *params, rdt_sched_t *const *scheds,
                                rdt_sim_result_t *result_p);

/*
 * Alpha-beta-gamma price of a schedule, without moving data, for @p bytes per unit (count *
 * element size, as the user passes it), in seconds, as one slice (pipelining across slices is
 * not modelled). Lockstep approximation: all ranks advance round by round together; round t
 * costs the maximum over ranks of
 *     alpha (if the rank sends or receives anything in t)
 *   + beta  * max(bytes it sends in t, bytes it receives in t)   (full-duplex links)
 *   + gamma * bytes it reduces in t,
 * and the price is the sum over rounds. COPYs are free. The schedules are built one rank at a
 * time and dropped, so memory is O(ops of one rank + rounds): 4,096 ranks take seconds.
 * Returns -1 if (coll, algo) is unsupported, nranks < 1 or memory runs out.
 */
typedef struct rdt_cost_params {
    double alpha; /* seconds per message */
    double beta;  /* seconds per byte on the wire */
    double gamma; /* seconds per byte reduced */
} rdt_cost_params_t;

double rdt_sim_price(rdt_coll_t coll, rdt_algo_t algo, int nranks, size_t bytes,
                     const rdt_cost_params_t *cost);

/*
 * Two levels. A message between ranks of one host (shared memory) costs @p shm's alpha and beta
 * on the rank's own link; a message between hosts costs @p net's, and the ranks of a host share
 * its network link: in round t, host h's network term is
 *     alpha(net) + beta(net) * max(bytes all its ranks send to other hosts in t, bytes they
 *                                  receive from other hosts in t),
 * and a rank's round costs max(its shared-memory term, its host's network term) + gamma * bytes
 * it reduces (gamma from @p net). The price is the sum over rounds of the most expensive rank.
 * @p host_of NULL: schedules built for one host (rdt_sched_build) and priced as rdt_sim_price
 * does, every message at @p net on its rank's own link. @p info_p, if not NULL, receives the
 * bytes that cross between hosts (total and the most one host sends). Memory: the schedules
 * of one host at a time. Returns -1 as rdt_sim_price does, or for a bad @p host_of.
 */
typedef struct rdt_price_info {
    double inter_host_bytes; /* sent from one host to another, all ranks, one slice */
    double max_host_bytes;   /* the most one host sends to others */
} rdt_price_info_t;

double rdt_sim_price_topo(rdt_coll_t coll, rdt_algo_t algo, int nranks, const int *host_of,
                          size_t bytes, const rdt_cost_params_t *net,
                          const rdt_cost_params_t *shm, rdt_price_info_t *info_p);

/*
 * Shared-memory cost parameters derived from the network's @p net (RDT_ALPHA/RDT_BETA/
 * RDT_GAMMA): alpha RDT_COST_SHM_ALPHA and beta RDT_COST_SHM_BETA (one copy through a shared
 * segment: about 1 us per message and 16 GB/s), each capped at the network's value (shared
 * memory is never priced slower than the wire), gamma unchanged.
 */
#define RDT_COST_SHM_ALPHA 1e-6
#define RDT_COST_SHM_BETA  6e-11
void rdt_cost_shm_params(const rdt_cost_params_t *net, rdt_cost_params_t *shm_p);

/* Alpha-beta-gamma lower bound for the collective on @p nranks ranks, @p bytes per unit, in the
 * model of rdt_sim_price (cost.c lists them; allreduce is DESIGN.md's
 * log2(p) alpha + 2(p-1)/p n beta + (p-1)/p n gamma). 0 for one rank. */
double rdt_cost_lower_bound(rdt_coll_t coll, int nranks, size_t bytes,
                            const rdt_cost_params_t *cost);

/*
 * Closed-form alpha-beta-gamma estimate of (coll, algo) on @p nranks ranks for @p bytes per
 * unit, in the same model as rdt_sim_price (which it tracks within a small factor; the tests
 * check it). O(1): the selector calls it per operation. Returns HUGE_VAL if !supported.
 */
double rdt_cost_model(rdt_coll_t coll, rdt_algo_t algo, int nranks, size_t bytes,
                      const rdt_cost_params_t *cost);

/*
 * The closed form in the two-level model of rdt_sim_price_topo, O(nranks). Hierarchical
 * algorithms are priced from the host shape. Flat ones assume hosts of consecutive ranks (as
 * launchers place them): the ring as rdt_cost_model(@p net) (one network message per host
 * boundary and round: exact in the model), recursive doubling and Rabenseifner allreduce with
 * their near steps in shared memory and their far ones sharing each host's link among its
 * ranks (cost.c), the tree and the other collectives as rdt_cost_model(@p net). Ranks of a host
 * interleaved with others' make the flat estimates optimistic. @p host_of NULL:
 * rdt_cost_model(net).
 */
double rdt_cost_model_topo(rdt_coll_t coll, rdt_algo_t algo, int nranks, const int *host_of,
                           size_t bytes, const rdt_cost_params_t *net,
                           const rdt_cost_params_t *shm);

/*
 * The selector's choice (select.c) for @p bytes per unit: the algorithm of @p coll with the
 * cheapest closed form. Without a hierarchy (@p host_of NULL, one host, or one rank per host)
 * it compares the flat algorithms by rdt_cost_model(@p net), as always; with several hosts and
 * several ranks on some host it also prices the hierarchical ones, everything by
 * rdt_cost_model_topo with rdt_cost_shm_params(@p net). Ties go to the lower enum value.
 */
rdt_algo_t rdt_cost_select(rdt_coll_t coll, int nranks, const int *host_of, size_t bytes,
                           const rdt_cost_params_t *net);

#endif /* RDT_SCHED_H */
