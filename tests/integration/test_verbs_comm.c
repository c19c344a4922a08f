/* rdt-test-labels: softroce */
/*
 * test_verbs_comm.c - the verbs transport through the public API: a rank killed in the middle of
 * an allreduce, the locked-memory limit, and the device / GID knobs (RDT_IB_DEV,
 * RDT_IB_GID_INDEX).
 *
 * Each test starts ranks with tools/spawn.h; every rank sets its RDT_* variables (and limits)
 * before rdt_comm_create_from_env(), as a user's job would. Results are compared with a sum of
 * int32 computed here by a plain loop; a rank exits 0 only if what it saw matches what the test
 * expects (an exact result, or an error whose text names what it must), and the parent asserts
 * every exit status. Without an RDMA device the file exits 77 (skipped), and fails instead under
 * RDT_TEST_REQUIRE_RDMA=1 (rdt_test_require_rdma(), testutil.h). Run it through
 * tools/softroce.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "rdmatrain.h"
#include "spawn.h"
#include "testutil.h"

#define VC_SPAWN_TIMEOUT_S 240
#define VC_READY_WAIT_MS   (180 * 1000) /* hang guard only: ranks slow to start fail the test */

static rdt_test_rdma_t g_dev; /* the device main() found; the ranks inherit it */

/* ------------------------------------------------------------------------------------------ */
/* Reference                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* Element i of rank r in call number iter: |value| < 2^15, so a sum over a few ranks is exact. */
static int32_t vc_value(int r, size_t i, int iter)
{
    return (int32_t)(((uint32_t)r * 7919u + (uint32_t)i * 31u + (uint32_t)iter * 101u) % 65521u) -
           32760;
}

/*
 * Allreduce (sum, int32) of @p n elements out of place on @p comm, and compare every element with
 * the sum computed here. Returns 0 when exact, 1 when a value is wrong (printed), and 2 when the
 * call failed (*st_p says how; nothing printed).
 */
static int vc_allreduce(rdt_comm_t *comm, size_t n, int iter, rdt_status_t *st_p)
{
    int r = rdt_comm_rank(comm), p = rdt_comm_size(comm), q;
    int32_t *in = malloc((n + 1) * sizeof(*in)), *out = malloc((n + 1) * sizeof(*out));
    rdt_status_t st;
    size_t i;
    int bad = 0;

    if (!in || !out) {
        fprintf(stderr, "rank %d: out of memory for %zu elements\n", r, n);
        exit(4);
    }
    for (i = 0; i < n; i++)
        in[i] = vc_value(r, i, iter);
    for (i = 0; i <= n; i++)
        out[i] = INT32_MIN; /* not a possible sum: an element never written shows */
    st = rdt_allreduce(comm, in, out, n, RDT_INT32, RDT_SUM);
    if (st_p)
        *st_p = st;
    if (st != RDT_SUCCESS) {
        free(in);
        free(out);
        return 2;
    }
    for (i = 0; i < n && !bad; i++) {
        int32_t want = 0;
        for (q = 0; q < p; q++)
            want += vc_value(q, i, iter);
        if (out[i] != want) {
            fprintf(stderr, "rank %d: allreduce of %zu int32 (call %d): element %zu is %d, "
                            "expected %d\n", r, n, iter, i, out[i], want);
            bad = 1;
        }
    }
    if (!bad && out[n] != INT32_MIN) {
        fprintf(stderr, "rank %d: allreduce of %zu int32 wrote past the end\n", r, n);
        bad = 1;
    }
    free(in);
    free(out);
    return bad;
}

