/*
 * train_tensor.c - tensor parallelism (--parallel tensor), alone or inside data parallelism
 * (--parallel data --tensor N: a grid of size/N data-parallel groups of N tensor ranks).
 *
 * Layers go in pairs, as Megatron-LM splits an MLP block: the first of a pair is
 * column-parallel (each of the T tensor ranks holds out/T rows of W and of b, reads the whole
 * input and produces its slice of the output; ReLU works on the slice), the second is
 * row-parallel (each holds in/T columns of W, reads its slice and produces a partial output
 * that an allreduce over the tensor group sums; the bias is added once, after it). Backward
 * mirrors it: the row-parallel layer's input gradient is already a slice, the column-parallel
 * layer's is a partial sum that an allreduce completes. A last layer without a partner is
 * column-parallel with its logits allgathered when T divides its outputs, else replicated.
 * With data parallelism on top, each layer's gradients are allreduced across the data group
 * as soon as backward has produced them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

typedef enum { LAYER_COL, LAYER_ROW, LAYER_REP } layer_kind_t;

typedef struct {
    layer_kind_t kind;
    int in, out;         /* whole layer */
    int in_loc, out_loc; /* as held here */
    int hidden;          /* followed by ReLU */
    size_t w_off, b_off; /* in the local params/grads */
    size_t w_n, b_n;
    rdt_request_t *req; /* data-group allreduce of this layer's gradients */
} tp_layer_t;

typedef struct {
    rdt_comm_t *tcomm, *dcomm; /* tensor group, data group (NULL when of size 1) */
    int T, D, trank, drank;
    int nl;
    tp_layer_t l[RDT_MLP_LAYERS_MAX];
    size_t np;
    float *params, *grads, *vel;
    float *x, *act[RDT_MLP_LAYERS_MAX], *logits, *gath, *d[2], *dlogits;
    uint8_t *y;
    float *fullw; /* scratch for gather: the largest whole W + b */
    float *blk;   /* scratch for allgather of a layer */
} tp_state_t;

static int tp_allreduce(trainer_t *t, rdt_comm_t *comm, float *buf, size_t n, const char *what)
{
    double t0 = train_now();
    rdt_status_t st = rdt_allreduce(comm, buf, buf, n, RDT_FLOAT32, RDT_SUM);

    t->comm_wait_s += train_now() - t0;
    t->bytes_sent += n * sizeof(float);
    return st == RDT_SUCCESS ? 0 : train_fail(t, comm, st, what);
}

static int tp_allgather(trainer_t *t, rdt_comm_t *comm, const float *in, float *out, size_t n,
                        const char *what)
{
    double t0 = train_now();
    rdt_status_t st = rdt_allgather(comm, in, out, n, RDT_FLOAT32);

    t->comm_wait_s += train_now() - t0;
    t->bytes_sent += n * sizeof(float);
    return st == RDT_SUCCESS ? 0 : train_fail(t, comm, st, what);
}

