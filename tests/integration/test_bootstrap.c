/*
 * test_bootstrap.c - the rendezvous over loopback: real processes, whole tables checked, and
 * the failures a user meets (unreachable root, disagreeing ranks, missing ranks, strangers).
 *
 * rdt-test-labels: fault
 *
 * Each job runs in processes from rdt_spawn_local(), which puts RDT_ROOT=127.0.0.1:PORT and
 * RDT_TOKEN in their environment (read here with getenv: tests are not library code). A child
 * reports through its exit status (0 = as expected) and explains any failure on stderr.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bootstrap.h"
#include "spawn.h"
#include "testutil.h"

/* The hello's wire format (see bootstrap.c), needed to forge hostile ones. */
#define HELLO_MAGIC   0x52445448u
#define HELLO_VERSION 1u
#define HELLO_LEN     40

#define BLOB_BYTES 37 /* odd on purpose: no alignment luck */
#define MAX_PROCS  16

/* One job: which process does what, and what rank 0 must see. */
typedef struct scenario {
    int nranks; /* the job size every honest rank passes */
    int timeout_ms;
    int absent[2]; /* process indexes that never join (-1: none) */
    int liar;      /* process index passing liar_* instead (-1: none) */
    int liar_rank, liar_nranks;
    size_t liar_bytes;
    int hostile;             /* process index acting as a stranger (-1: none) */
    int crasher;             /* process index that says hello, then dies (-1: none) */
    int root_delay_ms;       /* rank 0 starts this late: the peers' deadlines come first */
    int go[2];               /* pipe: the stranger tells honest peers to start */
    rdt_status_t want;       /* status rank 0 must return */
    const char *want_msg[2]; /* substrings rank 0's error must contain */
} scenario_t;

static void scenario_init(scenario_t *sc, int nranks, int timeout_ms)
{
    memset(sc, 0, sizeof(*sc));
    sc->nranks = nranks;
    sc->timeout_ms = timeout_ms;
    sc->absent[0] = sc->absent[1] = -1;
    sc->liar = -1;
    sc->hostile = -1;
    sc->crasher = -1;
    sc->go[0] = sc->go[1] = -1;
    sc->want = RDT_SUCCESS;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Rank r's blob in a job of n: distinct per rank and per job size. */
static void blob_for(int r, int n, unsigned char *buf, size_t bytes)
{
    uint64_t state = (uint64_t)(r + 1) * 1000003u + (uint64_t)n;
    size_t i;

    for (i = 0; i < bytes; i++)
        buf[i] = (unsigned char)rdt_test_rand(&state);
}

/* RDT_ROOT and RDT_TOKEN from the environment rdt_spawn_local gives each child. */
static int params_from_env(rdt_bootstrap_params_t *p, char *host, size_t hostlen)
{
    const char *root = getenv("RDT_ROOT"), *tok = getenv("RDT_TOKEN"), *colon;
    size_t i;

    memset(p, 0, sizeof(*p));
    if (!root || !tok || !(colon = strrchr(root, ':')) || (size_t)(colon - root) >= hostlen ||
        strlen(tok) < 32)
        return -1;
    memcpy(host, root, (size_t)(colon - root));
    host[colon - root] = '\0';
    p->root_host = host;
    p->root_port = atoi(colon + 1);
    for (i = 0; i < 16; i++) {
        unsigned v;
        if (sscanf(tok + 2 * i, "%2x", &v) != 1)
            return -1;
        p->token[i] = (unsigned char)v;
    }
    return 0;
}

/* ---- the stranger --------------------------------------------------------------------------- */

static int connect_root(int port)
{
    struct sockaddr_in a;
    int64_t until = now_ms() + 5000;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    while (now_ms() < until) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            return -1;
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
            return fd;
        close(fd);
        usleep(10000);
    }
    return -1;
}

