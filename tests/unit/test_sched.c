/*
 * test_sched.c - every schedule builder replayed by the simulator (engine/sim.c) for 1..33, 64,
 * 127, 128 and 1,000 ranks, in place and out of place, over counts, slices, dtypes, ops and
 * roots; the simulator's own checks proven on schedules broken by hand; the cost model's
 * prices, closed forms and lower bounds. 1,024-rank replays and the 4,096-rank pricing live in
 * test_sched_large.c (label slow).
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

#include "sched.h"
#include "sched_impl.h"
#include "testutil.h"

static const int rank_counts[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,  12,
                                  13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,  24,
                                  25, 26, 27, 28, 29, 30, 31, 32, 33, 64, 127, 128};
#define NRANK_COUNTS (sizeof(rank_counts) / sizeof(rank_counts[0]))

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/*
 * The matrix for one (collective, algorithm): every rank count, in place and out of place;
 * counts 0, 1, fewer than the ranks, odd, and large-ish (smaller ones for the p-unit
 * collectives beyond 33 ranks, whose vectors grow as p^2); slices: one, three (the last one
 * shorter), and for one-unit vectors slices of p/2 elements, shorter than the p blocks of the
 * ring and Rabenseifner, so that some blocks are empty. The dtype and op rotate with the case so
 * that the rank counts together cover every pair; test_every_dtype_and_op_... covers them
 * systematically on fewer ranks.
 */
static void run_matrix(rdt_coll_t coll, rdt_algo_t algo)
{
    int rooted = coll == RDT_COLL_BROADCAST || coll == RDT_COLL_REDUCE;
    int reduces =
        coll == RDT_COLL_ALLREDUCE || coll == RDT_COLL_REDUCE_SCATTER || coll == RDT_COLL_REDUCE;
    unsigned pi, rot = 0;

    for (pi = 0; pi < NRANK_COUNTS; pi++) {
        int p = rank_counts[pi], ip, ci, si, root;
        int per_rank = rdt_sched_nunits(coll, p) > 1;
        size_t counts[5] = {0, 1, p > 1 ? (size_t)p - 1 : 1, 2 * (size_t)p + 3,
                            per_rank ? 67 : 4099};

        if (per_rank && p > 33) { /* p units of p * count elements per rank: keep it small */
            counts[2] = 7;
            counts[3] = 33;
        }

        for (ci = 0; ci < 5; ci++) {
            size_t n = counts[ci];
            size_t slices[3] = {0, n / 3 + 1, p > 1 ? (size_t)p / 2 : 1};
            for (si = 0; si < 3; si++) {
                if ((si == 1 && n < 3) || (si == 2 && (per_rank || n > 4 * (size_t)p)))
                    continue;
                for (ip = 0; ip < 2; ip++) {
                    rdt_dtype_t dt = (rdt_dtype_t)(rot % RDT_DTYPE_COUNT);
                    rdt_op_t op =
                        reduces ? (rdt_op_t)((rot / RDT_DTYPE_COUNT) % RDT_OP_COUNT) : RDT_SUM;
                    root = rooted ? (int)(rot % (unsigned)p) : 0;
                    rot++;
                    rdt_test_sim_expect_ok(coll, algo, p, root, n, slices[si], dt, op, ip);
                }
            }
        }
        /* every root on small rank counts */
        for (root = 0; rooted && p <= 9 && root < p; root++)
            for (ip = 0; ip < 2; ip++)
                rdt_test_sim_expect_ok(coll, algo, p, root, 13, 4, RDT_INT32, RDT_SUM, ip);
    }
}

/* A hand-built schedule: the harness owns it like a built one (rdt_sched_destroy). */
static rdt_sched_t *hand_new(rdt_coll_t coll, int rank, int p, uint32_t nunits, uint32_t nblocks)
{
    rdt_sched_t *s = calloc(1, sizeof(*s));

    assert_non_null(s);
    s->coll = coll;
    s->algo = RDT_ALGO_RING;
    s->rank = rank;
    s->nranks = p;
    s->nunits = nunits;
    s->nblocks = nblocks;
    return s;
}

static void hand_op(rdt_sched_t *s, rdt_opk_t kind, rdt_buf_t buf, rdt_buf_t src, int peer,
                    uint32_t round, uint32_t b0, uint32_t b1)
{
    rdt_sched_op_t *o;

    if (s->nops == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 8;
        s->ops = realloc(s->ops, s->cap * sizeof(*s->ops));
        assert_non_null(s->ops);
    }
    o = &s->ops[s->nops++];
    memset(o, 0, sizeof(*o));
    o->kind = (uint8_t)kind;
    o->buf = (uint8_t)buf;
    o->src = (uint8_t)((kind == RDT_OPK_RECV_REDUCE || kind == RDT_OPK_COPY) ? src : 0);
    o->peer = kind == RDT_OPK_COPY ? -1 : peer;
    o->round = round;
    o->blk_begin = b0;
    o->blk_end = b1;
    if (round + 1 > s->nrounds)
        s->nrounds = round + 1;
}

static void hand_free(rdt_sched_t **s, int p)
{
    int r;
    for (r = 0; r < p; r++)
        rdt_sched_destroy(s[r]);
}

/* Run hand-built schedules; returns the result (status and error sentence). */
static rdt_sim_result_t hand_run(rdt_sched_t **s, rdt_coll_t coll, int p, size_t count,
                                 int in_place)
{
    rdt_sim_params_t prm = {.coll = coll,
                            .algo = RDT_ALGO_RING,
                            .nranks = p,
                            .count = count,
                            .dtype = RDT_INT32,
                            .op = RDT_SUM,
                            .in_place = in_place};
    rdt_sim_result_t res;

    rdt_sim_run_scheds(&prm, s, &res);
    return res;
}

static void expect_failure(const rdt_sim_result_t *res, const char *words)
{
    if (res->status == RDT_SUCCESS)
        fail_msg("the simulator accepted a broken schedule (expected \"%s\")", words);
    if (!strstr(res->error, words))
        fail_msg("expected an error about \"%s\", got: %s", words, res->error);
}

/* Build the schedules of all ranks with the real builder, for tests that then break one. */
static void build_all(rdt_coll_t coll, rdt_algo_t algo, int p, rdt_sched_t **s)
{
    int r;
    for (r = 0; r < p; r++)
        assert_int_equal(rdt_sched_build(coll, algo, r, p, 0, &s[r]), RDT_SUCCESS);
}

