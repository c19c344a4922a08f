/*
 * model.c - see model.h. The matrix products go to cblas_sgemm (row-major); the rest are plain
 * loops. Nothing here depends on the machine: the generator is integer code and the initial
 * parameters are one float rounding of an exact product, so every rank starts from the same bits.
 */
#include "model.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RDT_MLP_SIZE_MAX  (1 << 20)
#define RDT_MLP_ALIGN     64
#define RDT_INIT_STREAM   1000 /* rng stream of layer l: 1000 + l */
#define RDT_GOLDEN_GAMMA  UINT64_C(0x9e3779b97f4a7c15)
#define RDT_STREAM_OFFSET UINT64_C(0x632be59bd9b4e019)

/* Prototypes for builds whose cblas.h lacks the OpenBLAS extensions. */
char *openblas_get_corename(void);
void openblas_set_num_threads(int num_threads);

/* ----- random numbers ----------------------------------------------------------------------- */

/* The splitmix64 output function (a bijection of 64-bit words). */
static uint64_t rdt_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t rdt_splitmix64(uint64_t *x)
{
    *x += RDT_GOLDEN_GAMMA;
    return rdt_mix64(*x);
}

static uint64_t rdt_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/*
 * The stream is hashed before it is mixed into the seed: with seed ^ (stream * gamma), the
 * splitmix state of (0, 1) would be one gamma step ahead of (0, 0), and the two generators
 * would share three of their four state words.
 */
void rdt_rng_seed(rdt_rng_t *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ rdt_mix64(stream + RDT_STREAM_OFFSET);

    for (int i = 0; i < 4; i++)
        r->s[i] = rdt_splitmix64(&x);
}

/* xoshiro256** 1.0 (Blackman and Vigna). */
uint64_t rdt_rng_next(rdt_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rdt_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rdt_rotl(s[3], 45);
    return result;
}

float rdt_rng_uniform(rdt_rng_t *r)
{
    return (float)(rdt_rng_next(r) >> 40) * 0x1.0p-24f;
}

/*
 * Uniform in [0, range), range <= 2^32, without bias (Lemire, "Fast random integer generation in
 * an interval", 2019): the high word of x * range, redrawing x when the low word falls in the
 * 2^32 mod range values that would make some results more likely than others.
 */