/* 1 once the root has closed @p fd (end of stream or reset), 0 if it did not within @p ms. */
static int closed_by_root(int fd, int ms)
{
    int64_t until = now_ms() + ms;

    while (now_ms() < until) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        char sink[256];
        ssize_t n;

        if (poll(&pfd, 1, (int)(until - now_ms())) <= 0)
            continue;
        n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return 1;
        if (n > 0)
            return 0; /* the root never writes to a stranger */
    }
    return 0;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void forge_hello(unsigned char *h, uint32_t version, const unsigned char *token,
                        uint32_t nranks, uint32_t rank, uint64_t len)
{
    put32(h, HELLO_MAGIC);
    put32(h + 4, version);
    memcpy(h + 8, token, 16);
    put32(h + 24, nranks);
    put32(h + 28, rank);
    put32(h + 32, (uint32_t)(len >> 32));
    put32(h + 36, (uint32_t)len);
}

/* Send @p len bytes (optionally half-closing), then expect the root to drop the connection. */
static int poke(int port, const void *buf, size_t len, int half_close, const char *what)
{
    int fd = connect_root(port), ok;

    if (fd < 0) {
        fprintf(stderr, "stranger: cannot connect for '%s'\n", what);
        return 0;
    }
    if (len && send(fd, buf, len, MSG_NOSIGNAL) != (ssize_t)len) {
        fprintf(stderr, "stranger: send for '%s' failed\n", what);
        close(fd);
        return 0;
    }
    if (half_close)
        shutdown(fd, SHUT_WR);
    ok = closed_by_root(fd, 4000);
    if (!ok)
        fprintf(stderr, "stranger: rank 0 kept the '%s' connection open\n", what);
    close(fd);
    return ok;
}

/*
 * Connect silently, and slowly, first: a root that served connections one by one, or blocked
 * reading one, would now be stuck (each poke below waits 4 s, less than the root's 5 s idle
 * limit). Present each kind of bad hello and wait until rank 0 has dropped it, then wait for
 * rank 0 to drop the silent and the slow connections for idleness. A second silent connection
 * is then left open while the honest peers run: the job must complete regardless, and close it.
 */
static int stranger_main(const scenario_t *sc)
{
    rdt_bootstrap_params_t p;
    char host[64];
    unsigned char h[HELLO_LEN + BLOB_BYTES], bad_token[16];
    static const char garbage[] = "GET / HTTP/1.0\r\n\r\n";
    int silent, slow, ok = 1, i;

    if (params_from_env(&p, host, sizeof(host)) != 0)
        return 30;
    memcpy(bad_token, p.token, 16);
    bad_token[7] ^= 0x40;
    memset(h, 0xab, sizeof(h));
    silent = connect_root(p.root_port);
    slow = connect_root(p.root_port);
    if (silent < 0 || slow < 0)
        return 31;
    /* The first 10 bytes of a good hello, then nothing: a root reading this connection
     * until it has a whole header would block here. */
    forge_hello(h, HELLO_VERSION, p.token, (uint32_t)sc->nranks, 1, BLOB_BYTES);
    if (send(slow, h, 10, MSG_NOSIGNAL) != 10)
        return 31;

    forge_hello(h, HELLO_VERSION, bad_token, (uint32_t)sc->nranks, 1, BLOB_BYTES);
    ok &= poke(p.root_port, h, sizeof(h), 0, "wrong token");
    ok &= poke(p.root_port, garbage, sizeof(garbage) - 1, 0, "garbage");
    forge_hello(h, HELLO_VERSION, p.token, (uint32_t)sc->nranks, 1, BLOB_BYTES);
    ok &= poke(p.root_port, h, 20, 1, "truncated header");
    forge_hello(h, HELLO_VERSION, bad_token, (uint32_t)sc->nranks, 1, (uint64_t)1 << 40);
    ok &= poke(p.root_port, h, HELLO_LEN, 0, "oversized blob length");
    forge_hello(h, HELLO_VERSION + 1, p.token, (uint32_t)sc->nranks, 1, BLOB_BYTES);
    ok &= poke(p.root_port, h, sizeof(h), 0, "wrong version");
    ok &= poke(p.root_port, NULL, 0, 1, "empty");
    if (!closed_by_root(silent, 8000) || !closed_by_root(slow, 2000)) {
        fprintf(stderr, "stranger: rank 0 never dropped the silent or the slow connection\n");
        ok = 0;
    }
    close(silent);
    close(slow);

    silent = connect_root(p.root_port);
    if (silent < 0)
        return 32;
    for (i = 1; i < sc->nranks; i++)
        if (write(sc->go[1], "g", 1) != 1)
            return 33;
    if (!closed_by_root(silent, 8000)) {
        fprintf(stderr, "stranger: the second silent connection outlived the job\n");
        ok = 0;
    }
    close(silent);
    return ok ? 0 : 34;
}

