/* rdt-test-labels: softroce */
/*
 * test_verbs.c - the verbs transport between real processes on one RDMA device (rxe0 in CI).
 *
 * Run it through tools/softroce.sh (see docs/ARCHITECTURE.md); without an RDMA device with an
 * active port the whole file is skipped (exit 77), never passed, and with RDT_TEST_REQUIRE_RDMA=1
 * it fails instead (rdt_test_require_rdma() in tests/common/testutil.c). Each test forks 2-3
 * ranks with rdt_spawn_local; the ranks open the transport, exchange addresses through files in
 * a mkdtemp folder, and check what they see. A child reports a failed check on stderr and through
 * its exit status; the parent asserts on the statuses. The ping-pong test also prints the latency
 * and bandwidth it saw (information only: timing never decides a test). The same transport
 * through the public API (collectives, a rank killed, memlock, RDT_IB_*): test_verbs_comm.c and
 * test_collectives --verbs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "spawn.h"
#include "testutil.h"
#include "transport.h"

#define TV_SPAWN_TIMEOUT_S 120

#ifdef RDT_HAVE_VERBS

static const unsigned char tv_token[RDT_TOKEN_LEN] = {3, 1, 4, 1, 5, 9, 2, 6,
                                                      5, 3, 5, 8, 9, 7, 9, 3};
static const uint64_t tv_comm_id = 0x7e4b5a0123456789ULL;

typedef struct tv_job {
    char dir[64];
} tv_job_t;

typedef struct tv_xfer {
    rdt_xfer_t x;
    int done;
    rdt_status_t st;
} tv_xfer_t;

static int g_rank = -1;

#define CHECK(cond)                                                                              \
    do {                                                                                         \
        if (!(cond))                                                                             \
            tv_fail(__LINE__, "%s", #cond);                                                      \
    } while (0)

static void tv_fail(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void tv_fail(int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "test_verbs: rank %d: line %d: check failed: ", g_rank, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    _exit(2);
}

static double tv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void tv_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}


static void tv_cb(rdt_xfer_t *x, rdt_status_t st)
{
    tv_xfer_t *t = x->arg;
    t->done++;
    t->st = st;
}

static void tv_prep(tv_xfer_t *t, void *buf, size_t len, int peer, uint64_t tag)
{
    memset(t, 0, sizeof(*t));
    t->x.buf = buf;
    t->x.len = len;
    t->x.peer = peer;
    t->x.tag = tag;
    t->x.cb = tv_cb;
    t->x.arg = t;
    t->st = RDT_IN_PROGRESS;
}

static void tv_fill(void *buf, size_t len, uint64_t seed)
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

static int tv_check(const void *buf, size_t len, uint64_t seed)
{
    unsigned char *want = malloc(len ? len : 1);
    int ok;
    tv_fill(want, len, seed);
    ok = len == 0 || memcmp(buf, want, len) == 0;
    free(want);
    return ok;
}

static int tv_wait(rdt_transport_t *tp, tv_xfer_t **t, int n, double timeout_s)
{
    double end = tv_now() + timeout_s;
    for (;;) {
        int i, left = 0;
        for (i = 0; i < n; i++)
            left += t[i] && !t[i]->done;
        if (!left)
            return 0;
        if (tv_now() > end)
            return -1;
        tp->ops->progress(tp, 100);
    }
}

/* Post @p t; a post refused at once (the peer is already known to be dead: the kill tests race
 * with it) counts as a transfer completed with that status. */
static void tv_post_or_fail(rdt_transport_t *tp, tv_xfer_t *t, int send)
{
    rdt_status_t st = send ? tp->ops->isend(tp, &t->x) : tp->ops->irecv(tp, &t->x);
    if (st != RDT_SUCCESS && !t->done) {
        t->done = 1;
        t->st = st;
    }
}

static int tv_wait1(rdt_transport_t *tp, tv_xfer_t *t, double timeout_s)
{
    return tv_wait(tp, &t, 1, timeout_s);
}

static void tv_addr_path(char *path, size_t n, const char *dir, int rank)
{
    snprintf(path, n, "%s/addr.%d", dir, rank);
}

static void tv_addr_read(const char *dir, int r, unsigned char *addr)
{
    char path[128];
    double end = tv_now() + 30;
    tv_addr_path(path, sizeof(path), dir, r);
    for (;;) {
        FILE *f = fopen(path, "rb");
        if (f) {
            size_t got = fread(addr, 1, RDT_ADDR_MAX, f);
            fclose(f);
            CHECK(got == RDT_ADDR_MAX);
            return;
        }
        CHECK(tv_now() < end);
        tv_sleep_ms(2);
    }
}

