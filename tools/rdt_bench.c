/*
 * rdt_bench.c - nccl-tests style benchmark of every rdmatrain collective.
 *
 *   rdt_bench [-n NRANKS] [-c COLLS] [-b MINBYTES] [-e MAXBYTES] [-f FACTOR] [-w WARMUP]
 *             [-i ITERS | -T SECONDS] [-r BATCHES] [-m MAXITERS] [-d DTYPES] [-o OPS]
 *             [-R ROOT] [-a ALGO] [-k 0|1] [-G 0|1] [-M 0|1] [-P 0|1] [-j JSON_FILE]
 *             [-t TIMEOUT]
 *
 * With -n N the program forks N ranks on this host (tools/spawn.h: 127.0.0.1, fresh port and
 * token). Without -n it is one rank of a job that someone else started (the rdmatrain launcher,
 * mpirun, srun, torchrun): rdt_comm_create_from_env() reads their variables.
 *
 * Output, printed by rank 0: a "# setup:" line with rank 0's time in rdt_comm_create_from_env and
 * in the first rdt_barrier (which makes the connections it needs: they are made on first use),
 * then one row per message size, as nccl-tests:
 *
 *   size count type redop root | time algbw busbw #wrong | time algbw busbw #wrong
 *                                 out-of-place              in-place
 *
 *   size   bytes of the per-rank buffer as nccl-tests counts them: count * esize for allreduce,
 *          broadcast and reduce; the whole vector nranks * count * esize for allgather (receive
 *          side), reduce_scatter (send side) and alltoall.
 *   count  the count argument of the call (elements; per rank, or per block for alltoall).
 *   algbw  size / time (GB/s, 1 GB = 1e9 B).
 *   busbw  algbw * 2(n-1)/n for allreduce, * (n-1)/n for reduce_scatter, allgather and
 *          alltoall, * 1 for broadcast and reduce (nccl-tests' definitions).
 *
 * Method, per size and per mode (the peer benchmark's, so that the numbers compare):
 *   1. correctness: every rank fills its input with small integers v(r, i) chosen per op so that
 *      the result is an exact integer <= 127 in every dtype (see pattern_reduce()), one call is
 *      made into a receive buffer poisoned with 0xff bytes, and every element is compared bit
 *      for bit with a reference computed here; #wrong is summed over ranks (rdt_allreduce, int64).
 *   2. warmup: -w calls, untimed.
 *   3. probe (with -T): batches of 1, 8, 64, ... calls until one takes >= 5 ms on the slowest
 *      rank, which gives the per-call estimate.
 *   4. timing: -T seconds' worth of calls (or -i calls), split into -r batches, each started
 *      by rdt_barrier; each rank's mean time per call in a batch is averaged across ranks
 *      (rdt_allreduce), and the reported time is the median of the batches.
 *
 * Exit status: 0, 1 if any element was wrong, 2 if an rdt_ call failed or a rank died.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rdmatrain.h"
#include "spawn.h"

/* The benchmark's own list of collectives (the public API has no enum of them). */
typedef enum {
    BENCH_ALLREDUCE,
    BENCH_REDUCE_SCATTER,
    BENCH_ALLGATHER,
    BENCH_BROADCAST,
    BENCH_REDUCE,
    BENCH_ALLTOALL,
    BENCH_BARRIER,
    BENCH_COLL_COUNT
} bench_coll_t;

static const char *const coll_names[BENCH_COLL_COUNT] = {
    "allreduce", "reduce_scatter", "allgather", "broadcast", "reduce", "alltoall", "barrier",
};

/* Period of the fill patterns in elements: a prime, so that a block misplaced by a power-of-two
 * offset does not land on the same values. */
#define PATTERN_PERIOD 1021
/* Every value and every expected result is an integer in [0, VALUE_MAX]: exact in int8 and in
 * bfloat16 (8 significant bits), and no partial sum of non-negative values exceeds it. */
#define VALUE_MAX   127
#define POISON_BYTE 0xff
/* A probe batch shorter than this does not give a usable per-call time. */
#define PROBE_MIN_S 5e-3

typedef struct bench_opts {
    int nranks;      /* -n; 0: one rank of an external job */
    unsigned colls;  /* bit mask of bench_coll_t */
    unsigned dtypes; /* bit mask of rdt_dtype_t */
    unsigned ops;    /* bit mask of rdt_op_t */
    size_t minb, maxb;
    size_t factor;
    int warmup;
    long iters; /* -i; 0: size the batches with -T */
    double target_s;
    int batches;
    long max_iters;
    int root;
    const char *algo; /* -a, NULL if not given */
    int check;
    int reg; /* -G: rdt_mem_register the buffers */
    int mapped; /* -M: buffers from rdt_mem_alloc */
    int huge;   /* -P: madvise(MADV_HUGEPAGE) the (posix_memalign) buffers */
    const char *json;
    int timeout_s; /* -t; 0: estimated from the other options */
} bench_opts_t;

/* Everything one rank needs while it runs. */
typedef struct bench_rank {
    const bench_opts_t *opt;
    rdt_comm_t *comm;
    int rank, nranks;
    unsigned char *sbuf, *rbuf;
    rdt_mem_t *sreg, *rreg; /* with -G 1 */
    size_t bufsize;
    /* the collective being measured */
    bench_coll_t coll;
    rdt_dtype_t dtype;
    rdt_op_t op;
    size_t esize;
    int inplace;                         /* the mode being measured */
    unsigned char enc[VALUE_MAX + 1][8]; /* value v encoded in dtype */
    unsigned char *tab_in, *tab_exp;     /* PATTERN_PERIOD encoded elements each */
} bench_rank_t;

typedef struct mode_result {
    double time_s; /* median over batches of the per-call time averaged across ranks */
    int64_t wrong; /* -1 if not checked */
    long iters;    /* timed calls in total */
} mode_result_t;

typedef struct json_row {
    bench_coll_t coll;
    rdt_dtype_t dtype;
    rdt_op_t op;
    int root;
    size_t size, count;
    mode_result_t res[2];
    int has_inplace;
} json_row_t;

/* Rank 0's record of the rows, rewritten to -j after every row. */
static json_row_t *json_rows;
static size_t json_nrows, json_cap;