static int tp_setup(trainer_t *t)
{
    const train_opts_t *o = &t->o;
    tp_state_t *s;
    int T = o->tensor > 1 ? o->tensor : t->size, i, widest = o->sizes[0];
    size_t off = 0, blk_max = 0;
    rdt_status_t st;

    if (!(s = calloc(1, sizeof(*s))))
        return train_error(t, "out of memory");
    t->mode_state = s;
    if (t->size % T)
        return train_error(t, "--tensor %d does not divide the %d ranks into groups", T, t->size);
    s->T = T;
    s->D = t->size / T;
    s->trank = t->rank % T;
    s->drank = t->rank / T;
    s->nl = o->nsizes - 1;
    t->gbatch = o->batch * s->D;

    for (i = 0; i < s->nl; i++) {
        tp_layer_t *L = &s->l[i];
        L->in = o->sizes[i];
        L->out = o->sizes[i + 1];
        L->hidden = i < s->nl - 1;
        if (i % 2 == 1)
            L->kind = LAYER_ROW;
        else if (i + 1 < s->nl || L->out % T == 0)
            L->kind = LAYER_COL;
        else
            L->kind = LAYER_REP;
        if (L->kind == LAYER_COL && L->out % T)
            return train_error(t,
                               "tensor parallelism on %d ranks splits the %d outputs of layer "
                               "%d (%d-%d) by columns: %d does not divide %d (--layers)",
                               T, L->out, i + 1, L->in, L->out, T, L->out);
        if (L->kind == LAYER_ROW && L->in % T)
            return train_error(t,
                               "tensor parallelism on %d ranks splits the %d inputs of layer "
                               "%d (%d-%d) by rows: %d does not divide %d (--layers)",
                               T, L->in, i + 1, L->in, L->out, T, L->in);
        L->in_loc = L->kind == LAYER_ROW ? L->in / T : L->in;
        L->out_loc = L->kind == LAYER_COL ? L->out / T : L->out;
        L->w_off = off;
        L->w_n = (size_t)L->out_loc * (size_t)L->in_loc;
        off += L->w_n;
        L->b_off = off;
        L->b_n = (size_t)L->out_loc;
        off += L->b_n;
        if ((size_t)T * (L->w_n + L->b_n) > blk_max)
            blk_max = (size_t)T * (L->w_n + L->b_n);
        if (L->in > widest)
            widest = L->in;
        if (L->out > widest)
            widest = L->out;
    }
    s->np = off;
    s->params = calloc(s->np, sizeof(float));
    s->grads = calloc(s->np, sizeof(float));
    s->x = malloc((size_t)o->batch * (size_t)o->sizes[0] * sizeof(float));
    s->y = malloc((size_t)o->batch);
    s->logits = malloc((size_t)o->batch * RDT_DATA_CLASSES * sizeof(float));
    s->gath = malloc((size_t)o->batch * RDT_DATA_CLASSES * sizeof(float));
    s->dlogits = malloc((size_t)o->batch * RDT_DATA_CLASSES * sizeof(float));
    s->d[0] = malloc((size_t)o->batch * (size_t)widest * sizeof(float));
    s->d[1] = malloc((size_t)o->batch * (size_t)widest * sizeof(float));
    s->fullw = malloc(((size_t)widest * (size_t)widest + (size_t)widest) * sizeof(float));
    s->blk = malloc(blk_max * sizeof(float));
    if (o->momentum > 0)
        s->vel = calloc(s->np, sizeof(float));
    if (!s->params || !s->grads || !s->x || !s->y || !s->logits || !s->gath || !s->dlogits ||
        !s->d[0] || !s->d[1] || !s->fullw || !s->blk || (o->momentum > 0 && !s->vel))
        return train_error(t, "out of memory");
    for (i = 0; i < s->nl; i++)
        if (!(s->act[i] = malloc((size_t)o->batch * (size_t)s->l[i].out * sizeof(float))))
            return train_error(t, "out of memory");

    /* the tensor group: consecutive ranks; the data group: the same tensor rank in each */
    if (T > 1) {
        st = rdt_comm_split(t->comm, s->drank, s->trank, &s->tcomm);
        if (st != RDT_SUCCESS)
            return train_fail(t, t->comm, st, "splitting the tensor groups");
    }
    if (s->D > 1) {
        st = rdt_comm_split(t->comm, s->trank, s->drank, &s->dcomm);
        if (st != RDT_SUCCESS)
            return train_fail(t, t->comm, st, "splitting the data groups");
    }

    /* initial weights: the whole layer as one rank would have it, then this rank's part */
    for (i = 0; i < s->nl; i++) {
        tp_layer_t *L = &s->l[i];
        float *w = s->fullw, *b = s->fullw + (size_t)L->out * (size_t)L->in;
        int r, c;
        rdt_mlp_init_layer(o->seed, i, L->in, L->out, w, b);
        for (r = 0; r < L->out_loc; r++)
            for (c = 0; c < L->in_loc; c++) {
                int gr = L->kind == LAYER_COL ? s->trank * L->out_loc + r : r;
                int gc = L->kind == LAYER_ROW ? s->trank * L->in_loc + c : c;
                s->params[L->w_off + (size_t)r * (size_t)L->in_loc + (size_t)c] =
                    w[(size_t)gr * (size_t)L->in + (size_t)gc];
            }
        for (r = 0; r < L->out_loc; r++)
            s->params[L->b_off + (size_t)r] =
                b[L->kind == LAYER_COL ? s->trank * L->out_loc + r : r];
    }
    if (t->rank == 0) {
        printf("tensor parallelism: %d-way, %d data-parallel group%s; layers:", T, s->D,
               s->D == 1 ? "" : "s");
        for (i = 0; i < s->nl; i++)
            printf(" %d-%d %s", s->l[i].in, s->l[i].out,
                   s->l[i].kind == LAYER_COL   ? "column-parallel"
                   : s->l[i].kind == LAYER_ROW ? "row-parallel"
                                               : "replicated");
        printf("\n");
    }
    return 0;
}

/* Start the data-group allreduce of layer i's gradients. */
static int start_dp(trainer_t *t, tp_state_t *s, int i)
{
    tp_layer_t *L = &s->l[i];
    rdt_status_t st;

    if (!s->dcomm)
        return 0;
    st = rdt_iallreduce(s->dcomm, s->grads + L->w_off, s->grads + L->w_off, L->w_n + L->b_n,
                        RDT_FLOAT32, RDT_SUM, &L->req);
    if (st != RDT_SUCCESS)
        return train_fail(t, s->dcomm, st, "the data-group gradient allreduce");
    t->bytes_sent += (L->w_n + L->b_n) * sizeof(float);
    return 0;
}