/* Open this rank's verbs transport, publish its address, learn everyone's. */
static rdt_transport_t *tv_open(const tv_job_t *job, int rank, int nranks)
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
    params.comm_id = tv_comm_id;
    memcpy(params.token, tv_token, RDT_TOKEN_LEN);
    params.bind_ip = "127.0.0.1";
    params.connect_timeout_ms = 20000;
    params.host = host;
    CHECK(rdt_verbs_ops.open(&params, &tp) == RDT_SUCCESS);
    memset(addr, 0, sizeof(addr));
    CHECK(tp->ops->addr_get(tp, addr, &alen) == RDT_SUCCESS);
    CHECK(alen > 0 && alen <= RDT_ADDR_MAX);
    /* verbs.c's address layout: bytes 24..39 the GID, never link-local (fe80::/10); on rxe the
     * IPv4-mapped RoCE v2 GID is index 1 (byte 42) */
    CHECK(!(addr[24] == 0xfe && (addr[25] & 0xc0) == 0x80));

    tv_addr_path(path, sizeof(path), job->dir, rank);
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
        tv_addr_read(job->dir, i, addrs + (size_t)i * RDT_ADDR_MAX);
        snprintf(hosts + (size_t)i * RDT_HOST_MAX, RDT_HOST_MAX, "host%d", i);
    }
    CHECK(tp->ops->addrs_set(tp, addrs, hosts) == RDT_SUCCESS);
    free(addrs);
    free(hosts);
    return tp;
}