/* Used by bench_fail() to name the error and to abort the peers. */
static rdt_comm_t *g_comm;
static int g_rank = -1;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* An rdt_ call failed: say which and why, make the peers fail fast rather than time out, exit 2. */
static void bench_fail(rdt_status_t st, const char *what)
{
    fprintf(stderr, "rdt_bench: rank %d: %s failed: %s: %s\n", g_rank, what, rdt_status_str(st),
            rdt_comm_last_error(g_comm));
    fflush(stderr);
    if (g_comm)
        rdt_comm_abort(g_comm);
    exit(2);
}

static void check_rc(rdt_status_t st, const char *what)
{
    if (st != RDT_SUCCESS)
        bench_fail(st, what);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p) {
        fprintf(stderr, "rdt_bench: rank %d: out of memory (%zu bytes)\n", g_rank, n);
        exit(2);
    }
    return p;
}

/* ------------------------------------------------------------------------------------------- */
/* Collective descriptions                                                                      */
/* ------------------------------------------------------------------------------------------- */

static int coll_is_reduction(bench_coll_t c)
{
    return c == BENCH_ALLREDUCE || c == BENCH_REDUCE_SCATTER || c == BENCH_REDUCE;
}

static int coll_has_root(bench_coll_t c)
{
    return c == BENCH_BROADCAST || c == BENCH_REDUCE;
}

/* 1 if the size column counts the whole vector of nranks blocks (nccl-tests). */
static int coll_size_is_total(bench_coll_t c)
{
    return c == BENCH_ALLGATHER || c == BENCH_REDUCE_SCATTER || c == BENCH_ALLTOALL;
}

static double coll_bus_factor(bench_coll_t c, int n)
{
    switch (c) {
    case BENCH_ALLREDUCE:
        return 2.0 * (n - 1) / n;
    case BENCH_REDUCE_SCATTER:
    case BENCH_ALLGATHER:
    case BENCH_ALLTOALL:
        return (double)(n - 1) / n;
    case BENCH_BROADCAST:
    case BENCH_REDUCE:
        return 1.0;
    default:
        return 0.0;
    }
}

/* Issue the measured collective once. */
static rdt_status_t coll_call(const bench_rank_t *b, const void *src, void *dst, size_t count)
{
    switch (b->coll) {
    case BENCH_ALLREDUCE:
        return rdt_allreduce(b->comm, src, dst, count, b->dtype, b->op);
    case BENCH_REDUCE_SCATTER:
        return rdt_reduce_scatter(b->comm, src, dst, count, b->dtype, b->op);
    case BENCH_ALLGATHER:
        return rdt_allgather(b->comm, src, dst, count, b->dtype);
    case BENCH_BROADCAST:
        return rdt_broadcast(b->comm, src, dst, count, b->dtype, b->opt->root);
    case BENCH_REDUCE:
        return rdt_reduce(b->comm, src, dst, count, b->dtype, b->op, b->opt->root);
    case BENCH_ALLTOALL:
        return rdt_alltoall(b->comm, src, dst, count, b->dtype);
    case BENCH_BARRIER:
        return rdt_barrier(b->comm);
    default:
        return RDT_ERR_INVALID_ARG;
    }
}

static void coll_call_checked(const bench_rank_t *b, const void *src, void *dst, size_t count)
{
    rdt_status_t st = coll_call(b, src, dst, count);
    char what[160];

    if (st == RDT_SUCCESS)
        return;
    if (b->coll == BENCH_BARRIER)
        snprintf(what, sizeof(what), "rdt_barrier");
    else
        snprintf(what, sizeof(what), "rdt_%s(count %zu, %s%s%s, %s)", coll_names[b->coll], count,
                 rdt_dtype_name(b->dtype), coll_is_reduction(b->coll) ? ", " : "",
                 coll_is_reduction(b->coll) ? rdt_op_name(b->op) : "",
                 b->inplace ? "in place" : "out of place");
    bench_fail(st, what);
}

/*
 * Buffers of one call, per the header's in-place convention. Out of place reads sbuf and writes
 * rbuf; in place everything lives in rbuf:
 *
 *   allgather       rbuf = [ blk 0 | blk 1 | ... ]      src = rbuf + rank * count * esize
 *   reduce_scatter  rbuf = [ blk 0 | blk 1 | ... ]      dst = rbuf + rank * count * esize
 *
 * reduce passes NULL as recvbuf on non-roots out of place, which the header allows.
 */
static void coll_buffers(const bench_rank_t *b, int inplace, size_t count, void **src_p,
                         void **dst_p)
{
    size_t slot = (size_t)b->rank * count * b->esize;

    if (!inplace) {
        *src_p = b->sbuf;
        *dst_p = b->rbuf;
        if (b->coll == BENCH_REDUCE && b->rank != b->opt->root)
            *dst_p = NULL;
        return;
    }
    *src_p = b->rbuf;
    *dst_p = b->rbuf;
    if (b->coll == BENCH_ALLGATHER)
        *src_p = b->rbuf + slot;
    else if (b->coll == BENCH_REDUCE_SCATTER)
        *dst_p = b->rbuf + slot;
}

/* ------------------------------------------------------------------------------------------- */
/* Patterns and the reference                                                                   */
/* ------------------------------------------------------------------------------------------- */

/* Value of element j (mod PATTERN_PERIOD) on rank r for the collectives that only move data, and
 * for min and max: rank-dependent, position-dependent, at most 12 + 13 * 7 = 103. */
static int pattern_base(int r, size_t j)
{
    return (int)((3 * j + 5 * (size_t)r) % 13 + 13 * ((j / 13 + (size_t)r) % 8));
}

/*
 * Input of rank r at element j for a reduction @p op over @p n ranks, chosen so that every partial
 * and final result is an exact integer in [0, VALUE_MAX] whatever the reduction order:
 *  sum   values <= vmax on at most q contributing ranks per element, q * vmax <= 127;
 *  avg   ranks paired r <-> n-1-r with values a and 2k-a (the middle rank of an odd n holds k), so
 *        the sum is exactly n * k and the average k is exact in every type and rounding mode;
 *  prod  1 or 2 with at most 6 twos per element (product <= 64), and now and then one 0;
 *  min, max  pattern_base().
 */
