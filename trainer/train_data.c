/*
 * train_data.c - data parallelism (--parallel data): every rank holds the whole model and trains
 * on its slice of each global batch; gradients are summed with allreduce in buckets that start
 * while the backward pass is still computing earlier layers, as PyTorch's DDP does.
 *
 * Buckets are runs of whole layers taken from the last layer backwards (the order in which
 * backward finishes them) until a bucket holds --bucket-kb; the callback that backward runs
 * after each layer starts the allreduce of a bucket as soon as its first layer is done, and
 * nudges the ones in flight (rdt_test) between layers. With --compress fp16/bf16 a bucket
 * travels in 16 bits (scaled by the global batch first, so that fp16 keeps the small
 * gradients); with topk each rank sends its largest entries of gradient + residual (error
 * feedback) through an allgather after backward.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

typedef struct {
    int lo, hi;    /* local layers lo..hi */
    size_t off, n; /* range of the flat gradient */
    rdt_request_t *req;
} bucket_t;

typedef struct {
    rdt_mlp_t m;
    rdt_mlp_ws_t ws;
    float *x, *dlogits, *vel;
    uint8_t *y;
    bucket_t *buckets;
    int nbuckets, next; /* next bucket to start */
    int failed;
    uint16_t *half;        /* fp16/bf16 staging, nparams */
    int grads_mapped;      /* m.grads came from rdt_mem_alloc (direct collectives on one host) */
    float *resid;          /* topk: error feedback */
    float *tmp;            /* topk: |acc| for selection */
    uint32_t *send, *recv; /* topk: (index, value bits) pairs */
    size_t k;
} data_state_t;

/* ----- 16-bit floats, round to nearest even ------------------------------------------------- */

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40); /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static float from_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t to_fp16(float f)
{
    uint32_t u, sign, mant;
    int exp;

    memcpy(&u, &f, 4);
    sign = (u >> 16) & 0x8000u;
    exp = (int)((u >> 23) & 0xff) - 127 + 15;
    mant = u & 0x7fffffu;
    if (((u >> 23) & 0xff) == 0xff)
        return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0));
    if (exp >= 31)
        return (uint16_t)(sign | 0x7c00u); /* overflow: infinity */
    if (exp <= 0) {
        uint32_t m, half_ulp, r;
        int shift;
        if (exp < -10)
            return (uint16_t)sign;
        m = mant | 0x800000u;
        shift = 14 - exp;
        half_ulp = 1u << (shift - 1);
        r = m >> shift;
        if ((m & ((1u << shift) - 1)) > half_ulp ||
            ((m & ((1u << shift) - 1)) == half_ulp && (r & 1)))
            r++;
        return (uint16_t)(sign | r);
    }
    {
        uint32_t r = ((uint32_t)exp << 10) | (mant >> 13), rest = mant & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (r & 1)))
            r++; /* may carry into the exponent, up to infinity: correct */
        return (uint16_t)(sign | r);
    }
}

static float from_fp16(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu, u;
    float f;

    if (exp == 0) {
        f = ldexpf((float)mant, -24);
        return sign ? -f : f;
    }
    if (exp == 31)
        u = sign | 0x7f800000u | (mant << 13);
    else
        u = sign | ((exp + 112) << 23) | (mant << 13);
    memcpy(&f, &u, 4);
    return f;
}

/* g[i] * scale to fp16 and back (times scale), with F16C where the CPU has it: the scalar
 * conversions cost more than the allreduce they shrink. Both round to nearest even. */
static void fp16_pack_scalar(const float *g, float scale, uint16_t *h, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        h[i] = to_fp16(g[i] * scale);
}

static void fp16_unpack_scalar(const uint16_t *h, float scale, float *g, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        g[i] = from_fp16(h[i]) * scale;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>

__attribute__((target("avx,f16c"))) static void fp16_pack_f16c(const float *g, float scale,
                                                                 uint16_t *h, size_t n)
{
    __m256 k = _mm256_set1_ps(scale);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(h + i),
                         _mm256_cvtps_ph(_mm256_mul_ps(_mm256_loadu_ps(g + i), k),
                                         _MM_FROUND_TO_NEAREST_INT));
    fp16_pack_scalar(g + i, scale, h + i, n - i);
}

__attribute__((target("avx,f16c"))) static void fp16_unpack_f16c(const uint16_t *h, float scale,
                                                                   float *g, size_t n)
{
    __m256 k = _mm256_set1_ps(scale);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(
                                                  (const __m128i *)(h + i))),
                                              k));
    fp16_unpack_scalar(h + i, scale, g + i, n - i);
}

