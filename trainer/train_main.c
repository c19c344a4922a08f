/*
 * train_main.c - rdmatrain-train, the program `rdmatrain -H hosts train ...` starts on every
 * rank: options, data, the epoch loop, distributed evaluation, checkpoints and metrics. The
 * parallel modes (train_data.c, train_tensor.c, train_pipeline.c, train_ps.c) do the steps.
 * It uses the engine through include/rdmatrain.h only.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "metrics.h"
#include "train.h"

#define EVAL_CHUNK 1000

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: rdmatrain [launcher options] train [options]\n"
        "\n"
        "Trains a multilayer perceptron (ReLU, softmax cross-entropy, SGD) on Fashion-MNIST\n"
        "with OpenBLAS, on every rank the launcher starts.\n"
        "\n"
        "  --parallel MODE     data (default), tensor, pipeline or ps\n"
        "  --epochs N          epochs (default 10)\n"
        "  --batch N           samples per step: per rank in data mode, per worker in ps\n"
        "                      mode, the whole batch in tensor and pipeline modes\n"
        "                      (default 64; tensor/pipeline: 128)\n"
        "  --layers L          layer sizes, input to classes (default 784-256-128-10)\n"
        "  --lr X              learning rate (default 0.05)\n"
        "  --schedule S        cosine (default: from lr down to 0 over the run) or constant\n"
        "  --momentum X        SGD momentum (default 0.9)\n"
        "  --seed N            initial weights and shuffling (default 1)\n"
        "  --data DIR          directory of the IDX files, gzipped or not\n"
        "                      (default " RDT_DATA_DEFAULT_DIR ")\n"
        "  --train-limit N     use the first N training samples (default: all)\n"
        "  --test-limit N      use the first N test samples (default: all)\n"
        "  --max-steps N       at most N steps per epoch (default: all)\n"
        "\n"
        "data mode:\n"
        "  --bucket-kb N       gradient bucket size; each bucket's allreduce starts while\n"
        "                      the backward pass computes earlier layers (default 64)\n"
        "  --compress C        none, fp16, bf16 (gradients on the wire) or topk (default none)\n"
        "  --topk-ratio X      share of the gradient topk sends, with error feedback\n"
        "                      (default 0.01)\n"
        "  --tensor N          data x tensor: N-way tensor parallelism inside groups of N\n"
        "                      ranks, data parallelism across them\n"
        "pipeline mode:\n"
        "  --micro N           micro-batches per step (default 4)\n"
        "ps mode:\n"
        "  --servers N         parameter servers, the last N ranks (default 1)\n"
        "  --sync | --async    every worker each step (default), or asynchronous updates\n"
        "  --staleness K       async: a worker runs at most K versions ahead (default 2)\n"
        "  --vnodes N          virtual nodes per server on the hash ring (default 64)\n"
        "\n"
        "  --checkpoint DIR    save DIR/" RDT_CKPT_FILE " atomically after every epoch\n"
        "  --resume            continue from the checkpoint in DIR\n"
        "  --metrics FILE      one record per epoch (.csv, or .jsonl for JSON lines)\n"
        "  --plot FILE         an SVG plot of loss and accuracy per epoch\n"
        "  --save-params FILE  the final parameters of the whole model (float32, raw)\n"
        "  --progress | --no-progress  a progress bar (default: when output is a terminal)\n"
        "  -h, --help          this help\n"
        "\n"
        "Each epoch prints 'epoch E/N: train loss L, test loss L, test accuracy A ...'.\n"
        "OpenBLAS picks its kernels by CPU; if it does not know this CPU it falls back to\n"
        "slow ones, and OPENBLAS_CORETYPE (e.g. SkylakeX, Haswell) chooses them by hand.\n");
}

/* ----- helpers shared with the modes -------------------------------------------------------- */

double train_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void train_batch(const rdt_dataset_t *ds, const int *idx, int n, float *x, uint8_t *y)
{
    int i;
    for (i = 0; i < n; i++) {
        memcpy(x + (size_t)i * (size_t)ds->dim, ds->x + (size_t)idx[i] * (size_t)ds->dim,
               (size_t)ds->dim * sizeof(float));
        if (y)
            y[i] = ds->y[idx[i]];
    }
}

