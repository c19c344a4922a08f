/*
 * test_hier_netns.c - the hierarchical allreduce and every collective across network
 * namespaces that act as hosts: shared memory inside a host, TCP between hosts, and the bytes
 * that cross between hosts as the hierarchical schedule predicts.
 *
 * rdt-test-labels: multihost
 *
 * Three host namespaces on a bridge (tests/common/netns.h: 198.51.100.11-13, each host's eth0 a
 * veth into the bridge's namespace; nothing in the root namespace). The launcher runs in the
 * bridge's namespace and reaches every host through the --rsh agent, which enters the host's
 * namespace with `ip netns exec` and sets RDT_HOSTNAME=<address>, so each namespace is its own
 * host for the engine. Shapes: 2 hosts x 2 ranks, and 3 hosts with 2, 1 and 3 ranks (ranks
 * numbered consecutively per host, in the order of the hosts file). RDT_TRANSPORT=auto.
 *
 * 1. Every collective: rdt_bench (-k 1: every size of allreduce, reduce_scatter, allgather,
 *    broadcast, reduce, alltoall and barrier is compared element by element with its own
 *    reference, #wrong summed over ranks; exit 1 on any) at 4 KiB, 128 KiB and 4 MiB (rounded
 *    down to a multiple of the ranks for the whole-vector collectives), float32
 *    and int32, sum and max, out of place and in place; with the library's choice,
 *    RDT_ALGO=allreduce:hier and RDT_ALGO=allreduce:ring. Checked: the launcher's status, every
 *    row of rdt_bench's JSON (7 collectives, #wrong 0, >= 1 MiB present), and from RDT_LOG=info
 *    that each rank has its host's other ranks through shm and the rest through tcp, that the
 *    engine saw the hosts, and that the forced algorithm ran.
 * 2. Bytes between hosts: this program itself as the ranks (--rank BYTES: one int32 sum
 *    allreduce of BYTES, every element checked against a closed form computed here), 8 MiB,
 *    hier and ring forced. The test reads every host's eth0 and lo counters (in its namespace)
 *    before and after the job. Bytes leaving each host must lie within [P, 1.10 P] of the
 *    prediction P: 2(H-1)/H x N for hier; for the ring, 2(p-1)/p x N per rank whose successor is
 *    on another host (2x2: 1.5 N; 2/1/3: 5/3 N). Headers (TCP/IP, the engine's 24-byte one),
 *    ACKs, the bootstrap and the connections are the excess. The ring must send more than hier
 *    from every host. lo must carry less than N/16 (the ranks of a host talk through shm, not
 *    loopback TCP; the bootstrap to rank 0's host does use lo).
 * After every job: no process is left in any host namespace.
 *
 * Needs root and `ip netns`: else exit 77 (ctest: skipped), or a failure with
 * RDT_TEST_REQUIRE_NETNS=1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rdmatrain.h>

#include "netns.h"

#if !defined(RDT_LAUNCHER) || !defined(RDT_BENCH)
#error "RDT_LAUNCHER and RDT_BENCH must be defined by the build"
#endif

#define JOB_SECS  150        /* a job still running after this is killed (a failure) */
#define BYTES_N   (8u << 20) /* the allreduce whose bytes between hosts are counted */
#define TOLERANCE 0.10       /* headers, ACKs, bootstrap: at most 10% over the prediction */

static rdt_netns_t nn;
static char tmpdir[256];
static char self[4096]; /* this program, started as the ranks of the byte-count jobs */

typedef struct shape {
    const char *name;
    int nhosts;
    int ranks[RDT_NETNS_MAX_HOSTS];
    char hosts_file[300];
} shape_t;

static shape_t shape_2x2 = {"2 hosts x 2 ranks", 2, {2, 2}, ""};
static shape_t shape_213 = {"3 hosts x 2/1/3 ranks", 3, {2, 1, 3}, ""};

static int shape_np(const shape_t *s)
{
    int h, p = 0;
    for (h = 0; h < s->nhosts; h++)
        p += s->ranks[h];
    return p;
}

static int host_of_rank(const shape_t *s, int r)
{
    int h;
    for (h = 0; h < s->nhosts; h++) {
        if (r < s->ranks[h])
            return h;
        r -= s->ranks[h];
    }
    return -1;
}

/* ------------------------------------------------------------------------------------------- */
/* Rank program: one allreduce                                                                  */
/* ------------------------------------------------------------------------------------------- */