static int pattern_reduce(rdt_op_t op, int r, size_t j, int n)
{
    size_t ur = (size_t)r, un = (size_t)n;

    switch (op) {
    case RDT_SUM: {
        size_t s = (un + VALUE_MAX - 1) / VALUE_MAX; /* 1 up to 127 ranks */
        size_t q = (un + s - 1) / s;
        size_t vmax = VALUE_MAX / q < 12 ? VALUE_MAX / q : 12;
        return (j + ur) % s == 0 ? (int)((3 * j + 5 * ur) % (vmax + 1)) : 0;
    }
    case RDT_AVG: {
        size_t kmax = VALUE_MAX / un < 6 ? VALUE_MAX / un : 6;
        size_t k = j % (kmax + 1), h = un / 2;
        if (un % 2 && ur == h)
            return (int)k;
        if (ur < h)
            return (int)((3 * j + 5 * ur) % (2 * k + 1));
        return (int)(2 * k - (3 * j + 5 * (un - 1 - ur)) % (2 * k + 1));
    }
    case RDT_PROD: {
        size_t s = (un + 5) / 6 > 2 ? (un + 5) / 6 : 2;
        if (j % 31 == 30 && ur == (j / 31) % un)
            return 0;
        return (j + ur) % s == 0 && (j / 7 + ur) % 3 != 2 ? 2 : 1;
    }
    default:
        return pattern_base(r, j);
    }
}

/* Exact reduction of the integer inputs of all ranks at element j. */
static int reference_reduce(rdt_op_t op, size_t j, int n)
{
    int64_t acc = pattern_reduce(op, 0, j, n);
    int r;

    for (r = 1; r < n; r++) {
        int64_t v = pattern_reduce(op, r, j, n);
        switch (op) {
        case RDT_PROD:
            acc *= v;
            break;
        case RDT_MIN:
            acc = v < acc ? v : acc;
            break;
        case RDT_MAX:
            acc = v > acc ? v : acc;
            break;
        default: /* SUM, AVG */
            acc += v;
            break;
        }
    }
    if (op == RDT_AVG)
        acc /= n;
    return (int)acc;
}

/* IEEE binary16 bits of a small non-negative integer (exact below 2048). */
static uint16_t int_to_half_bits(int v)
{
    int e = 0;

    if (v == 0)
        return 0;
    while ((v >> (e + 1)) != 0)
        e++;
    return (uint16_t)(((e + 15) << 10) | ((v << (10 - e)) & 0x3ff));
}

/* enc[v] = the bytes of v in @p dtype, for every value a pattern or a result can take. */
static void encode_table(bench_rank_t *b)
{
    int v;

    for (v = 0; v <= VALUE_MAX; v++) {
        unsigned char *e = b->enc[v];
        memset(e, 0, sizeof(b->enc[v]));
        switch (b->dtype) {
        case RDT_INT8: {
            int8_t x = (int8_t)v;
            memcpy(e, &x, sizeof(x));
            break;
        }
        case RDT_UINT8: {
            uint8_t x = (uint8_t)v;
            memcpy(e, &x, sizeof(x));
            break;
        }
        case RDT_INT32: {
            int32_t x = v;
            memcpy(e, &x, sizeof(x));
            break;
        }
        case RDT_UINT32: {
            uint32_t x = (uint32_t)v;
            memcpy(e, &x, sizeof(x));
            break;
        }
        case RDT_INT64: {
            int64_t x = v;
            memcpy(e, &x, sizeof(x));
            break;
        }
        case RDT_UINT64: {
            uint64_t x = (uint64_t)v;
            memcpy(e, &x, sizeof(x));
            break;
        }
        case RDT_FLOAT16: {
            uint16_t x = int_to_half_bits(v);
            memcpy(e, &x, sizeof(x));
            break;
        }
        case RDT_BFLOAT16: {
            float f = (float)v;
            uint32_t bits;
            uint16_t x;
            memcpy(&bits, &f, sizeof(bits));
            x = (uint16_t)(bits >> 16); /* exact: v has at most 7 significant bits */
            memcpy(e, &x, sizeof(x));
            break;
        }
        case RDT_FLOAT32: {
            float x = (float)v;
            memcpy(e, &x, sizeof(x));
            break;
        }
        case RDT_FLOAT64: {
            double x = (double)v;
            memcpy(e, &x, sizeof(x));
            break;
        }
        default:
            break;
        }
    }
}

/* tab[j] = what rank r contributes at element j (encoded). */
static void table_input(const bench_rank_t *b, unsigned char *tab, int r)
{
    size_t j;

    for (j = 0; j < PATTERN_PERIOD; j++) {
        int v = coll_is_reduction(b->coll) ? pattern_reduce(b->op, r, j, b->nranks)
                                           : pattern_base(r, j);
        memcpy(tab + j * b->esize, b->enc[v], b->esize);
    }
}

/* tab[j] = the expected result of the reduction at element j (encoded). */
static void table_expected(const bench_rank_t *b, unsigned char *tab)
{
    size_t j;

    for (j = 0; j < PATTERN_PERIOD; j++)
        memcpy(tab + j * b->esize, b->enc[reference_reduce(b->op, j, b->nranks)], b->esize);
}

/* buf[i] = tab[(phase + i) % PATTERN_PERIOD] for i < n. */
static void fill_periodic(unsigned char *buf, size_t n, size_t esize, const unsigned char *tab,
                          size_t phase)
{
    size_t j = phase % PATTERN_PERIOD, i = 0;

    while (i < n) {
        size_t run = PATTERN_PERIOD - j < n - i ? PATTERN_PERIOD - j : n - i;
        memcpy(buf + i * esize, tab + j * esize, run * esize);
        i += run;
        j = 0;
    }
}

#define COUNT_WRONG_LOOP(T)                                                                        \
    do {                                                                                           \
        const T *p_ = (const T *)(const void *)buf, *t_ = (const T *)(const void *)tab;            \
        for (i = 0; i < n; i++) {                                                                  \
            wrong += p_[i] != t_[j];                                                               \
            if (++j == PATTERN_PERIOD)                                                             \
                j = 0;                                                                             \
        }                                                                                          \
    } while (0)

/* Number of elements of buf that differ, bit for bit, from the periodic table. */
static int64_t count_wrong(const unsigned char *buf, size_t n, size_t esize,
                           const unsigned char *tab, size_t phase)
{
    size_t i, j = phase % PATTERN_PERIOD;
    int64_t wrong = 0;

    /* Compared as unsigned integers of the element's width: NaN != NaN, and the results are
     * never -0, so bit equality is value equality here. */
    switch (esize) {
    case 1:
        COUNT_WRONG_LOOP(uint8_t);
        break;
    case 2:
        COUNT_WRONG_LOOP(uint16_t);
        break;
    case 4:
        COUNT_WRONG_LOOP(uint32_t);
        break;
    default:
        COUNT_WRONG_LOOP(uint64_t);
        break;
    }
    return wrong;
}