int train_error(trainer_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err, sizeof(t->err), fmt, ap);
    va_end(ap);
    return -1;
}

int train_fail(trainer_t *t, rdt_comm_t *comm, rdt_status_t st, const char *what)
{
    const char *why = rdt_comm_last_error(comm);
    return train_error(t, "%s failed: %s", what, why && *why ? why : rdt_status_str(st));
}

int train_wait(trainer_t *t, rdt_request_t *req, const char *what)
{
    double t0 = train_now();
    rdt_status_t st = rdt_wait(req);

    t->comm_wait_s += train_now() - t0;
    return st == RDT_SUCCESS ? 0 : train_fail(t, t->comm, st, what);
}

size_t train_full_nparams(const int *sizes, int nsizes)
{
    size_t n = 0;
    int l;
    for (l = 0; l + 1 < nsizes; l++)
        n += (size_t)sizes[l + 1] * (size_t)sizes[l] + (size_t)sizes[l + 1];
    return n;
}

/* ----- options -------------------------------------------------------------------------------- */

static int parse_long(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "rdmatrain train: %s expects a whole number from %ld to %ld, got '%s'\n",
                opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_float(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= lo && v <= hi)) {
        fprintf(stderr, "rdmatrain train: %s expects a number from %g to %g, got '%s'\n", opt, lo,
                hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Returns 0 to run, 1 after --help, -1 on a bad command line (message printed). */
static int parse_options(int argc, char **argv, train_opts_t *o)
{
    int i, batch_set = 0;
    long v;
    double d;
    char err[256];

    memset(o, 0, sizeof(*o));
    o->mode = "data";
    o->epochs = 10;
    o->batch = 64;
    o->sizes[0] = 784, o->sizes[1] = 256, o->sizes[2] = 128, o->sizes[3] = 10;
    o->nsizes = 4;
    o->lr = 0.05f;
    o->momentum = 0.9f;
    o->cosine = 1;
    o->seed = 1;
    o->data_dir = RDT_DATA_DEFAULT_DIR;
    o->bucket_bytes = 64 << 10;
    o->comp = COMP_NONE;
    o->topk_ratio = 0.01;
    o->micro = 4;
    o->servers = 1;
    o->staleness = 2;
    o->vnodes = 64;
    o->progress = -1;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL, *eq;
        char name[64];
        static const char *const flags[] = {"--resume",      "--sync", "--async", "--progress",
                                            "--no-progress", "-h",     "--help",  NULL};
        int is_flag = 0, k;

        if (strcmp(a, "train") == 0 && i == 1)
            continue; /* rdmatrain-train train ... as the launcher passes it */
        eq = strchr(a, '=');
        snprintf(name, sizeof(name), "%.*s", eq && a[0] == '-' && a[1] == '-' ? (int)(eq - a) : 63,
                 a);
        for (k = 0; flags[k]; k++)
            is_flag |= strcmp(name, flags[k]) == 0;
        if (is_flag) {
            if (eq) {
                fprintf(stderr, "rdmatrain train: %s takes no value\n", name);
                return -1;
            }
        } else if (a[0] == '-') {
            if (eq && a[1] == '-')
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else {
                fprintf(stderr, "rdmatrain train: %s needs a value (rdmatrain train --help)\n",
                        name);
                return -1;
            }
        } else {
            fprintf(stderr, "rdmatrain train: unexpected argument '%s' (rdmatrain train --help)\n",
                    a);
            return -1;
        }

        if (!strcmp(name, "-h") || !strcmp(name, "--help")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(name, "--parallel")) {
            if (strcmp(val, "data") && strcmp(val, "tensor") && strcmp(val, "pipeline") &&
                strcmp(val, "ps")) {
                fprintf(stderr,
                        "rdmatrain train: --parallel expects data, tensor, pipeline or ps, got "
                        "'%s'\n",
                        val);
                return -1;
            }
            o->mode = val;
        } else if (!strcmp(name, "--epochs")) {
            if (parse_long(name, val, 1, 100000, &v))
                return -1;
            o->epochs = (int)v;
        } else if (!strcmp(name, "--batch")) {
            if (parse_long(name, val, 1, 1 << 20, &v))
                return -1;
            o->batch = (int)v;
            batch_set = 1;
        } else if (!strcmp(name, "--layers")) {
            int n = rdt_mlp_parse_sizes(val, o->sizes, err, sizeof(err));
            if (n < 0) {
                fprintf(stderr, "rdmatrain train: --layers: %s\n", err);
                return -1;
            }
            o->nsizes = n;
        } else if (!strcmp(name, "--lr")) {
            if (parse_float(name, val, 1e-9, 100, &d))
                return -1;
            o->lr = (float)d;
        } else if (!strcmp(name, "--schedule")) {
            if (strcmp(val, "cosine") && strcmp(val, "constant")) {
                fprintf(stderr,
                        "rdmatrain train: --schedule expects cosine or constant, got '%s'\n", val);
                return -1;
            }
            o->cosine = !strcmp(val, "cosine");
        } else if (!strcmp(name, "--momentum")) {
            if (parse_float(name, val, 0, 0.9999, &d))
                return -1;
            o->momentum = (float)d;
        } else if (!strcmp(name, "--seed")) {
            if (parse_long(name, val, 0, 0x7fffffffL, &v))
                return -1;
            o->seed = (uint64_t)v;
        } else if (!strcmp(name, "--data")) {
            o->data_dir = val;
        } else if (!strcmp(name, "--train-limit")) {
            if (parse_long(name, val, 1, 1 << 30, &v))
                return -1;
            o->train_limit = (int)v;
        } else if (!strcmp(name, "--test-limit")) {
            if (parse_long(name, val, 1, 1 << 30, &v))
                return -1;
            o->test_limit = (int)v;
        } else if (!strcmp(name, "--max-steps")) {
            if (parse_long(name, val, 1, 1 << 30, &v))
                return -1;
            o->max_steps = (int)v;
        } else if (!strcmp(name, "--bucket-kb")) {
            if (parse_long(name, val, 1, 1 << 20, &v))
                return -1;
            o->bucket_bytes = (size_t)v << 10;
        } else if (!strcmp(name, "--compress")) {
            if (!strcmp(val, "none"))
                o->comp = COMP_NONE;
            else if (!strcmp(val, "fp16"))
                o->comp = COMP_FP16;
            else if (!strcmp(val, "bf16"))
                o->comp = COMP_BF16;
            else if (!strcmp(val, "topk"))
                o->comp = COMP_TOPK;
            else {
                fprintf(stderr,
                        "rdmatrain train: --compress expects none, fp16, bf16 or topk, got '%s'\n",
                        val);
                return -1;
            }
        } else if (!strcmp(name, "--topk-ratio")) {
            if (parse_float(name, val, 1e-6, 1, &d))
                return -1;
            o->topk_ratio = d;
        } else if (!strcmp(name, "--tensor")) {
            if (parse_long(name, val, 1, 1 << 16, &v))
                return -1;
            o->tensor = (int)v;
        } else if (!strcmp(name, "--micro")) {
            if (parse_long(name, val, 1, 1 << 16, &v))
                return -1;
            o->micro = (int)v;
        } else if (!strcmp(name, "--servers")) {
            if (parse_long(name, val, 1, 1 << 16, &v))
                return -1;
            o->servers = (int)v;
        } else if (!strcmp(name, "--sync")) {
            o->ps_async = 0;
        } else if (!strcmp(name, "--async")) {
            o->ps_async = 1;
        } else if (!strcmp(name, "--staleness")) {
            if (parse_long(name, val, 0, 1 << 20, &v))
                return -1;
            o->staleness = (int)v;
        } else if (!strcmp(name, "--vnodes")) {
            if (parse_long(name, val, 1, 1 << 16, &v))
                return -1;
            o->vnodes = (int)v;
        } else if (!strcmp(name, "--checkpoint")) {
            o->checkpoint = val;
        } else if (!strcmp(name, "--resume")) {
            o->resume = 1;
        } else if (!strcmp(name, "--metrics")) {
            o->metrics = val;
        } else if (!strcmp(name, "--plot")) {
            o->plot = val;
        } else if (!strcmp(name, "--save-params")) {
            o->save_params = val;
        } else if (!strcmp(name, "--progress")) {
            o->progress = 1;
        } else if (!strcmp(name, "--no-progress")) {
            o->progress = 0;
        } else {
            fprintf(stderr, "rdmatrain train: unknown option '%s' (rdmatrain train --help)\n",
                    name);
            return -1;
        }
    }
    if (!batch_set && (!strcmp(o->mode, "tensor") || !strcmp(o->mode, "pipeline")))
        o->batch = 128;
    o->base_lr = o->lr;
    if (o->resume && !o->checkpoint) {
        fprintf(stderr, "rdmatrain train: --resume needs --checkpoint DIR\n");
        return -1;
    }
    if (o->tensor > 1 && strcmp(o->mode, "data")) {
        fprintf(stderr, "rdmatrain train: --tensor combines with --parallel data only\n");
        return -1;
    }
    if (o->sizes[o->nsizes - 1] != RDT_DATA_CLASSES) {
        fprintf(stderr,
                "rdmatrain train: --layers must end with %d outputs (the classes), not %d\n",
                RDT_DATA_CLASSES, o->sizes[o->nsizes - 1]);
        return -1;
    }
    return 0;
}

/* ----- evaluation, checkpoints --------------------------------------------------------------- */

/* Loss and accuracy of the whole model @p full over this rank's share of @p ds, summed over
 * every rank: out[0] = loss sum, out[1] = correct, out[2] = samples. */
static int evaluate(trainer_t *t, rdt_mlp_t *full_model, const rdt_dataset_t *ds, double out[3])
{
    rdt_mlp_ws_t ws;
    int lo = (int)((long)ds->n * t->rank / t->size),
        hi = (int)((long)ds->n * (t->rank + 1) / t->size);
    int i, correct = 0;
    double loss = 0;
    rdt_status_t st;

    if (rdt_mlp_ws_init(&ws, full_model, EVAL_CHUNK))
        return train_error(t, "out of memory for evaluation");
    for (i = lo; i < hi; i += EVAL_CHUNK) {
        int n = hi - i < EVAL_CHUNK ? hi - i : EVAL_CHUNK;
        const float *logits =
            rdt_mlp_forward(full_model, &ws, ds->x + (size_t)i * (size_t)ds->dim, n);
        loss += rdt_softmax_xent(logits, ds->y + i, n, RDT_DATA_CLASSES, 0, NULL, &correct);
    }
    rdt_mlp_ws_free(&ws);
    out[0] = loss, out[1] = correct, out[2] = hi - lo;
    st = rdt_allreduce(t->comm, out, out, 3, RDT_FLOAT64, RDT_SUM);
    return st == RDT_SUCCESS ? 0 : train_fail(t, t->comm, st, "the allreduce of the evaluation");
}

static void ckpt_meta(const trainer_t *t, rdt_ckpt_meta_t *m, int epoch)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->mode, sizeof(m->mode), "%s%s", t->o.mode, t->o.tensor > 1 ? "+tensor" : "");
    m->nranks = t->size;
    t->mode->layout(t, m->layout);
    m->nsizes = t->o.nsizes;
    memcpy(m->sizes, t->o.sizes, sizeof(m->sizes));
    m->batch = t->gbatch;
    m->seed = t->o.seed;
    m->epoch = epoch;
    m->step = t->step;
    m->nparams = t->full_nparams;
    m->has_vel = t->o.momentum > 0;
}

