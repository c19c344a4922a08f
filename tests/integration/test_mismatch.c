/* rdt-test-labels: fault */
/*
 * test_mismatch.c - ranks that disagree on a collective.
 *
 * With RDT_CHECK=1 (set in each rank before its communicator is created) every rank must fail
 * the mismatched call with RDT_ERR_MISMATCH, with a sentence naming every variant and the ranks
 * that called it, without touching its buffers, and the communicator must stay usable. One test
 * per fingerprint field (collective, dtype, op, count, root), blocking and nonblocking, on 2 and
 * 3 ranks; a matching sequence of every collective under RDT_CHECK=1 must be exact.
 * Without RDT_CHECK, a count mismatch (allreduce, broadcast) must fail on every rank well
 * within RDT_TIMEOUT (in the call, or for a rank that only sends, in its next call), and write
 * nothing past the count each rank passed.
 *
 * Every case runs over RDT_TRANSPORT=tcp and shm. The expected sentences are formatted here,
 * from the calls each rank made, not by the library. Under AddressSanitizer each rank also runs
 * LeakSanitizer before it exits (the spawner's children end with _exit, which skips it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "rdmatrain.h"
#include "spawn.h"
#include "testutil.h"

#define SPAWN_TIMEOUT_S 90
#define COUNT           1000
#define PAD             64 /* poisoned bytes past the end of every receive buffer */
#define POISON          0x5a
#define MAX_RANKS       3

/* ------------------------------------------------------------------------------------------ */
/* Calls                                                                                        */
/* ------------------------------------------------------------------------------------------ */

enum { K_ALLREDUCE, K_BROADCAST, K_ALLGATHER, K_REDUCE, K_BARRIER };
static const char *const kind_names[] = {"allreduce", "broadcast", "allgather", "reduce",
                                         "barrier"};

typedef struct call {
    int kind;
    rdt_dtype_t t;
    rdt_op_t op;
    size_t count;
    int root;
} call_t;

typedef enum { F_COLL, F_DTYPE, F_OP, F_COUNT, F_ROOT } field_t;

typedef struct job {
    field_t field;
    int nonblocking;
    int kind;       /* without RDT_CHECK: K_ALLREDUCE or K_BROADCAST */
    int short_rank; /* without RDT_CHECK: the rank passing COUNT - 1 (-1: the last one) */
} job_t;

/* What rank r of p calls when @p f differs: the last rank differs, and for the collective
 * (ranks 0 and 2 agree, rank 1 not) and the dtype (three variants) rank 1 on 3 ranks too. */
static call_t call_of(field_t f, int r, int p)
{
    call_t c = {K_ALLREDUCE, RDT_FLOAT32, RDT_SUM, COUNT, 0};

    switch (f) {
    case F_COLL:
        if (r == 1)
            c.kind = K_BROADCAST;
        break;
    case F_DTYPE:
        if (r == p - 1)
            c.t = RDT_FLOAT64;
        else if (r == 1)
            c.t = RDT_INT32;
        break;
    case F_OP:
        if (r == p - 1)
            c.op = RDT_MAX;
        break;
    case F_COUNT:
        if (r == p - 1)
            c.count = COUNT - 1;
        break;
    case F_ROOT:
        c.kind = K_BROADCAST;
        c.root = r == p - 1 ? 1 : 0;
        break;
    }
    return c;
}

static int reduces(int kind)
{
    return kind == K_ALLREDUCE || kind == K_REDUCE;
}

static int rooted(int kind)
{
    return kind == K_BROADCAST || kind == K_REDUCE;
}

static int same_call(const call_t *a, const call_t *b)
{
    return a->kind == b->kind && a->t == b->t && a->count == b->count &&
           (!reduces(a->kind) || a->op == b->op) && (!rooted(a->kind) || a->root == b->root);
}

/* "allreduce float32 x 1000 sum", "broadcast float32 x 1000 root 0" */
static void describe(const call_t *c, char *buf, size_t len)
{
    int n;

    if (c->kind == K_BARRIER) {
        snprintf(buf, len, "barrier");
        return;
    }
    n = snprintf(buf, len, "%s %s x %zu", kind_names[c->kind], rdt_dtype_name(c->t), c->count);
    if (reduces(c->kind))
        n += snprintf(buf + n, len - (size_t)n, " %s", rdt_op_name(c->op));
    if (rooted(c->kind))
        snprintf(buf + n, len - (size_t)n, " root %d", c->root);
}

