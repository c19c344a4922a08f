/*
 * train_pipeline.c - pipeline parallelism (--parallel pipeline): the layers are cut into as
 * many contiguous stages as there are ranks (cut where the largest stage holds the fewest
 * parameters), and each step's batch is streamed through them in --micro micro-batches on the
 * GPipe schedule: every micro-batch forward (activations sent downstream as soon as they are
 * computed), then every micro-batch backward (gradients sent upstream), gradients accumulated
 * over the micro-batches, one SGD step per stage. Rank 0 is the first stage and reads the
 * images, the last stage reads the labels and computes the loss.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

typedef struct {
    int stage, nstages, first, nlayers;
    int micro, mb; /* micro-batches, samples in each */
    rdt_mlp_t m;
    rdt_mlp_ws_t *ws; /* one per micro-batch */
    float **in;       /* micro-batch inputs (stage 0: images; else received) */
    float **dout;     /* gradient w.r.t. each micro-batch's output */
    float *dx;        /* gradient w.r.t. the input, sent upstream */
    uint8_t *y;
    float *vel;
    rdt_request_t **sends; /* isends of this step, waited for at its end */
    int nsends;
    int bounds[RDT_MLP_LAYERS_MAX + 1]; /* stage s holds layers bounds[s] .. bounds[s+1]-1 */
} pp_state_t;

/* Cut nl layers of the given parameter counts into p contiguous stages, each at least one
 * layer, minimising the largest stage (exhaustive over cut points: nl <= 16). */
static void partition(const size_t *cost, int nl, int p, int *bounds)
{
    size_t best = (size_t)-1;
    int cut[RDT_MLP_LAYERS_MAX + 1], i;

    /* enumerate increasing cut vectors 0 = c0 < c1 < ... < cp = nl */
    cut[0] = 0;
    cut[p] = nl;
    for (i = 1; i < p; i++)
        cut[i] = i;
    for (;;) {
        size_t worst = 0;
        int s, l;
        for (s = 0; s < p; s++) {
            size_t c = 0;
            for (l = cut[s]; l < cut[s + 1]; l++)
                c += cost[l];
            if (c > worst)
                worst = c;
        }
        if (worst < best) {
            best = worst;
            memcpy(bounds, cut, (size_t)(p + 1) * sizeof(int));
        }
        /* next combination */
        for (i = p - 1; i >= 1 && cut[i] == nl - (p - i); i--)
            ;
        if (i < 1)
            break;
        cut[i]++;
        for (s = i + 1; s < p; s++)
            cut[s] = cut[s - 1] + 1;
    }
}

