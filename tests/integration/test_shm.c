/* rdt-test-labels: fault */
/*
 * test_shm.c - the shared-memory transport (transport/shm.c) and the mux (transport/mux.c).
 *
 * Transport level, as test_tcp.c: each test forks 2-4 ranks with rdt_spawn_local; they open the
 * shm transport, exchange addresses through files in a mkdtemp folder and check what they see
 * (a failed check exits non-zero, the parent asserts the statuses). Abort and wakeup run in the
 * test process itself, with two ranks in one process. After every test /dev/shm must hold no
 * new entry, and ranks check that close() gave back every descriptor open() took.
 *
 * Public API: the collectives with RDT_TRANSPORT=auto across two fake hosts (RDT_HOSTNAME: ranks
 * 0,1 on "hosta", 2,3 on "hostb"), checked against a reference computed here; the routing is
 * checked from /proc/self/maps (a rank maps 1 + 3 x (its local peers) pieces of shm segments);
 * split by host, each half is one host: its small collectives run as one-shot exchanges
 * (exact, and the share areas are mapped);
 * RDT_TRANSPORT=shm across the same two hosts must fail naming a rank of the other host.
 *
 * One-shot exchanges (ishare): thousands in a row among 2 and 4 ranks, contributions of random
 * lengths from 0 to share_max (mostly up to 64 KiB; every 8th built in place in the buffer
 * share_buf names) with contents seeded by (rank, exchange), checked byte for byte
 * inside the callback; posts that must be refused (too long, a second one outstanding); ranks
 * that disagree on the tag fail with RDT_ERR_MISMATCH naming each other; a rank killed before
 * its contribution fails the others naming it within seconds, not at a timeout. Every
 * collective over shm alone and over auto on one host runs in test_collectives (ctest entries
 * test_collectives_shm and test_collectives).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
/* Threads through pthread_create, which ThreadSanitizer follows (it does not see C11's
 * thrd_create); declared here because <pthread.h> includes <sched.h>, which engine/sched.h on
 * the include path shadows. pthread_t is an unsigned long in glibc. */
extern int pthread_create(unsigned long *th, const void *attr, void *(*fn)(void *), void *arg);
extern int pthread_join(unsigned long th, void **ret);
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "rdmatrain.h"
#include "spawn.h"
#include "testutil.h"
#include "transport.h"

#define TS_SPAWN_TIMEOUT_S 60

static const unsigned char ts_token[RDT_TOKEN_LEN] = {3, 1, 4, 1, 5, 9, 2, 6,
                                                      5, 3, 5, 8, 9, 7, 9, 3};
static const uint64_t ts_comm_id = 0x5eed00005a11ab1eULL;

typedef struct ts_job {
    char dir[64];
    int mode;
    size_t rndv; /* rdt_shm_opts_t.rndv_bytes */
    size_t ring;
} ts_job_t;

typedef struct ts_xfer {
    rdt_xfer_t x;
    int done;
    rdt_status_t st;
} ts_xfer_t;

static int g_rank = -1;