/* Elements the receive side of a call holds (the poisoned region out of place). */
static size_t coll_out_count(const bench_rank_t *b, size_t count)
{
    return coll_size_is_total(b->coll) && b->coll != BENCH_REDUCE_SCATTER
               ? count * (size_t)b->nranks
               : count;
}

/* Elements the send side of a call holds. */
static size_t coll_in_count(const bench_rank_t *b, size_t count)
{
    return b->coll == BENCH_REDUCE_SCATTER || b->coll == BENCH_ALLTOALL ? count * (size_t)b->nranks
                                                                        : count;
}

/*
 * Fill the buffers of one call: the receive side with @p poison bytes, then this rank's input
 * (in place, the input overwrites the part of the receive side that it shares).
 */
static void prepare_buffers(bench_rank_t *b, int inplace, size_t count, int poison)
{
    void *src, *dst;

    coll_buffers(b, inplace, count, &src, &dst);
    /* reduce_scatter in place: the output is a slot of the input, which is filled below */
    if (dst && !(b->coll == BENCH_REDUCE_SCATTER && inplace))
        memset(dst, poison, coll_out_count(b, count) * b->esize);
    if (b->coll == BENCH_BROADCAST && b->rank != b->opt->root) {
        if (!inplace)
            memset(src, poison, count * b->esize); /* not the root's: must not be read */
        return;
    }
    table_input(b, b->tab_in, b->rank);
    fill_periodic(src, coll_in_count(b, count), b->esize, b->tab_in, 0);
}