static int32_t value(int r, size_t i)
{
    return (int32_t)((i * 7 + (size_t)r * 13) % 1021) - 500 + r;
}

static int rank_main(size_t bytes)
{
    rdt_comm_t *comm;
    size_t n = bytes / sizeof(int32_t), i, wrong = 0;
    int32_t *v;
    int r, p, q;

    if (rdt_comm_create_from_env(&comm) != RDT_SUCCESS) {
        fprintf(stderr, "%s\n", rdt_comm_last_error(NULL));
        return 2;
    }
    r = rdt_comm_rank(comm);
    p = rdt_comm_size(comm);
    v = malloc(n * sizeof(*v) + 1);
    if (!v)
        return 2;
    for (i = 0; i < n; i++)
        v[i] = value(r, i);
    if (rdt_allreduce(comm, v, v, n, RDT_INT32, RDT_SUM) != RDT_SUCCESS) {
        fprintf(stderr, "rank %d: %s\n", r, rdt_comm_last_error(comm));
        return 2;
    }
    for (i = 0; i < n; i++) {
        int64_t want = 0;
        for (q = 0; q < p; q++)
            want += value(q, i);
        if (v[i] != want && wrong++ < 3)
            fprintf(stderr, "rank %d: element %zu is %d, want %lld\n", r, i, v[i], (long long)want);
    }
    printf("rank %d of %d: allreduce of %zu bytes: %zu wrong\n", r, p, bytes, wrong);
    free(v);
    rdt_comm_destroy(comm);
    return wrong ? 1 : 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Running the launcher in the bridge's namespace                                               */
/* ------------------------------------------------------------------------------------------- */

typedef struct job {
    int status;
    char *out, *err;
} job_t;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *p;
    long n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc((size_t)n + 1);
    assert_non_null(p);
    n = (long)fread(p, 1, (size_t)n, f);
    p[n] = '\0';
    fclose(f);
    return p;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Every host namespace empty within 5 s of the launcher's exit. */
static void expect_no_processes_left(void)
{
    int64_t until = now_ms() + 5000;
    int h, n;

    for (;;) {
        for (h = 0, n = 0; h < nn.nhosts; h++)
            n += rdt_netns_npids(&nn, h);
        if (n == 0 || now_ms() > until)
            break;
        usleep(50000);
    }
    if (n)
        fprintf(stderr, "%d process(es) left in the host namespaces\n", n);
    assert_int_equal(n, 0);
}

/* rdmatrain -H HOSTS --rsh AGENT --timeout T -x RDT_TRANSPORT=auto -x RDT_LOG=info
 *           [-x RDT_ALGO=ALGO] -- ARGV... */
static void run_job(job_t *j, const shape_t *s, const char *algo, const char *const *prog)
{
    char out[300], err[300], algo_env[128], timeout[16];
    const char *argv[64];
    int n = 0, fd;
    int64_t deadline = now_ms() + JOB_SECS * 1000;
    pid_t pid;

    snprintf(out, sizeof(out), "%s/job.out", tmpdir);
    snprintf(err, sizeof(err), "%s/job.err", tmpdir);
    snprintf(timeout, sizeof(timeout), "%d", JOB_SECS - 10);
    argv[n++] = nn.ip;
    argv[n++] = "netns";
    argv[n++] = "exec";
    argv[n++] = nn.sw;
    argv[n++] = RDT_LAUNCHER;
    argv[n++] = "-H";
    argv[n++] = s->hosts_file;
    argv[n++] = "--rsh";
    argv[n++] = nn.agent;
    argv[n++] = "--timeout";
    argv[n++] = timeout;
    argv[n++] = "-x";
    argv[n++] = "RDT_TRANSPORT=auto";
    argv[n++] = "-x";
    argv[n++] = "RDT_LOG=info";
    argv[n++] = "-x";
    argv[n++] = "RDT_CONNECT_TIMEOUT=30";
    if (algo) {
        snprintf(algo_env, sizeof(algo_env), "RDT_ALGO=%s", algo);
        argv[n++] = "-x";
        argv[n++] = algo_env;
    }
    argv[n++] = "--";
    while (*prog && n < 63)
        argv[n++] = *prog++;
    argv[n] = NULL;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* if this test dies, the launcher stops the job */
        unsetenv("RDT_ALGO");             /* only what -x says */
        unsetenv("RDT_TRANSPORT");
        fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(126);
    }
    for (;;) {
        pid_t w = waitpid(pid, &j->status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            fail_msg("waitpid: %s", strerror(errno));
        if (now_ms() > deadline) {
            fprintf(stderr, "launcher still running after %d s: stopping it\n", JOB_SECS);
            kill(pid, now_ms() > deadline + 5000 ? SIGKILL : SIGTERM);
        }
        usleep(50000);
    }
    j->out = slurp(out);
    j->err = slurp(err);
    expect_no_processes_left();
}

static void job_free(job_t *j)
{
    free(j->out);
    free(j->err);
    memset(j, 0, sizeof(*j));
}

static void expect_exit_0(const job_t *j, const char *what)
{
    if (!WIFEXITED(j->status) || WEXITSTATUS(j->status) != 0) {
        fprintf(stderr, "%s: launcher status 0x%x\n--- stdout:\n%s\n--- stderr:\n%s\n", what,
                j->status, j->out, j->err);
        fail();
    }
}

/* A line of @p text starting with @p prefix and containing @p what. */
static int line_with(const char *text, const char *prefix, const char *what)
{
    const char *p = text;
    size_t plen = strlen(prefix);

    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len >= plen && strncmp(p, prefix, plen) == 0) {
            const char *hit = strstr(p, what);
            if (hit && hit + strlen(what) <= p + len)
                return 1;
        }
        p = nl ? nl + 1 : NULL;
    }
    return 0;
}

