/*
 * sched_hier_coll.c - hierarchical broadcast, reduce, allgather and reduce-scatter: each byte
 * crosses the network as few times as the collective allows, the rest moves inside a host.
 * The hosts (rdt_hosts_t) and the naming are sched_hier.c's: H hosts numbered by their lowest
 * rank, L_h ranks on host h (its local ranks, in rank order), G = max L_h.
 *
 * Broadcast (nunits 1, nblocks 1). Host leaders: the root on its host, local rank 0 elsewhere.
 * Virtual hosts vh = (h - host(root)) mod H form a binomial tree (sched_tree.c's broadcast over
 * hosts, T = ceil(log2 H) rounds): vh receives from vh - 2^low(vh) in round T-1-low(vh) and
 * sends to vh + 2^j in round T-1-j. A host starts its intra-host binomial broadcast (local
 * virtual ranks v = (l - leader) mod L) in the round after its leader received, so the
 * shared-memory tree runs while the leader still forwards to other hosts:
 *
 *   4 hosts x 2, root 0:   round 0: 0 -> host 2          (the network)
 *                          round 1: 0 -> host 1, host 2's leader -> host 3, 0 -> 1, 4 -> 5
 *                          round 2: host 1's and host 3's leaders -> their local rank 1
 *
 * Every non-root host receives the vector exactly once. The root copies INPUT -> OUTPUT after its
 * last send. The executor's slices pipeline it like the flat trees.
 *
 * Reduce (nunits 1, nblocks 1): the other way round, in two sequential stages (an accumulator
 * cannot take two reductions in one round): rounds [0, ceil(log2 G)) the binomial reduce inside
 * each host to its leader, then ceil(log2 H) rounds of binomial reduce among the leaders to the
 * root. Non-roots accumulate in TEMP, the root in OUTPUT. Every non-root host sends the vector
 * out exactly once.
 *
 * Allgather and reduce-scatter (nunits p, one block per unit). On host h the p units are split
 * into L_h *sets*: set m holds the unit of local rank m and every unit u of another host with
 * local(u) mod L_h = m (so with equal hosts: the units of the ranks with the same local rank).
 *
 *   2 hosts of 3 and 2 ranks (0 1 2 | 3 4):  host 0: set 0 = {0, 3}  set 1 = {1, 4}  set 2 = {2}
 *                                            host 1: set 0 = {3, 0, 2}  set 1 = {4, 1}
 *
 *   allgather       rounds [0, H-1)   round t: every rank sends its own unit to the rank with
 *                                     its local rank (mod L) on host h + t + 1, and receives the
 *                                     units of host h - t - 1 meant for it: after H-1 rounds
 *                                     local rank m holds its set
 *                   then L-1 rounds   intra-host ring allgather of the sets
 *   reduce_scatter  rounds [0, L-1)   intra-host ring reduce-scatter of the sets (partial sums
 *                                     in TEMP): local rank m ends with the host's sum of every
 *                                     unit of its set
 *                   from round G-1,   round t: send the host's partial sum of each unit of host
 *                   H-1 rounds        h + t + 1 in the set to its owner; reduce the partial sum
 *                                     of its own unit from host h - t - 1 into OUTPUT
 *
 * Each unit crosses to each other host exactly once: host h receives (p - L_h) units in the
 * allgather and sends them in the reduce-scatter, (H-1)/H of the vector with equal hosts, and
 * all hosts together move (H-1) p units, the least any schedule can. Messages move whole units
 * (a set is sent as runs of consecutive units), no TEMP in the allgather.
 */
#include <stdlib.h>

#include "sched_impl.h"

static int hc_mod(int x, int m)
{
    return ((x % m) + m) % m;
}

static int hc_ctz(int x)
{
    return __builtin_ctz((unsigned)x);
}

/* The leader of host @p h: the root on the root's host, else its local rank 0. */
static int hc_leader(const rdt_hosts_t *hs, int h, int root)
{
    return hs->host[root] == h ? root : hs->members[hs->first[h]];
}

/* Local rank @p l of host @p h. */
static int hc_member(const rdt_hosts_t *hs, int h, int l)
{
    return hs->members[hs->first[h] + l];
}

