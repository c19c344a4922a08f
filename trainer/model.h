/*
 * model.h - the multilayer perceptron the trainer runs, and the kernels every parallel mode
 * builds on. OpenBLAS (cblas_sgemm) does the matrix products; everything is float32, row-major.
 *
 * A layer l maps in = sizes[l] values to out = sizes[l+1]: z = x W^T + b, W is out x in. Hidden
 * layers are followed by ReLU, the last one by softmax cross-entropy. Parameters are
 * initialised as PyTorch's nn.Linear does (uniform in +-1/sqrt(in), weight then bias), from a
 * generator seeded by (seed, global layer index), so that every rank and every parallel mode
 * (a slice of a layer, a range of layers) starts from the same numbers as a one-rank run.
 */
#ifndef RDT_TRAIN_MODEL_H
#define RDT_TRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define RDT_MLP_LAYERS_MAX 16

/* ----- random numbers: xoshiro256**, seeded through splitmix64; same sequence everywhere --- */
typedef struct {
    uint64_t s[4];
} rdt_rng_t;

void rdt_rng_seed(rdt_rng_t *r, uint64_t seed, uint64_t stream);
uint64_t rdt_rng_next(rdt_rng_t *r);
/** Uniform in [0, 1), 24 random bits. */
float rdt_rng_uniform(rdt_rng_t *r);
/** Fisher-Yates shuffle of perm[0..n) with unbiased bounded draws. */
void rdt_rng_shuffle(rdt_rng_t *r, int *perm, int n);

/* ----- kernels (batch rows, row-major) ------------------------------------------------------ */

/** z[batch x out] = x[batch x in] W^T (W: out x in, leading dimension ldw >= in) + b (NULL: none). */
void rdt_linear_forward(const float *x, int batch, int in, int out, const float *w, int ldw,
                        const float *b, float *z);

/**
 * Gradients of a linear layer given dz[batch x out]: gw[out x in] = dz^T x, gb[out] = column sums
 * of dz (NULL: skipped), both added to what is there when @p accumulate, else overwritten;
 * dx[batch x in] = dz W (NULL: skipped; always overwritten).
 */
void rdt_linear_backward(const float *x, const float *dz, int batch, int in, int out,
                         const float *w, int ldw, float *gw, float *gb, float *dx, int accumulate);

/** ReLU in place. */
void rdt_relu_forward(float *z, size_t n);
/** dh[i] = 0 where h[i] <= 0 (h: the ReLU output). */
void rdt_relu_backward(const float *h, float *dh, size_t n);

/**
 * Softmax cross-entropy of logits[batch x classes] against labels. Returns the sum of the
 * per-sample losses (double); adds to *correct (if not NULL) the samples whose arg-max is the
 * label. If @p dlogits is not NULL, writes (softmax - onehot) * @p grad_scale into it.
 */
double rdt_softmax_xent(const float *logits, const uint8_t *labels, int batch, int classes,
                        float grad_scale, float *dlogits, int *correct);

/* ----- the model: a contiguous range of layers (all of them, or a pipeline stage) ---------- */
typedef struct {
    int first;                  /* global index of the first layer held here */
    int nlayers;                /* layers held here */
    int total_layers;           /* layers of the whole model (ReLU after every one but the last) */
    int sizes[RDT_MLP_LAYERS_MAX + 1]; /* sizes[0] = input of layer `first`, ... */
    size_t nparams;
    float *params;              /* [W b] of each layer in order; 64-byte aligned */
    float *grads;               /* same layout */
    size_t w_off[RDT_MLP_LAYERS_MAX], b_off[RDT_MLP_LAYERS_MAX]; /* offsets in params/grads */
} rdt_mlp_t;

/** Activations of one batch (or micro-batch) for a model. */
typedef struct {
    int batch_cap;
    float *act[RDT_MLP_LAYERS_MAX]; /* act[i]: output of local layer i (post-ReLU if hidden) */
    float *d[2];                /* gradient ping-pong, batch_cap x widest */
} rdt_mlp_ws_t;

/**
 * Parse "784-256-128-10" into sizes (2 to RDT_MLP_LAYERS_MAX + 1 positive numbers, each at most
 * 1<<20). Returns the count, or -1 with a sentence in @p err.
 */
int rdt_mlp_parse_sizes(const char *spec, int *sizes, char *err, size_t errlen);

/** The initial W (out x in) and b (out) of global layer @p layer, the same on every rank. */
void rdt_mlp_init_layer(uint64_t seed, int layer, int in, int out, float *w, float *b);

/**
 * Hold layers [first, first + nlayers) of the model whose layer sizes are @p sizes (nsizes
 * entries: the whole model), initialised from @p seed. Returns 0, or -1 (out of memory).
 */
int rdt_mlp_init(rdt_mlp_t *m, const int *sizes, int nsizes, int first, int nlayers,
                 uint64_t seed);
void rdt_mlp_free(rdt_mlp_t *m);

int rdt_mlp_ws_init(rdt_mlp_ws_t *ws, const rdt_mlp_t *m, int batch_cap);
void rdt_mlp_ws_free(rdt_mlp_ws_t *ws);

/** Forward of x[batch x sizes[0]]; returns the output (logits if the stage holds the last layer). */
const float *rdt_mlp_forward(const rdt_mlp_t *m, rdt_mlp_ws_t *ws, const float *x, int batch);

/** Called during backward when the gradients of local layer @p i are final (i descending). */
typedef void (*rdt_mlp_grad_fn)(int i, void *ctx);

/**
 * Backward after rdt_mlp_forward(m, ws, x, batch): @p dout is the gradient of the loss with
 * respect to the output that forward returned (post-ReLU for a hidden stage, the logits for the
 * last). Writes (or adds, with @p accumulate) the parameter gradients into m->grads and, if
 * @p dx is not NULL, the gradient with respect to x. @p cb (may be NULL) runs after each layer.
 */
void rdt_mlp_backward(rdt_mlp_t *m, rdt_mlp_ws_t *ws, const float *x, int batch,
                      const float *dout, float *dx, int accumulate, rdt_mlp_grad_fn cb,
                      void *ctx);

/**
 * SGD as torch.optim.SGD does it: with @p momentum > 0, v = momentum v + g, p -= lr v (v is
 * @p vel, zero at the start); else p -= lr g.
 */
void rdt_sgd_step(float *params, const float *grads, float *vel, size_t n, float lr,
                  float momentum);

/** The OpenBLAS kernel in use (openblas_get_corename), for the start-up line. */
const char *rdt_blas_core(void);
/** One BLAS thread per rank (ranks are the parallelism). */
void rdt_blas_single_thread(void);

#endif
