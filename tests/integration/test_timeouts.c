/* rdt-test-labels: fault */
/*
 * test_timeouts.c - operations that wait for a rank that never comes.
 *
 * - A rank that never calls the collective (it sleeps): the others fail with RDT_ERR_TIMEOUT
 *   within timeout + 2 s, naming it, after one stall warning (RDT_STALL_WARN) that names it too.
 *   Their stderr is redirected to a file to read the log lines. Over tcp and shm.
 *   Every error also says that rank did not answer on the status channel (engine/ctl.h).
 * - Ranks that wait for each other (0 and 1 receive from each other, 2 from 0): every error
 *   reports the cycle and blames no rank.
 * - rdt_comm_set_timeout(1.0) on a communicator made with RDT_TIMEOUT=60 makes the next call time
 *   out in about a second; abort twice on it is harmless; after destroying it a fresh
 *   communicator with rdt_comm_set_timeout(60) works.
 * - Every collective kind, and send and recv, name the rank they waited for and the step when
 *   they time out (rdt_comm_set_timeout(0.5) on a fresh split communicator for each; the other
 *   rank waits in a barrier on the parent meanwhile).
 *
 * Timing assertions here are bounds with seconds of slack, not measurements. Under
 * AddressSanitizer each rank runs LeakSanitizer before it exits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rdmatrain.h"
#include "spawn.h"
#include "testutil.h"

#define SPAWN_TIMEOUT_S 60

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int expect_in(int rank, const char *what, const char *text, const char *needle)
{
    if (strstr(text, needle))
        return 0;
    fprintf(stderr, "rank %d: %s does not contain '%s': %s\n", rank, what, needle, text);
    return 1;
}

static void run(int nranks, rdt_spawn_fn_t fn, void *arg)
{
    int st[4], i, rc;

    rc = rdt_spawn_local(nranks, fn, arg, SPAWN_TIMEOUT_S, st);
    for (i = 0; i < nranks; i++)
        if (st[i] != 0)
            fprintf(stderr, "rank %d of %d exited with status %d\n", i, nranks, st[i]);
    assert_int_equal(rc, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* A rank that never arrives                                                                    */
/* ------------------------------------------------------------------------------------------ */

#define NA_TIMEOUT   "1.5"
#define NA_TIMEOUT_S 1.5

