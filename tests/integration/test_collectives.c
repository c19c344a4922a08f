/*
 * test_collectives.c - every collective over real processes on loopback TCP, and over verbs.
 *
 * Each test starts N ranks (tools/spawn.h). Every rank computes the inputs of all ranks from a
 * formula, so it can compute the expected result of each collective itself, with plain scalar
 * loops that share no code with the library, and compares it bit for bit with what it received.
 * A rank exits 0 only if everything matched; the parent test asserts every exit status.
 *
 * One executable, several ctest entries (tests/CMakeLists.txt):
 *   test_collectives          the default suite, RDT_TRANSPORT left as it is: shared memory
 *                             between these ranks by default, loopback TCP in
 *                             test_collectives_tcp
 *   test_collectives --mapped buffers from rdt_mem_alloc on shared memory: direct collectives
 *   test_collectives --staged malloc'd buffers on shared memory, every allreduce staged, then
 *                             one-shot above RDT_SHM_ONESHOT (RDT_SHM_ONESHOT_ALLREDUCE)
 *   test_collectives --large  the 16 MiB and odd large sizes over TCP (label slow)
 *   test_collectives --verbs  RDT_TRANSPORT=verbs on the RDMA device (label softroce): every
 *                             collective on 2, 3 and 4 ranks, in place and out of place, sizes 0
 *                             to 16 MiB with odd ones, operations in flight, faults; exits 77
 *                             (skipped) without a device, fails instead under
 *                             RDT_TEST_REQUIRE_RDMA=1 (rdt_test_require_rdma(), testutil.h).
 *   test_collectives --verbs --skip '*16mib*'  the same under RDT_IB_CM=rdmacm (queue pairs
 *                             connected through librdmacm) without the three long batteries:
 *                             the data path is the same, the setup is what differs (--skip
 *                             PATTERN: cmocka_set_skip_filter, * and ? as wildcards).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rdmatrain.h"
#include "spawn.h"
#include "testutil.h"

#define SPAWN_TIMEOUT_S 240

/* ------------------------------------------------------------------------------------------ */
/* Values and the reference                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* bfloat16 from float, round to nearest even (reference path, independent of the library). */
static uint16_t ref_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* Input element i of rank r: small integers, so every sum and product is exact in every type. */
static int64_t input_value(int r, size_t i, rdt_op_t op, int seed)
{
    if (op == RDT_PROD)
        return 1 + (int64_t)(((size_t)r * 5 + i * 3 + (size_t)seed) % 4 == 0);
    return (int64_t)(((size_t)r * 13 + i * 7 + (size_t)seed) % 9) - 4;
}

static int is_unsigned(rdt_dtype_t t)
{
    return t == RDT_UINT8 || t == RDT_UINT32 || t == RDT_UINT64;
}

/* Store integer value v into element i of buf as dtype t (unsigned types take v + 4 >= 0). */
static void store(void *buf, size_t i, rdt_dtype_t t, int64_t v)
{
    if (is_unsigned(t) && v < 0)
        v += 4;
    switch (t) {
    case RDT_INT8: ((int8_t *)buf)[i] = (int8_t)v; break;
    case RDT_UINT8: ((uint8_t *)buf)[i] = (uint8_t)v; break;
    case RDT_INT32: ((int32_t *)buf)[i] = (int32_t)v; break;
    case RDT_UINT32: ((uint32_t *)buf)[i] = (uint32_t)v; break;
    case RDT_INT64: ((int64_t *)buf)[i] = v; break;
    case RDT_UINT64: ((uint64_t *)buf)[i] = (uint64_t)v; break;
    case RDT_FLOAT16: {
        _Float16 h = (_Float16)v;
        memcpy((char *)buf + 2 * i, &h, 2);
        break;
    }
    case RDT_BFLOAT16: {
        uint16_t h = ref_f32_to_bf16((float)v);
        memcpy((char *)buf + 2 * i, &h, 2);
        break;
    }
    case RDT_FLOAT32: ((float *)buf)[i] = (float)v; break;
    case RDT_FLOAT64: ((double *)buf)[i] = (double)v; break;
    default: break;
    }
}

static int64_t in_value(int r, size_t i, rdt_dtype_t t, rdt_op_t op, int seed)
{
    int64_t v = input_value(r, i, op, seed);
    if (is_unsigned(t) && v < 0)
        v += 4;
    return v;
}

/* Expected element: the reduction of all ranks' values, written into buf[i] as dtype t. */
static void store_reduced(void *buf, size_t i, rdt_dtype_t t, rdt_op_t op, int p, size_t src_i,
                          int seed)
{
    int64_t acc = in_value(0, src_i, t, op, seed);
    int r;

    for (r = 1; r < p; r++) {
        int64_t v = in_value(r, src_i, t, op, seed);
        switch (op) {
        case RDT_SUM: case RDT_AVG: acc += v; break;
        case RDT_PROD: acc *= v; break;
        case RDT_MIN: acc = v < acc ? v : acc; break;
        case RDT_MAX: acc = v > acc ? v : acc; break;
        default: break;
        }
    }
    if (op != RDT_AVG) {
        /* wrap like the library's integer arithmetic: store truncates to the width */
        switch (t) {
        case RDT_INT8: ((int8_t *)buf)[i] = (int8_t)(uint8_t)acc; return;
        case RDT_UINT8: ((uint8_t *)buf)[i] = (uint8_t)acc; return;
        default: store(buf, i, t, acc); return;
        }
    }
    /* AVG: the sum divided by p in the type's own arithmetic */
    switch (t) {
    case RDT_INT8: ((int8_t *)buf)[i] = (int8_t)((int8_t)acc / p); break;
    case RDT_UINT8: ((uint8_t *)buf)[i] = (uint8_t)((uint8_t)acc / (unsigned)p); break;
    case RDT_INT32: ((int32_t *)buf)[i] = (int32_t)acc / p; break;
    case RDT_UINT32: ((uint32_t *)buf)[i] = (uint32_t)acc / (uint32_t)p; break;
    case RDT_INT64: ((int64_t *)buf)[i] = acc / p; break;
    case RDT_UINT64: ((uint64_t *)buf)[i] = (uint64_t)acc / (uint64_t)p; break;
    case RDT_FLOAT16: {
        _Float16 h = (_Float16)((float)acc / (float)p);
        memcpy((char *)buf + 2 * i, &h, 2);
        break;
    }
    case RDT_BFLOAT16: {
        uint16_t h = ref_f32_to_bf16((float)acc / (float)p);
        memcpy((char *)buf + 2 * i, &h, 2);
        break;
    }
    case RDT_FLOAT32: ((float *)buf)[i] = (float)acc / (float)p; break;
    case RDT_FLOAT64: ((double *)buf)[i] = (double)acc / (double)p; break;
    default: break;
    }
}

static void fill_input(void *buf, size_t n, int r, rdt_dtype_t t, rdt_op_t op, int seed,
                       size_t first)
{
    size_t i;
    for (i = 0; i < n; i++)
        store(buf, i, t, input_value(r, first + i, op, seed));
}

/* ------------------------------------------------------------------------------------------ */
/* One collective case: prepare buffers and the expected result, issue, check                   */
/* ------------------------------------------------------------------------------------------ */

/* C_COUNT collectives move data; C_BARRIER (no buffers, nothing to compare but its status and
 * its place in the order of requests) comes after them. */
enum { C_ALLREDUCE, C_REDUCE_SCATTER, C_ALLGATHER, C_BROADCAST, C_REDUCE, C_ALLTOALL, C_COUNT };
#define C_BARRIER C_COUNT
static const char *const coll_names[C_COUNT + 1] = {"allreduce", "reduce_scatter", "allgather",
                                                    "broadcast", "reduce", "alltoall", "barrier"};

/* Where case buffers come from: malloc (0), rdt_mem_alloc (1, --mapped: direct collectives),
 * or rdt_mem_alloc except on rank 1 (2: a rank whose buffers cannot be mapped, so every rank
 * must agree to run the schedules). */
static int g_alloc_mode;

static void case_free(void *p, int mapped)
{
    if (rdt_test_free(p, mapped) != 0)
        fail_msg("rdt_mem_free: %s", rdt_comm_last_error(NULL));
}

typedef struct tcase {
    int coll;
    size_t count;
    rdt_dtype_t t;
    rdt_op_t op;
    int in_place;
    int root;
    int seed;
    /* buffers */
    unsigned char *in;   /* allocation holding the input (out of place) */
    unsigned char *out;  /* allocation holding the output (and the input, in place) */
    unsigned char *exp;  /* expected bytes of the result region */
    const void *sendbuf;
    void *recvbuf;
    unsigned char *result; /* where the result region starts */
    size_t result_bytes;
    int mapped;            /* in and out come from rdt_mem_alloc */
} tcase_t;

static void tcase_prepare(tcase_t *c, int r, int p)
{
    size_t es = rdt_dtype_size(c->t), n = c->count, i;
    size_t in_elems = (c->coll == C_REDUCE_SCATTER || c->coll == C_ALLTOALL) ? n * p : n;
    size_t out_elems = (c->coll == C_ALLGATHER || c->coll == C_ALLTOALL) ? n * p : n;
    size_t total = (in_elems > out_elems ? in_elems : out_elems) + 1;
    int q;

    c->mapped = g_alloc_mode == 1 || (g_alloc_mode == 2 && r != 1);
    c->in = rdt_test_alloc(total * es, c->mapped);
    c->out = rdt_test_alloc(total * es, c->mapped);
    c->exp = malloc(total * es);
    assert_non_null(c->in);
    assert_non_null(c->out);
    assert_non_null(c->exp);
    memset(c->out, 0x5a, total * es); /* garbage: an element never written shows up */
    fill_input(c->in, in_elems, c->coll == C_BROADCAST ? c->root : r, c->t, c->op, c->seed, 0);

    /* expected result */
    switch (c->coll) {
    case C_ALLREDUCE:
    case C_REDUCE:
        for (i = 0; i < n; i++)
            store_reduced(c->exp, i, c->t, c->op, p, i, c->seed);
        c->result_bytes = n * es;
        break;
    case C_REDUCE_SCATTER:
        for (i = 0; i < n; i++)
            store_reduced(c->exp, i, c->t, c->op, p, (size_t)r * n + i, c->seed);
        c->result_bytes = n * es;
        break;
    case C_ALLGATHER:
        for (q = 0; q < p; q++)
            fill_input(c->exp + (size_t)q * n * es, n, q, c->t, c->op, c->seed, 0);
        c->result_bytes = (size_t)p * n * es;
        break;
    case C_BROADCAST:
        fill_input(c->exp, n, c->root, c->t, c->op, c->seed, 0);
        c->result_bytes = n * es;
        break;
    case C_ALLTOALL:
        for (q = 0; q < p; q++)
            fill_input(c->exp + (size_t)q * n * es, n, q, c->t, c->op, c->seed, (size_t)r * n);
        c->result_bytes = (size_t)p * n * es;
        break;
    case C_BARRIER:
        c->result_bytes = 0;
        break;
    }

    /* buffers as the API wants them */
    if (!c->in_place) {
        c->sendbuf = c->in;
        c->recvbuf = c->out;
        c->result = c->out;
        if (c->coll == C_REDUCE && r != c->root) {
            c->recvbuf = NULL; /* non-roots may pass NULL */
            c->result_bytes = 0;
        }
        if (c->coll == C_BROADCAST && r != c->root)
            c->sendbuf = NULL;
        return;
    }
    switch (c->coll) {
    case C_ALLGATHER: /* this rank's slot of recvbuf holds its input */
        memcpy(c->out + (size_t)r * n * es, c->in, n * es);
        c->sendbuf = c->out + (size_t)r * n * es;
        c->recvbuf = c->out;
        c->result = c->out;
        break;
    case C_REDUCE_SCATTER: /* recvbuf is this rank's slot of sendbuf */
        memcpy(c->out, c->in, in_elems * es);
        c->sendbuf = c->out;
        c->recvbuf = c->out + (size_t)r * n * es;
        c->result = c->recvbuf;
        break;
    default:
        memcpy(c->out, c->in, in_elems * es);
        c->sendbuf = c->out;
        c->recvbuf = c->out;
        c->result = c->out;
        if (c->coll == C_REDUCE && r != c->root)
            c->result_bytes = 0;
        break;
    }
}