static void vc_run(int nranks, rdt_spawn_fn_t fn, void *arg, const int *want,
                   rdt_spawn_hook_t hook, void *hook_arg)
{
    int st[8], i, bad = 0;

    assert_true(nranks <= 8);
    rdt_spawn_local_hook(nranks, fn, arg, VC_SPAWN_TIMEOUT_S, st, hook, hook_arg);
    for (i = 0; i < nranks; i++) {
        int w = want ? want[i] : 0;
        if (st[i] != w) {
            fprintf(stderr, "rank %d of %d exited with status %d, expected %d\n", i, nranks,
                    st[i], w);
            bad = 1;
        }
    }
    assert_int_equal(bad, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* A rank SIGKILLed in the middle of a loop of large allreduces                                  */
/* ------------------------------------------------------------------------------------------ */

#define VC_VICTIM 2

typedef struct kill_job {
    int ready[2]; /* pipe: every rank writes one byte once its first allreduce was exact */
    int hook_ok;  /* parent: all ranks reported and the victim was killed */
} kill_job_t;

/*
 * Ring allreduce (forced, so that on 3 ranks every survivor exchanges data with the victim) of
 * 4 MiB + 4 bytes, in a loop, every result checked. The parent kills rank VC_VICTIM once every
 * rank has reported an exact first result; the loop only ends with an error. RDT_TIMEOUT=20
 * bounds a survivor whose failure detection would not work (its error then names what it waited
 * for); the error text is printed either way.
 *
 * Every survivor must name "rank 2", on 3 and on 4 ranks, where the ring's non-neighbour of the
 * victim (rank 0) never talks to it: it fails when a neighbour gives up, and learns why from the
 * failure notice the neighbour sends on the side channel.
 */
static int body_killed(int rank, int nranks, void *arg)
{
    kill_job_t *job = arg;
    size_t n = (4u << 20) / 4 + 1;
    rdt_comm_t *comm = NULL;
    rdt_status_t st = RDT_SUCCESS;
    const char *err;
    int iter, rc, named;

    close(job->ready[0]);
    setenv("RDT_TRANSPORT", "verbs", 1);
    setenv("RDT_TIMEOUT", "20", 1);
    setenv("RDT_ALGO", "allreduce:ring", 1);
    if (rdt_comm_create_from_env(&comm) != RDT_SUCCESS) {
        fprintf(stderr, "rank %d: create: %s\n", rank, rdt_comm_last_error(NULL));
        return 3;
    }
    for (iter = 0;; iter++) {
        rc = vc_allreduce(comm, n, iter, &st);
        if (rc == 1)
            return 1;
        if (rc == 2)
            break;
        if (iter == 0 && write(job->ready[1], "r", 1) != 1)
            return 5;
    }
    err = rdt_comm_last_error(comm);
    fprintf(stderr, "rank %d of %d (expected error, after %d exact allreduces): %s: %s\n", rank,
            nranks, iter, rdt_status_str(st), err);
    if (rank == VC_VICTIM) {
        fprintf(stderr, "rank %d: the victim saw an error before it was killed\n", rank);
        return 1;
    }
    if (iter == 0) {
        /* the parent kills only after this rank's first exact result */
        fprintf(stderr, "rank %d: the first allreduce failed before the kill\n", rank);
        return 1;
    }
    /* also a rank that never talked to rank 2 (rank 0 of a 4-rank ring): its neighbours tell it
     * why they gave up */
    named = strstr(err, "rank 2") != NULL;
    if (!named) {
        fprintf(stderr, "rank %d: the error does not name the dead rank 2\n", rank);
        return 1;
    }
    /* the failure is sticky: a later call fails too, without hanging */
    if (vc_allreduce(comm, 16, 0, &st) != 2) {
        fprintf(stderr, "rank %d: a call after the failure did not fail\n", rank);
        return 1;
    }
    rdt_comm_destroy(comm);
    return 0;
}

/* Parent: wait until every rank reported, then SIGKILL the victim. If they do not all report
 * (a rank failed to start or to finish its first allreduce), kill everything: the test fails on
 * the statuses. */
static void kill_hook(int nranks, const int *pids, void *arg)
{
    kill_job_t *job = arg;
    int got = 0, waited = 0, i;

    close(job->ready[1]);
    while (got < nranks && waited < VC_READY_WAIT_MS) {
        struct pollfd pfd = {job->ready[0], POLLIN, 0};
        char buf[8];
        int rc = poll(&pfd, 1, 100);
        ssize_t k;
        waited += 100;
        if (rc <= 0)
            continue;
        k = read(job->ready[0], buf, sizeof(buf));
        if (k <= 0)
            break; /* every rank closed its end: one died or returned early */
        got += (int)k;
    }
    close(job->ready[0]);
    if (got < nranks) {
        fprintf(stderr, "parent: only %d of %d ranks reported an exact first allreduce; stopping "
                        "them all\n", got, nranks);
        for (i = 0; i < nranks; i++)
            kill(pids[i], SIGKILL);
        return;
    }
    fprintf(stderr, "parent: all %d ranks are in the allreduce loop; SIGKILL to rank %d\n", nranks,
            VC_VICTIM);
    kill(pids[VC_VICTIM], SIGKILL);
    job->hook_ok = 1;
}

static void killed_run(int nranks)
{
    int want[4] = {0, 0, 0, 0};
    kill_job_t job;

    memset(&job, 0, sizeof(job));
    assert_int_equal(pipe(job.ready), 0);
    want[VC_VICTIM] = 128 + SIGKILL;
    vc_run(nranks, body_killed, &job, want, kill_hook, &job);
    assert_int_equal(job.hook_ok, 1);
}

static void test_a_rank_killed_mid_allreduce_fails_the_others_naming_it_on_3_ranks(void **state)
{
    killed_run(3);
}

static void test_a_rank_killed_mid_allreduce_fails_every_other_rank_on_4_ranks(void **state)
{
    killed_run(4);
}

/* ------------------------------------------------------------------------------------------ */
/* Configuration: the locked-memory limit, RDT_IB_DEV, RDT_IB_GID_INDEX                          */
/* ------------------------------------------------------------------------------------------ */

enum {
    CFG_WORKS,        /* creation succeeds and allreduces are exact */
    CFG_FAILS,        /* creation fails, or else the first collective does */
    CFG_CREATE_FAILS, /* creation fails */
};

typedef struct cfg_job {
    const char *transport;   /* RDT_TRANSPORT */
    const char *var, *value; /* one more variable, or NULL */
    size_t memlock;          /* RLIMIT_MEMLOCK (soft and hard) in bytes; 0 leaves it */
    int expect;
    const char *needles[2]; /* what the error must contain (NULL: nothing more) */
} cfg_job_t;

static int cfg_error_ok(int rank, const cfg_job_t *job, const char *when, rdt_status_t st,
                        const char *err)
{
    int i, ok = 1;

    fprintf(stderr, "rank %d (expected error) %s: %s: %s\n", rank, when, rdt_status_str(st), err);
    for (i = 0; i < 2; i++) {
        if (job->needles[i] && !strstr(err, job->needles[i])) {
            fprintf(stderr, "rank %d: the error does not say '%s'\n", rank, job->needles[i]);
            ok = 0;
        }
    }
    return ok ? 0 : 1;
}

static int body_cfg(int rank, int nranks, void *arg)
{
    const cfg_job_t *job = arg;
    static const size_t sizes[] = {1, 4097, (1u << 20) + 3}; /* the last one: 4 MiB + 12 bytes */
    rdt_comm_t *comm = NULL;
    rdt_status_t st;
    size_t k;
    int bad = 0;

    setenv("RDT_TRANSPORT", job->transport, 1);
    setenv("RDT_TIMEOUT", "30", 1);
    setenv("RDT_CONNECT_TIMEOUT", "30", 1);
    if (job->var)
        setenv(job->var, job->value, 1);
    if (job->memlock) {
        struct rlimit rl = {job->memlock, job->memlock};
        if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0) {
            fprintf(stderr, "rank %d: setrlimit(RLIMIT_MEMLOCK, %zu): %s\n", rank, job->memlock,
                    strerror(errno));
            return 6;
        }
    }
    st = rdt_comm_create_from_env(&comm);
    if (st != RDT_SUCCESS) {
        if (job->expect == CFG_WORKS) {
            fprintf(stderr, "rank %d: create: %s: %s\n", rank, rdt_status_str(st),
                    rdt_comm_last_error(NULL));
            return 1;
        }
        return cfg_error_ok(rank, job, "creating the communicator", st,
                            rdt_comm_last_error(NULL));
    }
    if (job->expect == CFG_CREATE_FAILS) {
        fprintf(stderr, "rank %d: creating the communicator succeeded; expected an error\n", rank);
        rdt_comm_destroy(comm);
        return 1;
    }
    if (job->expect == CFG_FAILS) {
        if (vc_allreduce(comm, 4097, 0, &st) != 2) {
            fprintf(stderr, "rank %d: creation and the first allreduce succeeded; expected an "
                            "error\n", rank);
            rdt_comm_destroy(comm);
            return 1;
        }
        bad = cfg_error_ok(rank, job, "in the first allreduce", st, rdt_comm_last_error(comm));
        rdt_comm_destroy(comm);
        return bad;
    }
    for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]) && !bad; k++) {
        int rc = vc_allreduce(comm, sizes[k], (int)k, &st);
        if (rc == 2)
            fprintf(stderr, "rank %d: allreduce of %zu: %s: %s\n", rank, sizes[k],
                    rdt_status_str(st), rdt_comm_last_error(comm));
        bad |= rc != 0;
    }
    rdt_comm_destroy(comm);
    return bad;
}