/* The last rank sleeps through the barrier; the others' stderr goes to a file, read after. */
static int body_never_arrives(int rank, int p, void *arg)
{
    char path[] = "/tmp/rdt_test_timeouts_XXXXXX", *log, *warn, *line;
    int fd, saved, bad = 0, nwarn = 0;
    char missing[32];
    rdt_comm_t *comm;
    rdt_status_t st;
    double t0, dt;
    FILE *f;
    long len;

    setenv("RDT_TIMEOUT", NA_TIMEOUT, 1);
    setenv("RDT_STALL_WARN", "0.3", 1);
    setenv("RDT_LOG", "warn", 1);
    if (rank == p - 1) {
        comm = rdt_test_create_or_die();
        sleep_s(NA_TIMEOUT_S + 2.0);
        rdt_comm_destroy(comm);
        return rdt_test_leaks(rank);
    }
    fd = mkstemp(path);
    saved = dup(2);
    if (fd < 0 || saved < 0 || dup2(fd, 2) < 0)
        return 1;
    comm = rdt_test_create_or_die();
    t0 = now_s();
    st = rdt_barrier(comm);
    dt = now_s() - t0;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    f = fdopen(fd, "r");
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);
    log = calloc(1, (size_t)len + 1);
    if (fread(log, 1, (size_t)len, f) != (size_t)len)
        bad = 1;
    fclose(f);
    unlink(path);
    fprintf(stderr, "rank %d: after %.2f s: %s: %s\n--- its log:\n%s---\n", rank, dt,
            rdt_status_str(st), rdt_comm_last_error(comm), log);

    snprintf(missing, sizeof(missing), "rank %d", p - 1);
    if (st != RDT_ERR_TIMEOUT) {
        fprintf(stderr, "rank %d: expected RDT_ERR_TIMEOUT\n", rank);
        bad = 1;
    }
    if (dt < NA_TIMEOUT_S - 0.1 || dt > NA_TIMEOUT_S + 2.0) {
        fprintf(stderr, "rank %d: failed after %.2f s, not within [timeout, timeout + 2 s]\n", rank,
                dt);
        bad = 1;
    }
    bad |= expect_in(rank, "the error", rdt_comm_last_error(comm), missing);
    bad |= expect_in(rank, "the error", rdt_comm_last_error(comm), "barrier #0");
    bad |= expect_in(rank, "the error", rdt_comm_last_error(comm), "timed out after 1.5 s");
    /* found through the status channel, even by a rank that waits for it only indirectly */
    snprintf(missing, sizeof(missing), "rank %d (host ", p - 1);
    bad |= expect_in(rank, "the error", rdt_comm_last_error(comm), missing);
    bad |= expect_in(rank, "the error", rdt_comm_last_error(comm),
                     ") did not answer within 0.5 s: it is in no call on this communicator");
    /* exactly one stall warning, naming the missing rank, before the timeout's line */
    warn = NULL;
    for (line = strstr(log, "has waited"); line; line = strstr(line + 1, "has waited")) {
        nwarn++;
        warn = warn ? warn : line;
    }
    if (nwarn != 1) {
        fprintf(stderr, "rank %d: %d stall warnings, expected 1\n", rank, nwarn);
        bad = 1;
    } else {
        char *eol = strchr(warn, '\n');
        char *timeout_line = strstr(log, "timed out after");
        if (eol)
            *eol = '\0';
        bad |= expect_in(rank, "the stall warning", warn, missing);
        bad |= expect_in(rank, "the stall warning", warn, "of its 1.5 s timeout");
        if (!timeout_line || (eol && timeout_line < eol)) {
            fprintf(stderr, "rank %d: the stall warning does not come before the timeout\n", rank);
            bad = 1;
        }
    }
    free(log);
    rdt_comm_destroy(comm);
    return bad | rdt_test_leaks(rank);
}

static void test_a_rank_that_never_arrives_is_named_by_a_warning_then_a_timeout(void **state)
{
    setenv("RDT_TRANSPORT", "tcp", 1);
    run(3, body_never_arrives, NULL);
    setenv("RDT_TRANSPORT", "shm", 1);
    run(3, body_never_arrives, NULL);
    unsetenv("RDT_TRANSPORT");
}

/* ------------------------------------------------------------------------------------------ */
/* Ranks waiting for each other                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* Ranks 0 and 1 each receive from the other first (a user's deadlock), rank 2 from rank 0: no
 * rank is missing, each waits for a rank that waits. Every error must say so rather than blame
 * a rank that is there. */
static int body_cycle(int rank, int p, void *arg)
{
    int x = 0, bad = 0;
    rdt_comm_t *comm;
    rdt_status_t st;

    (void)p;
    (void)arg;
    setenv("RDT_TIMEOUT", "1", 1);
    comm = rdt_test_create_or_die();
    st = rdt_recv(comm, &x, 1, RDT_INT32, rank == 0 ? 1 : 0);
    fprintf(stderr, "rank %d (expected error): %s: %s\n", rank, rdt_status_str(st),
            rdt_comm_last_error(comm));
    if (st != RDT_ERR_TIMEOUT) {
        fprintf(stderr, "rank %d: expected RDT_ERR_TIMEOUT\n", rank);
        bad = 1;
    }
    bad |= expect_in(rank, "the error", rdt_comm_last_error(comm),
                     "every rank it waits for, directly or not, is waiting as well (a cycle");
    if (strstr(rdt_comm_last_error(comm), "did not answer")) {
        fprintf(stderr, "rank %d: the error blames a rank that was there\n", rank);
        bad = 1;
    }
    rdt_comm_destroy(comm);
    return bad | rdt_test_leaks(rank);
}

