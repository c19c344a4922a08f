/*
 * mpi_allreduce_bench.c - MPI_Allreduce (float32, sum) measured the way rdt_bench measures
 * rdt_allreduce, so that tools/bench-peers.sh can put the two side by side.
 *
 *   mpirun -np N mpi_allreduce_bench [-b 8] [-e 64M] [-f 2] [-w 5] [-i ITERS | -T 0.2] [-r 5]
 *                                    [-m 1000000] [-k 0|1] [-a avg|max]
 *
 * One row per size (bytes = count * 4), out-of-place (sendbuf != recvbuf) then in-place
 * (MPI_IN_PLACE):
 *
 *   size count | time algbw busbw #wrong | time algbw busbw #wrong | iters (oop/ip)
 *
 *   algbw = bytes / time (GB/s, 1e9 B), busbw = algbw * 2(n-1)/n (nccl-tests, allreduce).
 *
 * Per size and mode: (1) check: rank r holds v(r, i) = (3 * (i mod 1021) + 5r) mod 13, one
 * allreduce into a receive buffer of 0xff bytes (NaN), every element compared exactly with the
 * integer sum, #wrong summed over ranks; (2) -w untimed calls; (3) with -T, probe batches of 1,
 * 8, 64, ... calls until one lasts 5 ms on the slowest rank; (4) -T seconds of calls (or -i
 * calls) in -r batches, each after MPI_Barrier; per batch each rank's mean time per call is
 * averaged across ranks (or the maximum, -a max); the time reported is the median batch.
 * Exit status 1 if an element was wrong, 2 on a usage error.
 */
#include <errno.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PERIOD 1021

struct bench_cfg {
    size_t minb, maxb;
    long factor, iters, max_iters;
    int warmup, batches, check, use_max;
    double target_s;
};

struct mode_stat {
    double time_s;
    long long wrong; /* -1: not checked */
    long iters;
};

static float value_at(size_t i, int rank)
{
    return (float)((3 * (i % PERIOD) + 5 * (size_t)rank) % 13);
}

static void fill_input(float *buf, size_t count, int rank)
{
    size_t i;

    for (i = 0; i < count; i++)
        buf[i] = value_at(i, rank);
}