static void cfg_run(const cfg_job_t *job)
{
    vc_run(2, body_cfg, (void *)job, NULL, NULL, NULL);
}

#define VC_MEMLOCK (64u << 10)

/* Both ranks at a 64 KiB locked-memory limit: verbs cannot pin its rings; creation or the first
 * collective fails with an error telling the user to raise ulimit -l (never a hang or a crash). */
static void test_verbs_with_a_64kib_memlock_limit_fails_saying_raise_ulimit_l(void **state)
{
    cfg_job_t job = {.transport = "verbs", .memlock = VC_MEMLOCK, .expect = CFG_FAILS,
                     .needles = {"ulimit -l"}};
    cfg_run(&job);
}

/* The same limit with RDT_TRANSPORT=auto: verbs is not usable, the communicator falls back to
 * TCP and is exact. */
static void test_auto_with_a_64kib_memlock_limit_falls_back_and_is_exact(void **state)
{
    cfg_job_t job = {.transport = "auto", .memlock = VC_MEMLOCK, .expect = CFG_WORKS};
    cfg_run(&job);
}

/* On rxe, GID index 1 is the IPv4-mapped RoCE v2 address of the netdev (index 0 is link-local). */
static void test_rdt_ib_gid_index_1_gives_exact_results(void **state)
{
    cfg_job_t job = {.transport = "verbs", .var = "RDT_IB_GID_INDEX", .value = "1",
                     .expect = CFG_WORKS};
    cfg_run(&job);
}

