/* rdt-test-labels: slow */
/*
 * test_soak.c - thousands of random operations on 4 ranks, every result checked.
 *
 * All ranks draw the same random sequence from one seed (printed; RDT_TEST_SEED replays it,
 * RDT_SOAK_OPS sets the operations per run). The run is cut into phases; each phase creates a
 * fresh world communicator with its own random configuration, read at creation: RDT_ALGO forcing
 * a random algorithm (or none) per collective, RDT_CHUNK and RDT_SLICES (the pipelining), and
 * hosts faked with RDT_HOSTNAME (2 x 2, contiguous or interleaved; the hierarchical algorithms
 * only there), plus a split of it in reverse rank order. Each step is a batch: one blocking
 * operation, or 2 to 4 nonblocking ones in flight at once (on either communicator), completed by
 * rdt_waitall or by polling rdt_test. An operation is any collective (allreduce, reduce_scatter,
 * allgather, broadcast, reduce, alltoall, barrier) or point-to-point (a pair: one send, one
 * receive; or, nonblocking, every rank sending to rank + k), with any dtype and reduction, a size
 * from 0 to 1 MiB per rank (log-uniform, so odd sizes), a random root, in place or not.
 *
 * Checks, on every rank, for every operation: the status; every output element against a
 * reference computed here from the inputs of all ranks (which every rank can generate); inputs
 * not modified out of place; on the ranks that are not the root of a reduce, neither buffer
 * touched (the receive buffer is poisoned and must stay so); a barrier completes only once every
 * rank has entered it (counted in memory shared by the ranks). References are exact: integers in
 * 64-bit arithmetic wrapped to the type's width (the documented semantics), floating types on
 * small integers (sums of 4 values in [-16, 16], products of 4 values in {-2, -1, 1, 2}, minima
 * and maxima of halves, averages = sums / 4): every partial result of any order is exactly
 * representable even in float16 and bfloat16, so the results must be bit-exact, whatever the
 * algorithm's order of reduction.
 *
 * Two runs: RDT_TRANSPORT=auto (shared memory between these ranks; TCP between faked hosts) and
 * tcp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "rdmatrain.h"
#include "spawn.h"
#include "testutil.h"

#define P             4
#define SPAWN_TIMEOUT 300
#define MAX_BATCH     4
#define MAX_BYTES     ((size_t)1 << 20) /* per rank's vector */
#define POISON        0xa5

enum {
    K_ALLREDUCE,
    K_REDUCE_SCATTER,
    K_ALLGATHER,
    K_BROADCAST,
    K_REDUCE,
    K_ALLTOALL,
    K_BARRIER,
    K_SENDRECV_PAIR,
    K_SENDRECV_SHIFT,
    K_COUNT
};
static const char *const kind_names[K_COUNT] = {"allreduce", "reduce_scatter", "allgather",
                                                "broadcast", "reduce",         "alltoall",
                                                "barrier",   "send/recv pair", "send/recv shift"};

typedef struct soak {
    const char *transport;
    uint64_t seed;
    long ops;      /* operations per run (all phases) */
    long *checked; /* shared with the children (mmap): operations each rank checked */
    long *bytes;   /* and the bytes of their vectors */
    long *entered; /* barriers entered on the world [0] and the reversed comm [1], all ranks */
} soak_t;

/* One operation, as every rank draws it. */
typedef struct opdesc {
    int kind, dtype, op, root, in_place, rev;
    int a, b, shift; /* send/recv: the pair a -> b, or the shift */
    size_t count;    /* elements (per block for reduce_scatter, allgather, alltoall) */
    uint64_t seed;   /* of the inputs */
} opdesc_t;

/* Buffers and request of one operation in flight. */
typedef struct opbuf {
    opdesc_t d;
    rdt_comm_t *comm;
    int rank; /* in that communicator */
    unsigned char *send, *recv, *want, *orig;
    size_t send_bytes, recv_bytes;
    rdt_request_t *req[2];
} opbuf_t;