static uint32_t rdt_rng_bounded(rdt_rng_t *r, uint32_t range)
{
    uint64_t m = (rdt_rng_next(r) >> 32) * (uint64_t)range;
    uint32_t low = (uint32_t)m;

    if (low < range) {
        uint32_t threshold = (uint32_t)-range % range;

        while (low < threshold) {
            m = (rdt_rng_next(r) >> 32) * (uint64_t)range;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

void rdt_rng_shuffle(rdt_rng_t *r, int *perm, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rdt_rng_bounded(r, (uint32_t)i + 1);
        int t = perm[i];

        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* ----- kernels ------------------------------------------------------------------------------ */

void rdt_linear_forward(const float *x, int batch, int in, int out, const float *w, int ldw,
                        const float *b, float *z)
{
    if (batch <= 0 || out <= 0)
        return;
    for (int r = 0; r < batch; r++) {
        if (b)
            memcpy(z + (size_t)r * out, b, (size_t)out * sizeof(*z));
        else
            memset(z + (size_t)r * out, 0, (size_t)out * sizeof(*z));
    }
    if (in <= 0)
        return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, out, in, 1.0f, x, in, w, ldw, 1.0f,
                z, out);
}

/* gw (+)= dz^T x, gb (+)= column sums of dz, added row by row (contiguous, so vectorised). */
static void rdt_linear_grads(const float *x, const float *dz, int batch, int in, int out, float *gw,
                             float *restrict gb, int accumulate)
{
    if (out <= 0)
        return;
    if (in > 0) {
        if (batch > 0)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, batch, 1.0f, dz, out, x,
                        in, accumulate ? 1.0f : 0.0f, gw, in);
        else if (!accumulate)
            memset(gw, 0, (size_t)out * (size_t)in * sizeof(*gw));
    }
    if (!gb)
        return;
    if (!accumulate)
        memset(gb, 0, (size_t)out * sizeof(*gb));
    for (int r = 0; r < batch; r++) {
        const float *restrict row = dz + (size_t)r * (size_t)out;
        for (int j = 0; j < out; j++)
            gb[j] += row[j];
    }
}

/* dx = dz W. */
static void rdt_linear_dx(const float *dz, int batch, int in, int out, const float *w, int ldw,
                          float *dx)
{
    if (batch <= 0 || in <= 0)
        return;
    if (out <= 0) {
        memset(dx, 0, (size_t)batch * (size_t)in * sizeof(*dx));
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, batch, in, out, 1.0f, dz, out, w, ldw,
                0.0f, dx, in);
}

void rdt_linear_backward(const float *x, const float *dz, int batch, int in, int out,
                         const float *w, int ldw, float *gw, float *gb, float *dx, int accumulate)
{
    rdt_linear_grads(x, dz, batch, in, out, gw, gb, accumulate);
    if (dx)
        rdt_linear_dx(dz, batch, in, out, w, ldw, dx);
}

/* Negative values become 0; a NaN stays NaN, so a diverging run shows. */
void rdt_relu_forward(float *restrict z, size_t n)
{
    for (size_t i = 0; i < n; i++)
        z[i] = z[i] < 0.0f ? 0.0f : z[i];
}

void rdt_relu_backward(const float *restrict h, float *restrict dh, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dh[i] = h[i] <= 0.0f ? 0.0f : dh[i];
}

/*
 * Per row, in double: m = max, s = sum exp(l - m), loss = m + log s - l[label]. Subtracting the
 * maximum keeps every exponent <= 0, so large logits cannot overflow.
 */
double rdt_softmax_xent(const float *logits, const uint8_t *labels, int batch, int classes,
                        float grad_scale, float *dlogits, int *correct)
{
    double total = 0;
    int right = 0;

    for (int r = 0; r < batch; r++) {
        const float *l = logits + (size_t)r * classes;
        int y = labels[r], arg = 0;
        double m, s = 0, lse;

        assert(y < classes);
        for (int c = 1; c < classes; c++)
            if (l[c] > l[arg])
                arg = c;
        m = l[arg];
        for (int c = 0; c < classes; c++)
            s += exp((double)l[c] - m);
        lse = m + log(s);
        total += lse - l[y];
        right += arg == y;
        if (dlogits) {
            float *d = dlogits + (size_t)r * classes;

            for (int c = 0; c < classes; c++)
                d[c] = (float)((exp((double)l[c] - lse) - (c == y)) * grad_scale);
        }
    }
    if (correct)
        *correct += right;
    return total;
}

/* ----- the model ---------------------------------------------------------------------------- */

/* Error text for parse_sizes: "layer sizes \"SPEC\": ...". Returns -1. */
static int __attribute__((format(printf, 4, 5)))
sizes_fail(const char *spec, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!err || errlen == 0)
        return -1;
    n = snprintf(err, errlen, "layer sizes \"%s\": ", spec);
    if (n < 0 || (size_t)n >= errlen)
        return -1;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

int rdt_mlp_parse_sizes(const char *spec, int *sizes, char *err, size_t errlen)
{
    int tmp[RDT_MLP_LAYERS_MAX + 1], count = 0;
    const char *p = spec;

    if (!spec || !*spec)
        return sizes_fail(spec ? spec : "", err, errlen,
                          "empty: give the widths from input to output, e.g. 784-256-10");
    for (;;) {
        const char *start = p;
        long v = 0;

        while (*p >= '0' && *p <= '9') {
            if (v <= RDT_MLP_SIZE_MAX)
                v = v * 10 + (*p - '0');
            p++;
        }
        if (*p != '-' && *p != '\0')
            return sizes_fail(spec, err, errlen,
                              "size %d is not a number (at '%c'): sizes are positive numbers "
                              "separated by '-'",
                              count + 1, *p);
        if (p == start)
            return sizes_fail(spec, err, errlen,
                              "size %d is empty: sizes are positive numbers separated by '-'",
                              count + 1);
        if (v == 0)
            return sizes_fail(spec, err, errlen, "size %d is 0: sizes must be positive", count + 1);
        if (v > RDT_MLP_SIZE_MAX)
            return sizes_fail(spec, err, errlen, "size %d (%.*s) exceeds the maximum %d", count + 1,
                              (int)(p - start), start, RDT_MLP_SIZE_MAX);
        if (count == RDT_MLP_LAYERS_MAX + 1)
            return sizes_fail(spec, err, errlen, "too many layers: at most %d sizes (%d layers)",
                              RDT_MLP_LAYERS_MAX + 1, RDT_MLP_LAYERS_MAX);
        tmp[count++] = (int)v;
        if (*p == '\0')
            break;
        p++;
    }
    if (count < 2)
        return sizes_fail(spec, err, errlen,
                          "only %d size: at least 2 are needed (input and output widths)", count);
    memcpy(sizes, tmp, (size_t)count * sizeof(*sizes));
    return count;
}

/* nn.Linear's initialisation: uniform in +-1/sqrt(in), W row by row, then b. */
void rdt_mlp_init_layer(uint64_t seed, int layer, int in, int out, float *w, float *b)
{
    float bound = (float)(1.0 / sqrt((double)in));
    size_t nw = (size_t)out * (size_t)in;
    rdt_rng_t r;

    rdt_rng_seed(&r, seed, RDT_INIT_STREAM + (uint64_t)layer);
    for (size_t i = 0; i < nw; i++)
        w[i] = (2.0f * rdt_rng_uniform(&r) - 1.0f) * bound;
    for (int i = 0; i < out; i++)
        b[i] = (2.0f * rdt_rng_uniform(&r) - 1.0f) * bound;
}

static float *rdt_alloc_floats(size_t n)
{
    size_t bytes = (n * sizeof(float) + RDT_MLP_ALIGN - 1) / RDT_MLP_ALIGN * RDT_MLP_ALIGN;

    return aligned_alloc(RDT_MLP_ALIGN, bytes ? bytes : RDT_MLP_ALIGN);
}

int rdt_mlp_init(rdt_mlp_t *m, const int *sizes, int nsizes, int first, int nlayers, uint64_t seed)
{
    rdt_mlp_t t;
    size_t off = 0;

    if (nsizes < 2 || nsizes > RDT_MLP_LAYERS_MAX + 1 || first < 0 || nlayers < 1 ||
        first + nlayers > nsizes - 1)
        return -1;
    for (int i = 0; i < nsizes; i++)
        if (sizes[i] < 1 || sizes[i] > RDT_MLP_SIZE_MAX)
            return -1;

    memset(&t, 0, sizeof(t));
    t.first = first;
    t.nlayers = nlayers;
    t.total_layers = nsizes - 1;
    for (int i = 0; i <= nlayers; i++)
        t.sizes[i] = sizes[first + i];
    for (int i = 0; i < nlayers; i++) {
        t.w_off[i] = off;
        off += (size_t)t.sizes[i + 1] * (size_t)t.sizes[i];
        t.b_off[i] = off;
        off += (size_t)t.sizes[i + 1];
    }
    t.nparams = off;
    t.params = rdt_alloc_floats(off);
    t.grads = rdt_alloc_floats(off);
    if (!t.params || !t.grads) {
        free(t.grads);
        free(t.params);
        return -1;
    }
    memset(t.grads, 0, off * sizeof(float));
    for (int i = 0; i < nlayers; i++)
        rdt_mlp_init_layer(seed, first + i, t.sizes[i], t.sizes[i + 1], t.params + t.w_off[i],
                           t.params + t.b_off[i]);
    *m = t;
    return 0;
}

void rdt_mlp_free(rdt_mlp_t *m)
{
    if (!m)
        return;
    free(m->params);
    free(m->grads);
    m->params = NULL;
    m->grads = NULL;
    m->nparams = 0;
}

int rdt_mlp_ws_init(rdt_mlp_ws_t *ws, const rdt_mlp_t *m, int batch_cap)
{
    rdt_mlp_ws_t t;
    int widest = 0;

    if (batch_cap < 1)
        return -1;
    memset(&t, 0, sizeof(t));
    t.batch_cap = batch_cap;
    for (int i = 0; i <= m->nlayers; i++)
        widest = m->sizes[i] > widest ? m->sizes[i] : widest;
    for (int i = 0; i < m->nlayers; i++)
        if (!(t.act[i] = rdt_alloc_floats((size_t)batch_cap * (size_t)m->sizes[i + 1])))
            goto err_free;
    for (int i = 0; i < 2; i++)
        if (!(t.d[i] = rdt_alloc_floats((size_t)batch_cap * (size_t)widest)))
            goto err_free;
    *ws = t;
    return 0;

err_free:
    rdt_mlp_ws_free(&t);
    return -1;
}

void rdt_mlp_ws_free(rdt_mlp_ws_t *ws)
{
    if (!ws)
        return;
    for (int i = 0; i < RDT_MLP_LAYERS_MAX; i++) {
        free(ws->act[i]);
        ws->act[i] = NULL;
    }
    for (int i = 0; i < 2; i++) {
        free(ws->d[i]);
        ws->d[i] = NULL;
    }
    ws->batch_cap = 0;
}

/* Is local layer i followed by ReLU? Every layer but the model's last one is. */
static int rdt_mlp_hidden(const rdt_mlp_t *m, int i)
{
    return m->first + i < m->total_layers - 1;
}

const float *rdt_mlp_forward(const rdt_mlp_t *m, rdt_mlp_ws_t *ws, const float *x, int batch)
{
    const float *in = x;

    assert(batch <= ws->batch_cap);
    for (int i = 0; i < m->nlayers; i++) {
        rdt_linear_forward(in, batch, m->sizes[i], m->sizes[i + 1], m->params + m->w_off[i],
                           m->sizes[i], m->params + m->b_off[i], ws->act[i]);
        if (rdt_mlp_hidden(m, i))
            rdt_relu_forward(ws->act[i], (size_t)batch * (size_t)m->sizes[i + 1]);
        in = ws->act[i];
    }
    return in;
}

/*
 * Layer by layer from the last, the gradient g of the current layer's output ping-pongs between
 * ws->d[0] and ws->d[1]:
 *
 *   dout --(ReLU mask if hidden)--> g --layer i--> gw, gb (final: cb(i)), then dx --mask--> g
 *
 * The callback runs as soon as gw and gb of layer i are written, before dx, so a caller that
 * starts an allreduce there overlaps it with the rest of the backward pass.
 */
void rdt_mlp_backward(rdt_mlp_t *m, rdt_mlp_ws_t *ws, const float *x, int batch, const float *dout,
                      float *dx, int accumulate, rdt_mlp_grad_fn cb, void *ctx)
{
    int last = m->nlayers - 1;
    const float *g = dout;

    assert(batch <= ws->batch_cap);
    if (rdt_mlp_hidden(m, last)) {
        size_t n = (size_t)batch * (size_t)m->sizes[last + 1];

        memcpy(ws->d[0], dout, n * sizeof(float));
        rdt_relu_backward(ws->act[last], ws->d[0], n);
        g = ws->d[0];
    }
    for (int i = last; i >= 0; i--) {
        const float *in = i == 0 ? x : ws->act[i - 1];
        const float *w = m->params + m->w_off[i];
        int nin = m->sizes[i], nout = m->sizes[i + 1];
        float *next = g == ws->d[0] ? ws->d[1] : ws->d[0];

        rdt_linear_grads(in, g, batch, nin, nout, m->grads + m->w_off[i], m->grads + m->b_off[i],
                         accumulate);
        if (cb)
            cb(i, ctx);
        if (i == 0) {
            if (dx)
                rdt_linear_dx(g, batch, nin, nout, w, nin, dx);
            break;
        }
        rdt_linear_dx(g, batch, nin, nout, w, nin, next);
        rdt_relu_backward(ws->act[i - 1], next, (size_t)batch * (size_t)nin);
        g = next;
    }
}

void rdt_sgd_step(float *restrict params, const float *restrict grads, float *restrict vel, size_t n,
                  float lr, float momentum)
{
    if (momentum > 0.0f) {
        for (size_t i = 0; i < n; i++) {
            vel[i] = momentum * vel[i] + grads[i];
            params[i] -= lr * vel[i];
        }
    } else {
        for (size_t i = 0; i < n; i++)
            params[i] -= lr * grads[i];
    }
}

const char *rdt_blas_core(void)
{
    const char *name = openblas_get_corename();

    return name ? name : "unknown";
}

void rdt_blas_single_thread(void)
{
    openblas_set_num_threads(1);
}