static int pp_setup(trainer_t *t)
{
    const train_opts_t *o = &t->o;
    pp_state_t *s;
    size_t cost[RDT_MLP_LAYERS_MAX];
    int nl = o->nsizes - 1, i, widest;

    if (!(s = calloc(1, sizeof(*s))))
        return train_error(t, "out of memory");
    t->mode_state = s;
    s->nstages = t->size;
    s->stage = t->rank;
    s->micro = o->micro;
    if (t->size > nl)
        return train_error(t,
                           "pipeline parallelism puts at least one layer on each rank: %d "
                           "ranks for a model of %d layers (--layers); use at most %d ranks",
                           t->size, nl, nl);
    if (o->batch % o->micro)
        return train_error(t, "--micro %d does not divide the batch of %d samples", o->micro,
                           o->batch);
    s->mb = o->batch / o->micro;
    t->gbatch = o->batch;
    for (i = 0; i < nl; i++)
        cost[i] = (size_t)o->sizes[i] * (size_t)o->sizes[i + 1] + (size_t)o->sizes[i + 1];
    partition(cost, nl, s->nstages, s->bounds);
    s->first = s->bounds[s->stage];
    s->nlayers = s->bounds[s->stage + 1] - s->first;
    if (rdt_mlp_init(&s->m, o->sizes, o->nsizes, s->first, s->nlayers, o->seed))
        return train_error(t, "out of memory for the model");
    s->ws = calloc((size_t)s->micro, sizeof(*s->ws));
    s->in = calloc((size_t)s->micro, sizeof(float *));
    s->dout = calloc((size_t)s->micro, sizeof(float *));
    s->sends = calloc(2 * (size_t)s->micro, sizeof(*s->sends));
    s->y = malloc((size_t)o->batch);
    widest = s->m.sizes[0];
    s->dx = malloc((size_t)s->mb * (size_t)widest * sizeof(float));
    if (o->momentum > 0)
        s->vel = calloc(s->m.nparams, sizeof(float));
    if (!s->ws || !s->in || !s->dout || !s->sends || !s->y || !s->dx ||
        (o->momentum > 0 && !s->vel))
        return train_error(t, "out of memory");
    for (i = 0; i < s->micro; i++) {
        if (rdt_mlp_ws_init(&s->ws[i], &s->m, s->mb))
            return train_error(t, "out of memory");
        s->in[i] = malloc((size_t)s->mb * (size_t)s->m.sizes[0] * sizeof(float));
        s->dout[i] = malloc((size_t)s->mb * (size_t)s->m.sizes[s->nlayers] * sizeof(float));
        if (!s->in[i] || !s->dout[i])
            return train_error(t, "out of memory");
    }
    if (t->rank == 0) {
        int st;
        printf("pipeline: %d stages, %d micro-batches of %d; layers per stage:", s->nstages,
               s->micro, s->mb);
        for (st = 0; st < s->nstages; st++)
            printf(" %d-%d", s->bounds[st] + 1, s->bounds[st + 1]);
        printf("\n");
    }
    return 0;
}

static int pp_isend(trainer_t *t, pp_state_t *s, const float *buf, size_t n, int peer,
                    const char *what)
{
    rdt_status_t st = rdt_isend(t->comm, buf, n, RDT_FLOAT32, peer, &s->sends[s->nsends]);
    if (st != RDT_SUCCESS)
        return train_fail(t, t->comm, st, what);
    s->nsends++;
    t->bytes_sent += n * sizeof(float);
    return 0;
}

static int pp_recv(trainer_t *t, float *buf, size_t n, int peer, const char *what)
{
    rdt_request_t *req;
    rdt_status_t st = rdt_irecv(t->comm, buf, n, RDT_FLOAT32, peer, &req);
    if (st != RDT_SUCCESS)
        return train_fail(t, t->comm, st, what);
    return train_wait(t, req, what);
}

static int pp_step(trainer_t *t, const int *idx, int gbatch, double *loss_sum, long *correct)
{
    pp_state_t *s = t->mode_state;
    int last = s->stage == s->nstages - 1, mb = s->mb, j, c = 0;
    size_t in_n = (size_t)mb * (size_t)s->m.sizes[0];
    size_t out_n = (size_t)mb * (size_t)s->m.sizes[s->nlayers];

    s->nsends = 0;
    if (last)
        for (j = 0; j < gbatch; j++)
            s->y[j] = t->train.y[idx[j]];
    /* forward of every micro-batch */
    for (j = 0; j < s->micro; j++) {
        const float *out;
        if (s->stage == 0)
            train_batch(&t->train, idx + (size_t)j * (size_t)mb, mb, s->in[j], NULL);
        else if (pp_recv(t, s->in[j], in_n, s->stage - 1, "receiving activations"))
            return -1;
        out = rdt_mlp_forward(&s->m, &s->ws[j], s->in[j], mb);
        if (last) {
            *loss_sum += rdt_softmax_xent(out, s->y + (size_t)j * (size_t)mb, mb, RDT_DATA_CLASSES,
                                          1.0f / (float)gbatch, s->dout[j], &c);
        } else if (pp_isend(t, s, out, out_n, s->stage + 1, "sending activations")) {
            return -1;
        }
    }
    *correct += c;
    if (last)
        t->seen += gbatch;
    /* backward of every micro-batch, gradients accumulated */
    for (j = 0; j < s->micro; j++) {
        if (!last && pp_recv(t, s->dout[j], out_n, s->stage + 1, "receiving gradients"))
            return -1;
        rdt_mlp_backward(&s->m, &s->ws[j], s->in[j], mb, s->dout[j], s->stage ? s->dx : NULL, j > 0,
                         NULL, NULL);
        if (s->stage) {
            /* dx is reused by the next micro-batch: this send must finish first */
            rdt_request_t *req;
            rdt_status_t st = rdt_isend(t->comm, s->dx, in_n, RDT_FLOAT32, s->stage - 1, &req);
            if (st != RDT_SUCCESS)
                return train_fail(t, t->comm, st, "sending gradients");
            t->bytes_sent += in_n * sizeof(float);
            if (train_wait(t, req, "sending gradients"))
                return -1;
        }
    }
    for (j = 0; j < s->nsends; j++) {
        rdt_request_t *r = s->sends[j];
        s->sends[j] = NULL;
        if (train_wait(t, r, "sending activations"))
            return -1;
    }
    s->nsends = 0;
    rdt_sgd_step(s->m.params, s->m.grads, s->vel, s->m.nparams, t->o.lr, t->o.momentum);
    return 0;
}