static size_t dsize(int dt)
{
    switch (dt) {
    case RDT_INT8:
    case RDT_UINT8:
        return 1;
    case RDT_FLOAT16:
    case RDT_BFLOAT16:
        return 2;
    case RDT_INT32:
    case RDT_UINT32:
    case RDT_FLOAT32:
        return 4;
    default:
        return 8;
    }
}

static int is_float(int dt)
{
    return dt == RDT_FLOAT16 || dt == RDT_BFLOAT16 || dt == RDT_FLOAT32 || dt == RDT_FLOAT64;
}

static int is_signed(int dt)
{
    return dt == RDT_INT8 || dt == RDT_INT32 || dt == RDT_INT64;
}

/* ---- values ---------------------------------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Element j of rank q's input: raw bits for integers, a small exact number for floats. */
static uint64_t in_int(const opdesc_t *d, int q, size_t j)
{
    return mix(d->seed ^ ((uint64_t)q << 56) ^ (uint64_t)j * 0x9e3779b97f4a7c15ULL);
}

static double in_float(const opdesc_t *d, int q, size_t j)
{
    uint64_t h = in_int(d, q, j);
    static const double prod_vals[4] = {-2, -1, 1, 2};

    switch (d->op) {
    case RDT_PROD:
        return prod_vals[h % 4];
    case RDT_MIN:
    case RDT_MAX:
        return ((double)(int)(h % 257) - 128) / 2;
    default: /* SUM, AVG, and the data of non-reducing operations */
        return (double)((int)(h % 33) - 16);
    }
}