/* Rank 0 reads the checkpoint and hands it to every rank. Returns the epochs already done
 * (0: nothing to resume), or -1. */
static int resume(trainer_t *t, float *full, float *vel)
{
    rdt_ckpt_meta_t want, got;
    int64_t hdr[3] = {0, 0, 0}; /* status, epoch, step */
    rdt_status_t st;

    ckpt_meta(t, &want, 0);
    if (t->rank == 0) {
        int rc = rdt_ckpt_load(t->o.checkpoint, &want, &got, full, vel, t->err, sizeof(t->err));
        hdr[0] = rc;
        if (rc == 0)
            hdr[1] = got.epoch, hdr[2] = (int64_t)got.step;
    }
    st = rdt_broadcast(t->comm, hdr, hdr, 3, RDT_INT64, 0);
    if (st != RDT_SUCCESS)
        return train_fail(t, t->comm, st, "the broadcast of the checkpoint");
    if (hdr[0] < 0) {
        /* every rank says why: the first to exit makes the launcher stop the others, rank 0
         * perhaps before it printed its sentence */
        char why[sizeof(t->err)];
        memcpy(why, t->err, sizeof(why));
        st = rdt_broadcast(t->comm, why, why, sizeof(why), RDT_UINT8, 0);
        why[sizeof(why) - 1] = '\0';
        if (t->rank != 0)
            train_error(t, "rank 0 refused the checkpoint in %s: %.900s", t->o.checkpoint,
                        st == RDT_SUCCESS ? why : "(its reason did not arrive)");
        return -1;
    }
    if (hdr[0] == 1) {
        if (t->rank == 0)
            printf("no checkpoint in %s: starting from scratch\n", t->o.checkpoint);
        return 0;
    }
    st = rdt_broadcast(t->comm, full, full, t->full_nparams, RDT_FLOAT32, 0);
    if (st == RDT_SUCCESS && vel)
        st = rdt_broadcast(t->comm, vel, vel, t->full_nparams, RDT_FLOAT32, 0);
    if (st != RDT_SUCCESS)
        return train_fail(t, t->comm, st, "the broadcast of the checkpoint");
    if (t->mode->scatter(t, full, vel))
        return -1;
    t->step = (uint64_t)hdr[2];
    if (t->rank == 0)
        printf("resumed from %s/%s after epoch %d (step %llu)\n", t->o.checkpoint, RDT_CKPT_FILE,
               (int)hdr[1], (unsigned long long)hdr[2]);
    return (int)hdr[1];
}

