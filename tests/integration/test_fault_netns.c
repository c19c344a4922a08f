/* rdt-test-labels: fault multihost */
/*
 * test_fault_netns.c - a network link that goes down mid-run: every rank fails within
 * RDT_TIMEOUT + 2 s naming a rank of the other host, over TCP between two network namespaces
 * acting as hosts (tests/common/netns.h: 198.51.100.11 and .12 on veths to a bridge).
 *
 * The ranks are forked here (tools/spawn.h) and each enters its host's namespace with setns()
 * before creating the communicator; RDT_ROOT points at host 0's address, RDT_HOSTNAME names the
 * host. Shapes: 2 hosts x 1 rank and 2 hosts x 2 ranks, RDT_TRANSPORT=tcp, RDT_TIMEOUT=5. The
 * ranks run a loop of allreduces of 1000 and 1 Mi int32 (results checked); once every rank
 * finished one, after a random delay (seed printed, RDT_TEST_SEED replays it), the test sets
 * host 1's eth0 down. Nothing is reset or closed: packets simply vanish. What tells is TCP's
 * user timeout (tcp.c sets TCP_USER_TIMEOUT to RDT_CONNECT_TIMEOUT, 3 s here: a rank whose data
 * stays unacknowledged that long fails the connection naming the peer, and its failure notice
 * reaches the ranks of its host) or else the engine's RDT_TIMEOUT=5. Every rank must fail
 * within RDT_TIMEOUT + 2 s naming a rank on the other host (one it was waiting for, or one a
 * rank of its own host gave up on).
 *
 * Needs root and `ip netns`: else exit 77 (ctest: skipped), or a failure with
 * RDT_TEST_REQUIRE_NETNS=1 (the rule of common/netns.h).
 */
#include <rdmatrain.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "netns.h"
#include "spawn.h"
#include "testutil.h"

#define FN_MAX_RANKS       4
#define FN_TIMEOUT_S       5
#define FN_USER_TIMEOUT_S  3 /* RDT_CONNECT_TIMEOUT, which tcp.c uses as TCP_USER_TIMEOUT */
#define FN_SLACK_S         2.0
#define FN_LOOP_S          30
#define FN_SPAWN_TIMEOUT_S 60
#define FN_START_TIMEOUT_S 30
#define FN_MAX_DELAY_MS    200
#define FN_BIG             ((size_t)1 << 20)

enum { FN_RUNNING, FN_FAILED, FN_NO_ERROR, FN_WRONG_RESULT, FN_SETUP_FAILED };

typedef struct fn_rank {
    atomic_int iters;
    atomic_int state;
    int status;
    int64_t err_ns;
    char msg[1024];
} fn_rank_t;

typedef struct fn_job {
    fn_rank_t *r; /* MAP_SHARED, one per rank */
    int per_host;
    int hook_ok;
    int delay_ms;
    int64_t fault_ns;
    char hook_error[256];
} fn_job_t;

static rdt_netns_t nn;
static char tmpdir[256];
static uint64_t fn_seed;