/* A rank of the job that presents a good hello, then dies without a word. */
static int crasher_main(int idx, const scenario_t *sc)
{
    rdt_bootstrap_params_t p;
    char host[64];
    unsigned char h[HELLO_LEN + BLOB_BYTES];
    int fd;

    if (params_from_env(&p, host, sizeof(host)) != 0 || (fd = connect_root(p.root_port)) < 0)
        return 40;
    forge_hello(h, HELLO_VERSION, p.token, (uint32_t)sc->nranks, (uint32_t)idx, BLOB_BYTES);
    blob_for(idx, sc->nranks, h + HELLO_LEN, BLOB_BYTES);
    if (send(fd, h, sizeof(h), MSG_NOSIGNAL) != (ssize_t)sizeof(h))
        return 41;
    usleep(200000);
    return 0; /* exit closes the connection */
}

/* ---- honest ranks --------------------------------------------------------------------------- */

static int wait_go(const scenario_t *sc, int ms)
{
    struct pollfd pfd = {.fd = sc->go[0], .events = POLLIN};
    char c;

    if (poll(&pfd, 1, ms) != 1 || read(sc->go[0], &c, 1) != 1)
        return -1;
    return 0;
}

/* Rank 0 of the stranger job: its warnings go to a file, checked after the exchange. */
static int check_warnings(FILE *log, int saved_stderr)
{
    static const char *const must[] = {
        "wrong job token",          "garbage",          "truncated hello", "protocol version",
        "without sending anything", "sent nothing for", "stalled for"};
    char text[16384];
    size_t n, i;
    int drops = 0, ok = 1;
    const char *s;

    fflush(stderr);
    dup2(saved_stderr, 2);
    rewind(log);
    n = fread(text, 1, sizeof(text) - 1, log);
    text[n] = '\0';
    for (s = text; (s = strstr(s, "dropped connection from 127.0.0.1:")) != NULL; s++)
        drops++;
    for (i = 0; i < sizeof(must) / sizeof(must[0]); i++)
        if (!strstr(text, must[i]))
            ok = 0;
    if (getenv("RDT_TEST_SHOW_LOG"))
        fprintf(stderr, "%s", text);
    if (drops < 8 || !ok) {
        fprintf(stderr, "rank 0: expected 8 drop warnings, found %d; log:\n%s", drops, text);
        return 0;
    }
    return 1;
}