/* This rank's wrong elements after the checked call. */
static int64_t verify(bench_rank_t *b, int inplace, size_t count)
{
    void *src, *dst;
    size_t bytes = count * b->esize;
    int64_t wrong = 0;
    int r;

    coll_buffers(b, inplace, count, &src, &dst);
    switch (b->coll) {
    case BENCH_ALLREDUCE:
    case BENCH_REDUCE:
        if (b->coll == BENCH_REDUCE && b->rank != b->opt->root)
            return 0;
        table_expected(b, b->tab_exp);
        return count_wrong(dst, count, b->esize, b->tab_exp, 0);
    case BENCH_REDUCE_SCATTER:
        table_expected(b, b->tab_exp);
        return count_wrong(dst, count, b->esize, b->tab_exp, (size_t)b->rank * count);
    case BENCH_ALLGATHER:
        for (r = 0; r < b->nranks; r++) {
            table_input(b, b->tab_exp, r);
            wrong += count_wrong((unsigned char *)dst + (size_t)r * bytes, count, b->esize,
                                 b->tab_exp, 0);
        }
        return wrong;
    case BENCH_BROADCAST:
        table_input(b, b->tab_exp, b->opt->root);
        return count_wrong(dst, count, b->esize, b->tab_exp, 0);
    case BENCH_ALLTOALL:
        /* block r of mine came from rank r's block for me, at index rank * count of its vector */
        for (r = 0; r < b->nranks; r++) {
            table_input(b, b->tab_exp, r);
            wrong += count_wrong((unsigned char *)dst + (size_t)r * bytes, count, b->esize,
                                 b->tab_exp, (size_t)b->rank * count);
        }
        return wrong;
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------------------------------- */
/* Timing                                                                                       */
/* ------------------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double reduce_double(bench_rank_t *b, double mine, rdt_op_t op)
{
    double out = 0.0;

    check_rc(rdt_allreduce(b->comm, &mine, &out, 1, RDT_FLOAT64, op),
             "rdt_allreduce(1 float64) of the timings");
    return out;
}

/* Seconds this rank spent in @p iters calls, after a barrier that lines the ranks up. */
static double timed_calls(bench_rank_t *b, const void *src, void *dst, size_t count, long iters)
{
    double t0;
    long i;

    check_rc(rdt_barrier(b->comm), "rdt_barrier before a batch");
    t0 = now_s();
    for (i = 0; i < iters; i++)
        coll_call_checked(b, src, dst, count);
    return now_s() - t0;
}

static void run_mode(bench_rank_t *b, int inplace, size_t count, mode_result_t *res)
{
    const bench_opts_t *o = b->opt;
    void *src = NULL, *dst = NULL;
    double *samples, per_call = 0.0;
    long total, batch;
    int i;

    b->inplace = inplace;
    if (b->coll != BENCH_BARRIER)
        coll_buffers(b, inplace, count, &src, &dst);

    /* 1. correctness */
    res->wrong = -1;
    if (o->check && b->coll != BENCH_BARRIER) {
        int64_t mine, all = 0;
        prepare_buffers(b, inplace, count, POISON_BYTE);
        coll_call_checked(b, src, dst, count);
        mine = verify(b, inplace, count);
        check_rc(rdt_allreduce(b->comm, &mine, &all, 1, RDT_INT64, RDT_SUM),
                 "rdt_allreduce(1 int64) of #wrong");
        res->wrong = all;
    }
    /* The timed calls start from the input pattern again (in place, reductions then grow or
     * wrap, never into NaN or denormals, so the speed does not depend on the iteration). */
    if (b->coll != BENCH_BARRIER)
        prepare_buffers(b, inplace, count, 0);

    /* 2. warmup */
    for (i = 0; i < o->warmup; i++)
        coll_call_checked(b, src, dst, count);

    /* 3. probe, 4. timing */
    if (o->iters > 0) {
        total = o->iters;
    } else {
        long probe = 1;
        for (;;) {
            double dt = reduce_double(b, timed_calls(b, src, dst, count, probe), RDT_MAX);
            per_call = dt / (double)probe;
            if (dt >= PROBE_MIN_S || probe * 8 > o->max_iters)
                break;
            probe *= 8;
        }
        total = (long)(o->target_s / (per_call > 0 ? per_call : 1e-9));
        if (total > o->max_iters)
            total = o->max_iters;
    }
    batch = total / o->batches;
    if (batch < 1)
        batch = 1;
    samples = xmalloc(sizeof(*samples) * (size_t)o->batches);
    for (i = 0; i < o->batches; i++) {
        double mine = timed_calls(b, src, dst, count, batch) / (double)batch;
        samples[i] = reduce_double(b, mine, RDT_SUM) / b->nranks;
    }
    qsort(samples, (size_t)o->batches, sizeof(*samples), cmp_double);
    res->time_s = o->batches % 2 ? samples[o->batches / 2]
                                 : 0.5 * (samples[o->batches / 2 - 1] + samples[o->batches / 2]);
    res->iters = batch * o->batches;
    free(samples);
}

/* ------------------------------------------------------------------------------------------- */
/* Output                                                                                       */
/* ------------------------------------------------------------------------------------------- */

static void print_header(const bench_rank_t *b)
{
    const bench_opts_t *o = b->opt;
    const char *algo = getenv("RDT_ALGO");
    char host[256] = "";

    gethostname(host, sizeof(host) - 1);
    printf("# rdt_bench: rdmatrain %d.%d.%d, nranks %d, host %s, %s\n", RDT_VERSION_MAJOR,
           RDT_VERSION_MINOR, RDT_VERSION_PATCH, b->nranks, host,
           o->nranks ? "local ranks (rdt_spawn_local)" : "external launcher");
    printf("# sizes %zu..%zu B x%zu, warmup %d, ", o->minb, o->maxb, o->factor, o->warmup);
    if (o->iters > 0)
        printf("%ld calls/mode", o->iters);
    else
        printf("~%.2f s/mode", o->target_s);
    printf(" in %d batches, time = median over batches of the per-rank mean averaged across"
           " ranks, check %s\n",
           o->batches, o->check ? "on" : "off");
    printf("# RDT_ALGO=%s\n", algo ? algo : "(unset: the library chooses)");
    fflush(stdout);
}

static void print_columns(void)
{
    printf("#%71s %37s\n", "out-of-place", "in-place");
    printf("# %11s %12s %8s %6s %6s %12s %8s %8s %6s %12s %8s %8s %6s\n", "size", "count", "type",
           "redop", "root", "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw", "#wrong");
    printf("# %11s %12s %8s %6s %6s %12s %8s %8s %6s %12s %8s %8s %6s\n", "(B)", "(elements)", "",
           "", "", "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "");
}

static void format_wrong(char *s, size_t n, int64_t wrong)
{
    if (wrong < 0)
        snprintf(s, n, "N/A");
    else
        snprintf(s, n, "%lld", (long long)wrong);
}

static void json_write_mode(FILE *f, const char *pfx, const json_row_t *row, int m, double bus)
{
    const mode_result_t *r = &row->res[m];
    double algbw = row->size > 0 ? (double)row->size / r->time_s / 1e9 : 0.0;

    fprintf(f, ", \"%s_time_us\": %.3f, \"%s_algbw\": %.6f, \"%s_busbw\": %.6f", pfx,
            r->time_s * 1e6, pfx, algbw, pfx, algbw * bus);
    if (r->wrong < 0)
        fprintf(f, ", \"%s_wrong\": null", pfx);
    else
        fprintf(f, ", \"%s_wrong\": %lld", pfx, (long long)r->wrong);
    fprintf(f, ", \"%s_iters\": %ld", pfx, r->iters);
}

static void json_write_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* Rewrite the whole JSON file (through a temporary and rename), so that a run that dies midway
 * leaves a valid file with the rows measured so far. */
static void json_flush(const bench_rank_t *b)
{
    const char *path = b->opt->json;
    const char *algo = getenv("RDT_ALGO");
    char tmp[PATH_MAX];
    FILE *f;
    size_t i;

    if (!path)
        return;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "rdt_bench: cannot write %s: %s\n", tmp, strerror(errno));
        return;
    }
    fprintf(f, "[");
    for (i = 0; i < json_nrows; i++) {
        const json_row_t *row = &json_rows[i];
        double bus = coll_bus_factor(row->coll, b->nranks);
        fprintf(f, "%s\n  {\"collective\": \"%s\", \"nranks\": %d, \"type\": ", i ? "," : "",
                coll_names[row->coll], b->nranks);
        if (row->coll == BENCH_BARRIER)
            fprintf(f, "null");
        else
            fprintf(f, "\"%s\"", rdt_dtype_name(row->dtype));
        fprintf(f, ", \"redop\": ");
        if (coll_is_reduction(row->coll))
            fprintf(f, "\"%s\"", rdt_op_name(row->op));
        else
            fprintf(f, "null");
        fprintf(f, ", \"root\": %d, \"algo\": ", row->root);
        if (algo)
            json_write_string(f, algo);
        else
            fprintf(f, "null");
        fprintf(f, ", \"size\": %zu, \"count\": %zu", row->size, row->count);
        json_write_mode(f, "oop", row, 0, bus);
        if (row->has_inplace)
            json_write_mode(f, "ip", row, 1, bus);
        fprintf(f, "}");
    }
    fprintf(f, "%s]\n", json_nrows ? "\n" : "");
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        fprintf(stderr, "rdt_bench: cannot write %s: %s\n", path, strerror(errno));
}

static void json_add(const bench_rank_t *b, const json_row_t *row)
{
    if (!b->opt->json)
        return;
    if (json_nrows == json_cap) {
        json_row_t *p;
        json_cap = json_cap ? 2 * json_cap : 64;
        p = realloc(json_rows, json_cap * sizeof(*json_rows));
        if (!p) {
            fprintf(stderr, "rdt_bench: out of memory for the JSON rows\n");
            exit(2);
        }
        json_rows = p;
    }
    json_rows[json_nrows++] = *row;
    json_flush(b);
}

/* Totals over every row printed, for the summary lines. */
typedef struct bench_totals {
    int64_t wrong;
    double busbw_sum;
    int nbusbw;
} bench_totals_t;

static void print_row(const bench_rank_t *b, const json_row_t *row, bench_totals_t *tot)
{
    double bus = coll_bus_factor(row->coll, b->nranks);
    char w[2][24];
    int m;

    for (m = 0; m < 2; m++)
        format_wrong(w[m], sizeof(w[m]), row->res[m].wrong);
    printf("  %11zu %12zu %8s %6s %6d", row->size, row->count,
           row->coll == BENCH_BARRIER ? "none" : rdt_dtype_name(row->dtype),
           coll_is_reduction(row->coll) ? rdt_op_name(row->op) : "none", row->root);
    for (m = 0; m < 1 + row->has_inplace; m++) {
        double algbw = (double)row->size / row->res[m].time_s / 1e9;
        printf(" %12.2f %8.3f %8.3f %6s", row->res[m].time_s * 1e6, algbw, algbw * bus, w[m]);
        if (row->coll != BENCH_BARRIER) {
            tot->busbw_sum += algbw * bus;
            tot->nbusbw++;
        }
    }
    if (!row->has_inplace)
        printf(" %12s %8s %8s %6s", "N/A", "N/A", "N/A", "N/A");
    printf("\n");
    fflush(stdout);
}

/* ------------------------------------------------------------------------------------------- */
/* One rank                                                                                     */
/* ------------------------------------------------------------------------------------------- */

static int popcount(unsigned x)
{
    return __builtin_popcount(x);
}

/* Count argument for a nominal size, or 0 if the size holds no element. */
static size_t coll_count(const bench_rank_t *b, size_t bytes)
{
    size_t unit = b->esize * (coll_size_is_total(b->coll) ? (size_t)b->nranks : 1);

    return bytes / unit;
}

static void sweep(bench_rank_t *b, bench_totals_t *tot)
{
    const bench_opts_t *o = b->opt;
    size_t bytes, prev = 0;
    json_row_t row;

    memset(&row, 0, sizeof(row));
    row.coll = b->coll;
    row.dtype = b->dtype;
    row.op = b->op;
    row.root = coll_has_root(b->coll) ? o->root : -1;
    if (b->coll == BENCH_BARRIER) {
        run_mode(b, 0, 0, &row.res[0]);
        if (b->rank == 0) {
            print_row(b, &row, tot);
            json_add(b, &row);
        }
        return;
    }
    encode_table(b);
    for (bytes = o->minb; bytes <= o->maxb; bytes *= o->factor) {
        size_t count = coll_count(b, bytes);
        if (count > 0 && count != prev) {
            int m;
            prev = count;
            row.count = count;
            row.size = count * b->esize * (coll_size_is_total(b->coll) ? (size_t)b->nranks : 1);
            row.has_inplace = 1;
            for (m = 0; m < 2; m++) {
                run_mode(b, m, count, &row.res[m]);
                if (row.res[m].wrong > 0)
                    tot->wrong += row.res[m].wrong;
            }
            if (b->rank == 0) {
                print_row(b, &row, tot);
                json_add(b, &row);
            }
        }
        if (bytes > o->maxb / o->factor)
            break; /* the next size would overflow */
    }
}

/* The body of every rank, spawned or started by a launcher. Returns the exit status. */
static int run_rank(const bench_opts_t *o)
{
    bench_rank_t b;
    bench_totals_t tot = {0, 0.0, 0};
    char algo[256];
    double t_create, t_connect;
    int c, d, op;

    memset(&b, 0, sizeof(b));
    b.opt = o;
    if (o->algo) {
        /* the library's syntax: "coll:algo,..." or a bare algo for every collective having it */
        if (strchr(o->algo, ':') || popcount(o->colls) != 1) {
            snprintf(algo, sizeof(algo), "%s", o->algo);
        } else {
            for (c = 0; !(o->colls & (1u << c)); c++)
                ;
            snprintf(algo, sizeof(algo), "%s:%s", coll_names[c], o->algo);
        }
        setenv("RDT_ALGO", algo, 1);
    }
    t_create = now_s();
    check_rc(rdt_comm_create_from_env(&b.comm), "rdt_comm_create_from_env");
    t_create = now_s() - t_create;
    g_comm = b.comm;
    b.rank = g_rank = rdt_comm_rank(b.comm);
    b.nranks = rdt_comm_size(b.comm);
    if (o->root < 0 || o->root >= b.nranks) {
        if (b.rank == 0)
            fprintf(stderr, "rdt_bench: root %d is not a rank of %d\n", o->root, b.nranks);
        rdt_comm_destroy(b.comm);
        return 2;
    }

    /* Allocated once at the largest size and touched, so no page fault lands in a timing. */
    b.bufsize = (o->maxb + 4095) & ~(size_t)4095;
    if (o->mapped ? rdt_mem_alloc(b.bufsize, (void **)&b.sbuf) != RDT_SUCCESS ||
                        rdt_mem_alloc(b.bufsize, (void **)&b.rbuf) != RDT_SUCCESS
                  : posix_memalign((void **)&b.sbuf, 4096, b.bufsize) ||
                        posix_memalign((void **)&b.rbuf, 4096, b.bufsize)) {
        fprintf(stderr, "rdt_bench: rank %d: cannot allocate 2 x %zu bytes\n", b.rank, b.bufsize);
        rdt_comm_abort(b.comm);
        return 2;
    }
    /* -P 1: transparent huge pages for the buffers, asked before they are first touched (as an
     * allocator may); process_vm_readv then pins 2 MiB pages instead of 4 KiB ones */
    if (o->huge && !o->mapped &&
        (madvise(b.sbuf, b.bufsize, MADV_HUGEPAGE) || madvise(b.rbuf, b.bufsize, MADV_HUGEPAGE)))
        fprintf(stderr, "rdt_bench: rank %d: madvise(MADV_HUGEPAGE): %s\n", b.rank,
                strerror(errno));
    memset(b.sbuf, 0, b.bufsize);
    memset(b.rbuf, 0, b.bufsize);
    /* -G 1, as a framework pins its buckets (nccl-tests' -R): no registration per call */
    if (o->reg) {
        check_rc(rdt_mem_register(b.comm, b.sbuf, b.bufsize, &b.sreg), "rdt_mem_register");
        check_rc(rdt_mem_register(b.comm, b.rbuf, b.bufsize, &b.rreg), "rdt_mem_register");
    }
    b.tab_in = xmalloc(PATTERN_PERIOD * 8);
    b.tab_exp = xmalloc(PATTERN_PERIOD * 8);

    /* Connections are made on first use: the first barrier pays for those it needs (with 2
     * ranks, the only one). */
    t_connect = now_s();
    check_rc(rdt_barrier(b.comm), "rdt_barrier");
    t_connect = now_s() - t_connect;
    if (b.rank == 0) {
        print_header(&b);
        printf("# setup: rdt_comm_create_from_env %.1f ms, first rdt_barrier (connects its "
               "peers) %.1f ms\n", t_create * 1e3, t_connect * 1e3);
    }
    for (c = 0; c < BENCH_COLL_COUNT; c++) {
        if (!(o->colls & (1u << c)))
            continue;
        b.coll = (bench_coll_t)c;
        if (b.rank == 0) {
            printf("#\n# collective %s%s", coll_names[c], coll_has_root(b.coll) ? ", root " : "");
            if (coll_has_root(b.coll))
                printf("%d", o->root);
            printf(", busbw = algbw * %.4g\n", coll_bus_factor(b.coll, b.nranks));
            print_columns();
            fflush(stdout);
        }
        if (b.coll == BENCH_BARRIER) {
            sweep(&b, &tot);
            continue;
        }
        for (d = 0; d < RDT_DTYPE_COUNT; d++) {
            if (!(o->dtypes & (1u << d)))
                continue;
            b.dtype = (rdt_dtype_t)d;
            b.esize = rdt_dtype_size(b.dtype);
            for (op = 0; op < RDT_OP_COUNT; op++) {
                if (!(o->ops & (1u << op)))
                    continue;
                b.op = (rdt_op_t)op;
                sweep(&b, &tot);
                if (!coll_is_reduction(b.coll))
                    break; /* the op does not matter */
            }
        }
    }
    if (b.rank == 0) {
        printf("# Out of bounds values : %lld %s\n", (long long)tot.wrong,
               tot.wrong ? "FAILED" : "OK");
        printf("# Avg bus bandwidth    : %.3f GB/s (mean over rows, out-of-place and in-place)\n",
               tot.nbusbw ? tot.busbw_sum / tot.nbusbw : 0.0);
        printf("#\n");
        fflush(stdout);
    }
    /* Nobody leaves while a peer may still need it for the last exchange. */
    check_rc(rdt_barrier(b.comm), "rdt_barrier at the end");
    if (o->reg) {
        check_rc(rdt_mem_deregister(b.comm, b.sreg), "rdt_mem_deregister");
        check_rc(rdt_mem_deregister(b.comm, b.rreg), "rdt_mem_deregister");
    }
    rdt_comm_destroy(b.comm);
    g_comm = NULL;
    if (o->mapped) {
        check_rc(rdt_mem_free(b.sbuf), "rdt_mem_free");
        check_rc(rdt_mem_free(b.rbuf), "rdt_mem_free");
    } else {
        free(b.sbuf);
        free(b.rbuf);
    }
    free(b.tab_in);
    free(b.tab_exp);
    free(json_rows);
    return tot.wrong ? 1 : 0;
}

static int spawned_rank(int rank, int nranks, void *arg)
{
    g_rank = rank;
    return run_rank(arg);
}

/* ------------------------------------------------------------------------------------------- */
/* Command line                                                                                 */
/* ------------------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    int d;

    fprintf(f,
            "usage: rdt_bench [-n NRANKS] [-c COLLS] [-b MINBYTES] [-e MAXBYTES] [-f FACTOR]\n"
            "                 [-w WARMUP] [-i ITERS | -T SECONDS] [-r BATCHES] [-m MAXITERS]\n"
            "                 [-d DTYPES] [-o OPS] [-R ROOT] [-a ALGO] [-k 0|1] [-G 0|1] [-M 0|1]\n"
            "                 [-P 0|1]\n"
            "                 [-j JSON_FILE]\n"
            "                 [-t TIMEOUT]\n"
            "  -n N       fork N ranks on this host; without -n, run as one rank of a job whose\n"
            "             launcher set RDT_RANK (or Slurm, Open MPI, torchrun variables)\n"
            "  -c COLLS   allreduce, reduce_scatter, allgather, broadcast, reduce, alltoall,\n"
            "             barrier, or all; comma-separated list allowed (allreduce)\n"
            "  -b, -e     smallest and largest size in bytes, K/M/G suffixes (8, 64M); the size\n"
            "             of allgather, reduce_scatter and alltoall is the whole vector\n"
            "  -f FACTOR  size multiplier (2)\n"
            "  -w WARMUP  untimed calls per size and mode (5)\n"
            "  -i ITERS   timed calls per size and mode, split into the batches\n"
            "  -T SECONDS timed seconds per size and mode when -i is not given (0.2)\n"
            "  -r BATCHES timed batches; the median is reported (5)\n"
            "  -m MAX     at most MAX timed calls per size and mode with -T (1000000)\n"
            "  -d DTYPES  element types, comma-separated, or all (float32):");
    for (d = 0; d < RDT_DTYPE_COUNT; d++)
        fprintf(f, " %s", rdt_dtype_name((rdt_dtype_t)d));
    fprintf(f,
            "\n"
            "  -o OPS     sum, prod, min, max, avg, comma-separated, or all (sum)\n"
            "  -R ROOT    root of broadcast and reduce (0)\n"
            "  -a ALGO    force an algorithm: RDT_ALGO=<coll>:<ALGO> for a single -c collective,\n"
            "             else RDT_ALGO=ALGO as given (\"coll:algo,coll:algo\" or a bare\n"
            "             algorithm for every measured collective that has it)\n"
            "  -k 0|1     check results before timing (1)\n"
            "  -G 0|1     register the buffers once with rdt_mem_register, as a framework\n"
            "             pins its buckets (0: the library registers per call on RDMA)\n"
            "  -M 0|1     take the buffers from rdt_mem_alloc, which the ranks of a host can\n"
            "             map: large collectives run direct (RDT_SHM_DIRECT) (0: posix_memalign)\n"
            "  -P 0|1     madvise(MADV_HUGEPAGE) the posix_memalign buffers before first use\n"
            "             (transparent huge pages; 0: the system's default)\n"
            "  -j FILE    write the rows as JSON (rank 0)\n"
            "  -t SECONDS kill local ranks still running after this long (estimated)\n"
            "exit status: 0 ok, 1 wrong results, 2 error\n");
}

static int parse_size(const char *s, size_t *out_p)
{
    char *end = NULL;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return -1;
    switch (*end) {
    case 'k':
    case 'K':
        v *= 1024.0;
        end++;
        break;
    case 'm':
    case 'M':
        v *= 1024.0 * 1024.0;
        end++;
        break;
    case 'g':
    case 'G':
        v *= 1024.0 * 1024.0 * 1024.0;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end || v > 1e18)
        return -1;
    *out_p = (size_t)v;
    return 0;
}

static int parse_long(const char *s, long min, long *out_p)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < min)
        return -1;
    *out_p = v;
    return 0;
}

/* Name of element i of a list, for parse_list. */
typedef const char *(*name_fn_t)(int i);

static const char *coll_name_at(int i)
{
    return coll_names[i];
}

static const char *dtype_name_at(int i)
{
    return rdt_dtype_name((rdt_dtype_t)i);
}

static const char *op_name_at(int i)
{
    return rdt_op_name((rdt_op_t)i);
}

/* "a,b,c" or "all" -> bit mask over the n names; -1 on an unknown name. */
static int parse_list(const char *s, int n, name_fn_t name, unsigned *mask_p)
{
    char buf[256], *tok, *save = NULL;
    unsigned mask = 0;

    snprintf(buf, sizeof(buf), "%s", s);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int i;
        if (strcmp(tok, "all") == 0) {
            mask |= (1u << n) - 1;
            continue;
        }
        for (i = 0; i < n && strcmp(tok, name(i)) != 0; i++)
            ;
        if (i == n) {
            fprintf(stderr, "rdt_bench: unknown name '%s'\n", tok);
            return -1;
        }
        mask |= 1u << i;
    }
    if (!mask)
        return -1;
    *mask_p = mask;
    return 0;
}

