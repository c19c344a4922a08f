/*
 * test_model.c - the trainer's model (trainer/model.c): the MLP's forward and backward against a
 * double-precision reference written here with plain loops (no BLAS), its gradients against
 * central differences of that reference's loss, softmax cross-entropy against a differently
 * formulated log-sum-exp, pipeline stages against the whole model, the initialisation, SGD, the
 * generator (with the published xoshiro256** outputs) and the layer-size parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "testutil.h"

#define SEED 20240611u

/* The small model of most tests: 7 -> 5 -> 4 -> 3, a batch of 6. */
static const int small_sizes[] = {7, 5, 4, 3};
#define SMALL_NSIZES 4
#define SMALL_BATCH  6
#define REF_MAXP     256
#define REF_MAXW     8

/* ------------------------------------------------------------------------------------------- */
/* Reference MLP in double: parameters in the layout [W_0 b_0 W_1 b_1 ...], W out x in.         */
/* ------------------------------------------------------------------------------------------- */

typedef struct {
    int nl;           /* layers */
    int first, total; /* global index of layer 0, layers of the whole model */
    int sizes[RDT_MLP_LAYERS_MAX + 1];
    size_t w_off[RDT_MLP_LAYERS_MAX], b_off[RDT_MLP_LAYERS_MAX], n;
    double p[REF_MAXP];
} ref_mlp_t;

static void ref_layout(ref_mlp_t *r, const int *sizes, int nsizes, int first, int nl)
{
    size_t off = 0;

    memset(r, 0, sizeof(*r));
    r->nl = nl;
    r->first = first;
    r->total = nsizes - 1;
    for (int i = 0; i <= nl; i++)
        r->sizes[i] = sizes[first + i];
    for (int i = 0; i < nl; i++) {
        r->w_off[i] = off;
        off += (size_t)r->sizes[i] * r->sizes[i + 1];
        r->b_off[i] = off;
        off += (size_t)r->sizes[i + 1];
    }
    r->n = off;
    assert_true(off <= REF_MAXP);
}

static void ref_from_model(ref_mlp_t *r, const rdt_mlp_t *m)
{
    for (size_t i = 0; i < r->n; i++)
        r->p[i] = m->params[i];
}

/* act[i] = output of layer i (post-ReLU when hidden), batch x sizes[i+1]. */
static void ref_forward(const ref_mlp_t *r, const double *x, int batch,
                        double act[][SMALL_BATCH * REF_MAXW])
{
    const double *in = x;

    for (int l = 0; l < r->nl; l++) {
        int nin = r->sizes[l], nout = r->sizes[l + 1];
        const double *w = r->p + r->w_off[l], *b = r->p + r->b_off[l];

        for (int s = 0; s < batch; s++) {
            for (int o = 0; o < nout; o++) {
                double z = b[o];

                for (int k = 0; k < nin; k++)
                    z += in[s * nin + k] * w[o * nin + k];
                if (r->first + l < r->total - 1 && z < 0)
                    z = 0;
                act[l][s * nout + o] = z;
            }
        }
        in = act[l];
    }
}

/* Cross-entropy of one row, summed the plain way (the reference's logits are small). */
static double ref_xent_row(const double *l, int classes, int y, double *dl)
{
    double s = 0;

    for (int c = 0; c < classes; c++)
        s += exp(l[c]);
    for (int c = 0; c < classes && dl; c++)
        dl[c] = exp(l[c]) / s - (c == y);
    return log(s) - l[y];
}

/* Sum of the per-sample losses of the whole model (r must hold the last layer). */
static double ref_loss(const ref_mlp_t *r, const double *x, const uint8_t *y, int batch)
{
    double act[RDT_MLP_LAYERS_MAX][SMALL_BATCH * REF_MAXW], loss = 0;
    int classes = r->sizes[r->nl];

    ref_forward(r, x, batch, act);
    for (int s = 0; s < batch; s++)
        loss += ref_xent_row(act[r->nl - 1] + s * classes, classes, y[s], NULL);
    return loss;
}

/* Given dout (w.r.t. the forward's output), the parameter gradients g and dx. */
static void ref_backward(const ref_mlp_t *r, const double *x, int batch, const double *dout,
                         double *g, double *dx)
{
    double act[RDT_MLP_LAYERS_MAX][SMALL_BATCH * REF_MAXW];
    double cur[SMALL_BATCH * REF_MAXW], prev[SMALL_BATCH * REF_MAXW];
    int last = r->nl - 1;

    ref_forward(r, x, batch, act);
    for (int i = 0; i < batch * r->sizes[r->nl]; i++)
        cur[i] = (r->first + last < r->total - 1 && act[last][i] <= 0) ? 0 : dout[i];
    for (int l = last; l >= 0; l--) {
        int nin = r->sizes[l], nout = r->sizes[l + 1];
        const double *in = l == 0 ? x : act[l - 1], *w = r->p + r->w_off[l];
        double *gw = g + r->w_off[l], *gb = g + r->b_off[l];

        for (int o = 0; o < nout; o++) {
            gb[o] = 0;
            for (int s = 0; s < batch; s++)
                gb[o] += cur[s * nout + o];
            for (int k = 0; k < nin; k++) {
                gw[o * nin + k] = 0;
                for (int s = 0; s < batch; s++)
                    gw[o * nin + k] += cur[s * nout + o] * in[s * nin + k];
            }
        }
        for (int s = 0; s < batch; s++) {
            for (int k = 0; k < nin; k++) {
                double v = 0;

                for (int o = 0; o < nout; o++)
                    v += cur[s * nout + o] * w[o * nin + k];
                if (l > 0 && act[l - 1][s * nin + k] <= 0)
                    v = 0;
                prev[s * nin + k] = v;
            }
        }
        memcpy(cur, prev, sizeof(double) * (size_t)(batch * nin));
    }
    if (dx)
        memcpy(dx, cur, sizeof(double) * (size_t)(batch * r->sizes[0]));
}