static void expect_line(const job_t *j, const char *prefix, const char *what)
{
    if (!line_with(j->err, prefix, what) && !line_with(j->out, prefix, what)) {
        fprintf(stderr, "no line '%s...%s' in\n--- stdout:\n%s\n--- stderr:\n%s\n", prefix, what,
                j->out, j->err);
        fail();
    }
}

/* From RDT_LOG=info: each rank reaches its host's other ranks through shm and every other rank
 * through tcp; rank 0 saw the hosts; @p algo (if any) ran allreduce at @p bytes. */
static void expect_transports_and_algo(const job_t *j, const shape_t *s, const char *algo,
                                       size_t bytes)
{
    char pre[64], want[160];
    int p = shape_np(s), r, lmax = 0, h;

    for (h = 0; h < s->nhosts; h++)
        lmax = s->ranks[h] > lmax ? s->ranks[h] : lmax;
    for (r = 0; r < p; r++) {
        int local = s->ranks[host_of_rank(s, r)];
        snprintf(pre, sizeof(pre), "[%s:%d] ", nn.addr[host_of_rank(s, r)], r);
        snprintf(want, sizeof(want), "rank %d: %d peer%s through shm, %d through tcp", r, local - 1,
                 local - 1 == 1 ? "" : "s", p - local);
        expect_line(j, pre, want);
    }
    snprintf(pre, sizeof(pre), "[%s:0] ", nn.addr[0]);
    snprintf(want, sizeof(want), "%d ranks on %d hosts (at most %d on one)", p, s->nhosts, lmax);
    expect_line(j, pre, want);
    if (algo) {
        snprintf(want, sizeof(want), "allreduce of %zu bytes on %d ranks: %s (forced by RDT_ALGO)",
                 bytes, p, strchr(algo, ':') + 1);
        expect_line(j, pre, want);
    }
}

/* ------------------------------------------------------------------------------------------- */
/* 1. Every collective, checked by rdt_bench                                                    */
/* ------------------------------------------------------------------------------------------- */

static const char *const colls[] = {"allreduce", "reduce_scatter", "allgather", "broadcast",
                                    "reduce",    "alltoall",       "barrier"};
#define NCOLLS ((int)(sizeof(colls) / sizeof(colls[0])))

/* rdt_bench's JSON: one row a line; every row's #wrong 0, every collective present, a size of
 * 1 MiB or more for all but barrier (4 MiB, rounded down to a multiple of the ranks for the
 * whole-vector collectives). */
