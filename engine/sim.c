/*
 * sim.c - the schedule simulator: every rank's schedule replayed in one process, on real
 * memory, with the executor's rules (sched.h), and the results checked against a reference
 * computed here, independently, from the inputs.
 *
 * How a slice is replayed. Each rank enters its rounds in order; entering a round runs its
 * COPYs and posts its messages. A message is cut into segments (one per unit its region
 * touches) exactly as the executor does, and segments are paired per ordered pair of ranks in
 * list order. A pair of segments moves its data the moment both ends are posted (rendezvous:
 * a send does not complete before its receive is posted, the strictest transport there is),
 * and a round completes when all of its ops have. If ranks remain that cannot complete a round,
 * that is a deadlock.
 *
 * What is checked before anything moves (once per schedule, independent of sizes): ops sorted by
 * round, fields in range, peers valid, regions inside the buffers that exist on that rank, no
 * two ops of one round touching the same blocks of the same memory with at least one writing
 * (INPUT and OUTPUT are one memory when params->in_place), and every message segment matched.
 *
 * Inputs are chosen so that the reference is exact whatever the reduction order: integers wrap
 * (exact modulo 2^n in any order); floats are small integers whose partial sums stay exactly
 * representable, products are of +-1 and a few 2s. Outputs start poisoned, TEMP is re-poisoned
 * for every slice, so a schedule that reads what it never wrote is caught. params->inexact
 * trades exactness for rounding sums, to check that all ranks of an allreduce agree bit for bit.
 *
 * With params->host_of the schedules are built for that topology (rdt_sched_build_topo) and
 * every segment moved between ranks of different hosts is counted, per sending host, per
 * receiving host and in total (result: inter_host_bytes, max/min_host_bytes,
 * max/min_host_recv_bytes).
 *
 * The reduction itself is engine/reduce.c's (rdt_reduce_local, rdt_reduce_scale_avg for AVG at
 * the end of each slice, as the executor does); the reference is computed here, with its own
 * scalar arithmetic and its own float16/bfloat16 conversions.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reduce.h"
#include "sched.h"

#define SIM_MAX_RANKS   (1 << 20)
#define SIM_POISON_OUT  0xa5
#define SIM_POISON_TEMP 0x5a

typedef struct sim_buf {
    unsigned char *ptr; /* element 0 of unit u0 */
    uint32_t u0, nu;    /* the units that exist on this rank: [u0, u0 + nu); nu 0: none */
} sim_buf_t;

typedef struct sim_rank {
    rdt_sched_t *s;
    sim_buf_t buf[2];      /* INPUT, OUTPUT */
    unsigned char *mem[2]; /* what to free */
    unsigned char *temp;
    uint32_t *seg_base;  /* nops + 1: first segment of each op (COPYs have none) */
    int32_t *part_rank;  /* per segment: the rank at the other end */
    uint32_t *part_seg;  /* per segment: its index there */
    uint32_t *seg_op;    /* per segment: its op */
    uint32_t *segs_left; /* per op: segments not yet moved in this slice */
    uint32_t cur_begin, cur_end, pending;
    int finished;
    uint64_t sent_bytes;
    uint64_t *known, *known_entry; /* barrier: ranks heard from (now, at round entry) */
} sim_rank_t;

typedef struct sim {
    const rdt_sim_params_t *prm;
    rdt_sim_result_t *res;
    int p;
    rdt_coll_t coll;
    uint32_t nunits, nblocks, kpu;
    size_t count, es, slice, nslices;
    size_t k, len; /* current slice and its piece length */
    sim_rank_t *rk;
    int *stack;
    int nstack;
    size_t words;
    int inexact; /* params->inexact and it applies (float SUM/AVG of a reducing collective) */
    int failed;
    uint64_t *host_bytes; /* with params->host_of: bytes each host sent to other hosts */
    uint64_t *host_recv;  /* ... and received from other hosts */
} sim_t;

typedef struct sim_rec {
    uint64_t key; /* sender << 44 | receiver << 24 | segment number of the pair */
    int32_t rank; /* whose segment */
    uint32_t seg;
} sim_rec_t;

static const char *const opk_names[] = {"SEND", "RECV", "RECV_REDUCE", "COPY"};
static const char *const buf_names[] = {"INPUT", "OUTPUT", "TEMP"};

static void sim_fail(sim_t *sm, rdt_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sim_fail(sim_t *sm, rdt_status_t st, const char *fmt, ...)
{
    va_list ap;

    if (sm->failed)
        return;
    sm->failed = 1;
    sm->res->status = st;
    va_start(ap, fmt);
    vsnprintf(sm->res->error, sizeof(sm->res->error), fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------------------------ */
/* Element values and the reference                                                             */
/* ------------------------------------------------------------------------------------------ */

static int dt_is_float(rdt_dtype_t dt)
{
    return dt == RDT_FLOAT16 || dt == RDT_BFLOAT16 || dt == RDT_FLOAT32 || dt == RDT_FLOAT64;
}

static int dt_is_signed(rdt_dtype_t dt)
{
    return dt == RDT_INT8 || dt == RDT_INT32 || dt == RDT_INT64;
}

/* Largest integer magnitude up to which every integer is exact in the float type. */
static double dt_exact(rdt_dtype_t dt)
{
    switch (dt) {
    case RDT_FLOAT16:
        return 2048;
    case RDT_BFLOAT16:
        return 256;
    case RDT_FLOAT32:
        return 16777216.0;
    default:
        return 9007199254740992.0;
    }
}

static uint64_t sim_mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int coll_reduces(rdt_coll_t c)
{
    return c == RDT_COLL_ALLREDUCE || c == RDT_COLL_REDUCE_SCATTER || c == RDT_COLL_REDUCE;
}

/*
 * Input element i of unit u on rank r: integer bits in *iv (integer types) or an exact value in
 * *fv (float types). Float values keep every partial result exact (see the top of the file).
 */
static void sim_value(const sim_t *sm, int r, uint32_t u, size_t i, uint64_t *iv, double *fv)
{
    rdt_dtype_t dt = sm->prm->dtype;
    rdt_op_t op = coll_reduces(sm->coll) ? sm->prm->op : RDT_MIN;
    uint64_t h = sim_mix(((uint64_t)(uint32_t)r << 40) ^ ((uint64_t)u << 20) ^ (uint64_t)i ^
                         ((uint64_t)dt << 60) ^ ((uint64_t)op << 56));
    double e = dt_exact(dt);
    size_t p = (size_t)sm->p;

    *iv = 0;
    *fv = 0;
    if (!dt_is_float(dt)) {
        *iv = (op == RDT_PROD && ((h >> 32) & 3)) ? (h | 1) : h; /* mostly odd factors */
        return;
    }
    if (sm->inexact) { /* k / 2^b with |k| < 2^b: exact in the type, sums round */
        int b = dt == RDT_FLOAT16 ? 10 : dt == RDT_BFLOAT16 ? 7 : dt == RDT_FLOAT32 ? 24 : 53;
        int64_t k = (int64_t)(h >> (63 - b)) - ((int64_t)1 << b);
        *fv = ldexp((double)k, -b);
        return;
    }
    if (op == RDT_SUM || op == RDT_AVG) {
        if ((double)p <= e) {
            double m = e / (double)p;
            int64_t mi = m > 1048576.0 ? 1048576 : (int64_t)m;
            *fv = (double)((int64_t)(h % (uint64_t)(2 * mi + 1)) - mi);
        } else { /* at most e ranks contribute a +-1 to each element */
            size_t stride = (p + (size_t)e - 1) / (size_t)e;
            *fv = ((size_t)r + i) % stride == 0 ? (double)((int)(h % 3) - 1) : 0.0;
        }
    } else if (op == RDT_PROD) {
        size_t lim = dt == RDT_FLOAT16 ? 14 : dt == RDT_FLOAT64 ? 500 : 60;
        size_t stride = (p + lim - 1) / lim;
        if (((size_t)r + i + u) % stride == 0)
            *fv = 2.0;
        else
            *fv = (h & 1) ? 1.0 : -1.0;
    } else {
        int64_t k = e / 2 > 1048576.0 ? 1048576 : (int64_t)(e / 2);
        *fv = (double)((int64_t)(h % (uint64_t)(2 * k + 1)) - k);
    }
}

/* float -> binary16, round to nearest even (written here, not taken from reduce.c, so the
 * reference does not share code with what it checks). */
static uint16_t sim_f32_to_f16(float f)
{
    uint32_t x, absx, sign, e, m24, shift, q, rem, half, h;

    memcpy(&x, &f, sizeof(x));
    sign = (x >> 16) & 0x8000;
    absx = x & 0x7fffffff;
    if (absx > 0x7f800000)
        return (uint16_t)(sign | 0x7e00);
    if (absx >= 0x477ff000) /* >= 65520 rounds to infinity */
        return (uint16_t)(sign | 0x7c00);
    if (absx < 0x38800000) { /* below 2^-14: subnormal half, units of 2^-24 */
        e = absx >> 23;
        if (absx == 0 || e < 96)
            return (uint16_t)sign;
        m24 = (absx & 0x7fffff) | 0x800000;
        shift = 126 - e;
        q = m24 >> shift;
        rem = m24 & ((1u << shift) - 1);
        half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1)))
            q++;
        return (uint16_t)(sign | q);
    }
    h = (((absx >> 23) - 112) << 10) | ((absx & 0x7fffff) >> 13);
    rem = absx & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
}