/* ------------------------------------------------------------------------------------------- */
/* Helpers                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static double rand_sym(uint64_t *st)
{
    return (double)(rdt_test_rand(st) >> 11) * 0x1.0p-53 * 2.0 - 1.0;
}

/*
 * got[i] against want[i]: |got - want| <= rtol * (|want| + scale / 10), scale the largest |want|,
 * so entries near zero (sums that cancel) are held to the precision of the array's magnitude.
 */
static void expect_close(const char *what, const float *got, const double *want, size_t n,
                         double rtol)
{
    double scale = 0;

    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= rtol * (fabs(want[i]) + scale / 10)))
            fail_msg("%s[%zu] = %.9g, reference %.9g (rtol %g)", what, i, got[i], want[i], rtol);
}

static void expect_close_f(const char *what, const float *got, const float *want, size_t n,
                           double rtol)
{
    double w[REF_MAXP];

    assert_true(n <= REF_MAXP);
    for (size_t i = 0; i < n; i++)
        w[i] = want[i];
    expect_close(what, got, w, n, rtol);
}

/* A batch of inputs in [-1, 1] as float and the same values as double, and labels. */
static void make_batch(uint64_t seed, int batch, int dim, int classes, float *xf, double *xd,
                       uint8_t *y)
{
    uint64_t st = seed;

    for (int i = 0; i < batch * dim; i++) {
        xf[i] = (float)rand_sym(&st);
        xd[i] = xf[i];
    }
    for (int s = 0; s < batch && y; s++)
        y[s] = (uint8_t)(rdt_test_rand(&st) % (uint64_t)classes);
}

/* A model of small_sizes with the layers [first, first + nl), and its workspace. */
static void small_model(rdt_mlp_t *m, rdt_mlp_ws_t *ws, int first, int nl)
{
    assert_int_equal(rdt_mlp_init(m, small_sizes, SMALL_NSIZES, first, nl, SEED), 0);
    assert_int_equal(rdt_mlp_ws_init(ws, m, SMALL_BATCH), 0);
}

/* ------------------------------------------------------------------------------------------- */
/* The model against the reference                                                              */
/* ------------------------------------------------------------------------------------------- */

