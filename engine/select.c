/*
 * select.c - choose (algorithm, slice length) for one call.
 *
 * The choice is the cheapest algorithm by the closed-form alpha-beta-gamma model of cost.c
 * (alpha, beta, gamma from the configuration: the network's; shared memory's are derived,
 * rdt_cost_shm_params), unless RDT_ALGO forces one. With several hosts and several ranks on
 * some host the hierarchical algorithms compete too (rdt_cost_select). It depends only on
 * (collective, count, dtype, ranks, hosts, configuration), so every rank makes the same choice
 * without talking; a rank configured differently is caught as a size mismatch by the
 * transport.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "log.h"

/* Host names by name, then by rank (their address in comm->hosts). */
static int name_cmp(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int c = strncmp(x, y, RDT_HOST_MAX);
    return c ? c : (x > y) - (x < y);
}

/*
 * comm->host_of from the host names gathered at creation (comm->hosts; RDT_HOSTNAME overrides a
 * rank's): rank r's host is the lowest rank with the same name. Sorted once per communicator.
 */
static rdt_status_t select_hosts(rdt_comm_t *comm)
{
    int n = comm->nranks, i, first = 0, nhosts = 1, lmax = n;
    const char **names;

    free(comm->host_of);
    comm->host_of = malloc((size_t)n * sizeof(int));
    names = malloc((size_t)n * sizeof(*names));
    if (!comm->host_of || !names) {
        free(names);
        return rdt_comm_set_error(comm, RDT_ERR_NO_MEMORY, "out of memory for the host map");
    }
    for (i = 0; i < n; i++)
        names[i] = comm->hosts + (size_t)i * RDT_HOST_MAX;
    qsort(names, (size_t)n, sizeof(*names), name_cmp);
    for (i = 0; i < n; i++) {
        if (i == 0 || strncmp(names[i], names[i - 1], RDT_HOST_MAX))
            first = (int)((names[i] - comm->hosts) / RDT_HOST_MAX);
        comm->host_of[(names[i] - comm->hosts) / RDT_HOST_MAX] = first;
    }
    free(names);
    if (rdt_sched_host_shape(n, comm->host_of, &nhosts, &lmax) != 0)
        return rdt_comm_set_error(comm, RDT_ERR_NO_MEMORY, "out of memory for the host map");
    comm->hier = nhosts > 1 && lmax > 1;
    rdt_info("select", "%d ranks on %d hosts (at most %d on one)%s", n, nhosts, lmax,
             comm->hier ? ": hierarchical algorithms enabled" : "");
    return RDT_SUCCESS;
}

/* Parse RDT_ALGO: "coll:algo,coll:algo" or a bare "algo" for every collective that has it;
 * derive the host map. */