static int rank_main(int idx, int nprocs, void *arg)
{
    const scenario_t *sc = arg;
    rdt_bootstrap_params_t p;
    char host[64], local_ip[64], err[600];
    unsigned char blob[BLOB_BYTES], *table;
    size_t bytes = BLOB_BYTES;
    FILE *log = NULL;
    int saved_stderr = -1, r, rc = 0;
    rdt_status_t st;

    if (idx == sc->hostile)
        return stranger_main(sc);
    if (idx == sc->crasher)
        return crasher_main(idx, sc);
    if (idx == sc->absent[0] || idx == sc->absent[1])
        return 0;
    if (params_from_env(&p, host, sizeof(host)) != 0)
        return 2;
    p.rank = idx;
    p.nranks = sc->nranks;
    p.timeout_ms = sc->timeout_ms;
    if (idx == sc->liar) {
        p.rank = sc->liar_rank;
        p.nranks = sc->liar_nranks;
        bytes = sc->liar_bytes;
    }
    if (sc->go[0] >= 0 && idx != 0 && wait_go(sc, 15000) != 0)
        return 3;
    if (sc->hostile >= 0 && idx == 0) {
        log = tmpfile();
        saved_stderr = dup(2);
        if (!log || saved_stderr < 0)
            return 4;
        fflush(stderr);
        dup2(fileno(log), 2);
    }

    if (idx == 0 && sc->root_delay_ms)
        usleep((useconds_t)sc->root_delay_ms * 1000);
    blob_for(p.rank, p.nranks, blob, bytes);
    table = malloc((size_t)p.nranks * bytes);
    if (!table)
        return 5;
    memset(local_ip, 'x', sizeof(local_ip));
    err[0] = '\0';
    st = rdt_bootstrap_exchange(&p, blob, bytes, table, local_ip, err, sizeof(err));
    if (log && !check_warnings(log, saved_stderr))
        rc = 6;

    if (sc->want == RDT_SUCCESS) {
        if (st != RDT_SUCCESS) {
            fprintf(stderr, "rank %d: %s: %s\n", idx, rdt_status_str(st), err);
            rc = 10;
        } else if (strcmp(local_ip, "127.0.0.1") != 0) {
            fprintf(stderr, "rank %d: local ip '%.63s', expected 127.0.0.1\n", idx, local_ip);
            rc = 11;
        } else {
            for (r = 0; r < p.nranks; r++) {
                blob_for(r, p.nranks, blob, bytes);
                if (memcmp(table + (size_t)r * bytes, blob, bytes) != 0) {
                    fprintf(stderr, "rank %d: slot %d of the table is wrong\n", idx, r);
                    rc = 12;
                }
            }
        }
    } else if (idx == 0) {
        if (st != sc->want) {
            fprintf(stderr, "rank 0: got %s (%s), expected %s\n", rdt_status_str(st), err,
                    rdt_status_str(sc->want));
            rc = 20;
        }
        for (r = 0; r < 2; r++) {
            if (sc->want_msg[r] && !strstr(err, sc->want_msg[r])) {
                fprintf(stderr, "rank 0: error '%s' does not say '%s'\n", err, sc->want_msg[r]);
                rc = 21;
            }
        }
    } else if (st == RDT_SUCCESS) {
        fprintf(stderr, "rank %d: succeeded in a job that must fail\n", idx);
        rc = 22;
    } else if (idx == sc->liar && st != sc->want) {
        /* The disagreeing rank is connected when rank 0 fails: it must hear why. */
        fprintf(stderr, "rank %d (liar): got %s (%s), expected %s\n", idx, rdt_status_str(st), err,
                rdt_status_str(sc->want));
        rc = 23;
    }
    free(table);
    (void)nprocs;
    return rc;
}

static void run_job(int nprocs, scenario_t *sc, int timeout_s)
{
    int statuses[MAX_PROCS], i, rc;

    assert_true(nprocs <= MAX_PROCS);
    rc = rdt_spawn_local(nprocs, rank_main, sc, timeout_s, statuses);
    for (i = 0; i < nprocs; i++)
        if (statuses[i] != 0)
            fprintf(stderr, "process %d of %d exited with %d\n", i, nprocs, statuses[i]);
    assert_int_equal(rc, 0);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_exchange_gives_every_rank_the_whole_table_for_1_2_3_5_8_ranks(void **state)
{
    static const int sizes[] = {1, 2, 3, 5, 8};
    size_t i;

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        scenario_t sc;
        scenario_init(&sc, sizes[i], 10000);
        run_job(sizes[i], &sc, 20);
    }
}

static void test_single_rank_needs_no_socket(void **state)
{
    rdt_bootstrap_params_t p;
    unsigned char blob[5] = {1, 2, 3, 4, 5}, table[5] = {0};
    char ip[64], err[128];

    memset(&p, 0, sizeof(p));
    p.nranks = 1;
    p.timeout_ms = 1000;
    /* Port 1 on a host nobody listens on: any socket use would fail or hang. */
    p.root_host = "127.0.0.1";
    p.root_port = 1;
    assert_int_equal(rdt_bootstrap_exchange(&p, blob, sizeof(blob), table, ip, err, sizeof(err)),
                     RDT_SUCCESS);
    assert_memory_equal(table, blob, sizeof(blob));
    assert_string_equal(ip, "127.0.0.1");
    p.root_host = NULL;
    memset(table, 0, sizeof(table));
    assert_int_equal(rdt_bootstrap_exchange(&p, blob, sizeof(blob), table, ip, err, sizeof(err)),
                     RDT_SUCCESS);
    assert_memory_equal(table, blob, sizeof(blob));
    assert_string_equal(ip, "127.0.0.1");
}