static void test_layout_is_packed_w_then_b_per_layer_and_64_byte_aligned(void **state)
{
    rdt_mlp_t m;
    rdt_mlp_ws_t ws;
    ref_mlp_t r;

    small_model(&m, &ws, 0, 3);
    ref_layout(&r, small_sizes, SMALL_NSIZES, 0, 3);
    assert_int_equal(m.nparams, 7 * 5 + 5 + 5 * 4 + 4 + 4 * 3 + 3);
    assert_int_equal(m.nparams, r.n);
    assert_int_equal(m.first, 0);
    assert_int_equal(m.nlayers, 3);
    assert_int_equal(m.total_layers, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(m.w_off[i], r.w_off[i]);
        assert_int_equal(m.b_off[i], r.b_off[i]);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(m.sizes[i], small_sizes[i]);
    assert_int_equal((uintptr_t)m.params % 64, 0);
    assert_int_equal((uintptr_t)m.grads % 64, 0);
    for (size_t i = 0; i < m.nparams; i++)
        assert_true(m.grads[i] == 0.0f);
    assert_int_equal(ws.batch_cap, SMALL_BATCH);
    rdt_mlp_ws_free(&ws);
    rdt_mlp_free(&m);
    rdt_mlp_free(NULL);
    rdt_mlp_ws_free(NULL);
}

static void test_forward_and_backward_match_double_reference(void **state)
{
    float xf[SMALL_BATCH * 7], dlog[SMALL_BATCH * 3], dx[SMALL_BATCH * 7];
    double xd[SMALL_BATCH * 7], act[RDT_MLP_LAYERS_MAX][SMALL_BATCH * REF_MAXW];
    double dref[SMALL_BATCH * 3], g[REF_MAXP], dxref[SMALL_BATCH * 7];
    uint8_t y[SMALL_BATCH];
    const float *logits;
    rdt_mlp_t m;
    rdt_mlp_ws_t ws;
    ref_mlp_t r;

    small_model(&m, &ws, 0, 3);
    ref_layout(&r, small_sizes, SMALL_NSIZES, 0, 3);
    ref_from_model(&r, &m);
    make_batch(1, SMALL_BATCH, 7, 3, xf, xd, y);

    logits = rdt_mlp_forward(&m, &ws, xf, SMALL_BATCH);
    assert_ptr_equal(logits, ws.act[2]);
    ref_forward(&r, xd, SMALL_BATCH, act);
    expect_close("hidden 1", ws.act[0], act[0], SMALL_BATCH * 5, 1e-5);
    expect_close("hidden 2", ws.act[1], act[1], SMALL_BATCH * 4, 1e-5);
    expect_close("logits", logits, act[2], SMALL_BATCH * 3, 1e-5);

    /* Backward from the model's own dlogits; the reference gets the same float values. */
    rdt_softmax_xent(logits, y, SMALL_BATCH, 3, 1.0f, dlog, NULL);
    for (int i = 0; i < SMALL_BATCH * 3; i++)
        dref[i] = dlog[i];
    rdt_mlp_backward(&m, &ws, xf, SMALL_BATCH, dlog, dx, 0, NULL, NULL);
    ref_backward(&r, xd, SMALL_BATCH, dref, g, dxref);
    for (int l = 0; l < 3; l++) {
        expect_close("grad W", m.grads + r.w_off[l], g + r.w_off[l],
                     (size_t)small_sizes[l] * small_sizes[l + 1], 1e-5);
        expect_close("grad b", m.grads + r.b_off[l], g + r.b_off[l], (size_t)small_sizes[l + 1],
                     1e-5);
    }
    expect_close("dx", dx, dxref, SMALL_BATCH * 7, 1e-5);
    rdt_mlp_ws_free(&ws);
    rdt_mlp_free(&m);
}

/* Every parameter's gradient against a central difference of the reference loss. */
static void test_gradients_match_finite_differences_of_the_loss(void **state)
{
    float xf[SMALL_BATCH * 7], dlog[SMALL_BATCH * 3];
    double xd[SMALL_BATCH * 7], fd[REF_MAXP];
    const double eps = 1e-6;
    uint8_t y[SMALL_BATCH];
    const float *logits;
    rdt_mlp_t m;
    rdt_mlp_ws_t ws;
    ref_mlp_t r;
    int nonzero = 0;

    small_model(&m, &ws, 0, 3);
    ref_layout(&r, small_sizes, SMALL_NSIZES, 0, 3);
    ref_from_model(&r, &m);
    make_batch(2, SMALL_BATCH, 7, 3, xf, xd, y);

    logits = rdt_mlp_forward(&m, &ws, xf, SMALL_BATCH);
    rdt_softmax_xent(logits, y, SMALL_BATCH, 3, 1.0f, dlog, NULL);
    rdt_mlp_backward(&m, &ws, xf, SMALL_BATCH, dlog, NULL, 0, NULL, NULL);

    for (size_t k = 0; k < r.n; k++) {
        double p = r.p[k], lp, lm;

        r.p[k] = p + eps;
        lp = ref_loss(&r, xd, y, SMALL_BATCH);
        r.p[k] = p - eps;
        lm = ref_loss(&r, xd, y, SMALL_BATCH);
        r.p[k] = p;
        fd[k] = (lp - lm) / (2 * eps);
        nonzero += fabs(fd[k]) > 1e-3;
    }
    expect_close("grad vs finite difference", m.grads, fd, r.n, 1e-4);
    assert_true(nonzero > (int)r.n / 2); /* the check is not vacuous */
    rdt_mlp_ws_free(&ws);
    rdt_mlp_free(&m);
}

static void test_linear_kernels_honour_ldw_null_bias_and_null_outputs(void **state)
{
    /* W is the 3 x 4 block at column 2 of a 3 x 9 matrix (ldw 9), as a tensor-parallel slice. */
    enum { B = 5, IN = 4, OUT = 3, LDW = 9 };
    float big[OUT * LDW], x[B * IN], dz[B * OUT], z[B * OUT], gw[OUT * IN], gb[OUT], dx[B * IN];
    double zr[B * OUT], gwr[OUT * IN], gbr[OUT], dxr[B * IN];
    const float *w = big + 2;
    uint64_t st = 3;

    for (int i = 0; i < OUT * LDW; i++)
        big[i] = (float)rand_sym(&st);
    for (int i = 0; i < B * IN; i++)
        x[i] = (float)rand_sym(&st);
    for (int i = 0; i < B * OUT; i++)
        dz[i] = (float)rand_sym(&st);
    for (int s = 0; s < B; s++)
        for (int o = 0; o < OUT; o++) {
            zr[s * OUT + o] = 0;
            for (int k = 0; k < IN; k++)
                zr[s * OUT + o] += (double)x[s * IN + k] * w[o * LDW + k];
        }
    for (int o = 0; o < OUT; o++) {
        gbr[o] = 0;
        for (int s = 0; s < B; s++)
            gbr[o] += dz[s * OUT + o];
        for (int k = 0; k < IN; k++) {
            gwr[o * IN + k] = 0;
            for (int s = 0; s < B; s++)
                gwr[o * IN + k] += (double)dz[s * OUT + o] * x[s * IN + k];
        }
    }
    for (int s = 0; s < B; s++)
        for (int k = 0; k < IN; k++) {
            dxr[s * IN + k] = 0;
            for (int o = 0; o < OUT; o++)
                dxr[s * IN + k] += (double)dz[s * OUT + o] * w[o * LDW + k];
        }

    for (int i = 0; i < B * OUT; i++)
        z[i] = NAN; /* overwritten, never read */
    rdt_linear_forward(x, B, IN, OUT, w, LDW, NULL, z);
    expect_close("z without bias", z, zr, B * OUT, 1e-6);

    for (int i = 0; i < OUT * IN; i++)
        gw[i] = 1e6f;
    gb[0] = gb[1] = gb[2] = 7.0f;
    for (int i = 0; i < B * IN; i++)
        dx[i] = NAN;
    rdt_linear_backward(x, dz, B, IN, OUT, w, LDW, gw, NULL, dx, 0);
    expect_close("gw overwritten", gw, gwr, OUT * IN, 1e-6);
    assert_true(gb[0] == 7.0f && gb[1] == 7.0f && gb[2] == 7.0f); /* NULL gb: none touched */
    expect_close("dx", dx, dxr, B * IN, 1e-6);

    rdt_linear_backward(x, dz, B, IN, OUT, w, LDW, gw, gb, NULL, 0);
    expect_close("gb", gb, gbr, OUT, 1e-6);
}

static void test_relu_zeroes_negatives_and_masks_gradient_where_output_is_not_positive(void **s)
{
    float z[] = {-2.0f, -0.0f, 0.0f, 1e-30f, 3.5f, -1e-30f};
    const float want[] = {0.0f, 0.0f, 0.0f, 1e-30f, 3.5f, 0.0f};
    float d[] = {1, 2, 3, 4, 5, 6};
    const float dwant[] = {0, 0, 0, 4, 5, 0};

    rdt_relu_forward(z, 6);
    for (int i = 0; i < 6; i++)
        assert_true(z[i] == want[i]);
    rdt_relu_backward(z, d, 6);
    for (int i = 0; i < 6; i++)
        assert_true(d[i] == dwant[i]);
}

/* ------------------------------------------------------------------------------------------- */
/* Softmax cross-entropy                                                                        */
/* ------------------------------------------------------------------------------------------- */

/*
 * Reference log-sum-exp by pairwise folding, a (+) b = max + log1p(exp(-|a - b|)): another
 * formulation than the code's (subtract the row maximum, sum, log), equally safe for 1000s.
 */
static double ref_lse(const float *l, int n)
{
    double acc = l[0];

    for (int c = 1; c < n; c++) {
        double hi = fmax(acc, l[c]), lo = fmin(acc, l[c]);

        acc = hi + log1p(exp(lo - hi));
    }
    return acc;
}

static void check_xent(const float *logits, const uint8_t *y, int batch, int classes, float scale)
{
    float d[64];
    double loss = 0, want_d[64];
    int correct = 5, want_correct = 0;

    for (int s = 0; s < batch; s++) {
        const float *l = logits + s * classes;
        double lse = ref_lse(l, classes);
        int arg = 0;

        loss += lse - l[y[s]];
        for (int c = 0; c < classes; c++) {
            want_d[s * classes + c] = (exp(l[c] - lse) - (c == y[s])) * scale;
            if (l[c] > l[arg])
                arg = c;
        }
        want_correct += arg == y[s];
    }
    double got = rdt_softmax_xent(logits, y, batch, classes, scale, d, &correct);

    if (!isfinite(got) || !(fabs(got - loss) <= 1e-9 * fmax(1.0, fabs(loss))))
        fail_msg("loss %.17g, reference %.17g", got, loss);
    assert_int_equal(correct, 5 + want_correct); /* added to, not overwritten */
    for (int i = 0; i < batch * classes; i++)
        if (!(fabs(d[i] - want_d[i]) <= 1e-6 * fabs(scale)))
            fail_msg("dlogits[%d] = %.9g, reference %.9g", i, d[i], want_d[i]);
    /* NULL outputs are accepted and change nothing else. */
    assert_true(rdt_softmax_xent(logits, y, batch, classes, scale, NULL, NULL) == got);
}

static void test_softmax_xent_matches_reference_loss_gradient_and_accuracy(void **state)
{
    float l[7 * 4];
    uint8_t y[7];
    uint64_t st = 4;

    for (int i = 0; i < 7 * 4; i++)
        l[i] = (float)(3 * rand_sym(&st));
    for (int s = 0; s < 7; s++)
        y[s] = (uint8_t)(rdt_test_rand(&st) % 4);
    y[0] = 0; /* make row 0 a right answer whatever the draw */
    l[0] = 10.0f;
    check_xent(l, y, 7, 4, 0.25f);
    check_xent(l, y, 7, 4, 1.0f);
}

static void test_softmax_xent_is_stable_for_logits_near_plus_minus_1000(void **state)
{
    const float l[] = {
        1000.0f, 999.0f,  998.5f,  /* all large: a naive exp overflows to inf */
        -1000.f, -1001.f, -999.0f, /* all very negative: a naive sum underflows to 0 */
        1000.0f, -1000.f, 0.0f,    /* label on the -1000: loss 2000, softmax one-hot */
        88.0f,   89.0f,   -90.0f,  /* around float exp's overflow */
    };
    const uint8_t y[] = {1, 2, 1, 1};
    float d[12];
    double loss;

    check_xent(l, y, 4, 3, 1.0f / 4);
    loss = rdt_softmax_xent(l, y, 4, 3, 1.0f, d, NULL);
    assert_true(isfinite(loss));
    for (int i = 0; i < 12; i++)
        assert_true(isfinite(d[i]));
    assert_true(fabs(d[7] + 1.0) < 1e-6 && fabs(d[6] - 1.0) < 1e-6); /* row 2: one-hot */
}

/* ------------------------------------------------------------------------------------------- */
/* Pipeline stages                                                                              */
/* ------------------------------------------------------------------------------------------- */

/* Stage A = layer 0, stage B = layers 1 and 2, composed by hand, against the whole model. */
static void test_two_stage_split_composes_to_the_whole_model(void **state)
{
    float xf[SMALL_BATCH * 7], dlog[SMALL_BATCH * 3], dh[SMALL_BATCH * 5], dh_copy[SMALL_BATCH * 5];
    float dx_whole[SMALL_BATCH * 7], dx_a[SMALL_BATCH * 7];
    double xd[SMALL_BATCH * 7];
    uint8_t y[SMALL_BATCH];
    const float *logits, *h, *lb;
    rdt_mlp_t whole, a, b;
    rdt_mlp_ws_t wsw, wsa, wsb;
    int zeros = 0;

    small_model(&whole, &wsw, 0, 3);
    small_model(&a, &wsa, 0, 1);
    small_model(&b, &wsb, 1, 2);
    assert_int_equal(a.nlayers, 1);
    assert_int_equal(b.first, 1);
    assert_int_equal(b.total_layers, 3);
    assert_int_equal(b.sizes[0], 5);
    assert_int_equal(b.sizes[1], 4);
    assert_int_equal(b.sizes[2], 3);
    assert_int_equal(a.nparams + b.nparams, whole.nparams);
    /* Each stage starts from the whole model's numbers: the bits of a slice of its params. */
    assert_memory_equal(a.params, whole.params, a.nparams * sizeof(float));
    assert_memory_equal(b.params, whole.params + whole.w_off[1], b.nparams * sizeof(float));

    make_batch(5, SMALL_BATCH, 7, 3, xf, xd, y);
    logits = rdt_mlp_forward(&whole, &wsw, xf, SMALL_BATCH);
    h = rdt_mlp_forward(&a, &wsa, xf, SMALL_BATCH);
    for (int i = 0; i < SMALL_BATCH * 5; i++) {
        assert_true(h[i] >= 0.0f); /* stage A ends in ReLU: layer 0 is hidden */
        zeros += h[i] == 0.0f;
    }
    assert_true(zeros > 0);
    lb = rdt_mlp_forward(&b, &wsb, h, SMALL_BATCH);
    expect_close_f("stage logits", lb, logits, SMALL_BATCH * 3, 1e-6);

    rdt_softmax_xent(logits, y, SMALL_BATCH, 3, 1.0f / SMALL_BATCH, dlog, NULL);
    rdt_mlp_backward(&whole, &wsw, xf, SMALL_BATCH, dlog, dx_whole, 0, NULL, NULL);
    rdt_mlp_backward(&b, &wsb, h, SMALL_BATCH, dlog, dh, 0, NULL, NULL);
    memcpy(dh_copy, dh, sizeof(dh));
    rdt_mlp_backward(&a, &wsa, xf, SMALL_BATCH, dh, dx_a, 0, NULL, NULL);
    assert_memory_equal(dh, dh_copy, sizeof(dh)); /* dout is not modified */

    expect_close_f("stage A grads", a.grads, whole.grads, a.nparams, 1e-6);
    expect_close_f("stage B grads", b.grads, whole.grads + whole.w_off[1], b.nparams, 1e-6);
    expect_close_f("stage dx", dx_a, dx_whole, SMALL_BATCH * 7, 1e-6);

    rdt_mlp_ws_free(&wsb);
    rdt_mlp_ws_free(&wsa);
    rdt_mlp_ws_free(&wsw);
    rdt_mlp_free(&b);
    rdt_mlp_free(&a);
    rdt_mlp_free(&whole);
}

/* A hidden stage's backward masks dout with its ReLU: against the reference of that stage. */
static void test_hidden_stage_backward_masks_dout_with_its_relu(void **state)
{
    float xf[SMALL_BATCH * 7], dout[SMALL_BATCH * 4], dx[SMALL_BATCH * 7];
    double xd[SMALL_BATCH * 7], doutd[SMALL_BATCH * 4], g[REF_MAXP], dxr[SMALL_BATCH * 7];
    rdt_mlp_t m;
    rdt_mlp_ws_t ws;
    ref_mlp_t r;
    uint64_t st = 6;

    small_model(&m, &ws, 0, 2); /* layers 0 and 1 of 3: both hidden */
    ref_layout(&r, small_sizes, SMALL_NSIZES, 0, 2);
    ref_from_model(&r, &m);
    make_batch(7, SMALL_BATCH, 7, 3, xf, xd, NULL);
    for (int i = 0; i < SMALL_BATCH * 4; i++) {
        dout[i] = (float)rand_sym(&st);
        doutd[i] = dout[i];
    }
    rdt_mlp_forward(&m, &ws, xf, SMALL_BATCH);
    rdt_mlp_backward(&m, &ws, xf, SMALL_BATCH, dout, dx, 0, NULL, NULL);
    ref_backward(&r, xd, SMALL_BATCH, doutd, g, dxr);
    expect_close("hidden stage grads", m.grads, g, r.n, 1e-5);
    expect_close("hidden stage dx", dx, dxr, SMALL_BATCH * 7, 1e-5);
    rdt_mlp_ws_free(&ws);
    rdt_mlp_free(&m);
}

/* ------------------------------------------------------------------------------------------- */
/* Initialisation, accumulation, callbacks, SGD                                                  */
/* ------------------------------------------------------------------------------------------- */

static void test_init_layer_reproduces_the_model_params_within_bound(void **state)
{
    float w[2][100 * 50], b[2][50];
    rdt_mlp_t m;
    rdt_mlp_ws_t ws;
    double sum = 0, lo = 1, hi = -1, bound = 1 / sqrt(100.0);

    small_model(&m, &ws, 0, 3);
    for (int l = 0; l < 3; l++) {
        int in = small_sizes[l], out = small_sizes[l + 1];
        float bd = (float)(1 / sqrt((double)in));

        rdt_mlp_init_layer(SEED, l, in, out, w[0], b[0]);
        assert_memory_equal(w[0], m.params + m.w_off[l], sizeof(float) * (size_t)(in * out));
        assert_memory_equal(b[0], m.params + m.b_off[l], sizeof(float) * (size_t)out);
        for (int i = 0; i < in * out; i++)
            assert_true(fabsf(w[0][i]) <= bd);
    }

    /* A larger layer: bound respected, range covered, mean near 0, repeatable. */
    rdt_mlp_init_layer(7, 4, 100, 50, w[0], b[0]);
    rdt_mlp_init_layer(7, 4, 100, 50, w[1], b[1]);
    assert_memory_equal(w[0], w[1], sizeof(w[0]));
    assert_memory_equal(b[0], b[1], sizeof(b[0]));
    for (int i = 0; i < 100 * 50; i++) {
        assert_true(fabs(w[0][i]) <= bound * (1 + 1e-7));
        sum += w[0][i];
        lo = fmin(lo, w[0][i]);
        hi = fmax(hi, w[0][i]);
    }
    assert_true(hi > 0.99 * bound && lo < -0.99 * bound);
    assert_true(fabs(sum / 5000) < 0.05 * bound);
    for (int i = 0; i < 50; i++)
        assert_true(fabs(b[0][i]) <= bound * (1 + 1e-7));

    /* Another layer index or seed: other numbers. */
    rdt_mlp_init_layer(7, 5, 100, 50, w[1], b[1]);
    assert_memory_not_equal(w[0], w[1], sizeof(w[0]));
    rdt_mlp_init_layer(8, 4, 100, 50, w[1], b[1]);
    assert_memory_not_equal(w[0], w[1], sizeof(w[0]));
    rdt_mlp_ws_free(&ws);
    rdt_mlp_free(&m);
}

static void test_init_rejects_bad_ranges(void **state)
{
    rdt_mlp_t m;
    const int zero[] = {7, 0, 3};

    assert_int_equal(rdt_mlp_init(&m, small_sizes, SMALL_NSIZES, 2, 2, SEED), -1);
    assert_int_equal(rdt_mlp_init(&m, small_sizes, SMALL_NSIZES, -1, 1, SEED), -1);
    assert_int_equal(rdt_mlp_init(&m, small_sizes, SMALL_NSIZES, 0, 0, SEED), -1);
    assert_int_equal(rdt_mlp_init(&m, small_sizes, 1, 0, 1, SEED), -1);
    assert_int_equal(rdt_mlp_init(&m, zero, 3, 0, 2, SEED), -1);
}

static void test_accumulate_adds_and_plain_backward_overwrites(void **state)
{
    float xf[SMALL_BATCH * 7], dlog[SMALL_BATCH * 3], once[REF_MAXP], twice[REF_MAXP];
    double xd[SMALL_BATCH * 7];
    uint8_t y[SMALL_BATCH];
    const float *logits;
    rdt_mlp_t m;
    rdt_mlp_ws_t ws;

    small_model(&m, &ws, 0, 3);
    make_batch(8, SMALL_BATCH, 7, 3, xf, xd, y);
    logits = rdt_mlp_forward(&m, &ws, xf, SMALL_BATCH);
    rdt_softmax_xent(logits, y, SMALL_BATCH, 3, 1.0f, dlog, NULL);

    for (size_t i = 0; i < m.nparams; i++)
        m.grads[i] = 1e3f; /* stale values a plain backward must overwrite */
    rdt_mlp_backward(&m, &ws, xf, SMALL_BATCH, dlog, NULL, 0, NULL, NULL);
    memcpy(once, m.grads, m.nparams * sizeof(float));
    rdt_mlp_backward(&m, &ws, xf, SMALL_BATCH, dlog, NULL, 1, NULL, NULL);
    for (size_t i = 0; i < m.nparams; i++)
        twice[i] = 2 * once[i];
    expect_close_f("accumulated grads", m.grads, twice, m.nparams, 1e-6);
    for (size_t i = 0; i < m.nparams; i++)
        assert_true(fabsf(once[i]) < 100.0f);
    rdt_mlp_ws_free(&ws);
    rdt_mlp_free(&m);
}

typedef struct {
    int calls[RDT_MLP_LAYERS_MAX];
    int ncalls;
    const rdt_mlp_t *m;
    const float *final; /* the gradients after backward, from an earlier run */
} cb_log_t;

static void record_layer(int i, void *ctx)
{
    cb_log_t *log = ctx;
    const rdt_mlp_t *m = log->m;
    size_t nw = (size_t)m->sizes[i] * m->sizes[i + 1];

    assert_true(log->ncalls < RDT_MLP_LAYERS_MAX);
    log->calls[log->ncalls++] = i;
    /* At the call, layer i's gradients already hold their final values. */
    assert_memory_equal(m->grads + m->w_off[i], log->final + m->w_off[i], nw * sizeof(float));
    assert_memory_equal(m->grads + m->b_off[i], log->final + m->b_off[i],
                        (size_t)m->sizes[i + 1] * sizeof(float));
}

static void test_callback_runs_once_per_layer_in_descending_order_with_final_grads(void **s)
{
    float xf[SMALL_BATCH * 7], dlog[SMALL_BATCH * 3], final[REF_MAXP];
    double xd[SMALL_BATCH * 7];
    uint8_t y[SMALL_BATCH];
    const float *logits;
    rdt_mlp_t m;
    rdt_mlp_ws_t ws;
    cb_log_t log = {.ncalls = 0};

    small_model(&m, &ws, 0, 3);
    make_batch(9, SMALL_BATCH, 7, 3, xf, xd, y);
    logits = rdt_mlp_forward(&m, &ws, xf, SMALL_BATCH);
    rdt_softmax_xent(logits, y, SMALL_BATCH, 3, 1.0f, dlog, NULL);
    rdt_mlp_backward(&m, &ws, xf, SMALL_BATCH, dlog, NULL, 0, NULL, NULL);
    memcpy(final, m.grads, m.nparams * sizeof(float));
    memset(m.grads, 0, m.nparams * sizeof(float));

    log.m = &m;
    log.final = final;
    rdt_mlp_backward(&m, &ws, xf, SMALL_BATCH, dlog, NULL, 0, record_layer, &log);
    assert_int_equal(log.ncalls, 3);
    assert_int_equal(log.calls[0], 2);
    assert_int_equal(log.calls[1], 1);
    assert_int_equal(log.calls[2], 0);
    rdt_mlp_ws_free(&ws);
    rdt_mlp_free(&m);
}

static void test_sgd_matches_hand_computed_steps_with_and_without_momentum(void **state)
{
    float p[3] = {1.0f, 2.0f, -3.0f}, v[3] = {0, 0, 0};
    const float g1[3] = {0.5f, -1.0f, 2.0f}, g2[3] = {-0.25f, 4.0f, 1.0f};
    /* plain: p - 0.1 g1 */
    const double plain[3] = {0.95, 2.1, -3.2};
    /* momentum 0.9, lr 0.1: v1 = g1, p1 = p0 - 0.1 g1; v2 = 0.9 g1 + g2, p2 = p1 - 0.1 v2 */
    const double v2[3] = {0.2, 3.1, 2.8};
    const double p2[3] = {0.93, 1.79, -3.48};

    rdt_sgd_step(p, g1, NULL, 3, 0.1f, 0.0f);
    expect_close("plain sgd", p, plain, 3, 1e-6);

    p[0] = 1.0f, p[1] = 2.0f, p[2] = -3.0f;
    rdt_sgd_step(p, g1, v, 3, 0.1f, 0.9f);
    expect_close("velocity after step 1", v, (const double[]){0.5, -1.0, 2.0}, 3, 1e-6);
    rdt_sgd_step(p, g2, v, 3, 0.1f, 0.9f);
    expect_close("velocity after step 2", v, v2, 3, 1e-6);
    expect_close("momentum sgd", p, p2, 3, 1e-6);
}

/* ------------------------------------------------------------------------------------------- */
/* Random numbers                                                                                */
/* ------------------------------------------------------------------------------------------- */

static void test_xoshiro256starstar_gives_the_published_outputs(void **state)
{
    /* The reference implementation's first outputs from state {1, 2, 3, 4}. */
    const uint64_t want[] = {11520u,
                             0u,
                             1509978240u,
                             UINT64_C(1215971899390074240),
                             UINT64_C(1216172134540287360),
                             UINT64_C(607988272756665600)};
    rdt_rng_t r = {{1, 2, 3, 4}};

    for (int i = 0; i < 6; i++)
        assert_true(rdt_rng_next(&r) == want[i]);
}

static void test_rng_repeats_per_seed_and_differs_across_seeds_and_streams(void **state)
{
    rdt_rng_t a, b, c, d;
    int same_b = 0, same_c = 0, same_d = 0;

    rdt_rng_seed(&a, 1, 0);
    rdt_rng_seed(&b, 1, 0);
    rdt_rng_seed(&c, 1, 1);
    rdt_rng_seed(&d, 2, 0);
    for (int i = 0; i < 1000; i++) {
        uint64_t x = rdt_rng_next(&a);

        same_b += x == rdt_rng_next(&b);
        same_c += x == rdt_rng_next(&c);
        same_d += x == rdt_rng_next(&d);
    }
    assert_int_equal(same_b, 1000);
    assert_int_equal(same_c, 0);
    assert_int_equal(same_d, 0);

    /* Streams 0 and 1 of seed 0 share no state word (no overlapping splitmix sequences). */
    rdt_rng_seed(&a, 0, 0);
    rdt_rng_seed(&b, 0, 1);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            assert_true(a.s[i] != b.s[j]);
}

static void test_uniform_is_in_unit_interval_on_a_2_to_minus_24_grid(void **state)
{
    rdt_rng_t r;
    double sum = 0;
    int low = 0;

    rdt_rng_seed(&r, 99, 3);
    for (int i = 0; i < 100000; i++) {
        float u = rdt_rng_uniform(&r);

        assert_true(u >= 0.0f && u < 1.0f);
        assert_true(u * 16777216.0f == floorf(u * 16777216.0f));
        sum += u;
        low += u < 0.1f;
    }
    assert_true(fabs(sum / 100000 - 0.5) < 0.005); /* sd of the mean 0.0009 */
    assert_true(abs(low - 10000) < 500);           /* sd 95 */
}

static void test_shuffle_is_an_unbiased_permutation(void **state)
{
    int perm[1000], seen[1000] = {0}, counts[6] = {0}, moved = 0;
    rdt_rng_t r;

    rdt_rng_seed(&r, 5, 0);
    for (int i = 0; i < 1000; i++)
        perm[i] = i;
    rdt_rng_shuffle(&r, perm, 1000);
    for (int i = 0; i < 1000; i++) {
        assert_true(perm[i] >= 0 && perm[i] < 1000);
        seen[perm[i]]++;
        moved += perm[i] != i;
    }
    for (int i = 0; i < 1000; i++)
        assert_int_equal(seen[i], 1);
    assert_true(moved > 900);

    /* All 6 orders of 3 elements, 60000 shuffles: each 10000 +- 5 sd (sd ~ 91). */
    for (int t = 0; t < 60000; t++) {
        int p[3] = {0, 1, 2};

        rdt_rng_shuffle(&r, p, 3);
        counts[p[0] * 2 + (p[1] > p[2])]++;
    }
    for (int i = 0; i < 6; i++)
        if (abs(counts[i] - 10000) > 460)
            fail_msg("order %d came %d times in 60000 shuffles", i, counts[i]);

    rdt_rng_shuffle(&r, perm, 0);
    rdt_rng_shuffle(&r, perm, 1);
}

/* ------------------------------------------------------------------------------------------- */
/* Layer sizes                                                                                  */
/* ------------------------------------------------------------------------------------------- */

static void test_parse_sizes_accepts_valid_specs(void **state)
{
    int sizes[RDT_MLP_LAYERS_MAX + 1];
    char err[256] = "";

    assert_int_equal(rdt_mlp_parse_sizes("784-256-128-10", sizes, err, sizeof(err)), 4);
    assert_int_equal(sizes[0], 784);
    assert_int_equal(sizes[1], 256);
    assert_int_equal(sizes[2], 128);
    assert_int_equal(sizes[3], 10);
    assert_int_equal(rdt_mlp_parse_sizes("1-1048576", sizes, err, sizeof(err)), 2);
    assert_int_equal(sizes[1], 1 << 20);
    assert_int_equal(
        rdt_mlp_parse_sizes("1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16-17", sizes, err, sizeof(err)),
        17);
    assert_int_equal(sizes[16], 17);
}

static void expect_sizes_error(const char *spec, const char *word)
{
    int sizes[RDT_MLP_LAYERS_MAX + 1] = {42};
    char err[256] = "";

    assert_int_equal(rdt_mlp_parse_sizes(spec, sizes, err, sizeof(err)), -1);
    assert_int_equal(sizes[0], 42); /* untouched */
    if (!strstr(err, word) || !strstr(err, spec))
        fail_msg("error for \"%s\" is \"%s\": wants the spec and \"%s\"", spec, err, word);
}

static void test_parse_sizes_rejects_bad_specs_saying_why(void **state)
{
    expect_sizes_error("", "empty");
    expect_sizes_error("784", "at least 2");
    expect_sizes_error("784-abc-10", "not a number");
    expect_sizes_error("784-25x-10", "not a number");
    expect_sizes_error("784 -10", "not a number");
    expect_sizes_error("784-0-10", "positive");
    expect_sizes_error("784--10", "empty");
    expect_sizes_error("-784-10", "empty");
    expect_sizes_error("784-10-", "empty");
    expect_sizes_error("784-1048577-10", "exceeds");
    expect_sizes_error("784-99999999999999999999999-10", "exceeds");
    expect_sizes_error("1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16-17-18", "too many");
}

static void test_blas_reports_a_core_name(void **state)
{
    const char *core = rdt_blas_core();

    rdt_blas_single_thread();
    assert_non_null(core);
    assert_true(strlen(core) > 0);
    print_message("openblas core: %s\n", core);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_is_packed_w_then_b_per_layer_and_64_byte_aligned),
        cmocka_unit_test(test_forward_and_backward_match_double_reference),
        cmocka_unit_test(test_gradients_match_finite_differences_of_the_loss),
        cmocka_unit_test(test_linear_kernels_honour_ldw_null_bias_and_null_outputs),
        cmocka_unit_test(
            test_relu_zeroes_negatives_and_masks_gradient_where_output_is_not_positive),
        cmocka_unit_test(test_softmax_xent_matches_reference_loss_gradient_and_accuracy),
        cmocka_unit_test(test_softmax_xent_is_stable_for_logits_near_plus_minus_1000),
        cmocka_unit_test(test_two_stage_split_composes_to_the_whole_model),
        cmocka_unit_test(test_hidden_stage_backward_masks_dout_with_its_relu),
        cmocka_unit_test(test_init_layer_reproduces_the_model_params_within_bound),
        cmocka_unit_test(test_init_rejects_bad_ranges),
        cmocka_unit_test(test_accumulate_adds_and_plain_backward_overwrites),
        cmocka_unit_test(test_callback_runs_once_per_layer_in_descending_order_with_final_grads),
        cmocka_unit_test(test_sgd_matches_hand_computed_steps_with_and_without_momentum),
        cmocka_unit_test(test_xoshiro256starstar_gives_the_published_outputs),
        cmocka_unit_test(test_rng_repeats_per_seed_and_differs_across_seeds_and_streams),
        cmocka_unit_test(test_uniform_is_in_unit_interval_on_a_2_to_minus_24_grid),
        cmocka_unit_test(test_shuffle_is_an_unbiased_permutation),
        cmocka_unit_test(test_parse_sizes_accepts_valid_specs),
        cmocka_unit_test(test_parse_sizes_rejects_bad_specs_saying_why),
        cmocka_unit_test(test_blas_reports_a_core_name),
    };
    rdt_blas_single_thread();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