static void expect_bench_json(const char *path, int np)
{
    char *text = slurp(path), *line, *save = NULL, want[64];
    int rows[NCOLLS] = {0}, big[NCOLLS] = {0}, c, bad = 0;

    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *p;
        if (!strstr(line, "\"collective\""))
            continue;
        for (c = 0; c < NCOLLS; c++) {
            snprintf(want, sizeof(want), "\"collective\": \"%s\"", colls[c]);
            if (strstr(line, want))
                break;
        }
        assert_true(c < NCOLLS);
        rows[c]++;
        if ((p = strstr(line, "\"size\": ")) && strtoull(p + 8, NULL, 10) >= (1u << 20))
            big[c]++;
        snprintf(want, sizeof(want), "\"nranks\": %d,", np);
        if (!strstr(line, want))
            bad = 1;
        /* barrier has nothing to check (null); every other row was checked: 0 wrong */
        if (c != NCOLLS - 1 && !strstr(line, "\"oop_wrong\": 0,"))
            bad = 1;
        for (p = strstr(line, "_wrong\": "); c != NCOLLS - 1 && p; p = strstr(p + 1, "_wrong\": "))
            if (strncmp(p, "_wrong\": 0,", 11) != 0 && strncmp(p, "_wrong\": 0}", 11) != 0)
                bad = 1;
        if (bad) {
            fprintf(stderr, "bad row: %s\n", line);
            fail();
        }
    }
    for (c = 0; c < NCOLLS; c++) {
        if (rows[c] == 0 || (c != NCOLLS - 1 && big[c] == 0)) {
            fprintf(stderr, "%s: %d rows, %d of 1 MiB or more\n", colls[c], rows[c], big[c]);
            fail();
        }
    }
    free(text);
}

static void every_collective(const shape_t *s)
{
    static const char *const algos[] = {NULL, "allreduce:hier", "allreduce:ring"};
    char json[300];
    const char *prog[] = {RDT_BENCH,
                          "-c",
                          "all",
                          "-b",
                          "4K",
                          "-e",
                          "4M",
                          "-f",
                          "32",
                          "-w",
                          "0",
                          "-i",
                          "1",
                          "-r",
                          "1",
                          "-k",
                          "1",
                          "-d",
                          "float32,int32",
                          "-o",
                          "sum,max",
                          "-j",
                          json,
                          NULL};
    size_t a;

    snprintf(json, sizeof(json), "%s/bench.json", tmpdir);
    for (a = 0; a < sizeof(algos) / sizeof(algos[0]); a++) {
        job_t j;
        int64_t t0 = now_ms();
        unlink(json);
        run_job(&j, s, algos[a], prog);
        expect_exit_0(&j, "rdt_bench");
        expect_transports_and_algo(&j, s, algos[a], 4u << 20);
        expect_bench_json(json, shape_np(s));
        printf("%s, RDT_ALGO=%s: every collective correct (%.1f s)\n", s->name,
               algos[a] ? algos[a] : "(library's choice)", (double)(now_ms() - t0) / 1e3);
        job_free(&j);
    }
}

static void test_every_collective_2x2(void **state)
{
    (void)state;
    every_collective(&shape_2x2);
}

static void test_every_collective_3_hosts_2_1_3(void **state)
{
    (void)state;
    every_collective(&shape_213);
}

/* ------------------------------------------------------------------------------------------- */
/* 2. Bytes between hosts                                                                       */
/* ------------------------------------------------------------------------------------------- */

typedef struct counters {
    long long out[RDT_NETNS_MAX_HOSTS], in[RDT_NETNS_MAX_HOSTS], lo[RDT_NETNS_MAX_HOSTS];
} counters_t;

static void read_counters(const shape_t *s, counters_t *c)
{
    int h;
    for (h = 0; h < s->nhosts; h++) {
        c->out[h] = rdt_netns_counter(&nn, h, "eth0", "tx_bytes");
        c->in[h] = rdt_netns_counter(&nn, h, "eth0", "rx_bytes");
        c->lo[h] = rdt_netns_counter(&nn, h, "lo", "tx_bytes");
        assert_true(c->out[h] >= 0 && c->in[h] >= 0 && c->lo[h] >= 0);
    }
}

/* Bytes each host sends to other hosts in an allreduce of @p n bytes. */
static double predicted(const shape_t *s, int hier, int h, double n)
{
    int p = shape_np(s), r, cross = 0;

    if (hier)
        return 2.0 * (s->nhosts - 1) / s->nhosts * n;
    for (r = 0; r < p; r++) /* ring: each rank sends 2(p-1)/p n to rank r+1 */
        if (host_of_rank(s, r) == h && host_of_rank(s, (r + 1) % p) != h)
            cross++;
    return cross * 2.0 * (p - 1) / p * n;
}