/* float16 bits of @p v, which is exactly representable (normal, or zero). */
static uint16_t f16_bits(double v)
{
    uint16_t sign = signbit(v) ? 0x8000 : 0;
    double a = fabs(v), m;
    int e;

    if (a == 0)
        return sign;
    m = frexp(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    return (uint16_t)(sign | (uint16_t)((e - 1 + 15) << 10) | (uint16_t)((m * 2 - 1) * 1024));
}

/* Write @p iv (integers, truncated to the width) or @p fv (floats) as element j of @p buf. */
static void put_elem(unsigned char *buf, int dt, size_t j, uint64_t iv, double fv)
{
    unsigned char *p = buf + j * dsize(dt);
    float f = (float)fv;
    uint32_t fb;
    uint16_t h;

    switch (dt) {
    case RDT_FLOAT16:
        h = f16_bits(fv);
        memcpy(p, &h, 2);
        return;
    case RDT_BFLOAT16:
        memcpy(&fb, &f, 4);
        h = (uint16_t)(fb >> 16); /* exact values: the low half is zero */
        memcpy(p, &h, 2);
        return;
    case RDT_FLOAT32:
        memcpy(p, &f, 4);
        return;
    case RDT_FLOAT64:
        memcpy(p, &fv, 8);
        return;
    default:
        memcpy(p, &iv, dsize(dt)); /* little-endian: the low bytes */
        return;
    }
}

static void put_input(unsigned char *buf, size_t at, const opdesc_t *d, int q, size_t j)
{
    if (is_float(d->dtype))
        put_elem(buf, d->dtype, at, 0, in_float(d, q, j));
    else
        put_elem(buf, d->dtype, at, in_int(d, q, j), 0);
}

/* The reduction over ranks 0..P-1 of input element j, written as element @p at of @p buf. */
static void put_reduced(unsigned char *buf, size_t at, const opdesc_t *d, size_t j)
{
    int q, bits = (int)dsize(d->dtype) * 8;
    uint64_t mask = bits == 64 ? ~0ULL : ((1ULL << bits) - 1);

    if (is_float(d->dtype)) {
        double acc = in_float(d, 0, j);
        for (q = 1; q < P; q++) {
            double x = in_float(d, q, j);
            switch (d->op) {
            case RDT_PROD:
                acc *= x;
                break;
            case RDT_MIN:
                acc = x < acc ? x : acc;
                break;
            case RDT_MAX:
                acc = x > acc ? x : acc;
                break;
            default:
                acc += x;
                break;
            }
        }
        if (d->op == RDT_AVG)
            acc /= P;
        put_elem(buf, d->dtype, at, 0, acc);
        return;
    } else {
        uint64_t acc = in_int(d, 0, j) & mask;
        for (q = 1; q < P; q++) {
            uint64_t x = in_int(d, q, j) & mask;
            int64_t sx = (int64_t)(x << (64 - bits)) >> (64 - bits);
            int64_t sa = (int64_t)(acc << (64 - bits)) >> (64 - bits);
            int less = is_signed(d->dtype) ? sx < sa : x < acc;
            switch (d->op) {
            case RDT_PROD:
                acc = (acc * x) & mask;
                break;
            case RDT_MIN:
                acc = less ? x : acc;
                break;
            case RDT_MAX:
                acc = less || x == acc ? acc : x;
                break;
            default:
                acc = (acc + x) & mask;
                break;
            }
        }
        if (d->op == RDT_AVG) {
            if (is_signed(d->dtype))
                acc = (uint64_t)(((int64_t)(acc << (64 - bits)) >> (64 - bits)) / P) & mask;
            else
                acc = acc / P;
        }
        put_elem(buf, d->dtype, at, acc, 0);
    }
}

/* ---- drawing -----------------------------------------------------------------------------------
 */

/* 0 to 1 MiB per rank, log-uniform, in elements of @p dt; @p blocks blocks per vector. */
static size_t draw_count(uint64_t *rng, int dt, int blocks)
{
    uint64_t r = rdt_test_rand(rng);
    size_t bytes, max = MAX_BYTES / (size_t)blocks;

    if (r % 20 == 0)
        return 0;
    bytes = (size_t)exp2((double)(r >> 11) / (double)(1ULL << 53) * 20.0); /* 1 B .. 1 MiB */
    if (bytes > max)
        bytes = max;
    return bytes / dsize(dt) ? bytes / dsize(dt) : 1;
}

static void draw_op(uint64_t *rng, opdesc_t *d, int blocking)
{
    memset(d, 0, sizeof(*d));
    d->kind = (int)(rdt_test_rand(rng) % K_COUNT);
    if (blocking && d->kind == K_SENDRECV_SHIFT)
        d->kind = K_SENDRECV_PAIR; /* every rank sending blocking first would deadlock */
    d->dtype = (int)(rdt_test_rand(rng) % RDT_DTYPE_COUNT);
    d->op = (int)(rdt_test_rand(rng) % RDT_OP_COUNT);
    d->root = (int)(rdt_test_rand(rng) % P);
    d->in_place = (int)(rdt_test_rand(rng) % 2);
    d->rev = (int)(rdt_test_rand(rng) % 3 == 0);
    d->a = (int)(rdt_test_rand(rng) % P);
    d->b = (d->a + 1 + (int)(rdt_test_rand(rng) % (P - 1))) % P;
    d->shift = 1 + (int)(rdt_test_rand(rng) % (P - 1));
    d->count = draw_count(
        rng, d->dtype,
        d->kind == K_REDUCE_SCATTER || d->kind == K_ALLGATHER || d->kind == K_ALLTOALL ? P : 1);
    d->seed = rdt_test_rand(rng);
}

/* One phase's configuration, the same on every rank: environment for rdt_comm_create_from_env. */
static void draw_phase(uint64_t *rng, int rank, int phase, const char *token, char *desc,
                       size_t desclen)
{
    static const char *const colls[] = {"allreduce", "reduce_scatter", "allgather", "broadcast",
                                        "reduce"};
    static const char *const algos[][5] = {{"ring", "recdbl", "rabenseifner", "tree", "hier"},
                                           {"ring", "rabenseifner", "hier", NULL, NULL},
                                           {"ring", "recdbl", "hier", NULL, NULL},
                                           {"ring", "tree", "hier", NULL, NULL},
                                           {"ring", "tree", "hier", NULL, NULL}};
    static const char *const chunks[] = {"0", "0", "4k", "64k", "1m"};
    char algo[256] = "", tok[128], v[16];
    int hosts = (int)(rdt_test_rand(rng) % 3), c, n, k;
    size_t off = 0;

    for (c = 0; c < 5; c++) {
        for (n = 0; n < 5 && algos[c][n]; n++) {
        }
        k = (int)(rdt_test_rand(rng) % (uint64_t)(n + 1)) - 1; /* -1: not forced */
        if (k < 0 || (!hosts && strcmp(algos[c][k], "hier") == 0))
            continue;
        off += (size_t)snprintf(algo + off, sizeof(algo) - off, "%s%s:%s", off ? "," : "", colls[c],
                                algos[c][k]);
    }
    setenv("RDT_ALGO", algo, 1);
    setenv("RDT_CHUNK", chunks[rdt_test_rand(rng) % 5], 1);
    snprintf(v, sizeof(v), "%d", 1 + (int)(rdt_test_rand(rng) % 4));
    setenv("RDT_SLICES", v, 1);
    /* hosts: 0 = one host, 1 = ranks 0,1 | 2,3, 2 = ranks 0,2 | 1,3 */
    if (hosts) {
        snprintf(v, sizeof(v), "soak-%c", 'a' + (hosts == 1 ? rank / 2 : rank % 2));
        setenv("RDT_HOSTNAME", v, 1);
    } else {
        unsetenv("RDT_HOSTNAME");
    }
    snprintf(tok, sizeof(tok), "%s-phase-%d", token, phase); /* no stray rank of the last one */
    setenv("RDT_TOKEN", tok, 1);
    snprintf(desc, desclen, "RDT_ALGO='%s' RDT_CHUNK=%s RDT_SLICES=%s hosts=%s", getenv("RDT_ALGO"),
             getenv("RDT_CHUNK"), getenv("RDT_SLICES"),
             hosts == 0   ? "one"
             : hosts == 1 ? "ab|cd"
                          : "ac|bd");
}

/* ---- running and checking ----------------------------------------------------------------- */

static void describe(const opdesc_t *d, long index, char *buf, size_t len)
{
    snprintf(buf, len, "op %ld: %s %s %s count %zu root %d %s%s (pair %d->%d, shift %d)", index,
             kind_names[d->kind], rdt_dtype_name((rdt_dtype_t)d->dtype),
             rdt_op_name((rdt_op_t)d->op), d->count, d->root,
             d->in_place ? "in place" : "out of place", d->rev ? " on the reversed comm" : "", d->a,
             d->b, d->shift);
}

/* Allocate and fill the buffers of one operation, and its expected output. */
static int prepare(opbuf_t *o)
{
    const opdesc_t *d = &o->d;
    size_t es = dsize(d->dtype), n = d->count, j, q;
    int me = o->rank, root_like = d->kind == K_REDUCE ? d->root : -1;

    switch (d->kind) {
    case K_REDUCE_SCATTER:
        o->send_bytes = P * n * es;
        o->recv_bytes = n * es;
        break;
    case K_ALLGATHER:
        o->send_bytes = n * es;
        o->recv_bytes = P * n * es;
        break;
    case K_ALLTOALL:
        o->send_bytes = o->recv_bytes = P * n * es;
        break;
    case K_BARRIER:
        o->send_bytes = o->recv_bytes = 0;
        break;
    default:
        o->send_bytes = o->recv_bytes = n * es;
        break;
    }
    o->send = malloc(o->send_bytes + 1);
    o->orig = malloc(o->send_bytes + 1);
    o->recv = malloc(o->recv_bytes + 1);
    o->want = malloc(o->recv_bytes + 1);
    if (!o->send || !o->orig || !o->recv || !o->want)
        return -1;
    memset(o->recv, POISON, o->recv_bytes);
    memset(o->want, POISON, o->recv_bytes);

    switch (d->kind) {
    case K_ALLREDUCE:
    case K_REDUCE:
        for (j = 0; j < n; j++)
            put_input(o->send, j, d, me, j);
        if (d->kind == K_ALLREDUCE || me == root_like)
            for (j = 0; j < n; j++)
                put_reduced(o->want, j, d, j);
        else if (d->in_place)
            memcpy(o->want, o->send, o->recv_bytes); /* not written */
        break;
    case K_REDUCE_SCATTER:
        for (j = 0; j < P * n; j++)
            put_input(o->send, j, d, me, j);
        for (j = 0; j < n; j++)
            put_reduced(o->want, j, d, (size_t)me * n + j);
        break;
    case K_ALLGATHER:
        for (j = 0; j < n; j++)
            put_input(o->send, j, d, me, j);
        for (q = 0; q < P; q++)
            for (j = 0; j < n; j++)
                put_input(o->want, q * n + j, d, (int)q, j);
        break;
    case K_BROADCAST:
        for (j = 0; j < n; j++)
            put_input(o->send, j, d, d->root, j);
        if (me != d->root)
            memset(o->send, POISON, o->send_bytes); /* only the root's is read */
        for (j = 0; j < n; j++)
            put_input(o->want, j, d, d->root, j);
        break;
    case K_ALLTOALL: /* block t of rank q's input goes to rank t */
        for (q = 0; q < P; q++)
            for (j = 0; j < n; j++) {
                put_input(o->send, q * n + j, d, me, q * n + j);
                put_input(o->want, q * n + j, d, (int)q, (size_t)me * n + j);
            }
        break;
    case K_SENDRECV_PAIR:
        for (j = 0; j < n; j++)
            put_input(o->send, j, d, me, j);
        if (me == d->b)
            for (j = 0; j < n; j++)
                put_input(o->want, j, d, d->a, j);
        break;
    case K_SENDRECV_SHIFT:
        for (j = 0; j < n; j++) {
            put_input(o->send, j, d, me, j);
            put_input(o->want, j, d, (me - d->shift + P) % P, j);
        }
        break;
    default:
        break;
    }
    memcpy(o->orig, o->send, o->send_bytes);
    /* In place: the input is where the output goes (reduce_scatter: the send buffer itself, its
     * slot copied out by finish()). */
    if (d->in_place) {
        if (d->kind == K_ALLGATHER)
            memcpy(o->recv + (size_t)me * n * es, o->send, n * es);
        else if (d->kind == K_ALLREDUCE || d->kind == K_BROADCAST || d->kind == K_REDUCE ||
                 d->kind == K_ALLTOALL)
            memcpy(o->recv, o->send, o->send_bytes);
    }
    return 0;
}

/* After completion: an in-place reduce_scatter's result is this rank's slot of the send buffer. */
static void finish(opbuf_t *o)
{
    size_t blk = o->d.count * dsize(o->d.dtype);

    if (o->d.in_place && o->d.kind == K_REDUCE_SCATTER)
        memcpy(o->recv, o->send + (size_t)o->rank * blk, blk);
}

/* Start (nonblocking: @p blocking 0) or run one operation. */
static rdt_status_t launch(opbuf_t *o, int blocking)
{
    const opdesc_t *d = &o->d;
    rdt_dtype_t dt = (rdt_dtype_t)d->dtype;
    rdt_op_t op = (rdt_op_t)d->op;
    size_t n = d->count, es = dsize(d->dtype);
    int ip = d->in_place, me = o->rank;
    rdt_comm_t *c = o->comm;
    void *recv = o->recv;
    const void *send = ip ? (const void *)o->recv : o->send;
    rdt_request_t **r = blocking ? NULL : &o->req[0];

    switch (d->kind) {
    case K_ALLREDUCE:
        return r ? rdt_iallreduce(c, send, recv, n, dt, op, r)
                 : rdt_allreduce(c, send, recv, n, dt, op);
    case K_REDUCE_SCATTER:
        if (ip) { /* the receive buffer is this rank's slot of the send buffer */
            send = o->send;
            recv = o->send + (size_t)me * n * es;
        }
        return r ? rdt_ireduce_scatter(c, send, recv, n, dt, op, r)
                 : rdt_reduce_scatter(c, send, recv, n, dt, op);
    case K_ALLGATHER:
        if (ip)
            send = o->recv + (size_t)me * n * es;
        return r ? rdt_iallgather(c, send, recv, n, dt, r) : rdt_allgather(c, send, recv, n, dt);
    case K_BROADCAST:
        return r ? rdt_ibroadcast(c, send, recv, n, dt, d->root, r)
                 : rdt_broadcast(c, send, recv, n, dt, d->root);
    case K_REDUCE:
        return r ? rdt_ireduce(c, send, recv, n, dt, op, d->root, r)
                 : rdt_reduce(c, send, recv, n, dt, op, d->root);
    case K_ALLTOALL:
        return r ? rdt_ialltoall(c, send, recv, n, dt, r) : rdt_alltoall(c, send, recv, n, dt);
    case K_BARRIER:
        return r ? rdt_ibarrier(c, r) : rdt_barrier(c);
    case K_SENDRECV_PAIR:
        if (me == d->a)
            return r ? rdt_isend(c, o->send, n, dt, d->b, r) : rdt_send(c, o->send, n, dt, d->b);
        if (me == d->b)
            return r ? rdt_irecv(c, o->recv, n, dt, d->a, r) : rdt_recv(c, o->recv, n, dt, d->a);
        return RDT_SUCCESS;
    case K_SENDRECV_SHIFT: {
        rdt_status_t st = rdt_irecv(c, o->recv, n, dt, (me - d->shift + P) % P, &o->req[0]);
        if (st != RDT_SUCCESS)
            return st;
        return rdt_isend(c, o->send, n, dt, (me + d->shift) % P, &o->req[1]);
    }
    default:
        return RDT_ERR_INTERNAL;
    }
}

/* 0 if the operation did exactly what it must; else say what differs. */
static int check(const opbuf_t *o, long index, int world_rank)
{
    const opdesc_t *d = &o->d;
    size_t es = dsize(d->dtype), j;
    char what[256];

    describe(d, index, what, sizeof(what));
    if (memcmp(o->recv, o->want, o->recv_bytes) != 0) {
        for (j = 0; j < o->recv_bytes && o->recv[j] == o->want[j]; j++) {
        }
        fprintf(stderr,
                "rank %d (rank %d in its comm): %s: output element %zu (byte %zu of %zu) "
                "is wrong: got %02x, want %02x%s\n",
                world_rank, o->rank, what, j / es, j, o->recv_bytes, o->recv[j], o->want[j],
                o->want[j] == POISON ? " (this byte must not be written)" : "");
        return 1;
    }
    if (!d->in_place && memcmp(o->send, o->orig, o->send_bytes) != 0) {
        fprintf(stderr, "rank %d: %s: the send buffer was modified\n", world_rank, what);
        return 1;
    }
    return 0;
}

static void release(opbuf_t *o)
{
    free(o->send);
    free(o->orig);
    free(o->recv);
    free(o->want);
    memset(o, 0, sizeof(*o));
}

/* Complete requests by polling rdt_test (the other way than rdt_waitall); bounded by the
 * engine's RDT_TIMEOUT, which fails a stuck request. Returns the first error. */
static rdt_status_t test_all(rdt_request_t **reqs, int n)
{
    rdt_status_t first = RDT_SUCCESS;
    int left = 1, i;

    while (left) {
        left = 0;
        for (i = 0; i < n; i++) {
            int done = 0;
            rdt_status_t st;
            if (!reqs[i])
                continue;
            st = rdt_test(reqs[i], &done);
            if (done || st != RDT_SUCCESS) {
                reqs[i] = NULL; /* freed by rdt_test */
                if (first == RDT_SUCCESS)
                    first = st;
            } else {
                left = 1;
            }
        }
        if (left)
            sched_yield(); /* 4 ranks on fewer cores: let the peer we wait for run */
    }
    return first;
}

static int rank_main(int rank, int nranks, void *arg)
{
    const soak_t *s = arg;
    uint64_t rng = s->seed;
    const char *token = getenv("RDT_TOKEN");
    char base_token[64], desc[400];
    long done = 0, bytes = 0, per_phase, mine[2] = {0, 0};
    int phases = 6, phase;

    if (nranks != P || !token)
        return 2;
    snprintf(base_token, sizeof(base_token), "%s", token);
    setenv("RDT_TRANSPORT", s->transport, 1);
    setenv("RDT_TIMEOUT", "60", 1);
    per_phase = (s->ops + phases - 1) / phases;
    for (phase = 0; phase < phases && done < s->ops; phase++) {
        rdt_comm_t *world = NULL, *rev = NULL;
        long n = 0;
        rdt_status_t st;

        draw_phase(&rng, rank, phase, base_token, desc, sizeof(desc));
        st = rdt_comm_create_from_env(&world);
        if (st == RDT_SUCCESS)
            st = rdt_comm_split(world, 0, P - 1 - rank, &rev);
        if (st != RDT_SUCCESS) {
            fprintf(stderr, "rank %d: phase %d (%s): create: %s: %s\n", rank, phase, desc,
                    rdt_status_str(st), rdt_comm_last_error(world));
            return 3;
        }
        if (rank == 0)
            printf("test_soak: %s: phase %d: %s\n", s->transport, phase, desc), fflush(stdout);
        while (n < per_phase && done < s->ops) {
            opbuf_t ob[MAX_BATCH];
            int blocking = rdt_test_rand(&rng) % 3 == 0;
            int k = blocking ? 1 : 2 + (int)(rdt_test_rand(&rng) % (MAX_BATCH - 1)), i, bad = 0;
            rdt_request_t *reqs[2 * MAX_BATCH];

            if (k > s->ops - done) /* the same on every rank: the total is exact */
                k = (int)(s->ops - done);

            memset(ob, 0, sizeof(ob));
            memset(reqs, 0, sizeof(reqs));
            for (i = 0; i < k; i++) {
                draw_op(&rng, &ob[i].d, blocking);
                ob[i].comm = ob[i].d.rev ? rev : world;
                ob[i].rank = rdt_comm_rank(ob[i].comm);
                if (prepare(&ob[i]) != 0) {
                    fprintf(stderr, "rank %d: out of memory\n", rank);
                    return 4;
                }
            }
            for (i = 0; i < k && !bad; i++) {
                if (ob[i].d.kind == K_BARRIER) {
                    /* every rank counts itself in before entering; once a barrier completes,
                     * every rank has entered its barrier number mine[rev] */
                    mine[ob[i].d.rev]++;
                    __atomic_fetch_add(&s->entered[ob[i].d.rev], 1, __ATOMIC_SEQ_CST);
                }
                st = launch(&ob[i], blocking);
                reqs[2 * i] = ob[i].req[0];
                reqs[2 * i + 1] = ob[i].req[1];
                if (st != RDT_SUCCESS) {
                    describe(&ob[i].d, done + i, desc, sizeof(desc));
                    fprintf(stderr, "rank %d: %s: %s: %s\n", rank, desc, rdt_status_str(st),
                            rdt_comm_last_error(ob[i].comm));
                    bad = 1;
                }
            }
            if (!bad && !blocking) {
                if (rdt_test_rand(&rng) % 2)
                    st = rdt_waitall((size_t)(2 * k), reqs);
                else
                    st = test_all(reqs, 2 * k);
                if (st != RDT_SUCCESS) {
                    fprintf(stderr, "rank %d: op %ld..%ld: completion: %s: %s | %s\n", rank, done,
                            done + k - 1, rdt_status_str(st), rdt_comm_last_error(world),
                            rdt_comm_last_error(rev));
                    bad = 1;
                }
            }
            for (i = 0; i < 2 && !bad; i++) {
                long all = __atomic_load_n(&s->entered[i], __ATOMIC_SEQ_CST);
                if (all < P * mine[i]) {
                    fprintf(stderr,
                            "rank %d: a barrier on the %s comm completed when %ld "
                            "entries of %d ranks into %ld barriers were counted (want %ld)\n",
                            rank, i ? "reversed" : "world", all, P, mine[i], P * mine[i]);
                    bad = 1;
                }
            }
            for (i = 0; i < k; i++) {
                if (!bad)
                    finish(&ob[i]);
                if (!bad && check(&ob[i], done + i, rank))
                    bad = 1;
                bytes += (long)(ob[i].send_bytes > ob[i].recv_bytes ? ob[i].send_bytes
                                                                    : ob[i].recv_bytes);
                release(&ob[i]);
            }
            if (bad) {
                fprintf(stderr, "rank %d: failed in phase %d (RDT_ALGO='%s'), seed %" PRIu64 "\n",
                        rank, phase, getenv("RDT_ALGO"), s->seed);
                rdt_comm_abort(world); /* the others fail at once rather than time out */
                return 5;
            }
            done += k;
            n += k;
            s->checked[rank] = done;
            s->bytes[rank] = bytes;
        }
        rdt_comm_destroy(rev);
        rdt_comm_destroy(world);
    }
    return 0;
}

static void run_soak(const char *transport)
{
    soak_t s;
    const char *seed = getenv("RDT_TEST_SEED"), *ops = getenv("RDT_SOAK_OPS");
    long *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int statuses[P], rc, i;
    struct timespec t0, t1;
    double secs;

    assert_true(shared != MAP_FAILED);
    memset(shared, 0, 4096);
    memset(&s, 0, sizeof(s));
    s.transport = transport;
    s.seed = seed ? strtoull(seed, NULL, 0) : (uint64_t)time(NULL) * 1000003u + (uint64_t)getpid();
    s.ops = ops ? atol(ops) : 8000;
    s.checked = shared;
    s.bytes = shared + P;
    s.entered = shared + 2 * P;
    printf("test_soak: %s: %ld operations on %d ranks, seed %" PRIu64
           " (replay: RDT_TEST_SEED=%" PRIu64 ")\n",
           transport, s.ops, P, s.seed, s.seed);
    fflush(stdout);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = rdt_spawn_local(P, rank_main, &s, SPAWN_TIMEOUT, statuses);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    for (i = 0; i < P; i++)
        if (statuses[i] != 0)
            fprintf(stderr, "test_soak: rank %d exited with %d\n", i, statuses[i]);
    printf("test_soak: %s: %ld operations checked on each of %d ranks (%ld in all, %.1f MiB of "
           "vectors per rank) in %.1f s, seed %" PRIu64 "\n",
           transport, shared[0], P, shared[0] + shared[1] + shared[2] + shared[3],
           (double)shared[P] / (1 << 20), secs, s.seed);
    for (i = 0; i < P; i++)
        assert_int_equal(shared[i], s.ops);
    munmap(shared, 4096);
    assert_int_equal(rc, 0);
}

static void test_soak_random_operations_over_shared_memory_are_exact(void **state)
{
    (void)state;
    run_soak("auto");
}

static void test_soak_random_operations_over_tcp_are_exact(void **state)
{
    (void)state;
    run_soak("tcp");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_soak_random_operations_over_shared_memory_are_exact),
        cmocka_unit_test(test_soak_random_operations_over_tcp_are_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