static void test_hostile_connections_do_not_disturb_a_running_job(void **state)
{
    scenario_t sc;

    scenario_init(&sc, 4, 20000);
    sc.hostile = 4; /* a fifth process, not in the job */
    assert_int_equal(pipe(sc.go), 0);
    run_job(5, &sc, 30);
    close(sc.go[0]);
    close(sc.go[1]);
}

/* A port on 127.0.0.1 with nothing listening (bound, then released). */
static int dead_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static void test_unreachable_root_times_out_naming_the_address(void **state)
{
    rdt_bootstrap_params_t p;
    unsigned char blob[8] = {0}, table[16];
    char ip[64] = "untouched", err[512], want[64];
    int64_t t0, elapsed;
    rdt_status_t st;

    memset(&p, 0, sizeof(p));
    p.rank = 1;
    p.nranks = 2;
    p.root_host = "127.0.0.1";
    p.root_port = dead_port();
    p.timeout_ms = 1000;
    t0 = now_ms();
    st = rdt_bootstrap_exchange(&p, blob, sizeof(blob), table, ip, err, sizeof(err));
    elapsed = now_ms() - t0;
    assert_true(st == RDT_ERR_TIMEOUT || st == RDT_ERR_NETWORK);
    snprintf(want, sizeof(want), "127.0.0.1:%d", p.root_port);
    if (!strstr(err, want) || !strstr(err, "unreachable"))
        fail_msg("error '%s' does not name %s", err, want);
    assert_string_equal(ip, "untouched"); /* outputs are set only on success */
    /* It kept retrying until the timeout, and gave up soon after it. */
    assert_true(elapsed >= 900);
    assert_true(elapsed < 4000);
}

static void test_mismatching_job_size_is_an_error_naming_both_sizes(void **state)
{
    scenario_t sc;

    scenario_init(&sc, 3, 2000);
    sc.liar = 2;
    sc.liar_rank = 2;
    sc.liar_nranks = 4;
    sc.liar_bytes = BLOB_BYTES;
    sc.want = RDT_ERR_CONFIG;
    sc.want_msg[0] = "has 4 ranks";
    sc.want_msg[1] = "rank 0 says 3";
    run_job(3, &sc, 20);
}

static void test_duplicate_rank_is_an_error_naming_it(void **state)
{
    scenario_t sc;

    scenario_init(&sc, 3, 2000);
    sc.liar = 2;
    sc.liar_rank = 1;
    sc.liar_nranks = 3;
    sc.liar_bytes = BLOB_BYTES;
    sc.want = RDT_ERR_CONFIG;
    sc.want_msg[0] = "rank 1 joined twice";
    run_job(3, &sc, 20);
}

static void test_mismatching_blob_length_is_an_error(void **state)
{
    scenario_t sc;

    scenario_init(&sc, 2, 2000);
    sc.liar = 1;
    sc.liar_rank = 1;
    sc.liar_nranks = 2;
    sc.liar_bytes = BLOB_BYTES - 1;
    sc.want = RDT_ERR_MISMATCH;
    sc.want_msg[0] = "36-byte";
    run_job(2, &sc, 20);
}

/* Rank 0 starts late, so the peers that came give up first: rank 0 must still name the
 * ranks that never came (the cause), not the peers that left (the symptom). */
static void test_ranks_that_never_arrive_are_named_by_rank_0(void **state)
{
    scenario_t sc;

    scenario_init(&sc, 6, 1500);
    sc.absent[0] = 3;
    sc.absent[1] = 5;
    sc.root_delay_ms = 300;
    sc.want = RDT_ERR_TIMEOUT;
    sc.want_msg[0] = "ranks 3, 5 did not arrive within 1.5 s";
    sc.want_msg[1] = "127.0.0.1:";
    run_job(6, &sc, 20);
}