static int hc_init(rdt_sched_builder_t *b, rdt_hosts_t *hs)
{
    rdt_status_t st = rdt_hosts_init(hs, b->s->nranks, b->host_of);

    if (st != RDT_SUCCESS) {
        b->status = st;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Broadcast and reduce                                                                         */
/* ------------------------------------------------------------------------------------------ */

void rdt_sched_hier_broadcast(rdt_sched_builder_t *b)
{
    rdt_hosts_t hs;
    int r = b->s->rank, root = b->s->root, h, H, hr, vh, T, L, lead, v, Lh, base, j, low;
    rdt_buf_t src;

    if (hc_init(b, &hs))
        return;
    b->s->nunits = 1;
    b->s->nblocks = 1;
    h = hs.host[r];
    H = hs.nhosts;
    hr = hs.host[root];
    vh = hc_mod(h - hr, H);
    T = rdt_log2_ceil((uint32_t)H);
    L = rdt_hosts_size(&hs, h);
    lead = hs.local[hc_leader(&hs, h, root)];
    v = hc_mod(hs.local[r] - lead, L);
    Lh = rdt_log2_ceil((uint32_t)L);
    base = vh == 0 ? 0 : T - hc_ctz(vh); /* the round after the leader received */
    src = r == root ? RDT_BUF_INPUT : RDT_BUF_OUTPUT;

    if (v == 0) {
        int hlow = vh == 0 ? T : hc_ctz(vh);
        if (vh != 0) {
            int hp = hc_mod(vh - (1 << hlow) + hr, H);
            rdt_sched_recv(b, (uint32_t)(base - 1), hc_leader(&hs, hp, root), RDT_BUF_OUTPUT, 0,
                           1);
        }
        for (j = hlow - 1; j >= 0; j--)
            if (vh + (1 << j) < H)
                rdt_sched_send(b, (uint32_t)(T - 1 - j),
                               hc_leader(&hs, hc_mod(vh + (1 << j) + hr, H), root), src, 0, 1);
        low = Lh;
    } else {
        low = hc_ctz(v);
        rdt_sched_recv(b, (uint32_t)(base + Lh - 1 - low),
                       hc_member(&hs, h, hc_mod(v - (1 << low) + lead, L)), RDT_BUF_OUTPUT, 0, 1);
    }
    for (j = low - 1; j >= 0; j--)
        if (v + (1 << j) < L)
            rdt_sched_send(b, (uint32_t)(base + Lh - 1 - j),
                           hc_member(&hs, h, hc_mod(v + (1 << j) + lead, L)), src, 0, 1);
    if (r == root)
        rdt_sched_copy(b, (uint32_t)(T > Lh ? T : Lh), RDT_BUF_OUTPUT, RDT_BUF_INPUT, 0, 1);
    rdt_sched_sort_rounds(b->s);
    rdt_hosts_fini(&hs);
}

void rdt_sched_hier_reduce(rdt_sched_builder_t *b)
{
    rdt_hosts_t hs;
    int r = b->s->rank, root = b->s->root, h, H, hr, vh, T, L, lead, v, LG, j, low;
    rdt_buf_t acc = RDT_BUF_INPUT, dst;

    if (hc_init(b, &hs))
        return;
    b->s->nunits = 1;
    b->s->nblocks = 1;
    h = hs.host[r];
    H = hs.nhosts;
    hr = hs.host[root];
    vh = hc_mod(h - hr, H);
    T = rdt_log2_ceil((uint32_t)H);
    L = rdt_hosts_size(&hs, h);
    lead = hs.local[hc_leader(&hs, h, root)];
    v = hc_mod(hs.local[r] - lead, L);
    LG = rdt_log2_ceil((uint32_t)hs.lmax);
    dst = r == root ? RDT_BUF_OUTPUT : RDT_BUF_TEMP;

    /* inside the host: v receives from v + 2^j in round j, sends to v - 2^low in round low */
    low = v == 0 ? rdt_log2_ceil((uint32_t)L) : hc_ctz(v);
    for (j = 0; j < low; j++) {
        if (v + (1 << j) >= L)
            continue;
        rdt_sched_recv_reduce(b, (uint32_t)j, hc_member(&hs, h, hc_mod(v + (1 << j) + lead, L)),
                              dst, acc, 0, 1);
        acc = dst;
    }
    if (v != 0) {
        rdt_sched_send(b, (uint32_t)low, hc_member(&hs, h, hc_mod(v - (1 << low) + lead, L)), acc,
                       0, 1);
        rdt_hosts_fini(&hs);
        return;
    }
    /* between the leaders, from round LG on */
    low = vh == 0 ? T : hc_ctz(vh);
    for (j = 0; j < low; j++) {
        if (vh + (1 << j) >= H)
            continue;
        rdt_sched_recv_reduce(b, (uint32_t)(LG + j),
                              hc_leader(&hs, hc_mod(vh + (1 << j) + hr, H), root), dst, acc, 0, 1);
        acc = dst;
    }
    if (vh != 0)
        rdt_sched_send(b, (uint32_t)(LG + low), hc_leader(&hs, hc_mod(vh - (1 << low) + hr, H), root),
                       acc, 0, 1);
    else if (acc == RDT_BUF_INPUT) /* nothing received (cannot happen with p >= 2) */
        rdt_sched_copy(b, 0, RDT_BUF_OUTPUT, RDT_BUF_INPUT, 0, 1);
    rdt_hosts_fini(&hs);
}

/* ------------------------------------------------------------------------------------------ */
/* Allgather and reduce-scatter                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* The sets of host @p h (see the top): units of set m at unit[start[m] .. start[m + 1]), in
 * ascending order. O(p). */
typedef struct hc_sets {
    int *start; /* L + 1 */
    int *unit;  /* p */
} hc_sets_t;

static int hc_sets_init(hc_sets_t *sets, const rdt_hosts_t *hs, int h)
{
    int L = rdt_hosts_size(hs, h), u, m;

    sets->start = calloc((size_t)L + 2, sizeof(int));
    sets->unit = malloc((size_t)hs->nranks * sizeof(int));
    if (!sets->start || !sets->unit) {
        free(sets->start);
        free(sets->unit);
        return -1;
    }
    for (u = 0; u < hs->nranks; u++)
        sets->start[(hs->host[u] == h ? hs->local[u] : hs->local[u] % L) + 2]++;
    for (m = 0; m < L; m++)
        sets->start[m + 2] += sets->start[m + 1];
    for (u = 0; u < hs->nranks; u++)
        sets->unit[sets->start[(hs->host[u] == h ? hs->local[u] : hs->local[u] % L) + 1]++] = u;
    return 0;
}

static void hc_sets_fini(hc_sets_t *sets)
{
    free(sets->start);
    free(sets->unit);
}

/*
 * One op per run of consecutive units of set @p m (kind, peer, round, buffers as given); unit
 * @p special, if in the set, gets an op of its own with @p sbuf / @p ssrc instead.
 */
static void hc_emit_set(rdt_sched_builder_t *b, const hc_sets_t *sets, int m, rdt_opk_t kind,
                        int peer, uint32_t round, rdt_buf_t buf, rdt_buf_t src, int special,
                        rdt_buf_t sbuf, rdt_buf_t ssrc)
{
    int i = sets->start[m], end = sets->start[m + 1];

    while (i < end) {
        int u0 = sets->unit[i], k = i + 1;
        if (u0 == special) {
            rdt_sched_append(b, kind, sbuf, ssrc, peer, round, (uint32_t)u0, (uint32_t)u0 + 1);
            i++;
            continue;
        }
        while (k < end && sets->unit[k] == sets->unit[k - 1] + 1 && sets->unit[k] != special)
            k++;
        rdt_sched_append(b, kind, buf, src, peer, round, (uint32_t)u0,
                         (uint32_t)sets->unit[k - 1] + 1);
        i = k;
    }
}

void rdt_sched_hier_allgather(rdt_sched_builder_t *b)
{
    rdt_hosts_t hs;
    hc_sets_t sets;
    int r = b->s->rank, h, H, L, l, t, s, k;
    int next, prev;

    if (hc_init(b, &hs))
        return;
    b->s->nunits = (uint32_t)b->s->nranks;
    b->s->nblocks = (uint32_t)b->s->nranks;
    h = hs.host[r];
    H = hs.nhosts;
    L = rdt_hosts_size(&hs, h);
    l = hs.local[r];
    if (hc_sets_init(&sets, &hs, h)) {
        b->status = RDT_ERR_NO_MEMORY;
        rdt_hosts_fini(&hs);
        return;
    }
    /* between hosts: own unit out to host h+t+1, the units of host h-t-1 meant for us in */
    for (t = 0; t < H - 1; t++) {
        int hd = hc_mod(h + t + 1, H), hsrc = hc_mod(h - t - 1, H);
        rdt_sched_send(b, (uint32_t)t, hc_member(&hs, hd, l % rdt_hosts_size(&hs, hd)),
                       RDT_BUF_INPUT, (uint32_t)r, (uint32_t)r + 1);
        for (k = l; k < rdt_hosts_size(&hs, hsrc); k += L) {
            int u = hc_member(&hs, hsrc, k);
            rdt_sched_recv(b, (uint32_t)t, u, RDT_BUF_OUTPUT, (uint32_t)u, (uint32_t)u + 1);
        }
    }
    /* inside the host: ring allgather of the sets; our own unit from INPUT */
    next = hc_member(&hs, h, hc_mod(l + 1, L));
    prev = hc_member(&hs, h, hc_mod(l - 1, L));
    for (s = 0; s < L - 1; s++) {
        uint32_t round = (uint32_t)(H - 1 + s);
        hc_emit_set(b, &sets, hc_mod(l - s, L), RDT_OPK_SEND, next, round, RDT_BUF_OUTPUT,
                    RDT_BUF_INPUT, r, RDT_BUF_INPUT, RDT_BUF_INPUT);
        hc_emit_set(b, &sets, hc_mod(l - s - 1, L), RDT_OPK_RECV, prev, round, RDT_BUF_OUTPUT,
                    RDT_BUF_INPUT, -1, RDT_BUF_OUTPUT, RDT_BUF_INPUT);
        if (s == 1) /* the first round that does not send our unit (same memory in place) */
            rdt_sched_copy(b, round, RDT_BUF_OUTPUT, RDT_BUF_INPUT, (uint32_t)r, (uint32_t)r + 1);
    }
    if (L <= 2)
        rdt_sched_copy(b, (uint32_t)(H - 1 + L - 1), RDT_BUF_OUTPUT, RDT_BUF_INPUT, (uint32_t)r,
                       (uint32_t)r + 1);
    hc_sets_fini(&sets);
    rdt_hosts_fini(&hs);
}

void rdt_sched_hier_reduce_scatter(rdt_sched_builder_t *b)
{
    rdt_hosts_t hs;
    hc_sets_t sets;
    int r = b->s->rank, h, H, L, l, t, s, k, G;
    int next, prev;
    rdt_buf_t part, acc;

    if (hc_init(b, &hs))
        return;
    b->s->nunits = (uint32_t)b->s->nranks;
    b->s->nblocks = (uint32_t)b->s->nranks;
    h = hs.host[r];
    H = hs.nhosts;
    G = hs.lmax;
    L = rdt_hosts_size(&hs, h);
    l = hs.local[r];
    if (hc_sets_init(&sets, &hs, h)) {
        b->status = RDT_ERR_NO_MEMORY;
        rdt_hosts_fini(&hs);
        return;
    }
    /* inside the host: ring reduce-scatter of the sets (sched_ring.c's, a set per step); the
     * last step reduces our own set: our unit into OUTPUT, the others' into TEMP */
    next = hc_member(&hs, h, hc_mod(l + 1, L));
    prev = hc_member(&hs, h, hc_mod(l - 1, L));
    for (s = 0; s < L - 1; s++) {
        int last = s == L - 2;
        hc_emit_set(b, &sets, hc_mod(l - s - 1, L), RDT_OPK_SEND, next, (uint32_t)s,
                    s == 0 ? RDT_BUF_INPUT : RDT_BUF_TEMP, RDT_BUF_INPUT, -1, RDT_BUF_INPUT,
                    RDT_BUF_INPUT);
        hc_emit_set(b, &sets, hc_mod(l - s - 2, L), RDT_OPK_RECV_REDUCE, prev, (uint32_t)s,
                    RDT_BUF_TEMP, RDT_BUF_INPUT, last ? r : -1, RDT_BUF_OUTPUT, RDT_BUF_INPUT);
    }
    /* between hosts, from round G-1: the host's partial sums out to their owners, ours in */
    part = L == 1 ? RDT_BUF_INPUT : RDT_BUF_TEMP;
    acc = L == 1 ? RDT_BUF_INPUT : RDT_BUF_OUTPUT;
    for (t = 0; t < H - 1; t++) {
        int hd = hc_mod(h + t + 1, H), hsrc = hc_mod(h - t - 1, H);
        uint32_t round = (uint32_t)(G - 1 + t);
        for (k = l; k < rdt_hosts_size(&hs, hd); k += L) {
            int u = hc_member(&hs, hd, k);
            rdt_sched_send(b, round, u, part, (uint32_t)u, (uint32_t)u + 1);
        }
        rdt_sched_recv_reduce(b, round, hc_member(&hs, hsrc, l % rdt_hosts_size(&hs, hsrc)),
                              RDT_BUF_OUTPUT, acc, (uint32_t)r, (uint32_t)r + 1);
        acc = RDT_BUF_OUTPUT;
    }
    hc_sets_fini(&sets);
    rdt_hosts_fini(&hs);
}

/* ------------------------------------------------------------------------------------------ */
/* Allreduce for small vectors: trees inside the hosts, recursive doubling between them         */
/* ------------------------------------------------------------------------------------------ */

/*
 * Allreduce (nunits 1, nblocks 1), "hiertree": the whole vector, three stages.
 *
 *   rounds [0, LG)                binomial reduce inside each host to its leader (local rank
 *                                 0), LG = ceil(log2 G): v receives from v + 2^j in round j,
 *                                 sends to v - 2^low(v) in round low(v)
 *   rounds [LG, LG + f + m + 1)   recursive doubling among the H leaders (host numbers as
 *                                 ranks, sched_recdbl.c's fold for H not a power of two:
 *                                 f = 1 fold round, m = log2 of the largest power of two <= H)
 *   then ceil(log2 L_h) rounds    binomial broadcast inside each host from its leader
 *
 * Only the leaders touch the network, one message of the whole vector per step: ceil(log2 H)
 * network latencies (plus two folding ones) and no contention on a host's link, where the flat
 * recursive doubling puts all G ranks of a host on its link at every crossing step, and the
 * hierarchical ring (sched_hier.c) pays 2(G-1) + 2(H-1) latencies. So it is for the sizes where
 * latency counts; the cost model (cost.c) decides.
 *
 * Buffers. The reduce inside a host accumulates in OUTPUT (a non-leader's partial sum there is
 * overwritten by the broadcast). The leaders' steps read X and write W != X alternating TEMP and
 * OUTPUT as in sched_recdbl.c, starting from INPUT (a host of one rank) or OUTPUT; one that
 * ends in TEMP copies it to OUTPUT before the broadcast. Every element is reduced along the
 * same tree and the pairwise steps are symmetric bit for bit (reduce.h), so every rank gets the
 * same bits.
 */
void rdt_sched_hier_tree_allreduce(rdt_sched_builder_t *b)
{
    rdt_hosts_t hs;
    int r = b->s->rank, h, H, L, v, LG, Lh, low, j, pp, e, m, n, i;
    uint32_t f, R3;
    rdt_buf_t acc = RDT_BUF_INPUT, x, w;

    if (hc_init(b, &hs))
        return;
    b->s->nunits = 1;
    b->s->nblocks = 1;
    h = hs.host[r];
    H = hs.nhosts;
    L = rdt_hosts_size(&hs, h);
    v = hs.local[r];
    LG = rdt_log2_ceil((uint32_t)hs.lmax);
    Lh = rdt_log2_ceil((uint32_t)L);
    pp = rdt_pow2_floor(H);
    e = H - pp;
    m = rdt_log2_floor((uint32_t)pp);
    f = e > 0 ? 1 : 0;
    R3 = (uint32_t)LG + f + (uint32_t)m + 1;

    /* inside the host, up to the leader */
    low = v == 0 ? Lh : hc_ctz(v);
    for (j = 0; j < low; j++) {
        if (v + (1 << j) >= L)
            continue;
        rdt_sched_recv_reduce(b, (uint32_t)j, hc_member(&hs, h, v + (1 << j)), RDT_BUF_OUTPUT,
                              acc, 0, 1);
        acc = RDT_BUF_OUTPUT;
    }
    if (v != 0) {
        rdt_sched_send(b, (uint32_t)low, hc_member(&hs, h, v - (1 << low)), acc, 0, 1);
        rdt_sched_recv(b, R3 + (uint32_t)(Lh - 1 - low), hc_member(&hs, h, v - (1 << low)),
                       RDT_BUF_OUTPUT, 0, 1);
        for (j = low - 1; j >= 0; j--)
            if (v + (1 << j) < L)
                rdt_sched_send(b, R3 + (uint32_t)(Lh - 1 - j), hc_member(&hs, h, v + (1 << j)),
                               RDT_BUF_OUTPUT, 0, 1);
        rdt_sched_sort_rounds(b->s);
        rdt_hosts_fini(&hs);
        return;
    }

    /* the leaders: recursive doubling over host numbers */
    n = rdt_fold_newrank(h, e);
    x = acc;
    if (n < 0) { /* folded out: hand the host's sum over, get the result back */
        rdt_sched_send(b, (uint32_t)LG, hc_member(&hs, h + 1, 0), x, 0, 1);
        rdt_sched_recv(b, (uint32_t)LG + f + (uint32_t)m, hc_member(&hs, h + 1, 0),
                       RDT_BUF_OUTPUT, 0, 1);
        x = RDT_BUF_OUTPUT;
    } else {
        int folded_in = h < 2 * e;
        if (folded_in) {
            /* the fold writes what step 0 reads; step i writes OUTPUT when m - 1 - i is even */
            w = ((m - 1) % 2 == 0) ? RDT_BUF_TEMP : RDT_BUF_OUTPUT;
            rdt_sched_recv_reduce(b, (uint32_t)LG, hc_member(&hs, h - 1, 0), w, x, 0, 1);
            x = w;
        }
        for (i = 0; i < m; i++) {
            int peer = hc_member(&hs, rdt_fold_realrank(n ^ (1 << i), e), 0);
            w = x == RDT_BUF_OUTPUT ? RDT_BUF_TEMP : RDT_BUF_OUTPUT;
            if (x == RDT_BUF_INPUT) /* in place INPUT is OUTPUT: the first step writes TEMP */
                w = RDT_BUF_TEMP;
            rdt_sched_send(b, (uint32_t)LG + f + (uint32_t)i, peer, x, 0, 1);
            rdt_sched_recv_reduce(b, (uint32_t)LG + f + (uint32_t)i, peer, w, x, 0, 1);
            x = w;
        }
        if (x != RDT_BUF_OUTPUT) {
            rdt_sched_copy(b, (uint32_t)LG + f + (uint32_t)m, RDT_BUF_OUTPUT, x, 0, 1);
            x = RDT_BUF_OUTPUT;
        }
        if (folded_in)
            rdt_sched_send(b, (uint32_t)LG + f + (uint32_t)m, hc_member(&hs, h - 1, 0),
                           RDT_BUF_OUTPUT, 0, 1);
    }

    /* inside the host, down from the leader */
    for (j = Lh - 1; j >= 0; j--)
        if (1 << j < L)
            rdt_sched_send(b, R3 + (uint32_t)(Lh - 1 - j), hc_member(&hs, h, 1 << j),
                           RDT_BUF_OUTPUT, 0, 1);
    rdt_sched_sort_rounds(b->s);
    rdt_hosts_fini(&hs);
}