static rdt_status_t tcase_issue(tcase_t *c, rdt_comm_t *comm, rdt_request_t **req)
{
    size_t n = c->count;
    switch (c->coll) {
    case C_ALLREDUCE:
        return req ? rdt_iallreduce(comm, c->sendbuf, c->recvbuf, n, c->t, c->op, req)
                   : rdt_allreduce(comm, c->sendbuf, c->recvbuf, n, c->t, c->op);
    case C_REDUCE_SCATTER:
        return req ? rdt_ireduce_scatter(comm, c->sendbuf, c->recvbuf, n, c->t, c->op, req)
                   : rdt_reduce_scatter(comm, c->sendbuf, c->recvbuf, n, c->t, c->op);
    case C_ALLGATHER:
        return req ? rdt_iallgather(comm, c->sendbuf, c->recvbuf, n, c->t, req)
                   : rdt_allgather(comm, c->sendbuf, c->recvbuf, n, c->t);
    case C_BROADCAST:
        return req ? rdt_ibroadcast(comm, c->sendbuf, c->recvbuf, n, c->t, c->root, req)
                   : rdt_broadcast(comm, c->sendbuf, c->recvbuf, n, c->t, c->root);
    case C_REDUCE:
        return req ? rdt_ireduce(comm, c->sendbuf, c->recvbuf, n, c->t, c->op, c->root, req)
                   : rdt_reduce(comm, c->sendbuf, c->recvbuf, n, c->t, c->op, c->root);
    case C_BARRIER:
        return req ? rdt_ibarrier(comm, req) : rdt_barrier(comm);
    default:
        return req ? rdt_ialltoall(comm, c->sendbuf, c->recvbuf, n, c->t, req)
                   : rdt_alltoall(comm, c->sendbuf, c->recvbuf, n, c->t);
    }
}

static void tcase_describe(const tcase_t *c, int r, char *buf, size_t len)
{
    snprintf(buf, len, "rank %d: %s %s %s x %zu root %d %s seed %d", r, coll_names[c->coll],
             rdt_dtype_name(c->t), rdt_op_name(c->op), c->count, c->root,
             c->in_place ? "in place" : "out of place", c->seed);
}

/* 0 if the result matches the reference bit for bit. */
static int tcase_check(const tcase_t *c, int r)
{
    size_t es = rdt_dtype_size(c->t), i;
    char what[160];

    if (!c->result_bytes || memcmp(c->result, c->exp, c->result_bytes) == 0)
        return 0;
    for (i = 0; i < c->result_bytes && c->result[i] == c->exp[i]; i++)
        ;
    tcase_describe(c, r, what, sizeof(what));
    fprintf(stderr, "%s: wrong element %zu (byte %zu): got %02x expected %02x\n", what, i / es, i,
            c->result[i], c->exp[i]);
    return 1;
}

static void tcase_free(tcase_t *c)
{
    case_free(c->in, c->mapped);
    case_free(c->out, c->mapped);
    free(c->exp);
}

/* Mappings of rdt_mem_alloc memory in this process. */
static int mapped_allocations(void)
{
    return rdt_test_maps_count("/memfd:rdt-mem.");
}

/* Run one case with a blocking call; 0 if right. */
static int run_case(rdt_comm_t *comm, tcase_t *c)
{
    int r = rdt_comm_rank(comm), bad;
    rdt_status_t st;

    tcase_prepare(c, r, rdt_comm_size(comm));
    st = tcase_issue(c, comm, NULL);
    if (st != RDT_SUCCESS) {
        char what[160];
        tcase_describe(c, r, what, sizeof(what));
        fprintf(stderr, "%s: %s: %s\n", what, rdt_status_str(st), rdt_comm_last_error(comm));
        tcase_free(c);
        return 1;
    }
    bad = tcase_check(c, r);
    tcase_free(c);
    return bad;
}

static int is_reduction(int coll)
{
    return coll == C_ALLREDUCE || coll == C_REDUCE_SCATTER || coll == C_REDUCE;
}

/* ------------------------------------------------------------------------------------------ */
/* Rank bodies                                                                                  */
/* ------------------------------------------------------------------------------------------ */

typedef struct job {
    const char *algo;  /* RDT_ALGO for the ranks, or NULL */
    int big;           /* include 1 MiB + 3 elements */
    int all_types;     /* every dtype and op at the small sizes */
    int large;         /* include 1 MiB + 3 bytes and 16 MiB (battery_large) */
    int only_large;    /* only the large sizes (the small ones run in the default suite) */
    const char *hosts; /* RDT_HOSTNAME of rank r: character r of this string (faked hosts) */
    uint64_t rng_seed; /* random counts; set by run_job */
    int no_broadcast;  /* leave broadcast out */
    int maps;          /* before destroying the communicator, the peers' allocations mapped
                        * here must be: 1 some (direct collectives ran), -1 none, 0 unchecked */
    int staged;        /* and its staged allreduces: 1 some, -1 none, 0 unchecked */
    int oneshot_ar;    /* and its one-shot allreduces above RDT_SHM_ONESHOT: the same */
    int allreduce_only; /* leave the other collectives out */
} job_t;

/* Collectives whose count is per rank block (the vector is nranks * count). */
static int per_rank_blocks(int coll)
{
    return coll == C_REDUCE_SCATTER || coll == C_ALLGATHER || coll == C_ALLTOALL;
}

/*
 * The large sizes of one collective, in place and out of place, with sum:
 * - 1 MiB + 3 bytes (uint8: an odd byte count; per rank for the per-block collectives),
 * - 16 MiB of float32: the whole vector, so 4 Mi elements for allreduce, broadcast and reduce,
 *   and for allgather, reduce_scatter and alltoall 16 MiB / nranks per rank, made odd.
 */
static int battery_large(rdt_comm_t *comm, int coll, int *seed)
{
    int p = rdt_comm_size(comm), bad = 0, k, ip;

    for (k = 0; k < 2; k++) {
        for (ip = 0; ip < 2; ip++) {
            tcase_t c;
            memset(&c, 0, sizeof(c));
            c.coll = coll;
            c.op = RDT_SUM;
            if (k == 0) {
                c.t = RDT_UINT8;
                c.count = (1u << 20) + 3;
            } else {
                c.t = RDT_FLOAT32;
                c.count = (16u << 20) / 4;
                if (per_rank_blocks(coll)) {
                    c.count /= (size_t)p;
                    if (p > 1 && c.count % 2 == 0)
                        c.count--;
                }
            }
            c.in_place = ip;
            c.root = *seed % p;
            c.seed = (*seed)++;
            bad |= run_case(comm, &c);
        }
    }
    return bad;
}

/* Every collective, sizes 0, 1, 7, 1023, 4097 (and 1 MiB + 3, and the large ones), in place and
 * not, dtypes and ops. */
static int body_battery(int rank, int nranks, void *arg)
{
    const job_t *job = arg;
    /* 0, 1, 7, 1023, 4097 and two random counts (the seed comes from the parent and is printed,
     * so a failure can be replayed with RDT_TEST_SEED) */
    size_t sizes[7] = {0, 1, 7, 1023, 4097};
    size_t nsizes = job->only_large ? 0 : sizeof(sizes) / sizeof(sizes[0]);
    uint64_t rng = job->rng_seed;
    rdt_comm_t *comm;
    int bad = 0, coll, ip, seed = 1;
    size_t si;

    if (job->algo)
        setenv("RDT_ALGO", job->algo, 1);
    if (job->hosts) {
        char host[8] = {'h', job->hosts[rank], 0};
        setenv("RDT_HOSTNAME", host, 1);
    }
    setenv("RDT_TIMEOUT", "60", 1);
    comm = rdt_test_create_or_die();
    sizes[5] = 2 + rdt_test_rand(&rng) % 5000;
    sizes[6] = 5000 + rdt_test_rand(&rng) % 300000;
    for (coll = 0; coll < C_COUNT; coll++) {
        if ((coll == C_BROADCAST && job->no_broadcast) ||
            (coll != C_ALLREDUCE && job->allreduce_only))
            continue;
        for (si = 0; si < nsizes + (job->big && !job->only_large ? 1 : 0); si++) {
            int big = si == nsizes;
            int t, op;
            for (t = 0; t < RDT_DTYPE_COUNT; t++) {
                if ((!job->all_types || big) && t != RDT_FLOAT32 && !(big && t == RDT_BFLOAT16))
                    continue;
                for (op = 0; op < RDT_OP_COUNT; op++) {
                    if (op > 0 && (!is_reduction(coll) || !job->all_types || big))
                        continue;
                    for (ip = 0; ip < 2; ip++) {
                        tcase_t c;
                        memset(&c, 0, sizeof(c));
                        c.coll = coll;
                        c.t = t;
                        c.op = op;
                        c.count = big ? (1u << 20) / rdt_dtype_size(t) + 3 : sizes[si];
                        if (c.count > 5000 && t != RDT_FLOAT32 && t != RDT_INT64)
                            continue; /* large random counts: two types are enough */
                        c.in_place = ip;
                        c.root = (int)((si + (size_t)seed) % (size_t)nranks);
                        c.seed = seed++;
                        bad |= run_case(comm, &c);
                    }
                }
            }
        }
        if (job->large)
            bad |= battery_large(comm, coll, &seed);
        if (rdt_barrier(comm) != RDT_SUCCESS) {
            fprintf(stderr, "rank %d: barrier: %s\n", rank, rdt_comm_last_error(comm));
            bad = 1;
        }
    }
    if (job->staged || job->oneshot_ar) {
        uint64_t direct, staged, oneshot;
        rdt_test_comm_paths(comm, &direct, &staged, &oneshot);
        if (job->staged && (staged > 0) != (job->staged > 0)) {
            fprintf(stderr, "rank %d: %llu staged allreduces ran, expected %s\n", rank,
                    (unsigned long long)staged, job->staged > 0 ? "some" : "none");
            bad = 1;
        }
        if (job->oneshot_ar && (oneshot > 0) != (job->oneshot_ar > 0)) {
            fprintf(stderr, "rank %d: %llu one-shot allreduces above RDT_SHM_ONESHOT ran, "
                    "expected %s\n", rank, (unsigned long long)oneshot,
                    job->oneshot_ar > 0 ? "some" : "none");
            bad = 1;
        }
    }
    /* this rank freed its own allocations: what is mapped is the peers' (direct calls ran) */
    if (job->maps && (mapped_allocations() > 0) != (job->maps > 0)) {
        fprintf(stderr, "rank %d: %d mappings of peers' rdt_mem_alloc memory, expected %s\n",
                rank, mapped_allocations(), job->maps > 0 ? "some" : "none");
        bad = 1;
    }
    rdt_comm_destroy(comm);
    if (job->maps && mapped_allocations() != 0) {
        fprintf(stderr, "rank %d: %d mappings of peers' memory left after destroy\n", rank,
                mapped_allocations());
        bad = 1;
    }
    return bad;
}