static void test_rank_that_dies_after_its_hello_is_named_by_rank_0(void **state)
{
    scenario_t sc;

    scenario_init(&sc, 4, 3000);
    sc.crasher = 2;
    sc.absent[0] = 3; /* keeps the job waiting while rank 2 dies */
    sc.want = RDT_ERR_PEER_FAILED;
    sc.want_msg[0] = "rank 2 (127.0.0.1:";
    sc.want_msg[1] = "failed before the table was sent";
    run_job(4, &sc, 20);
}

/* A rank 0 that accepts, reads a little and dies: the peer fails at once instead of waiting. */
static void test_peer_fails_promptly_when_rank_0_dies_after_accepting(void **state)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    rdt_bootstrap_params_t p;
    unsigned char blob[8] = {0}, table[16];
    char ip[64], err[512];
    int lfd, st_child;
    int64_t t0, elapsed;
    pid_t pid;
    rdt_status_t st;

    lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    fflush(stderr);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char buf[10];
        int fd = accept(lfd, NULL, NULL);
        if (fd >= 0 && recv(fd, buf, sizeof(buf), MSG_WAITALL) > 0)
            _exit(0); /* dies with unread bytes: the peer sees a reset */
        _exit(1);
    }
    close(lfd);

    memset(&p, 0, sizeof(p));
    p.rank = 1;
    p.nranks = 2;
    p.root_host = "127.0.0.1";
    p.root_port = ntohs(a.sin_port);
    p.timeout_ms = 8000;
    t0 = now_ms();
    st = rdt_bootstrap_exchange(&p, blob, sizeof(blob), table, ip, err, sizeof(err));
    elapsed = now_ms() - t0;
    assert_int_equal(waitpid(pid, &st_child, 0), pid);
    assert_int_equal(st, RDT_ERR_PEER_FAILED);
    if (!strstr(err, "rank 0 closed the connection"))
        fail_msg("unexpected error '%s'", err);
    assert_true(elapsed < 6000); /* well before the 8 s timeout: no hang */
}

static void test_invalid_arguments_and_wildcard_root_are_rejected(void **state)
{
    rdt_bootstrap_params_t p;
    unsigned char blob[4] = {0}, table[8];
    char ip[64], err[256];

    memset(&p, 0, sizeof(p));
    p.rank = 2;
    p.nranks = 2;
    p.root_host = "127.0.0.1";
    p.root_port = dead_port();
    p.timeout_ms = 1000;
    assert_int_equal(rdt_bootstrap_exchange(&p, blob, sizeof(blob), table, ip, err, sizeof(err)),
                     RDT_ERR_INVALID_ARG);
    p.rank = 0;
    p.root_port = 0;
    assert_int_equal(rdt_bootstrap_exchange(&p, blob, sizeof(blob), table, ip, err, sizeof(err)),
                     RDT_ERR_INVALID_ARG);
    p.root_port = dead_port();
    p.root_host = "0.0.0.0";
    assert_int_equal(rdt_bootstrap_exchange(&p, blob, sizeof(blob), table, ip, err, sizeof(err)),
                     RDT_ERR_CONFIG);
    if (!strstr(err, "wildcard"))
        fail_msg("unexpected error '%s'", err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exchange_gives_every_rank_the_whole_table_for_1_2_3_5_8_ranks),
        cmocka_unit_test(test_single_rank_needs_no_socket),
        cmocka_unit_test(test_hostile_connections_do_not_disturb_a_running_job),
        cmocka_unit_test(test_unreachable_root_times_out_naming_the_address),
        cmocka_unit_test(test_mismatching_job_size_is_an_error_naming_both_sizes),
        cmocka_unit_test(test_duplicate_rank_is_an_error_naming_it),
        cmocka_unit_test(test_mismatching_blob_length_is_an_error),
        cmocka_unit_test(test_ranks_that_never_arrive_are_named_by_rank_0),
        cmocka_unit_test(test_rank_that_dies_after_its_hello_is_named_by_rank_0),
        cmocka_unit_test(test_peer_fails_promptly_when_rank_0_dies_after_accepting),
        cmocka_unit_test(test_invalid_arguments_and_wildcard_root_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
