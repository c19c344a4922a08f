/*
 * test_train_ps.c - the parameter-server mode (--parallel ps) through the launcher, on a small
 * slice of Fashion-MNIST: --sync with W workers ends with the weights of --parallel data on W
 * ranks (one and two servers, with momentum), a checkpoint resumes to the same bits as an
 * uninterrupted run, --async finishes and reports its staleness, and a job without a worker is
 * refused with a sentence naming --servers.
 *
 * RDT_LAUNCHER (the rdmatrain program) and RDT_TRAINER come from CMake; the launcher finds the
 * trainer next to itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "data.h"
#include "model.h"
#include "testutil.h"

#ifndef RDT_LAUNCHER
#error "RDT_LAUNCHER (path of the rdmatrain program) must be defined by the build"
#endif

#define MAX_ARGS 64
#define JOB_SECS 60 /* a job running longer is a failure (and is killed) */
#define SEED     1
/* A few steps on a small slice: each job takes well under a second here. */
#define COMMON                                                                                     \
    "--batch 16 --epochs 1 --train-limit 512 --test-limit 200 --max-steps 8 --no-progress"
/* The resume test's job: a constant rate, as the cosine schedule spans the epochs of a run. */
#define RESUME_JOB                                                                                 \
    "-np 4 train --parallel ps --servers 2 " COMMON " --momentum 0.9 --schedule constant"

static char dir[256];