static int64_t fn_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fn_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void fn_record(fn_rank_t *me, int state, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fn_record(fn_rank_t *me, int state, int status, const char *fmt, ...)
{
    va_list ap;
    me->err_ns = fn_now_ns();
    me->status = status;
    va_start(ap, fmt);
    vsnprintf(me->msg, sizeof(me->msg), fmt, ap);
    va_end(ap);
    atomic_store(&me->state, state);
}

/* Enter host (rank / per_host)'s namespace, point RDT_ROOT at host 0, loop allreduces until
 * one fails. */
static int fn_body(int rank, int nranks, void *arg)
{
    fn_job_t *job = arg;
    fn_rank_t *me = &job->r[rank];
    int h = rank / job->per_host, fd, it, bad = 0;
    const char *root = getenv("RDT_ROOT"), *colon = root ? strrchr(root, ':') : NULL;
    char path[128], val[64];
    int64_t deadline = fn_now_ns() + (int64_t)FN_LOOP_S * 1000000000;
    int32_t *v;
    rdt_comm_t *comm;
    rdt_status_t st;

    (void)nranks;
    snprintf(path, sizeof(path), "/run/netns/%s", nn.host[h]);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0 || !colon) {
        fn_record(me, FN_SETUP_FAILED, 0, "cannot enter %s: %s", path, strerror(errno));
        return 1;
    }
    close(fd);
    snprintf(val, sizeof(val), "%s%s", nn.addr[0], colon);
    setenv("RDT_ROOT", val, 1);
    setenv("RDT_HOSTNAME", nn.addr[h], 1);
    setenv("RDT_TRANSPORT", "tcp", 1);
    snprintf(val, sizeof(val), "%d", FN_TIMEOUT_S);
    setenv("RDT_TIMEOUT", val, 1);
    snprintf(val, sizeof(val), "%d", FN_USER_TIMEOUT_S);
    setenv("RDT_CONNECT_TIMEOUT", val, 1);
    setenv("RDT_LOG", "error", 1);
    v = calloc(FN_BIG, sizeof(*v));
    if (!v) {
        fn_record(me, FN_SETUP_FAILED, 0, "no memory");
        return 1;
    }
    st = rdt_comm_create_from_env(&comm);
    if (st != RDT_SUCCESS) {
        fn_record(me, FN_SETUP_FAILED, (int)st, "create: %s", rdt_comm_last_error(NULL));
        free(v);
        return 1;
    }
    for (it = 0; fn_now_ns() < deadline; it++) {
        size_t n = it % 2 ? FN_BIG : 1000;
        int p = rdt_comm_size(comm);
        v[0] = (rank + 1) * (it + 1);
        v[n - 1] = rank + 1 + it;
        st = rdt_allreduce(comm, v, v, n, RDT_INT32, RDT_SUM);
        if (st != RDT_SUCCESS) {
            fn_record(me, FN_FAILED, (int)st, "%s", rdt_comm_last_error(comm));
            break;
        }
        if (v[0] != p * (p + 1) / 2 * (it + 1) || v[n - 1] != p * (p + 1) / 2 + p * it) {
            bad = 1;
            fn_record(me, FN_WRONG_RESULT, 0, "allreduce #%d of %zu: wrong result", it, n);
            break;
        }
        atomic_fetch_add(&me->iters, 1);
    }
    if (!bad && atomic_load(&me->state) == FN_RUNNING)
        fn_record(me, FN_NO_ERROR, 0, "no error within %d s (%d calls)", FN_LOOP_S, it);
    rdt_comm_destroy(comm);
    free(v);
    return atomic_load(&me->state) == FN_FAILED ? 0 : 1;
}

static void fn_hook(int nranks, const int *pids, void *arg)
{
    fn_job_t *job = arg;
    int64_t until = fn_now_ns() + (int64_t)FN_START_TIMEOUT_S * 1000000000;
    int i, ready = 0;

    while (!ready && fn_now_ns() < until) {
        ready = 1;
        for (i = 0; i < nranks; i++) {
            if (atomic_load(&job->r[i].state) != FN_RUNNING) {
                snprintf(job->hook_error, sizeof(job->hook_error),
                         "rank %d stopped before the fault: %.200s", i, job->r[i].msg);
                ready = -1;
                break;
            }
            ready &= atomic_load(&job->r[i].iters) > 0;
        }
        if (ready < 0)
            break;
        if (!ready)
            fn_sleep_ms(5);
    }
    if (ready != 1) {
        if (ready == 0)
            snprintf(job->hook_error, sizeof(job->hook_error),
                     "a rank did not finish a call in %d s", FN_START_TIMEOUT_S);
        for (i = 0; i < nranks; i++)
            kill(pids[i], SIGKILL);
        return;
    }
    fn_sleep_ms(job->delay_ms);
    job->fault_ns = fn_now_ns();
    if (rdt_netns_ip(&nn, NULL, "-n %s link set eth0 down", nn.host[1]) != 0) {
        snprintf(job->hook_error, sizeof(job->hook_error), "ip link set eth0 down failed");
        for (i = 0; i < nranks; i++)
            kill(pids[i], SIGKILL);
        return;
    }
    job->hook_ok = 1;
}

/* Does @p msg name a rank of host @p h ("rank 2 (host ...")? */
static int fn_names_host(const char *msg, int h, int per_host)
{
    int r;
    for (r = h * per_host; r < (h + 1) * per_host; r++) {
        char want[32];
        snprintf(want, sizeof(want), "rank %d (host ", r);
        if (strstr(msg, want))
            return 1;
    }
    return 0;
}

