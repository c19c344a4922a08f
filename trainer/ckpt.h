/*
 * ckpt.h - checkpoints of the trainer: the whole model (parameters and SGD momentum), the
 * training position and the layout that produced it, in one file written atomically.
 *
 * DIR/checkpoint.rdt is written as DIR/checkpoint.rdt.tmp, fsync'ed, renamed over the old one
 * and the directory fsync'ed, so a crash at any point leaves either the previous checkpoint or
 * the new one, never a torn file. The file carries a CRC-32 of everything after its header, so
 * a corrupt or truncated file is refused, not loaded.
 */
#ifndef RDT_TRAIN_CKPT_H
#define RDT_TRAIN_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define RDT_CKPT_FILE "checkpoint.rdt"

typedef struct {
    char mode[16];       /* "data", "tensor", "pipeline", "ps", "data+tensor" */
    int nranks;          /* ranks of the job */
    int layout[4];       /* mode-specific shape (tensor degree, stages, servers, ...) */
    int nsizes;          /* layer sizes of the model */
    int sizes[RDT_MLP_LAYERS_MAX + 1];
    int batch;           /* global batch */
    uint64_t seed;
    int epoch;           /* epochs completed */
    uint64_t step;       /* optimizer steps completed */
    size_t nparams;      /* floats in params (and in vel when has_vel) */
    int has_vel;         /* momentum buffers follow the parameters */
} rdt_ckpt_meta_t;

/**
 * Write @p meta, @p params (meta->nparams floats) and, if meta->has_vel, @p vel to
 * DIR/checkpoint.rdt atomically (DIR is created if missing). Returns 0, or -1 with a sentence
 * naming the path and the system error in @p err.
 */
int rdt_ckpt_save(const char *dir, const rdt_ckpt_meta_t *meta, const float *params,
                  const float *vel, char *err, size_t errlen);

/**
 * Read DIR/checkpoint.rdt's header into *got. If @p expect is not NULL, refuse (-1, with a
 * sentence saying which field differs, both values, and that the checkpoint came from another
 * model shape or rank layout) a file whose mode, nranks, layout, sizes, batch, seed, nparams
 * or has_vel differ from it. Then read the parameters into @p params and (if has_vel) the
 * momentum into @p vel, both with room for got->nparams floats (pass NULL for both to read the
 * header only). Returns 0, 1 if there is no checkpoint in DIR (nothing to resume: not an error
 * for the caller to decide), or -1 with a sentence (unreadable, not a checkpoint, other
 * version, truncated, CRC mismatch).
 */
int rdt_ckpt_load(const char *dir, const rdt_ckpt_meta_t *expect, rdt_ckpt_meta_t *got,
                  float *params, float *vel, char *err, size_t errlen);

#endif