static void test_ranks_waiting_for_each_other_are_reported_as_a_cycle(void **state)
{
    (void)state;
    setenv("RDT_TRANSPORT", "tcp", 1);
    run(3, body_cycle, NULL);
    unsetenv("RDT_TRANSPORT");
}

/* ------------------------------------------------------------------------------------------ */
/* rdt_comm_set_timeout                                                                         */
/* ------------------------------------------------------------------------------------------ */

static int body_set_timeout(int rank, int p, void *arg)
{
    float in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8];
    rdt_comm_t *comm;
    rdt_status_t st;
    double t0, dt;
    int bad = 0, i;

    setenv("RDT_TIMEOUT", "60", 1);
    comm = rdt_test_create_or_die();
    if (rdt_comm_timeout(comm) != 60.0) {
        fprintf(stderr, "rank %d: initial timeout %g, expected RDT_TIMEOUT=60\n", rank,
                rdt_comm_timeout(comm));
        bad = 1;
    }
    if (rank == 1) {
        sleep_s(3.5); /* never calls on this communicator */
    } else {
        if (rdt_comm_set_timeout(comm, 0) != RDT_ERR_INVALID_ARG ||
            rdt_comm_set_timeout(comm, -1) != RDT_ERR_INVALID_ARG ||
            rdt_comm_set_timeout(comm, NAN) != RDT_ERR_INVALID_ARG ||
            rdt_comm_set_timeout(NULL, 1) != RDT_ERR_INVALID_ARG || rdt_comm_timeout(NULL) >= 0 ||
            rdt_comm_timeout(comm) != 60.0) {
            fprintf(stderr, "rank %d: bad timeouts were not refused\n", rank);
            bad = 1;
        }
        if (rdt_comm_set_timeout(comm, 1.0) != RDT_SUCCESS || rdt_comm_timeout(comm) != 1.0) {
            fprintf(stderr, "rank %d: rdt_comm_set_timeout(1.0) did not take\n", rank);
            bad = 1;
        }
        t0 = now_s();
        st = rdt_allreduce(comm, in, out, 8, RDT_FLOAT32, RDT_SUM);
        dt = now_s() - t0;
        fprintf(stderr, "rank %d (expected error after %.2f s): %s: %s\n", rank, dt,
                rdt_status_str(st), rdt_comm_last_error(comm));
        if (st != RDT_ERR_TIMEOUT || dt < 0.9 || dt >= 3.0) {
            fprintf(stderr, "rank %d: expected RDT_ERR_TIMEOUT after about 1 s\n", rank);
            bad = 1;
        }
        bad |= expect_in(rank, "the error", rdt_comm_last_error(comm), "timed out after 1 s");
        bad |= expect_in(rank, "the error", rdt_comm_last_error(comm), "rank 1");
        /* abort twice is harmless; the failure is sticky */
        if (rdt_comm_abort(comm) != RDT_SUCCESS || rdt_comm_abort(comm) != RDT_SUCCESS ||
            rdt_allreduce(comm, in, out, 8, RDT_FLOAT32, RDT_SUM) != RDT_ERR_TIMEOUT) {
            fprintf(stderr, "rank %d: after abort twice: %s\n", rank, rdt_comm_last_error(comm));
            bad = 1;
        }
    }
    rdt_comm_destroy(comm);

    /* a fresh communicator in the same process, with a long timeout: works */
    comm = rdt_test_create_or_die();
    if (rdt_comm_set_timeout(comm, 60) != RDT_SUCCESS)
        bad = 1;
    st = rdt_allreduce(comm, in, out, 8, RDT_FLOAT32, RDT_SUM);
    if (st != RDT_SUCCESS) {
        fprintf(stderr, "rank %d: allreduce on the fresh communicator: %s\n", rank,
                rdt_comm_last_error(comm));
        bad = 1;
    }
    for (i = 0; i < 8 && st == RDT_SUCCESS; i++) {
        if (out[i] != in[i] * (float)p) {
            fprintf(stderr, "rank %d: fresh allreduce element %d is %g\n", rank, i, out[i]);
            bad = 1;
            break;
        }
    }
    rdt_comm_destroy(comm);
    return bad | rdt_test_leaks(rank);
}