static int tp_step(trainer_t *t, const int *idx, int gbatch, double *loss_sum, long *correct)
{
    tp_state_t *s = t->mode_state;
    int B = t->o.batch, i, c = 0, T = s->T;
    const float *in;
    float *d, *dn;
    double loss;

    train_batch(&t->train, idx + (size_t)s->drank * (size_t)B, B, s->x, s->y);

    /* forward */
    for (i = 0; i < s->nl; i++) {
        tp_layer_t *L = &s->l[i];
        float *a = s->act[i];
        in = i ? s->act[i - 1] : s->x;
        if (L->kind == LAYER_ROW) {
            int b, k;
            rdt_linear_forward(in, B, L->in_loc, L->out, s->params + L->w_off, L->in_loc, NULL, a);
            if (s->tcomm && tp_allreduce(t, s->tcomm, a, (size_t)B * (size_t)L->out,
                                         "the row-parallel allreduce"))
                return -1;
            for (b = 0; b < B; b++)
                for (k = 0; k < L->out; k++)
                    a[(size_t)b * (size_t)L->out + (size_t)k] += s->params[L->b_off + (size_t)k];
        } else {
            rdt_linear_forward(in, B, L->in, L->out_loc, s->params + L->w_off, L->in,
                               s->params + L->b_off, a);
        }
        if (L->hidden)
            rdt_relu_forward(a, (size_t)B * (size_t)L->out_loc);
    }

    /* the logits, whole on every tensor rank */
    {
        tp_layer_t *L = &s->l[s->nl - 1];
        const float *logits = s->act[s->nl - 1];
        if (L->kind == LAYER_COL && T > 1) {
            int r, b;
            if (tp_allgather(t, s->tcomm, s->act[s->nl - 1], s->gath,
                             (size_t)B * (size_t)L->out_loc, "the logits allgather"))
                return -1;
            for (r = 0; r < T; r++)
                for (b = 0; b < B; b++)
                    memcpy(s->logits + (size_t)b * (size_t)L->out + (size_t)r * (size_t)L->out_loc,
                           s->gath + ((size_t)r * (size_t)B + (size_t)b) * (size_t)L->out_loc,
                           (size_t)L->out_loc * sizeof(float));
            logits = s->logits;
        }
        loss = rdt_softmax_xent(logits, s->y, B, RDT_DATA_CLASSES, 1.0f / (float)gbatch, s->dlogits,
                                &c);
        if (s->trank == 0) { /* every tensor rank saw the same samples: count them once */
            *loss_sum += loss;
            *correct += c;
            t->seen += B;
        }
    }

    /* backward: d is the gradient of the loss w.r.t. layer i's output as held here */
    d = s->d[0];
    dn = s->d[1];
    {
        tp_layer_t *L = &s->l[s->nl - 1];
        int b;
        for (b = 0; b < B; b++)
            memcpy(d + (size_t)b * (size_t)L->out_loc,
                   s->dlogits + (size_t)b * (size_t)L->out +
                       (L->kind == LAYER_COL ? (size_t)s->trank * (size_t)L->out_loc : 0),
                   (size_t)L->out_loc * sizeof(float));
    }
    for (i = s->nl - 1; i >= 0; i--) {
        tp_layer_t *L = &s->l[i];
        float *tmp;
        in = i ? s->act[i - 1] : s->x;
        rdt_linear_backward(in, d, B, L->in_loc, L->out_loc, s->params + L->w_off, L->in_loc,
                            s->grads + L->w_off, s->grads + L->b_off, i ? dn : NULL, 0);
        if (start_dp(t, s, i))
            return -1;
        if (i == 0)
            break;
        /* a column-parallel layer's input gradient is a partial sum over the tensor group */
        if (L->kind == LAYER_COL && s->tcomm &&
            tp_allreduce(t, s->tcomm, dn, (size_t)B * (size_t)L->in,
                         "the column-parallel "
                         "allreduce"))
            return -1;
        rdt_relu_backward(s->act[i - 1], dn, (size_t)B * (size_t)L->in_loc);
        tmp = d, d = dn, dn = tmp;
    }
    for (i = s->nl - 1; i >= 0; i--)
        if (s->l[i].req) {
            rdt_request_t *r = s->l[i].req;
            double t0 = train_now();
            rdt_status_t st = rdt_wait(r);
            s->l[i].req = NULL;
            t->comm_wait_s += train_now() - t0;
            if (st != RDT_SUCCESS)
                return train_fail(t, s->dcomm, st, "the data-group gradient allreduce");
        }
    rdt_sgd_step(s->params, s->grads, s->vel, s->np, t->o.lr, t->o.momentum);
    return 0;
}

