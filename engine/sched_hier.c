/*
 * sched_hier.c - hierarchical allreduce: reduce-scatter inside each host, allreduce between
 * hosts among the ranks that own the same part of the vector, allgather inside each host; and
 * the host bookkeeping (rdt_hosts_t) shared with the pricer.
 *
 * H hosts, L_h ranks on host h, G = max L_h. The vector is cut into G *groups*, each group into
 * H *sub-blocks* (one per host, for the ring between hosts): nblocks = G * H, block g * H + j is
 * sub-block j of group g, so the groups of a rank are one contiguous block range. On host h,
 * local rank l owns groups [l G / L_h, (l + 1) G / L_h) (its *chunk*): one group each when
 * L_h = G, several when the host has fewer ranks, all G when it has one.
 *
 *   3 hosts of 3, 1, 4 ranks (G = 4):       group  0    1    2    3
 *     host 0 (ranks 0 1 2)   owners              0    1    2    2
 *     host 1 (rank 3)                            3    3    3    3
 *     host 2 (ranks 4 5 6 7)                     4    5    6    7
 *
 *   rounds [0, G-1)            intra-host ring reduce-scatter of the chunks (sched_ring.c's
 *                              allreduce first half, chunk-sized): local rank l ends with the
 *                              host's sum of chunk l in OUTPUT
 *   rounds [G-1, G-1 + 2(H-1)) per group g, ring allreduce (H sub-blocks) among its owners, host
 *                              order 0 -> 1 -> .. -> H-1 -> 0; a rank owning several groups runs
 *                              their rings side by side in the same rounds, in group order
 *   then G-1 rounds            intra-host ring allgather of the chunks
 *
 * A host with fewer than G ranks finishes its intra-host rounds early (empty rounds follow).
 * Every byte crosses the network once per ring step of its group: a host sends G groups x
 * 2(H-1) sub-blocks of n / (G H) = 2(H-1)/H n bytes, whatever its number of ranks, where the
 * flat ring over hosts of consecutive ranks sends 2(p-1)/p n from each host.
 *
 * Buffers. The reduce-scatter is the ring allreduce's (step s: send chunk l-s-1, from INPUT at
 * s = 0; OUTPUT[chunk l-s-2] = INPUT + incoming), so in place INPUT is read only before or by
 * the op that first writes the same OUTPUT region. The rings between hosts read and write
 * OUTPUT only, except on a host of one rank, which skips the reduce-scatter and starts from
 * INPUT exactly as the flat ring does. The allgather moves OUTPUT only. Every element is reduced
 * once along a fixed path and then copied: bit-identical on every rank. No TEMP.
 */
#include <stdlib.h>

#include "sched_impl.h"

rdt_status_t rdt_hosts_init(rdt_hosts_t *h, int nranks, const int *host_of)
{
    int *map, r, k;

    h->nranks = nranks;
    h->nhosts = 0;
    h->lmax = 0;
    h->host = malloc((size_t)nranks * sizeof(int));
    h->local = malloc((size_t)nranks * sizeof(int));
    h->first = calloc((size_t)nranks + 2, sizeof(int));
    h->members = malloc((size_t)nranks * sizeof(int));
    map = malloc((size_t)nranks * sizeof(int));
    if (!h->host || !h->local || !h->first || !h->members || !map) {
        free(map);
        rdt_hosts_fini(h);
        return RDT_ERR_NO_MEMORY;
    }
    for (r = 0; r < nranks; r++)
        map[r] = -1;
    /* number hosts by their lowest rank; count their ranks in first[host + 1] */
    for (r = 0; r < nranks; r++) {
        int v = host_of ? host_of[r] : 0;
        if (v < 0 || v >= nranks) {
            free(map);
            rdt_hosts_fini(h);
            return RDT_ERR_INVALID_ARG;
        }
        if (map[v] < 0)
            map[v] = h->nhosts++;
        h->host[r] = map[v];
        h->local[r] = h->first[map[v] + 1]++;
    }
    free(map);
    for (k = 0; k < h->nhosts; k++) {
        if (h->first[k + 1] > h->lmax)
            h->lmax = h->first[k + 1];
        h->first[k + 1] += h->first[k];
    }
    for (r = 0; r < nranks; r++)
        h->members[h->first[h->host[r]] + h->local[r]] = r;
    return RDT_SUCCESS;
}

void rdt_hosts_fini(rdt_hosts_t *h)
{
    if (!h)
        return;
    free(h->host);
    free(h->local);
    free(h->first);
    free(h->members);
    h->host = h->local = h->first = h->members = NULL;
}

int rdt_sched_host_shape(int nranks, const int *host_of, int *nhosts_p, int *lmax_p)
{
    rdt_hosts_t h;

    if (nranks < 1 || rdt_hosts_init(&h, nranks, host_of) != RDT_SUCCESS)
        return -1;
    *nhosts_p = h.nhosts;
    *lmax_p = h.lmax;
    rdt_hosts_fini(&h);
    return 0;
}

static int hier_mod(int x, int m)
{
    return ((x % m) + m) % m;
}

/* First group of local rank @p l's chunk on a host of @p L ranks (l = L: the end). */
static uint32_t chunk_group(int l, int L, int G)
{
    return (uint32_t)(((int64_t)l * G) / L);
}

/* The local rank whose chunk holds group @p g: the largest l with l G / L <= g, i.e.
 * ceil((g + 1) L / G) - 1. */