/* Every rank's layers at their place in the whole model, summed over the ranks (each value
 * has one non-zero contributor, so the sum is exact). */
static int pp_gather_one(trainer_t *t, const float *part, float *full)
{
    pp_state_t *s = t->mode_state;
    size_t off = 0;
    rdt_status_t st;
    int l;

    memset(full, 0, t->full_nparams * sizeof(float));
    for (l = 0; l < s->first; l++)
        off += (size_t)t->o.sizes[l] * (size_t)t->o.sizes[l + 1] + (size_t)t->o.sizes[l + 1];
    memcpy(full + off, part, s->m.nparams * sizeof(float));
    st = rdt_allreduce(t->comm, full, full, t->full_nparams, RDT_FLOAT32, RDT_SUM);
    return st == RDT_SUCCESS ? 0 : train_fail(t, t->comm, st, "gathering the stages");
}

static int pp_gather(trainer_t *t, float *full, float *full_vel)
{
    pp_state_t *s = t->mode_state;

    if (pp_gather_one(t, s->m.params, full))
        return -1;
    return full_vel && s->vel ? pp_gather_one(t, s->vel, full_vel) : 0;
}

static int pp_scatter(trainer_t *t, const float *full, const float *full_vel)
{
    pp_state_t *s = t->mode_state;
    size_t off = 0;
    int l;

    for (l = 0; l < s->first; l++)
        off += (size_t)t->o.sizes[l] * (size_t)t->o.sizes[l + 1] + (size_t)t->o.sizes[l + 1];
    memcpy(s->m.params, full + off, s->m.nparams * sizeof(float));
    if (full_vel && s->vel)
        memcpy(s->vel, full_vel + off, s->m.nparams * sizeof(float));
    return 0;
}

static void pp_layout(const trainer_t *t, int layout[4])
{
    const pp_state_t *s = t->mode_state;
    layout[0] = s ? s->nstages : 0;
    layout[1] = s ? s->micro : 0;
    layout[2] = layout[3] = 0;
}

static void pp_fini(trainer_t *t)
{
    pp_state_t *s = t->mode_state;
    int j;

    if (!s)
        return;
    for (j = 0; j < s->nsends; j++)
        if (s->sends[j])
            rdt_wait(s->sends[j]);
    for (j = 0; s->ws && j < s->micro; j++) {
        rdt_mlp_ws_free(&s->ws[j]);
        if (s->in)
            free(s->in[j]);
        if (s->dout)
            free(s->dout[j]);
    }
    rdt_mlp_free(&s->m);
    free(s->ws);
    free(s->in);
    free(s->dout);
    free(s->sends);
    free(s->y);
    free(s->dx);
    free(s->vel);
    free(s);
    t->mode_state = NULL;
}

const train_mode_t rdt_mode_pipeline = {"pipeline", pp_setup,  pp_step, pp_gather,
                                        pp_scatter, pp_layout, pp_fini};
