/*
 * memcpy_bw.c - single-thread memcpy bandwidth, the yardstick of the shared-memory target
 * ("busbw at 64 MiB at least 60% of single-thread memcpy"), measured by bench-peers.sh in the
 * same run as the collectives.
 *
 *   memcpy_bw BYTES [REPS]   prints "memcpy BYTES GBPS": the median over REPS (11) copies of
 *                            BYTES between two buffers faulted in beforehand, GB = 1e9 bytes
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    size_t bytes = argc > 1 ? strtoull(argv[1], NULL, 10) : 0;
    int reps = argc > 2 ? atoi(argv[2]) : 11, i;
    unsigned char *src, *dst;
    double *t;

    if (bytes == 0 || reps < 1 || reps > 1000) {
        fprintf(stderr, "usage: memcpy_bw BYTES [REPS (1-1000)]\n");
        return 2;
    }
    src = aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
    dst = aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
    t = calloc((size_t)reps, sizeof(*t));
    if (!src || !dst || !t) {
        fprintf(stderr, "memcpy_bw: out of memory for 2 x %zu bytes\n", bytes);
        return 1;
    }
    memset(src, 0x5a, bytes);
    memset(dst, 0, bytes);
    memcpy(dst, src, bytes); /* warm */
    for (i = 0; i < reps; i++) {
        double t0 = now_s();
        memcpy(dst, src, bytes);
        t[i] = now_s() - t0;
        src[(size_t)i % bytes] ^= dst[bytes - 1 - (size_t)i % bytes]; /* keep the copies */
    }
    qsort(t, (size_t)reps, sizeof(*t), cmp_double);
    printf("memcpy %zu %.3f\n", bytes, (double)bytes / t[reps / 2] / 1e9);
    free(src);
    free(dst);
    free(t);
    return 0;
}