static int save_raw(trainer_t *t, const char *path, const float *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return train_error(t, "cannot write %s: %s", path, strerror(errno));
    if (fwrite(p, sizeof(float), n, f) != n) {
        fclose(f);
        return train_error(t, "cannot write %s: %s", path, strerror(errno));
    }
    if (fclose(f))
        return train_error(t, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

static const train_mode_t *mode_by_name(const char *name, int tensor)
{
    if (!strcmp(name, "data") && tensor > 1)
        return &rdt_mode_tensor; /* data x tensor: the tensor mode with data groups */
    if (!strcmp(name, "data"))
        return &rdt_mode_data;
    if (!strcmp(name, "tensor"))
        return &rdt_mode_tensor;
    if (!strcmp(name, "pipeline"))
        return &rdt_mode_pipeline;
    return &rdt_mode_ps;
}

static void model_str(const train_opts_t *o, char *buf, size_t len)
{
    size_t off = 0;
    int l;
    buf[0] = '\0';
    for (l = 0; l < o->nsizes && off < len; l++)
        off += (size_t)snprintf(buf + off, len - off, "%s%d", l ? "-" : "", o->sizes[l]);
}

/* ----- the loop ------------------------------------------------------------------------------ */

static int run(trainer_t *t)
{
    train_opts_t *o = &t->o;
    rdt_mlp_t eval_model;
    rdt_metrics_t metrics;
    rdt_epoch_metrics_t *rows = NULL;
    float *full = NULL, *vel = NULL;
    int *perm = NULL, epoch, first_epoch = 0, have_metrics = 0, rc = -1, tty;
    char shape[128];

    memset(&eval_model, 0, sizeof(eval_model));
    if (rdt_dataset_load(o->data_dir, 0, o->train_limit, &t->train, t->err, sizeof(t->err)) ||
        rdt_dataset_load(o->data_dir, 1, o->test_limit, &t->test, t->err, sizeof(t->err)))
        return -1;
    if (t->train.dim != o->sizes[0])
        return train_error(t,
                           "the model's input has %d values (--layers) but the samples of %s "
                           "have %d (%dx%d)",
                           o->sizes[0], o->data_dir, t->train.dim, t->train.rows, t->train.cols);
    t->full_nparams = train_full_nparams(o->sizes, o->nsizes);
    if (t->mode->setup(t))
        return -1;
    if (t->gbatch > t->train.n)
        return train_error(t,
                           "the global batch of %d samples is larger than the %d training "
                           "samples",
                           t->gbatch, t->train.n);

    if (rdt_mlp_init(&eval_model, o->sizes, o->nsizes, 0, o->nsizes - 1, o->seed) ||
        !(full = malloc(t->full_nparams * sizeof(float))) ||
        (o->momentum > 0 && !(vel = malloc(t->full_nparams * sizeof(float)))) ||
        !(perm = malloc((size_t)t->train.n * sizeof(int))) ||
        !(rows = calloc((size_t)o->epochs, sizeof(*rows)))) {
        train_error(t, "out of memory");
        goto out;
    }
    if (o->resume && (first_epoch = resume(t, full, vel)) < 0)
        goto out;
    if (first_epoch >= o->epochs && t->rank == 0)
        printf("the checkpoint already has %d epochs: nothing to train\n", first_epoch);

    model_str(o, shape, sizeof(shape));
    if (t->rank == 0) {
        printf("rdmatrain train: --parallel %s%s on %d rank%s, model %s (%zu parameters), "
               "global batch %d, %d training and %d test samples, lr %g%s, momentum %g\n",
               o->mode, o->tensor > 1 ? " x tensor" : "", t->size, t->size == 1 ? "" : "s", shape,
               t->full_nparams, t->gbatch, t->train.n, t->test.n, (double)o->base_lr,
               o->cosine ? " (cosine)" : "", (double)o->momentum);
        printf("OpenBLAS kernels: %s%s\n", rdt_blas_core(),
               getenv("OPENBLAS_CORETYPE") ? " (OPENBLAS_CORETYPE)" : "");
        fflush(stdout);
    }
    if (o->metrics && t->rank == 0) {
        if (rdt_metrics_open(&metrics, o->metrics, t->err, sizeof(t->err)))
            goto out;
        have_metrics = 1;
    }
    /* under the launcher, RDT_STDOUT_TTY=1 says its output is a terminal */
    tty = o->progress >= 0 ? o->progress
                           : isatty(STDOUT_FILENO) || (getenv("RDT_STDOUT_TTY") &&
                                                       !strcmp(getenv("RDT_STDOUT_TTY"), "1"));

    for (epoch = first_epoch; epoch < o->epochs; epoch++) {
        rdt_rng_t rng;
        rdt_progress_t bar;
        long steps = t->train.n / t->gbatch, s, correct = 0;
        double loss = 0, t0, secs, tr[3], te[3];
        rdt_epoch_metrics_t *row = &rows[epoch];
        int i;
        rdt_status_t st;

        if (o->max_steps && steps > o->max_steps)
            steps = o->max_steps;
        for (i = 0; i < t->train.n; i++)
            perm[i] = i;
        rdt_rng_seed(&rng, o->seed, 1 + (uint64_t)epoch);
        rdt_rng_shuffle(&rng, perm, t->train.n);
        t->comm_wait_s = 0;
        t->bytes_sent = 0;
        t->seen = 0;
        if (t->rank == 0)
            rdt_progress_begin(&bar, stdout, tty, epoch + 1, o->epochs, steps);
        t0 = train_now();
        for (s = 0; s < steps; s++) {
            if (o->cosine) /* half a cosine from base_lr to 0 over every step of the run */
                o->lr = (float)(0.5 * o->base_lr *
                                (1 + cos(M_PI * (double)t->step / ((double)steps * o->epochs))));
            if (t->mode->step(t, perm + s * t->gbatch, t->gbatch, &loss, &correct))
                goto out;
            t->step++;
            if (t->rank == 0 && (tty || (s + 1) * 10 / steps != s * 10 / steps)) {
                double el = train_now() - t0;
                /* rank 0's own running loss: the global one needs an allreduce per update */
                rdt_progress_update(&bar, s + 1, t->seen ? loss / (double)t->seen : 0,
                                    el > 0 ? (double)(s + 1) * t->gbatch / el : 0);
            }
        }
        secs = train_now() - t0;
        if (t->rank == 0)
            rdt_progress_end(&bar);

        tr[0] = loss, tr[1] = (double)correct, tr[2] = (double)steps * t->gbatch;
        st = rdt_allreduce(t->comm, tr, tr, 2, RDT_FLOAT64, RDT_SUM);
        if (st != RDT_SUCCESS) {
            train_fail(t, t->comm, st, "the allreduce of the training loss");
            goto out;
        }
        if (t->mode->gather(t, full, vel))
            goto out;
        memcpy(eval_model.params, full, t->full_nparams * sizeof(float));
        if (evaluate(t, &eval_model, &t->test, te))
            goto out;

        row->epoch = epoch + 1;
        row->train_loss = tr[0] / tr[2];
        row->train_acc = tr[1] / tr[2];
        row->test_loss = te[0] / te[2];
        row->test_acc = te[1] / te[2];
        row->seconds = secs;
        row->samples_per_s = tr[2] / secs;
        row->comm_share = secs > 0 ? t->comm_wait_s / secs : 0;
        row->bytes_sent = t->bytes_sent;
        if (t->rank == 0) {
            printf("epoch %d/%d: train loss %.4f, test loss %.4f, test accuracy %.4f, %.2f s, "
                   "%.0f samples/s, %.0f%% of step time waiting on communication\n",
                   epoch + 1, o->epochs, row->train_loss, row->test_loss, row->test_acc, secs,
                   row->samples_per_s, 100 * row->comm_share);
            fflush(stdout);
            if (have_metrics && rdt_metrics_append(&metrics, row, t->err, sizeof(t->err)))
                goto out;
        }
        if (o->checkpoint && t->rank == 0) {
            rdt_ckpt_meta_t m;
            ckpt_meta(t, &m, epoch + 1);
            if (rdt_ckpt_save(o->checkpoint, &m, full, vel, t->err, sizeof(t->err)))
                goto out;
        }
    }
    if (t->rank == 0 && first_epoch < o->epochs) {
        if (o->plot && rdt_plot_svg(o->plot, rows + first_epoch, o->epochs - first_epoch,
                                    "rdmatrain: Fashion-MNIST", t->err, sizeof(t->err)))
            goto out;
        if (have_metrics) {
            have_metrics = 0;
            if (rdt_metrics_close(&metrics, t->err, sizeof(t->err)))
                goto out;
        }
    }
    if (o->save_params) {
        if (t->mode->gather(t, full, NULL))
            goto out;
        if (t->rank == 0 && save_raw(t, o->save_params, full, t->full_nparams))
            goto out;
    }
    rc = 0;
out:
    if (have_metrics)
        rdt_metrics_close(&metrics, NULL, 0);
    rdt_mlp_free(&eval_model);
    free(rows);
    free(perm);
    free(vel);
    free(full);
    return rc;
}

int main(int argc, char **argv)
{
    trainer_t t;
    rdt_status_t st;
    int rc;

    memset(&t, 0, sizeof(t));
    rc = parse_options(argc, argv, &t.o);
    if (rc)
        return rc > 0 ? 0 : 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    rdt_blas_single_thread();
    t.mode = mode_by_name(t.o.mode, t.o.tensor);

    st = rdt_comm_create_from_env(&t.comm);
    if (st != RDT_SUCCESS) {
        fprintf(stderr, "rdmatrain train: cannot create the communicator: %s\n",
                rdt_comm_last_error(NULL));
        return 1;
    }
    t.rank = rdt_comm_rank(t.comm);
    t.size = rdt_comm_size(t.comm);
    rc = run(&t);
    if (rc)
        fprintf(stderr, "rdmatrain train: rank %d: %s\n", t.rank, t.err);
    if (rc) /* first, so that the mode's requests in flight end at once */
        rdt_comm_abort(t.comm);
    t.mode->fini(&t);
    rdt_dataset_free(&t.train);
    rdt_dataset_free(&t.test);
    rdt_comm_destroy(t.comm);
    return rc ? 1 : 0;
}