static long long count_wrong(const float *buf, size_t count, int nranks)
{
    float expect[PERIOD];
    long long wrong = 0;
    size_t i, j;
    int r;

    for (j = 0; j < PERIOD; j++) {
        expect[j] = 0.0f;
        for (r = 0; r < nranks; r++)
            expect[j] += value_at(j, r);
    }
    for (i = 0, j = 0; i < count; i++) {
        wrong += buf[i] != expect[j];
        if (++j == PERIOD)
            j = 0;
    }
    return wrong;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Seconds this rank spends in @p n allreduces started together after a barrier. */
static double time_calls(const void *src, float *dst, int count, long n)
{
    double t0;
    long i;

    MPI_Barrier(MPI_COMM_WORLD);
    t0 = MPI_Wtime();
    for (i = 0; i < n; i++)
        MPI_Allreduce(src, dst, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    return MPI_Wtime() - t0;
}

static void measure(const struct bench_cfg *cfg, int inplace, float *sbuf, float *rbuf,
                    size_t count, int rank, int nranks, struct mode_stat *st)
{
    const void *src = inplace ? MPI_IN_PLACE : (const void *)sbuf;
    double *samples, per_call = 0.0, sum;
    long total, batch, probe;
    int i;

    st->wrong = -1;
    if (cfg->check) {
        long long mine;
        if (!inplace) {
            fill_input(sbuf, count, rank);
            memset(rbuf, 0xff, count * sizeof(float));
        } else {
            fill_input(rbuf, count, rank);
        }
        MPI_Allreduce(src, rbuf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        mine = count_wrong(rbuf, count, nranks);
        MPI_Allreduce(&mine, &st->wrong, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    }
    fill_input(sbuf, count, rank);
    fill_input(rbuf, count, rank);

    for (i = 0; i < cfg->warmup; i++)
        MPI_Allreduce(src, rbuf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);

    if (cfg->iters > 0) {
        total = cfg->iters;
    } else {
        for (probe = 1;; probe *= 8) {
            double dt = time_calls(src, rbuf, (int)count, probe), slowest;
            MPI_Allreduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            per_call = slowest / (double)probe;
            if (slowest >= 5e-3 || probe * 8 > cfg->max_iters)
                break;
        }
        total = (long)(cfg->target_s / (per_call > 0 ? per_call : 1e-9));
        if (total > cfg->max_iters)
            total = cfg->max_iters;
    }
    batch = total / cfg->batches > 0 ? total / cfg->batches : 1;

    samples = malloc(sizeof(*samples) * (size_t)cfg->batches);
    if (!samples)
        MPI_Abort(MPI_COMM_WORLD, 2);
    for (i = 0; i < cfg->batches; i++) {
        double mine = time_calls(src, rbuf, (int)count, batch) / (double)batch;
        MPI_Allreduce(&mine, &sum, 1, MPI_DOUBLE, cfg->use_max ? MPI_MAX : MPI_SUM, MPI_COMM_WORLD);
        samples[i] = cfg->use_max ? sum : sum / nranks;
    }
    qsort(samples, (size_t)cfg->batches, sizeof(*samples), by_value);
    st->time_s = cfg->batches % 2 ? samples[cfg->batches / 2]
                                  : (samples[cfg->batches / 2 - 1] + samples[cfg->batches / 2]) / 2;
    st->iters = batch * cfg->batches;
    free(samples);
}

static int size_arg(const char *s, size_t *out)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || v < 0)
        return -1;
    if (*end == 'k' || *end == 'K')
        v *= 1 << 10;
    else if (*end == 'm' || *end == 'M')
        v *= 1 << 20;
    else if (*end == 'g' || *end == 'G')
        v *= 1 << 30;
    else if (*end)
        return -1;
    *out = (size_t)v;
    return 0;
}

static void print_usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [-b MINBYTES] [-e MAXBYTES] [-f FACTOR] [-w WARMUP] [-i ITERS | -T SEC]\n"
            "       [-r BATCHES] [-m MAXITERS] [-k 0|1] [-a avg|max] [-P 0|1]\n"
            "  -P 1: madvise(MADV_HUGEPAGE) the buffers before touching them (huge pages)\n"
            "  defaults: -b 8 -e 64M -f 2 -w 5 -T 0.2 -r 5 -m 1000000 -k 1 -a avg -P 0\n",
            prog);
}

