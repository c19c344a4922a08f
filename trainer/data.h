/*
 * data.h - the dataset: IDX files (Fashion-MNIST, MNIST), gzipped or not, read into memory.
 *
 * A set is images as float32 in [0, 1] (pixel / 255), row-major, one row of rows*cols per
 * sample, and labels as uint8 class numbers. Every failure names the file and what was wrong
 * with it (missing, not IDX, wrong element type, truncated, labels out of range, image and
 * label counts that differ).
 */
#ifndef RDT_TRAIN_DATA_H
#define RDT_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

#define RDT_DATA_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define RDT_DATA_CLASSES     10

typedef struct {
    int n;        /* samples */
    int dim;      /* values per sample: rows * cols */
    int rows, cols;
    float *x;     /* n x dim */
    uint8_t *y;   /* n labels, each < RDT_DATA_CLASSES */
} rdt_dataset_t;

/**
 * Load the training set (@p test = 0: train-images-idx3-ubyte, train-labels-idx1-ubyte) or the
 * test set (@p test = 1: t10k-...) from @p dir; each file is taken as NAME.gz if that exists,
 * else NAME. At most @p limit samples (the first ones; 0: all). On failure returns -1 with a
 * sentence in @p err and *ds untouched.
 */
int rdt_dataset_load(const char *dir, int test, int limit, rdt_dataset_t *ds, char *err,
                     size_t errlen);

/** Read one IDX file (any of the above) fully: exposed for the tests. */
int rdt_idx_read(const char *path, int want_dims, int dims[3], uint8_t **data_p, size_t *len_p,
                 char *err, size_t errlen);

void rdt_dataset_free(rdt_dataset_t *ds);

#endif