static int have_f16c(void)
{
    static int v = -1;
    unsigned a, b, c, d;

    /* F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports has no "f16c";
     * "avx" also says the OS saves the YMM registers */
    if (v < 0)
        v = __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
    return v;
}
#else
static int have_f16c(void)
{
    return 0;
}
#define fp16_pack_f16c   fp16_pack_scalar
#define fp16_unpack_f16c fp16_unpack_scalar
#endif

static void fp16_pack(const float *g, float scale, uint16_t *h, size_t n)
{
    (have_f16c() ? fp16_pack_f16c : fp16_pack_scalar)(g, scale, h, n);
}

static void fp16_unpack(const uint16_t *h, float scale, float *g, size_t n)
{
    (have_f16c() ? fp16_unpack_f16c : fp16_unpack_scalar)(h, scale, g, n);
}

/* ----- buckets ------------------------------------------------------------------------------ */

static int start_bucket(trainer_t *t, data_state_t *s, bucket_t *b)
{
    void *buf = s->m.grads + b->off;
    rdt_dtype_t dt = RDT_FLOAT32;
    rdt_status_t st;
    size_t i;

    if (t->o.comp == COMP_FP16 || t->o.comp == COMP_BF16) {
        float scale = (float)t->gbatch;
        uint16_t *h = s->half + b->off;
        const float *g = s->m.grads + b->off;
        if (t->o.comp == COMP_FP16)
            fp16_pack(g, scale, h, b->n);
        else
            for (i = 0; i < b->n; i++)
                h[i] = to_bf16(g[i] * scale);
        buf = h;
        dt = t->o.comp == COMP_FP16 ? RDT_FLOAT16 : RDT_BFLOAT16;
    }
    st = rdt_iallreduce(t->comm, buf, buf, b->n, dt, RDT_SUM, &b->req);
    if (st != RDT_SUCCESS)
        return train_fail(t, t->comm, st, "the gradient allreduce");
    t->bytes_sent += b->n * rdt_dtype_size(dt);
    return 0;
}

/* A bucket's allreduce is done: back to float32 if it travelled in 16 bits. */
static void unpack_bucket(trainer_t *t, data_state_t *s, const bucket_t *b)
{
    size_t i;

    if (t->o.comp == COMP_FP16 || t->o.comp == COMP_BF16) {
        float inv = 1.0f / (float)t->gbatch;
        const uint16_t *h = s->half + b->off;
        float *g = s->m.grads + b->off;
        if (t->o.comp == COMP_FP16)
            fp16_unpack(h, inv, g, b->n);
        else
            for (i = 0; i < b->n; i++)
                g[i] = from_bf16(h[i]) * inv;
    }
}

static int finish_bucket(trainer_t *t, data_state_t *s, bucket_t *b)
{
    if (train_wait(t, b->req, "the gradient allreduce"))
        return -1;
    b->req = NULL;
    unpack_bucket(t, s, b);
    return 0;
}

/* Backward finished local layer i: start the buckets whose layers are all done, and let the
 * ones in flight progress. */
static void on_layer(int i, void *ctx)
{
    trainer_t *t = ctx;
    data_state_t *s = t->mode_state;
    int j;

    if (s->failed)
        return;
    while (s->next < s->nbuckets && s->buckets[s->next].lo >= i) {
        if (start_bucket(t, s, &s->buckets[s->next])) {
            s->failed = 1;
            return;
        }
        s->next++;
    }
    for (j = 0; j < s->next; j++) {
        int done = 0;
        rdt_status_t st;
        if (!s->buckets[j].req)
            continue;
        st = rdt_test(s->buckets[j].req, &done);
        if (done || st != RDT_SUCCESS) {
            s->buckets[j].req = NULL; /* freed by rdt_test */
            if (st != RDT_SUCCESS) {
                train_fail(t, t->comm, st, "the gradient allreduce");
                s->failed = 1;
                return;
            }
            unpack_bucket(t, s, &s->buckets[j]);
        }
    }
}