int main(int argc, char **argv)
{
    struct bench_cfg cfg = {8, (size_t)64 << 20, 2, 0, 1000000, 5, 5, 1, 0, 0.2};
    int rank, nranks, c, bad = 0, nrows = 0;
    long long failures = 0;
    double busbw_total = 0.0, factor;
    float *sbuf = NULL, *rbuf = NULL;
    size_t bytes;
    int huge = 0;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    while ((c = getopt(argc, argv, "b:e:f:w:i:T:r:m:k:a:P:h")) != -1) {
        switch (c) {
        case 'b':
            bad |= size_arg(optarg, &cfg.minb);
            break;
        case 'e':
            bad |= size_arg(optarg, &cfg.maxb);
            break;
        case 'f':
            cfg.factor = atol(optarg);
            break;
        case 'w':
            cfg.warmup = atoi(optarg);
            break;
        case 'i':
            cfg.iters = atol(optarg);
            break;
        case 'T':
            cfg.target_s = atof(optarg);
            break;
        case 'r':
            cfg.batches = atoi(optarg);
            break;
        case 'm':
            cfg.max_iters = atol(optarg);
            break;
        case 'k':
            cfg.check = atoi(optarg);
            break;
        case 'a':
            cfg.use_max = strcmp(optarg, "max") == 0;
            break;
        case 'P':
            huge = atoi(optarg) != 0;
            break;
        default:
            bad = 1;
            break;
        }
    }
    if (bad || cfg.factor < 2 || cfg.batches < 1 || cfg.warmup < 0 || cfg.max_iters < 1 ||
        cfg.target_s <= 0 || cfg.minb < sizeof(float) || cfg.maxb < cfg.minb ||
        cfg.maxb / sizeof(float) > 0x7fffffff) {
        if (rank == 0)
            print_usage(argv[0]);
        MPI_Finalize();
        return 2;
    }

    /* allocated once at the largest size and touched before anything is timed */
    if (posix_memalign((void **)&sbuf, 4096, cfg.maxb) ||
        posix_memalign((void **)&rbuf, 4096, cfg.maxb)) {
        fprintf(stderr, "rank %d: cannot allocate 2 x %zu bytes\n", rank, cfg.maxb);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (huge && (madvise(sbuf, cfg.maxb, MADV_HUGEPAGE) || madvise(rbuf, cfg.maxb, MADV_HUGEPAGE)))
        fprintf(stderr, "rank %d: madvise(MADV_HUGEPAGE): %s\n", rank, strerror(errno));
    memset(sbuf, 0, cfg.maxb);
    memset(rbuf, 0, cfg.maxb);

    if (rank == 0) {
        char lib[MPI_MAX_LIBRARY_VERSION_STRING], host[256] = "";
        int len;
        MPI_Get_library_version(lib, &len);
        lib[strcspn(lib, "\n")] = '\0';
        gethostname(host, sizeof(host) - 1);
        printf("# mpi_allreduce_bench: nranks %d, host %s\n# library: %s\n", nranks, host, lib);
        printf("# float32 sum, sizes %zu..%zu B x%ld, warmup %d, ", cfg.minb, cfg.maxb, cfg.factor,
               cfg.warmup);
        if (cfg.iters > 0)
            printf("%ld calls/mode", cfg.iters);
        else
            printf("~%.2f s/mode", cfg.target_s);
        printf(" in %d batches, time = median over batches of the per-rank mean %s across"
               " ranks, check %s\n",
               cfg.batches, cfg.use_max ? "MAX" : "AVERAGED", cfg.check ? "on" : "off");
        printf("#%51s %37s\n", "out-of-place", "in-place");
        printf("# %11s %12s %12s %8s %8s %6s %12s %8s %8s %6s %13s\n", "size", "count", "time",
               "algbw", "busbw", "#wrong", "time", "algbw", "busbw", "#wrong", "iters");
        printf("# %11s %12s %12s %8s %8s %6s %12s %8s %8s %6s %13s\n", "(B)", "(elements)", "(us)",
               "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "", "oop/ip");
        fflush(stdout);
    }

    factor = 2.0 * (nranks - 1) / nranks;
    for (bytes = cfg.minb; bytes <= cfg.maxb; bytes *= (size_t)cfg.factor) {
        size_t count = bytes / sizeof(float), nbytes = count * sizeof(float);
        struct mode_stat st[2];
        int m;

        for (m = 0; m < 2; m++) {
            measure(&cfg, m, sbuf, rbuf, count, rank, nranks, &st[m]);
            if (st[m].wrong > 0)
                failures += st[m].wrong;
        }
        busbw_total += nbytes / st[0].time_s / 1e9 * factor;
        nrows++;
        if (rank == 0) {
            char iters[48];
            snprintf(iters, sizeof(iters), "%ld/%ld", st[0].iters, st[1].iters);
            printf("  %11zu %12zu", nbytes, count);
            for (m = 0; m < 2; m++) {
                double algbw = nbytes / st[m].time_s / 1e9;
                printf(" %12.2f %8.3f %8.3f %6lld", st[m].time_s * 1e6, algbw, algbw * factor,
                       st[m].wrong);
            }
            printf(" %13s\n", iters);
            fflush(stdout);
        }
        if (bytes > cfg.maxb / (size_t)cfg.factor)
            break;
    }
    if (rank == 0) {
        printf("# Out of bounds values : %lld %s\n", failures, failures ? "FAILED" : "OK");
        printf("# Avg bus bandwidth    : %.3f GB/s (out-of-place, mean over sizes)\n",
               nrows ? busbw_total / nrows : 0.0);
        fflush(stdout);
    }
    free(sbuf);
    free(rbuf);
    MPI_Finalize();
    return failures ? 1 : 0;
}