/* A deadline for local ranks generous enough for the requested sweep. */
static int estimate_timeout(const bench_opts_t *o)
{
    double sizes = 1, cells, per;
    size_t b;

    for (b = o->minb; b <= o->maxb / o->factor; b *= o->factor)
        sizes++;
    cells = popcount(o->colls) * popcount(o->dtypes) * popcount(o->ops) * sizes;
    per = 2.0 * ((o->iters > 0 ? 1.0 : 2.0 * o->target_s) + 5.0);
    return (int)fmin(300.0 + cells * per, (double)INT_MAX / 2);
}

static int launched_externally(void)
{
    static const char *const vars[] = {"RDT_RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "RANK"};
    size_t i;

    for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts_t o = {
        .nranks = 0,
        .colls = 1u << BENCH_ALLREDUCE,
        .dtypes = 1u << RDT_FLOAT32,
        .ops = 1u << RDT_SUM,
        .minb = 8,
        .maxb = (size_t)64 << 20,
        .factor = 2,
        .warmup = 5,
        .iters = 0,
        .target_s = 0.2,
        .batches = 5,
        .max_iters = 1000000,
        .root = 0,
        .algo = NULL,
        .check = 1,
        .json = NULL,
        .timeout_s = 0,
    };
    int opt, *statuses, i, worst = 0, ret;
    long v;

    while ((opt = getopt(argc, argv, "n:c:b:e:f:w:i:T:r:m:d:o:R:a:k:G:M:P:j:t:h")) != -1) {
        int bad = 0;
        switch (opt) {
        case 'n':
            bad = parse_long(optarg, 1, &v) || v > 4096;
            o.nranks = (int)v;
            break;
        case 'c':
            bad = parse_list(optarg, BENCH_COLL_COUNT, coll_name_at, &o.colls);
            break;
        case 'b':
            bad = parse_size(optarg, &o.minb);
            break;
        case 'e':
            bad = parse_size(optarg, &o.maxb);
            break;
        case 'f':
            bad = parse_long(optarg, 2, &v);
            o.factor = (size_t)v;
            break;
        case 'w':
            bad = parse_long(optarg, 0, &v) || v > INT_MAX;
            o.warmup = (int)v;
            break;
        case 'i':
            bad = parse_long(optarg, 1, &o.iters);
            break;
        case 'T': {
            char *end = NULL;
            o.target_s = strtod(optarg, &end);
            bad = end == optarg || *end || !(o.target_s > 0);
            break;
        }
        case 'r':
            bad = parse_long(optarg, 1, &v) || v > 100000;
            o.batches = (int)v;
            break;
        case 'm':
            bad = parse_long(optarg, 1, &o.max_iters);
            break;
        case 'd':
            bad = parse_list(optarg, RDT_DTYPE_COUNT, dtype_name_at, &o.dtypes);
            break;
        case 'o':
            bad = parse_list(optarg, RDT_OP_COUNT, op_name_at, &o.ops);
            break;
        case 'R':
            bad = parse_long(optarg, 0, &v) || v > INT_MAX;
            o.root = (int)v;
            break;
        case 'a':
            o.algo = optarg;
            break;
        case 'k':
            bad = parse_long(optarg, 0, &v) || v > 1;
            o.check = (int)v;
            break;
        case 'G':
            bad = parse_long(optarg, 0, &v) || v > 1;
            o.reg = (int)v;
            break;
        case 'M':
            bad = parse_long(optarg, 0, &v) || v > 1;
            o.mapped = (int)v;
            break;
        case 'P':
            bad = parse_long(optarg, 0, &v) || v > 1;
            o.huge = (int)v;
            break;
        case 'j':
            o.json = optarg;
            break;
        case 't':
            bad = parse_long(optarg, 1, &v) || v > INT_MAX;
            o.timeout_s = (int)v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "rdt_bench: bad value for -%c: %s\n", opt, optarg);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rdt_bench: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (o.minb < 1)
        o.minb = 1;
    if (o.maxb < o.minb) {
        fprintf(stderr, "rdt_bench: -e %zu is smaller than -b %zu\n", o.maxb, o.minb);
        return 2;
    }

    if (o.nranks == 0) {
        if (!launched_externally()) {
            fprintf(stderr, "rdt_bench: give -n NRANKS to start local ranks, or run under a "
                            "launcher that sets RDT_RANK (or mpirun, srun, torchrun)\n");
            usage(stderr);
            return 2;
        }
        ret = run_rank(&o);
        return ret;
    }

    /* Local ranks: a rank that fails prints its own message; the parent adds which exited how. */
    statuses = xmalloc(sizeof(*statuses) * (size_t)o.nranks);
    if (o.timeout_s == 0)
        o.timeout_s = estimate_timeout(&o);
    ret = rdt_spawn_local(o.nranks, spawned_rank, &o, o.timeout_s, statuses);
    if (ret < 0) {
        fprintf(stderr, "rdt_bench: could not start %d local ranks: %s\n", o.nranks,
                strerror(errno));
        free(statuses);
        return 2;
    }
    for (i = 0; i < o.nranks; i++) {
        int s = statuses[i];
        if (s == 0)
            continue;
        if (s == 1) {
            worst = worst ? worst : 1;
            continue;
        }
        worst = 2;
        if (s == 137)
            fprintf(stderr,
                    "rdt_bench: rank %d killed after the %d s deadline (-t) or by "
                    "SIGKILL\n",
                    i, o.timeout_s);
        else if (s > 128)
            fprintf(stderr, "rdt_bench: rank %d died of signal %d\n", i, s - 128);
        else if (s < 0)
            fprintf(stderr, "rdt_bench: rank %d was not reaped\n", i);
        else if (s != 2)
            fprintf(stderr, "rdt_bench: rank %d exited with status %d\n", i, s);
    }
    free(statuses);
    return worst;
}