/* ------------------------------------------------------------------------------------------ */
/* Names, blocks, arguments                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void test_names_round_trip_and_unknown_names_are_rejected(void **state)
{
    int i;

    (void)state;
    for (i = 0; i < RDT_COLL_COUNT; i++)
        assert_int_equal(rdt_coll_from_name(rdt_coll_name((rdt_coll_t)i)), i);
    for (i = 0; i < RDT_ALGO_COUNT; i++)
        assert_int_equal(rdt_algo_from_name(rdt_algo_name((rdt_algo_t)i)), i);
    assert_string_equal(rdt_coll_name(RDT_COLL_REDUCE_SCATTER), "reduce_scatter");
    assert_string_equal(rdt_algo_name(RDT_ALGO_RABENSEIFNER), "rabenseifner");
    assert_int_equal(rdt_coll_from_name("allreduces"), -1);
    assert_int_equal(rdt_algo_from_name(""), -1);
    assert_int_equal(rdt_algo_from_name(NULL), -1);
    assert_string_equal(rdt_coll_name(RDT_COLL_COUNT), "invalid");
}

static void test_supported_pairs_are_exactly_the_documented_ones(void **state)
{
    int c, a, n = 0;

    (void)state;
    for (c = 0; c < RDT_COLL_COUNT; c++)
        for (a = 0; a < RDT_ALGO_COUNT; a++)
            n += rdt_sched_supported((rdt_coll_t)c, (rdt_algo_t)a);
    assert_int_equal(n, 20);
    assert_true(rdt_sched_supported(RDT_COLL_ALLREDUCE, RDT_ALGO_TREE));
    for (c = 0; c < RDT_COLL_COUNT; c++)
        assert_int_equal(rdt_sched_supported((rdt_coll_t)c, RDT_ALGO_HIERTREE),
                         c == RDT_COLL_ALLREDUCE);
    assert_true(rdt_sched_supported(RDT_COLL_ALLREDUCE, RDT_ALGO_HIER));
    assert_true(rdt_sched_supported(RDT_COLL_BROADCAST, RDT_ALGO_HIER));
    assert_true(rdt_sched_supported(RDT_COLL_REDUCE, RDT_ALGO_HIER));
    assert_true(rdt_sched_supported(RDT_COLL_ALLGATHER, RDT_ALGO_HIER));
    assert_true(rdt_sched_supported(RDT_COLL_REDUCE_SCATTER, RDT_ALGO_HIER));
    assert_false(rdt_sched_supported(RDT_COLL_BARRIER, RDT_ALGO_HIER));
    assert_false(rdt_sched_supported(RDT_COLL_ALLTOALL, RDT_ALGO_HIER));
    assert_true(rdt_sched_supported(RDT_COLL_REDUCE_SCATTER, RDT_ALGO_RABENSEIFNER));
    assert_false(rdt_sched_supported(RDT_COLL_ALLGATHER, RDT_ALGO_TREE));
    assert_false(rdt_sched_supported(RDT_COLL_BARRIER, RDT_ALGO_RING));
    assert_true(rdt_sched_supported(RDT_COLL_ALLTOALL, RDT_ALGO_PAIRWISE));
    assert_int_equal(rdt_sched_nunits(RDT_COLL_ALLGATHER, 7), 7);
    assert_int_equal(rdt_sched_nunits(RDT_COLL_ALLREDUCE, 7), 1);
}

static void test_blocks_tile_each_unit_piece_in_balanced_parts(void **state)
{
    static const uint32_t shapes[][2] = {{1, 1}, {1, 2}, {1, 7}, {3, 3}, {4, 8}, {5, 15}};
    unsigned si;

    (void)state;
    for (si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
        rdt_sched_t s;
        size_t len;
        memset(&s, 0, sizeof(s));
        s.nunits = shapes[si][0];
        s.nblocks = shapes[si][1];
        for (len = 0; len < 40; len++) {
            uint32_t kpu = s.nblocks / s.nunits, b;
            size_t expect = 0, minn = (size_t)-1, maxn = 0;
            for (b = 0; b < s.nblocks; b++) {
                size_t off, n;
                rdt_sched_block_range(&s, b, len, &off, &n);
                if (b % kpu == 0)
                    expect = (size_t)(b / kpu) * len; /* each unit piece starts at u * len */
                assert_int_equal(off, expect);
                expect += n;
                minn = n < minn ? n : minn;
                maxn = n > maxn ? n : maxn;
                if (b % kpu == kpu - 1)
                    assert_int_equal(expect, (size_t)(b / kpu + 1) * len);
                assert_int_equal(rdt_sched_region_len(&s, b, b + 1, len), n);
            }
            assert_true(maxn - minn <= 1);
            assert_int_equal(rdt_sched_region_len(&s, 0, s.nblocks, len), s.nunits * len);
            assert_int_equal(rdt_sched_region_len(&s, 3, 3, len), 0);
        }
    }
}

