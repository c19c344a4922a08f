/*
 * cost.c - alpha-beta-gamma costs: schedules priced round by round (rdt_sim_price), closed forms
 * for the selector (rdt_cost_model) and lower bounds (rdt_cost_lower_bound).
 *
 * Two levels (rdt_sim_price_topo, rdt_cost_model_topo, rdt_cost_select): shared memory inside a
 * host, the network between hosts with each host's link shared by its ranks.
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

/*
 * Two levels (sched.h): the schedules of one host at a time, twice over: first the bytes the
 * host's ranks send to and receive from other hosts per round (its shared network link), then
 * each rank's rounds priced with max(shared-memory term, the host's network term) + gamma.
 */
typedef struct topo_round {
    double sent, recvd; /* bytes between hosts, the whole host */
} topo_round_t;

static int grow_rounds(double **worst, topo_round_t **hr, uint32_t *n, uint32_t want)
{
    uint32_t t;
    double *w;
    topo_round_t *h;

    if (want <= *n)
        return 0;
    w = realloc(*worst, (size_t)want * sizeof(*w));
    if (!w)
        return -1;
    *worst = w;
    h = realloc(*hr, (size_t)want * sizeof(*h));
    if (!h)
        return -1;
    *hr = h;
    for (t = *n; t < want; t++) {
        w[t] = 0;
        h[t].sent = h[t].recvd = 0;
    }
    *n = want;
    return 0;
}

double rdt_sim_price_topo(rdt_coll_t coll, rdt_algo_t algo, int nranks, const int *host_of,
                          size_t bytes, const rdt_cost_params_t *net,
                          const rdt_cost_params_t *shm, rdt_price_info_t *info_p)
{
    rdt_hosts_t hs;
    rdt_sched_t **sc = NULL;
    topo_round_t *hr = NULL;
    double *worst = NULL, total = -1.0, inter = 0, host_max = 0;
    uint32_t nr = 0, i, t;
    int h, k;

    if (info_p)
        info_p->inter_host_bytes = info_p->max_host_bytes = 0;
    if (!host_of)
        return rdt_sim_price(coll, algo, nranks, bytes, net);
    if (!net || !shm || nranks < 1 || !rdt_sched_supported(coll, algo) ||
        rdt_hosts_init(&hs, nranks, host_of) != RDT_SUCCESS)
        return -1.0;
    if (coll == RDT_COLL_BARRIER)
        bytes = 0;
    sc = calloc((size_t)hs.lmax, sizeof(*sc));
    if (!sc)
        goto out;
    for (h = 0; h < hs.nhosts; h++) {
        int L = rdt_hosts_size(&hs, h);
        double hbytes = 0;

        for (k = 0; k < L; k++) {
            int r = hs.members[hs.first[h] + k];
            if (rdt_sched_build_topo(coll, algo, r, nranks, 0, host_of, &sc[k]) != RDT_SUCCESS ||
                grow_rounds(&worst, &hr, &nr, sc[k]->nrounds))
                goto out;
            for (i = 0; i < sc[k]->nops; i++) {
                const rdt_sched_op_t *o = &sc[k]->ops[i];
                double b = (double)rdt_sched_region_len(sc[k], o->blk_begin, o->blk_end, bytes);
                if (o->kind == RDT_OPK_COPY || hs.host[o->peer] == h)
                    continue;
                if (o->kind == RDT_OPK_SEND) {
                    hr[o->round].sent += b;
                    hbytes += b;
                } else {
                    hr[o->round].recvd += b;
                }
            }
        }
        inter += hbytes;
        host_max = hbytes > host_max ? hbytes : host_max;
        for (k = 0; k < L; k++) {
            const rdt_sched_t *s = sc[k];
            price_round_t cur = {0, 0, 0, 0};
            int net_msg = 0;
            for (i = 0; i < s->nops; i++) {
                const rdt_sched_op_t *o = &s->ops[i];
                double b = (double)rdt_sched_region_len(s, o->blk_begin, o->blk_end, bytes);
                if (o->kind != RDT_OPK_COPY) {
                    if (hs.host[o->peer] != h) {
                        net_msg = 1;
                    } else {
                        cur.msg = 1;
                        if (o->kind == RDT_OPK_SEND)
                            cur.sent += b;
                        else
                            cur.recvd += b;
                    }
                    if (o->kind == RDT_OPK_RECV_REDUCE)
                        cur.reduced += b;
                }
                if (i + 1 == s->nops || s->ops[i + 1].round != o->round) {
                    const topo_round_t *x = &hr[o->round];
                    double wire = x->sent > x->recvd ? x->sent : x->recvd;
                    double c_net = net_msg ? net->alpha + net->beta * wire : 0.0;
                    double c_shm = (cur.msg ? shm->alpha : 0.0) +
                                   shm->beta * (cur.sent > cur.recvd ? cur.sent : cur.recvd);
                    double c = (c_net > c_shm ? c_net : c_shm) + net->gamma * cur.reduced;
                    if (c > worst[o->round])
                        worst[o->round] = c;
                    cur.sent = cur.recvd = cur.reduced = 0;
                    cur.msg = 0;
                    net_msg = 0;
                }
            }
        }
        for (k = 0; k < L; k++) {
            rdt_sched_destroy(sc[k]);
            sc[k] = NULL;
        }
        for (t = 0; t < nr; t++)
            hr[t].sent = hr[t].recvd = 0;
    }
    total = 0;
    for (t = 0; t < nr; t++)
        total += worst[t];
    if (info_p) {
        info_p->inter_host_bytes = inter;
        info_p->max_host_bytes = host_max;
    }
out:
    for (k = 0; sc && k < hs.lmax; k++)
        rdt_sched_destroy(sc[k]);
    free(sc);
    free(worst);
    free(hr);
    rdt_hosts_fini(&hs);
    return total;
}