#define CHECK(cond)                                                                              \
    do {                                                                                         \
        if (!(cond))                                                                             \
            ts_fail(__LINE__, "%s", #cond);                                                      \
    } while (0)

static void ts_fail(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void ts_fail(int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "test_shm: rank %d: line %d: check failed: ", g_rank, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    _exit(2);
}

static double ts_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double ts_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void ts_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void ts_cb(rdt_xfer_t *x, rdt_status_t st)
{
    ts_xfer_t *t = x->arg;
    t->done++;
    t->st = st;
}

static void ts_prep(ts_xfer_t *t, void *buf, size_t len, int peer, uint64_t tag)
{
    memset(t, 0, sizeof(*t));
    t->x.buf = buf;
    t->x.len = len;
    t->x.peer = peer;
    t->x.tag = tag;
    t->x.cb = ts_cb;
    t->x.arg = t;
    t->st = RDT_IN_PROGRESS;
}

static void ts_fill(void *buf, size_t len, uint64_t seed)
{
    unsigned char *b = buf;
    uint64_t s = seed, v = 0;
    size_t i;
    for (i = 0; i < len; i++) {
        if (i % 8 == 0)
            v = rdt_test_rand(&s);
        b[i] = (unsigned char)(v >> (8 * (i % 8)));
    }
}

static int ts_check(const void *buf, size_t len, uint64_t seed)
{
    unsigned char *want = malloc(len ? len : 1);
    int ok;
    ts_fill(want, len, seed);
    ok = len == 0 || memcmp(buf, want, len) == 0;
    free(want);
    return ok;
}

static int ts_wait(rdt_transport_t *tp, ts_xfer_t **t, int n, double timeout_s)
{
    double end = ts_now() + timeout_s;
    for (;;) {
        int i, left = 0;
        for (i = 0; i < n; i++)
            left += t[i] && !t[i]->done;
        if (!left)
            return 0;
        if (ts_now() > end)
            return -1;
        tp->ops->progress(tp, 100);
    }
}

static int ts_wait1(rdt_transport_t *tp, ts_xfer_t *t, double timeout_s)
{
    return ts_wait(tp, &t, 1, timeout_s);
}

/* Open descriptors of this process. */
static int ts_nfds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the DIR's own */
}

/* Entries of /dev/shm (the transport must never add one). */
static int ts_devshm_entries(void)
{
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    int n = 0;
    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static void ts_addr_path(char *path, size_t n, const char *dir, int rank)
{
    snprintf(path, n, "%s/addr.%d", dir, rank);
}

static void ts_addr_read(const char *dir, int r, unsigned char *addr)
{
    char path[128];
    double end = ts_now() + 15;
    ts_addr_path(path, sizeof(path), dir, r);
    for (;;) {
        FILE *f = fopen(path, "rb");
        if (f) {
            size_t got = fread(addr, 1, RDT_ADDR_MAX, f);
            fclose(f);
            CHECK(got == RDT_ADDR_MAX);
            return;
        }
        CHECK(ts_now() < end);
        ts_sleep_ms(2);
    }
}

static rdt_transport_t *ts_open(const ts_job_t *job, int rank, int nranks)
{
    rdt_transport_params_t params;
    rdt_shm_opts_t opts;
    rdt_transport_t *tp = NULL;
    unsigned char addr[RDT_ADDR_MAX], *addrs;
    char *hosts, host[RDT_HOST_MAX], path[128], tmp[160];
    size_t alen = RDT_ADDR_MAX;
    FILE *f;
    int i;

    g_rank = rank;
    snprintf(host, sizeof(host), "host%d", rank);
    rdt_log_set_identity(host, rank);
    memset(&params, 0, sizeof(params));
    params.rank = rank;
    params.nranks = nranks;
    params.comm_id = ts_comm_id;
    memcpy(params.token, ts_token, RDT_TOKEN_LEN);
    params.host = host;
    memset(&opts, 0, sizeof(opts));
    opts.rndv_bytes = job->rndv;
    opts.ring_bytes = job->ring;
    CHECK(rdt_shm_open_opts(&params, &opts, &tp) == RDT_SUCCESS);
    memset(addr, 0, sizeof(addr));
    CHECK(tp->ops->addr_get(tp, addr, &alen) == RDT_SUCCESS);
    CHECK(alen > 0 && alen <= RDT_ADDR_MAX);

    ts_addr_path(path, sizeof(path), job->dir, rank);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(addr, 1, RDT_ADDR_MAX, f) == RDT_ADDR_MAX);
    CHECK(fclose(f) == 0);
    CHECK(rename(tmp, path) == 0);

    addrs = calloc((size_t)nranks, RDT_ADDR_MAX);
    hosts = calloc((size_t)nranks, RDT_HOST_MAX);
    CHECK(addrs && hosts);
    for (i = 0; i < nranks; i++) {
        ts_addr_read(job->dir, i, addrs + (size_t)i * RDT_ADDR_MAX);
        /* shm connects ranks whose host names are equal: all "box" */
        snprintf(hosts + (size_t)i * RDT_HOST_MAX, RDT_HOST_MAX, "box");
    }
    CHECK(tp->ops->addrs_set(tp, addrs, hosts) == RDT_SUCCESS);
    free(addrs);
    free(hosts);
    return tp;
}

static void ts_job_init(ts_job_t *job, int mode)
{
    memset(job, 0, sizeof(*job));
    snprintf(job->dir, sizeof(job->dir), "/tmp/rdt-test-shm-XXXXXX");
    assert_non_null(mkdtemp(job->dir));
    job->mode = mode;
}

static void ts_job_fini(ts_job_t *job, int nranks)
{
    char path[128];
    int i;
    for (i = 0; i < nranks; i++) {
        ts_addr_path(path, sizeof(path), job->dir, i);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/flag", job->dir);
    unlink(path);
    rmdir(job->dir);
}

static void ts_run_job(int nranks, rdt_spawn_fn_t fn, ts_job_t *job, const int *want_status)
{
    int statuses[8], i, shm_before = ts_devshm_entries();

    rdt_spawn_local(nranks, fn, job, TS_SPAWN_TIMEOUT_S, statuses);
    for (i = 0; i < nranks; i++) {
        int want = want_status ? want_status[i] : 0;
        if (statuses[i] != want)
            fprintf(stderr, "rank %d exited with %d, expected %d\n", i, statuses[i], want);
        assert_int_equal(statuses[i], want);
    }
    assert_int_equal(ts_devshm_entries(), shm_before);
}

static void ts_run(int nranks, rdt_spawn_fn_t fn, int mode, size_t rndv, const int *want_status)
{
    ts_job_t job;
    ts_job_init(&job, mode);
    job.rndv = rndv;
    ts_run_job(nranks, fn, &job, want_status);
    ts_job_fini(&job, nranks);
}

/* ------------------------------------------------------------------------------------------ */
/* Ping-pong                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static const size_t ts_pp_sizes[] = {0, 1, 8, 4097, 65536, (1u << 20) + 3, 16u << 20};

static int pingpong_rank(int rank, int nranks, void *arg)
{
    int fds = ts_nfds();
    rdt_transport_t *tp = ts_open(arg, rank, nranks);
    int peer = 1 - rank;
    size_t k;
    int rep;

    for (k = 0; k < sizeof(ts_pp_sizes) / sizeof(ts_pp_sizes[0]); k++) {
        size_t len = ts_pp_sizes[k];
        unsigned char *sbuf = malloc(len + 1), *rbuf = malloc(len + 1);
        int reps = len <= 8 ? 200 : 3;
        CHECK(sbuf && rbuf);
        for (rep = 0; rep < reps; rep++) {
            uint64_t ping_seed = len * 1000 + (uint64_t)rep, pong_seed = ping_seed ^ 0xfeed;
            ts_xfer_t s, r;
            memset(rbuf, 0xee, len + 1);
            if (rank == 0) {
                ts_fill(sbuf, len, ping_seed);
                ts_prep(&r, rbuf, len, peer, 2 * k + 1);
                ts_prep(&s, sbuf, len, peer, 2 * k);
                CHECK(tp->ops->irecv(tp, &r.x) == RDT_SUCCESS);
                CHECK(tp->ops->isend(tp, &s.x) == RDT_SUCCESS);
                CHECK(ts_wait(tp, (ts_xfer_t *[]){&s, &r}, 2, 20) == 0);
                CHECK(s.st == RDT_SUCCESS && r.st == RDT_SUCCESS && s.done == 1 && r.done == 1);
                if (!ts_check(rbuf, len, pong_seed))
                    ts_fail(__LINE__, "pong of %zu bytes corrupt", len);
            } else {
                ts_prep(&r, rbuf, len, peer, 2 * k);
                CHECK(tp->ops->irecv(tp, &r.x) == RDT_SUCCESS);
                CHECK(ts_wait1(tp, &r, 20) == 0 && r.st == RDT_SUCCESS);
                if (!ts_check(rbuf, len, ping_seed))
                    ts_fail(__LINE__, "ping of %zu bytes corrupt", len);
                ts_fill(sbuf, len, pong_seed);
                ts_prep(&s, sbuf, len, peer, 2 * k + 1);
                CHECK(tp->ops->isend(tp, &s.x) == RDT_SUCCESS);
                CHECK(ts_wait1(tp, &s, 20) == 0 && s.st == RDT_SUCCESS);
            }
            CHECK(rbuf[len] == 0xee); /* nothing written past the message */
        }
        free(sbuf);
        free(rbuf);
    }
    tp->ops->close(tp);
    if (ts_nfds() != fds)
        ts_fail(__LINE__, "%d descriptors before open, %d after close", fds, ts_nfds());
    return 0;
}

static void test_pingpong_of_0_to_16mib_is_bit_exact_with_single_copy_for_large(void **state)
{
    (void)state;
    ts_run(2, pingpong_rank, 0, 0, NULL);
}