static uint64_t test_seed(void)
{
    const char *s = getenv("RDT_TEST_SEED");
    static uint64_t seed;
    if (!seed)
        seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
    return seed;
}

static void run_job(int nranks, job_t *job, rdt_spawn_fn_t fn)
{
    int st[16], i, rc;
    assert_true(nranks <= 16);
    static int seed_shown;
    if (job) {
        job->rng_seed = test_seed() + (uint64_t)nranks;
        if (!seed_shown++)
            fprintf(stderr, "# random counts: RDT_TEST_SEED=%llu replays them\n",
                    (unsigned long long)test_seed());
    }
    rc = rdt_spawn_local(nranks, fn, job, SPAWN_TIMEOUT_S, st);
    for (i = 0; i < nranks; i++)
        if (st[i] != 0)
            fprintf(stderr, "rank %d of %d exited with status %d\n", i, nranks, st[i]);
    assert_int_equal(rc, 0);
}

static void test_every_collective_dtype_and_op_is_exact_on_2_ranks(void **state)
{
    job_t job = {.big = 1, .all_types = 1};
    run_job(2, &job, body_battery);
}

static void test_every_collective_dtype_and_op_is_exact_on_3_ranks(void **state)
{
    job_t job = {.big = 1, .all_types = 1};
    run_job(3, &job, body_battery);
}

static void test_every_collective_dtype_and_op_is_exact_on_4_ranks(void **state)
{
    job_t job = {.big = 1, .all_types = 1};
    run_job(4, &job, body_battery);
}

static void test_every_collective_dtype_and_op_is_exact_on_5_ranks(void **state)
{
    job_t job = {.big = 1, .all_types = 1};
    run_job(5, &job, body_battery);
}

static void test_every_collective_is_exact_on_8_ranks(void **state)
{
    job_t job = {.big = 1};
    run_job(8, &job, body_battery);
}

/* Every algorithm forced through RDT_ALGO, on 3 and 4 ranks (odd and power of two). */
static void forced_algorithms(int big)
{
    static const char *const algos[] = {
        "allreduce:ring",          "allreduce:recdbl",   "allreduce:rabenseifner",
        "allreduce:tree",          "reduce_scatter:ring", "reduce_scatter:rabenseifner",
        "allgather:ring",          "allgather:recdbl",   "broadcast:ring",
        "broadcast:tree",          "reduce:ring",        "reduce:tree"};
    size_t i;
    int p;
    for (p = 3; p <= 4; p++) {
        for (i = 0; i < sizeof(algos) / sizeof(algos[0]); i++) {
            job_t job = {.algo = algos[i], .big = big};
            run_job(p, &job, body_battery);
        }
    }
}

static void test_every_forced_algorithm_is_exact_on_3_and_4_ranks(void **state)
{
    forced_algorithms(1);
}

/* The hierarchical schedules through the executor, on hosts faked with RDT_HOSTNAME (shared
 * memory inside a host, TCP between, as a user's multi-host job): 2 hosts x 2 ranks, and 3 hosts
 * of 2, 1 and 2 ranks with their ranks interleaved. */
static void test_every_hierarchical_algorithm_is_exact_on_faked_hosts(void **state)
{
    static const char *const algos[] = {"allreduce:hier", "reduce_scatter:hier",
                                        "allgather:hier", "broadcast:hier", "reduce:hier"};
    static const struct {
        int p;
        const char *hosts;
    } shapes[] = {{4, "0011"}, {5, "01202"}};
    size_t i, k;
    for (k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++)
        for (i = 0; i < sizeof(algos) / sizeof(algos[0]); i++) {
            job_t job = {.algo = algos[i], .big = 1, .hosts = shapes[k].hosts};
            run_job(shapes[k].p, &job, body_battery);
        }
}

/* Several nonblocking operations in flight on one communicator, and two communicators (the world
 * and a split of it in reverse order) used at once: every collective and barriers, every fourth
 * one 100003 elements, or with job->large 1 Mi + 5 (4 MiB + 20 bytes per rank; 4 MiB + 20 bytes
 * times nranks for allgather and alltoall). */
static int body_nonblocking(int rank, int nranks, void *arg)
{
    enum { K = 14 };
    const job_t *job = arg;
    rdt_comm_t *comm = rdt_test_create_or_die(), *rev = NULL;
    rdt_request_t *reqs[K];
    tcase_t cases[K];
    int bad = 0, k;
    rdt_status_t st;

    st = rdt_comm_split(comm, 0, nranks - 1 - rank, &rev);
    if (st != RDT_SUCCESS || rdt_comm_rank(rev) != nranks - 1 - rank ||
        rdt_comm_size(rev) != nranks) {
        fprintf(stderr, "rank %d: split: %s %s\n", rank, rdt_status_str(st),
                rdt_comm_last_error(comm));
        return 1;
    }
    memset(cases, 0, sizeof(cases));
    for (k = 0; k < K; k++) {
        rdt_comm_t *c = (k % 3 == 2) ? rev : comm;
        tcase_t *tc = &cases[k];
        tc->coll = k % (C_COUNT + 1); /* C_BARRIER included */
        tc->t = (k & 1) ? RDT_FLOAT32 : RDT_INT32;
        tc->op = (k % 4 == 3) ? RDT_MAX : RDT_SUM;
        tc->count = (k % 4 == 0) ? (job && job->large ? (1u << 20) + 5 : 100003)
                                 : (size_t)(k * 37 + 1);
        if (tc->coll == C_BARRIER)
            tc->count = 0;
        tc->in_place = k % 2;
        tc->root = k % nranks;
        tc->seed = 100 + k;
        tcase_prepare(tc, rdt_comm_rank(c), nranks);
        st = tcase_issue(tc, c, &reqs[k]);
        if (st != RDT_SUCCESS) {
            fprintf(stderr, "rank %d: issue %d: %s\n", rank, k, rdt_comm_last_error(c));
            return 1;
        }
    }
    /* test a few before waiting for all, so both paths run */
    for (k = 0; k < K; k += 5) {
        int done = 0;
        st = rdt_test(reqs[k], &done);
        if (st != RDT_SUCCESS) {
            fprintf(stderr, "rank %d: test %d: %s\n", rank, k, rdt_status_str(st));
            return 1;
        }
        if (done)
            reqs[k] = NULL;
    }
    st = rdt_waitall(K, reqs);
    if (st != RDT_SUCCESS) {
        fprintf(stderr, "rank %d: waitall: %s / %s\n", rank, rdt_comm_last_error(comm),
                rdt_comm_last_error(rev));
        return 1;
    }
    for (k = 0; k < K; k++) {
        rdt_comm_t *c = (k % 3 == 2) ? rev : comm;
        bad |= tcase_check(&cases[k], rdt_comm_rank(c));
        tcase_free(&cases[k]);
    }
    rdt_comm_destroy(rev);
    rdt_comm_destroy(comm);
    return bad;
}

static void test_many_nonblocking_operations_on_two_communicators_are_exact(void **state)
{
    int p;
    for (p = 2; p <= 5; p++)
        run_job(p, NULL, body_nonblocking);
}

/* Split by parity: each half runs an allreduce of its own; RDT_UNDEFINED opts out. */
static int body_split(int rank, int nranks, void *arg)
{
    rdt_comm_t *comm = rdt_test_create_or_die(), *half = NULL, *none = NULL;
    int bad = 0, color = rank % 2;
    tcase_t c;
    rdt_status_t st;

    st = rdt_comm_split(comm, color, rank, &half);
    if (st != RDT_SUCCESS || rdt_comm_size(half) != (nranks - color + 1) / 2 ||
        rdt_comm_rank(half) != rank / 2) {
        fprintf(stderr, "rank %d: split: %s\n", rank, rdt_comm_last_error(comm));
        return 1;
    }
    st = rdt_comm_split(comm, rank == 0 ? RDT_UNDEFINED : 7, 0, &none);
    if (st != RDT_SUCCESS || (rank == 0) != (none == NULL)) {
        fprintf(stderr, "rank %d: split undefined: %s\n", rank, rdt_comm_last_error(comm));
        return 1;
    }
    memset(&c, 0, sizeof(c));
    c.coll = C_ALLREDUCE;
    c.t = RDT_INT64;
    c.op = RDT_SUM;
    c.count = 5000;
    c.seed = 9;
    bad |= run_case(half, &c);
    if (none) {
        memset(&c, 0, sizeof(c));
        c.coll = C_ALLGATHER;
        c.t = RDT_UINT8;
        c.count = 33;
        c.seed = 10;
        bad |= run_case(none, &c);
    }
    /* the parent still works after its children */
    memset(&c, 0, sizeof(c));
    c.coll = C_ALLREDUCE;
    c.t = RDT_FLOAT64;
    c.op = RDT_MIN;
    c.count = 77;
    c.seed = 11;
    bad |= run_case(comm, &c);
    rdt_comm_destroy(none);
    rdt_comm_destroy(half);
    rdt_comm_destroy(comm);
    return bad;
}

