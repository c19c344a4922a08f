/*
 * train.h - the trainer's shared state and the interface every parallel mode implements.
 *
 * The loop in train_main.c owns the data (the whole training and test sets on every rank, the
 * per-epoch shuffle, the same on every rank), the epochs, evaluation, checkpoints and metrics.
 * A mode owns the model's placement and one optimizer step: given the global batch of the step
 * (sample indices, the same on every rank), it runs forward, backward, communication and SGD.
 * Every mode scales the loss by 1/global batch, so a step equals a one-rank step on the same
 * global batch up to the order of float32 summation.
 */
#ifndef RDT_TRAIN_TRAIN_H
#define RDT_TRAIN_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include <rdmatrain.h>

#include "data.h"
#include "model.h"

typedef enum { COMP_NONE, COMP_FP16, COMP_BF16, COMP_TOPK } train_comp_t;

typedef struct {
    const char *mode; /* data, tensor, pipeline, ps */
    int epochs;
    int batch; /* data: per rank; tensor, pipeline: global; ps: per worker */
    int sizes[RDT_MLP_LAYERS_MAX + 1];
    int nsizes;
    float lr, momentum; /* lr: the current rate (the loop applies --schedule to it) */
    float base_lr;
    int cosine; /* --schedule cosine (else constant) */
    uint64_t seed;
    const char *data_dir;
    int train_limit, test_limit; /* 0: all */
    int max_steps;               /* per epoch, 0: all (tests) */
    size_t bucket_bytes;         /* data: gradient bucket size */
    train_comp_t comp;           /* data: gradient compression */
    double topk_ratio;
    int tensor;             /* data x tensor: tensor-parallel degree (0/1: none) */
    int micro;              /* pipeline: micro-batches per step */
    int servers;            /* ps: server ranks */
    int ps_async;           /* ps: --async */
    int staleness;          /* ps: versions a worker may run ahead */
    int vnodes;             /* ps: virtual nodes per server */
    const char *checkpoint; /* directory, or NULL */
    int resume;
    const char *metrics;     /* metrics file, or NULL */
    const char *plot;        /* SVG plot, or NULL */
    const char *save_params; /* write the final full parameters here (rank 0), or NULL */
    int progress;            /* -1 auto, 0 off, 1 on */
} train_opts_t;

typedef struct trainer trainer_t;

/* One parallel mode. Every function is collective over t->comm unless said otherwise and
 * returns 0, or -1 after writing a sentence into t->err. */
typedef struct {
    const char *name;
    /* Check the options against the rank count, build the mode's communicators and model. */
    int (*setup)(trainer_t *t);
    /* One optimizer step on the global batch idx[0..gbatch). Adds the batch's summed loss
     * and correct count as seen by this rank to *loss_sum / *correct, and their number to
     * t->seen (a mode where several ranks see the same samples reports them on one rank only,
     * so that an allreduce over t->comm counts each sample once). */
    int (*step)(trainer_t *t, const int *idx, int gbatch, double *loss_sum, long *correct);
    /* The whole model's parameters (vel: SGD momentum; NULL for params only) on every rank,
     * in the layout of a one-rank rdt_mlp_t holding all layers. */
    int (*gather)(trainer_t *t, float *full, float *full_vel);
    /* Set this rank's part from the whole model (the same on every rank). */
    int (*scatter)(trainer_t *t, const float *full, const float *full_vel);
    /* Bytes of layout this mode puts into a checkpoint's layout[] (mode-specific shape). */
    void (*layout)(const trainer_t *t, int layout[4]);
    void (*fini)(trainer_t *t);
} train_mode_t;

struct trainer {
    train_opts_t o;
    rdt_comm_t *comm;
    int rank, size;
    const train_mode_t *mode;
    void *mode_state;
    rdt_dataset_t train, test;
    int gbatch;          /* samples per optimizer step, all ranks together */
    size_t full_nparams; /* parameters of the whole model */
    uint64_t step;       /* optimizer steps done */
    long seen;           /* this epoch: samples whose loss this rank counted */
    double comm_wait_s;  /* this epoch: time blocked in the engine */
    uint64_t bytes_sent; /* this epoch: payload handed to the engine */
    char err[1024];
};

extern const train_mode_t rdt_mode_data;
extern const train_mode_t rdt_mode_tensor;
extern const train_mode_t rdt_mode_pipeline;
extern const train_mode_t rdt_mode_ps;

/* Helpers for the modes (train_main.c). */
double train_now(void);
/** Gather the images and labels of samples idx[0..n) into x (n x dim) and y. */
void train_batch(const rdt_dataset_t *ds, const int *idx, int n, float *x, uint8_t *y);
/** rdt_wait with the time it blocks added to t->comm_wait_s, and a failure into t->err. */
int train_wait(trainer_t *t, rdt_request_t *req, const char *what);
/** Record an engine failure: "what: engine sentence". Returns -1. */
int train_fail(trainer_t *t, rdt_comm_t *comm, rdt_status_t st, const char *what);
/** Format into t->err. Returns -1. */
int train_error(trainer_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Total parameters of the whole model of sizes[0..nsizes). */
size_t train_full_nparams(const int *sizes, int nsizes);

#endif