static void test_pingpong_of_0_to_16mib_is_bit_exact_through_the_ring_only(void **state)
{
    (void)state;
    ts_run(2, pingpong_rank, 0, SIZE_MAX, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Many messages in flight                                                                      */
/* ------------------------------------------------------------------------------------------ */

#define TS_MANY 64

typedef struct many_ctx {
    rdt_transport_t *tp;
    int rank, nranks;
    unsigned char *rbuf[8][TS_MANY];
    ts_xfer_t rx[8][TS_MANY];
    int repost_failed;
} many_ctx_t;

static many_ctx_t g_many;

/* Mostly small, some around the ring size and the single-copy threshold, a few large. */
static size_t many_len(int src, int dst, int i)
{
    uint64_t s = ((uint64_t)src << 32) | ((uint64_t)dst << 16) | (uint64_t)i;
    uint64_t r = rdt_test_rand(&s);
    if (i % 4 == 0 && i < 32)
        return 0;
    switch (r % 8) {
    case 0:
        return (size_t)(r >> 8) % (1u << 20);
    case 1:
        return 30000 + (size_t)(r >> 8) % 5000; /* both sides of 32 KiB */
    case 2:
        return 250000 + (size_t)(r >> 8) % 20000; /* both sides of 256 KiB */
    default:
        return (size_t)(r >> 8) % 300;
    }
}

static uint64_t many_tag(int src, int dst, int i)
{
    return ((uint64_t)src << 40) | ((uint64_t)dst << 20) | (uint64_t)i;
}

static uint64_t many_seed(int src, int dst, int i)
{
    return many_tag(src, dst, i) * 31 + 7;
}

static void many_post_recv(int peer, int i);

static void many_recv_cb(rdt_xfer_t *x, rdt_status_t st)
{
    ts_xfer_t *t = x->arg;
    int peer = x->peer, i = (int)(t - g_many.rx[peer]);

    ts_cb(x, st);
    if (st == RDT_SUCCESS && i + TS_MANY / 2 < TS_MANY)
        many_post_recv(peer, i + TS_MANY / 2);
}

static void many_post_recv(int peer, int i)
{
    many_ctx_t *c = &g_many;
    size_t len = many_len(peer, c->rank, i);
    c->rbuf[peer][i] = malloc(len + 1);
    ts_prep(&c->rx[peer][i], c->rbuf[peer][i], len, peer, many_tag(peer, c->rank, i));
    c->rx[peer][i].x.cb = many_recv_cb;
    if (c->tp->ops->irecv(c->tp, &c->rx[peer][i].x) != RDT_SUCCESS)
        c->repost_failed = 1;
}

static int many_rank(int rank, int nranks, void *arg)
{
    many_ctx_t *c = &g_many;
    rdt_transport_t *tp = ts_open(arg, rank, nranks);
    static ts_xfer_t tx[8][TS_MANY];
    unsigned char *sbuf[8][TS_MANY];
    ts_xfer_t *all[2 * 8 * TS_MANY];
    int q, i, n = 0;

    c->tp = tp;
    c->rank = rank;
    c->nranks = nranks;
    for (q = 0; q < nranks; q++) {
        if (q == rank)
            continue;
        for (i = 0; i < TS_MANY; i++) {
            size_t len = many_len(rank, q, i);
            sbuf[q][i] = malloc(len + 1);
            CHECK(sbuf[q][i] != NULL);
            ts_fill(sbuf[q][i], len, many_seed(rank, q, i));
            ts_prep(&tx[q][i], sbuf[q][i], len, q, many_tag(rank, q, i));
            CHECK(tp->ops->isend(tp, &tx[q][i].x) == RDT_SUCCESS);
            all[n++] = &tx[q][i];
        }
    }
    if (rank == nranks - 1) {
        /* no receive posted for a while: the rings to us fill up (backpressure), and waiting
         * must sleep, not spin */
        double t0 = ts_now(), c0 = ts_cpu(), used;
        while (ts_now() - t0 < 0.4)
            tp->ops->progress(tp, 50);
        used = ts_cpu() - c0;
        if (used > 0.2)
            ts_fail(__LINE__, "%.3f s of cpu in 0.4 s of waiting: progress spins", used);
    }
    for (q = 0; q < nranks; q++) {
        if (q == rank)
            continue;
        for (i = 0; i < TS_MANY / 2; i++)
            many_post_recv(q, i);
        for (i = 0; i < TS_MANY; i++)
            all[n++] = &c->rx[q][i];
    }
    CHECK(!c->repost_failed);
    CHECK(ts_wait(tp, all, n, 30) == 0);
    CHECK(!c->repost_failed);
    for (i = 0; i < n; i++)
        CHECK(all[i]->done == 1 && all[i]->st == RDT_SUCCESS);
    for (q = 0; q < nranks; q++) {
        if (q == rank)
            continue;
        for (i = 0; i < TS_MANY; i++) {
            size_t len = many_len(q, rank, i);
            if (!ts_check(c->rbuf[q][i], len, many_seed(q, rank, i)))
                ts_fail(__LINE__, "message %d from rank %d (%zu bytes) corrupt", i, q, len);
            free(c->rbuf[q][i]);
            free(sbuf[q][i]);
        }
    }
    tp->ops->close(tp);
    return 0;
}

static void test_many_messages_in_flight_between_4_ranks_arrive_in_order_with_their_tags(
    void **state)
{
    (void)state;
    ts_run(4, many_rank, 0, 0, NULL);
}

static void test_many_messages_in_flight_between_3_ranks_through_the_ring_only(void **state)
{
    (void)state;
    ts_run(3, many_rank, 0, SIZE_MAX, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Mismatch                                                                                     */
/* ------------------------------------------------------------------------------------------ */

enum { MISMATCH_LENGTH, MISMATCH_TAG, MISMATCH_LENGTH_LARGE };

static int mismatch_rank(int rank, int nranks, void *arg)
{
    const ts_job_t *job = arg;
    rdt_transport_t *tp = ts_open(job, rank, nranks);
    size_t n = job->mode == MISMATCH_LENGTH_LARGE ? (1u << 20) : 4096;
    unsigned char *buf = calloc(1, 4 * n);
    char want[256];

    CHECK(buf != NULL);
    if (rank == 0) {
        ts_xfer_t s, r;
        ts_prep(&s, buf, n, 1, 0x77);
        ts_prep(&r, buf + 2 * n, 8, 1, 0x78);
        CHECK(tp->ops->isend(tp, &s.x) == RDT_SUCCESS);
        CHECK(tp->ops->irecv(tp, &r.x) == RDT_SUCCESS);
        CHECK(ts_wait(tp, (ts_xfer_t *[]){&s, &r}, 2, 10) == 0);
        CHECK(s.st == RDT_SUCCESS || s.st == RDT_ERR_PEER_FAILED);
        CHECK(r.st == RDT_ERR_PEER_FAILED);
        if (!strstr(tp->error, "rank 1 (host box)"))
            ts_fail(__LINE__, "error does not name the peer: '%s'", tp->error);
    } else {
        ts_xfer_t r, r2, r3;
        if (job->mode == MISMATCH_TAG)
            ts_prep(&r, buf, n, 0, 0x79);
        else
            ts_prep(&r, buf, 2 * n, 0, 0x77);
        ts_prep(&r2, buf, 8, 0, 0x80);
        CHECK(tp->ops->irecv(tp, &r.x) == RDT_SUCCESS);
        CHECK(tp->ops->irecv(tp, &r2.x) == RDT_SUCCESS);
        CHECK(ts_wait(tp, (ts_xfer_t *[]){&r, &r2}, 2, 10) == 0);
        CHECK(r.st == RDT_ERR_MISMATCH);
        CHECK(r2.st == RDT_ERR_PEER_FAILED);
        if (job->mode == MISMATCH_TAG)
            snprintf(want, sizeof(want), "rank 0 (host box) sent %zu bytes with tag 0x77, "
                     "rank 1 expected %zu bytes with tag 0x79", n, n);
        else
            snprintf(want, sizeof(want), "rank 0 (host box) sent %zu bytes with tag 0x77, "
                     "rank 1 expected %zu bytes with tag 0x77", n, 2 * n);
        if (!strstr(tp->error, want))
            ts_fail(__LINE__, "error is '%s', expected it to contain '%s'", tp->error, want);
        ts_prep(&r3, buf, 8, 0, 0x81);
        CHECK(tp->ops->irecv(tp, &r3.x) == RDT_ERR_PEER_FAILED);
        CHECK(r3.done == 0);
    }
    free(buf);
    tp->ops->close(tp);
    return 0;
}

static void test_length_mismatch_fails_receiver_with_mismatch_and_sender_with_peer_failed(
    void **state)
{
    (void)state;
    ts_run(2, mismatch_rank, MISMATCH_LENGTH, 0, NULL);
    ts_run(2, mismatch_rank, MISMATCH_LENGTH_LARGE, 0, NULL); /* a single-copy message */
}

static void test_tag_mismatch_fails_receiver_with_mismatch_and_sender_with_peer_failed(
    void **state)
{
    (void)state;
    ts_run(2, mismatch_rank, MISMATCH_TAG, 0, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* A peer SIGKILLed mid-transfer                                                                */
/* ------------------------------------------------------------------------------------------ */

#define TS_BIG ((size_t)64 << 20)

/*
 * Rank 2 dies with transfers in flight both ways: it has streamed the first ring-full of an
 * 8 MiB message to rank 0 (which waits for the rest), and rank 1 is sending it 64 MiB that it
 * never receives (rank 1 waits for the receiver to finish). Both must fail naming rank 2, and
 * still talk to each other afterwards.
 */
static int kill_rank(int rank, int nranks, void *arg)
{
    ts_job_t *job = arg;
    rdt_transport_t *tp;
    unsigned char *big = malloc(TS_BIG), *small = calloc(1, 8 << 20);
    ts_xfer_t a, b;
    uint64_t v = 42, got = 0;
    char flag[128];
    double t0;
    int fds = ts_nfds();

    CHECK(big && small);
    job->rndv = rank == 2 ? SIZE_MAX : 0; /* rank 2 streams through the ring */
    tp = ts_open(job, rank, nranks);
    snprintf(flag, sizeof(flag), "%s/flag", job->dir);
    memset(big, rank + 1, TS_BIG);
    if (rank == 2) {
        ts_prep(&a, small, 8 << 20, 0, 1);
        CHECK(tp->ops->isend(tp, &a.x) == RDT_SUCCESS); /* writes what fits, no more */
        {
            FILE *f = fopen(flag, "w");
            CHECK(f && fclose(f) == 0);
        }
        ts_sleep_ms(50); /* let rank 1's rendezvous request arrive, unanswered */
        raise(SIGKILL);
    }
    if (rank == 0) {
        ts_prep(&a, small, 8 << 20, 2, 1);
        CHECK(tp->ops->irecv(tp, &a.x) == RDT_SUCCESS);
    } else {
        ts_prep(&a, big, TS_BIG, 2, 2);
        CHECK(tp->ops->isend(tp, &a.x) == RDT_SUCCESS);
    }
    t0 = ts_now();
    CHECK(ts_wait1(tp, &a, 10) == 0);
    CHECK(a.st == RDT_ERR_PEER_FAILED);
    if (ts_now() - t0 > 5)
        ts_fail(__LINE__, "the failure took %.2f s to show", ts_now() - t0);
    if (!strstr(tp->error, "rank 2 (host box)"))
        ts_fail(__LINE__, "error does not name the dead peer: '%s'", tp->error);
    /* later posts to it fail at once, the survivors still work together */
    ts_prep(&b, &v, 8, 2, 3);
    CHECK(tp->ops->isend(tp, &b.x) == RDT_ERR_PEER_FAILED);
    if (rank == 0) {
        ts_prep(&b, &v, 8, 1, 9);
        CHECK(tp->ops->isend(tp, &b.x) == RDT_SUCCESS);
    } else {
        ts_prep(&b, &got, 8, 0, 9);
        CHECK(tp->ops->irecv(tp, &b.x) == RDT_SUCCESS);
    }
    CHECK(ts_wait1(tp, &b, 10) == 0 && b.st == RDT_SUCCESS);
    CHECK(rank == 0 || got == 42);
    tp->ops->close(tp);
    free(big);
    free(small);
    if (ts_nfds() != fds)
        ts_fail(__LINE__, "%d descriptors before open, %d after close", fds, ts_nfds());
    return 0;
}

static void test_a_peer_killed_mid_transfer_fails_the_others_transfers_naming_it(void **state)
{
    static const int want[3] = {0, 0, 128 + SIGKILL};
    (void)state;
    ts_run(3, kill_rank, 0, 0, want);
}

/* ------------------------------------------------------------------------------------------ */
/* One-shot exchanges                                                                           */
/* ------------------------------------------------------------------------------------------ */

/* Under ThreadSanitizer a third as many: every byte written and checked is instrumented there,
 * and 4 ranks on 2 cores took 61 s for 3000 (of the job's 60 s) on a slower CI machine; 1000
 * still runs every length pattern of sh_len (a cycle of 64 exchanges) 15 times. */
#if defined(__SANITIZE_THREAD__)
#define SH_EXCHANGES 1000
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SH_EXCHANGES 1000
#endif
#endif
#ifndef SH_EXCHANGES
#define SH_EXCHANGES 3000
#endif
enum { SH_MODE_RUN, SH_MODE_MISMATCH, SH_MODE_KILL };

typedef struct sh_ctx {
    ts_xfer_t t;
    int nranks;
    uint64_t e;     /* exchange number */
    size_t cap;
    const void **views;
    size_t *lens;
    int bad;        /* views checked in the callback that did not match */
} sh_ctx_t;

/* Rank r's contribution to exchange e: its length (0, 1, 8, lengths around 40 and 64 bytes, the
 * maximum, or random: mostly up to 64 KiB, which keeps thousands of exchanges quick under the
 * sanitizers, sometimes up to the maximum), its seed. */
static size_t sh_len(int r, uint64_t e, size_t cap)
{
    /* around the largest contribution that sits in the header's line (40 bytes) and the next
     * lines; ranks differ, so one exchange mixes both layouts */
    static const size_t edge[] = {40, 41, 39, 24, 63, 64, 65, 129};
    uint64_t s = e * 131 + (uint64_t)r * 7 + 1;
    size_t small = cap < 65536 ? cap : 65536;
    switch (e % 8) {
    case 0: return 0;
    case 1: return 1;
    case 2: return e % 64 == 2 ? cap : small;
    case 3: return 8;
    case 4: return (size_t)(rdt_test_rand(&s) % (e % 32 == 4 ? cap + 1 : small + 1));
    case 5: /* built in place (sh_run), half of them at the edges */
        if ((e / 8) % 2 == 0)
            return edge[(e / 16 + (uint64_t)r) % 8];
        return (size_t)(rdt_test_rand(&s) % (small + 1));
    case 6: return edge[(e / 8 + (uint64_t)r) % 8];
    default: return (size_t)(rdt_test_rand(&s) % (small + 1));
    }
}

static uint64_t sh_seed(int r, uint64_t e)
{
    return 0xabcdef00ULL + e * 64 + (uint64_t)r;
}

/* Inside the callback, while the views are valid: every rank's contribution, byte for byte. */
static void sh_cb(rdt_xfer_t *x, rdt_status_t st)
{
    sh_ctx_t *c = x->arg;
    int r;

    if (st == RDT_SUCCESS)
        for (r = 0; r < c->nranks; r++)
            if (c->lens[r] != sh_len(r, c->e, c->cap) ||
                !ts_check(c->views[r], c->lens[r], sh_seed(r, c->e)))
                c->bad++;
    c->t.done++;
    c->t.st = st;
}

static int share_rank(int rank, int nranks, void *arg)
{
    ts_job_t *job = arg;
    rdt_transport_t *tp = ts_open(job, rank, nranks);
    sh_ctx_t c;
    unsigned char *buf;
    ts_xfer_t extra;
    uint64_t e, last = job->mode == SH_MODE_RUN ? SH_EXCHANGES : 20;
    rdt_status_t st;
    double t0;

    memset(&c, 0, sizeof(c));
    c.nranks = nranks;
    c.cap = tp->ops->share_max(tp);
    CHECK(c.cap >= 4096 && c.cap < (1u << 20));
    c.views = calloc((size_t)nranks, sizeof(*c.views));
    c.lens = calloc((size_t)nranks, sizeof(*c.lens));
    buf = malloc(c.cap + 1);
    CHECK(c.views && c.lens && buf);
    for (e = 0; e < last; e++) {
        size_t len = sh_len(rank, e, c.cap);
        if (job->mode == SH_MODE_KILL && rank == 2 && e == last - 1)
            raise(SIGKILL); /* the others wait for this exchange */
        if (e % 8 == 5 && tp->ops->share_buf) { /* built in place: share_buf, no copy */
            unsigned char *b = tp->ops->share_buf(tp);
            CHECK(b != NULL);
            ts_fill(b, len, sh_seed(rank, e));
            ts_prep(&c.t, b, len, -1, 0x5000 + e);
        } else {
            ts_fill(buf, len, sh_seed(rank, e));
            ts_prep(&c.t, buf, len, -1, 0x5000 + e);
        }
        if (job->mode == SH_MODE_MISMATCH && rank == 1 && e == last - 1)
            c.t.x.tag ^= 1;
        c.t.x.cb = sh_cb;
        c.t.x.arg = &c;
        c.e = e;
        st = tp->ops->ishare(tp, &c.t.x, c.views, c.lens);
        if (st != RDT_SUCCESS && job->mode != SH_MODE_RUN && e == last - 1) {
            /* another rank failed the exchange and left before this one posted: its notice
             * (kill: the death of rank 2; mismatch: the tags) is the error */
            CHECK(st == RDT_ERR_PEER_FAILED);
            if (!strstr(tp->error, job->mode == SH_MODE_KILL ? "rank 2 (host box)"
                                                             : "one-shot exchange #"))
                ts_fail(__LINE__, "the error does not say why: '%s'", tp->error);
            break;
        }
        CHECK(st == RDT_SUCCESS);
        memset(buf, 0xee, len); /* copied at the post: the buffer is free again */
        if (e == 5) { /* one outstanding at a time */
            ts_prep(&extra, buf, 8, -1, 1);
            CHECK(tp->ops->ishare(tp, &extra.x, c.views, c.lens) == RDT_ERR_INVALID_ARG);
        }
        t0 = ts_now();
        CHECK(ts_wait1(tp, &c.t, 20) == 0);
        if (e == last - 1 && job->mode == SH_MODE_MISMATCH) {
            /* ranks 0 and 1 see each other's tag; rank 2 may hear of it first */
            CHECK(c.t.st == RDT_ERR_MISMATCH || (rank == 2 && c.t.st == RDT_ERR_PEER_FAILED));
            if (!strstr(tp->error, "one-shot exchange #") || !strstr(tp->error, "with tag"))
                ts_fail(__LINE__, "the mismatch is not explained: '%s'", tp->error);
            break;
        }
        if (e == last - 1 && job->mode == SH_MODE_KILL) {
            CHECK(c.t.st == RDT_ERR_PEER_FAILED);
            if (!strstr(tp->error, "rank 2 (host box)") || !strstr(tp->error, "died"))
                ts_fail(__LINE__, "the error does not name the dead rank: '%s'", tp->error);
            if (ts_now() - t0 > 5)
                ts_fail(__LINE__, "the death took %.2f s to show", ts_now() - t0);
            break;
        }
        CHECK(c.t.st == RDT_SUCCESS);
        if (c.bad)
            ts_fail(__LINE__, "exchange %" PRIu64 ": %d contributions seen wrong", e, c.bad);
    }
    if (job->mode == SH_MODE_RUN) { /* longer than the buffer: refused, nothing posted */
        ts_prep(&extra, buf, c.cap + 1, -1, 1);
        CHECK(tp->ops->ishare(tp, &extra.x, c.views, c.lens) == RDT_ERR_INVALID_ARG);
    }
    tp->ops->close(tp);
    free(buf);
    free(c.views);
    free(c.lens);
    return 0;
}

static void test_one_shot_exchanges_deliver_every_contribution_exactly(void **state)
{
    (void)state;
    ts_run(2, share_rank, SH_MODE_RUN, 0, NULL);
    ts_run(4, share_rank, SH_MODE_RUN, 0, NULL);
}

static void test_one_shot_exchanges_with_different_tags_fail_with_mismatch(void **state)
{
    (void)state;
    ts_run(3, share_rank, SH_MODE_MISMATCH, 0, NULL);
}

static void test_a_rank_killed_before_its_contribution_is_named_by_the_others(void **state)
{
    static const int want[3] = {0, 0, 128 + SIGKILL};
    (void)state;
    ts_run(3, share_rank, SH_MODE_KILL, 0, want);
}

/* A receiver killed while it copies 64 MiB out of the sender: the sender fails, naming it. */
static int kill_reader_rank(int rank, int nranks, void *arg)
{
    rdt_transport_t *tp = ts_open(arg, rank, nranks);
    unsigned char *big = malloc(TS_BIG);
    ts_xfer_t a;

    CHECK(big);
    memset(big, 7, TS_BIG);
    ts_prep(&a, big, TS_BIG, 1 - rank, 5);
    if (rank == 1) {
        CHECK(tp->ops->irecv(tp, &a.x) == RDT_SUCCESS);
        /* die in the middle: from a second process, while this one copies */
        if (fork() == 0) {
            ts_sleep_ms(5);
            kill(getppid(), SIGKILL);
            _exit(0);
        }
        for (;;)
            tp->ops->progress(tp, 100);
    }
    CHECK(tp->ops->isend(tp, &a.x) == RDT_SUCCESS);
    CHECK(ts_wait1(tp, &a, 10) == 0);
    /* it may have finished the copy before dying: then the send succeeded */
    CHECK(a.st == RDT_ERR_PEER_FAILED || a.st == RDT_SUCCESS);
    if (a.st != RDT_SUCCESS && !strstr(tp->error, "rank 1 (host box)"))
        ts_fail(__LINE__, "error does not name the dead peer: '%s'", tp->error);
    tp->ops->close(tp);
    free(big);
    return 0;
}

static void test_a_receiver_killed_while_copying_fails_the_sender(void **state)
{
    static const int want[2] = {0, 128 + SIGKILL};
    (void)state;
    ts_run(2, kill_reader_rank, 0, 0, want);
}

/* ------------------------------------------------------------------------------------------ */
/* In-process: two ranks in this process; abort and wakeup from another thread                 */
/* ------------------------------------------------------------------------------------------ */

static void ts_open_pair(rdt_transport_t **tp)
{
    unsigned char addrs[2 * RDT_ADDR_MAX];
    char hosts[2 * RDT_HOST_MAX];
    int r;

    memset(addrs, 0, sizeof(addrs));
    memset(hosts, 0, sizeof(hosts));
    for (r = 0; r < 2; r++) {
        rdt_transport_params_t params;
        size_t alen = RDT_ADDR_MAX;
        memset(&params, 0, sizeof(params));
        params.rank = r;
        params.nranks = 2;
        params.comm_id = ts_comm_id;
        memcpy(params.token, ts_token, RDT_TOKEN_LEN);
        params.host = "box";
        assert_int_equal(rdt_shm_ops.open(&params, &tp[r]), RDT_SUCCESS);
        assert_int_equal(tp[r]->ops->addr_get(tp[r], addrs + r * RDT_ADDR_MAX, &alen),
                         RDT_SUCCESS);
        strcpy(hosts + r * RDT_HOST_MAX, "box");
    }
    for (r = 0; r < 2; r++)
        assert_int_equal(tp[r]->ops->addrs_set(tp[r], addrs, hosts), RDT_SUCCESS);
}

typedef struct ts_later {
    rdt_transport_t *tp;
    int ms;
    int abort;
} ts_later_t;

static void *ts_later_fn(void *arg)
{
    ts_later_t *l = arg;
    ts_sleep_ms(l->ms);
    if (l->abort)
        l->tp->ops->abort(l->tp);
    else
        l->tp->ops->wakeup(l->tp);
    return NULL;
}

static void test_abort_from_another_thread_unblocks_a_waiting_progress(void **state)
{
    int fds = ts_nfds(), shm = ts_devshm_entries();
    rdt_transport_t *tp[2];
    ts_later_t later;
    unsigned long th;
    ts_xfer_t s, r, s2, peer_r;
    uint64_t sv = 1, rv = 0, pv = 0;
    double t0;
    rdt_status_t st = RDT_SUCCESS;

    (void)state;
    ts_open_pair(tp);
    /* rank 1 waits for a message rank 0 never sends, and sends one rank 0 never receives */
    ts_prep(&r, &rv, 8, 0, 1);
    ts_prep(&s, &sv, 8, 0, 2);
    assert_int_equal(tp[1]->ops->irecv(tp[1], &r.x), RDT_SUCCESS);
    assert_int_equal(tp[1]->ops->isend(tp[1], &s.x), RDT_SUCCESS);
    assert_int_equal(tp[1]->ops->progress(tp[1], 0), RDT_SUCCESS);
    assert_int_equal(s.done, 1); /* an eager send completes once it is in the ring */
    ts_prep(&s, &sv, 8, 0, 3);
    assert_int_equal(tp[1]->ops->isend(tp[1], &s.x), RDT_SUCCESS);

    later.tp = tp[1];
    later.ms = 100;
    later.abort = 0;
    assert_int_equal(pthread_create(&th, NULL, ts_later_fn, &later), 0);
    t0 = ts_now();
    assert_int_equal(tp[1]->ops->progress(tp[1], 10000), RDT_SUCCESS);
    assert_true(ts_now() - t0 < 5);
    pthread_join(th, NULL);
    assert_int_equal(r.done, 0);

    later.abort = 1;
    assert_int_equal(pthread_create(&th, NULL, ts_later_fn, &later), 0);
    t0 = ts_now();
    while (!r.done && ts_now() - t0 < 5)
        st = tp[1]->ops->progress(tp[1], 10000);
    pthread_join(th, NULL);
    assert_true(ts_now() - t0 < 5);
    assert_int_equal(st, RDT_ERR_ABORTED);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.st, RDT_ERR_ABORTED);
    assert_int_equal(s.done, 1); /* completed by progress or by the abort */

    /* later posts fail at once; abort again changes nothing */
    ts_prep(&s2, &sv, 8, 0, 4);
    assert_int_equal(tp[1]->ops->isend(tp[1], &s2.x), RDT_ERR_ABORTED);
    tp[1]->ops->abort(tp[1]);
    assert_int_equal(tp[1]->ops->progress(tp[1], 0), RDT_ERR_ABORTED);

    /* the peer sees the abort: its receive fails naming rank 1 */
    ts_prep(&peer_r, &pv, 8, 1, 7);
    assert_int_equal(tp[0]->ops->irecv(tp[0], &peer_r.x), RDT_SUCCESS);
    t0 = ts_now();
    while (!peer_r.done && ts_now() - t0 < 5)
        tp[0]->ops->progress(tp[0], 100);
    assert_int_equal(peer_r.done, 1);
    /* it first gets what rank 1 sent before aborting (tag 2), not tag 7: a mismatch */
    assert_true(peer_r.st == RDT_ERR_MISMATCH || peer_r.st == RDT_ERR_PEER_FAILED);
    assert_non_null(strstr(tp[0]->error, "rank 1 (host box)"));
    tp[1]->ops->close(tp[1]);
    tp[0]->ops->close(tp[0]);
    assert_int_equal(r.done + s2.done, 1);
    assert_int_equal(ts_nfds(), fds);
    assert_int_equal(ts_devshm_entries(), shm);
}

static void test_abort_from_the_driving_thread_completes_transfers_before_returning(void **state)
{
    rdt_transport_t *tp[2];
    ts_xfer_t r, s;
    uint64_t rv, sv = 5;
    static unsigned char big[1 << 20];

    (void)state;
    ts_open_pair(tp);
    ts_prep(&r, &rv, 8, 0, 1);
    ts_prep(&s, big, sizeof(big), 0, 2); /* single copy: waits for rank 0 to read it */
    assert_int_equal(tp[1]->ops->irecv(tp[1], &r.x), RDT_SUCCESS);
    assert_int_equal(tp[1]->ops->isend(tp[1], &s.x), RDT_SUCCESS);
    assert_int_equal(tp[1]->ops->progress(tp[1], 0), RDT_SUCCESS);
    assert_int_equal(r.done + s.done, 0);
    tp[1]->ops->abort(tp[1]);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.st, RDT_ERR_ABORTED);
    assert_int_equal(s.done, 1);
    assert_int_equal(s.st, RDT_ERR_ABORTED);
    tp[1]->ops->close(tp[1]);
    assert_int_equal(r.done + s.done, 2);

    /* close alone completes what is posted, on the other rank too */
    ts_prep(&r, &rv, 8, 1, 1);
    assert_int_equal(tp[0]->ops->irecv(tp[0], &r.x), RDT_SUCCESS);
    tp[0]->ops->close(tp[0]);
    assert_int_equal(r.done, 1);
    assert_true(r.st == RDT_ERR_ABORTED || r.st == RDT_ERR_PEER_FAILED);
    (void)sv;
}

static void test_progress_with_nothing_to_do_returns_without_waiting_and_invalid_posts_fail(
    void **state)
{
    rdt_transport_t *tp[2];
    ts_xfer_t x;
    uint64_t v = 0;
    double t0;
    int i;

    (void)state;
    ts_open_pair(tp);
    t0 = ts_now();
    for (i = 0; i < 100000; i++)
        assert_int_equal(tp[0]->ops->progress(tp[0], 0), RDT_SUCCESS);
    assert_true(ts_now() - t0 < 5);
    ts_prep(&x, &v, 8, 0, 1); /* to itself */
    assert_int_equal(tp[0]->ops->isend(tp[0], &x.x), RDT_ERR_INVALID_ARG);
    ts_prep(&x, &v, 8, 2, 1); /* out of range */
    assert_int_equal(tp[0]->ops->irecv(tp[0], &x.x), RDT_ERR_INVALID_ARG);
    assert_non_null(strstr(tp[0]->error, "peer 2 of 2"));
    ts_prep(&x, NULL, 8, 1, 1); /* no buffer */
    assert_int_equal(tp[0]->ops->isend(tp[0], &x.x), RDT_ERR_INVALID_ARG);
    assert_int_equal(x.done, 0);
    tp[0]->ops->close(tp[0]);
    tp[1]->ops->close(tp[1]);
}

/* ------------------------------------------------------------------------------------------ */
/* Public API: auto across two fake hosts, shm refusing another host                             */
/* ------------------------------------------------------------------------------------------ */

/* Pieces of shm segments mapped by this process. */
static int ts_shm_mappings(void)
{
    return rdt_test_maps_count("/memfd:rdt-shm");
}

typedef struct api_job {
    const char *transport;
    int expect_fail;
} api_job_t;

static int32_t api_input(int r, size_t i)
{
    return (int32_t)((r * 7919 + (int)(i % 100003) * 31) % 2001) - 1000;
}

static int api_rank(int rank, int nranks, void *arg)
{
    const api_job_t *job = arg;
    static const size_t counts[] = {2, 1023, (1u << 18) + 5, 4u << 20};
    rdt_comm_t *comm = NULL;
    rdt_status_t st;
    size_t k, i;
    int r;

    g_rank = rank;
    setenv("RDT_HOSTNAME", rank < 2 ? "hosta" : "hostb", 1);
    setenv("RDT_TRANSPORT", job->transport, 1);
    setenv("RDT_TIMEOUT", "60", 1);
    st = rdt_comm_create_from_env(&comm);
    if (job->expect_fail) {
        const char *e = rdt_comm_last_error(NULL);
        CHECK(st != RDT_SUCCESS && comm == NULL);
        /* ranks of host a name a rank of host b, and the other way round */
        if (!strstr(e, rank < 2 ? "(host hostb) is on another host" :
                                   "(host hosta) is on another host"))
            ts_fail(__LINE__, "error does not name the remote rank: '%s'", e);
        return 0;
    }
    if (st != RDT_SUCCESS)
        ts_fail(__LINE__, "create: %s", rdt_comm_last_error(NULL));
    for (k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
        size_t n = counts[k];
        int32_t *in = malloc(n * 4), *out = malloc(n * 4), *all = malloc(n * 4 * (size_t)nranks);
        int32_t *gin = malloc(n * 4);
        CHECK(in && out && all && gin);
        for (i = 0; i < n; i++)
            in[i] = api_input(rank, i);
        st = rdt_allreduce(comm, in, out, n, RDT_INT32, RDT_SUM);
        if (st != RDT_SUCCESS)
            ts_fail(__LINE__, "allreduce of %zu: %s", n, rdt_comm_last_error(comm));
        for (i = 0; i < n; i++) {
            int32_t want = 0;
            for (r = 0; r < nranks; r++)
                want += api_input(r, i);
            if (out[i] != want)
                ts_fail(__LINE__, "allreduce of %zu: element %zu is %d, expected %d", n, i,
                        out[i], want);
        }
        /* broadcast from rank 3 (host b) */
        for (i = 0; i < n; i++)
            out[i] = rank == 3 ? api_input(3, i) ^ 0x55 : -1;
        CHECK(rdt_broadcast(comm, out, out, n, RDT_INT32, 3) == RDT_SUCCESS);
        for (i = 0; i < n; i++)
            if (out[i] != (api_input(3, i) ^ 0x55))
                ts_fail(__LINE__, "broadcast of %zu: element %zu wrong", n, i);
        /* allgather */
        for (i = 0; i < n; i++)
            gin[i] = api_input(rank, i) + 3;
        CHECK(rdt_allgather(comm, gin, all, n, RDT_INT32) == RDT_SUCCESS);
        for (r = 0; r < nranks; r++)
            for (i = 0; i < n; i++)
                if (all[(size_t)r * n + i] != api_input(r, i) + 3)
                    ts_fail(__LINE__, "allgather of %zu: rank %d element %zu wrong", n, r, i);
        free(in);
        free(out);
        free(all);
        free(gin);
    }
    /* one peer on this host: our header, our ring for it, its header and its ring for us (no
     * share areas: the communicator spans two hosts) */
    if (ts_shm_mappings() != 4)
        ts_fail(__LINE__, "%d pieces of shm segments mapped, expected 4 (one local peer)",
                ts_shm_mappings());
    /* split by host: each half is on one host, so its small collectives are one-shot
     * exchanges, through the share areas (ours and the peer's: 2 more pieces) */
    {
        rdt_comm_t *sub;
        int64_t lo = rank / 2 * 2, v, got;
        CHECK(rdt_comm_split(comm, rank / 2, rank, &sub) == RDT_SUCCESS);
        if (ts_shm_mappings() != 4 + 6)
            ts_fail(__LINE__, "%d pieces of shm segments mapped, expected 4 + 6 (the split's "
                    "header, ring and share area, and the peer's)", ts_shm_mappings());
        for (k = 0; k < 100; k++) {
            v = 1000 * rank + (int64_t)k;
            CHECK(rdt_allreduce(sub, &v, &got, 1, RDT_INT64, RDT_SUM) == RDT_SUCCESS);
            if (got != 1000 * (2 * lo + 1) + 2 * (int64_t)k)
                ts_fail(__LINE__, "sum on the split: %" PRId64, got);
            CHECK(rdt_allreduce(sub, &v, &got, 1, RDT_INT64, RDT_MAX) == RDT_SUCCESS);
            if (got != 1000 * (lo + 1) + (int64_t)k)
                ts_fail(__LINE__, "max on the split: %" PRId64, got);
        }
        rdt_comm_destroy(sub);
    }
    rdt_comm_destroy(comm);
    CHECK(ts_shm_mappings() == 0);
    return 0;
}

static void test_auto_across_two_fake_hosts_uses_shm_within_and_tcp_between_exactly(
    void **state)
{
    api_job_t job = {"auto", 0};
    int statuses[4], i, shm = ts_devshm_entries();
    (void)state;
    rdt_spawn_local(4, api_rank, &job, 120, statuses);
    for (i = 0; i < 4; i++)
        assert_int_equal(statuses[i], 0);
    assert_int_equal(ts_devshm_entries(), shm);
}

static void test_shm_across_two_fake_hosts_is_an_error_naming_a_remote_rank(void **state)
{
    api_job_t job = {"shm", 1};
    int statuses[4], i;
    (void)state;
    rdt_spawn_local(4, api_rank, &job, 120, statuses);
    for (i = 0; i < 4; i++)
        assert_int_equal(statuses[i], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pingpong_of_0_to_16mib_is_bit_exact_with_single_copy_for_large),
        cmocka_unit_test(test_pingpong_of_0_to_16mib_is_bit_exact_through_the_ring_only),
        cmocka_unit_test(
            test_many_messages_in_flight_between_4_ranks_arrive_in_order_with_their_tags),
        cmocka_unit_test(test_many_messages_in_flight_between_3_ranks_through_the_ring_only),
        cmocka_unit_test(
            test_length_mismatch_fails_receiver_with_mismatch_and_sender_with_peer_failed),
        cmocka_unit_test(
            test_tag_mismatch_fails_receiver_with_mismatch_and_sender_with_peer_failed),
        cmocka_unit_test(test_a_peer_killed_mid_transfer_fails_the_others_transfers_naming_it),
        cmocka_unit_test(test_a_receiver_killed_while_copying_fails_the_sender),
        cmocka_unit_test(test_one_shot_exchanges_deliver_every_contribution_exactly),
        cmocka_unit_test(test_one_shot_exchanges_with_different_tags_fail_with_mismatch),
        cmocka_unit_test(test_a_rank_killed_before_its_contribution_is_named_by_the_others),
        cmocka_unit_test(test_abort_from_another_thread_unblocks_a_waiting_progress),
        cmocka_unit_test(test_abort_from_the_driving_thread_completes_transfers_before_returning),
        cmocka_unit_test(
            test_progress_with_nothing_to_do_returns_without_waiting_and_invalid_posts_fail),
        cmocka_unit_test(test_auto_across_two_fake_hosts_uses_shm_within_and_tcp_between_exactly),
        cmocka_unit_test(test_shm_across_two_fake_hosts_is_an_error_naming_a_remote_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