static void test_split_communicators_work_beside_their_parent(void **state)
{
    run_job(5, NULL, body_split);
    run_job(2, NULL, body_split);
}

/* Point to point: a ring exchange of large messages with isend/irecv (every rank sends before it
 * receives, so the two must run together), blocking ping-pong, and p2p between collectives. */
static int body_p2p(int rank, int nranks, void *arg)
{
    rdt_comm_t *comm = rdt_test_create_or_die();
    size_t n = (4u << 20) / 4 + 3, i;
    int32_t *out = malloc(n * 4), *in = malloc(n * 4);
    int right = (rank + 1) % nranks, left = (rank + nranks - 1) % nranks, bad = 0, round;
    rdt_request_t *reqs[2];
    rdt_status_t st;
    tcase_t c;

    for (round = 0; round < 3; round++) {
        for (i = 0; i < n; i++)
            out[i] = (int32_t)(rank * 1000003 + (int)i + round);
        memset(in, 0, n * 4);
        st = rdt_isend(comm, out, n, RDT_INT32, right, &reqs[0]);
        if (st == RDT_SUCCESS)
            st = rdt_irecv(comm, in, n, RDT_INT32, left, &reqs[1]);
        if (st == RDT_SUCCESS)
            st = rdt_waitall(2, reqs);
        if (st != RDT_SUCCESS) {
            fprintf(stderr, "rank %d: ring exchange: %s\n", rank, rdt_comm_last_error(comm));
            return 1;
        }
        for (i = 0; i < n; i++) {
            if (in[i] != (int32_t)(left * 1000003 + (int)i + round)) {
                fprintf(stderr, "rank %d: ring exchange element %zu wrong\n", rank, i);
                return 1;
            }
        }
        /* a collective between point-to-point rounds keeps its order */
        memset(&c, 0, sizeof(c));
        c.coll = C_ALLREDUCE;
        c.t = RDT_INT32;
        c.count = 999;
        c.seed = round;
        bad |= run_case(comm, &c);
    }
    /* blocking ping-pong between ranks 0 and 1, sizes 0 .. 1 MiB */
    if (rank < 2) {
        size_t sizes[] = {0, 1, 8, 4097, 1u << 18};
        size_t k;
        for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
            int32_t *b = out;
            for (i = 0; i < sizes[k]; i++)
                b[i] = (int32_t)(i * 3 + k);
            if (rank == 0) {
                st = rdt_send(comm, b, sizes[k], RDT_INT32, 1);
                if (st == RDT_SUCCESS)
                    st = rdt_recv(comm, in, sizes[k], RDT_INT32, 1);
            } else {
                st = rdt_recv(comm, in, sizes[k], RDT_INT32, 0);
                if (st == RDT_SUCCESS)
                    st = rdt_send(comm, in, sizes[k], RDT_INT32, 0);
            }
            if (st != RDT_SUCCESS) {
                fprintf(stderr, "rank %d: ping-pong: %s\n", rank, rdt_comm_last_error(comm));
                return 1;
            }
            for (i = 0; i < sizes[k]; i++) {
                if (in[i] != (int32_t)(i * 3 + k)) {
                    fprintf(stderr, "rank %d: ping-pong %zu: element %zu wrong\n", rank,
                            sizes[k], i);
                    return 1;
                }
            }
        }
    }
    if (rdt_barrier(comm) != RDT_SUCCESS)
        bad = 1;
    free(out);
    free(in);
    rdt_comm_destroy(comm);
    return bad;
}

static void test_send_and_recv_exchange_large_messages_in_a_ring(void **state)
{
    run_job(2, NULL, body_p2p);
    run_job(5, NULL, body_p2p);
}

/* Abort from another thread unblocks a collective that can never finish. Rank 1 stays in the job
 * without calling anything until rank 0 is through (a pipe from the parent: rank 0 writes, or
 * exits), so nothing but the abort can end rank 0's wait; if the abort did not, the spawn deadline
 * kills both and the test fails. The elapsed time is printed, for information only. */
typedef struct abort_arg {
    rdt_comm_t *comm;
} abort_arg_t;

static void *abort_later(void *p)
{
    abort_arg_t *a = p;
    usleep(300 * 1000);
    rdt_comm_abort(a->comm);
    rdt_comm_abort(a->comm); /* twice is harmless */
    return NULL;
}

static int body_abort(int rank, int nranks, void *arg)
{
    const int *done_pipe = arg; /* [0] read end, [1] write end */
    rdt_comm_t *comm = rdt_test_create_or_die();
    float v[16] = {0};
    abort_arg_t a = {comm};
    pthread_t th;
    double t0, t1;
    struct timespec ts;
    rdt_status_t st;
    char c = 0;

    if (rank == 1) {
        /* never joins the allreduce; leaves once rank 0 is through (a byte, or end of file when
         * rank 0 exited without writing) */
        close(done_pipe[1]);
        while (read(done_pipe[0], &c, 1) < 0 && errno == EINTR) {
        }
        rdt_comm_destroy(comm);
        return 0;
    }
    close(done_pipe[0]);
    pthread_create(&th, NULL, abort_later, &a);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t0 = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
    st = rdt_allreduce(comm, v, v, 16, RDT_FLOAT32, RDT_SUM);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t1 = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
    pthread_join(th, NULL);
    fprintf(stderr, "rank 0 (expected error, after %.2f s, the abort came at 0.3 s): %s: %s\n",
            t1 - t0, rdt_status_str(st), rdt_comm_last_error(comm));
    if (st != RDT_ERR_ABORTED)
        return 1;
    /* later calls fail at once with the same status */
    if (rdt_allreduce(comm, v, v, 16, RDT_FLOAT32, RDT_SUM) != RDT_ERR_ABORTED)
        return 1;
    rdt_comm_abort(comm);
    rdt_comm_destroy(comm);
    if (write(done_pipe[1], &c, 1) != 1)
        return 1;
    return 0;
}

/* The parent's ends of the pipe: closed once the ranks run, so rank 1 sees end of file when rank
 * 0 is gone. */
static void close_pipe_hook(int nranks, const int *pids, void *arg)
{
    const int *fds = arg;
    close(fds[0]);
    close(fds[1]);
}

static void test_abort_from_another_thread_unblocks_a_waiting_collective(void **state)
{
    int fds[2], st[2], rc;

    assert_int_equal(pipe(fds), 0);
    rc = rdt_spawn_local_hook(2, body_abort, fds, SPAWN_TIMEOUT_S, st, close_pipe_hook, fds);
    if (rc != 0)
        fprintf(stderr, "ranks exited with %d and %d\n", st[0], st[1]);
    assert_int_equal(rc, 0);
}

/* A rank that never arrives: the others fail after RDT_TIMEOUT naming it. */
static int body_timeout(int rank, int nranks, void *arg)
{
    rdt_comm_t *comm;
    float v[4] = {0};
    rdt_status_t st;

    setenv("RDT_TIMEOUT", "1", 1);
    comm = rdt_test_create_or_die();
    if (rank == nranks - 1) {
        sleep(3);
        rdt_comm_destroy(comm);
        return 0;
    }
    st = rdt_allreduce(comm, v, v, 4, RDT_FLOAT32, RDT_SUM);
    fprintf(stderr, "rank %d (expected error): %s: %s\n", rank, rdt_status_str(st),
            rdt_comm_last_error(comm));
    rdt_comm_destroy(comm);
    return st == RDT_ERR_TIMEOUT || st == RDT_ERR_PEER_FAILED ? 0 : 1;
}

static void test_a_rank_that_never_arrives_times_out_with_a_clear_error(void **state)
{
    run_job(3, NULL, body_timeout);
}

/* Rank and rendezvous from the variables of Slurm, Open MPI and torchrun instead of RDT_*;
 * SRC_OMPI_IN_SLURM: mpirun inside a Slurm allocation, whose SLURM_* (one task, rank 0, another
 * job id) every rank inherits: Open MPI's variables must win. */
typedef enum { SRC_SLURM, SRC_OMPI, SRC_TORCHRUN, SRC_OMPI_IN_SLURM } env_source_t;

static int body_env_source(int rank, int nranks, void *arg)
{
    env_source_t src = *(const env_source_t *)arg;
    char r[16], n[16], host[64];
    const char *root = getenv("RDT_ROOT"), *colon = strrchr(root, ':');
    rdt_comm_t *comm;
    tcase_t c;
    int bad;

    snprintf(r, sizeof(r), "%d", rank);
    snprintf(n, sizeof(n), "%d", nranks);
    snprintf(host, sizeof(host), "%.*s", (int)(colon - root), root);
    unsetenv("RDT_RANK");
    unsetenv("RDT_SIZE");
    switch (src) {
    case SRC_SLURM:
        setenv("SLURM_PROCID", r, 1);
        setenv("SLURM_NTASKS", n, 1);
        setenv("SLURM_JOB_ID", "4242", 1);
        unsetenv("RDT_TOKEN");
        break;
    case SRC_OMPI_IN_SLURM:
        setenv("SLURM_PROCID", "0", 1);
        setenv("SLURM_NTASKS", "1", 1);
        setenv("SLURM_JOB_ID", "977", 1);
        /* fall through */
    case SRC_OMPI:
        setenv("OMPI_COMM_WORLD_RANK", r, 1);
        setenv("OMPI_COMM_WORLD_SIZE", n, 1);
        break;
    case SRC_TORCHRUN:
        setenv("RANK", r, 1);
        setenv("WORLD_SIZE", n, 1);
        setenv("MASTER_ADDR", host, 1);
        setenv("MASTER_PORT", colon + 1, 1);
        setenv("TORCHELASTIC_RUN_ID", "run-7", 1);
        unsetenv("RDT_ROOT");
        unsetenv("RDT_TOKEN");
        break;
    }
    comm = rdt_test_create_or_die();
    if (rdt_comm_rank(comm) != rank || rdt_comm_size(comm) != nranks) {
        fprintf(stderr, "rank %d: communicator says rank %d of %d\n", rank, rdt_comm_rank(comm),
                rdt_comm_size(comm));
        return 1;
    }
    memset(&c, 0, sizeof(c));
    c.coll = C_ALLREDUCE;
    c.t = RDT_INT32;
    c.count = 4099;
    c.seed = 5;
    bad = run_case(comm, &c);
    rdt_comm_destroy(comm);
    return bad;
}

