/* rdt-test-labels: fault */
/*
 * test_tcp.c - the TCP transport between real processes over 127.0.0.1.
 *
 * Each test forks 2-4 ranks with rdt_spawn_local; the ranks open a transport, exchange addresses
 * through files in a mkdtemp folder, and check what they see. A child reports a failed check on
 * stderr and through its exit status; the parent asserts on the statuses. The abort and connect
 * timeout tests run in the test process itself.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
/* Threads through pthread_create, which ThreadSanitizer follows (it does not see C11's
 * thrd_create); declared here because <pthread.h> includes <sched.h>, which engine/sched.h on
 * the include path shadows. pthread_t is an unsigned long in glibc. */
extern int pthread_create(unsigned long *th, const void *attr, void *(*fn)(void *), void *arg);
extern int pthread_join(unsigned long th, void **ret);
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "spawn.h"
#include "testutil.h"
#include "transport.h"

#define TT_SPAWN_TIMEOUT_S 40

/* The wire format of the handshake, as tcp.c defines it, for the impostor connections. */
#define TT_HS_LEN 40
#define TT_HS_MAGIC 0x48544452u
#define TT_HS_VERSION 1u

static const unsigned char tt_token[RDT_TOKEN_LEN] = {1, 2, 3, 4, 5, 6, 7, 8,
                                                      9, 10, 11, 12, 13, 14, 15, 16};
static const uint64_t tt_comm_id = 0x5eed0123456789abULL;

typedef struct tt_job {
    char dir[64];
    int mode;
    size_t sockbuf;
} tt_job_t;

/* A transfer with its outcome. */
typedef struct tt_xfer {
    rdt_xfer_t x;
    int done;
    rdt_status_t st;
    double t_done;
} tt_xfer_t;

static int g_rank = -1;