void rdt_cost_shm_params(const rdt_cost_params_t *net, rdt_cost_params_t *shm_p)
{
    shm_p->alpha = net->alpha < RDT_COST_SHM_ALPHA ? net->alpha : RDT_COST_SHM_ALPHA;
    shm_p->beta = net->beta < RDT_COST_SHM_BETA ? net->beta : RDT_COST_SHM_BETA;
    shm_p->gamma = net->gamma;
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
        if (algo == RDT_ALGO_HIER) /* one host: the ring's rounds, in chunks of n/p */
            return 2 * (p - 1) * (a + ceil(n / p) * b) + (p - 1) * ceil(n / p) * g;
        if (algo == RDT_ALGO_HIERTREE) /* one host: binomial reduce, then broadcast */
            return L * (2 * a + n * (2 * b + g));
        /* tree: U rounds up with half the vector, D rounds down sending it to two children */
        dbtree_rounds(nranks, &up, &down);
        return up * (a + n / 2 * (b + g)) + down * dbtree_down_round(nranks, n, a, b);
    case RDT_COLL_REDUCE_SCATTER: /* hier on one host: the ring of the sets, one unit each */
        if (algo == RDT_ALGO_RING || algo == RDT_ALGO_HIER)
            return (p - 1) * (a + n * b + n * g);
        return m * a + fold_units(pp, e) * n * (b + g) + (e ? 2 * a + p * n * (b + g) + n * b : 0);
    case RDT_COLL_ALLGATHER:
        if (algo == RDT_ALGO_RING || algo == RDT_ALGO_HIER)
            return (p - 1) * (a + n * b);
        return m * a + fold_units(pp, e) * n * b + (e ? 2 * a + n * b + p * n * b : 0);
    case RDT_COLL_BROADCAST: /* tree and hier (one host: the binomial tree) */
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

/*
 * Hierarchical allreduce in the two-level model (sched_hier.c; G = most ranks on a host, H
 * hosts, a host of L ranks cuts the vector into chunks of at most ceil(G/L) groups of n/G):
 *   intra-host reduce-scatter: round t costs the most over the hosts with L - 1 > t of
 *       shm.alpha + ceil(G/L) n/G (shm.beta + gamma)
 *   between hosts, 2(H-1) rounds: every host sends one sub-block of every group per round,
 *       n/H bytes on its link: net.alpha + n/H net.beta, plus gamma on the H-1 reduce-scatter
 *       rounds for the rank owning the most groups, max ceil(G/L) n/(G H)
 *   intra-host allgather: as the reduce-scatter without gamma.
 */
static double hier_allreduce_model(const rdt_hosts_t *hs, double n, const rdt_cost_params_t *net,
                                   const rdt_cost_params_t *shm)
{
    int G = hs->lmax, H = hs->nhosts, t, h;
    double total = 0, kmax = 0;

    for (t = 0; t < G - 1; t++) {
        double rs = 0, ag = 0;
        for (h = 0; h < H; h++) {
            int L = rdt_hosts_size(hs, h);
            double chunk = ceil((double)G / L) * n / G;
            if (L - 1 <= t)
                continue;
            if (shm->alpha + chunk * (shm->beta + net->gamma) > rs)
                rs = shm->alpha + chunk * (shm->beta + net->gamma);
            if (shm->alpha + chunk * shm->beta > ag)
                ag = shm->alpha + chunk * shm->beta;
        }
        total += rs + ag;
    }
    for (h = 0; h < H; h++) {
        double k = ceil((double)G / rdt_hosts_size(hs, h));
        kmax = k > kmax ? k : kmax;
    }
    if (H > 1)
        total += 2 * (H - 1) * (net->alpha + ceil(n / H) * net->beta) +
                 (H - 1) * kmax * ceil(n / ((double)G * H)) * net->gamma;
    return total;
}

/*
 * Hierarchical broadcast and reduce (sched_hier_coll.c), priced at root 0: T = ceil(log2 H)
 * network rounds with one N-byte message on the root host's link each, then (broadcast) the
 * shared-memory rounds that remain after round T: host h's intra-host tree starts the round after
 * its leader received (T - ctz(h); round 0 on the root host) and takes ceil(log2 L_h) rounds:
 *   broadcast: T (net.a + N net.b) + max(0, max_h(start_h + ceil(log2 L_h)) - T)(shm.a + N shm.b)
 *   reduce:    ceil(log2 G)(shm.a + N (shm.b + g)) + T (net.a + N (net.b + g))
 */
static double hier_tree_model(rdt_coll_t coll, const rdt_hosts_t *hs, double n,
                              const rdt_cost_params_t *net, const rdt_cost_params_t *shm)
{
    int H = hs->nhosts, T = rdt_log2_ceil((uint32_t)H), h, end = 0;

    if (coll == RDT_COLL_REDUCE)
        return rdt_log2_ceil((uint32_t)hs->lmax) * (shm->alpha + n * (shm->beta + net->gamma)) +
               T * (net->alpha + n * (net->beta + net->gamma));
    for (h = 0; h < H; h++) {
        int e = (h == 0 ? 0 : T - __builtin_ctz((unsigned)h)) +
                rdt_log2_ceil((uint32_t)rdt_hosts_size(hs, h));
        end = e > end ? e : end;
    }
    return T * (net->alpha + n * net->beta) +
           (end > T ? end - T : 0) * (shm->alpha + n * shm->beta);
}

/*
 * Hierarchical allgather and reduce-scatter (sched_hier_coll.c), n bytes per unit: H-1 network
 * rounds in which a host's link carries at most G units each way, and the intra-host ring of the
 * sets, whose largest on host h holds about S_h = 1 + (p - L_h) / L_h units (exact when every
 * host size is a multiple of L_h); step s costs the most over the hosts with L_h - 1 > s:
 *   allgather:      (H-1)(net.a + G n net.b) + sum_s max_h (shm.a + S_h n shm.b)
 *   reduce_scatter: sum_s max_h (shm.a + S_h n (shm.b + g)) + (H-1)(net.a + G n net.b + n g)
 */
static double hier_sets_model(rdt_coll_t coll, const rdt_hosts_t *hs, double n,
                              const rdt_cost_params_t *net, const rdt_cost_params_t *shm)
{
    int G = hs->lmax, H = hs->nhosts, p = hs->nranks, s, h;
    double g = coll == RDT_COLL_REDUCE_SCATTER ? net->gamma : 0.0, total = 0;

    for (s = 0; s < G - 1; s++) {
        double worst = 0;
        for (h = 0; h < H; h++) {
            int L = rdt_hosts_size(hs, h);
            double S = 1 + ceil((double)(p - L) / L), c = shm->alpha + S * n * (shm->beta + g);
            if (L - 1 > s && c > worst)
                worst = c;
        }
        total += worst;
    }
    return total + (H - 1) * (net->alpha + G * n * net->beta + n * g);
}

/*
 * Hierarchical tree allreduce (sched_hier_coll.c, "hiertree"): LG = ceil(log2 G) shared-memory
 * rounds up and as many down (the whole vector each), and recursive doubling among the H
 * leaders, one message per host link per step:
 *   2 LG shm.a + LG n (2 shm.b + g) + m (net.a + n (net.b + g)) + fold, with m = log2 of the
 *   largest power of two <= H, fold = 2 net.a + 2 n net.b + n g when H is not one.
 */
static double hier_tree_allreduce_model(const rdt_hosts_t *hs, double n,
                                        const rdt_cost_params_t *net,
                                        const rdt_cost_params_t *shm)
{
    int H = hs->nhosts, pp = rdt_pow2_floor(H), m = rdt_log2_floor((uint32_t)pp);
    int LG = rdt_log2_ceil((uint32_t)hs->lmax);

    return LG * (2 * shm->alpha + n * (2 * shm->beta + net->gamma)) +
           m * (net->alpha + n * (net->beta + net->gamma)) +
           (H > pp ? 2 * net->alpha + 2 * n * net->beta + n * net->gamma : 0);
}

/*
 * Recursive doubling and Rabenseifner allreduce in the two-level model, for hosts of
 * consecutive ranks, G = most ranks on a host, 2^k = the largest power of two <= G: the steps
 * between partners closer than 2^k stay inside a host (shared memory), the others cross, with
 * all G ranks of a host on its link at once (G times the bytes). Fold rounds at network cost.
 *   recdbl:       k (shm.a + n shm.b + n g) + (m - k)(net.a + G n net.b + n g)
 *   rabenseifner: 2 k shm.a + 2 (m - k) net.a + 2 (1 - 2^k/p') G n net.b
 *                 + 2 (2^k - 1)/p' n shm.b + (p'-1)/p' n g
 */
static double halving_model(rdt_algo_t algo, int p, int G, double n,
                            const rdt_cost_params_t *net, const rdt_cost_params_t *shm)
{
    int pp = rdt_pow2_floor(p), e = p - pp, m = rdt_log2_floor((uint32_t)pp);
    int k = rdt_log2_floor((uint32_t)G), kk;
    double fold = e ? 2 * net->alpha + 2 * n * net->beta + n * net->gamma : 0;

    kk = k < m ? k : m;
    if (algo == RDT_ALGO_RECDBL)
        return kk * (shm->alpha + n * (shm->beta + net->gamma)) +
               (m - kk) * (net->alpha + G * n * net->beta + n * net->gamma) + fold;
    return 2 * kk * shm->alpha + 2 * (m - kk) * net->alpha +
           2 * (1 - (double)(1 << kk) / pp) * G * n * net->beta +
           2 * ((double)(1 << kk) - 1) / pp * n * shm->beta + (pp - 1) / (double)pp * n * net->gamma +
           fold;
}

double rdt_cost_model_topo(rdt_coll_t coll, rdt_algo_t algo, int nranks, const int *host_of,
                           size_t bytes, const rdt_cost_params_t *net,
                           const rdt_cost_params_t *shm)
{
    rdt_hosts_t hs;
    double t;
    int halving = coll == RDT_COLL_ALLREDUCE &&
                  (algo == RDT_ALGO_RECDBL || algo == RDT_ALGO_RABENSEIFNER);

    int hierarchical = algo == RDT_ALGO_HIER || algo == RDT_ALGO_HIERTREE;

    if (!host_of || (!hierarchical && !halving) || !rdt_sched_supported(coll, algo) ||
        nranks <= 1)
        return rdt_cost_model(coll, algo, nranks, bytes, net);
    if (!net || !shm || rdt_hosts_init(&hs, nranks, host_of) != RDT_SUCCESS)
        return HUGE_VAL;
    if (halving)
        t = hs.nhosts == 1 || hs.lmax == 1
                ? rdt_cost_model(coll, algo, nranks, bytes, net)
                : halving_model(algo, nranks, hs.lmax, (double)bytes, net, shm);
    else if (algo == RDT_ALGO_HIERTREE)
        t = hier_tree_allreduce_model(&hs, (double)bytes, net, shm);
    else if (coll == RDT_COLL_ALLREDUCE)
        t = hier_allreduce_model(&hs, (double)bytes, net, shm);
    else if (coll == RDT_COLL_BROADCAST || coll == RDT_COLL_REDUCE)
        t = hier_tree_model(coll, &hs, (double)bytes, net, shm);
    else
        t = hier_sets_model(coll, &hs, (double)bytes, net, shm);
    rdt_hosts_fini(&hs);
    return t;
}

rdt_algo_t rdt_cost_select(rdt_coll_t coll, int nranks, const int *host_of, size_t bytes,
                           const rdt_cost_params_t *net)
{
    rdt_cost_params_t shm;
    int nhosts = 1, lmax = nranks, hier, a, best = -1;
    double best_t = 0;

    if (host_of && rdt_sched_host_shape(nranks, host_of, &nhosts, &lmax) != 0)
        nhosts = 1;
    hier = nhosts > 1 && lmax > 1;
    rdt_cost_shm_params(net, &shm);
    for (a = 0; a < RDT_ALGO_COUNT; a++) {
        double t;
        if (!rdt_sched_supported(coll, a) ||
            ((a == RDT_ALGO_HIER || a == RDT_ALGO_HIERTREE) && !hier))
            continue;
        t = hier ? rdt_cost_model_topo(coll, a, nranks, host_of, bytes, net, &shm)
                 : rdt_cost_model(coll, a, nranks, bytes, net);
        if (best < 0 || t < best_t) {
            best = a;
            best_t = t;
        }
    }
    return (rdt_algo_t)best;
}