static void test_ranks_come_from_slurm_open_mpi_or_torchrun_variables(void **state)
{
    env_source_t srcs[] = {SRC_SLURM, SRC_OMPI, SRC_TORCHRUN, SRC_OMPI_IN_SLURM};
    size_t i;
    for (i = 0; i < sizeof(srcs) / sizeof(srcs[0]); i++) {
        int st[3];
        assert_int_equal(rdt_spawn_local(3, body_env_source, &srcs[i], SPAWN_TIMEOUT_S, st), 0);
    }
}

/* A communicator created through a host framework's allgather (here: the world communicator's
 * own allgather plays the framework). */
static int oob_allgather(const void *send, void *recv, size_t bytes, void *ctx)
{
    return rdt_allgather(ctx, send, recv, bytes, RDT_UINT8) == RDT_SUCCESS ? 0 : -1;
}

static int body_oob(int rank, int nranks, void *arg)
{
    rdt_comm_t *world = rdt_test_create_or_die(), *comm = NULL;
    rdt_status_t st = rdt_comm_create_oob(rank, nranks, oob_allgather, world, &comm);
    int bad = 0, coll;

    if (st != RDT_SUCCESS) {
        fprintf(stderr, "rank %d: create_oob: %s\n", rank, rdt_comm_last_error(NULL));
        return 1;
    }
    for (coll = 0; coll < C_COUNT; coll++) {
        tcase_t c;
        memset(&c, 0, sizeof(c));
        c.coll = coll;
        c.t = RDT_FLOAT64;
        c.op = RDT_MAX;
        c.count = 3001;
        c.root = nranks - 1;
        c.seed = 20 + coll;
        bad |= run_case(comm, &c);
    }
    rdt_comm_destroy(comm);
    rdt_comm_destroy(world);
    return bad;
}

static void test_a_communicator_from_an_out_of_band_allgather_works(void **state)
{
    run_job(3, NULL, body_oob);
}

/* Results are bit-identical on every rank and from call to call, for inputs whose sums round
 * (random floats), at sizes that select different algorithms. */