/* One allreduce of BYTES_N with @p algo; the bytes out of each host in sent[]. */
static void count_bytes(const shape_t *s, int hier, long long *sent)
{
    const char *algo = hier ? "allreduce:hier" : "allreduce:ring";
    char bytes[32];
    const char *prog[] = {self, "--rank", bytes, NULL};
    counters_t before, after;
    job_t j;
    int h, r, p = shape_np(s);

    snprintf(bytes, sizeof(bytes), "%u", BYTES_N);
    read_counters(s, &before);
    run_job(&j, s, algo, prog);
    read_counters(s, &after);
    expect_exit_0(&j, "allreduce");
    expect_transports_and_algo(&j, s, algo, BYTES_N);
    for (r = 0; r < p; r++) {
        char pre[64], want[96];
        snprintf(pre, sizeof(pre), "[%s:%d] ", nn.addr[host_of_rank(s, r)], r);
        snprintf(want, sizeof(want), "rank %d of %d: allreduce of %u bytes: 0 wrong", r, p,
                 BYTES_N);
        expect_line(&j, pre, want);
    }
    for (h = 0; h < s->nhosts; h++) {
        double pred = predicted(s, hier, h, BYTES_N);
        long long out = after.out[h] - before.out[h], in = after.in[h] - before.in[h];
        long long lo = after.lo[h] - before.lo[h];
        printf("%s, %s, host %s: %lld B out (prediction %.0f = %.3f N, %+.2f%%), %lld B in, "
               "%lld B on lo\n",
               s->name, algo, nn.addr[h], out, pred, pred / BYTES_N, (out - pred) / pred * 100.0,
               in, lo);
        sent[h] = out;
        if (out < pred || out > pred * (1.0 + TOLERANCE))
            fail_msg("host %s sent %lld bytes to other hosts; want %.0f to %.0f", nn.addr[h], out,
                     pred, pred * (1.0 + TOLERANCE));
        if (lo >= BYTES_N / 16)
            fail_msg("host %s: %lld bytes over lo: its ranks did not use shared memory", nn.addr[h],
                     lo);
    }
    job_free(&j);
}

static void hier_sends_less(const shape_t *s)
{
    long long hier[RDT_NETNS_MAX_HOSTS], ring[RDT_NETNS_MAX_HOSTS];
    int h;

    count_bytes(s, 1, hier);
    count_bytes(s, 0, ring);
    for (h = 0; h < s->nhosts; h++)
        if (ring[h] <= hier[h])
            fail_msg("host %s: the flat ring sent %lld bytes, hier %lld: hier should send less",
                     nn.addr[h], ring[h], hier[h]);
}

static void test_allreduce_bytes_between_hosts_2x2(void **state)
{
    (void)state;
    hier_sends_less(&shape_2x2);
}

static void test_allreduce_bytes_between_hosts_3_hosts_2_1_3(void **state)
{
    (void)state;
    hier_sends_less(&shape_213);
}

/* ------------------------------------------------------------------------------------------- */

static void write_hosts(shape_t *s, const char *name)
{
    FILE *f;
    int h;

    snprintf(s->hosts_file, sizeof(s->hosts_file), "%s/%s", tmpdir, name);
    f = fopen(s->hosts_file, "w");
    assert_non_null(f);
    for (h = 0; h < s->nhosts; h++)
        fprintf(f, "%s slots=%d\n", nn.addr[h], s->ranks[h]);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rdt-test-hier-netns-XXXXXX");
    if (!mkdtemp(tmpdir) || chmod(tmpdir, 0755))
        return -1;
    if (rdt_netns_create(&nn, 3, tmpdir))
        return -1;
    write_hosts(&shape_2x2, "hosts-2x2.txt");
    write_hosts(&shape_213, "hosts-213.txt");
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) ? -1 : 0;
}

static int teardown(void **state)
{
    int rc = rdt_netns_destroy(&nn);

    (void)state;
    if (tmpdir[0] && nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS))
        rc = -1;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    return rc;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_collective_2x2),
        cmocka_unit_test(test_every_collective_3_hosts_2_1_3),
        cmocka_unit_test(test_allreduce_bytes_between_hosts_2x2),
        cmocka_unit_test(test_allreduce_bytes_between_hosts_3_hosts_2_1_3),
    };
    ssize_t n;

    if (argc == 3 && strcmp(argv[1], "--rank") == 0)
        return rank_main(strtoull(argv[2], NULL, 10));
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return 1;
    self[n] = '\0';
    rdt_netns_require(&nn, "test_hier_netns", "rdthn");
    setvbuf(stdout, NULL, _IOLBF, 0);
    return cmocka_run_group_tests(tests, setup, teardown);
}