rdt_status_t rdt_select_validate(rdt_comm_t *comm)
{
    char buf[sizeof(comm->cfg.algo)];
    char *save = NULL, *item;
    int c;
    rdt_status_t st = select_hosts(comm);

    if (st != RDT_SUCCESS)
        return st;

    for (c = 0; c < RDT_COLL_COUNT; c++)
        comm->forced[c] = -1;
    /* one-shot exchanges: every rank on this host (the transport knows), and room to see them */
    comm->share_max = 0;
    comm->share_cap = 0;
    comm->direct_on = 0;
    if (comm->nranks > 1 &&
        (comm->cfg.shm_oneshot || comm->cfg.shm_oneshot_ar || comm->cfg.shm_direct) && comm->tp &&
        comm->tp->ops->share_max) {
        size_t m = comm->tp->ops->share_max(comm->tp);
        size_t n = (size_t)comm->nranks;
        if (!comm->share_views)
            comm->share_views = calloc((size_t)comm->nranks, sizeof(*comm->share_views));
        if (!comm->share_lens)
            comm->share_lens = calloc((size_t)comm->nranks, sizeof(*comm->share_lens));
        if (!comm->share_views || !comm->share_lens)
            return rdt_comm_set_error(comm, RDT_ERR_NO_MEMORY, "out of memory for the views of "
                                      "one-shot exchanges");
        comm->share_max = m < comm->cfg.shm_oneshot ? m : comm->cfg.shm_oneshot;
        comm->share_cap = m;
        if (comm->share_max)
            rdt_info("select", "one-shot exchanges through shared memory for contributions of "
                     "up to %zu bytes", comm->share_max);
        if (comm->cfg.shm_direct && m >= sizeof(rdt_direct_offer_t)) {
            if (!comm->direct_offers)
                comm->direct_offers = calloc(n, sizeof(*comm->direct_offers));
            if (!comm->direct_src)
                comm->direct_src = calloc(n, sizeof(*comm->direct_src));
            if (!comm->direct_dst)
                comm->direct_dst = calloc(n, sizeof(*comm->direct_dst));
            /* a direct chunk, or a staged chunk's reduced slice (at most half of one) */
            if (!comm->direct_tmp &&
                posix_memalign((void **)&comm->direct_tmp, 64,
                               RDT_DIRECT_CHUNK > RDT_STAGED_CHUNK / 2 ? RDT_DIRECT_CHUNK
                                                                      : RDT_STAGED_CHUNK / 2) != 0)
                comm->direct_tmp = NULL;
            if (!comm->direct_offers || !comm->direct_src || !comm->direct_dst ||
                !comm->direct_tmp)
                return rdt_comm_set_error(comm, RDT_ERR_NO_MEMORY, "out of memory for direct "
                                          "collectives");
            comm->direct_on = 1;
            rdt_info("select", "direct collectives for rdt_mem_alloc buffers of %zu bytes or "
                     "more", comm->cfg.shm_direct);
        }
    }
    snprintf(buf, sizeof(buf), "%s", comm->cfg.algo);
    for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(item, ':');
        const char *aname = colon ? colon + 1 : item;
        int algo = rdt_algo_from_name(aname), coll = -1, any = 0;

        if (colon) {
            *colon = '\0';
            coll = rdt_coll_from_name(item);
            if (coll < 0)
                return rdt_comm_set_error(comm, RDT_ERR_CONFIG,
                                          "RDT_ALGO: '%s' is not a collective (allreduce, "
                                          "reduce_scatter, allgather, broadcast, reduce, barrier, "
                                          "alltoall)", item);
        }
        if (algo < 0)
            return rdt_comm_set_error(comm, RDT_ERR_CONFIG,
                                      "RDT_ALGO: '%s' is not an algorithm (ring, recdbl, "
                                      "rabenseifner, tree, pairwise, hier, hiertree)", aname);
        for (c = 0; c < RDT_COLL_COUNT; c++) {
            if ((coll >= 0 && c != coll) || !rdt_sched_supported(c, algo))
                continue;
            comm->forced[c] = algo;
            any = 1;
        }
        if (!any)
            return rdt_comm_set_error(comm, RDT_ERR_CONFIG,
                                      "RDT_ALGO: %s has no %s algorithm",
                                      coll >= 0 ? rdt_coll_name(coll) : "no collective",
                                      rdt_algo_name(algo));
    }
    return RDT_SUCCESS;
}

/*
 * One exchange through shared memory (every rank writes its contribution once, then reads the
 * others' straight from their segments) costs one synchronisation of all ranks and n reads of
 * the contribution; a schedule costs a message per round. Below RDT_SHM_ONESHOT bytes per rank
 * (see the benchmarks in docs/) the exchange wins for the collectives whose every result depends
 * on every rank (allreduce, allgather, reduce_scatter, alltoall, barrier), which synchronise all
 * ranks anyway. Broadcast and reduce do not: their schedules let the root run ahead of the
 * others, and back to back they beat the exchange's synchronisation (4 ranks on 2 cores: 0.5 us
 * against 2.8 us), so they keep their schedules. A collective whose algorithm RDT_ALGO forces
 * keeps its schedule too.
 */
int rdt_select_oneshot(const rdt_comm_t *comm, rdt_coll_t coll, size_t count, rdt_dtype_t dtype)
{
    size_t bytes = count * rdt_dtype_size(dtype);

    if (!comm->share_cap || comm->forced[coll] >= 0 || coll == RDT_COLL_BROADCAST ||
        coll == RDT_COLL_REDUCE)
        return 0;
    if (coll == RDT_COLL_ALLREDUCE && bytes > comm->share_max) /* count 0 never comes here */
        return rdt_select_oneshot_ar(comm, bytes) && !rdt_select_direct(comm, coll, count, dtype);
    if (!comm->share_max)
        return 0;
    if (coll == RDT_COLL_REDUCE_SCATTER || coll == RDT_COLL_ALLTOALL)
        bytes *= (size_t)comm->nranks; /* each rank contributes every rank's part */
    else if (coll == RDT_COLL_BARRIER)
        bytes = 0;
    return bytes <= comm->share_max;
}

/*
 * Allreduce above RDT_SHM_ONESHOT: the one-shot exchange still beats the schedules up to
 * RDT_SHM_ONESHOT_ALLREDUCE bytes per rank (1 MiB; measured, 2 and 4 ranks, malloc'd buffers:
 * 1.2-2.1x in place from 32 KiB to 512 KiB, where a schedule's single round must wait for the
 * peer's read of this rank's vector before reducing into it; out of place within 13% either
 * way), but not a direct one: from RDT_SHM_DIRECT bytes the offers come first, and only a call
 * they turn away from direct (and that is too small to run staged) runs the exchange (exec.c).
 */