static void test_set_timeout_shortens_the_next_call_and_a_fresh_communicator_works(void **state)
{
    run(2, body_set_timeout, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Every kind names the rank and the step                                                       */
/* ------------------------------------------------------------------------------------------ */

enum {
    T_ALLREDUCE,
    T_REDUCE_SCATTER,
    T_ALLGATHER,
    T_BROADCAST,
    T_REDUCE,
    T_ALLTOALL,
    T_BARRIER,
    T_SEND,
    T_RECV,
    T_COUNT
};
static const char *const t_names[T_COUNT] = {"allreduce #0", "reduce_scatter #0", "allgather #0",
                                             "broadcast #0", "reduce #0",         "alltoall #0",
                                             "barrier #0",   "send of",           "recv of"};
#define BIG (32u << 20) /* a send this large cannot complete into socket or ring buffers */

static rdt_status_t call_kind(rdt_comm_t *comm, int k, void *in, void *out)
{
    switch (k) {
    case T_ALLREDUCE:
        return rdt_allreduce(comm, in, out, 1000, RDT_FLOAT32, RDT_SUM);
    case T_REDUCE_SCATTER:
        return rdt_reduce_scatter(comm, in, out, 500, RDT_FLOAT32, RDT_SUM);
    case T_ALLGATHER:
        return rdt_allgather(comm, in, out, 500, RDT_FLOAT32);
    case T_BROADCAST:
        return rdt_broadcast(comm, in, out, 1000, RDT_FLOAT32, 1);
    case T_REDUCE:
        return rdt_reduce(comm, in, out, 1000, RDT_FLOAT32, RDT_SUM, 0);
    case T_ALLTOALL:
        return rdt_alltoall(comm, in, out, 500, RDT_FLOAT32);
    case T_BARRIER:
        return rdt_barrier(comm);
    case T_SEND:
        return rdt_send(comm, in, BIG, RDT_UINT8, 1);
    default:
        return rdt_recv(comm, out, 1000, RDT_FLOAT32, 1);
    }
}

/* @p arg: "oneshot" (every collective here is small enough for one-shot exchanges through
 * shared memory: the error names the rank whose contribution is missing; broadcast and reduce
 * keep their schedules), "direct" (buffers from rdt_mem_alloc, RDT_SHM_DIRECT=1: every
 * collective but barrier begins with an exchange, the error names the rank missing from it) or
 * "schedules" (RDT_SHM_ONESHOT=0, RDT_SHM_ONESHOT_ALLREDUCE=0: the error names the rank, the
 * round and the slice) */
static int body_every_kind(int rank, int p, void *arg)
{
    int oneshot = strcmp((const char *)arg, "oneshot") == 0;
    int direct = strcmp((const char *)arg, "direct") == 0;
    unsigned char *in = NULL, *out = NULL;
    rdt_comm_t *world, *sub;
    rdt_status_t st;
    int bad = 0, k;

    if (!(in = rdt_test_alloc(BIG, direct)) || !(out = rdt_test_alloc(BIG, direct)))
        return 1;
    setenv("RDT_SHM_ONESHOT", oneshot ? "8k" : "0", 1);
    setenv("RDT_SHM_ONESHOT_ALLREDUCE", oneshot ? "8k" : "0", 1);
    setenv("RDT_SHM_DIRECT", direct ? "1" : "0", 1);
    if (oneshot || direct) /* shared memory, whatever an earlier failed test left behind */
        setenv("RDT_TRANSPORT", "auto", 1);
    setenv("RDT_TIMEOUT", "60", 1);
    setenv("RDT_STALL_WARN", "0", 1); /* no warning lines: the timeouts are the subject */
    world = rdt_test_create_or_die();
    for (k = 0; k < T_COUNT; k++) {
        st = rdt_comm_split(world, 0, rank, &sub);
        if (st != RDT_SUCCESS) {
            fprintf(stderr, "rank %d: split: %s\n", rank, rdt_comm_last_error(world));
            return 1;
        }
        /* rank 1 never calls on sub: it waits on the parent until rank 0 has timed out, and
         * keeps sub open meanwhile (no fixed sleep to race with a loaded machine) */
        if (rank == 0) {
            const char *e;
            rdt_comm_set_timeout(sub, 0.5);
            st = call_kind(sub, k, in, out);
            e = rdt_comm_last_error(sub);
            fprintf(stderr, "rank 0, %s (expected error): %s: %s\n", t_names[k], rdt_status_str(st),
                    e);
            if (st != RDT_ERR_TIMEOUT) {
                fprintf(stderr, "rank 0: %s: expected RDT_ERR_TIMEOUT\n", t_names[k]);
                bad = 1;
            }
            bad |= expect_in(rank, "the error", e, t_names[k]);
            bad |= expect_in(rank, "the error", e, "timed out after 0.5 s on rank 0");
            if (k == T_SEND) {
                bad |= expect_in(rank, "the error", e, "waiting for: send to rank 1 (host");
            } else if (k == T_RECV) {
                bad |= expect_in(rank, "the error", e, "waiting for: recv from rank 1 (host");
            } else if (oneshot && k != T_BROADCAST && k != T_REDUCE) {
                bad |= expect_in(rank, "the error", e, ", one-shot) timed out");
                bad |= expect_in(rank, "the error", e, "waiting for: the contribution of rank 1 "
                                 "(host");
            } else if (direct && k != T_BARRIER) {
                bad |= expect_in(rank, "the error", e, ", direct) timed out");
                bad |= expect_in(rank, "the error", e, "waiting for: the contribution of rank 1 "
                                 "(host");
                bad |= expect_in(rank, "the error", e, "to the exchange that begins a direct call");
            } else {
                bad |= expect_in(rank, "the error", e, "rank 1 (host");
                bad |= expect_in(rank, "the error", e, " in round ");
                bad |= expect_in(rank, "the error", e, " of slice ");
            }
        }
        st = rdt_barrier(world);
        if (st != RDT_SUCCESS) {
            fprintf(stderr, "rank %d: barrier on the parent: %s\n", rank,
                    rdt_comm_last_error(world));
            return 1;
        }
        rdt_comm_destroy(sub);
    }
    rdt_comm_destroy(world);
    rdt_test_free(in, direct);
    rdt_test_free(out, direct);
    unsetenv("RDT_SHM_ONESHOT");
    unsetenv("RDT_SHM_ONESHOT_ALLREDUCE");
    unsetenv("RDT_SHM_DIRECT");
    return bad | rdt_test_leaks(rank);
}

static void test_every_collective_and_send_recv_name_the_rank_and_step_on_timeout(void **state)
{
    (void)state;
    run(2, body_every_kind, "schedules");
}

static void test_a_one_shot_collective_names_the_rank_that_did_not_contribute(void **state)
{
    (void)state;
    run(2, body_every_kind, "oneshot");
}

static void test_a_direct_collective_names_the_rank_missing_from_its_first_exchange(void **state)
{
    (void)state;
    run(2, body_every_kind, "direct");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_rank_that_never_arrives_is_named_by_a_warning_then_a_timeout),
        cmocka_unit_test(test_ranks_waiting_for_each_other_are_reported_as_a_cycle),
        cmocka_unit_test(test_set_timeout_shortens_the_next_call_and_a_fresh_communicator_works),
        cmocka_unit_test(test_every_collective_and_send_recv_name_the_rank_and_step_on_timeout),
        cmocka_unit_test(test_a_one_shot_collective_names_the_rank_that_did_not_contribute),
        cmocka_unit_test(test_a_direct_collective_names_the_rank_missing_from_its_first_exchange),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