typedef struct {
    int status; /* exit status, or 128 + signal */
    char *out, *err;
} job_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void append(char **buf, size_t *len, const char *p, size_t n)
{
    *buf = realloc(*buf, *len + n + 1);
    assert_non_null(*buf);
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* Run "launcher ARGS" (split at spaces) in the temp dir, stdout and stderr captured apart. */
static job_t run(const char *fmt, ...)
{
    char line[2048], *argv[MAX_ARGS], *tok, *save = NULL;
    int outp[2], errp[2], argc = 0, open_fds = 2, st;
    size_t olen = 0, elen = 0;
    double deadline = now_s() + JOB_SECS;
    job_t j = {0, NULL, NULL};
    va_list ap;
    pid_t pid;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    argv[argc++] = RDT_LAUNCHER;
    for (tok = strtok_r(line, " ", &save); tok && argc < MAX_ARGS - 1;
         tok = strtok_r(NULL, " ", &save))
        argv[argc++] = tok;
    argv[argc] = NULL;
    append(&j.out, &olen, "", 0);
    append(&j.err, &elen, "", 0);

    assert_int_equal(pipe(outp), 0);
    assert_int_equal(pipe(errp), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(outp[1], 1);
        dup2(errp[1], 2);
        close(outp[0]);
        close(outp[1]);
        close(errp[0]);
        close(errp[1]);
        if (chdir(dir) == 0)
            execv(argv[0], argv);
        _exit(126);
    }
    close(outp[1]);
    close(errp[1]);
    while (open_fds > 0) {
        struct pollfd p[2] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
        int i;
        if (now_s() > deadline) {
            fprintf(stderr, "job still running after %d s: killing it\n", JOB_SECS);
            kill(pid, SIGKILL);
            deadline = now_s() + 3600;
        }
        if (poll(p, 2, 200) < 0 && errno != EINTR)
            break;
        for (i = 0; i < 2; i++) {
            char chunk[4096];
            ssize_t got;
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            got = read(p[i].fd, chunk, sizeof(chunk));
            if (got <= 0) {
                close(i == 0 ? outp[0] : errp[0]);
                if (i == 0)
                    outp[0] = -1;
                else
                    errp[0] = -1;
                open_fds--;
                continue;
            }
            if (i == 0)
                append(&j.out, &olen, chunk, (size_t)got);
            else
                append(&j.err, &elen, chunk, (size_t)got);
        }
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    j.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return j;
}

static void job_free(job_t *j)
{
    free(j->out);
    free(j->err);
}

static void expect_ok(job_t *j, const char *what)
{
    if (j->status != 0)
        fprintf(stderr, "%s: exit %d\nstdout:\n%s\nstderr:\n%s\n", what, j->status, j->out, j->err);
    assert_int_equal(j->status, 0);
}



/* The parameters in @p name are those in @p ref within @p tol, and moved away from the initial
 * weights (so that the runs trained, and a match is not two copies of the start). */
static void expect_params(const char *name, const char *ref, double tol)
{
    int sizes[4] = {784, 256, 128, 10};
    size_t n, m;
    float *a = rdt_test_load_floats(dir, name, &n), *b = rdt_test_load_floats(dir, ref, &m);
    rdt_mlp_t init;
    double d, moved;

    assert_int_equal(n, m);
    assert_int_equal(rdt_mlp_init(&init, sizes, 4, 0, 3, SEED), 0);
    assert_int_equal(init.nparams, n);
    d = rdt_test_max_diff(a, b, n);
    moved = rdt_test_max_diff(a, init.params, n);
    if (!(d <= tol) || !(moved > 1e-3))
        fprintf(stderr, "%s vs %s: max difference %g (tolerance %g), moved from the start %g\n",
                name, ref, d, tol, moved);
    assert_true(d <= tol);
    assert_true(moved > 1e-3);
    rdt_mlp_free(&init);
    free(a);
    free(b);
}

static int setup(void **state)
{
    struct stat st;
    job_t j;

    (void)state;
    if (stat(RDT_DATA_DEFAULT_DIR, &st) != 0) {
        fprintf(stderr, "the Fashion-MNIST files are expected in %s (tools/install-deps.sh)\n",
                RDT_DATA_DEFAULT_DIR);
        return -1;
    }
    snprintf(dir, sizeof(dir), "/tmp/rdt-train-ps-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    /* the references: data parallelism on 2 ranks, the same per-rank batch as a ps worker */
    j = run("-np 2 train --parallel data " COMMON " --save-params data.bin");
    expect_ok(&j, "data, 2 ranks");
    job_free(&j);
    j = run("-np 2 train --parallel data " COMMON " --momentum 0.9 --save-params data-m.bin");
    expect_ok(&j, "data, 2 ranks, momentum");
    job_free(&j);
    return 0;
}

static int teardown(void **state)
{
    char cmd[512];

    (void)state;
    if (!dir[0])
        return 0;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_sync_with_one_server_matches_data_parallel(void **state)
{
    job_t j;

    (void)state;
    j = run("-np 3 train --parallel ps --servers 1 " COMMON " --save-params ps1.bin");
    expect_ok(&j, "ps, 2 workers + 1 server");
    assert_non_null(strstr(j.out, "server rank 2: 64 keys"));
    assert_non_null(strstr(j.out, "test accuracy"));
    job_free(&j);
    expect_params("ps1.bin", "data.bin", 1e-5);
}

static void test_sync_with_two_servers_and_momentum_matches_data_parallel(void **state)
{
    job_t j;

    (void)state;
    j = run("-np 4 train --parallel ps --servers 2 --sync " COMMON
            " --momentum 0.9 --save-params ps2.bin");
    expect_ok(&j, "ps, 2 workers + 2 servers");
    /* both servers hold keys: the momentum lives on two ranks */
    assert_non_null(strstr(j.out, "server rank 2:"));
    assert_non_null(strstr(j.out, "server rank 3:"));
    assert_null(strstr(j.out, "idle"));
    job_free(&j);
    expect_params("ps2.bin", "data-m.bin", 1e-5);
}

/* Epoch 2 after a resume from epoch 1's checkpoint: servers take their keys and momentum back
 * from the checkpoint (scatter), the gather writes them (with momentum): the same bits. */
static void test_sync_resumes_to_the_same_parameters(void **state)
{
    job_t j;

    (void)state;
    j = run(RESUME_JOB " --epochs 2 --checkpoint ckA --save-params whole.bin");
    expect_ok(&j, "ps, 2 epochs");
    job_free(&j);
    j = run(RESUME_JOB " --checkpoint ckB");
    expect_ok(&j, "ps, epoch 1");
    job_free(&j);
    j = run(RESUME_JOB " --epochs 2 --checkpoint ckB --resume --save-params resumed.bin");
    expect_ok(&j, "ps, epoch 2 resumed");
    assert_non_null(strstr(j.out, "resumed from"));
    job_free(&j);
    expect_params("resumed.bin", "whole.bin", 0);
}

/* --async: 2 epochs (the epoch end must leave no receive posted and no reply deferred, or the
 * collectives hang), one status line per server, and a model that trained. */
static void test_async_completes_and_reports_staleness(void **state)
{
    int sizes[4] = {784, 256, 128, 10};
    rdt_mlp_t init;
    size_t n, i;
    float *p;
    job_t j;

    (void)state;
    j = run("-np 3 train --parallel ps --async --staleness 1 " COMMON
            " --epochs 2 --save-params async.bin");
    expect_ok(&j, "ps --async, 2 workers + 1 server");
    assert_non_null(strstr(j.out, "epoch 2/2"));
    assert_non_null(strstr(j.out, "test accuracy"));
    /* 2 workers x 8 steps x 2 epochs */
    assert_non_null(strstr(j.out, "ps server rank 2: 32 pushes applied"));
    assert_non_null(strstr(j.out, "max staleness"));
    job_free(&j);

    p = rdt_test_load_floats(dir, "async.bin", &n);
    assert_int_equal(rdt_mlp_init(&init, sizes, 4, 0, 3, SEED), 0);
    assert_int_equal(init.nparams, n);
    for (i = 0; i < n; i++)
        assert_true(isfinite(p[i]));
    assert_true(rdt_test_max_diff(p, init.params, n) > 1e-3);
    rdt_mlp_free(&init);
    free(p);

    /* two servers, staleness 0 (every push waits for the slowest worker) */
    j = run("-np 4 train --parallel ps --async --staleness 0 --servers 2 " COMMON);
    expect_ok(&j, "ps --async, 2 workers + 2 servers");
    assert_non_null(strstr(j.out, "ps server rank 2: 16 pushes applied"));
    assert_non_null(strstr(j.out, "ps server rank 3: 16 pushes applied"));
    job_free(&j);
}

static void test_refuses_a_job_without_a_worker(void **state)
{
    job_t j;

    (void)state;
    j = run("-np 3 train --parallel ps --servers 3 " COMMON);
    if (j.status == 0 || !strstr(j.err, "--servers 3"))
        fprintf(stderr, "expected a refusal naming --servers, got exit %d:\n%s\n", j.status, j.err);
    assert_int_not_equal(j.status, 0);
    assert_non_null(strstr(j.err, "--servers 3 leaves no worker"));
    job_free(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_with_one_server_matches_data_parallel),
        cmocka_unit_test(test_sync_with_two_servers_and_momentum_matches_data_parallel),
        cmocka_unit_test(test_sync_resumes_to_the_same_parameters),
        cmocka_unit_test(test_async_completes_and_reports_staleness),
        cmocka_unit_test(test_refuses_a_job_without_a_worker),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