static int group_owner(int g, int L, int G)
{
    return (int)((((int64_t)g + 1) * L + G - 1) / G) - 1;
}

/* Intra-host ring, in chunks: the reduce-scatter (rounds 0 .. L-2) or the allgather. */
static void hier_intra(rdt_sched_builder_t *b, const rdt_hosts_t *hs, int allgather,
                       uint32_t round0)
{
    int r = b->s->rank, h = hs->host[r], l = hs->local[r], L = rdt_hosts_size(hs, h);
    int G = hs->lmax, H = hs->nhosts, s;
    int next = hs->members[hs->first[h] + hier_mod(l + 1, L)];
    int prev = hs->members[hs->first[h] + hier_mod(l - 1, L)];
    uint32_t nh = (uint32_t)H;

    for (s = 0; s < L - 1; s++) {
        int out = hier_mod(allgather ? l - s : l - s - 1, L);
        int in = hier_mod(allgather ? l - s - 1 : l - s - 2, L);
        uint32_t o0 = chunk_group(out, L, G) * nh, o1 = chunk_group(out + 1, L, G) * nh;
        uint32_t i0 = chunk_group(in, L, G) * nh, i1 = chunk_group(in + 1, L, G) * nh;
        uint32_t round = round0 + (uint32_t)s;

        if (allgather) {
            rdt_sched_send(b, round, next, RDT_BUF_OUTPUT, o0, o1);
            rdt_sched_recv(b, round, prev, RDT_BUF_OUTPUT, i0, i1);
        } else {
            rdt_sched_send(b, round, next, s == 0 ? RDT_BUF_INPUT : RDT_BUF_OUTPUT, o0, o1);
            rdt_sched_recv_reduce(b, round, prev, RDT_BUF_OUTPUT, RDT_BUF_INPUT, i0, i1);
        }
    }
}

/*
 * Between hosts: for each group g of this rank's chunk, the ring allreduce of sched_ring.c over
 * its H sub-blocks, position = host number, neighbours = the owners of g on hosts h +- 1.
 * Reduce-scatter step s sends sub-block h - s and reduces sub-block h - s - 1; allgather step s
 * sends h + 1 - s and receives h - s. @p x is where this rank's own data is (INPUT on a host
 * of one rank, else OUTPUT after the intra-host reduce-scatter).
 */
static void hier_inter(rdt_sched_builder_t *b, const rdt_hosts_t *hs, uint32_t round0,
                       rdt_buf_t x)
{
    int r = b->s->rank, h = hs->host[r], l = hs->local[r], L = rdt_hosts_size(hs, h);
    int G = hs->lmax, H = hs->nhosts, s, g;
    int hn = hier_mod(h + 1, H), hp = hier_mod(h - 1, H);
    int Ln = rdt_hosts_size(hs, hn), Lp = rdt_hosts_size(hs, hp);
    int g0 = (int)chunk_group(l, L, G), g1 = (int)chunk_group(l + 1, L, G);
    uint32_t nh = (uint32_t)H;

    for (s = 0; s < 2 * (H - 1); s++) {
        int ag = s >= H - 1, t = ag ? s - (H - 1) : s;
        uint32_t round = round0 + (uint32_t)s;
        for (g = g0; g < g1; g++) {
            int next = hs->members[hs->first[hn] + group_owner(g, Ln, G)];
            int prev = hs->members[hs->first[hp] + group_owner(g, Lp, G)];
            uint32_t base = (uint32_t)g * nh;
            uint32_t out = base + (uint32_t)hier_mod(ag ? h + 1 - t : h - t, H);
            uint32_t in = base + (uint32_t)hier_mod(ag ? h - t : h - t - 1, H);
            if (ag) {
                rdt_sched_send(b, round, next, RDT_BUF_OUTPUT, out, out + 1);
                rdt_sched_recv(b, round, prev, RDT_BUF_OUTPUT, in, in + 1);
            } else {
                rdt_sched_send(b, round, next, t == 0 ? x : RDT_BUF_OUTPUT, out, out + 1);
                rdt_sched_recv_reduce(b, round, prev, RDT_BUF_OUTPUT, x, in, in + 1);
            }
        }
    }
}

void rdt_sched_hier_allreduce(rdt_sched_builder_t *b)
{
    rdt_hosts_t hs;
    rdt_status_t st = rdt_hosts_init(&hs, b->s->nranks, b->host_of);
    int L;
    uint32_t G, H;

    if (st != RDT_SUCCESS) {
        b->status = st;
        return;
    }
    L = rdt_hosts_size(&hs, hs.host[b->s->rank]);
    G = (uint32_t)hs.lmax;
    H = (uint32_t)hs.nhosts;
    if ((uint64_t)G * H > (1u << 26)) { /* e.g. 2^13 hosts of one rank next to one of 2^13 */
        rdt_hosts_fini(&hs);
        b->status = RDT_ERR_UNSUPPORTED;
        return;
    }
    b->s->nunits = 1;
    b->s->nblocks = G * H;
    hier_intra(b, &hs, 0, 0);
    if (H > 1)
        hier_inter(b, &hs, G - 1, L == 1 ? RDT_BUF_INPUT : RDT_BUF_OUTPUT);
    hier_intra(b, &hs, 1, G - 1 + 2 * (H - 1));
    rdt_hosts_fini(&hs);
}