static void test_rdt_ib_gid_index_999_fails_creation_naming_the_variable_and_value(void **state)
{
    cfg_job_t job = {.transport = "verbs", .var = "RDT_IB_GID_INDEX", .value = "999",
                     .expect = CFG_CREATE_FAILS, .needles = {"RDT_IB_GID_INDEX", "999"}};
    cfg_run(&job);
}

static void test_rdt_ib_dev_of_an_unknown_device_fails_creation_naming_it(void **state)
{
    cfg_job_t job = {.transport = "verbs", .var = "RDT_IB_DEV", .value = "nosuchdev",
                     .expect = CFG_CREATE_FAILS, .needles = {"nosuchdev"}};
    cfg_run(&job);
}

/* RDT_IB_DEV=rxe0 and RDT_IB_DEV=rxe0:1 (the device and port the probe found). */
static void test_rdt_ib_dev_by_name_and_by_name_and_port_gives_exact_results(void **state)
{
    char name_port[96];
    cfg_job_t job = {.transport = "verbs", .var = "RDT_IB_DEV", .value = g_dev.dev,
                     .expect = CFG_WORKS};

    fprintf(stderr, "RDT_IB_DEV=%s\n", g_dev.dev);
    cfg_run(&job);
    snprintf(name_port, sizeof(name_port), "%s:%d", g_dev.dev, g_dev.port);
    fprintf(stderr, "RDT_IB_DEV=%s\n", name_port);
    job.value = name_port;
    cfg_run(&job);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_rank_killed_mid_allreduce_fails_the_others_naming_it_on_3_ranks),
        cmocka_unit_test(test_a_rank_killed_mid_allreduce_fails_every_other_rank_on_4_ranks),
        cmocka_unit_test(test_verbs_with_a_64kib_memlock_limit_fails_saying_raise_ulimit_l),
        cmocka_unit_test(test_auto_with_a_64kib_memlock_limit_falls_back_and_is_exact),
        cmocka_unit_test(test_rdt_ib_gid_index_1_gives_exact_results),
        cmocka_unit_test(test_rdt_ib_gid_index_999_fails_creation_naming_the_variable_and_value),
        cmocka_unit_test(test_rdt_ib_dev_of_an_unknown_device_fails_creation_naming_it),
        cmocka_unit_test(test_rdt_ib_dev_by_name_and_by_name_and_port_gives_exact_results),
    };

    /* no device: exit 77 (skipped), or 1 under RDT_TEST_REQUIRE_RDMA=1 */
    rdt_test_require_rdma("test_verbs_comm", &g_dev);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
