/*
 * metrics.h - what the trainer reports: a progress bar per epoch, a metrics file with one
 * record per epoch (CSV or JSON lines, by the file's extension) and a plot of loss and accuracy
 * per epoch (SVG, written without any library).
 */
#ifndef RDT_TRAIN_METRICS_H
#define RDT_TRAIN_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    int epoch;             /* 1-based */
    double train_loss;     /* mean over the epoch's samples */
    double train_acc;
    double test_loss;
    double test_acc;
    double seconds;        /* wall time of the epoch's training steps */
    double samples_per_s;  /* global samples per second */
    double comm_share;     /* share of step time spent waiting on communication, 0..1 */
    uint64_t bytes_sent;   /* payload bytes this rank handed to the engine this epoch */
} rdt_epoch_metrics_t;

typedef struct {
    FILE *f;
    int json;              /* JSON lines, else CSV */
    char path[4096];
} rdt_metrics_t;

/**
 * Open @p path for writing: ".jsonl" or ".json" gives JSON lines, anything else CSV with a
 * header line. Returns 0, or -1 with a sentence naming the path in @p err.
 */
int rdt_metrics_open(rdt_metrics_t *m, const char *path, char *err, size_t errlen);
/** Append one record and flush it. Returns 0, or -1 with a sentence in @p err. */
int rdt_metrics_append(rdt_metrics_t *m, const rdt_epoch_metrics_t *row, char *err,
                       size_t errlen);
/** Close (fclose, reporting a write error). Returns 0 or -1 with a sentence. */
int rdt_metrics_close(rdt_metrics_t *m, char *err, size_t errlen);

/**
 * Write an SVG plot of @p rows (n >= 1): loss (train and test) and test accuracy against the
 * epoch, two panels with axes, ticks, labels and a legend. Returns 0, or -1 with a sentence.
 */
int rdt_plot_svg(const char *path, const rdt_epoch_metrics_t *rows, int n, const char *title,
                 char *err, size_t errlen);

/* A progress bar on a terminal ("\r" redraws, at most 10 a second), else a plain line at each
 * tenth of the epoch. */
typedef struct {
    FILE *out;
    int tty;
    int epoch, epochs;
    long total;            /* steps in the epoch */
    long next_line;        /* non-tty: step at which the next line is printed */
    double t0, last_draw;  /* seconds (CLOCK_MONOTONIC) */
} rdt_progress_t;

void rdt_progress_begin(rdt_progress_t *p, FILE *out, int tty, int epoch, int epochs,
                        long total_steps);
/** @p step steps of total are done; @p loss is the running mean; @p samples_per_s global. */
void rdt_progress_update(rdt_progress_t *p, long step, double loss, double samples_per_s);
/** Finish the bar (a newline on a terminal). */
void rdt_progress_end(rdt_progress_t *p);

#endif