int rdt_select_oneshot_ar(const rdt_comm_t *comm, size_t bytes)
{
    return bytes <= comm->cfg.shm_oneshot_ar && bytes <= comm->share_cap;
}

/*
 * Direct (exec.c): with every rank on this host, a collective whose buffers every rank took from
 * rdt_mem_alloc can read and write them in place, one pass over the data per rank. Whether the
 * buffers qualify is each rank's own knowledge, so from RDT_SHM_DIRECT bytes per rank (a choice
 * every rank makes alike) the ranks tell each other first (one exchange of 72 bytes) and run
 * direct only if all can, else the schedule chosen as usual. Barrier has no data; a collective
 * whose algorithm RDT_ALGO forces keeps its schedule.
 */
int rdt_select_direct(const rdt_comm_t *comm, rdt_coll_t coll, size_t count, rdt_dtype_t dtype)
{
    size_t bytes = count * rdt_dtype_size(dtype);

    if (!comm->direct_on || comm->forced[coll] >= 0 || coll == RDT_COLL_BARRIER || !count)
        return 0;
    if (coll == RDT_COLL_REDUCE_SCATTER || coll == RDT_COLL_ALLTOALL)
        bytes *= (size_t)comm->nranks;
    return bytes >= comm->cfg.shm_direct;
}

#define SELECT_SHM_ONE_SLICE ((size_t)4 << 20)

/* Bytes of one pipelined slice (the whole vector of one slice, all units). */
static size_t chunk_bytes(const rdt_comm_t *comm, size_t total)
{
    if (comm->cfg.chunk)
        return comm->cfg.chunk;
    if (total <= (512u << 10))
        return total; /* one slice: latency matters more than overlap */
    /* every rank on this host (the share areas exist): each message is one kernel copy
     * (process_vm_readv) with a rendezvous before it, and up to a few MiB the vectors stay in
     * the caches, so slicing buys no overlap worth its handshakes (measured, best of 5-7
     * interleaved rounds: 2 ranks 2 MiB 4-5% faster in one slice, 3 ranks 2 MiB 6-7%, 4 ranks
     * 1 MiB within 5% either way; from 8 MiB, RDT_CHUNK=8m is slower) */
    if (comm->share_cap && total <= SELECT_SHM_ONE_SLICE)
        return total;
    return 1u << 20;
}

rdt_status_t rdt_select(rdt_comm_t *comm, rdt_coll_t coll, size_t count, rdt_dtype_t dtype,
                        rdt_algo_t *algo_p, size_t *slice_len_p)
{
    rdt_cost_params_t cost = {comm->cfg.alpha, comm->cfg.beta, comm->cfg.gamma};
    size_t es = rdt_dtype_size(dtype);
    size_t units = rdt_sched_nunits(coll, comm->nranks);
    size_t total = count * es * units, chunk, slice, key = es | (size_t)coll << 56;
    int best = -1, bucket;
    /* the choice depends only on (collective, count, element size) for a communicator */
    struct rdt_sel_cache *c = &comm->sel_cache[(count * 7 + (size_t)coll) & 15];

    if (count && c->bytes == count * es && c->key == key) {
        *algo_p = (rdt_algo_t)c->algo;
        *slice_len_p = c->slice;
        return RDT_SUCCESS;
    }

    if (comm->forced[coll] >= 0)
        best = comm->forced[coll];
    else /* flat as ever without a hierarchy; flat or hierarchical with one (cost.c) */
        best = (int)rdt_cost_select(coll, comm->nranks, comm->hier ? comm->host_of : NULL,
                                    count * es, &cost);
    if (best < 0)
        return rdt_comm_set_error(comm, RDT_ERR_INTERNAL, "%s: no algorithm available",
                                  rdt_coll_name(coll));
    chunk = chunk_bytes(comm, total);
    slice = chunk / (units * es);
    if (slice < 1)
        slice = 1;
    if (slice > count && count)
        slice = count;
    *algo_p = best;
    *slice_len_p = slice ? slice : 1;
    if (count) {
        c->bytes = count * es;
        c->key = key;
        c->slice = *slice_len_p;
        c->algo = best;
    }

    bucket = 0;
    while (bucket < 63 && ((size_t)1 << bucket) < count * es)
        bucket++;
    if (!(comm->logged[coll] & (1ULL << bucket))) {
        comm->logged[coll] |= 1ULL << bucket;
        rdt_info("select", "%s of %zu bytes on %d ranks: %s%s, %zu slices of %zu elements",
                 rdt_coll_name(coll), count * es, comm->nranks, rdt_algo_name(best),
                 comm->forced[coll] >= 0 ? " (forced by RDT_ALGO)" : "",
                 count ? (count + slice - 1) / slice : 1, slice);
    }
    return RDT_SUCCESS;
}
