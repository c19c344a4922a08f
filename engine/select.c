/*
 * select.c - choose (algorithm, slice length) for one call.
 *
 * The choice is the cheapest algorithm by the closed-form alpha-beta-gamma model of cost.c
 * (alpha, beta, gamma from the configuration), unless RDT_ALGO forces one. It depends only on
 * (collective, count, dtype, ranks, configuration), so every rank makes the same choice without
 * talking; a rank configured differently is caught as a size mismatch by the transport.
 */
#include <stdio.h>
#include <string.h>

#include "comm.h"
#include "log.h"

/* Parse RDT_ALGO: "coll:algo,coll:algo" or a bare "algo" for every collective that has it. */
rdt_status_t rdt_select_validate(rdt_comm_t *comm)
{
    char buf[sizeof(comm->cfg.algo)];
    char *save = NULL, *item;
    int c;

    for (c = 0; c < RDT_COLL_COUNT; c++)
        comm->forced[c] = -1;
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
                                      "rabenseifner, tree, pairwise)", aname);
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

/* Bytes of one pipelined slice (the whole vector of one slice, all units). */
static size_t chunk_bytes(const rdt_comm_t *comm, size_t total)
{
    if (comm->cfg.chunk)
        return comm->cfg.chunk;
    if (total <= (512u << 10))
        return total; /* one slice: latency matters more than overlap */
    return 1u << 20;
}

rdt_status_t rdt_select(rdt_comm_t *comm, rdt_coll_t coll, size_t count, rdt_dtype_t dtype,
                        rdt_algo_t *algo_p, size_t *slice_len_p)
{
    rdt_cost_params_t cost = {comm->cfg.alpha, comm->cfg.beta, comm->cfg.gamma};
    size_t es = rdt_dtype_size(dtype);
    size_t units = rdt_sched_nunits(coll, comm->nranks);
    size_t total = count * es * units, chunk, slice;
    int best = -1, a, bucket;
    double best_t = 0;

    if (comm->forced[coll] >= 0) {
        best = comm->forced[coll];
    } else {
        for (a = 0; a < RDT_ALGO_COUNT; a++) {
            double t;
            if (!rdt_sched_supported(coll, a))
                continue;
            t = rdt_cost_model(coll, a, comm->nranks, count * es, &cost);
            if (best < 0 || t < best_t) {
                best = a;
                best_t = t;
            }
        }
    }
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