static void test_build_rejects_unsupported_pairs_and_bad_ranks(void **state)
{
    rdt_sched_t *s = (rdt_sched_t *)0x1;

    (void)state;
    assert_int_equal(rdt_sched_build(RDT_COLL_ALLGATHER, RDT_ALGO_TREE, 0, 4, 0, &s),
                     RDT_ERR_UNSUPPORTED);
    assert_int_equal(rdt_sched_build(RDT_COLL_ALLREDUCE, RDT_ALGO_RING, 4, 4, 0, &s),
                     RDT_ERR_INVALID_ARG);
    assert_int_equal(rdt_sched_build(RDT_COLL_ALLREDUCE, RDT_ALGO_RING, -1, 4, 0, &s),
                     RDT_ERR_INVALID_ARG);
    assert_int_equal(rdt_sched_build(RDT_COLL_ALLREDUCE, RDT_ALGO_RING, 0, 0, 0, &s),
                     RDT_ERR_INVALID_ARG);
    assert_int_equal(rdt_sched_build(RDT_COLL_BROADCAST, RDT_ALGO_TREE, 0, 4, 4, &s),
                     RDT_ERR_INVALID_ARG);
    assert_int_equal(rdt_sched_build(RDT_COLL_REDUCE, RDT_ALGO_RING, 0, 4, -1, &s),
                     RDT_ERR_INVALID_ARG);
    assert_ptr_equal(s, (rdt_sched_t *)0x1); /* untouched on failure */
    /* root is ignored where there is none */
    assert_int_equal(rdt_sched_build(RDT_COLL_ALLREDUCE, RDT_ALGO_RING, 0, 4, 9, &s), RDT_SUCCESS);
    assert_int_equal(s->root, 0);
    rdt_sched_destroy(s);
    rdt_sched_destroy(NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Shape of the schedules                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void test_builders_are_deterministic_and_linear_in_steps(void **state)
{
    int c, a;

    (void)state;
    for (c = 0; c < RDT_COLL_COUNT; c++) {
        for (a = 0; a < RDT_ALGO_COUNT; a++) {
            int p;
            if (!rdt_sched_supported((rdt_coll_t)c, (rdt_algo_t)a))
                continue;
            for (p = 1; p <= 70; p += 3) {
                int r = (p * 5) / 7; /* some rank in the middle */
                rdt_sched_t *x, *y;
                assert_int_equal(rdt_sched_build(c, a, r, p, p - 1, &x), RDT_SUCCESS);
                assert_int_equal(rdt_sched_build(c, a, r, p, p - 1, &y), RDT_SUCCESS);
                assert_int_equal(x->nops, y->nops);
                assert_int_equal(x->nrounds, y->nrounds);
                if (x->nops)
                    assert_memory_equal(x->ops, y->ops, x->nops * sizeof(*x->ops));
                /* O(steps): at most a few ops per round, and O(p) rounds at worst */
                assert_true(x->nops <= 4 * (uint32_t)p + 8);
                assert_true(x->nrounds <= 2 * (uint32_t)p + 8);
                assert_int_equal(x->nblocks % x->nunits, 0);
                rdt_sched_destroy(x);
                rdt_sched_destroy(y);
            }
        }
    }
}

static void test_ring_allreduce_has_2_p_minus_1_rounds_of_one_block_each_way(void **state)
{
    rdt_sched_t *s;
    uint32_t i;

    (void)state;
    assert_int_equal(rdt_sched_build(RDT_COLL_ALLREDUCE, RDT_ALGO_RING, 2, 5, 0, &s), RDT_SUCCESS);
    assert_int_equal(s->nblocks, 5);
    assert_int_equal(s->nrounds, 8);
    assert_int_equal(s->nops, 16);
    for (i = 0; i < s->nops; i++) {
        assert_int_equal(s->ops[i].blk_end - s->ops[i].blk_begin, 1);
        assert_int_equal(s->ops[i].peer, s->ops[i].kind == RDT_OPK_SEND ? 3 : 1);
    }
    rdt_sched_destroy(s);
}

static void test_double_binary_tree_makes_each_rank_interior_in_at_most_one_tree(void **state)
{
    int p;

    (void)state;
    for (p = 2; p <= 300; p++) {
        int t, r, interior_both = 0;
        for (t = 0; t < 2; t++) {
            int roots = 0, edges = 0;
            for (r = 0; r < p; r++) {
                int parent, c0, c1, depth = 0, x = r;
                rdt_sched_dbtree_links(t, r, p, &parent, &c0, &c1);
                roots += parent < 0;
                /* each child names me as its parent */
                if (c0 >= 0) {
                    int pp, a, b;
                    rdt_sched_dbtree_links(t, c0, p, &pp, &a, &b);
                    assert_int_equal(pp, r);
                    edges++;
                }
                if (c1 >= 0) {
                    int pp, a, b;
                    rdt_sched_dbtree_links(t, c1, p, &pp, &a, &b);
                    assert_int_equal(pp, r);
                    edges++;
                }
                /* the root is reached in O(log p) hops: no cycles, shallow */
                while (parent >= 0) {
                    x = parent;
                    rdt_sched_dbtree_links(t, x, p, &parent, &c0, &c1);
                    depth++;
                    assert_true(depth <= 2 * rdt_log2_ceil((uint32_t)p) + 1);
                }
            }
            assert_int_equal(roots, 1);
            assert_int_equal(edges, p - 1);
        }
        for (r = 0; r < p; r++) {
            int pa, a0, a1, pb, b0, b1;
            rdt_sched_dbtree_links(0, r, p, &pa, &a0, &a1);
            rdt_sched_dbtree_links(1, r, p, &pb, &b0, &b1);
            interior_both += (a0 >= 0 || a1 >= 0) && (b0 >= 0 || b1 >= 0);
        }
        assert_int_equal(interior_both, 0);
    }
}

static void test_tree_allreduce_receives_in_one_half_only(void **state)
{
    int p, r;

    (void)state;
    /* the same property, read from the schedules the executor gets: a rank reduces children's
     * data (RECV_REDUCE) in at most one of the two halves */
    for (p = 2; p <= 64; p++) {
        for (r = 0; r < p; r++) {
            rdt_sched_t *s;
            uint32_t i, rr[2] = {0, 0};
            assert_int_equal(rdt_sched_build(RDT_COLL_ALLREDUCE, RDT_ALGO_TREE, r, p, 0, &s),
                             RDT_SUCCESS);
            assert_int_equal(s->nblocks, 2);
            for (i = 0; i < s->nops; i++)
                if (s->ops[i].kind == RDT_OPK_RECV_REDUCE)
                    rr[s->ops[i].blk_begin]++;
            assert_false(rr[0] && rr[1]);
            rdt_sched_destroy(s);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Every builder, replayed                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void test_ring_allreduce_is_correct_for_1_to_33_64_127_128_ranks(void **state)
{
    (void)state;
    run_matrix(RDT_COLL_ALLREDUCE, RDT_ALGO_RING);
}

static void test_recdbl_allreduce_is_correct_for_1_to_33_64_127_128_ranks(void **state)
{
    (void)state;
    run_matrix(RDT_COLL_ALLREDUCE, RDT_ALGO_RECDBL);
}

static void test_rabenseifner_allreduce_is_correct_for_1_to_33_64_127_128_ranks(void **state)
{
    (void)state;
    run_matrix(RDT_COLL_ALLREDUCE, RDT_ALGO_RABENSEIFNER);
}

static void test_tree_allreduce_is_correct_for_1_to_33_64_127_128_ranks(void **state)
{
    (void)state;
    run_matrix(RDT_COLL_ALLREDUCE, RDT_ALGO_TREE);
}

static void test_ring_reduce_scatter_is_correct_for_1_to_33_64_127_128_ranks(void **state)
{
    (void)state;
    run_matrix(RDT_COLL_REDUCE_SCATTER, RDT_ALGO_RING);
}

static void test_rabenseifner_reduce_scatter_is_correct_for_1_to_33_64_127_128_ranks(void **state)
{
    (void)state;
    run_matrix(RDT_COLL_REDUCE_SCATTER, RDT_ALGO_RABENSEIFNER);
}

static void test_ring_allgather_is_correct_for_1_to_33_64_127_128_ranks(void **state)
{
    (void)state;
    run_matrix(RDT_COLL_ALLGATHER, RDT_ALGO_RING);
}

static void test_recdbl_allgather_is_correct_for_1_to_33_64_127_128_ranks(void **state)
{
    (void)state;
    run_matrix(RDT_COLL_ALLGATHER, RDT_ALGO_RECDBL);
}

static void test_chain_broadcast_is_correct_for_every_root_and_rank_count(void **state)
{
    (void)state;
    run_matrix(RDT_COLL_BROADCAST, RDT_ALGO_RING);
}

static void test_binomial_broadcast_is_correct_for_every_root_and_rank_count(void **state)
{
    (void)state;
    run_matrix(RDT_COLL_BROADCAST, RDT_ALGO_TREE);
}

static void test_chain_reduce_is_correct_for_every_root_and_rank_count(void **state)
{
    (void)state;
    run_matrix(RDT_COLL_REDUCE, RDT_ALGO_RING);
}

static void test_binomial_reduce_is_correct_for_every_root_and_rank_count(void **state)
{
    (void)state;
    run_matrix(RDT_COLL_REDUCE, RDT_ALGO_TREE);
}

static void test_dissemination_barrier_connects_every_pair_for_1_to_128_ranks(void **state)
{
    (void)state;
    run_matrix(RDT_COLL_BARRIER, RDT_ALGO_RECDBL);
}

static void test_pairwise_alltoall_is_correct_in_place_for_1_to_33_64_127_128_ranks(void **state)
{
    (void)state;
    run_matrix(RDT_COLL_ALLTOALL, RDT_ALGO_PAIRWISE);
}

/* Every algorithm on 1,000 ranks (not a power of two: the folds are exercised), in place and
 * out of place, with counts that leave most of the p blocks of a slice empty. The ring
 * allreduce (2 million messages per slice) runs one slice, the others several; so does the
 * hierarchical one, which on one host (no host map) is a ring of 1,000 chunks. */
static void test_every_algorithm_is_correct_on_1000_ranks(void **state)
{
    int c, a, ip;

    (void)state;
    for (c = 0; c < RDT_COLL_COUNT; c++) {
        for (a = 0; a < RDT_ALGO_COUNT; a++) {
            int per_rank = rdt_sched_nunits((rdt_coll_t)c, 1000) > 1;
            size_t count = per_rank ? 2 : 1500;
            size_t slice = (per_rank || a == RDT_ALGO_RING || a == RDT_ALGO_HIER) ? 0 : 700;
            if (!rdt_sched_supported((rdt_coll_t)c, (rdt_algo_t)a))
                continue;
            for (ip = 0; ip < 2; ip++)
                rdt_test_sim_expect_ok(c, a, 1000, 617, count, slice, ip ? RDT_FLOAT32 : RDT_INT64,
                              ip ? RDT_SUM : RDT_MAX, ip);
        }
    }
}

static void test_every_dtype_and_op_is_exact_for_every_reducing_algorithm(void **state)
{
    static const int ps[] = {2, 5, 8, 12};
    int c, a, dt, op, ip;
    unsigned pi;

    (void)state;
    for (c = 0; c < RDT_COLL_COUNT; c++) {
        if (c != RDT_COLL_ALLREDUCE && c != RDT_COLL_REDUCE_SCATTER && c != RDT_COLL_REDUCE)
            continue;
        for (a = 0; a < RDT_ALGO_COUNT; a++) {
            if (!rdt_sched_supported((rdt_coll_t)c, (rdt_algo_t)a))
                continue;
            for (pi = 0; pi < sizeof(ps) / sizeof(ps[0]); pi++)
                for (dt = 0; dt < RDT_DTYPE_COUNT; dt++)
                    for (op = 0; op < RDT_OP_COUNT; op++)
                        for (ip = 0; ip < 2; ip++)
                            rdt_test_sim_expect_ok(c, a, ps[pi], ps[pi] - 1, 37, 10, dt, op, ip);
        }
    }
}

static void test_data_movers_are_exact_for_every_dtype(void **state)
{
    static const rdt_coll_t colls[] = {RDT_COLL_ALLGATHER, RDT_COLL_BROADCAST, RDT_COLL_ALLTOALL};
    int a, dt, ip;
    unsigned ci;

    (void)state;
    for (ci = 0; ci < sizeof(colls) / sizeof(colls[0]); ci++)
        for (a = 0; a < RDT_ALGO_COUNT; a++)
            for (dt = 0; dt < RDT_DTYPE_COUNT && rdt_sched_supported(colls[ci], a); dt++)
                for (ip = 0; ip < 2; ip++)
                    rdt_test_sim_expect_ok(colls[ci], a, 6, 2, 21, 5, dt, RDT_SUM, ip);
}

static void test_large_sums_on_many_ranks_stay_exact_in_narrow_floats(void **state)
{
    int a;

    (void)state;
    /* 300 ranks: more than bfloat16 can sum exactly, so the inputs thin out (sim.c) */
    for (a = 0; a < RDT_ALGO_COUNT; a++) {
        if (!rdt_sched_supported(RDT_COLL_ALLREDUCE, a))
            continue;
        rdt_test_sim_expect_ok(RDT_COLL_ALLREDUCE, a, 300, 0, 40, 0, RDT_BFLOAT16, RDT_SUM, 1);
        rdt_test_sim_expect_ok(RDT_COLL_ALLREDUCE, a, 300, 0, 40, 0, RDT_FLOAT16, RDT_AVG, 0);
        rdt_test_sim_expect_ok(RDT_COLL_ALLREDUCE, a, 300, 0, 40, 0, RDT_FLOAT16, RDT_PROD, 0);
    }
}

/*
 * With random floats whose sums round, the exact reference no longer exists; what matters is
 * that every rank of an allreduce ends with the same bits (recursive doubling relies on the
 * reduction being commutative bit for bit, the others reduce every block once), and that every
 * result is within the rounding bound of the exact sum.
 */
static void test_reductions_stay_deterministic_across_ranks_when_sums_round(void **state)
{
    static const rdt_dtype_t fdt[] = {RDT_FLOAT16, RDT_BFLOAT16, RDT_FLOAT32, RDT_FLOAT64};
    int c, a;
    unsigned pi, rot = 0;

    (void)state;
    for (c = 0; c < RDT_COLL_COUNT; c++) {
        if (c != RDT_COLL_ALLREDUCE && c != RDT_COLL_REDUCE_SCATTER && c != RDT_COLL_REDUCE)
            continue;
        for (a = 0; a < RDT_ALGO_COUNT; a++) {
            if (!rdt_sched_supported((rdt_coll_t)c, (rdt_algo_t)a))
                continue;
            for (pi = 0; pi < NRANK_COUNTS; pi++, rot++) {
                int p = rank_counts[pi];
                rdt_sim_params_t prm = {.coll = c,
                                        .algo = a,
                                        .nranks = p,
                                        .root = p / 2,
                                        .count = c == RDT_COLL_ALLREDUCE ? 301 : 23,
                                        .slice = rot % 3 ? 0 : 40,
                                        .dtype = fdt[rot % 4],
                                        .op = (rot / 4) % 2 ? RDT_AVG : RDT_SUM,
                                        .in_place = (int)(rot % 2),
                                        .inexact = 1};
                rdt_sim_result_t res;
                if (rdt_sim_run(&prm, &res) != RDT_SUCCESS)
                    fail_msg("%s %s on %d ranks, %s %s, inexact: %s", rdt_algo_name(a),
                             rdt_coll_name(c), p, rdt_dtype_name(prm.dtype), rdt_op_name(prm.op),
                             res.error);
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The simulator catches broken schedules                                                       */
/* ------------------------------------------------------------------------------------------ */

/* Two ranks swap their vectors into TEMP and copy the sum to OUTPUT: right, and the baseline the
 * broken variants below differ from. */
static void hand_swap(rdt_sched_t **s, int p)
{
    int r;
    for (r = 0; r < p; r++) {
        s[r] = hand_new(RDT_COLL_ALLREDUCE, r, 2, 1, 1);
        hand_op(s[r], RDT_OPK_SEND, RDT_BUF_INPUT, 0, 1 - r, 0, 0, 1);
        hand_op(s[r], RDT_OPK_RECV_REDUCE, RDT_BUF_TEMP, RDT_BUF_INPUT, 1 - r, 0, 0, 1);
        hand_op(s[r], RDT_OPK_COPY, RDT_BUF_OUTPUT, RDT_BUF_TEMP, -1, 1, 0, 1);
    }
}

static void test_simulator_accepts_a_hand_built_correct_exchange(void **state)
{
    rdt_sched_t *s[2];
    rdt_sim_result_t res;
    int ip;

    (void)state;
    for (ip = 0; ip < 2; ip++) {
        hand_swap(s, 2);
        res = hand_run(s, RDT_COLL_ALLREDUCE, 2, 10, ip);
        assert_int_equal(res.status, RDT_SUCCESS);
        assert_int_equal(res.msgs, 2);
        hand_free(s, 2);
    }
}

static void test_simulator_detects_a_wrong_peer_as_unmatched(void **state)
{
    rdt_sched_t *s[3];
    rdt_sim_result_t res;

    (void)state;
    build_all(RDT_COLL_ALLREDUCE, RDT_ALGO_RING, 3, s);
    assert_int_equal(s[0]->ops[0].kind, RDT_OPK_SEND);
    s[0]->ops[0].peer = 2; /* should be 1 */
    res = hand_run(s, RDT_COLL_ALLREDUCE, 3, 9, 0);
    expect_failure(&res, "unmatched");
    hand_free(s, 3);
}

static void test_simulator_detects_receive_before_send_as_deadlock(void **state)
{
    rdt_sched_t *s[2];
    rdt_sim_result_t res;
    int r;

    (void)state;
    for (r = 0; r < 2; r++) {
        s[r] = hand_new(RDT_COLL_ALLREDUCE, r, 2, 1, 1);
        hand_op(s[r], RDT_OPK_RECV_REDUCE, RDT_BUF_OUTPUT, RDT_BUF_INPUT, 1 - r, 0, 0, 1);
        hand_op(s[r], RDT_OPK_SEND, RDT_BUF_INPUT, 0, 1 - r, 1, 0, 1);
    }
    res = hand_run(s, RDT_COLL_ALLREDUCE, 2, 4, 0);
    expect_failure(&res, "deadlock");
    hand_free(s, 2);
}

static void test_simulator_detects_a_send_round_waiting_on_a_later_receive(void **state)
{
    rdt_sched_t *s[2];
    rdt_sim_result_t res;
    int r;

    (void)state;
    /* both send in round 0 and receive in round 1: fine with buffered sends, a deadlock when a
     * send completes only once its receive is posted, which the executor may do */
    for (r = 0; r < 2; r++) {
        s[r] = hand_new(RDT_COLL_ALLREDUCE, r, 2, 1, 1);
        hand_op(s[r], RDT_OPK_SEND, RDT_BUF_INPUT, 0, 1 - r, 0, 0, 1);
        hand_op(s[r], RDT_OPK_RECV_REDUCE, RDT_BUF_OUTPUT, RDT_BUF_INPUT, 1 - r, 1, 0, 1);
    }
    res = hand_run(s, RDT_COLL_ALLREDUCE, 2, 4, 0);
    expect_failure(&res, "deadlock");
    hand_free(s, 2);
}

static void test_simulator_detects_rank_dependent_reduction_order(void **state)
{
    rdt_sched_t *s[3];
    rdt_sim_params_t prm = {.coll = RDT_COLL_ALLREDUCE,
                            .algo = RDT_ALGO_RING,
                            .nranks = 3,
                            .count = 200,
                            .dtype = RDT_FLOAT32,
                            .op = RDT_SUM};
    rdt_sim_result_t res;
    int r;

    (void)state;
    /* every rank sums all three vectors itself, starting with its own: (x_r + x_r-1) + x_r-2,
     * exact on small integers, different bits per rank once sums round */
    for (r = 0; r < 3; r++) {
        s[r] = hand_new(RDT_COLL_ALLREDUCE, r, 3, 1, 1);
        hand_op(s[r], RDT_OPK_SEND, RDT_BUF_INPUT, 0, (r + 1) % 3, 0, 0, 1);
        hand_op(s[r], RDT_OPK_RECV_REDUCE, RDT_BUF_TEMP, RDT_BUF_INPUT, (r + 2) % 3, 0, 0, 1);
        hand_op(s[r], RDT_OPK_SEND, RDT_BUF_INPUT, 0, (r + 2) % 3, 1, 0, 1);
        hand_op(s[r], RDT_OPK_RECV_REDUCE, RDT_BUF_OUTPUT, RDT_BUF_TEMP, (r + 1) % 3, 1, 0, 1);
    }
    rdt_sim_run_scheds(&prm, s, &res);
    assert_int_equal(res.status, RDT_SUCCESS);
    prm.inexact = 1;
    rdt_sim_run_scheds(&prm, s, &res);
    expect_failure(&res, "ranks disagree");
    hand_free(s, 3);
}

static void test_simulator_detects_a_wrong_region_as_wrong_result(void **state)
{
    rdt_sched_t *s[4];
    rdt_sim_result_t res;
    uint32_t i;

    (void)state;
    build_all(RDT_COLL_ALLREDUCE, RDT_ALGO_RING, 4, s);
    /* rank 2's first allgather receive lands two blocks off (same size: count 40 / 4 blocks;
     * not the block sent in that round, which would be a race instead) */
    for (i = 0; i < s[2]->nops; i++) {
        rdt_sched_op_t *o = &s[2]->ops[i];
        if (o->kind == RDT_OPK_RECV && o->round == 3) {
            o->blk_begin = (o->blk_begin + 2) % 4;
            o->blk_end = o->blk_begin + 1;
            break;
        }
    }
    assert_true(i < s[2]->nops);
    res = hand_run(s, RDT_COLL_ALLREDUCE, 4, 40, 0);
    expect_failure(&res, "wrong result");
    assert_true(res.wrong > 0);
    hand_free(s, 4);
}

static void test_simulator_detects_a_race_inside_a_round(void **state)
{
    rdt_sched_t *s[2];
    rdt_sim_result_t res;

    (void)state;
    hand_swap(s, 2);
    /* rank 1 copies into TEMP in round 0 while the receive writes it */
    s[1]->ops[2].round = 0;
    s[1]->ops[2].buf = RDT_BUF_TEMP;
    s[1]->ops[2].src = RDT_BUF_INPUT;
    res = hand_run(s, RDT_COLL_ALLREDUCE, 2, 8, 0);
    expect_failure(&res, "race on rank 1 in round 0");
    hand_free(s, 2);
}

static void test_simulator_detects_a_race_that_exists_only_in_place(void **state)
{
    rdt_sched_t *s[3];
    rdt_sim_result_t res;
    int r;

    (void)state;
    /* ring allgather with the own-unit copy moved into round 0, next to the send of the same
     * unit from INPUT: harmless out of place, a race when INPUT is OUTPUT's unit */
    build_all(RDT_COLL_ALLGATHER, RDT_ALGO_RING, 3, s);
    for (r = 0; r < 3; r++) {
        uint32_t i;
        for (i = 0; i < s[r]->nops; i++)
            if (s[r]->ops[i].kind == RDT_OPK_COPY)
                break;
        assert_true(i < s[r]->nops);
        s[r]->ops[i].round = 0;
        rdt_sched_sort_rounds(s[r]);
    }
    res = hand_run(s, RDT_COLL_ALLGATHER, 3, 5, 0);
    assert_int_equal(res.status, RDT_SUCCESS);
    res = hand_run(s, RDT_COLL_ALLGATHER, 3, 5, 1);
    expect_failure(&res, "(in place)");
    hand_free(s, 3);
}

static void test_simulator_detects_the_naive_shift_alltoall_in_place(void **state)
{
    enum { P = 5 };
    rdt_sched_t *s[P];
    rdt_sim_result_t res;
    int r, k;

    (void)state;
    /* the classic pairwise exchange, straight into OUTPUT: round k sends unit r+k and receives
     * unit r-k; in place, unit r-k is overwritten before round p-k sends it */
    for (r = 0; r < P; r++) {
        s[r] = hand_new(RDT_COLL_ALLTOALL, r, P, P, P);
        hand_op(s[r], RDT_OPK_COPY, RDT_BUF_OUTPUT, RDT_BUF_INPUT, -1, 0, (uint32_t)r,
                (uint32_t)r + 1);
        for (k = 1; k < P; k++) {
            uint32_t to = (uint32_t)((r + k) % P), from = (uint32_t)((r - k + P) % P);
            hand_op(s[r], RDT_OPK_SEND, RDT_BUF_INPUT, 0, (int)to, (uint32_t)k, to, to + 1);
            hand_op(s[r], RDT_OPK_RECV, RDT_BUF_OUTPUT, 0, (int)from, (uint32_t)k, from, from + 1);
        }
    }
    res = hand_run(s, RDT_COLL_ALLTOALL, P, 3, 0);
    assert_int_equal(res.status, RDT_SUCCESS);
    res = hand_run(s, RDT_COLL_ALLTOALL, P, 3, 1);
    expect_failure(&res, "wrong result");
    hand_free(s, P);
}

static void test_simulator_detects_size_and_segment_mismatches(void **state)
{
    rdt_sched_t *s[2];
    rdt_sim_result_t res;

    (void)state;
    /* one block sent, two received */
    s[0] = hand_new(RDT_COLL_ALLREDUCE, 0, 2, 1, 2);
    s[1] = hand_new(RDT_COLL_ALLREDUCE, 1, 2, 1, 2);
    hand_op(s[0], RDT_OPK_SEND, RDT_BUF_INPUT, 0, 1, 0, 0, 1);
    hand_op(s[1], RDT_OPK_RECV, RDT_BUF_OUTPUT, 0, 0, 0, 0, 2);
    res = hand_run(s, RDT_COLL_ALLREDUCE, 2, 6, 0);
    expect_failure(&res, "size mismatch");
    hand_free(s, 2);

    /* the same number of elements, cut differently: blocks [1,3) span two units (two messages)
     * while [0,2) is one unit (one message) */
    s[0] = hand_new(RDT_COLL_ALLGATHER, 0, 2, 2, 4);
    s[1] = hand_new(RDT_COLL_ALLGATHER, 1, 2, 2, 4);
    hand_op(s[0], RDT_OPK_SEND, RDT_BUF_TEMP, 0, 1, 0, 1, 3);
    hand_op(s[1], RDT_OPK_RECV, RDT_BUF_TEMP, 0, 0, 0, 0, 2);
    res = hand_run(s, RDT_COLL_ALLGATHER, 2, 6, 0);
    expect_failure(&res, "unmatched");
    hand_free(s, 2);
}

static void test_simulator_detects_a_region_outside_existing_buffers(void **state)
{
    rdt_sched_t *s[2];
    rdt_sim_result_t res;
    rdt_sim_params_t prm = {.coll = RDT_COLL_REDUCE,
                            .algo = RDT_ALGO_TREE,
                            .nranks = 2,
                            .count = 5,
                            .dtype = RDT_INT32,
                            .op = RDT_SUM};

    (void)state;
    /* reduce to root 0: rank 1 has no OUTPUT, but adds into it */
    s[0] = hand_new(RDT_COLL_REDUCE, 0, 2, 1, 1);
    s[1] = hand_new(RDT_COLL_REDUCE, 1, 2, 1, 1);
    hand_op(s[0], RDT_OPK_SEND, RDT_BUF_INPUT, 0, 1, 0, 0, 1);
    hand_op(s[1], RDT_OPK_RECV_REDUCE, RDT_BUF_OUTPUT, RDT_BUF_INPUT, 0, 0, 0, 1);
    rdt_sim_run_scheds(&prm, s, &res);
    expect_failure(&res, "outside the buffers");
    hand_free(s, 2);

    /* allgather: INPUT holds only the rank's own unit */
    s[0] = hand_new(RDT_COLL_ALLGATHER, 0, 2, 2, 2);
    s[1] = hand_new(RDT_COLL_ALLGATHER, 1, 2, 2, 2);
    hand_op(s[0], RDT_OPK_SEND, RDT_BUF_INPUT, 0, 1, 0, 1, 2);
    hand_op(s[1], RDT_OPK_RECV, RDT_BUF_OUTPUT, 0, 0, 0, 0, 1);
    res = hand_run(s, RDT_COLL_ALLGATHER, 2, 3, 0);
    expect_failure(&res, "outside the buffers");
    hand_free(s, 2);
}

static void test_simulator_detects_unsorted_rounds(void **state)
{
    rdt_sched_t *s[2];
    rdt_sim_result_t res;

    (void)state;
    hand_swap(s, 2);
    s[0]->ops[0].round = 1; /* SEND in round 1 listed before the round-0 receive */
    res = hand_run(s, RDT_COLL_ALLREDUCE, 2, 3, 0);
    expect_failure(&res, "not sorted by round");
    hand_free(s, 2);
}

static void test_simulator_detects_an_incomplete_barrier(void **state)
{
    rdt_sched_t *s[5];
    rdt_sim_result_t res;
    int r;

    (void)state;
    build_all(RDT_COLL_BARRIER, RDT_ALGO_RECDBL, 5, s);
    res = hand_run(s, RDT_COLL_BARRIER, 5, 0, 0);
    assert_int_equal(res.status, RDT_SUCCESS);
    for (r = 0; r < 5; r++) { /* drop the last round: rank r hears only from r-3 .. r */
        assert_int_equal(s[r]->nrounds, 3);
        s[r]->nops -= 2;
        s[r]->nrounds = 2;
    }
    res = hand_run(s, RDT_COLL_BARRIER, 5, 0, 0);
    expect_failure(&res, "barrier");
    hand_free(s, 5);
}

static void test_simulator_detects_reading_temp_that_was_never_written(void **state)
{
    rdt_sched_t *s[2];
    rdt_sim_result_t res;

    (void)state;
    hand_swap(s, 2);
    s[0]->ops[1].buf = RDT_BUF_OUTPUT; /* rank 0 reduces into OUTPUT, then copies stale TEMP */
    res = hand_run(s, RDT_COLL_ALLREDUCE, 2, 7, 0);
    expect_failure(&res, "wrong result");
    hand_free(s, 2);
}

static void test_simulator_reports_rounds_messages_and_bytes(void **state)
{
    rdt_sim_params_t prm = {.coll = RDT_COLL_ALLREDUCE,
                            .algo = RDT_ALGO_RING,
                            .nranks = 4,
                            .count = 400,
                            .dtype = RDT_FLOAT32,
                            .op = RDT_SUM};
    rdt_sim_result_t res;

    (void)state;
    assert_int_equal(rdt_sim_run(&prm, &res), RDT_SUCCESS);
    assert_int_equal(res.max_rounds, 6);
    assert_int_equal(res.msgs, 4 * 6);
    assert_int_equal(res.max_rank_bytes, 6 * 100 * 4); /* 2(p-1) blocks of n/p */
    assert_int_equal(res.wrong, 0);

    prm.slice = 30; /* 14 slices: about the same bytes, blocks of uneven size */
    assert_int_equal(rdt_sim_run(&prm, &res), RDT_SUCCESS);
    assert_true(res.max_rank_bytes >= 6 * 100 * 4 && res.max_rank_bytes < 6 * 110 * 4);
    assert_int_equal(res.msgs, 4 * 6); /* per slice */

    prm.algo = RDT_ALGO_PAIRWISE; /* not an allreduce algorithm */
    assert_int_equal(rdt_sim_run(&prm, &res), RDT_ERR_UNSUPPORTED);
    assert_true(strlen(res.error) > 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Costs                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static const rdt_cost_params_t test_cost = {5e-6, 2.5e-10, 1e-10};

static void test_lower_bound_never_exceeds_the_priced_schedule(void **state)
{
    static const size_t sizes[] = {0, 8, 1000, 1 << 20};
    int c, a;
    unsigned pi, si;

    (void)state;
    for (c = 0; c < RDT_COLL_COUNT; c++) {
        for (a = 0; a < RDT_ALGO_COUNT; a++) {
            if (!rdt_sched_supported((rdt_coll_t)c, (rdt_algo_t)a))
                continue;
            for (pi = 0; pi < NRANK_COUNTS; pi++) {
                for (si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
                    int p = rank_counts[pi];
                    double lb = rdt_cost_lower_bound(c, p, sizes[si], &test_cost);
                    double pr = rdt_sim_price(c, a, p, sizes[si], &test_cost);
                    assert_true(lb >= 0);
                    if (lb > pr * (1 + 1e-12))
                        fail_msg("%s %s on %d ranks, %zu bytes: lower bound %g > price %g",
                                 rdt_algo_name(a), rdt_coll_name(c), p, sizes[si], lb, pr);
                    if (p > 1)
                        assert_true(pr > 0);
                }
            }
        }
    }
    /* the bound is the one of DESIGN.md for allreduce */
    assert_true(fabs(rdt_cost_lower_bound(RDT_COLL_ALLREDUCE, 8, 800, &test_cost) -
                     (3 * 5e-6 + 2 * 7.0 / 8 * 800 * 2.5e-10 + 7.0 / 8 * 800 * 1e-10)) < 1e-15);
}

static void test_closed_forms_track_the_priced_schedules(void **state)
{
    static const size_t sizes[] = {8, 1000, 1 << 20, 64u << 20};
    int c, a;
    unsigned pi, si;

    (void)state;
    for (c = 0; c < RDT_COLL_COUNT; c++) {
        for (a = 0; a < RDT_ALGO_COUNT; a++) {
            if (!rdt_sched_supported((rdt_coll_t)c, (rdt_algo_t)a)) {
                assert_true(isinf(rdt_cost_model(c, a, 8, 100, &test_cost)));
                continue;
            }
            for (pi = 1; pi < NRANK_COUNTS; pi++) {
                for (si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
                    int p = rank_counts[pi];
                    double pr = rdt_sim_price(c, a, p, sizes[si], &test_cost);
                    double cf = rdt_cost_model(c, a, p, sizes[si], &test_cost);
                    if (!(cf >= 0.67 * pr && cf <= 1.5 * pr))
                        fail_msg("%s %s on %d ranks, %zu bytes: closed form %g, priced %g",
                                 rdt_algo_name(a), rdt_coll_name(c), p, sizes[si], cf, pr);
                }
            }
            assert_true(rdt_cost_model(c, a, 1, 100, &test_cost) == 0);
        }
    }
}

static void
test_the_selector_prefers_latency_algorithms_small_and_bandwidth_ones_large(void **state)
{
    double ring, recdbl, rab;

    (void)state;
    ring = rdt_cost_model(RDT_COLL_ALLREDUCE, RDT_ALGO_RING, 64, 8, &test_cost);
    recdbl = rdt_cost_model(RDT_COLL_ALLREDUCE, RDT_ALGO_RECDBL, 64, 8, &test_cost);
    assert_true(recdbl < ring);
    ring = rdt_cost_model(RDT_COLL_ALLREDUCE, RDT_ALGO_RING, 8, 64u << 20, &test_cost);
    recdbl = rdt_cost_model(RDT_COLL_ALLREDUCE, RDT_ALGO_RECDBL, 8, 64u << 20, &test_cost);
    rab = rdt_cost_model(RDT_COLL_ALLREDUCE, RDT_ALGO_RABENSEIFNER, 8, 64u << 20, &test_cost);
    assert_true(ring < recdbl);
    assert_true(rab < recdbl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_round_trip_and_unknown_names_are_rejected),
        cmocka_unit_test(test_supported_pairs_are_exactly_the_documented_ones),
        cmocka_unit_test(test_blocks_tile_each_unit_piece_in_balanced_parts),
        cmocka_unit_test(test_build_rejects_unsupported_pairs_and_bad_ranks),
        cmocka_unit_test(test_builders_are_deterministic_and_linear_in_steps),
        cmocka_unit_test(test_ring_allreduce_has_2_p_minus_1_rounds_of_one_block_each_way),
        cmocka_unit_test(test_double_binary_tree_makes_each_rank_interior_in_at_most_one_tree),
        cmocka_unit_test(test_tree_allreduce_receives_in_one_half_only),
        cmocka_unit_test(test_ring_allreduce_is_correct_for_1_to_33_64_127_128_ranks),
        cmocka_unit_test(test_recdbl_allreduce_is_correct_for_1_to_33_64_127_128_ranks),
        cmocka_unit_test(test_rabenseifner_allreduce_is_correct_for_1_to_33_64_127_128_ranks),
        cmocka_unit_test(test_tree_allreduce_is_correct_for_1_to_33_64_127_128_ranks),
        cmocka_unit_test(test_ring_reduce_scatter_is_correct_for_1_to_33_64_127_128_ranks),
        cmocka_unit_test(test_rabenseifner_reduce_scatter_is_correct_for_1_to_33_64_127_128_ranks),
        cmocka_unit_test(test_ring_allgather_is_correct_for_1_to_33_64_127_128_ranks),
        cmocka_unit_test(test_recdbl_allgather_is_correct_for_1_to_33_64_127_128_ranks),
        cmocka_unit_test(test_chain_broadcast_is_correct_for_every_root_and_rank_count),
        cmocka_unit_test(test_binomial_broadcast_is_correct_for_every_root_and_rank_count),
        cmocka_unit_test(test_chain_reduce_is_correct_for_every_root_and_rank_count),
        cmocka_unit_test(test_binomial_reduce_is_correct_for_every_root_and_rank_count),
        cmocka_unit_test(test_dissemination_barrier_connects_every_pair_for_1_to_128_ranks),
        cmocka_unit_test(test_pairwise_alltoall_is_correct_in_place_for_1_to_33_64_127_128_ranks),
        cmocka_unit_test(test_every_algorithm_is_correct_on_1000_ranks),
        cmocka_unit_test(test_every_dtype_and_op_is_exact_for_every_reducing_algorithm),
        cmocka_unit_test(test_data_movers_are_exact_for_every_dtype),
        cmocka_unit_test(test_large_sums_on_many_ranks_stay_exact_in_narrow_floats),
        cmocka_unit_test(test_reductions_stay_deterministic_across_ranks_when_sums_round),
        cmocka_unit_test(test_simulator_accepts_a_hand_built_correct_exchange),
        cmocka_unit_test(test_simulator_detects_a_wrong_peer_as_unmatched),
        cmocka_unit_test(test_simulator_detects_receive_before_send_as_deadlock),
        cmocka_unit_test(test_simulator_detects_a_send_round_waiting_on_a_later_receive),
        cmocka_unit_test(test_simulator_detects_rank_dependent_reduction_order),
        cmocka_unit_test(test_simulator_detects_a_wrong_region_as_wrong_result),
        cmocka_unit_test(test_simulator_detects_a_race_inside_a_round),
        cmocka_unit_test(test_simulator_detects_a_race_that_exists_only_in_place),
        cmocka_unit_test(test_simulator_detects_the_naive_shift_alltoall_in_place),
        cmocka_unit_test(test_simulator_detects_size_and_segment_mismatches),
        cmocka_unit_test(test_simulator_detects_a_region_outside_existing_buffers),
        cmocka_unit_test(test_simulator_detects_unsorted_rounds),
        cmocka_unit_test(test_simulator_detects_an_incomplete_barrier),
        cmocka_unit_test(test_simulator_detects_reading_temp_that_was_never_written),
        cmocka_unit_test(test_simulator_reports_rounds_messages_and_bytes),
        cmocka_unit_test(test_lower_bound_never_exceeds_the_priced_schedule),
        cmocka_unit_test(test_closed_forms_track_the_priced_schedules),
        cmocka_unit_test(
            test_the_selector_prefers_latency_algorithms_small_and_bandwidth_ones_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
