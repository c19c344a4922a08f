/*
 * cost.c - alpha-beta-gamma costs: schedules priced round by round (rdt_sim_price), closed forms
 * for the selector (rdt_cost_model) and lower bounds (rdt_cost_lower_bound).
 *
 * Notation: p ranks, n bytes per unit, alpha per message (round), beta per byte on the wire,
 * gamma per byte reduced; p' = 2^floor(log2 p), e = p - p' (ranks folded away), L = ceil(log2 p).
 */
#include <math.h>
#include <stdlib.h>

#include "sched_impl.h"

/* ------------------------------------------------------------------------------------------ */
/* Priced schedules                                                                             */
/* ------------------------------------------------------------------------------------------ */

typedef struct price_round {
    double sent, recvd, reduced;
    int msg;
} price_round_t;

static double round_cost(const price_round_t *t, const rdt_cost_params_t *c)
{
    double wire = t->sent > t->recvd ? t->sent : t->recvd;
    return (t->msg ? c->alpha : 0.0) + c->beta * wire + c->gamma * t->reduced;
}

double rdt_sim_price(rdt_coll_t coll, rdt_algo_t algo, int nranks, size_t bytes,
                     const rdt_cost_params_t *cost)
{
    double *worst = NULL, total = 0;
    uint32_t nworst = 0, i, t;
    int r;

    if (!cost || nranks < 1 || !rdt_sched_supported(coll, algo))
        return -1.0;
    if (coll == RDT_COLL_BARRIER)
        bytes = 0;
    for (r = 0; r < nranks; r++) {
        rdt_sched_t *s;
        price_round_t cur = {0, 0, 0, 0};

        if (rdt_sched_build(coll, algo, r, nranks, 0, &s) != RDT_SUCCESS) {
            free(worst);
            return -1.0;
        }
        if (s->nrounds > nworst) {
            double *w = realloc(worst, (size_t)s->nrounds * sizeof(*w));
            if (!w) {
                rdt_sched_destroy(s);
                free(worst);
                return -1.0;
            }
            for (t = nworst; t < s->nrounds; t++)
                w[t] = 0;
            worst = w;
            nworst = s->nrounds;
        }
        for (i = 0; i < s->nops; i++) {
            const rdt_sched_op_t *o = &s->ops[i];
            double b = (double)rdt_sched_region_len(s, o->blk_begin, o->blk_end, bytes);

            if (o->kind == RDT_OPK_SEND) {
                cur.sent += b;
                cur.msg = 1;
            } else if (o->kind != RDT_OPK_COPY) {
                cur.recvd += b;
                cur.msg = 1;
                if (o->kind == RDT_OPK_RECV_REDUCE)
                    cur.reduced += b;
            }
            if (i + 1 == s->nops || s->ops[i + 1].round != o->round) {
                double c = round_cost(&cur, cost);
                if (c > worst[o->round])
                    worst[o->round] = c;
                cur.sent = cur.recvd = cur.reduced = 0;
                cur.msg = 0;
            }
        }
        rdt_sched_destroy(s);
    }
    for (t = 0; t < nworst; t++)
        total += worst[t];
    free(worst);
    return total;
}

/* ------------------------------------------------------------------------------------------ */
/* Lower bounds                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/*
 * Per collective, with every rank's link full duplex:
 *   allreduce       log2(p) a + 2(p-1)/p n b + (p-1)/p n g      (Thakur, Rabenseifner, Gropp)
 *   reduce_scatter  log2(p) a + (p-1) n b + (p-1) n g            (each rank sends p-1 units'
 *                                                                 worth and someone reduces
 *                                                                 p-1 units)
 *   allgather       log2(p) a + (p-1) n b                         (receive p-1 units)
 *   broadcast       log2(p) a + n b
 *   reduce          log2(p) a + n b + (p-1)/p n g
 *   barrier         log2(p) a
 *   alltoall        log2(p) a + (p-1) n b                         (send p-1 units)
 */