/* ----- top-k with error feedback ------------------------------------------------------------ */

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* The k-th largest of v[0..n) (v is reordered): quickselect, median of three. */
static float kth_largest(float *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1, target = k - 1;

    while (hi - lo > 16) {
        size_t mid = lo + (hi - lo) / 2, i = lo, j = hi;
        float a = v[lo], b = v[mid], c = v[hi], p, tmp;
        if ((a >= b) == (b >= c))
            p = b;
        else if ((b >= a) == (a >= c))
            p = a;
        else
            p = c;
        while (i <= j) {
            while (v[i] > p)
                i++;
            while (v[j] < p)
                j--;
            if (i <= j) {
                tmp = v[i], v[i] = v[j], v[j] = tmp;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (target <= j)
            hi = j;
        else if (target >= i)
            lo = i;
        else
            return v[target];
    }
    qsort(v + lo, hi - lo + 1, sizeof(float), cmp_desc);
    return v[target];
}

static int topk_exchange(trainer_t *t, data_state_t *s)
{
    size_t n = s->m.nparams, k = s->k, i, sel = 0;
    float *g = s->m.grads, thr;
    rdt_request_t *req;
    rdt_status_t st;
    int r;

    for (i = 0; i < n; i++) {
        s->resid[i] += g[i];
        s->tmp[i] = fabsf(s->resid[i]);
    }
    thr = kth_largest(s->tmp, n, k);
    /* strictly above the threshold first, then ties in index order, k in all */
    for (i = 0; i < n && sel < k; i++)
        if (fabsf(s->resid[i]) > thr) {
            s->send[2 * sel] = (uint32_t)i;
            memcpy(&s->send[2 * sel + 1], &s->resid[i], 4);
            s->resid[i] = 0;
            sel++;
        }
    for (i = 0; i < n && sel < k; i++)
        if (fabsf(s->resid[i]) == thr && s->resid[i] != 0) {
            s->send[2 * sel] = (uint32_t)i;
            memcpy(&s->send[2 * sel + 1], &s->resid[i], 4);
            s->resid[i] = 0;
            sel++;
        }
    for (; sel < k; sel++) { /* fewer than k non-zeros: pad with zeros at index 0 */
        s->send[2 * sel] = 0;
        s->send[2 * sel + 1] = 0;
    }
    st = rdt_iallgather(t->comm, s->send, s->recv, 2 * k, RDT_UINT32, &req);
    if (st != RDT_SUCCESS)
        return train_fail(t, t->comm, st, "the top-k allgather");
    t->bytes_sent += 2 * k * sizeof(uint32_t);
    if (train_wait(t, req, "the top-k allgather"))
        return -1;
    memset(g, 0, n * sizeof(float));
    for (r = 0; r < t->size; r++) {
        const uint32_t *e = s->recv + (size_t)r * 2 * k;
        for (i = 0; i < k; i++) {
            float v;
            if (e[2 * i] >= n)
                return train_error(t, "rank %d sent a top-k index %u beyond the %zu parameters", r,
                                   e[2 * i], n);
            memcpy(&v, &e[2 * i + 1], 4);
            g[e[2 * i]] += v;
        }
    }
    return 0;
}

/* ----- the mode ----------------------------------------------------------------------------- */

static int data_setup(trainer_t *t)
{
    data_state_t *s;
    const train_opts_t *o = &t->o;
    int l;

    if (!(s = calloc(1, sizeof(*s))))
        return train_error(t, "out of memory");
    t->mode_state = s;
    t->gbatch = o->batch * t->size;
    if (rdt_mlp_init(&s->m, o->sizes, o->nsizes, 0, o->nsizes - 1, o->seed) ||
        rdt_mlp_ws_init(&s->ws, &s->m, o->batch))
        return train_error(t, "out of memory for the model");
    /* the gradients the buckets' allreduces read and write: memory the ranks of a host can map,
     * so that there the large buckets run direct (RDT_SHM_DIRECT); malloc'd memory works too */
    {
        void *g = NULL;
        if (rdt_mem_alloc(s->m.nparams * sizeof(float), &g) == RDT_SUCCESS) {
            free(s->m.grads);
            s->m.grads = g; /* zero-filled, as rdt_mlp_init left them */
            s->grads_mapped = 1;
        }
    }
    s->x = malloc((size_t)o->batch * (size_t)o->sizes[0] * sizeof(float));
    s->y = malloc((size_t)o->batch);
    s->dlogits = malloc((size_t)o->batch * RDT_DATA_CLASSES * sizeof(float));
    s->buckets = calloc((size_t)s->m.nlayers, sizeof(*s->buckets));
    if (o->momentum > 0)
        s->vel = calloc(s->m.nparams, sizeof(float));
    if (!s->x || !s->y || !s->dlogits || !s->buckets || (o->momentum > 0 && !s->vel))
        return train_error(t, "out of memory");
    /* buckets: whole layers from the last one back, each closed at bucket_bytes */
    for (l = s->m.nlayers - 1; l >= 0;) {
        bucket_t *b = &s->buckets[s->nbuckets++];
        size_t bytes = 0;
        b->hi = l;
        do {
            bytes += ((size_t)s->m.sizes[l] + 1) * (size_t)s->m.sizes[l + 1] * sizeof(float);
            l--;
        } while (l >= 0 && bytes < o->bucket_bytes);
        b->lo = l + 1;
        b->off = s->m.w_off[b->lo];
        b->n = s->m.b_off[b->hi] + (size_t)s->m.sizes[b->hi + 1] - b->off;
    }
    if (o->comp == COMP_FP16 || o->comp == COMP_BF16) {
        if (!(s->half = malloc(s->m.nparams * sizeof(uint16_t))))
            return train_error(t, "out of memory");
    } else if (o->comp == COMP_TOPK) {
        s->k = (size_t)(o->topk_ratio * (double)s->m.nparams);
        if (s->k < 1)
            s->k = 1;
        s->resid = calloc(s->m.nparams, sizeof(float));
        s->tmp = malloc(s->m.nparams * sizeof(float));
        s->send = malloc(2 * s->k * sizeof(uint32_t));
        s->recv = malloc(2 * s->k * sizeof(uint32_t) * (size_t)t->size);
        if (!s->resid || !s->tmp || !s->send || !s->recv)
            return train_error(t, "out of memory");
    }
    return 0;
}

static int data_step(trainer_t *t, const int *idx, int gbatch, double *loss_sum, long *correct)
{
    data_state_t *s = t->mode_state;
    int b = t->o.batch, c = 0, j;
    const float *logits;

    train_batch(&t->train, idx + (size_t)t->rank * (size_t)b, b, s->x, s->y);
    logits = rdt_mlp_forward(&s->m, &s->ws, s->x, b);
    *loss_sum +=
        rdt_softmax_xent(logits, s->y, b, RDT_DATA_CLASSES, 1.0f / (float)gbatch, s->dlogits, &c);
    *correct += c;
    t->seen += b;
    s->next = 0;
    s->failed = 0;
    rdt_mlp_backward(&s->m, &s->ws, s->x, b, s->dlogits, NULL, 0,
                     t->size > 1 && t->o.comp != COMP_TOPK ? on_layer : NULL, t);
    for (j = 0; j < s->next; j++)
        if (s->buckets[j].req && !s->failed && finish_bucket(t, s, &s->buckets[j]))
            s->failed = 1;
    if (s->failed)
        return -1;
    if (t->size > 1 && t->o.comp == COMP_TOPK && topk_exchange(t, s))
        return -1;
    rdt_sgd_step(s->m.params, s->m.grads, s->vel, s->m.nparams, t->o.lr, t->o.momentum);
    return 0;
}

static int data_gather(trainer_t *t, float *full, float *full_vel)
{
    data_state_t *s = t->mode_state;
    memcpy(full, s->m.params, s->m.nparams * sizeof(float));
    if (full_vel && s->vel)
        memcpy(full_vel, s->vel, s->m.nparams * sizeof(float));
    return 0;
}

static int data_scatter(trainer_t *t, const float *full, const float *full_vel)
{
    data_state_t *s = t->mode_state;
    memcpy(s->m.params, full, s->m.nparams * sizeof(float));
    if (full_vel && s->vel)
        memcpy(s->vel, full_vel, s->m.nparams * sizeof(float));
    return 0;
}

static void data_layout(const trainer_t *t, int layout[4])
{
    layout[0] = t->size; /* data-parallel degree */
    layout[1] = layout[2] = layout[3] = 0;
}

static void data_fini(trainer_t *t)
{
    data_state_t *s = t->mode_state;
    int j;

    if (!s)
        return;
    for (j = 0; j < s->nbuckets; j++)
        if (s->buckets[j].req)
            rdt_wait(s->buckets[j].req); /* the communicator is aborted on failure: returns */
    rdt_mlp_ws_free(&s->ws);
    if (s->grads_mapped) {
        rdt_mem_free(s->m.grads);
        s->m.grads = NULL;
    }
    rdt_mlp_free(&s->m);
    free(s->x);
    free(s->y);
    free(s->dlogits);
    free(s->vel);
    free(s->buckets);
    free(s->half);
    free(s->resid);
    free(s->tmp);
    free(s->send);
    free(s->recv);
    free(s);
    t->mode_state = NULL;
}

const train_mode_t rdt_mode_data = {"data",       data_setup,  data_step, data_gather,
                                    data_scatter, data_layout, data_fini};