static void tv_run(int nranks, rdt_spawn_fn_t fn, const int *want_status)
{
    int statuses[8], i;
    char path[128];
    tv_job_t job;

    memset(&job, 0, sizeof(job));
    snprintf(job.dir, sizeof(job.dir), "/tmp/rdt-test-verbs-XXXXXX");
    assert_non_null(mkdtemp(job.dir));
    rdt_spawn_local(nranks, fn, &job, TV_SPAWN_TIMEOUT_S, statuses);
    for (i = 0; i < nranks; i++) {
        tv_addr_path(path, sizeof(path), job.dir, i);
        unlink(path);
    }
    rmdir(job.dir);
    for (i = 0; i < nranks; i++) {
        int want = want_status ? want_status[i] : 0;
        if (statuses[i] != want)
            fprintf(stderr, "rank %d exited with %d, expected %d\n", i, statuses[i], want);
        assert_int_equal(statuses[i], want);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Ping-pong                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static const size_t tv_pp_sizes[] = {0, 1, 8, 4097, (1u << 20) + 3};

/* Information only, printed by rank 0: 8-byte half round trip, 1 MiB half round trip, and a
 * 1 MiB stream (TV_BW_MSGS messages in flight, then a 1-byte acknowledgement). */
#define TV_BW_MSGS 32
static void pingpong_timing(rdt_transport_t *tp, int rank)
{
    static const size_t sizes[2] = {8, 1u << 20};
    static const int reps[2] = {500, 20};
    size_t big = 1u << 20;
    unsigned char *buf = calloc(1, big), ack = 0;
    static tv_xfer_t st[TV_BW_MSGS];
    tv_xfer_t *all[TV_BW_MSGS], a;
    int peer = 1 - rank, k, i;
    double t0;

    CHECK(buf);
    for (k = 0; k < 2; k++) {
        t0 = tv_now();
        for (i = 0; i < reps[k]; i++) {
            tv_xfer_t s, r;
            tv_prep(&r, buf, sizes[k], peer, 100);
            tv_prep(&s, buf, sizes[k], peer, 100);
            CHECK(tp->ops->irecv(tp, &r.x) == RDT_SUCCESS);
            if (rank == 0) {
                CHECK(tp->ops->isend(tp, &s.x) == RDT_SUCCESS);
                CHECK(tv_wait(tp, (tv_xfer_t *[]){&s, &r}, 2, 30) == 0);
            } else {
                CHECK(tv_wait1(tp, &r, 30) == 0);
                CHECK(tp->ops->isend(tp, &s.x) == RDT_SUCCESS);
                CHECK(tv_wait1(tp, &s, 30) == 0);
            }
            CHECK(s.st == RDT_SUCCESS && r.st == RDT_SUCCESS);
        }
        if (rank == 0)
            printf("verbs timing: %7zu bytes ping-pong, half round trip %9.1f us\n", sizes[k],
                   (tv_now() - t0) / reps[k] / 2 * 1e6);
    }
    t0 = tv_now();
    for (i = 0; i < TV_BW_MSGS; i++) {
        tv_prep(&st[i], buf, big, peer, 200);
        all[i] = &st[i];
        if (rank == 0)
            CHECK(tp->ops->isend(tp, &st[i].x) == RDT_SUCCESS);
        else
            CHECK(tp->ops->irecv(tp, &st[i].x) == RDT_SUCCESS);
    }
    CHECK(tv_wait(tp, all, TV_BW_MSGS, 60) == 0);
    tv_prep(&a, &ack, 1, peer, 201);
    if (rank == 0)
        CHECK(tp->ops->irecv(tp, &a.x) == RDT_SUCCESS);
    else
        CHECK(tp->ops->isend(tp, &a.x) == RDT_SUCCESS);
    CHECK(tv_wait1(tp, &a, 30) == 0);
    if (rank == 0) {
        double dt = tv_now() - t0;
        printf("verbs timing: %d x 1 MiB stream, %.1f MB/s (%.3f Gb/s)\n", TV_BW_MSGS,
               TV_BW_MSGS * (double)big / dt / 1e6, TV_BW_MSGS * (double)big * 8 / dt / 1e9);
        fflush(stdout);
    }
    free(buf);
}

static int pingpong_rank(int rank, int nranks, void *arg)
{
    rdt_transport_t *tp = tv_open(arg, rank, nranks);
    int peer = 1 - rank;
    size_t k;
    int rep;

    for (k = 0; k < sizeof(tv_pp_sizes) / sizeof(tv_pp_sizes[0]); k++) {
        size_t len = tv_pp_sizes[k];
        unsigned char *sbuf = malloc(len + 1), *rbuf = malloc(len + 1);
        int reps = len <= 8 ? 200 : 10;
        double t0 = 0;
        CHECK(sbuf && rbuf);
        for (rep = 0; rep < reps; rep++) {
            uint64_t ping_seed = len * 1000 + (uint64_t)rep, pong_seed = ping_seed ^ 0xfeed;
            tv_xfer_t s, r;
            if (rep == 1)
                t0 = tv_now(); /* the first round trip also connects */
            memset(rbuf, 0xee, len + 1);
            if (rank == 0) {
                tv_fill(sbuf, len, ping_seed);
                tv_prep(&r, rbuf, len, peer, 2 * k + 1);
                tv_prep(&s, sbuf, len, peer, 2 * k);
                CHECK(tp->ops->irecv(tp, &r.x) == RDT_SUCCESS);
                CHECK(tp->ops->isend(tp, &s.x) == RDT_SUCCESS);
                CHECK(tv_wait(tp, (tv_xfer_t *[]){&s, &r}, 2, 30) == 0);
                CHECK(s.st == RDT_SUCCESS && r.st == RDT_SUCCESS && s.done == 1 && r.done == 1);
                CHECK(tv_check(rbuf, len, pong_seed));
            } else {
                tv_prep(&r, rbuf, len, peer, 2 * k);
                CHECK(tp->ops->irecv(tp, &r.x) == RDT_SUCCESS);
                CHECK(tv_wait1(tp, &r, 30) == 0 && r.st == RDT_SUCCESS);
                CHECK(tv_check(rbuf, len, ping_seed));
                tv_fill(sbuf, len, pong_seed);
                tv_prep(&s, sbuf, len, peer, 2 * k + 1);
                CHECK(tp->ops->isend(tp, &s.x) == RDT_SUCCESS);
                CHECK(tv_wait1(tp, &s, 30) == 0 && s.st == RDT_SUCCESS);
            }
            CHECK(rbuf[len] == 0xee); /* nothing written past the message */
        }
        if (rank == 0) {
            /* information only; the fill and check are outside the timed part only roughly */
            double rtt = (tv_now() - t0) / (reps - 1);
            printf("verbs ping-pong %8zu bytes: half round trip %9.1f us, %8.1f MB/s one way "
                   "(includes the test's fill and check)\n",
                   len, rtt / 2 * 1e6, len ? (double)len / (rtt / 2) / 1e6 : 0.0);
            fflush(stdout);
        }
        free(sbuf);
        free(rbuf);
    }
    pingpong_timing(tp, rank);
    tp->ops->close(tp);
    return 0;
}

static void test_pingpong_of_0_1_8_4097_and_1mib_plus_3_bytes_is_bit_exact(void **state)
{
    (void)state;
    tv_run(2, pingpong_rank, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Many messages in flight, all pairs of 3 ranks, both ways                                     */
/* ------------------------------------------------------------------------------------------ */

#define TV_MANY 48
#define TV_NR 3

/* Mostly small, some around the 64 KiB slot size, a few spanning several slots, some empty. */
static size_t many_len(int src, int dst, int i)
{
    uint64_t s = ((uint64_t)src << 32) | ((uint64_t)dst << 16) | (uint64_t)i;
    uint64_t r = rdt_test_rand(&s);
    if (i % 5 == 0)
        return 0;
    switch (r % 8) {
    case 0:
        return (size_t)(r >> 8) % (300u << 10);
    case 1:
    case 2:
        return 65536 - 24 - 4 + (size_t)(r >> 8) % 9;
    default:
        return (size_t)(r >> 8) % 300;
    }
}

static uint64_t many_tag(int src, int dst, int i)
{
    return ((uint64_t)src << 40) | ((uint64_t)dst << 20) | (uint64_t)i;
}

static int many_rank(int rank, int nranks, void *arg)
{
    rdt_transport_t *tp = tv_open(arg, rank, nranks);
    static tv_xfer_t tx[TV_NR][TV_MANY], rx[TV_NR][TV_MANY];
    static unsigned char *sbuf[TV_NR][TV_MANY], *rbuf[TV_NR][TV_MANY];
    tv_xfer_t *all[2 * TV_NR * TV_MANY];
    int q, i, n = 0;

    /* receives first, then sends: everything in flight at once, far more than the slots */
    for (q = 0; q < nranks; q++) {
        if (q == rank)
            continue;
        for (i = 0; i < TV_MANY; i++) {
            size_t len = many_len(q, rank, i);
            rbuf[q][i] = malloc(len + 1);
            CHECK(rbuf[q][i]);
            memset(rbuf[q][i], 0xee, len + 1);
            tv_prep(&rx[q][i], rbuf[q][i], len, q, many_tag(q, rank, i));
            CHECK(tp->ops->irecv(tp, &rx[q][i].x) == RDT_SUCCESS);
            all[n++] = &rx[q][i];
        }
    }
    for (q = 0; q < nranks; q++) {
        if (q == rank)
            continue;
        for (i = 0; i < TV_MANY; i++) {
            size_t len = many_len(rank, q, i);
            sbuf[q][i] = malloc(len + 1);
            CHECK(sbuf[q][i]);
            tv_fill(sbuf[q][i], len, many_tag(rank, q, i) * 31 + 7);
            tv_prep(&tx[q][i], sbuf[q][i], len, q, many_tag(rank, q, i));
            CHECK(tp->ops->isend(tp, &tx[q][i].x) == RDT_SUCCESS);
            all[n++] = &tx[q][i];
        }
    }
    CHECK(tv_wait(tp, all, n, 90) == 0);
    for (i = 0; i < n; i++)
        CHECK(all[i]->done == 1 && all[i]->st == RDT_SUCCESS);
    for (q = 0; q < nranks; q++) {
        if (q == rank)
            continue;
        for (i = 0; i < TV_MANY; i++) {
            size_t len = many_len(q, rank, i);
            CHECK(tv_check(rbuf[q][i], len, many_tag(q, rank, i) * 31 + 7));
            CHECK(rbuf[q][i][len] == 0xee);
            free(rbuf[q][i]);
            free(sbuf[q][i]);
        }
    }
    /* nobody closes while another may still wait for its last credits or completions */
    {
        tv_xfer_t b[TV_NR], *bp[TV_NR];
        unsigned char dummy[TV_NR];
        int m = 0;
        for (q = 0; q < nranks; q++) {
            if (q == rank)
                continue;
            tv_prep(&b[m], &dummy[q], 1, q, 0xba77);
            CHECK(tp->ops->irecv(tp, &b[m].x) == RDT_SUCCESS);
            bp[m] = &b[m];
            m++;
        }
        for (q = 0; q < nranks; q++) {
            tv_xfer_t s;
            unsigned char one = 1;
            if (q == rank)
                continue;
            tv_prep(&s, &one, 1, q, 0xba77);
            CHECK(tp->ops->isend(tp, &s.x) == RDT_SUCCESS);
            CHECK(tv_wait1(tp, &s, 30) == 0 && s.st == RDT_SUCCESS);
        }
        CHECK(tv_wait(tp, bp, m, 30) == 0);
    }
    tp->ops->close(tp);
    return 0;
}

static void test_many_messages_in_flight_between_3_ranks_arrive_in_order_with_their_tags(
    void **state)
{
    (void)state;
    tv_run(TV_NR, many_rank, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Eager fragments: slot boundaries, many times round the ring, a slow receiver                */
/* ------------------------------------------------------------------------------------------ */

/* verbs.c's eager slots: 16 per direction, each holding TV_FRAG_MAX bytes of a message (the
 * first fragment of a message starts with the 24-byte message header). */
#define TV_FRAG_MAX 65536
#define TV_MSG_HDR 24
#define TV_NSLOTS 16

static const size_t tv_edge_sizes[] = {
    0, 1, 7, 8, 9, 4095, 4096, 4097,
    TV_FRAG_MAX - TV_MSG_HDR - 1, TV_FRAG_MAX - TV_MSG_HDR, TV_FRAG_MAX - TV_MSG_HDR + 1,
    TV_FRAG_MAX - 1, TV_FRAG_MAX, TV_FRAG_MAX + 1,
    2 * TV_FRAG_MAX - TV_MSG_HDR - 1, 2 * TV_FRAG_MAX - TV_MSG_HDR,
    2 * TV_FRAG_MAX - TV_MSG_HDR + 1, 3 * TV_FRAG_MAX + 5};
#define TV_EDGE_N (sizeof(tv_edge_sizes) / sizeof(tv_edge_sizes[0]))
#define TV_EDGE_ROUNDS 6 /* about 170 fragments each way: each slot ten times */

static uint64_t edge_seed(int src, int round, size_t k)
{
    return 0x5eed0000ULL + ((uint64_t)src << 24) + (uint64_t)round * 131 + k;
}

/* Both ranks send every size to each other, all rounds in flight at once (far more fragments
 * than slots: the senders wait for acknowledgements), and check every byte and the byte after. */
static int edge_rank(int rank, int nranks, void *arg)
{
    rdt_transport_t *tp = tv_open(arg, rank, nranks);
    static tv_xfer_t tx[TV_EDGE_ROUNDS][TV_EDGE_N], rx[TV_EDGE_ROUNDS][TV_EDGE_N];
    static unsigned char *sbuf[TV_EDGE_ROUNDS][TV_EDGE_N], *rbuf[TV_EDGE_ROUNDS][TV_EDGE_N];
    tv_xfer_t *all[2 * TV_EDGE_ROUNDS * TV_EDGE_N];
    int peer = 1 - rank, r, n = 0;
    size_t k;

    for (r = 0; r < TV_EDGE_ROUNDS; r++)
        for (k = 0; k < TV_EDGE_N; k++) {
            size_t len = tv_edge_sizes[k];
            rbuf[r][k] = malloc(len + 1);
            sbuf[r][k] = malloc(len + 1);
            CHECK(rbuf[r][k] && sbuf[r][k]);
            memset(rbuf[r][k], 0xee, len + 1);
            tv_fill(sbuf[r][k], len, edge_seed(rank, r, k));
            tv_prep(&rx[r][k], rbuf[r][k], len, peer, (uint64_t)r << 8 | k);
            tv_prep(&tx[r][k], sbuf[r][k], len, peer, (uint64_t)r << 8 | k);
            CHECK(tp->ops->irecv(tp, &rx[r][k].x) == RDT_SUCCESS);
            CHECK(tp->ops->isend(tp, &tx[r][k].x) == RDT_SUCCESS);
            all[n++] = &rx[r][k];
            all[n++] = &tx[r][k];
        }
    CHECK(tv_wait(tp, all, n, 90) == 0);
    for (r = 0; r < TV_EDGE_ROUNDS; r++)
        for (k = 0; k < TV_EDGE_N; k++) {
            size_t len = tv_edge_sizes[k];
            CHECK(rx[r][k].done == 1 && rx[r][k].st == RDT_SUCCESS);
            CHECK(tx[r][k].done == 1 && tx[r][k].st == RDT_SUCCESS);
            if (!tv_check(rbuf[r][k], len, edge_seed(peer, r, k)))
                tv_fail(__LINE__, "round %d, %zu bytes: wrong data", r, len);
            CHECK(rbuf[r][k][len] == 0xee);
            free(rbuf[r][k]);
            free(sbuf[r][k]);
        }
    tp->ops->close(tp);
    return 0;
}

static void test_messages_around_the_slot_size_go_round_the_ring_bit_exact(void **state)
{
    (void)state;
    tv_run(2, edge_rank, NULL);
}

/* Rank 0 sends TV_SLOW_MSGS one-fragment messages while rank 1 has posted no receive: exactly
 * TV_NSLOTS of them can go (and complete once written), the others wait for credits. Rank 1,
 * told through a file that rank 0 has seen that, then receives slowly, one at a time with
 * pauses, sending nothing back: the credits come back only as credit-only writes. */
#define TV_SLOW_MSGS (3 * TV_NSLOTS + 5)

static size_t slow_len(int i)
{
    static const size_t lens[4] = {8, 0, 1000, TV_FRAG_MAX - TV_MSG_HDR};
    return lens[i % 4];
}

static int slow_rank(int rank, int nranks, void *arg)
{
    const tv_job_t *job = arg;
    rdt_transport_t *tp = tv_open(job, rank, nranks);
    static tv_xfer_t t[TV_SLOW_MSGS];
    static unsigned char *buf[TV_SLOW_MSGS];
    tv_xfer_t *all[TV_SLOW_MSGS];
    char go[128];
    int i, done;
    double end;

    snprintf(go, sizeof(go), "%s/go", job->dir);
    for (i = 0; i < TV_SLOW_MSGS; i++) {
        buf[i] = malloc(slow_len(i) + 1);
        CHECK(buf[i]);
        all[i] = &t[i];
    }
    if (rank == 0) {
        FILE *f;
        for (i = 0; i < TV_SLOW_MSGS; i++) {
            tv_fill(buf[i], slow_len(i), 0x51000 + (uint64_t)i);
            tv_prep(&t[i], buf[i], slow_len(i), 1, 0x700 + (uint64_t)i);
            CHECK(tp->ops->isend(tp, &t[i].x) == RDT_SUCCESS);
        }
        /* the first TV_NSLOTS complete (the connection comes up on the way) */
        CHECK(tv_wait(tp, all, TV_NSLOTS, 30) == 0);
        /* and no more while nobody receives: the sends were posted in order */
        end = tv_now() + 0.3;
        while (tv_now() < end)
            tp->ops->progress(tp, 10);
        for (i = 0, done = 0; i < TV_SLOW_MSGS; i++)
            done += t[i].done;
        if (done != TV_NSLOTS)
            tv_fail(__LINE__, "%d sends completed with no receive posted, expected %d", done,
                    TV_NSLOTS);
        f = fopen(go, "w");
        CHECK(f && fclose(f) == 0);
        CHECK(tv_wait(tp, all, TV_SLOW_MSGS, 60) == 0);
        for (i = 0; i < TV_SLOW_MSGS; i++)
            CHECK(t[i].done == 1 && t[i].st == RDT_SUCCESS);
    } else {
        end = tv_now() + 60;
        while (access(go, F_OK) != 0) {
            CHECK(tv_now() < end);
            tp->ops->progress(tp, 5);
        }
        for (i = 0; i < TV_SLOW_MSGS; i++) {
            memset(buf[i], 0xee, slow_len(i) + 1);
            tv_prep(&t[i], buf[i], slow_len(i), 0, 0x700 + (uint64_t)i);
            CHECK(tp->ops->irecv(tp, &t[i].x) == RDT_SUCCESS);
            CHECK(tv_wait1(tp, &t[i], 30) == 0 && t[i].st == RDT_SUCCESS);
            if (!tv_check(buf[i], slow_len(i), 0x51000 + (uint64_t)i))
                tv_fail(__LINE__, "message %d (%zu bytes): wrong data", i, slow_len(i));
            CHECK(buf[i][slow_len(i)] == 0xee);
            if (i % 5 == 4)
                tv_sleep_ms(20);
        }
    }
    /* a last word back, so that rank 1 does not close while rank 0 still waits */
    {
        unsigned char one = 1, got = 0;
        tv_xfer_t b;
        if (rank == 1) {
            tv_prep(&b, &one, 1, 0, 0xba77);
            CHECK(tp->ops->isend(tp, &b.x) == RDT_SUCCESS);
        } else {
            tv_prep(&b, &got, 1, 1, 0xba77);
            CHECK(tp->ops->irecv(tp, &b.x) == RDT_SUCCESS);
        }
        CHECK(tv_wait1(tp, &b, 30) == 0 && b.st == RDT_SUCCESS);
        CHECK(rank == 1 || got == 1);
    }
    for (i = 0; i < TV_SLOW_MSGS; i++)
        free(buf[i]);
    tp->ops->close(tp);
    if (rank == 0)
        unlink(go);
    return 0;
}

static void test_a_slow_receiver_holds_the_sender_to_its_credits_and_gets_every_byte(void **state)
{
    (void)state;
    tv_run(2, slow_rank, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Mismatch                                                                                     */
/* ------------------------------------------------------------------------------------------ */

enum { MISMATCH_TAG, MISMATCH_LEN };
static int g_mismatch_mode;

static int mismatch_rank(int rank, int nranks, void *arg)
{
    rdt_transport_t *tp = tv_open(arg, rank, nranks);
    unsigned char buf[100];
    tv_xfer_t t, after;

    memset(buf, 7, sizeof(buf));
    if (rank == 0) {
        /* the send may complete before the receiver notices; the receive from rank 1, never
         * sent, must fail once rank 1 drops the connection */
        tv_prep(&t, buf, 100, 1, 42);
        tv_prep(&after, buf, 1, 1, 43);
        CHECK(tp->ops->isend(tp, &t.x) == RDT_SUCCESS);
        CHECK(tp->ops->irecv(tp, &after.x) == RDT_SUCCESS);
        CHECK(tv_wait(tp, (tv_xfer_t *[]){&t, &after}, 2, 30) == 0);
        CHECK(t.st == RDT_SUCCESS || t.st == RDT_ERR_PEER_FAILED);
        CHECK(after.st == RDT_ERR_PEER_FAILED);
        CHECK(strstr(tp->error, "rank 1 (host host1)") != NULL);
    } else {
        if (g_mismatch_mode == MISMATCH_TAG)
            tv_prep(&t, buf, 100, 0, 41);
        else
            tv_prep(&t, buf, 99, 0, 42);
        CHECK(tp->ops->irecv(tp, &t.x) == RDT_SUCCESS);
        CHECK(tv_wait1(tp, &t, 30) == 0);
        CHECK(t.st == RDT_ERR_MISMATCH);
        CHECK(strstr(tp->error, "rank 0 (host host0)") != NULL);
        fprintf(stderr, "mismatch seen by rank 1: %s\n", tp->error);
    }
    tp->ops->close(tp);
    return 0;
}

static void test_tag_mismatch_fails_receiver_with_mismatch_and_sender_with_peer_failed(
    void **state)
{
    (void)state;
    g_mismatch_mode = MISMATCH_TAG;
    tv_run(2, mismatch_rank, NULL);
}

static void test_length_mismatch_fails_receiver_with_mismatch_and_sender_with_peer_failed(
    void **state)
{
    (void)state;
    g_mismatch_mode = MISMATCH_LEN;
    tv_run(2, mismatch_rank, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* A peer killed                                                                                */
/* ------------------------------------------------------------------------------------------ */

/* Rank 1 answers one message, then dies by SIGKILL; rank 2 stays alive and keeps working.
 * Rank 0 has a receive posted from rank 1 and a large send queued to it: both must fail with
 * PEER_FAILED and an error naming rank 1. */
static int kill_rank(int rank, int nranks, void *arg)
{
    rdt_transport_t *tp = tv_open(arg, rank, nranks);
    size_t big = 4u << 20;
    unsigned char *buf = calloc(1, big);
    tv_xfer_t s, r, s2, r2;
    unsigned char c = 1;

    CHECK(buf);
    if (rank == 1) {
        tv_prep(&r, &c, 1, 0, 1);
        CHECK(tp->ops->irecv(tp, &r.x) == RDT_SUCCESS);
        CHECK(tv_wait1(tp, &r, 30) == 0 && r.st == RDT_SUCCESS);
        raise(SIGKILL);
    }
    if (rank == 0) {
        tv_prep(&s, &c, 1, 1, 1);
        CHECK(tp->ops->isend(tp, &s.x) == RDT_SUCCESS);
        CHECK(tv_wait1(tp, &s, 30) == 0 && s.st == RDT_SUCCESS);
        tv_prep(&r, buf, 16, 1, 2); /* never sent */
        tv_post_or_fail(tp, &r, 0);
        tv_prep(&s2, buf, big, 1, 3); /* more than the ring holds: waits for credits */
        tv_post_or_fail(tp, &s2, 1);
        CHECK(tv_wait(tp, (tv_xfer_t *[]){&r, &s2}, 2, 60) == 0);
        CHECK(r.st == RDT_ERR_PEER_FAILED);
        CHECK(s2.st == RDT_ERR_PEER_FAILED);
        CHECK(strstr(tp->error, "rank 1 (host host1)") != NULL);
        fprintf(stderr, "rank 0 saw: %s\n", tp->error);
        /* rank 2 is unaffected */
        tv_prep(&s, &c, 1, 2, 9);
        tv_prep(&r2, buf, 1, 2, 10);
        CHECK(tp->ops->irecv(tp, &r2.x) == RDT_SUCCESS);
        CHECK(tp->ops->isend(tp, &s.x) == RDT_SUCCESS);
        CHECK(tv_wait(tp, (tv_xfer_t *[]){&s, &r2}, 2, 30) == 0);
        CHECK(s.st == RDT_SUCCESS && r2.st == RDT_SUCCESS);
    }
    if (rank == 2) {
        tv_prep(&r2, buf, 1, 0, 9);
        tv_prep(&s2, &c, 1, 0, 10);
        CHECK(tp->ops->irecv(tp, &r2.x) == RDT_SUCCESS);
        CHECK(tp->ops->isend(tp, &s2.x) == RDT_SUCCESS);
        CHECK(tv_wait(tp, (tv_xfer_t *[]){&s2, &r2}, 2, 60) == 0);
        CHECK(s2.st == RDT_SUCCESS && r2.st == RDT_SUCCESS);
    }
    free(buf);
    tp->ops->close(tp);
    return 0;
}

static void test_a_peer_killed_fails_its_transfers_with_an_error_naming_it(void **state)
{
    static const int want[3] = {0, 128 + SIGKILL, 0};
    (void)state;
    tv_run(3, kill_rank, want);
}

/* ------------------------------------------------------------------------------------------ */
/* Locked-memory limit                                                                          */
/* ------------------------------------------------------------------------------------------ */

/* Rank 0 lowers its RLIMIT_MEMLOCK below what one connection registers (2 MiB): its first post
 * to rank 1 is refused with an error saying to raise ulimit -l and naming rank 1. */
static int memlock_rank(int rank, int nranks, void *arg)
{
    rdt_transport_t *tp = tv_open(arg, rank, nranks);
    unsigned char c = 1;
    tv_xfer_t s;

    if (rank == 0) {
        struct rlimit rl;
        CHECK(getrlimit(RLIMIT_MEMLOCK, &rl) == 0);
        rl.rlim_cur = 512 << 10;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur)
            rl.rlim_cur = rl.rlim_max;
        CHECK(setrlimit(RLIMIT_MEMLOCK, &rl) == 0);
        tv_prep(&s, &c, 1, 1, 5);
        CHECK(tp->ops->isend(tp, &s.x) == RDT_ERR_SYSTEM);
        CHECK(s.done == 0);
        CHECK(strstr(tp->error, "ulimit -l") != NULL);
        CHECK(strstr(tp->error, "rank 1 (host host1)") != NULL);
        fprintf(stderr, "rank 0 saw: %s\n", tp->error);
    }
    tp->ops->close(tp);
    return 0;
}

static void test_a_low_memlock_limit_fails_the_post_with_an_error_saying_to_raise_it(void **state)
{
    (void)state;
    tv_run(2, memlock_rank, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Abort                                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* Rank 0 connects, leaves a receive and a large send pending, and aborts from the driving
 * thread: both callbacks run before abort() returns, later posts and progress() say ABORTED. */
static int abort_rank(int rank, int nranks, void *arg)
{
    rdt_transport_t *tp = tv_open(arg, rank, nranks);
    size_t big = 4u << 20;
    unsigned char *buf = calloc(1, big), c = 1;
    tv_xfer_t s, r, late;

    CHECK(buf);
    if (rank == 0) {
        tv_prep(&s, &c, 1, 1, 1);
        CHECK(tp->ops->isend(tp, &s.x) == RDT_SUCCESS);
        CHECK(tv_wait1(tp, &s, 30) == 0 && s.st == RDT_SUCCESS);
        tv_prep(&r, buf, 16, 1, 2);
        tv_prep(&s, buf, big, 1, 3);
        CHECK(tp->ops->irecv(tp, &r.x) == RDT_SUCCESS);
        CHECK(tp->ops->isend(tp, &s.x) == RDT_SUCCESS);
        tp->ops->progress(tp, 10);
        tp->ops->abort(tp);
        CHECK(r.done == 1 && r.st == RDT_ERR_ABORTED);
        CHECK(s.done == 1 && s.st == RDT_ERR_ABORTED);
        tv_prep(&late, &c, 1, 1, 4);
        CHECK(tp->ops->isend(tp, &late.x) == RDT_ERR_ABORTED);
        CHECK(tp->ops->progress(tp, 10) == RDT_ERR_ABORTED);
        CHECK(late.done == 0);
    } else {
        tv_prep(&r, &c, 1, 0, 1);
        CHECK(tp->ops->irecv(tp, &r.x) == RDT_SUCCESS);
        CHECK(tv_wait1(tp, &r, 30) == 0 && r.st == RDT_SUCCESS);
        /* no receive for the large send: it fills the ring and waits for credits until rank 0
         * aborts */
        double end = tv_now() + 1.5;
        while (tv_now() < end)
            tp->ops->progress(tp, 50);
    }
    free(buf);
    tp->ops->close(tp);
    return 0;
}

static void test_abort_from_the_driving_thread_completes_transfers_before_returning(void **state)
{
    (void)state;
    tv_run(2, abort_rank, NULL);
}

#endif /* RDT_HAVE_VERBS */

int main(void)
{
    /* exits 77 (skipped) without a device, or 1 under RDT_TEST_REQUIRE_RDMA=1; a build without
     * the verbs transport never finds one */
    rdt_test_require_rdma("test_verbs", NULL);
#ifdef RDT_HAVE_VERBS
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pingpong_of_0_1_8_4097_and_1mib_plus_3_bytes_is_bit_exact),
        cmocka_unit_test(
            test_many_messages_in_flight_between_3_ranks_arrive_in_order_with_their_tags),
        cmocka_unit_test(test_messages_around_the_slot_size_go_round_the_ring_bit_exact),
        cmocka_unit_test(
            test_a_slow_receiver_holds_the_sender_to_its_credits_and_gets_every_byte),
        cmocka_unit_test(
            test_tag_mismatch_fails_receiver_with_mismatch_and_sender_with_peer_failed),
        cmocka_unit_test(
            test_length_mismatch_fails_receiver_with_mismatch_and_sender_with_peer_failed),
        cmocka_unit_test(test_a_peer_killed_fails_its_transfers_with_an_error_naming_it),
        cmocka_unit_test(
            test_a_low_memlock_limit_fails_the_post_with_an_error_saying_to_raise_it),
        cmocka_unit_test(test_abort_from_the_driving_thread_completes_transfers_before_returning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
#else
    return 1; /* not reached: rdt_test_require_rdma() found no device */
#endif
}