/* Issue @p c; with @p req_p NULL blocking. Buffers hold p * count elements of any type. */
static rdt_status_t issue(rdt_comm_t *comm, const call_t *c, const void *in, void *out,
                          rdt_request_t **req_p)
{
    switch (c->kind) {
    case K_ALLREDUCE:
        return req_p ? rdt_iallreduce(comm, in, out, c->count, c->t, c->op, req_p)
                     : rdt_allreduce(comm, in, out, c->count, c->t, c->op);
    case K_BROADCAST:
        return req_p ? rdt_ibroadcast(comm, in, out, c->count, c->t, c->root, req_p)
                     : rdt_broadcast(comm, in, out, c->count, c->t, c->root);
    case K_ALLGATHER:
        return req_p ? rdt_iallgather(comm, in, out, c->count, c->t, req_p)
                     : rdt_allgather(comm, in, out, c->count, c->t);
    case K_REDUCE:
        return req_p ? rdt_ireduce(comm, in, out, c->count, c->t, c->op, c->root, req_p)
                     : rdt_reduce(comm, in, out, c->count, c->t, c->op, c->root);
    default:
        return req_p ? rdt_ibarrier(comm, req_p) : rdt_barrier(comm);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Helpers of the ranks                                                                         */
/* ------------------------------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The communicator still works: an allreduce of int32 with an exact result. */
static int still_usable(rdt_comm_t *comm, int rank, int p)
{
    int32_t in[10], out[10];
    int i;
    rdt_status_t st;

    for (i = 0; i < 10; i++)
        in[i] = rank * 100 + i;
    st = rdt_allreduce(comm, in, out, 10, RDT_INT32, RDT_SUM);
    if (st != RDT_SUCCESS) {
        fprintf(stderr, "rank %d: allreduce after the mismatch: %s: %s\n", rank, rdt_status_str(st),
                rdt_comm_last_error(comm));
        return 1;
    }
    for (i = 0; i < 10; i++) {
        if (out[i] != 100 * p * (p - 1) / 2 + p * i) {
            fprintf(stderr, "rank %d: allreduce after the mismatch: element %d is %d\n", rank, i,
                    out[i]);
            return 1;
        }
    }
    return 0;
}

/* "rank 1", "ranks 0-1", "ranks 0,2": the ranks of @p calls equal to calls[r]. */
static void group_of(const call_t *calls, int p, int r, char *buf, size_t len)
{
    int members[MAX_RANKS], n = 0, i;

    for (i = 0; i < p; i++)
        if (same_call(&calls[i], &calls[r]))
            members[n++] = i;
    if (n == 1)
        snprintf(buf, len, "rank %d", members[0]);
    else if (members[n - 1] - members[0] == n - 1)
        snprintf(buf, len, "ranks %d-%d", members[0], members[n - 1]);
    else /* at most 3 ranks: two non-adjacent ones */
        snprintf(buf, len, "ranks %d,%d", members[0], members[1]);
}

/* Does @p msg name every variant of @p calls with its ranks, and collective #@p seq? */
static int names_every_variant(const char *msg, const call_t *calls, int p, unsigned seq, int rank)
{
    char want[256], group[32], what[128];
    int r, bad = 0;

    snprintf(want, sizeof(want), "collective #%u mismatch: ", seq);
    if (!strstr(msg, want)) {
        fprintf(stderr, "rank %d: '%s' missing from: %s\n", rank, want, msg);
        bad = 1;
    }
    for (r = 0; r < p; r++) {
        group_of(calls, p, r, group, sizeof(group));
        describe(&calls[r], what, sizeof(what));
        snprintf(want, sizeof(want), "%s called %s", group, what);
        if (!strstr(msg, want)) {
            fprintf(stderr, "rank %d: '%s' missing from: %s\n", rank, want, msg);
            bad = 1;
        }
    }
    return bad;
}

static int all_poisoned(const unsigned char *b, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (b[i] != POISON)
            return 0;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* RDT_CHECK=1: mismatches                                                                      */
/* ------------------------------------------------------------------------------------------ */

static int body_check_mismatch(int rank, int p, void *arg)
{
    const job_t *job = arg;
    size_t bytes = (size_t)p * COUNT * 8 + PAD;
    unsigned char *in = malloc(bytes), *out = malloc(bytes);
    call_t calls[MAX_RANKS], follow = {K_ALLREDUCE, RDT_INT32, RDT_SUM, 10, 0};
    rdt_request_t *req = NULL, *req2 = NULL;
    int32_t fin[10], fout[10];
    rdt_comm_t *comm;
    rdt_status_t st;
    char msg[1024];
    int bad = 0, r, i;

    setenv("RDT_CHECK", "1", 1);
    setenv("RDT_TIMEOUT", "20", 1);
    comm = rdt_test_create_or_die();
    for (r = 0; r < p; r++)
        calls[r] = call_of(job->field, r, p);
    memset(in, 1, bytes);
    memset(out, POISON, bytes);
    /* a matching collective first: the mismatch is collective #1 */
    st = rdt_barrier(comm);
    if (st != RDT_SUCCESS) {
        fprintf(stderr, "rank %d: barrier: %s\n", rank, rdt_comm_last_error(comm));
        return 1;
    }
    if (job->nonblocking) {
        /* the mismatched call, and a matching one queued behind it before waiting */
        for (i = 0; i < 10; i++)
            fin[i] = rank * 100 + i;
        st = issue(comm, &calls[rank], in, out, &req);
        if (st == RDT_SUCCESS)
            st = issue(comm, &follow, fin, fout, &req2);
        if (st != RDT_SUCCESS) {
            fprintf(stderr, "rank %d: issue: %s: %s\n", rank, rdt_status_str(st),
                    rdt_comm_last_error(comm));
            return 1;
        }
        st = rdt_wait(req);
    } else {
        st = issue(comm, &calls[rank], in, out, NULL);
    }
    snprintf(msg, sizeof(msg), "%s", rdt_comm_last_error(comm));
    fprintf(stderr, "rank %d (expected error): %s: %s\n", rank, rdt_status_str(st), msg);
    if (st != RDT_ERR_MISMATCH) {
        fprintf(stderr, "rank %d: expected RDT_ERR_MISMATCH\n", rank);
        bad = 1;
    }
    bad |= names_every_variant(msg, calls, p, 1, rank);
    if (!all_poisoned(out, bytes)) {
        fprintf(stderr, "rank %d: the mismatched call wrote into its receive buffer\n", rank);
        bad = 1;
    }
    if (job->nonblocking) {
        st = rdt_wait(req2);
        if (st != RDT_SUCCESS) {
            fprintf(stderr, "rank %d: the request queued after the mismatch: %s: %s\n", rank,
                    rdt_status_str(st), rdt_comm_last_error(comm));
            bad = 1;
        }
        for (i = 0; i < 10 && st == RDT_SUCCESS; i++) {
            if (fout[i] != 100 * p * (p - 1) / 2 + p * i) {
                fprintf(stderr, "rank %d: queued allreduce: element %d is %d\n", rank, i, fout[i]);
                bad = 1;
                break;
            }
        }
    }
    bad |= still_usable(comm, rank, p);
    rdt_comm_destroy(comm);
    free(in);
    free(out);
    return bad | rdt_test_leaks(rank);
}

static void run_ranks(int p, rdt_spawn_fn_t fn, void *arg)
{
    static const char *const transports[] = {"tcp", "shm"};
    int st[MAX_RANKS], t, i, rc;

    for (t = 0; t < 2; t++) {
        setenv("RDT_TRANSPORT", transports[t], 1); /* the ranks inherit it */
        fprintf(stderr, "# %d ranks over %s\n", p, transports[t]);
        rc = rdt_spawn_local(p, fn, arg, SPAWN_TIMEOUT_S, st);
        for (i = 0; i < p; i++)
            if (st[i] != 0)
                fprintf(stderr, "rank %d of %d over %s exited with status %d\n", i, p,
                        transports[t], st[i]);
        assert_int_equal(rc, 0);
    }
}

static void run_check_case(field_t f, int nonblocking)
{
    job_t job = {.field = f, .nonblocking = nonblocking};
    run_ranks(2, body_check_mismatch, &job);
    run_ranks(3, body_check_mismatch, &job);
}

static void test_check_different_collectives_fail_every_rank_naming_both(void **state)
{
    run_check_case(F_COLL, 0);
}

static void test_check_different_dtypes_fail_every_rank_naming_each(void **state)
{
    run_check_case(F_DTYPE, 0);
}

static void test_check_different_ops_fail_every_rank_naming_both(void **state)
{
    run_check_case(F_OP, 0);
}

static void test_check_different_counts_fail_every_rank_naming_both(void **state)
{
    run_check_case(F_COUNT, 0);
}

static void test_check_different_roots_fail_every_rank_naming_both(void **state)
{
    run_check_case(F_ROOT, 0);
}

static void test_check_iallreduce_against_ibroadcast_fails_only_that_request(void **state)
{
    run_check_case(F_COLL, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* RDT_CHECK=1: a matching sequence is exact                                                    */
/* ------------------------------------------------------------------------------------------ */

static int expect_i32(const char *what, int rank, const int32_t *got, const int32_t *want, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (got[i] != want[i]) {
            fprintf(stderr, "rank %d: %s: element %zu is %d, expected %d\n", rank, what, i, got[i],
                    want[i]);
            return 1;
        }
    }
    return 0;
}

static int body_check_sequence(int rank, int p, void *arg)
{
    enum { N = 1000, G = 100, RS = 50, A2A = 20, NB = 500 };
    int32_t *in = calloc((size_t)p * N, 4), *out = calloc((size_t)p * N, 4);
    int32_t *want = calloc((size_t)p * N, 4);
    int64_t in64[NB], out64[NB];
    double inf[300], outf[300];
    rdt_request_t *reqs[3];
    rdt_comm_t *comm;
    rdt_status_t st;
    int bad = 0, i, j, r;

    setenv("RDT_CHECK", "1", 1);
    setenv("RDT_TIMEOUT", "20", 1);
    comm = rdt_test_create_or_die();

#define CALL(what, expr)                                                                           \
    do {                                                                                           \
        st = (expr);                                                                               \
        if (st != RDT_SUCCESS) {                                                                   \
            fprintf(stderr, "rank %d: %s: %s: %s\n", rank, what, rdt_status_str(st),               \
                    rdt_comm_last_error(comm));                                                    \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

    /* allreduce sum */
    for (i = 0; i < N; i++) {
        in[i] = rank * 7 + i % 13;
        want[i] = 7 * p * (p - 1) / 2 + p * (i % 13);
    }
    CALL("allreduce", rdt_allreduce(comm, in, out, N, RDT_INT32, RDT_SUM));
    bad |= expect_i32("allreduce", rank, out, want, N);
    /* broadcast from the last rank */
    for (i = 0; i < N; i++) {
        in[i] = rank == p - 1 ? 3 * i + 1 : -1;
        want[i] = 3 * i + 1;
    }
    CALL("broadcast", rdt_broadcast(comm, in, out, N, RDT_INT32, p - 1));
    bad |= expect_i32("broadcast", rank, out, want, N);
    /* allgather */
    for (i = 0; i < G; i++)
        in[i] = rank * 1000 + i;
    for (r = 0; r < p; r++)
        for (i = 0; i < G; i++)
            want[r * G + i] = r * 1000 + i;
    CALL("allgather", rdt_allgather(comm, in, out, G, RDT_INT32));
    bad |= expect_i32("allgather", rank, out, want, (size_t)p * G);
    /* reduce max to rank 0 */
    for (i = 0; i < N; i++) {
        in[i] = (rank * 31 + i) % 97;
        want[i] = 0;
        for (r = 0; r < p; r++)
            want[i] = (r * 31 + i) % 97 > want[i] ? (r * 31 + i) % 97 : want[i];
    }
    CALL("reduce", rdt_reduce(comm, in, out, N, RDT_INT32, RDT_MAX, 0));
    if (rank == 0)
        bad |= expect_i32("reduce", rank, out, want, N);
    /* reduce_scatter sum */
    for (j = 0; j < p; j++)
        for (i = 0; i < RS; i++)
            in[j * RS + i] = rank + j * 2 + i;
    for (i = 0; i < RS; i++)
        want[i] = p * (p - 1) / 2 + p * (rank * 2 + i);
    CALL("reduce_scatter", rdt_reduce_scatter(comm, in, out, RS, RDT_INT32, RDT_SUM));
    bad |= expect_i32("reduce_scatter", rank, out, want, RS);
    /* alltoall */
    for (j = 0; j < p; j++)
        for (i = 0; i < A2A; i++) {
            in[j * A2A + i] = rank * 10000 + j * 100 + i;
            want[j * A2A + i] = j * 10000 + rank * 100 + i;
        }
    CALL("alltoall", rdt_alltoall(comm, in, out, A2A, RDT_INT32));
    bad |= expect_i32("alltoall", rank, out, want, (size_t)p * A2A);
    CALL("barrier", rdt_barrier(comm));
    CALL("allreduce of 0 elements", rdt_allreduce(comm, in, out, 0, RDT_INT32, RDT_SUM));
    /* nonblocking, three in flight */
    for (i = 0; i < NB; i++)
        in64[i] = (int64_t)rank << 33 | i;
    for (i = 0; i < 300; i++)
        inf[i] = rank == 0 ? i * 0.5 : -1.0;
    CALL("iallreduce", rdt_iallreduce(comm, in64, out64, NB, RDT_INT64, RDT_SUM, &reqs[0]));
    CALL("ibroadcast", rdt_ibroadcast(comm, inf, outf, 300, RDT_FLOAT64, 0, &reqs[1]));
    CALL("ibarrier", rdt_ibarrier(comm, &reqs[2]));
    CALL("waitall", rdt_waitall(3, reqs));
    for (i = 0; i < NB; i++) {
        int64_t w = ((int64_t)p * (p - 1) / 2) << 33 | 0;
        w += (int64_t)p * i;
        if (out64[i] != w) {
            fprintf(stderr, "rank %d: iallreduce element %d wrong\n", rank, i);
            bad = 1;
            break;
        }
    }
    for (i = 0; i < 300; i++) {
        if (outf[i] != i * 0.5) {
            fprintf(stderr, "rank %d: ibroadcast element %d wrong\n", rank, i);
            bad = 1;
            break;
        }
    }
#undef CALL
    rdt_comm_destroy(comm);
    free(in);
    free(out);
    free(want);
    return bad | rdt_test_leaks(rank);
}

static void test_check_a_matching_sequence_of_every_collective_is_exact(void **state)
{
    run_ranks(2, body_check_sequence, NULL);
    run_ranks(3, body_check_sequence, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Without RDT_CHECK: a count mismatch fails every rank, fast, within its buffers               */
/* ------------------------------------------------------------------------------------------ */

#define NOCHECK_TIMEOUT_S 5.0
#define NOCHECK_BOUND_S   2.5 /* "well within" the timeout */

/* Per rank, in memory shared with the parent: the status, and whether it came from the call. */
typedef struct outcome {
    int status;
    int in_call;
} outcome_t;
static outcome_t *g_outcomes;
static int g_direct; /* buffers from rdt_mem_alloc, RDT_SHM_DIRECT=1: the calls are direct */

static int body_count_mismatch(int rank, int p, void *arg)
{
    const job_t *job = arg;
    int short_rank = job->short_rank < 0 ? p - 1 : job->short_rank;
    size_t n = rank == short_rank ? COUNT - 1 : COUNT, bytes = COUNT * 4 + PAD;
    unsigned char *in = NULL, *out = NULL;
    call_t c = {job->kind, RDT_FLOAT32, RDT_SUM, n, 0};
    rdt_comm_t *comm;
    rdt_status_t st;
    double t0, dt;
    int bad = 0, in_call = 1;

    unsetenv("RDT_CHECK");
    setenv("RDT_TIMEOUT", "5", 1);
    if (!(in = rdt_test_alloc(bytes, g_direct)) || !(out = rdt_test_alloc(bytes, g_direct)))
        return 1;
    comm = rdt_test_create_or_die();
    memset(in, 0, bytes);
    memset(out, POISON, bytes);
    t0 = now_s();
    st = issue(comm, &c, in, out, NULL);
    if (st == RDT_SUCCESS) {
        /* a rank that only sent may not know yet: its next call must fail */
        in_call = 0;
        st = rdt_barrier(comm);
    }
    dt = now_s() - t0;
    fprintf(stderr, "rank %d (%s x %zu, expected error %s after %.3f s): %s: %s\n", rank,
            kind_names[job->kind], n, in_call ? "in the call" : "in the next call", dt,
            rdt_status_str(st), rdt_comm_last_error(comm));
    g_outcomes[rank].status = st;
    g_outcomes[rank].in_call = in_call;
    if (st == RDT_SUCCESS) {
        fprintf(stderr, "rank %d: the count mismatch went unnoticed\n", rank);
        bad = 1;
    }
    if (dt > NOCHECK_BOUND_S) {
        fprintf(stderr, "rank %d: failed after %.2f s, not well within the %g s timeout\n", rank,
                dt, NOCHECK_TIMEOUT_S);
        bad = 1;
    }
    if (!all_poisoned(out + n * 4, bytes - n * 4)) {
        fprintf(stderr, "rank %d: bytes past its count of %zu were written\n", rank, n);
        bad = 1;
    }
    if (!strstr(rdt_comm_last_error(comm), "rank")) {
        fprintf(stderr, "rank %d: the error does not name a rank\n", rank);
        bad = 1;
    }
    /* abort twice on the failed communicator is harmless; then a fresh one in this process
     * works (and nothing leaks: rdt_test_leaks()) */
    rdt_comm_abort(comm);
    rdt_comm_abort(comm);
    rdt_comm_destroy(comm);
    comm = rdt_test_create_or_die();
    bad |= still_usable(comm, rank, p);
    rdt_comm_destroy(comm);
    rdt_test_free(in, g_direct);
    rdt_test_free(out, g_direct);
    return bad | rdt_test_leaks(rank);
}

static void run_count_mismatch(int kind, int short_rank)
{
    job_t job = {.kind = kind, .short_rank = short_rank};
    int p, r, mismatch;

    g_outcomes = mmap(NULL, sizeof(outcome_t) * MAX_RANKS, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(g_outcomes != MAP_FAILED);
    for (p = 2; p <= 3; p++) {
        int t;
        for (t = 0; t < 3; t++) {
            /* shm twice: one-shot exchanges (COUNT floats are small), then direct calls */
            static const char *const transports[] = {"tcp", "shm", "shm"};
            int st[MAX_RANKS], rc, i;
            memset(g_outcomes, 0, sizeof(outcome_t) * MAX_RANKS);
            setenv("RDT_TRANSPORT", transports[t], 1);
            g_direct = t == 2;
            setenv("RDT_SHM_DIRECT", g_direct ? "1" : "0", 1);
            fprintf(stderr, "# %d ranks over %s%s\n", p, transports[t],
                    g_direct ? ", direct" : "");
            rc = rdt_spawn_local(p, body_count_mismatch, &job, SPAWN_TIMEOUT_S, st);
            for (i = 0; i < p; i++)
                if (st[i] != 0)
                    fprintf(stderr, "rank %d of %d exited with status %d\n", i, p, st[i]);
            assert_int_equal(rc, 0);
            /* somebody saw the mismatch itself (the others may see it as a failed peer) */
            mismatch = 0;
            for (r = 0; r < p; r++)
                mismatch |= g_outcomes[r].status == RDT_ERR_MISMATCH;
            assert_true(mismatch);
            /* in an allreduce every rank receives from a rank that disagrees, or that gave up:
             * all fail in the call itself (in a broadcast the root and a rank forwarding to the
             * short one may complete first, and fail in their next call, checked above) */
            for (r = 0; r < p; r++)
                if (kind == K_ALLREDUCE)
                    assert_true(g_outcomes[r].in_call);
            /* the short rank receives in both (unless it is the root) */
            if (kind == K_ALLREDUCE || short_rank != 0)
                assert_true(g_outcomes[short_rank < 0 ? p - 1 : short_rank].in_call);
        }
    }
    g_direct = 0;
    unsetenv("RDT_SHM_DIRECT");
    munmap(g_outcomes, sizeof(outcome_t) * MAX_RANKS);
}

static void test_without_check_an_allreduce_count_mismatch_fails_every_rank_fast(void **state)
{
    run_count_mismatch(K_ALLREDUCE, -1);
}

static void test_without_check_a_broadcast_to_a_shorter_rank_fails_every_rank_fast(void **state)
{
    run_count_mismatch(K_BROADCAST, -1);
}

static void test_without_check_a_broadcast_from_a_shorter_root_fails_every_rank_fast(void **state)
{
    run_count_mismatch(K_BROADCAST, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_different_collectives_fail_every_rank_naming_both),
        cmocka_unit_test(test_check_different_dtypes_fail_every_rank_naming_each),
        cmocka_unit_test(test_check_different_ops_fail_every_rank_naming_both),
        cmocka_unit_test(test_check_different_counts_fail_every_rank_naming_both),
        cmocka_unit_test(test_check_different_roots_fail_every_rank_naming_both),
        cmocka_unit_test(test_check_iallreduce_against_ibroadcast_fails_only_that_request),
        cmocka_unit_test(test_check_a_matching_sequence_of_every_collective_is_exact),
        cmocka_unit_test(test_without_check_an_allreduce_count_mismatch_fails_every_rank_fast),
        cmocka_unit_test(test_without_check_a_broadcast_to_a_shorter_rank_fails_every_rank_fast),
        cmocka_unit_test(test_without_check_a_broadcast_from_a_shorter_root_fails_every_rank_fast),
    };
    unsetenv("RDT_CHECK");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
