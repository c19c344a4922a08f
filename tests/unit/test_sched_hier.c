/* rdt-test-labels: integration */
/*
 * test_sched_hier.c - the hierarchical allreduces (engine/sched_hier.c's ring, and hiertree in
 * sched_hier_coll.c: trees inside hosts, recursive doubling between them): replayed by the
 * simulator on host shapes (1 host x N, N hosts x 1, 2x2, 2x4, 2/1/3, 3/1/4, 8x8, random uneven
 * ones up to 64 ranks, hosts of consecutive ranks or interleaved), in place and out of place,
 * over counts, slices, every dtype and op; the bytes crossing between hosts against 2(H-1)/H N
 * per host and against the flat ring; the two-level prices and closed forms; the selector's
 * choice; and, over real processes on loopback TCP with host names faked through RDT_HOSTNAME,
 * the executor running the forced hierarchical schedules (hence the extra label: it starts
 * processes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdmatrain.h"
#include "sched.h"
#include "spawn.h"
#include "testutil.h"

#define MAX_RANKS 128

/* A host shape: ranks per host, and where the ranks go. */
typedef struct shape {
    int nhosts;
    int size[MAX_RANKS]; /* ranks on host h */
    int p;
    int host_of[MAX_RANKS];
} shape_t;

/* Hosts of consecutive ranks (as a launcher places them), host h numbered h. */
static void shape_make(shape_t *s, int nhosts, const int *sizes)
{
    int h, k;

    memset(s, 0, sizeof(*s));
    s->nhosts = nhosts;
    for (h = 0; h < nhosts; h++) {
        s->size[h] = sizes[h];
        for (k = 0; k < sizes[h]; k++)
            s->host_of[s->p++] = h;
    }
}

static void shape_grid(shape_t *s, int nhosts, int per_host)
{
    int sizes[MAX_RANKS], h;
    for (h = 0; h < nhosts; h++)
        sizes[h] = per_host;
    shape_make(s, nhosts, sizes);
}

/* Interleave the ranks: a random permutation of host_of, with host numbers renamed so that they
 * are not in rank order either (host_of values are any indexes < p). */
static void shape_shuffle(shape_t *s, uint64_t *rng)
{
    int i, rename[MAX_RANKS];

    for (i = s->p - 1; i > 0; i--) {
        int j = (int)(rdt_test_rand(rng) % (uint64_t)(i + 1)), t = s->host_of[i];
        s->host_of[i] = s->host_of[j];
        s->host_of[j] = t;
    }
    for (i = 0; i < s->p; i++)
        rename[i] = s->p - 1 - i;
    for (i = 0; i < s->p; i++)
        s->host_of[i] = rename[s->host_of[i]];
}

static void shape_name(const shape_t *s, char *out, size_t n)
{
    int h, w = snprintf(out, n, "%d hosts (", s->nhosts);
    for (h = 0; h < s->nhosts && w < (int)n; h++)
        w += snprintf(out + w, n - (size_t)w, "%s%d", h ? "/" : "", s->size[h]);
    if (w < (int)n)
        snprintf(out + w, n - (size_t)w, ")");
}

static rdt_sim_result_t sim(const shape_t *s, rdt_algo_t algo, size_t count, size_t slice,
                            rdt_dtype_t dt, rdt_op_t op, int in_place, int inexact)
{
    rdt_sim_params_t prm = {.coll = RDT_COLL_ALLREDUCE,
                            .algo = algo,
                            .nranks = s->p,
                            .count = count,
                            .slice = slice,
                            .dtype = dt,
                            .op = op,
                            .in_place = in_place,
                            .inexact = inexact,
                            .host_of = s->host_of};
    rdt_sim_result_t res;
    char name[400];

    rdt_sim_run(&prm, &res);
    if (res.status != RDT_SUCCESS) {
        shape_name(s, name, sizeof(name));
        fail_msg("%s allreduce on %s, count %zu, slice %zu, %s %s, %s%s: %s", rdt_algo_name(algo),
                 name, count, slice, rdt_dtype_name(dt), rdt_op_name(op),
                 in_place ? "in place" : "out of place", inexact ? ", inexact" : "", res.error);
    }
    return res;
}

/* Counts 1, fewer than the blocks, odd, large-ish; slices: one, three, and tiny ones (some
 * blocks empty); in place and out of place; dtype and op rotating with the case. */