static uint16_t sim_f32_to_bf16(float f)
{
    uint32_t x;

    memcpy(&x, &f, sizeof(x));
    if ((x & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* Store a value of the element type: integers truncated to their width, floats (exact small
 * values, or an AVG quotient already rounded to float for the narrow types) encoded. */
static void sim_store(rdt_dtype_t dt, unsigned char *dst, uint64_t iv, double fv)
{
    uint8_t b8;
    uint16_t b16;
    uint32_t b32;
    float f;

    switch (dt) {
    case RDT_INT8:
    case RDT_UINT8:
        b8 = (uint8_t)iv;
        memcpy(dst, &b8, 1);
        break;
    case RDT_INT32:
    case RDT_UINT32:
        b32 = (uint32_t)iv;
        memcpy(dst, &b32, 4);
        break;
    case RDT_INT64:
    case RDT_UINT64:
        memcpy(dst, &iv, 8);
        break;
    case RDT_FLOAT16:
        b16 = sim_f32_to_f16((float)fv);
        memcpy(dst, &b16, 2);
        break;
    case RDT_BFLOAT16:
        b16 = sim_f32_to_bf16((float)fv);
        memcpy(dst, &b16, 2);
        break;
    case RDT_FLOAT32:
        f = (float)fv;
        memcpy(dst, &f, 4);
        break;
    default:
        memcpy(dst, &fv, 8);
        break;
    }
}

static int64_t sext(uint64_t v, int bits)
{
    if (bits == 64)
        return (int64_t)v;
    v &= (1ULL << bits) - 1;
    if (v & (1ULL << (bits - 1)))
        return (int64_t)(v | ~((1ULL << bits) - 1));
    return (int64_t)v;
}

/* Reference of element i of unit u: the reduction over all ranks of their input, encoded. */
static void sim_reference(const sim_t *sm, uint32_t u, size_t i, unsigned char *dst)
{
    rdt_dtype_t dt = sm->prm->dtype;
    rdt_op_t op = sm->prm->op;
    int bits = (int)sm->es * 8, q;
    uint64_t iacc = 0, iv;
    double facc = 0, fv;

    for (q = 0; q < sm->p; q++) {
        sim_value(sm, q, u, i, &iv, &fv);
        if (q == 0) {
            iacc = iv;
            facc = fv;
            continue;
        }
        switch (op) {
        case RDT_SUM:
        case RDT_AVG:
            iacc += iv;
            facc += fv;
            break;
        case RDT_PROD:
            iacc *= iv;
            facc *= fv;
            break;
        case RDT_MIN:
        case RDT_MAX: {
            int less;
            if (dt_is_float(dt))
                less = fv < facc;
            else if (dt_is_signed(dt))
                less = sext(iv, bits) < sext(iacc, bits);
            else
                less = (bits == 64 ? iv : iv & ((1ULL << bits) - 1)) <
                       (bits == 64 ? iacc : iacc & ((1ULL << bits) - 1));
            if (less == (op == RDT_MIN)) {
                iacc = iv;
                facc = fv;
            }
            break;
        }
        default:
            break;
        }
    }
    if (op == RDT_AVG) {
        if (dt == RDT_FLOAT64)
            facc = facc / (double)sm->p;
        else if (dt_is_float(dt))
            facc = (double)((float)facc / (float)sm->p);
        else if (dt_is_signed(dt))
            iacc = (uint64_t)(sext(iacc, bits) / (int64_t)sm->p);
        else
            iacc = (bits == 64 ? iacc : iacc & ((1ULL << bits) - 1)) / (uint64_t)sm->p;
    }
    sim_store(dt, dst, iacc, facc);
}

/* ------------------------------------------------------------------------------------------ */
/* Buffers                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static int has_input(const sim_t *sm, int r)
{
    return !(sm->coll == RDT_COLL_BROADCAST && r != sm->prm->root);
}

static int has_output(const sim_t *sm, int r)
{
    return !(sm->coll == RDT_COLL_REDUCE && r != sm->prm->root);
}

static unsigned char *unit_ptr(const sim_t *sm, const sim_buf_t *b, uint32_t u)
{
    return b->ptr + (size_t)(u - b->u0) * sm->count * sm->es;
}

/* Allocate INPUT/OUTPUT/TEMP of one rank with the aliasing of params->in_place, fill INPUT,
 * poison the rest of OUTPUT. */
static rdt_status_t sim_buffers(sim_t *sm, int r)
{
    sim_rank_t *R = &sm->rk[r];
    size_t ub = sm->count * sm->es, full = (size_t)sm->nunits * ub;
    int in = has_input(sm, r), out = has_output(sm, r);
    uint32_t iu0 = sm->coll == RDT_COLL_ALLGATHER ? (uint32_t)r : 0;
    uint32_t inu = sm->coll == RDT_COLL_ALLGATHER ? 1 : sm->nunits;
    uint32_t ou0 = sm->coll == RDT_COLL_REDUCE_SCATTER ? (uint32_t)r : 0;
    uint32_t onu = sm->coll == RDT_COLL_REDUCE_SCATTER ? 1 : sm->nunits;
    size_t tlen = sm->slice < sm->count ? sm->slice : sm->count;
    uint32_t u;
    size_t i;

    R->temp = malloc((size_t)sm->nunits * tlen * sm->es + 1);
    if (!R->temp)
        return RDT_ERR_NO_MEMORY;
    if (sm->prm->in_place && in && out) {
        /* one memory: the larger of the two views, the other one inside it */
        R->mem[0] = malloc(full + 1);
        if (!R->mem[0])
            return RDT_ERR_NO_MEMORY;
        memset(R->mem[0], SIM_POISON_OUT, full + 1);
        R->buf[0].ptr = R->mem[0] + (size_t)iu0 * ub;
        R->buf[1].ptr = R->mem[0] + (size_t)ou0 * ub;
    } else {
        if (in) {
            R->mem[0] = malloc((size_t)inu * ub + 1);
            if (!R->mem[0])
                return RDT_ERR_NO_MEMORY;
            R->buf[0].ptr = R->mem[0];
        }
        if (out) {
            R->mem[1] = malloc((size_t)onu * ub + 1);
            if (!R->mem[1])
                return RDT_ERR_NO_MEMORY;
            memset(R->mem[1], SIM_POISON_OUT, (size_t)onu * ub + 1);
            R->buf[1].ptr = R->mem[1];
        }
    }
    if (in) {
        R->buf[0].u0 = iu0;
        R->buf[0].nu = inu;
    }
    if (out) {
        R->buf[1].u0 = ou0;
        R->buf[1].nu = onu;
    }
    for (u = R->buf[0].u0; in && u < R->buf[0].u0 + R->buf[0].nu; u++) {
        unsigned char *d = unit_ptr(sm, &R->buf[0], u);
        for (i = 0; i < sm->count; i++) {
            uint64_t iv;
            double fv;
            sim_value(sm, r, u, i, &iv, &fv);
            sim_store(sm->prm->dtype, d + i * sm->es, iv, fv);
        }
    }
    return RDT_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* Static checks                                                                                */
/* ------------------------------------------------------------------------------------------ */

static int op_is_msg(const rdt_sched_op_t *o)
{
    return o->kind != RDT_OPK_COPY;
}

static uint32_t op_nsegs(const sim_t *sm, const rdt_sched_op_t *o)
{
    if (o->blk_end <= o->blk_begin)
        return 1;
    return (o->blk_end - 1) / sm->kpu - o->blk_begin / sm->kpu + 1;
}

/* Does region [b0, b1) of buffer @p b exist on rank r? */
static int region_exists(const sim_t *sm, const sim_rank_t *R, int b, uint32_t b0, uint32_t b1)
{
    const sim_buf_t *sb;

    if (b1 <= b0 || b == RDT_BUF_TEMP)
        return 1;
    sb = &R->buf[b];
    return sb->nu && b0 / sm->kpu >= sb->u0 && (b1 - 1) / sm->kpu < sb->u0 + sb->nu;
}

static int alias_id(const sim_t *sm, int b)
{
    if (b == RDT_BUF_TEMP)
        return 2;
    return sm->prm->in_place ? 0 : b;
}

typedef struct sim_access {
    int id, write;
    uint32_t b0, b1, op;
} sim_access_t;

static void sim_check_round(sim_t *sm, int r, uint32_t first, uint32_t end, sim_access_t *acc)
{
    const rdt_sched_t *s = sm->rk[r].s;
    uint32_t i, j, n = 0;

    for (i = first; i < end; i++) {
        const rdt_sched_op_t *o = &s->ops[i];
        sim_access_t a = {alias_id(sm, o->buf), o->kind != RDT_OPK_SEND, o->blk_begin, o->blk_end,
                          i};
        acc[n++] = a;
        if (o->kind == RDT_OPK_RECV_REDUCE || o->kind == RDT_OPK_COPY) {
            sim_access_t c = {alias_id(sm, o->src), 0, o->blk_begin, o->blk_end, i};
            acc[n++] = c;
        }
    }
    for (i = 0; i < n; i++) {
        for (j = i + 1; j < n; j++) {
            const sim_access_t *x = &acc[i], *y = &acc[j];
            const rdt_sched_op_t *ox = &s->ops[x->op], *oy = &s->ops[y->op];
            if (x->op == y->op || x->id != y->id || !(x->write || y->write))
                continue;
            if (x->b0 >= x->b1 || y->b0 >= y->b1 || x->b1 <= y->b0 || y->b1 <= x->b0)
                continue;
            sim_fail(sm, RDT_ERR_INTERNAL,
                     "race on rank %d in round %u: op %u (%s %s[%u,%u)) and op %u (%s "
                     "%s[%u,%u)) touch the same memory%s",
                     r, ox->round, x->op, opk_names[ox->kind], buf_names[ox->buf], ox->blk_begin,
                     ox->blk_end, y->op, opk_names[oy->kind], buf_names[oy->buf], oy->blk_begin,
                     oy->blk_end, sm->prm->in_place ? " (in place)" : "");
            return;
        }
    }
}

static void sim_check_sched(sim_t *sm, int r)
{
    sim_rank_t *R = &sm->rk[r];
    const rdt_sched_t *s = R->s;
    sim_access_t *acc;
    uint32_t i, first = 0;

    if (s->nranks != sm->p || s->rank != r || s->coll != sm->coll || s->nunits != sm->nunits ||
        s->nblocks != sm->nblocks) {
        sim_fail(sm, RDT_ERR_INTERNAL,
                 "schedule of rank %d says rank %d of %d, %s, nunits %u, nblocks %u; expected "
                 "rank %d of %d, %s, nunits %u, nblocks %u",
                 r, s->rank, s->nranks, rdt_coll_name(s->coll), s->nunits, s->nblocks, r, sm->p,
                 rdt_coll_name(sm->coll), sm->nunits, sm->nblocks);
        return;
    }
    if (s->nops && !s->ops) {
        sim_fail(sm, RDT_ERR_INTERNAL, "schedule of rank %d has %u ops and no op array", r,
                 s->nops);
        return;
    }
    for (i = 0; i < s->nops; i++) {
        const rdt_sched_op_t *o = &s->ops[i];
        int msg = o->kind != RDT_OPK_COPY,
            two = o->kind == RDT_OPK_RECV_REDUCE || o->kind == RDT_OPK_COPY;
        if (o->kind > RDT_OPK_COPY || o->buf >= RDT_BUF_COUNT || o->src >= RDT_BUF_COUNT ||
            o->reserved || (!two && o->src)) {
            sim_fail(sm, RDT_ERR_INTERNAL, "rank %d op %u: bad kind/buf/src/reserved field", r, i);
            return;
        }
        if (i && o->round < s->ops[i - 1].round) {
            sim_fail(sm, RDT_ERR_INTERNAL,
                     "rank %d: op %u (round %u) comes after op %u (round %u): the schedule is "
                     "not sorted by round",
                     r, i, o->round, i - 1, s->ops[i - 1].round);
            return;
        }
        if (o->round >= s->nrounds) {
            sim_fail(sm, RDT_ERR_INTERNAL, "rank %d op %u: round %u but nrounds %u", r, i, o->round,
                     s->nrounds);
            return;
        }
        if (o->blk_begin > o->blk_end || o->blk_end > sm->nblocks) {
            sim_fail(sm, RDT_ERR_INTERNAL, "rank %d op %u: region [%u,%u) outside %u blocks", r, i,
                     o->blk_begin, o->blk_end, sm->nblocks);
            return;
        }
        if (msg ? (o->peer < 0 || o->peer >= sm->p || o->peer == r) : o->peer != -1) {
            sim_fail(sm, RDT_ERR_INTERNAL, "rank %d op %u (%s): bad peer %d", r, i,
                     opk_names[o->kind], o->peer);
            return;
        }
        if (!region_exists(sm, R, o->buf, o->blk_begin, o->blk_end) ||
            (two && !region_exists(sm, R, o->src, o->blk_begin, o->blk_end))) {
            sim_fail(sm, RDT_ERR_INTERNAL,
                     "rank %d op %u (%s %s[%u,%u) src %s, round %u): the region is outside "
                     "the buffers that exist on this rank",
                     r, i, opk_names[o->kind], buf_names[o->buf], o->blk_begin, o->blk_end,
                     buf_names[o->src], o->round);
            return;
        }
    }
    acc = malloc(2 * (size_t)(s->nops + 1) * sizeof(*acc));
    if (!acc) {
        sim_fail(sm, RDT_ERR_NO_MEMORY, "out of memory");
        return;
    }
    for (i = 1; i <= s->nops && !sm->failed; i++) {
        if (i == s->nops || s->ops[i].round != s->ops[first].round) {
            sim_check_round(sm, r, first, i, acc);
            first = i;
        }
    }
    free(acc);
}

/* ------------------------------------------------------------------------------------------ */
/* Matching                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static int rec_cmp(const void *a, const void *b)
{
    uint64_t x = ((const sim_rec_t *)a)->key, y = ((const sim_rec_t *)b)->key;
    return x < y ? -1 : x > y;
}

static void describe_seg(const sim_t *sm, int r, uint32_t seg, char *out, size_t n)
{
    const sim_rank_t *R = &sm->rk[r];
    uint32_t op = R->seg_op[seg];
    const rdt_sched_op_t *o = &R->s->ops[op];

    snprintf(out, n, "rank %d op %u (%s %s[%u,%u) peer %d, round %u)", r, op, opk_names[o->kind],
             buf_names[o->buf], o->blk_begin, o->blk_end, o->peer, o->round);
}

static void sim_match(sim_t *sm)
{
    uint64_t nsend = 0, nrecv = 0, is = 0, ir = 0;
    uint32_t *cs = calloc((unsigned)sm->p, sizeof(uint32_t));
    uint32_t *cr = calloc((unsigned)sm->p, sizeof(uint32_t));
    sim_rec_t *sends = NULL, *recvs = NULL;
    char d1[160], d2[160];
    int r;

    for (r = 0; r < sm->p; r++) {
        sim_rank_t *R = &sm->rk[r];
        uint32_t i;
        for (i = 0; i < R->s->nops; i++) {
            const rdt_sched_op_t *o = &R->s->ops[i];
            if (!op_is_msg(o))
                continue;
            if (o->kind == RDT_OPK_SEND)
                nsend += R->seg_base[i + 1] - R->seg_base[i];
            else
                nrecv += R->seg_base[i + 1] - R->seg_base[i];
        }
    }
    sends = malloc((nsend + 1) * sizeof(*sends));
    recvs = malloc((nrecv + 1) * sizeof(*recvs));
    if (!cs || !cr || !sends || !recvs) {
        sim_fail(sm, RDT_ERR_NO_MEMORY, "out of memory");
        goto out;
    }
    for (r = 0; r < sm->p && !sm->failed; r++) {
        sim_rank_t *R = &sm->rk[r];
        uint32_t i, g;
        for (i = 0; i < R->s->nops; i++) {
            const rdt_sched_op_t *o = &R->s->ops[i];
            for (g = R->seg_base[i]; g < R->seg_base[i + 1]; g++) {
                int send = o->kind == RDT_OPK_SEND;
                uint32_t seq = send ? cs[o->peer]++ : cr[o->peer]++;
                uint64_t a = (uint64_t)(send ? r : o->peer), b = (uint64_t)(send ? o->peer : r);
                sim_rec_t rec = {a << 44 | b << 24 | seq, r, g};
                if (seq >= (1u << 24)) {
                    sim_fail(sm, RDT_ERR_INTERNAL, "rank %d: over 2^24 messages with rank %d", r,
                             o->peer);
                    break;
                }
                if (send)
                    sends[is++] = rec;
                else
                    recvs[ir++] = rec;
            }
        }
        /* reset the counters this rank touched */
        for (i = 0; i < R->s->nops; i++)
            if (op_is_msg(&R->s->ops[i]))
                cs[R->s->ops[i].peer] = cr[R->s->ops[i].peer] = 0;
    }
    if (sm->failed)
        goto out;
    qsort(sends, nsend, sizeof(*sends), rec_cmp);
    qsort(recvs, nrecv, sizeof(*recvs), rec_cmp);
    for (is = 0, ir = 0; is < nsend || ir < nrecv;) {
        if (is < nsend && ir < nrecv && sends[is].key == recvs[ir].key) {
            sim_rank_t *S = &sm->rk[sends[is].rank], *R = &sm->rk[recvs[ir].rank];
            S->part_rank[sends[is].seg] = recvs[ir].rank;
            S->part_seg[sends[is].seg] = recvs[ir].seg;
            R->part_rank[recvs[ir].seg] = sends[is].rank;
            R->part_seg[recvs[ir].seg] = sends[is].seg;
            is++;
            ir++;
        } else if (ir >= nrecv || (is < nsend && sends[is].key < recvs[ir].key)) {
            describe_seg(sm, sends[is].rank, sends[is].seg, d1, sizeof(d1));
            sim_fail(sm, RDT_ERR_INTERNAL,
                     "unmatched message: %s sends message segment #%u to rank %d, which never "
                     "receives it",
                     d1, (unsigned)(sends[is].key & 0xffffff),
                     (int)((sends[is].key >> 24) & 0xfffff));
            goto out;
        } else {
            describe_seg(sm, recvs[ir].rank, recvs[ir].seg, d2, sizeof(d2));
            sim_fail(sm, RDT_ERR_INTERNAL,
                     "unmatched message: %s expects message segment #%u from rank %d, which "
                     "never sends it",
                     d2, (unsigned)(recvs[ir].key & 0xffffff), (int)(recvs[ir].key >> 44));
            goto out;
        }
    }
out:
    free(cs);
    free(cr);
    free(sends);
    free(recvs);
}

/* ------------------------------------------------------------------------------------------ */
/* Replay                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* Segment @p g of op @p o in the current slice: unit, start inside the piece, elements. */
static void seg_range(const sim_t *sm, const rdt_sched_t *s, const rdt_sched_op_t *o, uint32_t g,
                      uint32_t *u_p, size_t *start_p, size_t *n_p)
{
    uint32_t u, c0, c1;
    size_t off, n0;

    if (o->blk_end <= o->blk_begin) {
        *u_p = 0;
        *start_p = 0;
        *n_p = 0;
        return;
    }
    u = o->blk_begin / sm->kpu + g;
    c0 = o->blk_begin > u * sm->kpu ? o->blk_begin : u * sm->kpu;
    c1 = o->blk_end < (u + 1) * sm->kpu ? o->blk_end : (u + 1) * sm->kpu;
    rdt_sched_block_range(s, c0, sm->len, &off, &n0);
    *u_p = u;
    *start_p = off - (size_t)u * sm->len;
    *n_p = rdt_sched_region_len(s, c0, c1, sm->len);
}

static unsigned char *sim_addr(const sim_t *sm, const sim_rank_t *R, int b, uint32_t u,
                               size_t start)
{
    if (b == RDT_BUF_TEMP)
        return R->temp + ((size_t)u * sm->len + start) * sm->es;
    return unit_ptr(sm, &R->buf[b], u) + (sm->k * sm->slice + start) * sm->es;
}

static void sim_push(sim_t *sm, int r)
{
    sm->stack[sm->nstack++] = r;
}

static void op_seg_done(sim_t *sm, int r, uint32_t op, int entering)
{
    sim_rank_t *R = &sm->rk[r];

    if (--R->segs_left[op] == 0 && --R->pending == 0 && !entering)
        sim_push(sm, r);
}

/* Move one segment pair: rank a's send segment sa to rank b's receive segment sb. */
static void sim_move(sim_t *sm, int a, uint32_t sa, int b, uint32_t sb)
{
    sim_rank_t *A = &sm->rk[a], *B = &sm->rk[b];
    const rdt_sched_op_t *os = &A->s->ops[A->seg_op[sa]], *orc = &B->s->ops[B->seg_op[sb]];
    uint32_t us, ur;
    size_t ss, sr, ns, nr;

    seg_range(sm, A->s, os, sa - A->seg_base[A->seg_op[sa]], &us, &ss, &ns);
    seg_range(sm, B->s, orc, sb - B->seg_base[B->seg_op[sb]], &ur, &sr, &nr);
    if (ns != nr) {
        char d1[160], d2[160];
        describe_seg(sm, a, sa, d1, sizeof(d1));
        describe_seg(sm, b, sb, d2, sizeof(d2));
        sim_fail(sm, RDT_ERR_INTERNAL,
                 "size mismatch in slice %zu: %s sends %zu elements, %s receives %zu", sm->k, d1,
                 ns, d2, nr);
        return;
    }
    if (ns) {
        const unsigned char *src = sim_addr(sm, A, os->buf, us, ss);
        unsigned char *dst = sim_addr(sm, B, orc->buf, ur, sr);
        if (orc->kind == RDT_OPK_RECV)
            memcpy(dst, src, ns * sm->es);
        else
            rdt_reduce_local(dst, sim_addr(sm, B, orc->src, ur, sr), src, ns, sm->prm->dtype,
                             sm->prm->op == RDT_AVG ? RDT_SUM : sm->prm->op);
    }
    A->sent_bytes += ns * sm->es;
    if (sm->host_bytes && sm->prm->host_of[a] != sm->prm->host_of[b]) {
        sm->host_bytes[sm->prm->host_of[a]] += ns * sm->es;
        sm->host_recv[sm->prm->host_of[b]] += ns * sm->es;
        sm->res->inter_host_bytes += ns * sm->es;
    }
    if (sm->words) {
        size_t w;
        for (w = 0; w < sm->words; w++)
            B->known[w] |= A->known_entry[w];
    }
}

static void sim_copy(sim_t *sm, sim_rank_t *R, const rdt_sched_op_t *o)
{
    uint32_t g, n = op_nsegs(sm, o);

    for (g = 0; g < n; g++) {
        uint32_t u;
        size_t start, len;
        unsigned char *dst;
        const unsigned char *src;

        seg_range(sm, R->s, o, g, &u, &start, &len);
        if (!len)
            continue;
        dst = sim_addr(sm, R, o->buf, u, start);
        src = sim_addr(sm, R, o->src, u, start);
        if (dst != src)
            memmove(dst, src, len * sm->es);
    }
}

/* Enter rank r's next rounds for as long as they complete at once. */
static void sim_enter(sim_t *sm, int r)
{
    sim_rank_t *R = &sm->rk[r];
    const rdt_sched_t *s = R->s;

    while (!sm->failed && !R->finished && R->pending == 0) {
        uint32_t i, g, round;

        if (R->cur_end == s->nops) {
            R->finished = 1;
            break;
        }
        R->cur_begin = R->cur_end;
        round = s->ops[R->cur_begin].round;
        for (i = R->cur_begin; i < s->nops && s->ops[i].round == round; i++)
            R->segs_left[i] = R->seg_base[i + 1] - R->seg_base[i];
        R->cur_end = i;
        R->pending = R->cur_end - R->cur_begin;
        if (sm->words)
            memcpy(R->known_entry, R->known, sm->words * sizeof(uint64_t));
        for (i = R->cur_begin; i < R->cur_end; i++) {
            if (!op_is_msg(&s->ops[i])) {
                sim_copy(sm, R, &s->ops[i]);
                R->pending--;
            }
        }
        for (i = R->cur_begin; i < R->cur_end && !sm->failed; i++) {
            const rdt_sched_op_t *o = &s->ops[i];
            if (!op_is_msg(o))
                continue;
            for (g = R->seg_base[i]; g < R->seg_base[i + 1] && !sm->failed; g++) {
                int q = R->part_rank[g];
                sim_rank_t *Q = &sm->rk[q];
                uint32_t h = R->part_seg[g], j = Q->seg_op[h];
                if (Q->finished || j < Q->cur_begin || j >= Q->cur_end)
                    continue; /* not posted yet: it will find us when it is */
                if (o->kind == RDT_OPK_SEND)
                    sim_move(sm, r, g, q, h);
                else
                    sim_move(sm, q, h, r, g);
                op_seg_done(sm, r, i, 1);
                op_seg_done(sm, q, j, 0);
            }
        }
    }
}

static void sim_report_deadlock(sim_t *sm)
{
    int r, stuck = 0, first = -1;

    for (r = 0; r < sm->p; r++) {
        if (!sm->rk[r].finished) {
            stuck++;
            if (first < 0)
                first = r;
        }
    }
    if (first >= 0) {
        sim_rank_t *R = &sm->rk[first];
        uint32_t i;
        for (i = R->cur_begin; i < R->cur_end; i++) {
            const rdt_sched_op_t *o = &R->s->ops[i];
            if (op_is_msg(o) && R->segs_left[i]) {
                const sim_rank_t *Q = &sm->rk[o->peer];
                sim_fail(sm, RDT_ERR_INTERNAL,
                         "deadlock in slice %zu: %d ranks cannot finish; rank %d waits in round "
                         "%u on op %u (%s %s[%u,%u) peer %d), and rank %d is %s round %u",
                         sm->k, stuck, first, o->round, i, opk_names[o->kind], buf_names[o->buf],
                         o->blk_begin, o->blk_end, o->peer, o->peer,
                         Q->finished ? "done after" : "in",
                         Q->cur_end ? Q->s->ops[Q->cur_end - 1].round : 0);
                return;
            }
        }
        sim_fail(sm, RDT_ERR_INTERNAL, "deadlock in slice %zu: rank %d cannot finish", sm->k,
                 first);
    }
}

/* AVG: scale the final results of this slice, as the executor does (sched.h). */
static void sim_scale_avg(sim_t *sm)
{
    int r;

    if (sm->prm->op != RDT_AVG || !sm->len)
        return;
    for (r = 0; r < sm->p; r++) {
        sim_rank_t *R = &sm->rk[r];
        uint32_t u;
        if (sm->coll == RDT_COLL_ALLREDUCE || (sm->coll == RDT_COLL_REDUCE && r == sm->prm->root))
            u = 0;
        else if (sm->coll == RDT_COLL_REDUCE_SCATTER)
            u = (uint32_t)r;
        else
            continue;
        rdt_reduce_scale_avg(sim_addr(sm, R, RDT_BUF_OUTPUT, u, 0), sm->len, sm->prm->dtype, sm->p);
    }
}

static void sim_slice(sim_t *sm)
{
    int r;

    sm->len = sm->count - sm->k * sm->slice;
    if (sm->len > sm->slice)
        sm->len = sm->slice;
    sm->nstack = 0;
    for (r = 0; r < sm->p; r++) {
        sim_rank_t *R = &sm->rk[r];
        R->cur_begin = R->cur_end = R->pending = 0;
        R->finished = 0;
        memset(R->temp, SIM_POISON_TEMP, (size_t)sm->nunits * sm->len * sm->es);
        sim_push(sm, sm->p - 1 - r);
    }
    while (sm->nstack && !sm->failed)
        sim_enter(sm, sm->stack[--sm->nstack]);
    if (!sm->failed)
        sim_report_deadlock(sm);
    if (!sm->failed)
        sim_scale_avg(sm);
}

/* ------------------------------------------------------------------------------------------ */
/* Results                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void hex(const unsigned char *b, size_t n, char *out)
{
    size_t i;
    out += sprintf(out, "0x");
    for (i = n; i-- > 0;)
        out += sprintf(out, "%02x", b[i]);
}

/* Compare one unit of rank r's OUTPUT with what it should hold; count and report the wrong
 * elements. */
static void sim_compare_unit(sim_t *sm, int r, uint32_t u, const unsigned char *got,
                             const unsigned char *want)
{
    char g[24], w[24];
    size_t i;

    if (!memcmp(got, want, sm->count * sm->es))
        return;
    for (i = 0; i < sm->count; i++) {
        const unsigned char *gi = got + i * sm->es, *wi = want + i * sm->es;
        if (!memcmp(gi, wi, sm->es))
            continue;
        if (!sm->res->wrong) {
            hex(gi, sm->es, g);
            hex(wi, sm->es, w);
            sim_fail(sm, RDT_ERR_INTERNAL,
                     "wrong result: rank %d OUTPUT unit %u element %zu is %s, expected %s (%s "
                     "%s, %s)",
                     r, u, i, g, w, rdt_coll_name(sm->coll), rdt_dtype_name(sm->prm->dtype),
                     rdt_op_name(sm->prm->op));
        }
        sm->res->wrong++;
    }
}

/* Expected unit @p u of OUTPUT on rank @p r for the data movers (no reduction involved). */
static void sim_expected_unit(const sim_t *sm, int r, uint32_t u, unsigned char *dst)
{
    size_t i;

    for (i = 0; i < sm->count; i++) {
        uint64_t iv;
        double fv;
        if (sm->coll == RDT_COLL_ALLGATHER)
            sim_value(sm, (int)u, u, i, &iv, &fv);
        else if (sm->coll == RDT_COLL_BROADCAST)
            sim_value(sm, sm->prm->root, 0, i, &iv, &fv);
        else /* alltoall: unit u of rank r is rank u's unit r */
            sim_value(sm, (int)u, (uint32_t)r, i, &iv, &fv);
        sim_store(sm->prm->dtype, dst + i * sm->es, iv, fv);
    }
}

/* Element of a float type as a double (own decoders, like the encoders above). */
static double sim_load_float(rdt_dtype_t dt, const unsigned char *src)
{
    uint16_t h;
    uint32_t x;
    float f;
    double d;

    switch (dt) {
    case RDT_FLOAT16: {
        uint32_t e, m;
        memcpy(&h, src, 2);
        e = (h >> 10) & 0x1f;
        m = h & 0x3ff;
        if (e == 0x1f)
            d = m ? NAN : INFINITY;
        else if (e == 0)
            d = ldexp((double)m, -24);
        else
            d = ldexp((double)(m | 0x400), (int)e - 25);
        return (h & 0x8000) ? -d : d;
    }
    case RDT_BFLOAT16:
        memcpy(&h, src, 2);
        x = (uint32_t)h << 16;
        memcpy(&f, &x, 4);
        return f;
    case RDT_FLOAT32:
        memcpy(&f, src, 4);
        return f;
    default:
        memcpy(&d, src, 8);
        return d;
    }
}

/*
 * Inexact mode: every kept unit within the rounding bound of the exact result, whatever the
 * order of the additions (|computed - exact| <= (p - 1) u sum |x_i|, u the unit roundoff, with
 * a factor 2 of slack and the AVG division's own rounding), and for allreduce every rank's
 * OUTPUT bit-identical to rank 0's.
 */
static void sim_verify_inexact(sim_t *sm)
{
    rdt_dtype_t dt = sm->prm->dtype;
    double u = dt == RDT_FLOAT16    ? ldexp(1, -11)
               : dt == RDT_BFLOAT16 ? ldexp(1, -8)
               : dt == RDT_FLOAT32  ? ldexp(1, -24)
                                    : ldexp(1, -53);
    size_t ub = sm->count * sm->es, i;
    int r, q;

    for (r = 0; r < sm->p && !sm->failed; r++) {
        const sim_buf_t *ob = &sm->rk[r].buf[1];
        uint32_t un;
        for (un = ob->u0; un < ob->u0 + ob->nu && !sm->failed; un++) {
            const unsigned char *got = unit_ptr(sm, ob, un);
            if (sm->coll == RDT_COLL_ALLREDUCE && r > 0 &&
                memcmp(got, unit_ptr(sm, &sm->rk[0].buf[1], 0), ub)) {
                for (i = 0; i < sm->count; i++)
                    if (memcmp(got + i * sm->es, unit_ptr(sm, &sm->rk[0].buf[1], 0) + i * sm->es,
                               sm->es))
                        break;
                sim_fail(sm, RDT_ERR_INTERNAL,
                         "ranks disagree: rank %d OUTPUT element %zu differs from rank 0's (%.9g "
                         "vs %.9g): the reduction order depends on the rank",
                         r, i, sim_load_float(dt, got + i * sm->es),
                         sim_load_float(dt, unit_ptr(sm, &sm->rk[0].buf[1], 0) + i * sm->es));
                sm->res->wrong++;
                return;
            }
            for (i = 0; i < sm->count; i++) {
                double sum = 0, mag = 0, want, tol, g = sim_load_float(dt, got + i * sm->es);
                for (q = 0; q < sm->p; q++) {
                    uint64_t iv;
                    double fv;
                    sim_value(sm, q, un, i, &iv, &fv);
                    sum += fv;
                    mag += fabs(fv);
                }
                want = sum;
                tol = 2 * (sm->p - 1) * u * mag;
                if (sm->prm->op == RDT_AVG) {
                    want = sum / sm->p;
                    tol = tol / sm->p + 2 * u * fabs(want);
                }
                if (!(fabs(g - want) <= tol)) {
                    if (!sm->res->wrong)
                        sim_fail(sm, RDT_ERR_INTERNAL,
                                 "wrong result: rank %d OUTPUT unit %u element %zu is %.9g, the "
                                 "exact result is %.9g (tolerance %.3g, %s %s)",
                                 r, un, i, g, want, tol, rdt_dtype_name(dt),
                                 rdt_op_name(sm->prm->op));
                    sm->res->wrong++;
                }
            }
        }
    }
}

static rdt_status_t sim_verify(sim_t *sm)
{
    size_t ub = sm->count * sm->es;
    int r, per_rank = sm->coll == RDT_COLL_ALLTOALL;
    uint32_t u,
        nref = (sm->coll == RDT_COLL_REDUCE_SCATTER || sm->coll == RDT_COLL_ALLGATHER || per_rank)
                   ? sm->nunits
                   : 1;
    unsigned char *ref = malloc((size_t)nref * ub + 1);
    size_t i;

    if (!ref)
        return RDT_ERR_NO_MEMORY;
    /* expected units that do not depend on the rank, computed once */
    for (u = 0; u < nref && !per_rank; u++) {
        if (coll_reduces(sm->coll))
            for (i = 0; i < sm->count; i++)
                sim_reference(sm, u, i, ref + (size_t)u * ub + i * sm->es);
        else
            sim_expected_unit(sm, 0, u, ref + (size_t)u * ub);
    }
    for (r = 0; r < sm->p; r++) {
        const sim_buf_t *ob = &sm->rk[r].buf[1];
        for (u = ob->u0; u < ob->u0 + ob->nu; u++) {
            const unsigned char *want = ref + (size_t)(nref > 1 ? u : 0) * ub;
            if (per_rank)
                sim_expected_unit(sm, r, u, ref + (size_t)u * ub);
            sim_compare_unit(sm, r, u, unit_ptr(sm, ob, u), want);
        }
    }
    free(ref);
    return RDT_SUCCESS;
}

static void sim_verify_barrier(sim_t *sm)
{
    int r, q;

    for (r = 0; r < sm->p && !sm->failed; r++) {
        for (q = 0; q < sm->p; q++) {
            if (!(sm->rk[r].known[q / 64] >> (q % 64) & 1)) {
                sim_fail(sm, RDT_ERR_INTERNAL,
                         "barrier: rank %d can leave before rank %d has entered (no chain of "
                         "messages from %d to %d)",
                         r, q, q, r);
                break;
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Entry points                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void sim_free(sim_t *sm)
{
    int r;

    if (!sm->rk)
        return;
    for (r = 0; r < sm->p; r++) {
        sim_rank_t *R = &sm->rk[r];
        free(R->mem[0]);
        free(R->mem[1]);
        free(R->temp);
        free(R->seg_base);
        free(R->part_rank);
        free(R->part_seg);
        free(R->seg_op);
        free(R->segs_left);
        free(R->known);
        free(R->known_entry);
    }
    free(sm->rk);
    free(sm->stack);
    free(sm->host_bytes);
    free(sm->host_recv);
}

static rdt_status_t sim_prepare_rank(sim_t *sm, int r)
{
    sim_rank_t *R = &sm->rk[r];
    const rdt_sched_t *s = R->s;
    uint32_t i, nseg;
    rdt_status_t st;

    /* buffers first: the checks need to know which exist; segments only for a valid schedule */
    st = sim_buffers(sm, r);
    if (st != RDT_SUCCESS)
        return st;
    sim_check_sched(sm, r);
    if (sm->failed)
        return RDT_SUCCESS;
    R->seg_base = malloc(((size_t)s->nops + 1) * sizeof(uint32_t));
    R->segs_left = malloc(((size_t)s->nops + 1) * sizeof(uint32_t));
    if (!R->seg_base || !R->segs_left)
        return RDT_ERR_NO_MEMORY;
    for (i = 0, nseg = 0; i < s->nops; i++) {
        R->seg_base[i] = nseg;
        if (op_is_msg(&s->ops[i]))
            nseg += op_nsegs(sm, &s->ops[i]);
    }
    R->seg_base[s->nops] = nseg;
    R->part_rank = malloc(((size_t)nseg + 1) * sizeof(int32_t));
    R->part_seg = malloc(((size_t)nseg + 1) * sizeof(uint32_t));
    R->seg_op = malloc(((size_t)nseg + 1) * sizeof(uint32_t));
    if (!R->part_rank || !R->part_seg || !R->seg_op)
        return RDT_ERR_NO_MEMORY;
    for (i = 0; i < s->nops; i++) {
        uint32_t g;
        for (g = R->seg_base[i]; g < R->seg_base[i + 1]; g++)
            R->seg_op[g] = i;
    }
    if (sm->words) {
        R->known = calloc(sm->words, sizeof(uint64_t));
        R->known_entry = calloc(sm->words, sizeof(uint64_t));
        if (!R->known || !R->known_entry)
            return RDT_ERR_NO_MEMORY;
        R->known[r / 64] |= 1ULL << (r % 64);
    }
    for (i = 0; i < s->nops; i++)
        if (op_is_msg(&s->ops[i]) && s->ops[i].kind == RDT_OPK_SEND)
            sm->res->msgs += R->seg_base[i + 1] - R->seg_base[i];
    if (s->nrounds > sm->res->max_rounds)
        sm->res->max_rounds = s->nrounds;
    return RDT_SUCCESS;
}

rdt_status_t rdt_sim_run_scheds(const rdt_sim_params_t *params, rdt_sched_t *const *scheds,
                                rdt_sim_result_t *result_p)
{
    sim_t sm;
    rdt_status_t st;
    int r;

    if (!result_p)
        return RDT_ERR_INVALID_ARG;
    memset(result_p, 0, sizeof(*result_p));
    memset(&sm, 0, sizeof(sm));
    sm.prm = params;
    sm.res = result_p;
    if (!params || !scheds || params->nranks < 1 || params->nranks > SIM_MAX_RANKS ||
        (unsigned)params->coll >= RDT_COLL_COUNT || !rdt_dtype_size(params->dtype) ||
        (unsigned)params->op >= RDT_OP_COUNT ||
        ((params->coll == RDT_COLL_BROADCAST || params->coll == RDT_COLL_REDUCE) &&
         (params->root < 0 || params->root >= params->nranks))) {
        sim_fail(&sm, RDT_ERR_INVALID_ARG, "invalid simulation parameters");
        return result_p->status;
    }
    for (r = 0; r < params->nranks; r++) {
        if (!scheds[r]) {
            sim_fail(&sm, RDT_ERR_INVALID_ARG, "no schedule for rank %d", r);
            return result_p->status;
        }
        if (params->host_of && (params->host_of[r] < 0 || params->host_of[r] >= params->nranks)) {
            sim_fail(&sm, RDT_ERR_INVALID_ARG, "host_of[%d] = %d is not in [0, %d)", r,
                     params->host_of[r], params->nranks);
            return result_p->status;
        }
    }
    sm.p = params->nranks;
    sm.coll = params->coll;
    sm.nunits = rdt_sched_nunits(sm.coll, sm.p);
    sm.nblocks = scheds[0]->nblocks;
    if (!sm.nblocks || sm.nblocks % sm.nunits) {
        sim_fail(&sm, RDT_ERR_INTERNAL, "nblocks %u is not a positive multiple of nunits %u",
                 sm.nblocks, sm.nunits);
        return result_p->status;
    }
    sm.kpu = sm.nblocks / sm.nunits;
    sm.es = rdt_dtype_size(params->dtype);
    sm.count = sm.coll == RDT_COLL_BARRIER ? 0 : params->count;
    sm.slice = params->slice && params->slice < sm.count ? params->slice : sm.count;
    sm.nslices = sm.count ? (sm.count + sm.slice - 1) / sm.slice : 1;
    sm.words = sm.coll == RDT_COLL_BARRIER ? ((size_t)sm.p + 63) / 64 : 0;
    sm.inexact = params->inexact && dt_is_float(params->dtype) && coll_reduces(sm.coll) &&
                 (params->op == RDT_SUM || params->op == RDT_AVG);
    sm.rk = calloc((size_t)sm.p, sizeof(*sm.rk));
    sm.stack = malloc((size_t)sm.p * 2 * sizeof(int) + sizeof(int));
    if (params->host_of) {
        sm.host_bytes = calloc((size_t)sm.p, sizeof(uint64_t));
        sm.host_recv = calloc((size_t)sm.p, sizeof(uint64_t));
    }
    if (!sm.rk || !sm.stack || (params->host_of && (!sm.host_bytes || !sm.host_recv))) {
        sim_fail(&sm, RDT_ERR_NO_MEMORY, "out of memory for %d ranks", sm.p);
        goto out;
    }
    for (r = 0; r < sm.p; r++)
        sm.rk[r].s = scheds[r];
    for (r = 0; r < sm.p && !sm.failed; r++) {
        st = sim_prepare_rank(&sm, r);
        if (st != RDT_SUCCESS)
            sim_fail(&sm, st, "out of memory preparing rank %d", r);
    }
    if (!sm.failed)
        sim_match(&sm);
    for (sm.k = 0; sm.k < sm.nslices && !sm.failed; sm.k++)
        sim_slice(&sm);
    if (!sm.failed) {
        if (sm.words) {
            sim_verify_barrier(&sm);
        } else if (sm.inexact) {
            sim_verify_inexact(&sm);
        } else {
            st = sim_verify(&sm);
            if (st != RDT_SUCCESS)
                sim_fail(&sm, st, "out of memory for the reference");
        }
    }
    for (r = 0; r < sm.p; r++)
        if (sm.rk && sm.rk[r].sent_bytes > result_p->max_rank_bytes)
            result_p->max_rank_bytes = sm.rk[r].sent_bytes;
    if (sm.host_bytes) { /* over the hosts that exist: the values host_of uses */
        int first = 1;
        for (r = 0; r < sm.p; r++) {
            uint64_t v = sm.host_bytes[params->host_of[r]];
            uint64_t w = sm.host_recv[params->host_of[r]];
            if (first || v > result_p->max_host_bytes)
                result_p->max_host_bytes = v;
            if (first || v < result_p->min_host_bytes)
                result_p->min_host_bytes = v;
            if (first || w > result_p->max_host_recv_bytes)
                result_p->max_host_recv_bytes = w;
            if (first || w < result_p->min_host_recv_bytes)
                result_p->min_host_recv_bytes = w;
            first = 0;
        }
    }
out:
    sim_free(&sm);
    return result_p->status;
}

rdt_status_t rdt_sim_run(const rdt_sim_params_t *params, rdt_sim_result_t *result_p)
{
    rdt_sched_t **scheds;
    rdt_status_t st = RDT_SUCCESS;
    int r, n;

    if (!result_p)
        return RDT_ERR_INVALID_ARG;
    memset(result_p, 0, sizeof(*result_p));
    if (!params || params->nranks < 1 || params->nranks > SIM_MAX_RANKS) {
        result_p->status = RDT_ERR_INVALID_ARG;
        snprintf(result_p->error, sizeof(result_p->error), "invalid number of ranks");
        return result_p->status;
    }
    n = params->nranks;
    scheds = calloc((size_t)n, sizeof(*scheds));
    if (!scheds) {
        result_p->status = RDT_ERR_NO_MEMORY;
        snprintf(result_p->error, sizeof(result_p->error), "out of memory");
        return result_p->status;
    }
    for (r = 0; r < n && st == RDT_SUCCESS; r++)
        st = rdt_sched_build_topo(params->coll, params->algo, r, n, params->root,
                                  params->host_of, &scheds[r]);
    if (st != RDT_SUCCESS) {
        result_p->status = st;
        snprintf(result_p->error, sizeof(result_p->error),
                 "cannot build the %s %s schedule of rank %d of %d: %s",
                 rdt_algo_name(params->algo), rdt_coll_name(params->coll), r - 1, n,
                 rdt_status_str(st));
    } else {
        rdt_sim_run_scheds(params, scheds, result_p);
    }
    for (r = 0; r < n; r++)
        rdt_sched_destroy(scheds[r]);
    free(scheds);
    return result_p->status;
}