#define CHECK(cond)                                                                              \
    do {                                                                                         \
        if (!(cond))                                                                             \
            tt_fail(__LINE__, "%s", #cond);                                                      \
    } while (0)

static void tt_fail(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void tt_fail(int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "test_tcp: rank %d: line %d: check failed: ", g_rank, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    _exit(2);
}

static double tt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double tt_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void tt_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void tt_cb(rdt_xfer_t *x, rdt_status_t st)
{
    tt_xfer_t *t = x->arg;
    t->done++;
    t->st = st;
    t->t_done = tt_now();
}

static void tt_prep(tt_xfer_t *t, void *buf, size_t len, int peer, uint64_t tag)
{
    memset(t, 0, sizeof(*t));
    t->x.buf = buf;
    t->x.len = len;
    t->x.peer = peer;
    t->x.tag = tag;
    t->x.cb = tt_cb;
    t->x.arg = t;
    t->st = RDT_IN_PROGRESS;
}

static void tt_fill(void *buf, size_t len, uint64_t seed)
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

static int tt_check(const void *buf, size_t len, uint64_t seed)
{
    unsigned char *want = malloc(len ? len : 1);
    int ok;
    tt_fill(want, len, seed);
    ok = len == 0 || memcmp(buf, want, len) == 0;
    free(want);
    return ok;
}

/* Progress until every transfer in @p t[0..n) has completed, at most @p timeout_s seconds. */
static int tt_wait(rdt_transport_t *tp, tt_xfer_t **t, int n, double timeout_s)
{
    double end = tt_now() + timeout_s;
    for (;;) {
        int i, left = 0;
        for (i = 0; i < n; i++)
            left += t[i] && !t[i]->done;
        if (!left)
            return 0;
        if (tt_now() > end)
            return -1;
        tp->ops->progress(tp, 100);
    }
}

static int tt_wait1(rdt_transport_t *tp, tt_xfer_t *t, double timeout_s)
{
    return tt_wait(tp, &t, 1, timeout_s);
}

static void tt_addr_path(char *path, size_t n, const char *dir, int rank)
{
    snprintf(path, n, "%s/addr.%d", dir, rank);
}

/* Read rank @p r's packed address, waiting for the file to appear. */
static void tt_addr_read(const char *dir, int r, unsigned char *addr)
{
    char path[128];
    double end = tt_now() + 15;
    tt_addr_path(path, sizeof(path), dir, r);
    for (;;) {
        FILE *f = fopen(path, "rb");
        if (f) {
            size_t got = fread(addr, 1, RDT_ADDR_MAX, f);
            fclose(f);
            CHECK(got == RDT_ADDR_MAX);
            return;
        }
        CHECK(tt_now() < end);
        tt_sleep_ms(2);
    }
}

/* Open this rank's transport, publish its address, learn everyone's. */
static rdt_transport_t *tt_open(const tt_job_t *job, int rank, int nranks)
{
    rdt_transport_params_t params;
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
    params.comm_id = tt_comm_id;
    memcpy(params.token, tt_token, RDT_TOKEN_LEN);
    params.bind_ip = "127.0.0.1";
    params.connect_timeout_ms = 10000;
    params.sockbuf = job->sockbuf;
    params.host = host;
    CHECK(rdt_tcp_ops.open(&params, &tp) == RDT_SUCCESS);
    memset(addr, 0, sizeof(addr));
    CHECK(tp->ops->addr_get(tp, addr, &alen) == RDT_SUCCESS);
    CHECK(alen > 0 && alen <= RDT_ADDR_MAX);

    tt_addr_path(path, sizeof(path), job->dir, rank);
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
        tt_addr_read(job->dir, i, addrs + (size_t)i * RDT_ADDR_MAX);
        snprintf(hosts + (size_t)i * RDT_HOST_MAX, RDT_HOST_MAX, "host%d", i);
    }
    CHECK(tp->ops->addrs_set(tp, addrs, hosts) == RDT_SUCCESS);
    free(addrs);
    free(hosts);
    return tp;
}

/* mkdtemp folder for one job; removed by tt_job_fini. */
static void tt_job_init(tt_job_t *job, int mode)
{
    memset(job, 0, sizeof(*job));
    snprintf(job->dir, sizeof(job->dir), "/tmp/rdt-test-tcp-XXXXXX");
    assert_non_null(mkdtemp(job->dir));
    job->mode = mode;
}

static void tt_job_fini(tt_job_t *job, int nranks)
{
    char path[128];
    int i;
    for (i = 0; i < nranks; i++) {
        tt_addr_path(path, sizeof(path), job->dir, i);
        unlink(path);
    }
    rmdir(job->dir);
}

static void tt_run_sockbuf(int nranks, rdt_spawn_fn_t fn, int mode, const int *want_status,
                           size_t sockbuf)
{
    int statuses[8], i;
    tt_job_t job;

    tt_job_init(&job, mode);
    job.sockbuf = sockbuf;
    rdt_spawn_local(nranks, fn, &job, TT_SPAWN_TIMEOUT_S, statuses);
    tt_job_fini(&job, nranks);
    for (i = 0; i < nranks; i++) {
        int want = want_status ? want_status[i] : 0;
        if (statuses[i] != want)
            fprintf(stderr, "rank %d exited with %d, expected %d\n", i, statuses[i], want);
        assert_int_equal(statuses[i], want);
    }
}

static void tt_run(int nranks, rdt_spawn_fn_t fn, int mode, const int *want_status)
{
    tt_run_sockbuf(nranks, fn, mode, want_status, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Ping-pong                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static const size_t tt_pp_sizes[] = {0, 1, 8, 4097, (8u << 20) + 3};

static int pingpong_rank(int rank, int nranks, void *arg)
{
    rdt_transport_t *tp = tt_open(arg, rank, nranks);
    int peer = 1 - rank;
    size_t k;
    int rep;

    for (k = 0; k < sizeof(tt_pp_sizes) / sizeof(tt_pp_sizes[0]); k++) {
        size_t len = tt_pp_sizes[k];
        unsigned char *sbuf = malloc(len + 1), *rbuf = malloc(len + 1);
        int reps = len <= 8 ? 50 : 3;
        CHECK(sbuf && rbuf);
        for (rep = 0; rep < reps; rep++) {
            uint64_t ping_seed = len * 1000 + (uint64_t)rep, pong_seed = ping_seed ^ 0xfeed;
            tt_xfer_t s, r;
            memset(rbuf, 0xee, len + 1);
            if (rank == 0) {
                tt_fill(sbuf, len, ping_seed);
                tt_prep(&r, rbuf, len, peer, 2 * k + 1);
                tt_prep(&s, sbuf, len, peer, 2 * k);
                CHECK(tp->ops->irecv(tp, &r.x) == RDT_SUCCESS);
                CHECK(tp->ops->isend(tp, &s.x) == RDT_SUCCESS);
                CHECK(tt_wait(tp, (tt_xfer_t *[]){&s, &r}, 2, 20) == 0);
                CHECK(s.st == RDT_SUCCESS && r.st == RDT_SUCCESS && s.done == 1 && r.done == 1);
                CHECK(tt_check(rbuf, len, pong_seed));
            } else {
                tt_prep(&r, rbuf, len, peer, 2 * k);
                CHECK(tp->ops->irecv(tp, &r.x) == RDT_SUCCESS);
                CHECK(tt_wait1(tp, &r, 20) == 0 && r.st == RDT_SUCCESS);
                CHECK(tt_check(rbuf, len, ping_seed));
                tt_fill(sbuf, len, pong_seed);
                tt_prep(&s, sbuf, len, peer, 2 * k + 1);
                CHECK(tp->ops->isend(tp, &s.x) == RDT_SUCCESS);
                CHECK(tt_wait1(tp, &s, 20) == 0 && s.st == RDT_SUCCESS);
            }
            CHECK(rbuf[len] == 0xee); /* nothing written past the message */
        }
        free(sbuf);
        free(rbuf);
    }
    tp->ops->close(tp);
    return 0;
}

static void test_pingpong_of_0_1_8_4097_and_8mib_plus_3_bytes_is_bit_exact(void **state)
{
    (void)state;
    tt_run(2, pingpong_rank, 0, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Many messages in flight                                                                      */
/* ------------------------------------------------------------------------------------------ */

#define TT_MANY 64

typedef struct many_ctx {
    rdt_transport_t *tp;
    int rank, nranks;
    unsigned char *rbuf[8][TT_MANY];
    tt_xfer_t rx[8][TT_MANY];
    int repost_failed;
} many_ctx_t;

static many_ctx_t g_many;

/* Size of message i from src to dst: mostly small, some around the 64 KiB receive buffer, a few
 * large; every fourth of the first ones empty. */
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
    case 2:
        return 60000 + (size_t)(r >> 8) % 10000;
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

/* A completed receive posts the one TT_MANY/2 later: posts from inside progress. */
static void many_recv_cb(rdt_xfer_t *x, rdt_status_t st)
{
    tt_xfer_t *t = x->arg;
    int peer = x->peer, i = (int)(t - g_many.rx[peer]);

    tt_cb(x, st);
    if (st == RDT_SUCCESS && i + TT_MANY / 2 < TT_MANY)
        many_post_recv(peer, i + TT_MANY / 2);
}

static void many_post_recv(int peer, int i)
{
    many_ctx_t *c = &g_many;
    size_t len = many_len(peer, c->rank, i);
    c->rbuf[peer][i] = malloc(len + 1);
    tt_prep(&c->rx[peer][i], c->rbuf[peer][i], len, peer, many_tag(peer, c->rank, i));
    c->rx[peer][i].x.cb = many_recv_cb;
    if (c->tp->ops->irecv(c->tp, &c->rx[peer][i].x) != RDT_SUCCESS)
        c->repost_failed = 1;
}

static int many_rank(int rank, int nranks, void *arg)
{
    many_ctx_t *c = &g_many;
    rdt_transport_t *tp = tt_open(arg, rank, nranks);
    static tt_xfer_t tx[8][TT_MANY];
    unsigned char *sbuf[8][TT_MANY];
    tt_xfer_t *all[2 * 8 * TT_MANY];
    int q, i, n = 0;

    c->tp = tp;
    c->rank = rank;
    c->nranks = nranks;
    for (q = 0; q < nranks; q++) {
        if (q == rank)
            continue;
        for (i = 0; i < TT_MANY; i++) {
            size_t len = many_len(rank, q, i);
            sbuf[q][i] = malloc(len + 1);
            CHECK(sbuf[q][i] != NULL);
            tt_fill(sbuf[q][i], len, many_seed(rank, q, i));
            tt_prep(&tx[q][i], sbuf[q][i], len, q, many_tag(rank, q, i));
            CHECK(tp->ops->isend(tp, &tx[q][i].x) == RDT_SUCCESS);
            all[n++] = &tx[q][i];
        }
    }
    if (rank == nranks - 1) {
        /* Post no receive for a while: the others' messages wait in the kernel (backpressure),
         * and waiting must sleep, not spin. */
        double t0 = tt_now(), c0 = tt_cpu(), used;
        while (tt_now() - t0 < 0.4)
            tp->ops->progress(tp, 50);
        used = tt_cpu() - c0;
        if (used > 0.2)
            tt_fail(__LINE__, "%.3f s of cpu in 0.4 s of waiting: progress spins", used);
    }
    for (q = 0; q < nranks; q++) {
        if (q == rank)
            continue;
        for (i = 0; i < TT_MANY / 2; i++)
            many_post_recv(q, i);
        for (i = 0; i < TT_MANY; i++)
            all[n++] = &c->rx[q][i];
    }
    CHECK(!c->repost_failed);
    CHECK(tt_wait(tp, all, n, 20) == 0);
    CHECK(!c->repost_failed);
    for (i = 0; i < n; i++)
        CHECK(all[i]->done == 1 && all[i]->st == RDT_SUCCESS);
    for (q = 0; q < nranks; q++) {
        if (q == rank)
            continue;
        for (i = 0; i < TT_MANY; i++) {
            size_t len = many_len(q, rank, i);
            if (!tt_check(c->rbuf[q][i], len, many_seed(q, rank, i)))
                tt_fail(__LINE__, "message %d from rank %d (%zu bytes) corrupt", i, q, len);
            free(c->rbuf[q][i]);
            free(sbuf[q][i]);
        }
    }
    tp->ops->close(tp);
    return 0;
}

static void test_many_messages_in_flight_both_ways_arrive_in_order_with_their_tags(void **state)
{
    (void)state;
    tt_run(4, many_rank, 0, NULL);
}

static void test_many_messages_in_flight_with_small_fixed_socket_buffers(void **state)
{
    (void)state;
    tt_run_sockbuf(3, many_rank, 0, NULL, 32 * 1024);
}

/* ------------------------------------------------------------------------------------------ */
/* Mismatch                                                                                     */
/* ------------------------------------------------------------------------------------------ */

enum { MISMATCH_LENGTH, MISMATCH_TAG };

static int mismatch_rank(int rank, int nranks, void *arg)
{
    const tt_job_t *job = arg;
    rdt_transport_t *tp = tt_open(job, rank, nranks);
    unsigned char *buf = calloc(1, 8192);
    char want[256];

    CHECK(buf != NULL);
    if (rank == 0) {
        tt_xfer_t s, r;
        tt_prep(&s, buf, 4096, 1, 0x77);
        tt_prep(&r, buf + 4096, 8, 1, 0x78);
        CHECK(tp->ops->isend(tp, &s.x) == RDT_SUCCESS);
        CHECK(tp->ops->irecv(tp, &r.x) == RDT_SUCCESS);
        CHECK(tt_wait(tp, (tt_xfer_t *[]){&s, &r}, 2, 10) == 0);
        CHECK(s.st == RDT_SUCCESS || s.st == RDT_ERR_PEER_FAILED);
        CHECK(r.st == RDT_ERR_PEER_FAILED);
        if (!strstr(tp->error, "rank 1 (host host1)"))
            tt_fail(__LINE__, "error does not name the peer: '%s'", tp->error);
    } else {
        tt_xfer_t r, r2, r3;
        if (job->mode == MISMATCH_LENGTH)
            tt_prep(&r, buf, 8192, 0, 0x77);
        else
            tt_prep(&r, buf, 4096, 0, 0x79);
        tt_prep(&r2, buf, 8, 0, 0x80);
        CHECK(tp->ops->irecv(tp, &r.x) == RDT_SUCCESS);
        CHECK(tp->ops->irecv(tp, &r2.x) == RDT_SUCCESS);
        CHECK(tt_wait(tp, (tt_xfer_t *[]){&r, &r2}, 2, 10) == 0);
        CHECK(r.st == RDT_ERR_MISMATCH);
        CHECK(r2.st == RDT_ERR_PEER_FAILED);
        snprintf(want, sizeof(want),
                 "rank 0 (host host0) sent 4096 bytes with tag 0x77, rank 1 expected %s",
                 job->mode == MISMATCH_LENGTH ? "8192 bytes with tag 0x77"
                                              : "4096 bytes with tag 0x79");
        if (!strstr(tp->error, want))
            tt_fail(__LINE__, "error is '%s', expected it to contain '%s'", tp->error, want);
        /* the stream is unusable: later posts to that peer fail at once */
        tt_prep(&r3, buf, 8, 0, 0x81);
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
    tt_run(2, mismatch_rank, MISMATCH_LENGTH, NULL);
}

static void test_tag_mismatch_fails_receiver_with_mismatch_and_sender_with_peer_failed(
    void **state)
{
    (void)state;
    tt_run(2, mismatch_rank, MISMATCH_TAG, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* A peer killed mid-transfer                                                                   */
/* ------------------------------------------------------------------------------------------ */

enum { KILL_RECEIVER, KILL_SENDER };

#define TT_BIG ((size_t)128 << 20)

static int kill_rank(int rank, int nranks, void *arg)
{
    const tt_job_t *job = arg;
    rdt_transport_t *tp = tt_open(job, rank, nranks);
    int victim = job->mode == KILL_RECEIVER ? 1 : 0;
    unsigned char *small = calloc(1, 1 << 20), *big = malloc(TT_BIG);
    tt_xfer_t a, b, r;
    double t0;

    CHECK(small && big);
    memset(big, rank + 1, TT_BIG);
    if (rank == 0) { /* sends 1 MiB, then 128 MiB; expects 8 bytes back */
        tt_prep(&a, small, 1 << 20, 1, 1);
        tt_prep(&b, big, TT_BIG, 1, 2);
        tt_prep(&r, small, 8, 1, 3);
        CHECK(tp->ops->isend(tp, &a.x) == RDT_SUCCESS);
        CHECK(tp->ops->isend(tp, &b.x) == RDT_SUCCESS);
        CHECK(tp->ops->irecv(tp, &r.x) == RDT_SUCCESS);
    } else {
        tt_prep(&a, small, 1 << 20, 0, 1);
        tt_prep(&b, big, TT_BIG, 0, 2);
        CHECK(tp->ops->irecv(tp, &a.x) == RDT_SUCCESS);
    }
    CHECK(tt_wait1(tp, &a, 10) == 0 && a.st == RDT_SUCCESS);
    if (rank == 1)
        CHECK(tp->ops->irecv(tp, &b.x) == RDT_SUCCESS);
    if (rank == victim) {
        t0 = tt_now();
        while (tt_now() - t0 < 0.005)
            tp->ops->progress(tp, 1);
        CHECK(!b.done); /* 128 MiB cannot have gone through in 5 ms */
        raise(SIGKILL);
    }
    t0 = tt_now();
    CHECK(tt_wait(tp, rank == 0 ? (tt_xfer_t *[]){&b, &r} : (tt_xfer_t *[]){&b, NULL}, 2, 10) == 0);
    CHECK(b.st == RDT_ERR_PEER_FAILED);
    CHECK(rank == 1 || r.st == RDT_ERR_PEER_FAILED);
    if (tt_now() - t0 > 2.5)
        tt_fail(__LINE__, "the failure took %.2f s to show", tt_now() - t0);
    if (!strstr(tp->error, victim == 1 ? "rank 1 (host host1)" : "rank 0 (host host0)"))
        tt_fail(__LINE__, "error does not name the dead peer: '%s'", tp->error);
    free(small);
    free(big);
    tp->ops->close(tp);
    return 0;
}

static void test_receiver_killed_mid_transfer_fails_sender_with_peer_failed(void **state)
{
    static const int want[2] = {0, 128 + SIGKILL};
    (void)state;
    tt_run(2, kill_rank, KILL_RECEIVER, want);
}

static void test_sender_killed_mid_transfer_fails_receiver_with_peer_failed(void **state)
{
    static const int want[2] = {128 + SIGKILL, 0};
    (void)state;
    tt_run(2, kill_rank, KILL_SENDER, want);
}

/* ------------------------------------------------------------------------------------------ */
/* A rank that aborts before its lower peer connects                                            */
/* ------------------------------------------------------------------------------------------ */

static int late_connect_rank(int rank, int nranks, void *arg)
{
    const tt_job_t *job = arg;
    rdt_transport_t *tp = tt_open(job, rank, nranks);
    char path[128];
    uint64_t v = 1, got = 0;

    snprintf(path, sizeof(path), "%s/aborted", job->dir);
    if (rank == 1) {
        FILE *f;
        tp->ops->abort(tp);
        f = fopen(path, "w");
        CHECK(f && fclose(f) == 0);
        tt_sleep_ms(300);
        tp->ops->close(tp);
        unlink(path);
    } else {
        tt_xfer_t s, r;
        double end = tt_now() + 10;
        while (access(path, F_OK) != 0) {
            CHECK(tt_now() < end);
            tt_sleep_ms(1);
        }
        tt_prep(&s, &v, 8, 1, 1);
        tt_prep(&r, &got, 8, 1, 2);
        CHECK(tp->ops->isend(tp, &s.x) == RDT_SUCCESS);
        CHECK(tp->ops->irecv(tp, &r.x) == RDT_SUCCESS);
        /* the connect timeout is 10 s: a refused connection retried until then fails this */
        CHECK(tt_wait(tp, (tt_xfer_t *[]){&s, &r}, 2, 5) == 0);
        CHECK(r.st == RDT_ERR_PEER_FAILED);
        if (!strstr(tp->error, "rank 1 (host host1)"))
            tt_fail(__LINE__, "error does not name the peer: '%s'", tp->error);
        tp->ops->close(tp);
    }
    return 0;
}

static void test_a_peer_that_aborted_before_we_connected_fails_fast_once_it_closes(void **state)
{
    (void)state;
    tt_run(2, late_connect_rank, 0, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Impostors                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void tt_put_u32(unsigned char *b, uint32_t v)
{
    int i;
    for (i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static void tt_put_u64(unsigned char *b, uint64_t v)
{
    int i;
    for (i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static void tt_handshake(unsigned char *h, const unsigned char *token, uint64_t comm_id,
                         uint32_t rank, uint32_t nranks)
{
    tt_put_u32(h, TT_HS_MAGIC);
    tt_put_u32(h + 4, TT_HS_VERSION);
    memcpy(h + 8, token, RDT_TOKEN_LEN);
    tt_put_u64(h + 24, comm_id);
    tt_put_u32(h + 32, rank);
    tt_put_u32(h + 36, nranks);
}

/* A raw connection to the rank whose packed (IPv4) address is @p addr. */
static int tt_raw_connect(const unsigned char *addr)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    CHECK(addr[0] == 4);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    memcpy(&sa.sin_port, addr + 2, 2);
    memcpy(&sa.sin_addr, addr + 4, 4);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    return fd;
}

static void tt_raw_send(int fd, const void *buf, size_t len)
{
    CHECK(send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len);
}

/* 1 if the other side closed @p fd within @p ms, 0 if it is still open. */
static int tt_raw_closed(int fd, int ms)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    char c;
    ssize_t n;
    if (poll(&pfd, 1, ms) == 0)
        return 0;
    n = recv(fd, &c, 1, MSG_DONTWAIT);
    CHECK(n <= 0); /* the acceptor never sends to an unauthenticated socket */
    return n == 0 || errno == ECONNRESET;
}

static void tt_pingpong8(rdt_transport_t *tp, int rank, uint64_t tag)
{
    uint64_t v = 0x1122334455667788ULL + tag, got = 0;
    tt_xfer_t s, r;
    if (rank == 0) {
        tt_prep(&s, &v, 8, 1, tag);
        tt_prep(&r, &got, 8, 1, tag + 1);
        CHECK(tp->ops->irecv(tp, &r.x) == RDT_SUCCESS);
        CHECK(tp->ops->isend(tp, &s.x) == RDT_SUCCESS);
        CHECK(tt_wait(tp, (tt_xfer_t *[]){&s, &r}, 2, 15) == 0);
        CHECK(s.st == RDT_SUCCESS && r.st == RDT_SUCCESS && got == v + 1);
    } else {
        tt_prep(&r, &got, 8, 0, tag);
        CHECK(tp->ops->irecv(tp, &r.x) == RDT_SUCCESS);
        CHECK(tt_wait1(tp, &r, 15) == 0 && r.st == RDT_SUCCESS && got == v);
        got++;
        tt_prep(&s, &got, 8, 0, tag + 1);
        CHECK(tp->ops->isend(tp, &s.x) == RDT_SUCCESS);
        CHECK(tt_wait1(tp, &s, 15) == 0 && s.st == RDT_SUCCESS);
    }
}

/* Rank 0 plays the impostors against rank 1 (which only serves), then talks to it for real. */
static int impostor_rank(int rank, int nranks, void *arg)
{
    const tt_job_t *job = arg;
    rdt_transport_t *tp = tt_open(job, rank, nranks);
    unsigned char addr1[RDT_ADDR_MAX], hs[TT_HS_LEN], bad_token[RDT_TOKEN_LEN];
    const char garbage[TT_HS_LEN] = "GET / HTTP/1.0\r\nHost: x\r\n\r\n";
    int silent, fd;

    if (rank == 1) {
        tt_pingpong8(tp, rank, 10);
        tt_pingpong8(tp, rank, 20);
        tt_pingpong8(tp, rank, 30); /* serves until rank 0 has seen the silent socket dropped */
        tp->ops->close(tp);
        return 0;
    }
    tt_addr_read(job->dir, 1, addr1);

    /* says nothing valid, and then nothing at all: dropped after the handshake timeout */
    silent = tt_raw_connect(addr1);
    tt_raw_send(silent, "RDT", 3);

    /* wrong token, in three pieces: held while incomplete, dropped when complete */
    memcpy(bad_token, tt_token, RDT_TOKEN_LEN);
    bad_token[7] ^= 0x40;
    tt_handshake(hs, bad_token, tt_comm_id, 0, 2);
    fd = tt_raw_connect(addr1);
    tt_raw_send(fd, hs, 5);
    CHECK(!tt_raw_closed(fd, 50));
    tt_raw_send(fd, hs + 5, 20);
    CHECK(!tt_raw_closed(fd, 50));
    tt_raw_send(fd, hs + 25, TT_HS_LEN - 25);
    CHECK(tt_raw_closed(fd, 2000));
    close(fd);

    /* not rdmatrain at all */
    fd = tt_raw_connect(addr1);
    tt_raw_send(fd, garbage, sizeof(garbage));
    CHECK(tt_raw_closed(fd, 2000));
    close(fd);

    /* right token, another communicator */
    tt_handshake(hs, tt_token, tt_comm_id + 1, 0, 2);
    fd = tt_raw_connect(addr1);
    tt_raw_send(fd, hs, TT_HS_LEN);
    CHECK(tt_raw_closed(fd, 2000));
    close(fd);

    /* right token, a rank that never connects to rank 1 (itself), and one out of range */
    tt_handshake(hs, tt_token, tt_comm_id, 1, 2);
    fd = tt_raw_connect(addr1);
    tt_raw_send(fd, hs, TT_HS_LEN);
    CHECK(tt_raw_closed(fd, 2000));
    close(fd);
    tt_handshake(hs, tt_token, tt_comm_id, 7, 2);
    fd = tt_raw_connect(addr1);
    tt_raw_send(fd, hs, TT_HS_LEN);
    CHECK(tt_raw_closed(fd, 2000));
    close(fd);

    /* the real connection works */
    tt_pingpong8(tp, rank, 10);

    /* a second "rank 0" with the right token: already connected, dropped */
    tt_handshake(hs, tt_token, tt_comm_id, 0, 2);
    fd = tt_raw_connect(addr1);
    tt_raw_send(fd, hs, TT_HS_LEN);
    CHECK(tt_raw_closed(fd, 2000));
    close(fd);

    /* and the job still works */
    tt_pingpong8(tp, rank, 20);

    CHECK(tt_raw_closed(silent, 6000));
    close(silent);
    tt_pingpong8(tp, rank, 30);
    tp->ops->close(tp);
    return 0;
}

static void test_impostor_connections_are_dropped_and_the_job_still_works(void **state)
{
    (void)state;
    tt_run(2, impostor_rank, 0, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* In-process: abort, wakeup, connect timeout                                                   */
/* ------------------------------------------------------------------------------------------ */

/* A transport for @p rank of 2 whose peer's address is @p peer_addr (nobody behind it). */
static rdt_transport_t *tt_open_alone(int rank, const unsigned char *peer_addr, int timeout_ms)
{
    rdt_transport_params_t params;
    rdt_transport_t *tp = NULL;
    unsigned char addrs[2 * RDT_ADDR_MAX];
    char hosts[2 * RDT_HOST_MAX];
    size_t alen = RDT_ADDR_MAX;

    memset(&params, 0, sizeof(params));
    params.rank = rank;
    params.nranks = 2;
    params.comm_id = tt_comm_id;
    memcpy(params.token, tt_token, RDT_TOKEN_LEN);
    params.bind_ip = "127.0.0.1";
    params.connect_timeout_ms = timeout_ms;
    params.host = rank ? "host1" : "host0";
    assert_int_equal(rdt_tcp_ops.open(&params, &tp), RDT_SUCCESS);
    memset(addrs, 0, sizeof(addrs));
    assert_int_equal(tp->ops->addr_get(tp, addrs + rank * RDT_ADDR_MAX, &alen), RDT_SUCCESS);
    memcpy(addrs + (1 - rank) * RDT_ADDR_MAX, peer_addr, RDT_ADDR_MAX);
    memset(hosts, 0, sizeof(hosts));
    strcpy(hosts, "host0");
    strcpy(hosts + RDT_HOST_MAX, "host1");
    assert_int_equal(tp->ops->addrs_set(tp, addrs, hosts), RDT_SUCCESS);
    return tp;
}

/* The packed address of a 127.0.0.1 port nobody listens on (bound, then closed). */
static int tt_dead_addr(unsigned char *addr)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    memset(addr, 0, RDT_ADDR_MAX);
    addr[0] = 4;
    memcpy(addr + 2, &sa.sin_port, 2);
    memcpy(addr + 4, &sa.sin_addr, 4);
    return ntohs(sa.sin_port);
}

typedef struct tt_later {
    rdt_transport_t *tp;
    int ms;
    int abort; /* else wakeup */
} tt_later_t;

static void *tt_later_fn(void *arg)
{
    tt_later_t *l = arg;
    tt_sleep_ms(l->ms);
    if (l->abort)
        l->tp->ops->abort(l->tp);
    else
        l->tp->ops->wakeup(l->tp);
    return NULL;
}

static void test_abort_from_another_thread_unblocks_a_waiting_progress(void **state)
{
    unsigned char addr[RDT_ADDR_MAX];
    rdt_transport_t *tp;
    tt_later_t later;
    unsigned long th;
    tt_xfer_t s, r, s2;
    uint64_t sv = 1, rv = 0;
    double t0;
    rdt_status_t st = RDT_SUCCESS;

    (void)state;
    tt_dead_addr(addr);
    /* rank 1 waits for rank 0 to connect, which never happens */
    tp = tt_open_alone(1, addr, 10000);
    tt_prep(&r, &rv, 8, 0, 1);
    tt_prep(&s, &sv, 8, 0, 2);
    assert_int_equal(tp->ops->irecv(tp, &r.x), RDT_SUCCESS);
    assert_int_equal(tp->ops->isend(tp, &s.x), RDT_SUCCESS);

    /* wakeup from another thread ends a long wait early */
    later.tp = tp;
    later.ms = 100;
    later.abort = 0;
    assert_int_equal(pthread_create(&th, NULL, tt_later_fn, &later), 0);
    t0 = tt_now();
    assert_int_equal(tp->ops->progress(tp, 10000), RDT_SUCCESS);
    assert_true(tt_now() - t0 < 5);
    pthread_join(th, NULL);
    assert_int_equal(r.done + s.done, 0);

    later.abort = 1;
    assert_int_equal(pthread_create(&th, NULL, tt_later_fn, &later), 0);
    t0 = tt_now();
    while (!(r.done && s.done) && tt_now() - t0 < 5)
        st = tp->ops->progress(tp, 10000);
    pthread_join(th, NULL);
    assert_true(tt_now() - t0 < 5);
    assert_int_equal(st, RDT_ERR_ABORTED);
    assert_int_equal(r.done, 1);
    assert_int_equal(s.done, 1);
    assert_int_equal(r.st, RDT_ERR_ABORTED);
    assert_int_equal(s.st, RDT_ERR_ABORTED);

    /* later posts fail at once; abort again changes nothing; close completes nothing twice */
    tt_prep(&s2, &sv, 8, 0, 3);
    assert_int_equal(tp->ops->isend(tp, &s2.x), RDT_ERR_ABORTED);
    tp->ops->abort(tp);
    assert_int_equal(tp->ops->progress(tp, 0), RDT_ERR_ABORTED);
    tp->ops->close(tp);
    assert_int_equal(r.done + s.done + s2.done, 2);
}

static void test_abort_from_the_driving_thread_completes_transfers_before_returning(void **state)
{
    unsigned char addr[RDT_ADDR_MAX];
    rdt_transport_t *tp;
    tt_xfer_t r;
    uint64_t rv;

    (void)state;
    tt_dead_addr(addr);
    tp = tt_open_alone(1, addr, 10000);
    tt_prep(&r, &rv, 8, 0, 1);
    assert_int_equal(tp->ops->irecv(tp, &r.x), RDT_SUCCESS);
    assert_int_equal(tp->ops->progress(tp, 0), RDT_SUCCESS);
    tp->ops->abort(tp);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.st, RDT_ERR_ABORTED);
    tp->ops->close(tp);
    assert_int_equal(r.done, 1);

    /* close alone completes what is posted */
    tp = tt_open_alone(1, addr, 10000);
    tt_prep(&r, &rv, 8, 0, 1);
    assert_int_equal(tp->ops->irecv(tp, &r.x), RDT_SUCCESS);
    tp->ops->close(tp);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.st, RDT_ERR_ABORTED);
}

static void test_connect_to_a_dead_address_times_out_naming_rank_host_and_address(void **state)
{
    unsigned char addr[RDT_ADDR_MAX];
    char want[64];
    rdt_transport_t *tp;
    tt_xfer_t s;
    uint64_t sv = 1;
    double t0;
    int port;

    (void)state;
    port = tt_dead_addr(addr);
    tp = tt_open_alone(0, addr, 300);
    tt_prep(&s, &sv, 8, 1, 1);
    assert_int_equal(tp->ops->isend(tp, &s.x), RDT_SUCCESS);
    t0 = tt_now();
    while (!s.done && tt_now() - t0 < 5)
        tp->ops->progress(tp, 1000);
    assert_int_equal(s.done, 1);
    assert_int_equal(s.st, RDT_ERR_TIMEOUT);
    assert_non_null(strstr(tp->error, "rank 1 (host host1)"));
    snprintf(want, sizeof(want), "127.0.0.1:%d", port);
    assert_non_null(strstr(tp->error, want));
    /* the peer stays failed */
    tt_prep(&s, &sv, 8, 1, 2);
    assert_int_equal(tp->ops->isend(tp, &s.x), RDT_ERR_TIMEOUT);
    tp->ops->close(tp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pingpong_of_0_1_8_4097_and_8mib_plus_3_bytes_is_bit_exact),
        cmocka_unit_test(test_many_messages_in_flight_both_ways_arrive_in_order_with_their_tags),
        cmocka_unit_test(test_many_messages_in_flight_with_small_fixed_socket_buffers),
        cmocka_unit_test(
            test_length_mismatch_fails_receiver_with_mismatch_and_sender_with_peer_failed),
        cmocka_unit_test(
            test_tag_mismatch_fails_receiver_with_mismatch_and_sender_with_peer_failed),
        cmocka_unit_test(test_receiver_killed_mid_transfer_fails_sender_with_peer_failed),
        cmocka_unit_test(test_sender_killed_mid_transfer_fails_receiver_with_peer_failed),
        cmocka_unit_test(test_a_peer_that_aborted_before_we_connected_fails_fast_once_it_closes),
        cmocka_unit_test(test_impostor_connections_are_dropped_and_the_job_still_works),
        cmocka_unit_test(test_abort_from_another_thread_unblocks_a_waiting_progress),
        cmocka_unit_test(test_abort_from_the_driving_thread_completes_transfers_before_returning),
        cmocka_unit_test(test_connect_to_a_dead_address_times_out_naming_rank_host_and_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