static void sim_matrix(const shape_t *s, unsigned *rot)
{
    size_t counts[4] = {1, (size_t)s->p + 1, 2 * (size_t)s->p + 3, 4099};
    unsigned ci, si;
    int ip;

    for (ci = 0; ci < 4; ci++) {
        size_t n = counts[ci], slices[3] = {0, n / 3 + 1, 5};
        for (si = 0; si < 3; si++) {
            if ((si == 1 && n < 3) || (si == 2 && n > 64 * (size_t)s->p))
                continue;
            for (ip = 0; ip < 2; ip++, (*rot)++) {
                sim(s, RDT_ALGO_HIER, n, slices[si], (rdt_dtype_t)(*rot % RDT_DTYPE_COUNT),
                    (rdt_op_t)((*rot / RDT_DTYPE_COUNT) % RDT_OP_COUNT), ip, 0);
                sim(s, RDT_ALGO_HIERTREE, n, slices[si], (rdt_dtype_t)(*rot % RDT_DTYPE_COUNT),
                    (rdt_op_t)((*rot / RDT_DTYPE_COUNT) % RDT_OP_COUNT), ip, 0);
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Topology input                                                                               */
/* ------------------------------------------------------------------------------------------ */

static void test_host_shape_counts_hosts_and_the_largest(void **state)
{
    static const int hof[] = {5, 5, 2, 5, 0, 2};
    int nh = -1, lm = -1;

    (void)state;
    assert_int_equal(rdt_sched_host_shape(6, hof, &nh, &lm), 0);
    assert_int_equal(nh, 3);
    assert_int_equal(lm, 3);
    assert_int_equal(rdt_sched_host_shape(6, NULL, &nh, &lm), 0);
    assert_int_equal(nh, 1);
    assert_int_equal(lm, 6);
    assert_int_equal(rdt_sched_host_shape(5, hof, &nh, &lm), -1); /* 5 is not < 5 */
    assert_int_equal(nh, 1);
}

static void test_build_rejects_a_bad_host_map_and_flat_builders_ignore_it(void **state)
{
    static const int bad[] = {0, 1, 4, 1};
    static const int hof[] = {1, 1, 0, 0, 3};
    rdt_sched_t *s = (rdt_sched_t *)0x1, *f;
    int c, a, r;

    (void)state;
    assert_int_equal(rdt_sched_build_topo(RDT_COLL_ALLREDUCE, RDT_ALGO_HIER, 0, 4, 0, bad, &s),
                     RDT_ERR_INVALID_ARG);
    assert_int_equal(rdt_sched_build_topo(RDT_COLL_ALLREDUCE, RDT_ALGO_RING, 0, 4, 0, bad, &s),
                     RDT_ERR_INVALID_ARG);
    assert_ptr_equal(s, (rdt_sched_t *)0x1);
    assert_int_equal(rdt_sched_build_topo(RDT_COLL_ALLTOALL, RDT_ALGO_HIER, 0, 5, 0, hof, &s),
                     RDT_ERR_UNSUPPORTED);
    assert_int_equal(rdt_sched_build_topo(RDT_COLL_BARRIER, RDT_ALGO_HIER, 0, 5, 0, hof, &s),
                     RDT_ERR_UNSUPPORTED);
    for (c = 0; c < RDT_COLL_COUNT; c++)
        assert_int_equal(rdt_sched_supported(c, RDT_ALGO_HIER),
                         c != RDT_COLL_BARRIER && c != RDT_COLL_ALLTOALL);
    assert_string_equal(rdt_algo_name(RDT_ALGO_HIER), "hier");
    assert_int_equal(rdt_algo_from_name("hier"), RDT_ALGO_HIER);
    for (c = 0; c < RDT_COLL_COUNT; c++) {
        for (a = 0; a < RDT_ALGO_COUNT; a++) {
            if (a == RDT_ALGO_HIER || a == RDT_ALGO_HIERTREE || !rdt_sched_supported(c, a))
                continue;
            for (r = 0; r < 5; r++) {
                assert_int_equal(rdt_sched_build_topo(c, a, r, 5, 2, hof, &s), RDT_SUCCESS);
                assert_int_equal(rdt_sched_build(c, a, r, 5, 2, &f), RDT_SUCCESS);
                assert_int_equal(s->nops, f->nops);
                assert_int_equal(s->nblocks, f->nblocks);
                if (s->nops)
                    assert_memory_equal(s->ops, f->ops, s->nops * sizeof(*s->ops));
                rdt_sched_destroy(s);
                rdt_sched_destroy(f);
            }
        }
    }
}

/* The shape of the schedule on 3 hosts of 3, 1 and 4 ranks, read off the ops: G = 4 groups of
 * H = 3 sub-blocks; the lone rank of host 1 talks only to other hosts, G messages per step. */
static void test_hier_schedule_has_the_documented_shape_on_3_1_4(void **state)
{
    static const int sizes[] = {3, 1, 4};
    shape_t sh;
    rdt_sched_t *s;
    uint32_t i, msgs = 0;
    int r;

    (void)state;
    shape_make(&sh, 3, sizes);
    for (r = 0; r < sh.p; r++) {
        assert_int_equal(rdt_sched_build_topo(RDT_COLL_ALLREDUCE, RDT_ALGO_HIER, r, sh.p, 0,
                                              sh.host_of, &s),
                         RDT_SUCCESS);
        assert_int_equal(s->nunits, 1);
        assert_int_equal(s->nblocks, 12);
        assert_true(s->nrounds <= 2 * 3 + 2 * 2);
        for (i = 0; i < s->nops; i++) {
            const rdt_sched_op_t *o = &s->ops[i];
            int across = o->kind != RDT_OPK_COPY && sh.host_of[o->peer] != sh.host_of[r];
            /* rounds 3..6 are between hosts, the others inside */
            if (o->kind != RDT_OPK_COPY)
                assert_int_equal(across, o->round >= 3 && o->round < 7);
            if (r == 3) {
                assert_true(across);
                msgs++;
            }
            assert_true(o->buf != RDT_BUF_TEMP && o->src != RDT_BUF_TEMP);
        }
        rdt_sched_destroy(s);
    }
    assert_int_equal(msgs, 4 * 2 * 2 * 2); /* 4 groups x 4 steps x (send + receive) */
}

/* ------------------------------------------------------------------------------------------ */
/* Replayed                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void test_hier_allreduce_is_correct_on_the_named_shapes(void **state)
{
    static const int s213[] = {2, 1, 3}, s314[] = {3, 1, 4}, s1[] = {1, 5, 1, 2};
    shape_t sh;
    unsigned rot = 0;
    int n, k;

    (void)state;
    for (n = 1; n <= 9; n++) {
        shape_grid(&sh, 1, n); /* one host of n */
        sim_matrix(&sh, &rot);
        shape_grid(&sh, n, 1); /* n hosts of one */
        sim_matrix(&sh, &rot);
    }
    shape_grid(&sh, 2, 2);
    sim_matrix(&sh, &rot);
    shape_grid(&sh, 2, 4);
    sim_matrix(&sh, &rot);
    shape_grid(&sh, 4, 2);
    sim_matrix(&sh, &rot);
    shape_make(&sh, 3, s213);
    sim_matrix(&sh, &rot);
    shape_make(&sh, 3, s314);
    sim_matrix(&sh, &rot);
    shape_make(&sh, 4, s1);
    sim_matrix(&sh, &rot);
    shape_grid(&sh, 8, 8);
    sim_matrix(&sh, &rot);
    shape_grid(&sh, 4, 8);
    sim_matrix(&sh, &rot);
    for (k = 0; k < 3; k++) { /* big counts on 8x8 and 4x8, several slices */
        shape_grid(&sh, k == 2 ? 4 : 8, 8);
        sim(&sh, RDT_ALGO_HIER, 100000 + (size_t)k, 30000, RDT_FLOAT32, RDT_SUM, k % 2, 0);
    }
}

static void test_hier_allreduce_is_correct_on_random_uneven_shapes_up_to_64_ranks(void **state)
{
    uint64_t rng = 0x5eed4ULL;
    unsigned rot = 7;
    int it;

    (void)state;
    for (it = 0; it < 60; it++) {
        shape_t sh;
        int sizes[MAX_RANKS], nh = 1 + (int)(rdt_test_rand(&rng) % 9), h, total = 0;
        for (h = 0; h < nh; h++) {
            int cap = 64 - total - (nh - h - 1);
            sizes[h] = 1 + (int)(rdt_test_rand(&rng) % (uint64_t)(cap < 12 ? cap : 12));
            total += sizes[h];
        }
        shape_make(&sh, nh, sizes);
        if (it % 2)
            shape_shuffle(&sh, &rng);
        sim_matrix(&sh, &rot);
    }
}

static void test_hier_allreduce_is_exact_for_every_dtype_and_op(void **state)
{
    static const int s213[] = {2, 1, 3}, s314[] = {3, 1, 4};
    shape_t shapes[3];
    int si, dt, op, ip;

    (void)state;
    shape_grid(&shapes[0], 2, 2);
    shape_make(&shapes[1], 3, s213);
    shape_make(&shapes[2], 3, s314);
    for (si = 0; si < 3; si++)
        for (dt = 0; dt < RDT_DTYPE_COUNT; dt++)
            for (op = 0; op < RDT_OP_COUNT; op++)
                for (ip = 0; ip < 2; ip++) {
                    sim(&shapes[si], RDT_ALGO_HIER, 37, 10, dt, op, ip, 0);
                    sim(&shapes[si], RDT_ALGO_HIERTREE, 37, 10, dt, op, ip, 0);
                }
}

/* Sums that round: every rank must still end with the same bits (each element is reduced once,
 * along a path that does not depend on the rank, then copied). */
static void test_hier_allreduce_gives_every_rank_the_same_bits_when_sums_round(void **state)
{
    static const rdt_dtype_t fdt[] = {RDT_FLOAT16, RDT_BFLOAT16, RDT_FLOAT32, RDT_FLOAT64};
    static const int s314[] = {3, 1, 4};
    uint64_t rng = 99;
    shape_t sh;
    int k;

    (void)state;
    for (k = 0; k < 16; k++) {
        if (k % 4 == 0)
            shape_make(&sh, 3, s314);
        else if (k % 4 == 1)
            shape_grid(&sh, 8, 8);
        else if (k % 4 == 2)
            shape_grid(&sh, 3, 5);
        else {
            shape_grid(&sh, 4, 3);
            shape_shuffle(&sh, &rng);
        }
        sim(&sh, RDT_ALGO_HIER, 301, k % 3 ? 0 : 40, fdt[k % 4], (k / 4) % 2 ? RDT_AVG : RDT_SUM,
            k % 2, 1);
        sim(&sh, RDT_ALGO_HIERTREE, 301, k % 3 ? 0 : 40, fdt[k % 4],
            (k / 4) % 2 ? RDT_AVG : RDT_SUM, k % 2, 1);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Bytes between hosts                                                                          */
/* ------------------------------------------------------------------------------------------ */

/*
 * N bytes on H hosts: the hierarchical allreduce sends 2(H-1)/H N from every host, whatever the
 * ranks per host (count a multiple of G H, so that no sub-block is rounded); the flat ring over
 * hosts of consecutive ranks sends 2(p-1)/p N from each host (one rank at each host boundary
 * forwards every block twice), the same when every host has one rank.
 */
static void test_hier_moves_2_h_minus_1_over_h_n_bytes_per_host_and_beats_the_flat_ring(
    void **state)
{
    static const int s213[] = {2, 1, 3}, s314[] = {3, 1, 4};
    shape_t shapes[8];
    int si, nshapes = 0;

    (void)state;
    shape_grid(&shapes[nshapes++], 2, 2);
    shape_grid(&shapes[nshapes++], 2, 4);
    shape_grid(&shapes[nshapes++], 4, 8);
    shape_grid(&shapes[nshapes++], 8, 8);
    shape_grid(&shapes[nshapes++], 5, 1);
    shape_make(&shapes[nshapes++], 3, s213);
    shape_make(&shapes[nshapes++], 3, s314);
    for (si = 0; si < nshapes; si++) {
        const shape_t *s = &shapes[si];
        int H = s->nhosts, G = 0, h, equal = 1;
        size_t count, N;
        uint64_t want;
        rdt_sim_result_t hier, ring;
        rdt_price_info_t info;
        rdt_cost_params_t net = {10e-6, 3.3e-10, 1.25e-10}, shm;

        for (h = 0; h < H; h++) {
            G = s->size[h] > G ? s->size[h] : G;
            equal &= s->size[h] == s->size[0];
        }
        count = (size_t)G * (size_t)H * 96;
        N = count * 4;
        want = (uint64_t)(2 * (H - 1)) * N / (uint64_t)H;
        hier = sim(s, RDT_ALGO_HIER, count, 0, RDT_FLOAT32, RDT_SUM, 0, 0);
        assert_int_equal(hier.max_host_bytes, want);
        assert_int_equal(hier.min_host_bytes, want);
        assert_int_equal(hier.inter_host_bytes, want * (uint64_t)H);
        /* sliced: the same bytes */
        hier = sim(s, RDT_ALGO_HIER, count, count / 7 + 1, RDT_FLOAT32, RDT_SUM, 1, 0);
        assert_true(hier.max_host_bytes >= want && hier.max_host_bytes <= want + 64 * (uint64_t)G * H);
        /* the pricer counts the same bytes */
        rdt_cost_shm_params(&net, &shm);
        assert_true(rdt_sim_price_topo(RDT_COLL_ALLREDUCE, RDT_ALGO_HIER, s->p, s->host_of, N,
                                       &net, &shm, &info) > 0);
        assert_true(fabs(info.max_host_bytes - (double)want) < 0.5);
        assert_true(fabs(info.inter_host_bytes - (double)want * H) < 0.5);
        if (!equal)
            continue;
        count = (size_t)s->p * G * H * 8; /* ring blocks and hier sub-blocks both whole */
        N = count * 4;
        ring = sim(s, RDT_ALGO_RING, count, 0, RDT_FLOAT32, RDT_SUM, 0, 0);
        hier = sim(s, RDT_ALGO_HIER, count, 0, RDT_FLOAT32, RDT_SUM, 0, 0);
        assert_int_equal(ring.max_host_bytes, (uint64_t)(2 * (s->p - 1)) * N / (uint64_t)s->p);
        assert_int_equal(ring.min_host_bytes, ring.max_host_bytes);
        assert_int_equal(hier.max_host_bytes, (uint64_t)(2 * (H - 1)) * N / (uint64_t)H);
        if (G > 1)
            assert_true(hier.inter_host_bytes < ring.inter_host_bytes);
        else
            assert_int_equal(hier.inter_host_bytes, ring.inter_host_bytes);
    }
}

static void test_simulator_counts_no_host_bytes_without_a_host_map(void **state)
{
    rdt_sim_params_t prm = {.coll = RDT_COLL_ALLREDUCE,
                            .algo = RDT_ALGO_HIER,
                            .nranks = 6,
                            .count = 600,
                            .dtype = RDT_INT32,
                            .op = RDT_SUM};
    static const int bad[] = {0, 0, 1, 1, 2, 6};
    rdt_sim_result_t res;

    (void)state;
    assert_int_equal(rdt_sim_run(&prm, &res), RDT_SUCCESS);
    assert_int_equal(res.inter_host_bytes, 0);
    assert_int_equal(res.max_host_bytes, 0);
    assert_int_equal(res.max_rank_bytes, 2 * 5 * 100 * 4); /* one host: the ring's bytes */
    prm.host_of = bad;
    assert_int_equal(rdt_sim_run(&prm, &res), RDT_ERR_INVALID_ARG);
}

/* ------------------------------------------------------------------------------------------ */
/* Prices and selection                                                                         */
/* ------------------------------------------------------------------------------------------ */

static const rdt_cost_params_t net_cost = {10e-6, 3.3e-10, 1.25e-10}; /* RDT_ALPHA/BETA/GAMMA */

static void test_hier_closed_form_tracks_the_priced_schedule(void **state)
{
    static const size_t sizes[] = {8, 1000, 1 << 20, 64u << 20};
    static const int s213[] = {2, 1, 3}, s314[] = {3, 1, 4}, s91[] = {9, 1};
    uint64_t rng = 3;
    shape_t shapes[12];
    rdt_cost_params_t shm;
    int si, n = 0;
    unsigned zi;

    (void)state;
    rdt_cost_shm_params(&net_cost, &shm);
    shape_grid(&shapes[n++], 2, 2);
    shape_grid(&shapes[n++], 4, 8);
    shape_grid(&shapes[n++], 8, 8);
    shape_grid(&shapes[n++], 1, 6);
    shape_grid(&shapes[n++], 6, 1);
    shape_make(&shapes[n++], 3, s213);
    shape_make(&shapes[n++], 3, s314);
    shape_make(&shapes[n++], 2, s91);
    shape_grid(&shapes[n], 4, 5);
    shape_shuffle(&shapes[n++], &rng);
    for (si = 0; si < n; si++) {
        for (zi = 0; zi < sizeof(sizes) / sizeof(sizes[0]); zi++) {
            const shape_t *s = &shapes[si];
            rdt_algo_t a;
            for (a = RDT_ALGO_HIER; a <= RDT_ALGO_HIERTREE; a++) {
                double pr = rdt_sim_price_topo(RDT_COLL_ALLREDUCE, a, s->p, s->host_of,
                                               sizes[zi], &net_cost, &shm, NULL);
                double cf = rdt_cost_model_topo(RDT_COLL_ALLREDUCE, a, s->p, s->host_of,
                                                sizes[zi], &net_cost, &shm);
                char name[400];
                shape_name(s, name, sizeof(name));
                if (!(pr > 0 && cf >= 0.67 * pr && cf <= 1.5 * pr))
                    fail_msg("%s allreduce on %s, %zu bytes: closed form %g, priced %g",
                             rdt_algo_name(a), name, sizes[zi], cf, pr);
            }
        }
    }
}

/* The flat allreduces' two-level closed forms (hosts of consecutive ranks) track their priced
 * schedules too; without that the selector would take Rabenseifner on 8x8, six times dearer. */
static void test_flat_two_level_closed_forms_track_the_priced_schedules(void **state)
{
    static const int grids[][2] = {{2, 2}, {2, 4}, {4, 2}, {4, 8}, {8, 8}, {3, 4}, {16, 2}};
    static const size_t sizes[] = {8, 100000, 64u << 20};
    static const rdt_algo_t algos[] = {RDT_ALGO_RING, RDT_ALGO_RECDBL, RDT_ALGO_RABENSEIFNER};
    rdt_cost_params_t shm;
    unsigned gi, zi, ai;

    (void)state;
    rdt_cost_shm_params(&net_cost, &shm);
    for (gi = 0; gi < sizeof(grids) / sizeof(grids[0]); gi++) {
        shape_t s;
        shape_grid(&s, grids[gi][0], grids[gi][1]);
        for (ai = 0; ai < 3; ai++) {
            for (zi = 0; zi < 3; zi++) {
                double pr = rdt_sim_price_topo(RDT_COLL_ALLREDUCE, algos[ai], s.p, s.host_of,
                                               sizes[zi], &net_cost, &shm, NULL);
                double cf = rdt_cost_model_topo(RDT_COLL_ALLREDUCE, algos[ai], s.p, s.host_of,
                                                sizes[zi], &net_cost, &shm);
                if (!(pr > 0 && cf >= 0.67 * pr && cf <= 1.5 * pr))
                    fail_msg("%s allreduce on %d hosts of %d, %zu bytes: closed form %g, priced "
                             "%g", rdt_algo_name(algos[ai]), grids[gi][0], grids[gi][1],
                             sizes[zi], cf, pr);
            }
        }
    }
}

/* With one rank per host the two-level price is the one-level one (each host's link is its
 * rank's); the ring priced on hosts of consecutive ranks costs a network message every round. */
static void test_two_level_prices_reduce_to_the_flat_ones(void **state)
{
    rdt_cost_params_t shm;
    shape_t sh;
    int a;

    (void)state;
    rdt_cost_shm_params(&net_cost, &shm);
    assert_true(shm.alpha == RDT_COST_SHM_ALPHA && shm.beta == RDT_COST_SHM_BETA);
    shape_grid(&sh, 7, 1);
    for (a = 0; a < RDT_ALGO_COUNT; a++) {
        double one, two;
        /* hiertree is recursive doubling among 7 hosts here, a binomial tree on one */
        if (!rdt_sched_supported(RDT_COLL_ALLREDUCE, a) || a == RDT_ALGO_HIERTREE)
            continue;
        one = rdt_sim_price(RDT_COLL_ALLREDUCE, a, 7, 70000, &net_cost);
        two = rdt_sim_price_topo(RDT_COLL_ALLREDUCE, a, 7, sh.host_of, 70000, &net_cost, &shm,
                                 NULL);
        assert_true(fabs(one - two) <= 1e-12 * one);
    }
    shape_grid(&sh, 4, 8);
    assert_true(fabs(rdt_sim_price(RDT_COLL_ALLREDUCE, RDT_ALGO_RING, 32, 32000, &net_cost) -
                     rdt_sim_price_topo(RDT_COLL_ALLREDUCE, RDT_ALGO_RING, 32, sh.host_of, 32000,
                                        &net_cost, &shm, NULL)) < 1e-15);
}

/* The selector's choice with no host map, computed here from the flat closed forms. */
static rdt_algo_t flat_choice(int p, size_t bytes)
{
    int a, best = -1;
    double bt = 0;
    for (a = 0; a < RDT_ALGO_COUNT; a++) {
        double t;
        if (a == RDT_ALGO_HIER || !rdt_sched_supported(RDT_COLL_ALLREDUCE, a))
            continue;
        t = rdt_cost_model(RDT_COLL_ALLREDUCE, a, p, bytes, &net_cost);
        if (best < 0 || t < bt) {
            best = a;
            bt = t;
        }
    }
    return (rdt_algo_t)best;
}

static void test_selector_picks_hier_for_large_messages_across_hosts_only(void **state)
{
    shape_t one, per, s22, s48;
    size_t b;

    (void)state;
    shape_grid(&s22, 2, 2);
    shape_grid(&s48, 4, 8);
    assert_int_equal(rdt_cost_select(RDT_COLL_ALLREDUCE, 4, s22.host_of, 64u << 20, &net_cost),
                     RDT_ALGO_HIER);
    assert_int_equal(rdt_cost_select(RDT_COLL_ALLREDUCE, 4, s22.host_of, 4u << 20, &net_cost),
                     RDT_ALGO_HIER);
    assert_int_equal(rdt_cost_select(RDT_COLL_ALLREDUCE, 32, s48.host_of, 64u << 20, &net_cost),
                     RDT_ALGO_HIER);
    /* small: latency wins, a flat algorithm */
    assert_int_not_equal(rdt_cost_select(RDT_COLL_ALLREDUCE, 4, s22.host_of, 8, &net_cost),
                         RDT_ALGO_HIER);
    assert_int_not_equal(rdt_cost_select(RDT_COLL_ALLREDUCE, 32, s48.host_of, 8, &net_cost),
                         RDT_ALGO_HIER);
    /* one host, one rank per host, no map: exactly the flat choice, for every size */
    shape_grid(&one, 1, 12);
    shape_grid(&per, 12, 1);
    for (b = 1; b <= (256u << 20); b *= 2) {
        rdt_algo_t want = flat_choice(12, b);
        assert_int_equal(rdt_cost_select(RDT_COLL_ALLREDUCE, 12, one.host_of, b, &net_cost), want);
        assert_int_equal(rdt_cost_select(RDT_COLL_ALLREDUCE, 12, per.host_of, b, &net_cost), want);
        assert_int_equal(rdt_cost_select(RDT_COLL_ALLREDUCE, 12, NULL, b, &net_cost), want);
        assert_int_equal(rdt_cost_select(RDT_COLL_ALLREDUCE, 4, NULL, b, &net_cost),
                         flat_choice(4, b));
    }
    /* collectives without a hierarchical algorithm keep their flat choice on 2x2 */
    for (b = 1; b <= (64u << 20); b *= 8) {
        assert_int_equal(rdt_cost_select(RDT_COLL_ALLTOALL, 4, s22.host_of, b, &net_cost),
                         rdt_cost_select(RDT_COLL_ALLTOALL, 4, NULL, b, &net_cost));
        assert_int_equal(rdt_cost_select(RDT_COLL_BARRIER, 4, s22.host_of, b, &net_cost),
                         rdt_cost_select(RDT_COLL_BARRIER, 4, NULL, b, &net_cost));
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Broadcast, allgather, reduce_scatter and reduce (sched_hier_coll.c)                          */
/* ------------------------------------------------------------------------------------------ */

static rdt_sim_result_t sim_coll(const shape_t *s, rdt_coll_t coll, rdt_algo_t algo, int root,
                                 size_t count, size_t slice, rdt_dtype_t dt, rdt_op_t op,
                                 int in_place, int inexact)
{
    rdt_sim_params_t prm = {.coll = coll,
                            .algo = algo,
                            .nranks = s->p,
                            .root = root,
                            .count = count,
                            .slice = slice,
                            .dtype = dt,
                            .op = op,
                            .in_place = in_place,
                            .inexact = inexact,
                            .host_of = s->host_of};
    rdt_sim_result_t res;
    char name[400];

    rdt_sim_run(&prm, &res);
    if (res.status != RDT_SUCCESS) {
        shape_name(s, name, sizeof(name));
        fail_msg("%s %s on %s, root %d, count %zu, slice %zu, %s %s, %s%s: %s",
                 rdt_algo_name(algo), rdt_coll_name(coll), name, root, count, slice,
                 rdt_dtype_name(dt), rdt_op_name(op), in_place ? "in place" : "out of place",
                 inexact ? ", inexact" : "", res.error);
    }
    return res;
}

/* Roots worth trying on a shape: rank 0, the last rank, a rank that is not local rank 0 of the
 * biggest host, and the rank of a host of one rank (if any). */
static int shape_roots(const shape_t *s, int *roots)
{
    int n = 0, r, q, big = -1, bigsize = 0, lone = -1;

    roots[n++] = 0;
    if (s->p > 1)
        roots[n++] = s->p - 1;
    for (r = 0; r < s->p; r++) {
        int size = 0, local = 0;
        for (q = 0; q < s->p; q++) {
            size += s->host_of[q] == s->host_of[r];
            local += q < r && s->host_of[q] == s->host_of[r];
        }
        if (local > 0 && size > bigsize) {
            bigsize = size;
            big = r;
        }
        if (size == 1 && lone < 0 && r != 0 && r != s->p - 1)
            lone = r;
    }
    if (big > 0 && big != s->p - 1)
        roots[n++] = big;
    if (lone > 0)
        roots[n++] = lone;
    return n;
}

/* The matrix of sim_matrix for any collective: counts (per unit) 1, p + 1 and a larger one,
 * slices one / three / tiny, in and out of place, dtype and op rotating, and every root of
 * shape_roots for broadcast and reduce. */
static void sim_coll_matrix(const shape_t *s, rdt_coll_t coll, unsigned *rot)
{
    int units = coll == RDT_COLL_ALLGATHER || coll == RDT_COLL_REDUCE_SCATTER;
    size_t counts[3] = {1, (size_t)s->p + 1, units ? 301 : 4099};
    int roots[4], nroots = 1, ri, ip;
    unsigned ci, si;

    roots[0] = 0;
    if (coll == RDT_COLL_BROADCAST || coll == RDT_COLL_REDUCE)
        nroots = shape_roots(s, roots);
    for (ci = 0; ci < 3; ci++) {
        size_t n = counts[ci], slices[3] = {0, n / 3 + 1, 5};
        for (si = 0; si < 3; si++) {
            if ((si == 1 && n < 3) || (si == 2 && n > 64 * (size_t)s->p))
                continue;
            for (ri = 0; ri < nroots; ri++)
                for (ip = 0; ip < 2; ip++, (*rot)++)
                    sim_coll(s, coll, RDT_ALGO_HIER, roots[(ri + ci) % nroots], n, slices[si],
                             (rdt_dtype_t)(*rot % RDT_DTYPE_COUNT),
                             (rdt_op_t)((*rot / RDT_DTYPE_COUNT) % RDT_OP_COUNT), ip, 0);
        }
    }
}

/* The shapes of the allreduce tests: 1 host x n and n hosts x 1 (n = 1..9), 2x2, 2x4, 4x2,
 * 2/1/3, 3/1/4, 1/5/1/2, 4x8, 8x8, and interleaved 4x3 and 3/1/4. */
static void hier_coll_named_shapes(rdt_coll_t coll)
{
    static const int s213[] = {2, 1, 3}, s314[] = {3, 1, 4}, s1512[] = {1, 5, 1, 2};
    uint64_t rng = 0xc011ULL;
    unsigned rot = (unsigned)coll;
    shape_t sh;
    int n;

    for (n = 1; n <= 9; n++) {
        shape_grid(&sh, 1, n);
        sim_coll_matrix(&sh, coll, &rot);
        shape_grid(&sh, n, 1);
        sim_coll_matrix(&sh, coll, &rot);
    }
    shape_grid(&sh, 2, 2);
    sim_coll_matrix(&sh, coll, &rot);
    shape_grid(&sh, 2, 4);
    sim_coll_matrix(&sh, coll, &rot);
    shape_grid(&sh, 4, 2);
    sim_coll_matrix(&sh, coll, &rot);
    shape_make(&sh, 3, s213);
    sim_coll_matrix(&sh, coll, &rot);
    shape_make(&sh, 3, s314);
    sim_coll_matrix(&sh, coll, &rot);
    shape_make(&sh, 4, s1512);
    sim_coll_matrix(&sh, coll, &rot);
    shape_grid(&sh, 4, 8);
    sim_coll_matrix(&sh, coll, &rot);
    shape_grid(&sh, 8, 8);
    sim_coll_matrix(&sh, coll, &rot);
    shape_grid(&sh, 4, 3);
    shape_shuffle(&sh, &rng);
    sim_coll_matrix(&sh, coll, &rot);
    shape_make(&sh, 3, s314);
    shape_shuffle(&sh, &rng);
    sim_coll_matrix(&sh, coll, &rot);
}

static void test_hier_broadcast_is_correct_on_the_named_shapes(void **state)
{
    (void)state;
    hier_coll_named_shapes(RDT_COLL_BROADCAST);
}

static void test_hier_allgather_is_correct_on_the_named_shapes(void **state)
{
    (void)state;
    hier_coll_named_shapes(RDT_COLL_ALLGATHER);
}

static void test_hier_reduce_scatter_is_correct_on_the_named_shapes(void **state)
{
    (void)state;
    hier_coll_named_shapes(RDT_COLL_REDUCE_SCATTER);
}

static void test_hier_reduce_is_correct_on_the_named_shapes(void **state)
{
    (void)state;
    hier_coll_named_shapes(RDT_COLL_REDUCE);
}

/* Every dtype and op on uneven shapes, and float sums that round (checked within the rounding
 * bound of any order). */
static void test_hier_collectives_are_exact_for_every_dtype_and_op(void **state)
{
    static const rdt_coll_t colls[] = {RDT_COLL_BROADCAST, RDT_COLL_ALLGATHER,
                                       RDT_COLL_REDUCE_SCATTER, RDT_COLL_REDUCE};
    static const int s213[] = {2, 1, 3}, s314[] = {3, 1, 4};
    shape_t shapes[2];
    int si, dt, op, ip;
    unsigned ci;

    (void)state;
    shape_make(&shapes[0], 3, s213);
    shape_make(&shapes[1], 3, s314);
    for (ci = 0; ci < 4; ci++)
        for (si = 0; si < 2; si++)
            for (dt = 0; dt < RDT_DTYPE_COUNT; dt++)
                for (op = 0; op < RDT_OP_COUNT; op++)
                    for (ip = 0; ip < 2; ip++) {
                        sim_coll(&shapes[si], colls[ci], RDT_ALGO_HIER, (dt + op) % shapes[si].p,
                                 13, 4, dt, op, ip, 0);
                        if (op == RDT_SUM || op == RDT_AVG)
                            sim_coll(&shapes[si], colls[ci], RDT_ALGO_HIER, 2, 29, 0, dt, op, ip,
                                     1);
                    }
}

/*
 * Bytes between hosts (H hosts, L_h ranks on host h, p ranks, G = max L_h, Lmin = min L_h):
 *  - broadcast of N bytes: (H-1) N in total and N received by the most receiving host: each
 *    non-root host receives the vector exactly once (the root's host nothing);
 *  - reduce: (H-1) N in total, N sent by the most sending host: each non-root host sends it once;
 *  - allgather of p units of n bytes: (H-1) p n in total, host h receives (p - L_h) n (the
 *    least possible: every unit reaches every other host exactly once), so the most is
 *    (p - Lmin) n and the least (p - G) n; with equal hosts every host sends and receives
 *    (H-1)/H p n;
 *  - reduce_scatter: the same figures with sending and receiving swapped.
 * Flat trees and chains move at least as much, and more on interleaved or uneven shapes.
 */
static void check_hier_bytes(const shape_t *s, int root)
{
    int H = s->nhosts, G = 0, Lmin = s->p, h, equal = 1;
    size_t count = 96;
    uint64_t n = count * 4, p = (uint64_t)s->p, tot;
    rdt_sim_result_t res, flat;

    for (h = 0; h < H; h++) {
        G = s->size[h] > G ? s->size[h] : G;
        Lmin = s->size[h] < Lmin ? s->size[h] : Lmin;
        equal &= s->size[h] == s->size[0];
    }
    res = sim_coll(s, RDT_COLL_BROADCAST, RDT_ALGO_HIER, root, count, 0, RDT_FLOAT32, RDT_SUM, 0,
                   0);
    assert_int_equal(res.inter_host_bytes, (uint64_t)(H - 1) * n);
    assert_int_equal(res.max_host_recv_bytes, H > 1 ? n : 0);
    assert_int_equal(res.min_host_recv_bytes, 0); /* the root's host */
    res = sim_coll(s, RDT_COLL_BROADCAST, RDT_ALGO_HIER, root, count, 7, RDT_FLOAT32, RDT_SUM, 1,
                   0); /* sliced: the same bytes */
    assert_int_equal(res.inter_host_bytes, (uint64_t)(H - 1) * n);
    flat = sim_coll(s, RDT_COLL_BROADCAST, RDT_ALGO_TREE, root, count, 0, RDT_FLOAT32, RDT_SUM, 0,
                    0);
    assert_true(flat.inter_host_bytes >= res.inter_host_bytes);
    flat = sim_coll(s, RDT_COLL_BROADCAST, RDT_ALGO_RING, root, count, 0, RDT_FLOAT32, RDT_SUM, 0,
                    0);
    assert_true(flat.inter_host_bytes >= res.inter_host_bytes);

    res = sim_coll(s, RDT_COLL_REDUCE, RDT_ALGO_HIER, root, count, 0, RDT_INT32, RDT_SUM, 1, 0);
    assert_int_equal(res.inter_host_bytes, (uint64_t)(H - 1) * n);
    assert_int_equal(res.max_host_bytes, H > 1 ? n : 0);
    assert_int_equal(res.min_host_bytes, 0);

    tot = (uint64_t)(H - 1) * p * n;
    res = sim_coll(s, RDT_COLL_ALLGATHER, RDT_ALGO_HIER, 0, count, 0, RDT_FLOAT32, RDT_SUM, 0, 0);
    assert_int_equal(res.inter_host_bytes, tot);
    assert_int_equal(res.max_host_recv_bytes, H > 1 ? (p - (uint64_t)Lmin) * n : 0);
    assert_int_equal(res.min_host_recv_bytes, H > 1 ? (p - (uint64_t)G) * n : 0);
    if (equal) {
        assert_int_equal(res.max_host_bytes, tot / (uint64_t)H);
        assert_int_equal(res.min_host_bytes, tot / (uint64_t)H);
        assert_int_equal(res.max_host_recv_bytes, (uint64_t)(H - 1) * p * n / (uint64_t)H);
    }
    flat = sim_coll(s, RDT_COLL_ALLGATHER, RDT_ALGO_RING, 0, count, 0, RDT_FLOAT32, RDT_SUM, 0, 0);
    assert_true(flat.inter_host_bytes >= tot);

    res = sim_coll(s, RDT_COLL_REDUCE_SCATTER, RDT_ALGO_HIER, 0, count, 5, RDT_FLOAT32, RDT_SUM, 1,
                   0);
    assert_int_equal(res.inter_host_bytes, tot);
    assert_int_equal(res.max_host_bytes, H > 1 ? (p - (uint64_t)Lmin) * n : 0);
    assert_int_equal(res.min_host_bytes, H > 1 ? (p - (uint64_t)G) * n : 0);
    if (equal) {
        assert_int_equal(res.max_host_recv_bytes, tot / (uint64_t)H);
        assert_int_equal(res.min_host_recv_bytes, tot / (uint64_t)H);
        assert_int_equal(res.max_host_bytes, (uint64_t)(H - 1) * p * n / (uint64_t)H);
    }
    flat = sim_coll(s, RDT_COLL_REDUCE_SCATTER, RDT_ALGO_RING, 0, count, 0, RDT_FLOAT32, RDT_SUM, 0,
                    0);
    assert_true(flat.inter_host_bytes >= tot);
}

static void test_hier_collectives_cross_between_hosts_once_per_unit_and_host(void **state)
{
    static const int s213[] = {2, 1, 3}, s314[] = {3, 1, 4}, s1512[] = {1, 5, 1, 2};
    uint64_t rng = 17;
    shape_t sh;
    int roots[4], n, k, it;
    rdt_sim_result_t hier, flat;

    (void)state;
    shape_grid(&sh, 2, 2);
    check_hier_bytes(&sh, 3);
    shape_grid(&sh, 2, 4);
    check_hier_bytes(&sh, 5);
    shape_grid(&sh, 4, 2);
    check_hier_bytes(&sh, 1);
    shape_grid(&sh, 4, 8);
    check_hier_bytes(&sh, 13);
    shape_grid(&sh, 8, 8);
    check_hier_bytes(&sh, 0);
    shape_grid(&sh, 5, 1);
    check_hier_bytes(&sh, 2);
    shape_make(&sh, 3, s213);
    n = shape_roots(&sh, roots);
    for (k = 0; k < n; k++)
        check_hier_bytes(&sh, roots[k]);
    shape_make(&sh, 3, s314);
    n = shape_roots(&sh, roots);
    for (k = 0; k < n; k++)
        check_hier_bytes(&sh, roots[k]);
    shape_make(&sh, 4, s1512);
    check_hier_bytes(&sh, 4);
    for (it = 0; it < 4; it++) {
        shape_grid(&sh, 3 + it, 4);
        shape_shuffle(&sh, &rng);
        check_hier_bytes(&sh, it);
    }
    /* interleaved hosts: the flat tree and chain cross far more often than once per host */
    shape_grid(&sh, 4, 4);
    shape_shuffle(&sh, &rng);
    hier = sim_coll(&sh, RDT_COLL_BROADCAST, RDT_ALGO_HIER, 0, 96, 0, RDT_INT32, RDT_SUM, 0, 0);
    flat = sim_coll(&sh, RDT_COLL_BROADCAST, RDT_ALGO_RING, 0, 96, 0, RDT_INT32, RDT_SUM, 0, 0);
    assert_true(flat.inter_host_bytes > hier.inter_host_bytes);
    flat = sim_coll(&sh, RDT_COLL_ALLGATHER, RDT_ALGO_RING, 0, 96, 0, RDT_INT32, RDT_SUM, 0, 0);
    hier = sim_coll(&sh, RDT_COLL_ALLGATHER, RDT_ALGO_HIER, 0, 96, 0, RDT_INT32, RDT_SUM, 0, 0);
    assert_true(flat.inter_host_bytes > hier.inter_host_bytes);
}

/* Random uneven shapes up to 64 ranks, half of them interleaved, each collective. */
static void test_hier_collectives_are_correct_on_random_uneven_shapes_up_to_64_ranks(
    void **state)
{
    static const rdt_coll_t colls[] = {RDT_COLL_BROADCAST, RDT_COLL_ALLGATHER,
                                       RDT_COLL_REDUCE_SCATTER, RDT_COLL_REDUCE};
    uint64_t rng = 0x5eed5ULL;
    unsigned rot = 3;
    int it;

    (void)state;
    for (it = 0; it < 48; it++) {
        shape_t sh;
        int sizes[MAX_RANKS], nh = 1 + (int)(rdt_test_rand(&rng) % 9), h, total = 0;
        for (h = 0; h < nh; h++) {
            int cap = 64 - total - (nh - h - 1);
            sizes[h] = 1 + (int)(rdt_test_rand(&rng) % (uint64_t)(cap < 12 ? cap : 12));
            total += sizes[h];
        }
        shape_make(&sh, nh, sizes);
        if (it % 2)
            shape_shuffle(&sh, &rng);
        sim_coll_matrix(&sh, colls[it % 4], &rot);
        check_hier_bytes(&sh, (int)(rdt_test_rand(&rng) % (uint64_t)sh.p));
    }
}

/* The closed forms of the four against their priced schedules, within the factor the flat ones
 * are held to. */
static void test_hier_collectives_closed_forms_track_the_priced_schedules(void **state)
{
    static const rdt_coll_t colls[] = {RDT_COLL_BROADCAST, RDT_COLL_ALLGATHER,
                                       RDT_COLL_REDUCE_SCATTER, RDT_COLL_REDUCE};
    static const size_t sizes[] = {8, 1000, 1 << 20, 64u << 20};
    static const int s213[] = {2, 1, 3}, s314[] = {3, 1, 4}, s91[] = {9, 1}, s1512[] = {1, 5, 1, 2};
    uint64_t rng = 5;
    shape_t shapes[12];
    rdt_cost_params_t shm;
    int si, n = 0;
    unsigned zi, ci;

    (void)state;
    rdt_cost_shm_params(&net_cost, &shm);
    shape_grid(&shapes[n++], 2, 2);
    shape_grid(&shapes[n++], 2, 4);
    shape_grid(&shapes[n++], 4, 8);
    shape_grid(&shapes[n++], 8, 8);
    shape_grid(&shapes[n++], 1, 6);
    shape_grid(&shapes[n++], 6, 1);
    shape_make(&shapes[n++], 3, s213);
    shape_make(&shapes[n++], 3, s314);
    shape_make(&shapes[n++], 2, s91);
    shape_make(&shapes[n++], 4, s1512);
    shape_grid(&shapes[n], 4, 5);
    shape_shuffle(&shapes[n++], &rng);
    for (ci = 0; ci < 4; ci++) {
        for (si = 0; si < n; si++) {
            for (zi = 0; zi < sizeof(sizes) / sizeof(sizes[0]); zi++) {
                const shape_t *s = &shapes[si];
                double pr = rdt_sim_price_topo(colls[ci], RDT_ALGO_HIER, s->p, s->host_of,
                                               sizes[zi], &net_cost, &shm, NULL);
                double cf = rdt_cost_model_topo(colls[ci], RDT_ALGO_HIER, s->p, s->host_of,
                                                sizes[zi], &net_cost, &shm);
                char name[400];
                shape_name(s, name, sizeof(name));
                if (!(pr > 0 && cf >= 0.67 * pr && cf <= 1.5 * pr))
                    fail_msg("hier %s on %s, %zu bytes: closed form %g, priced %g",
                             rdt_coll_name(colls[ci]), name, sizes[zi], cf, pr);
            }
        }
    }
}

/* The flat choice of @p coll (no host map), from the flat closed forms. */
static rdt_algo_t flat_choice_of(rdt_coll_t coll, int p, size_t bytes)
{
    int a, best = -1;
    double bt = 0;
    for (a = 0; a < RDT_ALGO_COUNT; a++) {
        double t;
        if (a == RDT_ALGO_HIER || !rdt_sched_supported(coll, a))
            continue;
        t = rdt_cost_model(coll, a, p, bytes, &net_cost);
        if (best < 0 || t < bt) {
            best = a;
            bt = t;
        }
    }
    return (rdt_algo_t)best;
}

static void test_selector_picks_hier_collectives_for_large_messages_across_hosts_only(
    void **state)
{
    static const rdt_coll_t colls[] = {RDT_COLL_BROADCAST, RDT_COLL_ALLGATHER,
                                       RDT_COLL_REDUCE_SCATTER, RDT_COLL_REDUCE};
    shape_t s24, s48, one, per;
    rdt_cost_params_t shm;
    unsigned ci;
    size_t b;

    (void)state;
    rdt_cost_shm_params(&net_cost, &shm);
    shape_grid(&s24, 2, 4);
    shape_grid(&s48, 4, 8);
    shape_grid(&one, 1, 12);
    shape_grid(&per, 12, 1);
    for (ci = 0; ci < 4; ci++) {
        rdt_coll_t c = colls[ci];
        for (b = 1u << 20; b <= (64u << 20); b *= 8) {
            const shape_t *sh[2] = {&s24, &s48};
            int k;
            for (k = 0; k < 2; k++) {
                /* the model says hier is the cheapest: check that, then the choice */
                double th = rdt_cost_model_topo(c, RDT_ALGO_HIER, sh[k]->p, sh[k]->host_of, b,
                                                &net_cost, &shm);
                int a;
                for (a = 0; a < RDT_ALGO_COUNT; a++)
                    if (a != RDT_ALGO_HIER && rdt_sched_supported(c, a))
                        assert_true(th < rdt_cost_model_topo(c, a, sh[k]->p, sh[k]->host_of, b,
                                                             &net_cost, &shm));
                assert_int_equal(rdt_cost_select(c, sh[k]->p, sh[k]->host_of, b, &net_cost),
                                 RDT_ALGO_HIER);
            }
        }
        for (b = 1; b <= (256u << 20); b *= 4) {
            rdt_algo_t want = flat_choice_of(c, 12, b);
            assert_int_equal(rdt_cost_select(c, 12, one.host_of, b, &net_cost), want);
            assert_int_equal(rdt_cost_select(c, 12, per.host_of, b, &net_cost), want);
            assert_int_equal(rdt_cost_select(c, 12, NULL, b, &net_cost), want);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The executor, over real processes                                                            */
/* ------------------------------------------------------------------------------------------ */

typedef struct engine_job {
    const char *const *hosts; /* RDT_HOSTNAME per rank */
    const char *algo;         /* RDT_ALGO, or NULL */
} engine_job_t;

/* Input element i of rank r: small integers, exact in every sum of a few ranks. */
static int64_t eng_value(int r, size_t i, int seed)
{
    return (int64_t)(((size_t)r * 13 + i * 7 + (size_t)seed) % 9) - 4;
}

static int eng_case(rdt_comm_t *comm, int rank, int p, rdt_dtype_t dt, rdt_op_t op, size_t count,
                    int in_place, int seed)
{
    size_t es = rdt_dtype_size(dt), i;
    unsigned char *in = malloc(count * es + 1), *out = malloc(count * es + 1);
    int bad = 0, q;
    rdt_status_t st;

    if (!in || !out) {
        free(in);
        free(out);
        return 1;
    }
    for (i = 0; i < count; i++) {
        int64_t v = eng_value(rank, i, seed);
        if (dt == RDT_FLOAT32) {
            float f = (float)v;
            memcpy(in + i * 4, &f, 4);
        } else if (dt == RDT_FLOAT64) {
            double d = (double)v;
            memcpy(in + i * 8, &d, 8);
        } else {
            int32_t x = (int32_t)v;
            memcpy(in + i * 4, &x, 4);
        }
    }
    st = rdt_allreduce(comm, in, in_place ? in : out, count, dt, op);
    if (st != RDT_SUCCESS) {
        fprintf(stderr, "rank %d: allreduce of %zu: %s\n", rank, count, rdt_comm_last_error(comm));
        bad = 1;
    }
    for (i = 0; i < count && !bad; i++) {
        const unsigned char *got = (in_place ? in : out) + i * es;
        int64_t acc = eng_value(0, i, seed);
        for (q = 1; q < p; q++) {
            int64_t v = eng_value(q, i, seed);
            acc = op == RDT_MAX ? (v > acc ? v : acc) : acc + v;
        }
        if (dt == RDT_FLOAT32) {
            float f, w = (float)acc;
            memcpy(&f, got, 4);
            bad = f != w;
        } else if (dt == RDT_FLOAT64) {
            double d, w = op == RDT_AVG ? (double)acc / p : (double)acc;
            memcpy(&d, got, 8);
            bad = d != w;
        } else {
            int32_t x;
            memcpy(&x, got, 4);
            bad = x != (int32_t)acc;
        }
        if (bad)
            fprintf(stderr, "rank %d: %s %s allreduce of %zu (%s): element %zu wrong\n", rank,
                    rdt_dtype_name(dt), rdt_op_name(op), count, in_place ? "in place" : "out",
                    i);
    }
    free(in);
    free(out);
    return bad;
}

static int body_engine(int rank, int nranks, void *arg)
{
    static const size_t counts[] = {1, 7, 1023, 4097, 300001};
    const engine_job_t *job = arg;
    rdt_comm_t *comm;
    int bad = 0, seed = 1, ip;
    unsigned ci;

    setenv("RDT_HOSTNAME", job->hosts[rank], 1);
    if (job->algo)
        setenv("RDT_ALGO", job->algo, 1);
    else
        unsetenv("RDT_ALGO");
    setenv("RDT_TIMEOUT", "60", 1);
    if (rdt_comm_create_from_env(&comm) != RDT_SUCCESS) {
        fprintf(stderr, "rank %d: %s\n", rank, rdt_comm_last_error(NULL));
        return 1;
    }
    for (ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ci++) {
        for (ip = 0; ip < 2; ip++) {
            bad |= eng_case(comm, rank, nranks, RDT_FLOAT32, RDT_SUM, counts[ci], ip, seed++);
            if (counts[ci] < 5000) {
                bad |= eng_case(comm, rank, nranks, RDT_INT32, RDT_MAX, counts[ci], ip, seed++);
                bad |= eng_case(comm, rank, nranks, RDT_FLOAT64, RDT_AVG, counts[ci], ip, seed++);
            }
        }
    }
    rdt_comm_destroy(comm);
    return bad;
}

static void run_engine(int nranks, const char *const *hosts, const char *algo)
{
    engine_job_t job = {hosts, algo};
    int st[16], i, rc;

    rc = rdt_spawn_local(nranks, body_engine, &job, 240, st);
    for (i = 0; i < nranks; i++)
        if (st[i] != 0)
            fprintf(stderr, "rank %d of %d exited with status %d\n", i, nranks, st[i]);
    assert_int_equal(rc, 0);
}

static void test_executor_runs_the_forced_hier_allreduce_on_2_faked_hosts_of_2(void **state)
{
    static const char *const hosts[] = {"hA", "hA", "hB", "hB"};
    (void)state;
    run_engine(4, hosts, "allreduce:hier");
    run_engine(4, hosts, "allreduce:hiertree");
}

static void test_executor_runs_hier_on_uneven_interleaved_hosts_and_selects_by_itself(
    void **state)
{
    /* hosts of 2, 1 and 2 ranks, interleaved: hA = {0, 3}, hB = {1}, hC = {2, 4} */
    static const char *const hosts[] = {"hA", "hB", "hC", "hA", "hC"};
    (void)state;
    run_engine(5, hosts, "hier");
    run_engine(5, hosts, "allreduce:hiertree");
    run_engine(5, hosts, NULL); /* the selector's choice, per size: every rank must agree */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_shape_counts_hosts_and_the_largest),
        cmocka_unit_test(test_build_rejects_a_bad_host_map_and_flat_builders_ignore_it),
        cmocka_unit_test(test_hier_schedule_has_the_documented_shape_on_3_1_4),
        cmocka_unit_test(test_hier_allreduce_is_correct_on_the_named_shapes),
        cmocka_unit_test(test_hier_allreduce_is_correct_on_random_uneven_shapes_up_to_64_ranks),
        cmocka_unit_test(test_hier_allreduce_is_exact_for_every_dtype_and_op),
        cmocka_unit_test(test_hier_allreduce_gives_every_rank_the_same_bits_when_sums_round),
        cmocka_unit_test(
            test_hier_moves_2_h_minus_1_over_h_n_bytes_per_host_and_beats_the_flat_ring),
        cmocka_unit_test(test_simulator_counts_no_host_bytes_without_a_host_map),
        cmocka_unit_test(test_hier_closed_form_tracks_the_priced_schedule),
        cmocka_unit_test(test_flat_two_level_closed_forms_track_the_priced_schedules),
        cmocka_unit_test(test_two_level_prices_reduce_to_the_flat_ones),
        cmocka_unit_test(test_selector_picks_hier_for_large_messages_across_hosts_only),
        cmocka_unit_test(test_hier_broadcast_is_correct_on_the_named_shapes),
        cmocka_unit_test(test_hier_allgather_is_correct_on_the_named_shapes),
        cmocka_unit_test(test_hier_reduce_scatter_is_correct_on_the_named_shapes),
        cmocka_unit_test(test_hier_reduce_is_correct_on_the_named_shapes),
        cmocka_unit_test(test_hier_collectives_are_exact_for_every_dtype_and_op),
        cmocka_unit_test(test_hier_collectives_cross_between_hosts_once_per_unit_and_host),
        cmocka_unit_test(test_hier_collectives_are_correct_on_random_uneven_shapes_up_to_64_ranks),
        cmocka_unit_test(test_hier_collectives_closed_forms_track_the_priced_schedules),
        cmocka_unit_test(
            test_selector_picks_hier_collectives_for_large_messages_across_hosts_only),
        cmocka_unit_test(test_executor_runs_the_forced_hier_allreduce_on_2_faked_hosts_of_2),
        cmocka_unit_test(test_executor_runs_hier_on_uneven_interleaved_hosts_and_selects_by_itself),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