double rdt_cost_lower_bound(rdt_coll_t coll, int nranks, size_t bytes,
                            const rdt_cost_params_t *cost)
{
    double p = nranks, n = (double)bytes, a, b, g;

    if (!cost || nranks < 1)
        return -1.0;
    if (nranks == 1)
        return 0.0;
    a = log2(p) * cost->alpha;
    b = cost->beta;
    g = cost->gamma;
    switch (coll) {
    case RDT_COLL_ALLREDUCE:
        return a + 2 * (p - 1) / p * n * b + (p - 1) / p * n * g;
    case RDT_COLL_REDUCE_SCATTER:
        return a + (p - 1) * n * (b + g);
    case RDT_COLL_ALLGATHER:
    case RDT_COLL_ALLTOALL:
        return a + (p - 1) * n * b;
    case RDT_COLL_BROADCAST:
        return a + n * b;
    case RDT_COLL_REDUCE:
        return a + n * b + (p - 1) / p * n * g;
    case RDT_COLL_BARRIER:
        return a;
    default:
        return -1.0;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Closed forms                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/*
 * Units moved by the largest exchange of each halving/doubling step, summed over the steps,
 * when new rank groups of `mask` ranks are exchanged and the first e new ranks carry two units
 * (the fold): mask + min(mask, e) for mask = 1, 2, .., p'/2. At most 20 iterations.
 */
static double fold_units(int pp, int e)
{
    double u = 0;
    int mask;

    for (mask = 1; mask < pp; mask <<= 1)
        u += mask + (mask < e ? mask : e);
    return u;
}

/* Double binary tree: rounds of the reduction up (U) and of the broadcast down (D), from the
 * round numbering of sched_tree.c (K = floor(log2 p), root at position 2^K). */
static void dbtree_rounds(int p, double *up_p, double *down_p)
{
    int k = rdt_log2_floor((uint32_t)p), root = 1 << k;

    *up_p = (k >= 1 && root + (1 << (k - 1)) <= p) ? 2 * k : 2 * k - 1;
    *down_p = k;
}

/* Seconds of a broadcast round down the double binary tree: sending half the vector to two
 * children, except on 2 ranks where each root has a single child. */
static double dbtree_down_round(int p, double n, double a, double b)
{
    return a + (p == 2 ? n / 2 : n) * b;
}

double rdt_cost_model(rdt_coll_t coll, rdt_algo_t algo, int nranks, size_t bytes,
                      const rdt_cost_params_t *cost)
{
    double p = nranks, n = (double)bytes, a, b, g, up, down;
    int pp, e, m, L;

    if (!cost || nranks < 1 || !rdt_sched_supported(coll, algo))
        return HUGE_VAL;
    if (nranks == 1)
        return 0.0;
    a = cost->alpha;
    b = cost->beta;
    g = cost->gamma;
    pp = rdt_pow2_floor(nranks);
    e = nranks - pp;
    m = rdt_log2_floor((uint32_t)pp);
    L = rdt_log2_ceil((uint32_t)nranks);

    switch (coll) {
    case RDT_COLL_ALLREDUCE:
        if (algo == RDT_ALGO_RING) { /* 2(p-1) a + 2(p-1)/p n b + (p-1)/p n g */
            double blk = ceil(n / p);
            return 2 * (p - 1) * (a + blk * b) + (p - 1) * blk * g;
        }
        if (algo == RDT_ALGO_RECDBL) /* log2(p') (a + n b + n g) + fold and unfold */
            return m * (a + n * b + n * g) + (e ? 2 * a + 2 * n * b + n * g : 0);
        if (algo == RDT_ALGO_RABENSEIFNER) /* 2 log2(p') a + 2(p'-1)/p' n b + (p'-1)/p' n g */
            return 2 * m * a + (pp - 1) / (double)pp * n * (2 * b + g) +
                   (e ? 2 * a + 2 * n * b + n * g : 0);
        /* tree: U rounds up with half the vector, D rounds down sending it to two children */
        dbtree_rounds(nranks, &up, &down);
        return up * (a + n / 2 * (b + g)) + down * dbtree_down_round(nranks, n, a, b);
    case RDT_COLL_REDUCE_SCATTER:
        if (algo == RDT_ALGO_RING)
            return (p - 1) * (a + n * b + n * g);
        return m * a + fold_units(pp, e) * n * (b + g) + (e ? 2 * a + p * n * (b + g) + n * b : 0);
    case RDT_COLL_ALLGATHER:
        if (algo == RDT_ALGO_RING)
            return (p - 1) * (a + n * b);
        return m * a + fold_units(pp, e) * n * b + (e ? 2 * a + n * b + p * n * b : 0);
    case RDT_COLL_BROADCAST:
        return (algo == RDT_ALGO_RING ? p - 1 : L) * (a + n * b);
    case RDT_COLL_REDUCE:
        return (algo == RDT_ALGO_RING ? p - 1 : L) * (a + n * b + n * g);
    case RDT_COLL_BARRIER:
        return L * a;
    case RDT_COLL_ALLTOALL:
        return (nranks % 2 ? p : p - 1) * (a + n * b);
    default:
        return HUGE_VAL;
    }
}