/* The whole layer i (W then b, one-rank layout) from every tensor rank's part, into dst. */
static int gather_layer(trainer_t *t, tp_state_t *s, int i, const float *src, float *dst)
{
    tp_layer_t *L = &s->l[i];
    size_t part = L->w_n + L->b_n, wn = (size_t)L->out * (size_t)L->in;
    int r, o, T = s->T;

    if (L->kind == LAYER_REP || T == 1) {
        memcpy(dst, src + L->w_off, part * sizeof(float));
        return 0;
    }
    if (tp_allgather(t, s->tcomm, src + L->w_off, s->blk, part, "the parameter allgather"))
        return -1;
    for (r = 0; r < T; r++) {
        const float *w = s->blk + (size_t)r * part, *b = w + L->w_n;
        if (L->kind == LAYER_COL) {
            memcpy(dst + (size_t)r * L->w_n, w, L->w_n * sizeof(float));
            memcpy(dst + wn + (size_t)r * L->b_n, b, L->b_n * sizeof(float));
        } else {
            for (o = 0; o < L->out; o++)
                memcpy(dst + (size_t)o * (size_t)L->in + (size_t)r * (size_t)L->in_loc,
                       w + (size_t)o * (size_t)L->in_loc, (size_t)L->in_loc * sizeof(float));
            if (r == 0)
                memcpy(dst + wn, b, L->b_n * sizeof(float));
        }
    }
    return 0;
}

static int tp_gather(trainer_t *t, float *full, float *full_vel)
{
    tp_state_t *s = t->mode_state;
    size_t off = 0;
    int i;

    for (i = 0; i < s->nl; i++) {
        size_t n = (size_t)s->l[i].out * (size_t)s->l[i].in + (size_t)s->l[i].out;
        if (gather_layer(t, s, i, s->params, full + off))
            return -1;
        if (full_vel && s->vel && gather_layer(t, s, i, s->vel, full_vel + off))
            return -1;
        off += n;
    }
    return 0;
}

static void scatter_layer(const tp_state_t *s, int i, const float *src, float *dst)
{
    const tp_layer_t *L = &s->l[i];
    const float *b = src + (size_t)L->out * (size_t)L->in;
    int r;

    for (r = 0; r < L->out_loc; r++) {
        int gr = L->kind == LAYER_COL ? s->trank * L->out_loc + r : r;
        int c0 = L->kind == LAYER_ROW ? s->trank * L->in_loc : 0;
        memcpy(dst + L->w_off + (size_t)r * (size_t)L->in_loc,
               src + (size_t)gr * (size_t)L->in + (size_t)c0, (size_t)L->in_loc * sizeof(float));
        dst[L->b_off + (size_t)r] = b[gr];
    }
}

static int tp_scatter(trainer_t *t, const float *full, const float *full_vel)
{
    tp_state_t *s = t->mode_state;
    size_t off = 0;
    int i;

    for (i = 0; i < s->nl; i++) {
        scatter_layer(s, i, full + off, s->params);
        if (full_vel && s->vel)
            scatter_layer(s, i, full_vel + off, s->vel);
        off += (size_t)s->l[i].out * (size_t)s->l[i].in + (size_t)s->l[i].out;
    }
    return 0;
}

static void tp_layout(const trainer_t *t, int layout[4])
{
    const tp_state_t *s = t->mode_state;
    layout[0] = s ? s->T : 0;
    layout[1] = s ? s->D : 0;
    layout[2] = layout[3] = 0;
}

static void tp_fini(trainer_t *t)
{
    tp_state_t *s = t->mode_state;
    int i;

    if (!s)
        return;
    for (i = 0; i < s->nl; i++) {
        if (s->l[i].req)
            rdt_wait(s->l[i].req);
        free(s->act[i]);
    }
    if (s->tcomm) {
        if (t->err[0])
            rdt_comm_abort(s->tcomm);
        rdt_comm_destroy(s->tcomm);
    }
    if (s->dcomm) {
        if (t->err[0])
            rdt_comm_abort(s->dcomm);
        rdt_comm_destroy(s->dcomm);
    }
    free(s->params);
    free(s->grads);
    free(s->vel);
    free(s->x);
    free(s->y);
    free(s->logits);
    free(s->gath);
    free(s->dlogits);
    free(s->d[0]);
    free(s->d[1]);
    free(s->fullw);
    free(s->blk);
    free(s);
    t->mode_state = NULL;
}

const train_mode_t rdt_mode_tensor = {"tensor",   tp_setup,  tp_step, tp_gather,
                                      tp_scatter, tp_layout, tp_fini};