static uint64_t hash_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i;
    for (i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static int body_determinism(int rank, int nranks, void *arg)
{
    static const size_t sizes[] = {3, 1000, 300007};
    rdt_comm_t *comm = rdt_test_create_or_die();
    uint64_t rng = 77 + (uint64_t)rank, hashes[16];
    size_t si, i;
    int bad = 0, rep, q;

    for (si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        size_t n = sizes[si];
        int mapped = g_alloc_mode == 1;
        float *in = rdt_test_alloc(n * 4, mapped), *out = rdt_test_alloc(n * 4, mapped);
        uint64_t first = 0;
        if (!in || !out)
            return 1;
        for (i = 0; i < n; i++)
            in[i] = (float)((double)(rdt_test_rand(&rng) % 2000001) / 999.0 - 1000.0);
        for (rep = 0; rep < 3; rep++) {
            uint64_t h;
            if (rdt_allreduce(comm, in, out, n, RDT_FLOAT32, RDT_SUM) != RDT_SUCCESS)
                return 1;
            h = hash_bytes(out, n * 4);
            if (rep == 0)
                first = h;
            else if (h != first) {
                fprintf(stderr, "rank %d: %zu floats: call %d differs from call 0\n", rank, n,
                        rep);
                bad = 1;
            }
            if (rdt_allgather(comm, &h, hashes, 1, RDT_UINT64) != RDT_SUCCESS)
                return 1;
            for (q = 0; q < nranks; q++) {
                if (hashes[q] != h) {
                    fprintf(stderr, "rank %d: %zu floats: rank %d got other bits\n", rank, n, q);
                    bad = 1;
                }
            }
        }
        case_free(in, mapped);
        case_free(out, mapped);
    }
    rdt_comm_destroy(comm);
    return bad;
}

static void test_results_are_bit_identical_on_every_rank_and_every_call(void **state)
{
    run_job(3, NULL, body_determinism);
    run_job(4, NULL, body_determinism);
}

/* ------------------------------------------------------------------------------------------ */
/* Bad input                                                                                    */
/* ------------------------------------------------------------------------------------------ */

#define EXPECT_ERR(call, want)                                                                   \
    do {                                                                                         \
        rdt_status_t got_ = (call);                                                              \
        if (got_ != (want) || !rdt_comm_last_error(comm)[0]) {                                  \
            fprintf(stderr, "rank %d: %s gave %s, expected %s\n", rank, #call,                   \
                    rdt_status_str(got_), rdt_status_str(want));                                 \
            bad = 1;                                                                             \
        }                                                                                        \
    } while (0)

static int body_bad_input(int rank, int nranks, void *arg)
{
    rdt_comm_t *comm = rdt_test_create_or_die();
    float buf[64];
    rdt_request_t *req = NULL;
    int bad = 0;
    tcase_t c;

    memset(buf, 0, sizeof(buf));
    EXPECT_ERR(rdt_allreduce(comm, NULL, buf, 4, RDT_FLOAT32, RDT_SUM), RDT_ERR_INVALID_ARG);
    EXPECT_ERR(rdt_allreduce(comm, buf, NULL, 4, RDT_FLOAT32, RDT_SUM), RDT_ERR_INVALID_ARG);
    EXPECT_ERR(rdt_allreduce(comm, buf, buf, SIZE_MAX / 2, RDT_FLOAT32, RDT_SUM),
               RDT_ERR_INVALID_ARG);
    EXPECT_ERR(rdt_allgather(comm, buf, buf + 8, SIZE_MAX / 3, RDT_FLOAT64),
               RDT_ERR_INVALID_ARG);
    EXPECT_ERR(rdt_allreduce(comm, buf, buf + 32, 4, RDT_DTYPE_COUNT, RDT_SUM),
               RDT_ERR_INVALID_ARG);
    EXPECT_ERR(rdt_allreduce(comm, buf, buf + 32, 4, RDT_FLOAT32, (rdt_op_t)42),
               RDT_ERR_UNSUPPORTED);
    EXPECT_ERR(rdt_broadcast(comm, buf, buf, 4, RDT_FLOAT32, nranks), RDT_ERR_INVALID_ARG);
    EXPECT_ERR(rdt_reduce(comm, buf, buf, 4, RDT_FLOAT32, RDT_SUM, -1), RDT_ERR_INVALID_ARG);
    EXPECT_ERR(rdt_send(comm, buf, 4, RDT_FLOAT32, rank), RDT_ERR_INVALID_ARG);
    EXPECT_ERR(rdt_recv(comm, buf, 4, RDT_FLOAT32, nranks + 3), RDT_ERR_INVALID_ARG);
    EXPECT_ERR(rdt_allreduce(comm, buf, buf + 1, 8, RDT_FLOAT32, RDT_SUM), RDT_ERR_INVALID_ARG);
    EXPECT_ERR(rdt_iallreduce(comm, buf, buf + 32, 4, RDT_FLOAT32, RDT_SUM, NULL),
               RDT_ERR_INVALID_ARG);
    if (rdt_allreduce(NULL, buf, buf, 4, RDT_FLOAT32, RDT_SUM) != RDT_ERR_INVALID_ARG ||
        !rdt_comm_last_error(NULL)[0]) {
        fprintf(stderr, "rank %d: NULL communicator not refused\n", rank);
        bad = 1;
    }
    (void)req;
    /* nothing above touched the communicator: a real collective still works */
    memset(&c, 0, sizeof(c));
    c.coll = C_ALLREDUCE;
    c.t = RDT_FLOAT32;
    c.op = RDT_SUM;
    c.count = 1000;
    c.seed = 3;
    bad |= run_case(comm, &c);
    rdt_comm_destroy(comm);
    return bad;
}

static void test_bad_arguments_are_refused_and_leave_the_communicator_usable(void **state)
{
    run_job(2, NULL, body_bad_input);
}

/* A rank that calls with a different count: every rank gets an error, nobody hangs or corrupts. */
static int body_count_mismatch(int rank, int nranks, void *arg)
{
    rdt_comm_t *comm;
    size_t n = rank == 1 ? 1000 : 4096, i;
    float *in = calloc(8192, sizeof(float)), *out = calloc(8192 + 16, sizeof(float));
    rdt_status_t st;

    setenv("RDT_TIMEOUT", "20", 1);
    comm = rdt_test_create_or_die();
    for (i = 0; i < 8192 + 16; i++)
        out[i] = -1.0f;
    st = rdt_allreduce(comm, in, out, n, RDT_FLOAT32, RDT_SUM);
    /* nothing may be written past the count this rank passed */
    for (i = n; i < 8192 + 16; i++) {
        if (out[i] != -1.0f) {
            fprintf(stderr, "rank %d: element %zu beyond the count was written\n", rank, i);
            return 1;
        }
    }
    if (st == RDT_SUCCESS) {
        fprintf(stderr, "rank %d: a count mismatch went unnoticed\n", rank);
        return 1;
    }
    fprintf(stderr, "rank %d (expected error): %s: %s\n", rank, rdt_status_str(st),
            rdt_comm_last_error(comm));
    rdt_comm_destroy(comm);
    free(in);
    free(out);
    return 0;
}

static void test_a_count_mismatch_is_an_error_on_every_rank(void **state)
{
    run_job(3, NULL, body_count_mismatch);
}

/* The environment, read in this process (no ranks started). */
static void clear_env(void)
{
    static const char *const vars[] = {"RDT_RANK", "RDT_SIZE", "RDT_ROOT", "RDT_TOKEN",
                                       "SLURM_PROCID", "SLURM_NTASKS", "OMPI_COMM_WORLD_RANK",
                                       "OMPI_COMM_WORLD_SIZE", "RANK", "WORLD_SIZE",
                                       "MASTER_ADDR", "MASTER_PORT", "RDT_TIMEOUT"};
    size_t i;
    for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
}

static void expect_create_error(rdt_status_t want, const char *needle)
{
    rdt_comm_t *comm = NULL;
    rdt_status_t st = rdt_comm_create_from_env(&comm);
    if (st != want || !strstr(rdt_comm_last_error(NULL), needle))
        fprintf(stderr, "got %s: '%s'\n", rdt_status_str(st), rdt_comm_last_error(NULL));
    assert_int_equal(st, want);
    assert_null(comm);
    assert_non_null(strstr(rdt_comm_last_error(NULL), needle));
}

static void test_missing_or_contradictory_environment_is_a_clear_error(void **state)
{
    clear_env();
    setenv("RDT_RANK", "1", 1);
    expect_create_error(RDT_ERR_CONFIG, "RDT_SIZE");
    setenv("RDT_SIZE", "2", 1);
    expect_create_error(RDT_ERR_CONFIG, "RDT_ROOT");
    setenv("RDT_RANK", "2", 1);
    expect_create_error(RDT_ERR_CONFIG, "RDT_RANK");
    setenv("RDT_RANK", "x", 1);
    expect_create_error(RDT_ERR_CONFIG, "RDT_RANK");
    setenv("RDT_RANK", "1", 1);
    setenv("RDT_ROOT", "127.0.0.1", 1);
    expect_create_error(RDT_ERR_CONFIG, "RDT_ROOT");
    setenv("RDT_ROOT", "127.0.0.1:70000", 1);
    expect_create_error(RDT_ERR_CONFIG, "RDT_ROOT");
    clear_env();
    setenv("RANK", "0", 1);
    setenv("WORLD_SIZE", "2", 1);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    expect_create_error(RDT_ERR_CONFIG, "MASTER_PORT");
    clear_env();
    setenv("RDT_TIMEOUT", "soon", 1);
    expect_create_error(RDT_ERR_CONFIG, "RDT_TIMEOUT");
    clear_env();
    setenv("RDT_IB_CM", "ibcm", 1);
    expect_create_error(RDT_ERR_CONFIG, "RDT_IB_CM='ibcm' is not a connection manager (tcp or "
                                        "rdmacm)");
    unsetenv("RDT_IB_CM");
    clear_env();
    {
        /* a size knob that also takes "auto" (its default); ctest may have set it (--verbs) */
        const char *was = getenv("RDT_IB_RNDV");
        char keep[32];
        snprintf(keep, sizeof(keep), "%s", was ? was : "");
        setenv("RDT_IB_RNDV", "soon", 1);
        expect_create_error(RDT_ERR_CONFIG,
                            "RDT_IB_RNDV='soon' is not 'auto' or a size in bytes");
        if (was)
            setenv("RDT_IB_RNDV", keep, 1);
        else
            unsetenv("RDT_IB_RNDV");
    }
    clear_env();
}

static void test_an_unreachable_root_is_an_error_within_the_timeout(void **state)
{
    rdt_comm_t *comm = NULL;
    rdt_status_t st;

    clear_env();
    setenv("RDT_RANK", "1", 1);
    setenv("RDT_SIZE", "2", 1);
    setenv("RDT_ROOT", "127.0.0.1:9", 1); /* discard port: nothing listens on loopback */
    setenv("RDT_TOKEN", "unreachable", 1);
    setenv("RDT_CONNECT_TIMEOUT", "1", 1);
    st = rdt_comm_create_from_env(&comm);
    fprintf(stderr, "expected error: %s: %s\n", rdt_status_str(st), rdt_comm_last_error(NULL));
    assert_true(st == RDT_ERR_TIMEOUT || st == RDT_ERR_NETWORK);
    assert_null(comm);
    assert_non_null(strstr(rdt_comm_last_error(NULL), "127.0.0.1:9"));
    unsetenv("RDT_CONNECT_TIMEOUT");
    clear_env();
}

static void test_a_single_rank_without_launcher_runs_every_collective(void **state)
{
    job_t job = {.all_types = 1};
    clear_env();
    assert_int_equal(body_battery(0, 1, &job), 0);
    clear_env();
}

/* ------------------------------------------------------------------------------------------ */
/* --large: the 16 MiB and odd large sizes over TCP (label slow)                                */
/* ------------------------------------------------------------------------------------------ */

static void
test_large_and_odd_sizes_of_every_collective_are_exact_on_2_3_and_4_ranks(void **state)
{
    int p;
    for (p = 2; p <= 4; p++) {
        job_t job = {.large = 1, .only_large = 1};
        run_job(p, &job, body_battery);
    }
}

static void
test_large_nonblocking_operations_in_flight_are_exact_on_2_3_and_4_ranks(void **state)
{
    int p;
    for (p = 2; p <= 4; p++) {
        job_t job = {.large = 1};
        run_job(p, &job, body_nonblocking);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* --verbs: the same rank bodies with RDT_TRANSPORT=verbs (label softroce). Transport-neutral    */
/* checks (environment parsing, bad arguments, dtype kernels beyond the battery) stay in the     */
/* default suite; the rank counts stop at 4 to keep the emulated VM's run short.                 */
/* ------------------------------------------------------------------------------------------ */

static void verbs_battery(int p)
{
    job_t job = {.big = 1, .all_types = 1, .large = 1};
    run_job(p, &job, body_battery);
}

static void test_verbs_every_collective_dtype_and_size_to_16mib_is_exact_on_2_ranks(void **state)
{
    verbs_battery(2);
}

static void test_verbs_every_collective_dtype_and_size_to_16mib_is_exact_on_3_ranks(void **state)
{
    verbs_battery(3);
}

static void test_verbs_every_collective_dtype_and_size_to_16mib_is_exact_on_4_ranks(void **state)
{
    verbs_battery(4);
}

static void test_verbs_every_forced_algorithm_is_exact_on_3_and_4_ranks(void **state)
{
    forced_algorithms(0); /* the large sizes ran above with the algorithms chosen by size */
}

static void test_verbs_nonblocking_operations_in_flight_on_two_communicators_exact(void **state)
{
    test_large_nonblocking_operations_in_flight_are_exact_on_2_3_and_4_ranks(state);
}

static void test_verbs_split_communicators_work_beside_their_parent(void **state)
{
    run_job(4, NULL, body_split);
    run_job(3, NULL, body_split);
}

static void test_verbs_send_and_recv_exchange_large_messages_in_a_ring(void **state)
{
    int p;
    for (p = 2; p <= 4; p++)
        run_job(p, NULL, body_p2p);
}

static void test_verbs_a_communicator_from_an_out_of_band_allgather_works(void **state)
{
    run_job(3, NULL, body_oob);
}

static void test_verbs_a_rank_that_never_arrives_times_out_with_a_clear_error(void **state)
{
    run_job(3, NULL, body_timeout);
}

static void test_verbs_a_count_mismatch_is_an_error_on_every_rank(void **state)
{
    run_job(3, NULL, body_count_mismatch);
}

/* ------------------------------------------------------------------------------------------ */
/* --mapped: buffers from rdt_mem_alloc on shared memory, every collective run direct            */
/* (RDT_SHM_DIRECT=1, RDT_SHM_ONESHOT=0: from the smallest size up), and a rank whose buffers     */
/* cannot be mapped turning every rank back to the schedules.                                    */
/* ------------------------------------------------------------------------------------------ */

static void mapped_battery(int p, int large)
{
    job_t job = {.big = 1, .all_types = 1, .large = large, .maps = 1};
    g_alloc_mode = 1;
    run_job(p, &job, body_battery);
}

static void test_direct_every_collective_dtype_and_op_is_exact_on_2_ranks(void **state)
{
    mapped_battery(2, 1);
}

static void test_direct_every_collective_dtype_and_op_is_exact_on_3_ranks(void **state)
{
    mapped_battery(3, 1);
}

static void test_direct_every_collective_dtype_and_op_is_exact_on_4_ranks(void **state)
{
    mapped_battery(4, 0);
}

static void test_direct_every_collective_is_exact_on_5_ranks(void **state)
{
    job_t job = {.maps = 1};
    g_alloc_mode = 1;
    run_job(5, &job, body_battery);
}

/* Broadcast is left out: a non-root's buffers are its own business there (the others read only
 * the root's), so it runs direct whatever rank 1's memory, and would map the root's. Staged
 * and one-shot allreduces off (RDT_SHM_STAGED=0, RDT_SHM_ONESHOT_ALLREDUCE=0): they have tests
 * of their own (--staged). */
static void test_a_rank_with_malloced_buffers_turns_every_rank_to_the_schedules(void **state)
{
    job_t job = {.big = 1, .all_types = 1, .maps = -1, .no_broadcast = 1, .staged = -1,
                 .oneshot_ar = -1};
    g_alloc_mode = 2;
    setenv("RDT_SHM_STAGED", "0", 1);
    setenv("RDT_SHM_ONESHOT_ALLREDUCE", "0", 1);
    run_job(3, &job, body_battery);
    unsetenv("RDT_SHM_STAGED");
    unsetenv("RDT_SHM_ONESHOT_ALLREDUCE");
    g_alloc_mode = 1;
}

static void test_direct_nonblocking_operations_on_two_communicators_are_exact(void **state)
{
    int p;
    g_alloc_mode = 1;
    for (p = 2; p <= 4; p++)
        run_job(p, NULL, body_nonblocking);
}

static void test_direct_results_are_bit_identical_on_every_rank_and_every_call(void **state)
{
    g_alloc_mode = 1;
    test_results_are_bit_identical_on_every_rank_and_every_call(state);
}

/* ------------------------------------------------------------------------------------------ */
/* --staged: malloc'd buffers on shared memory, every allreduce staged (RDT_SHM_STAGED=1,         */
/* RDT_SHM_DIRECT=1, RDT_SHM_ONESHOT=0: from one byte up), so chunk and slice edges fall          */
/* everywhere: slices of 1-5 ranks that are empty, partial last chunks, odd byte counts.          */
/* ------------------------------------------------------------------------------------------ */

static void staged_battery(int p, int large)
{
    job_t job = {.big = 1, .all_types = 1, .large = large, .staged = 1, .allreduce_only = 1};
    g_alloc_mode = 0;
    run_job(p, &job, body_battery);
}

static void test_staged_allreduce_of_every_dtype_and_op_is_exact_on_2_ranks(void **state)
{
    (void)state;
    staged_battery(2, 1);
}

static void test_staged_allreduce_of_every_dtype_and_op_is_exact_on_3_ranks(void **state)
{
    (void)state;
    staged_battery(3, 1);
}

static void test_staged_allreduce_of_every_dtype_and_op_is_exact_on_4_ranks(void **state)
{
    (void)state;
    staged_battery(4, 0);
}

static void test_staged_allreduce_of_every_dtype_and_op_is_exact_on_5_ranks(void **state)
{
    (void)state;
    staged_battery(5, 0);
}

/* Rank 1's buffers are malloc'd, the others' rdt_mem_alloc memory: allreduce runs staged on
 * every rank (nobody maps anything), the other collectives their schedules. */
static void test_a_rank_with_malloced_buffers_turns_every_rank_to_staged_allreduces(void **state)
{
    job_t job = {.big = 1, .maps = -1, .no_broadcast = 1, .staged = 1};
    (void)state;
    g_alloc_mode = 2;
    run_job(3, &job, body_battery);
    g_alloc_mode = 0;
}

/* With every rank's buffers mappable, allreduce runs direct, never staged. */
static void test_mappable_buffers_run_direct_not_staged(void **state)
{
    job_t job = {.big = 1, .maps = 1, .staged = -1, .allreduce_only = 1};
    (void)state;
    g_alloc_mode = 1;
    run_job(2, &job, body_battery);
    g_alloc_mode = 0;
}

/* One-shot allreduces above RDT_SHM_ONESHOT: with staged off, every allreduce the offers turn
 * away from direct runs one exchange up to the share buffer (the battery's sizes, 1 element up,
 * every dtype and op, in place and not); its 1 MiB + 3 elements case is larger and runs its
 * schedule. Then without offers (RDT_SHM_DIRECT=0). */
static void oneshot_ar_battery(int p, const char *direct)
{
    job_t job = {.big = 1, .all_types = 1, .oneshot_ar = 1, .staged = -1, .allreduce_only = 1};
    g_alloc_mode = 0;
    setenv("RDT_SHM_STAGED", "0", 1);
    setenv("RDT_SHM_DIRECT", direct, 1);
    run_job(p, &job, body_battery);
    setenv("RDT_SHM_STAGED", "1", 1);
    setenv("RDT_SHM_DIRECT", "1", 1);
}

static void test_oneshot_allreduce_of_every_dtype_and_op_is_exact_after_the_offers(void **state)
{
    int p;
    (void)state;
    for (p = 2; p <= 4; p++)
        oneshot_ar_battery(p, "1");
}

static void test_oneshot_allreduce_of_every_dtype_and_op_is_exact_without_offers(void **state)
{
    (void)state;
    oneshot_ar_battery(3, "0");
}

/* Rank 1's buffers are malloc'd, the others' rdt_mem_alloc memory, staged off: allreduce runs
 * one-shot on every rank after the offers, nobody maps anything. */
static void test_a_rank_with_malloced_buffers_turns_every_rank_to_oneshot_allreduces(void **state)
{
    job_t job = {.big = 1, .maps = -1, .no_broadcast = 1, .oneshot_ar = 1, .staged = -1};
    (void)state;
    g_alloc_mode = 2;
    setenv("RDT_SHM_STAGED", "0", 1);
    run_job(3, &job, body_battery);
    setenv("RDT_SHM_STAGED", "1", 1);
    g_alloc_mode = 0;
}

/* One allreduce for the path tests below: prepared, issued, checked against the reference; how
 * many calls ran staged and in one slice meanwhile, by the engine's counters. Returns 0, 1 for
 * wrong elements, -1 if the call failed (reported). */
static int path_allreduce(rdt_comm_t *comm, int rank, int nranks, rdt_dtype_t t, rdt_op_t op,
                          size_t count, int in_place, uint64_t seed, uint64_t *staged,
                          uint64_t *one)
{
    tcase_t tc;
    uint64_t d0, s0, o0, d1, s1, o1, one0 = rdt_test_comm_one_slice(comm);
    int bad;

    memset(&tc, 0, sizeof(tc));
    tc.coll = C_ALLREDUCE;
    tc.t = t;
    tc.op = op;
    tc.count = count;
    tc.in_place = in_place;
    tc.seed = seed;
    tcase_prepare(&tc, rank, nranks);
    rdt_test_comm_paths(comm, &d0, &s0, &o0);
    if (tcase_issue(&tc, comm, NULL) != RDT_SUCCESS) {
        fprintf(stderr, "rank %d: allreduce (seed %llu): %s\n", rank, (unsigned long long)seed,
                rdt_comm_last_error(comm));
        tcase_free(&tc);
        return -1;
    }
    bad = tcase_check(&tc, rank);
    rdt_test_comm_paths(comm, &d1, &s1, &o1);
    *staged = s1 - s0;
    *one = rdt_test_comm_one_slice(comm) - one0;
    tcase_free(&tc);
    return bad;
}

/* The path tests' environment: staged from 16 MiB in total, offers from 32 KiB per rank,
 * malloc'd buffers; then back to the group's. */
static void run_path_job(int nranks, rdt_spawn_fn_t fn)
{
    g_alloc_mode = 0;
    setenv("RDT_SHM_STAGED", "16m", 1);
    setenv("RDT_SHM_DIRECT", "32k", 1);
    run_job(nranks, NULL, fn);
    setenv("RDT_SHM_STAGED", "1", 1);
    setenv("RDT_SHM_DIRECT", "1", 1);
}

/* Every rank in place, between RDT_SHM_STAGED and twice it in total: the schedule in one slice
 * (exec.c's staged_inplace_schedule), unless this host is oversubscribed; out of place, staged.
 * int32 sum and float32 max, 2 Mi + 5 elements per rank; each result checked against the
 * reference, and each call's path against the engine's counters. */
static int body_inplace_one_slice(int rank, int nranks, void *arg)
{
    rdt_comm_t *comm = rdt_test_create_or_die();
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int oversub = cpus > 0 && nranks > cpus, bad = 0, k, rc;
    (void)arg;

    for (k = 0; k < 4; k++) {
        uint64_t staged, one;
        int ip = k < 2, want_one = ip && !oversub;

        rc = path_allreduce(comm, rank, nranks, (k & 1) ? RDT_FLOAT32 : RDT_INT32,
                            (k & 1) ? RDT_MAX : RDT_SUM, (2u << 20) + 5, ip, 700 + k, &staged,
                            &one);
        if (rc < 0) {
            bad = 1;
            break;
        }
        bad |= rc;
        if (one != (uint64_t)want_one || staged != (uint64_t)!want_one) {
            fprintf(stderr, "rank %d: %s allreduce %d: %llu in one slice, %llu staged; expected "
                    "%s (%ld CPUs)\n", rank, ip ? "in-place" : "out-of-place", k,
                    (unsigned long long)one, (unsigned long long)staged,
                    want_one ? "one slice" : "staged", cpus);
            bad = 1;
        }
    }
    rdt_comm_destroy(comm);
    return bad;
}

static void test_inplace_allreduce_below_twice_the_staged_threshold_runs_in_one_slice(void **state)
{
    (void)state;
    run_path_job(2, body_inplace_one_slice);
}

/* In place, a vector just above the one-shot exchange's reach and within every rank's
 * RDT_SHM_STAGED_CACHED runs staged below RDT_SHM_STAGED (exec.c's staged_cached); out of place,
 * or when one rank's budget is smaller than its vector, it does not (its offer says so, and every
 * rank follows it). An oversubscribed host runs every such allreduce staged. g_cached_budget1 is
 * rank 1's RDT_SHM_STAGED_CACHED, rank 0's is 2m; float32 sum and int32 max, 1 MiB + 12 bytes
 * per rank; results against the reference, paths against the engine's counters. */
static const char *g_cached_budget1;

static int body_inplace_cached(int rank, int nranks, void *arg)
{
    rdt_comm_t *comm;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int oversub = cpus > 0 && nranks > cpus, bad = 0, k, rc;
    (void)arg;

    setenv("RDT_SHM_STAGED_CACHED", rank == 1 ? g_cached_budget1 : "2m", 1);
    comm = rdt_test_create_or_die();
    for (k = 0; k < 4; k++) {
        uint64_t staged, one;
        int ip = k < 2, want = oversub || (ip && strcmp(g_cached_budget1, "2m") == 0);

        rc = path_allreduce(comm, rank, nranks, (k & 1) ? RDT_INT32 : RDT_FLOAT32,
                            (k & 1) ? RDT_MAX : RDT_SUM, (1u << 18) + 3, ip, 800 + k, &staged,
                            &one);
        if (rc < 0) {
            bad = 1;
            break;
        }
        bad |= rc;
        if (staged != (uint64_t)want) {
            fprintf(stderr, "rank %d: %s allreduce %d, rank 1's budget %s: %llu staged, expected "
                    "%d (%ld CPUs)\n", rank, ip ? "in-place" : "out-of-place", k,
                    g_cached_budget1, (unsigned long long)staged, want, cpus);
            bad = 1;
        }
    }
    rdt_comm_destroy(comm);
    return bad;
}

static void test_inplace_allreduce_that_stays_in_l2_runs_staged_when_every_rank_says_so(void **state)
{
    (void)state;
    g_cached_budget1 = "2m";
    run_path_job(2, body_inplace_cached);
    g_cached_budget1 = "512k"; /* below rank 1's vector: nobody stages */
    run_path_job(2, body_inplace_cached);
    unsetenv("RDT_SHM_STAGED_CACHED");
}

/* More ranks than CPUs on the host: every allreduce the offers reach (from RDT_SHM_DIRECT bytes
 * per rank) runs staged, far below RDT_SHM_STAGED (exec.c's staged_threshold); with CPUs enough,
 * none of these does. 64 Ki + 1 float32 per rank, in place and not, against the reference. */
static int body_oversubscribed_staged(int rank, int nranks, void *arg)
{
    rdt_comm_t *comm = rdt_test_create_or_die();
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int want = cpus > 0 && nranks > cpus, bad = 0, k, rc;
    (void)arg;

    for (k = 0; k < 2; k++) {
        uint64_t staged, one;

        rc = path_allreduce(comm, rank, nranks, RDT_FLOAT32, RDT_SUM, (1u << 16) + 1, k, 900 + k,
                            &staged, &one);
        if (rc < 0) {
            bad = 1;
            break;
        }
        bad |= rc;
        if (staged != (uint64_t)want) {
            fprintf(stderr, "rank %d of %d: allreduce %d: %llu staged, expected %d (%ld CPUs)\n",
                    rank, nranks, k, (unsigned long long)staged, want, cpus);
            bad = 1;
        }
    }
    rdt_comm_destroy(comm);
    return bad;
}

static void test_an_oversubscribed_host_runs_allreduces_staged_from_the_offers(void **state)
{
    (void)state;
    run_path_job(3, body_oversubscribed_staged);
}

/* A busy loop pinned to one CPU (contended_spin), until *stop. */
static void *contended_spin(void *arg)
{
    const int *stop = arg;
    while (!__atomic_load_n(stop, __ATOMIC_RELAXED)) {
    }
    return NULL;
}

/* Rank 0 shares its core with a busy thread: its waits must notice and sleep at once
 * (exec.c's contended_sample), and every result must still be right against the reference;
 * rank 1 runs wherever the scheduler puts it and is not asserted on. On a host with fewer CPUs
 * than ranks the engine yields instead, and rank 0's count must stay 0. */
static int body_contended(int rank, int nranks, void *arg)
{
    rdt_comm_t *comm = rdt_test_create_or_die();
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int oversub = cpus > 0 && nranks > cpus, bad = 0, stop = 0, k, rc, cpu = -1;
    pthread_t th;
    cpu_set_t set;
    uint64_t waits, staged, one;
    (void)arg;

    if (rank == 0) {
        cpu = sched_getcpu();
        CPU_ZERO(&set);
        CPU_SET(cpu < 0 ? 0 : cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) != 0 ||
            pthread_create(&th, NULL, contended_spin, &stop) != 0) {
            fprintf(stderr, "rank 0: cannot pin itself and a busy thread to CPU %d\n", cpu);
            rdt_comm_destroy(comm);
            return 1;
        }
        pthread_setaffinity_np(th, sizeof(set), &set);
    }
    for (k = 0; k < 3000 && !bad; k++) {
        rc = path_allreduce(comm, rank, nranks, RDT_FLOAT32, RDT_SUM, 8, k & 1, 900 + (uint64_t)k,
                            &staged, &one);
        bad |= rc != 0;
    }
    waits = rdt_test_comm_contended_waits(comm);
    if (rank == 0) {
        __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
        pthread_join(th, NULL);
        if (oversub ? waits != 0 : waits == 0) {
            fprintf(stderr, "rank 0 sharing CPU %d with a busy thread: %llu waits slept at once "
                    "(%ld CPUs, expected %s)\n", cpu, (unsigned long long)waits, cpus,
                    oversub ? "none" : "some");
            bad = 1;
        }
    }
    rdt_comm_destroy(comm);
    return bad;
}

static void test_a_rank_sharing_its_core_with_a_busy_thread_sleeps_in_its_waits(void **state)
{
    (void)state;
    g_alloc_mode = 0;
    run_job(2, NULL, body_contended);
}

static void test_staged_nonblocking_operations_on_two_communicators_are_exact(void **state)
{
    int p;
    (void)state;
    g_alloc_mode = 0;
    for (p = 2; p <= 4; p++)
        run_job(p, NULL, body_nonblocking);
}

static int run_staged(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_staged_allreduce_of_every_dtype_and_op_is_exact_on_2_ranks),
        cmocka_unit_test(test_staged_allreduce_of_every_dtype_and_op_is_exact_on_3_ranks),
        cmocka_unit_test(test_staged_allreduce_of_every_dtype_and_op_is_exact_on_4_ranks),
        cmocka_unit_test(test_staged_allreduce_of_every_dtype_and_op_is_exact_on_5_ranks),
        cmocka_unit_test(test_a_rank_with_malloced_buffers_turns_every_rank_to_staged_allreduces),
        cmocka_unit_test(test_mappable_buffers_run_direct_not_staged),
        cmocka_unit_test(test_oneshot_allreduce_of_every_dtype_and_op_is_exact_after_the_offers),
        cmocka_unit_test(test_oneshot_allreduce_of_every_dtype_and_op_is_exact_without_offers),
        cmocka_unit_test(test_a_rank_with_malloced_buffers_turns_every_rank_to_oneshot_allreduces),
        cmocka_unit_test(test_inplace_allreduce_below_twice_the_staged_threshold_runs_in_one_slice),
        cmocka_unit_test(test_inplace_allreduce_that_stays_in_l2_runs_staged_when_every_rank_says_so),
        cmocka_unit_test(test_an_oversubscribed_host_runs_allreduces_staged_from_the_offers),
        cmocka_unit_test(test_staged_nonblocking_operations_on_two_communicators_are_exact),
        cmocka_unit_test(test_a_rank_sharing_its_core_with_a_busy_thread_sleeps_in_its_waits),
        cmocka_unit_test(test_results_are_bit_identical_on_every_rank_and_every_call),
    };
    /* shared memory between these ranks (auto), every allreduce staged */
    unsetenv("RDT_TRANSPORT");
    setenv("RDT_SHM_ONESHOT", "0", 1);
    setenv("RDT_SHM_DIRECT", "1", 1);
    setenv("RDT_SHM_STAGED", "1", 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

static void test_mem_alloc_and_free_refuse_bad_arguments(void **state)
{
    unsigned char *p = NULL, x = 0;
    size_t i;

    assert_int_equal(rdt_mem_alloc(0, (void **)&p), RDT_ERR_INVALID_ARG);
    assert_non_null(strstr(rdt_comm_last_error(NULL), "0 bytes"));
    assert_null(p);
    assert_int_equal(rdt_mem_alloc(8, NULL), RDT_ERR_INVALID_ARG);
    assert_int_equal(rdt_mem_alloc(10000, (void **)&p), RDT_SUCCESS);
    assert_non_null(p);
    for (i = 0; i < 10000; i++) /* zero-filled, writable */
        x |= p[i];
    assert_int_equal(x, 0);
    memset(p, 0xab, 10000);
    assert_int_equal(rdt_mem_free(p + 8), RDT_ERR_INVALID_ARG);
    assert_non_null(strstr(rdt_comm_last_error(NULL), "not returned by rdt_mem_alloc"));
    assert_int_equal(rdt_mem_free(&x), RDT_ERR_INVALID_ARG);
    assert_int_equal(mapped_allocations(), 1);
    assert_int_equal(rdt_mem_free(p), RDT_SUCCESS);
    assert_int_equal(rdt_mem_free(p), RDT_ERR_INVALID_ARG); /* twice */
    assert_int_equal(rdt_mem_free(NULL), RDT_SUCCESS);
    assert_int_equal(mapped_allocations(), 0);
}

static int run_mapped(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mem_alloc_and_free_refuse_bad_arguments),
        cmocka_unit_test(test_direct_every_collective_dtype_and_op_is_exact_on_2_ranks),
        cmocka_unit_test(test_direct_every_collective_dtype_and_op_is_exact_on_3_ranks),
        cmocka_unit_test(test_direct_every_collective_dtype_and_op_is_exact_on_4_ranks),
        cmocka_unit_test(test_direct_every_collective_is_exact_on_5_ranks),
        cmocka_unit_test(test_a_rank_with_malloced_buffers_turns_every_rank_to_the_schedules),
        cmocka_unit_test(test_direct_nonblocking_operations_on_two_communicators_are_exact),
        cmocka_unit_test(test_direct_results_are_bit_identical_on_every_rank_and_every_call),
    };
    /* shared memory between these ranks (auto), every size direct */
    unsetenv("RDT_TRANSPORT");
    setenv("RDT_SHM_ONESHOT", "0", 1);
    setenv("RDT_SHM_DIRECT", "1", 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The default suite: loopback TCP unless RDT_TRANSPORT says otherwise. */
static int run_default(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_or_contradictory_environment_is_a_clear_error),
        cmocka_unit_test(test_an_unreachable_root_is_an_error_within_the_timeout),
        cmocka_unit_test(test_a_single_rank_without_launcher_runs_every_collective),
        cmocka_unit_test(test_every_collective_dtype_and_op_is_exact_on_2_ranks),
        cmocka_unit_test(test_every_collective_dtype_and_op_is_exact_on_3_ranks),
        cmocka_unit_test(test_every_collective_dtype_and_op_is_exact_on_4_ranks),
        cmocka_unit_test(test_every_collective_dtype_and_op_is_exact_on_5_ranks),
        cmocka_unit_test(test_every_collective_is_exact_on_8_ranks),
        cmocka_unit_test(test_every_forced_algorithm_is_exact_on_3_and_4_ranks),
        cmocka_unit_test(test_every_hierarchical_algorithm_is_exact_on_faked_hosts),
        cmocka_unit_test(test_many_nonblocking_operations_on_two_communicators_are_exact),
        cmocka_unit_test(test_split_communicators_work_beside_their_parent),
        cmocka_unit_test(test_send_and_recv_exchange_large_messages_in_a_ring),
        cmocka_unit_test(test_ranks_come_from_slurm_open_mpi_or_torchrun_variables),
        cmocka_unit_test(test_a_communicator_from_an_out_of_band_allgather_works),
        cmocka_unit_test(test_results_are_bit_identical_on_every_rank_and_every_call),
        cmocka_unit_test(test_abort_from_another_thread_unblocks_a_waiting_collective),
        cmocka_unit_test(test_a_rank_that_never_arrives_times_out_with_a_clear_error),
        cmocka_unit_test(test_bad_arguments_are_refused_and_leave_the_communicator_usable),
        cmocka_unit_test(test_a_count_mismatch_is_an_error_on_every_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

static int run_large(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_large_and_odd_sizes_of_every_collective_are_exact_on_2_3_and_4_ranks),
        cmocka_unit_test(test_large_nonblocking_operations_in_flight_are_exact_on_2_3_and_4_ranks),
    };
    setenv("RDT_TRANSPORT", "tcp", 1); /* the ranks inherit it */
    return cmocka_run_group_tests(tests, NULL, NULL);
}

static int run_verbs(const char *skip)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbs_every_collective_dtype_and_size_to_16mib_is_exact_on_2_ranks),
        cmocka_unit_test(test_verbs_every_collective_dtype_and_size_to_16mib_is_exact_on_3_ranks),
        cmocka_unit_test(test_verbs_every_collective_dtype_and_size_to_16mib_is_exact_on_4_ranks),
        cmocka_unit_test(test_verbs_nonblocking_operations_in_flight_on_two_communicators_exact),
        cmocka_unit_test(test_verbs_send_and_recv_exchange_large_messages_in_a_ring),
        cmocka_unit_test(test_verbs_every_forced_algorithm_is_exact_on_3_and_4_ranks),
        cmocka_unit_test(test_verbs_split_communicators_work_beside_their_parent),
        cmocka_unit_test(test_verbs_a_communicator_from_an_out_of_band_allgather_works),
        cmocka_unit_test(test_abort_from_another_thread_unblocks_a_waiting_collective),
        cmocka_unit_test(test_verbs_a_rank_that_never_arrives_times_out_with_a_clear_error),
        cmocka_unit_test(test_verbs_a_count_mismatch_is_an_error_on_every_rank),
    };
    /* no device: exit 77 (skipped), or 1 under RDT_TEST_REQUIRE_RDMA=1 */
    rdt_test_require_rdma("test_collectives --verbs", NULL);
    setenv("RDT_TRANSPORT", "verbs", 1); /* the ranks inherit it: verbs, or creation fails */
    if (skip)
        cmocka_set_skip_filter(skip);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

int main(int argc, char **argv)
{
    if (argc == 1)
        return run_default();
    if (argc == 2 && strcmp(argv[1], "--large") == 0)
        return run_large();
    if (argc == 2 && strcmp(argv[1], "--mapped") == 0)
        return run_mapped();
    if (argc == 2 && strcmp(argv[1], "--staged") == 0)
        return run_staged();
    if (argc == 2 && strcmp(argv[1], "--verbs") == 0)
        return run_verbs(NULL);
    if (argc == 4 && strcmp(argv[1], "--verbs") == 0 && strcmp(argv[2], "--skip") == 0)
        return run_verbs(argv[3]);
    fprintf(stderr, "usage: test_collectives [--large | --mapped | --verbs [--skip PATTERN]]\n");
    return 2;
}