static void fn_run(int per_host)
{
    int nranks = 2 * per_host, st[FN_MAX_RANKS], i;
    double worst = 0;
    fn_job_t job;

    memset(&job, 0, sizeof(job));
    job.r = mmap(NULL, sizeof(fn_rank_t) * FN_MAX_RANKS, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(job.r != MAP_FAILED);
    memset(job.r, 0, sizeof(fn_rank_t) * FN_MAX_RANKS);
    job.per_host = per_host;
    job.delay_ms = (int)(rdt_test_rand(&fn_seed) % FN_MAX_DELAY_MS);
    rdt_spawn_local_hook(nranks, fn_body, &job, FN_SPAWN_TIMEOUT_S, st, fn_hook, &job);
    assert_int_equal(rdt_netns_ip(&nn, NULL, "-n %s link set eth0 up", nn.host[1]), 0);
    if (!job.hook_ok) {
        for (i = 0; i < nranks; i++)
            print_message("  rank %d: exit %d: %s\n", i, st[i], job.r[i].msg);
        fail_msg("2 hosts x %d ranks: %s", per_host, job.hook_error);
    }
    for (i = 0; i < nranks; i++) {
        const fn_rank_t *r = &job.r[i];
        int other = 1 - i / per_host;
        double t = (double)(r->err_ns - job.fault_ns) / 1e9;
        print_message("  2x%d rank %d after %.3f s: %s\n", per_host, i, t, r->msg);
        if (r->state != FN_FAILED || st[i] != 0)
            fail_msg("2 hosts x %d ranks, link down after %d ms: rank %d (exit %d) did not fail "
                     "as expected: %s",
                     per_host, job.delay_ms, i, st[i], r->msg);
        if (t > FN_TIMEOUT_S + FN_SLACK_S)
            fail_msg("2 hosts x %d ranks: rank %d failed %.2f s after the link went down "
                     "(limit %.1f s): %s",
                     per_host, i, t, FN_TIMEOUT_S + FN_SLACK_S, r->msg);
        if (!fn_names_host(r->msg, other, per_host))
            fail_msg("2 hosts x %d ranks: rank %d's error names no rank of host %d: %s", per_host,
                     i, other, r->msg);
        if (t > worst)
            worst = t;
    }
    print_message("faults: link down, 2 hosts x %d ranks over tcp: every rank failed naming "
                  "the other host, the last %.3f s after (RDT_TIMEOUT=%d)\n",
                  per_host, worst, FN_TIMEOUT_S);
    munmap(job.r, sizeof(fn_rank_t) * FN_MAX_RANKS);
}

static void test_link_down_fails_every_rank_naming_the_other_host_on_2x1(void **state)
{
    (void)state;
    fn_run(1);
}

static void test_link_down_fails_every_rank_naming_the_other_host_on_2x2(void **state)
{
    (void)state;
    fn_run(2);
}

static int fn_remove(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int fn_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rdt-test-fault-netns-XXXXXX");
    if (!mkdtemp(tmpdir) || chmod(tmpdir, 0755))
        return -1;
    return rdt_netns_create(&nn, 2, tmpdir) ? -1 : 0;
}

static int fn_teardown(void **state)
{
    int rc = rdt_netns_destroy(&nn);
    (void)state;
    if (tmpdir[0] && nftw(tmpdir, fn_remove, 16, FTW_DEPTH | FTW_PHYS))
        rc = -1;
    return rc;
}

int main(void)
{
    const char *seed = getenv("RDT_TEST_SEED");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_link_down_fails_every_rank_naming_the_other_host_on_2x1),
        cmocka_unit_test(test_link_down_fails_every_rank_naming_the_other_host_on_2x2),
    };

    rdt_netns_require(&nn, "test_fault_netns", "rdtfn");
    fn_seed = seed ? strtoull(seed, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    printf("test_fault_netns: seed %llu (RDT_TEST_SEED replays it)\n", (unsigned long long)fn_seed);
    fflush(stdout);
    return cmocka_run_group_tests(tests, fn_setup, fn_teardown);
}
