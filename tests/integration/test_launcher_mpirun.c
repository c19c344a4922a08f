/*
 * test_launcher_mpirun.c - starting ranks without the rdmatrain launcher, as the README shows:
 *
 *   mpirun -np 4 -x RDT_ROOT=node1:29500 ./my_program          (Open MPI; run here for real)
 *   srun -n 4 --export=ALL,RDT_ROOT=node1:29500 ./my_program   (Slurm; emulated)
 *
 * The program is this executable run as `test_launcher_mpirun --rank ompi|slurm MARKER`: it
 * computes its expected rank and size from the resource manager's own variables
 * (OMPI_COMM_WORLD_RANK/SIZE, or SLURM_PROCID/NTASKS), refuses to run if any launcher variable
 * (RDT_RANK, RDT_SIZE, RDT_TOKEN, ...) or the other manager's is set (then the engine could have
 * taken its rank from somewhere else), creates the world communicator with
 * rdt_comm_create_from_env(), checks rank and size against those expectations, allreduces a
 * vector and checks every element against the closed form, and prints one line.
 *
 * Open MPI: `mpirun --allow-run-as-root --oversubscribe -np 3 -x RDT_ROOT=127.0.0.1:PORT`, the
 * README's example with the flags root and a 2-core machine need. Checked: exit status 0, every
 * rank's line once, the engine saying it took rank and size from Open MPI and not warning about a
 * missing token (it uses mpirun's job id, OMPI_MCA_ess_base_jobid); and without RDT_ROOT, a clear
 * error and a non-zero status. Slurm is not installed here: the test starts the ranks itself
 * with the variables srun sets for each task (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID,
 * SLURM_JOB_ID and the other SLURM_* of a one-node step) plus RDT_ROOT, as --export=ALL,RDT_ROOT=
 * passes it; also with one task given another job id, which the rendezvous must refuse (the
 * token is the job id). Only 127.0.0.1. After every job no process of it may be left.
 *
 * Without mpirun the Slurm cases still run and the program then exits 77 (ctest: skipped);
 * with RDT_TEST_REQUIRE_MPIRUN=1 a missing mpirun is a failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "freeport.h"

#include <rdmatrain.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define COUNT      1000
#define NRANKS     3
#define JOB_SECS   60 /* a job that runs longer is a failure (and is killed) */
#define CHECK_SECS 5  /* how long asynchronous cleanup may take */
#define MAX_ARGS   32

static char self_exe[4096];
static char mpirun_path[4096];
static char tmpdir[256];
static int marker_seq;

/* Variables that would give the engine a rank, size or token from elsewhere than the resource
 * manager under test: unset before every job, and refused by the rank program. */
static const char *const foreign_vars[] = {"RDT_RANK",
                                           "RDT_SIZE",
                                           "RDT_LOCAL_RANK",
                                           "RDT_TOKEN",
                                           "RANK",
                                           "WORLD_SIZE",
                                           "LOCAL_RANK",
                                           "MASTER_ADDR",
                                           "MASTER_PORT",
                                           "TORCHELASTIC_RUN_ID",
                                           "OMPI_COMM_WORLD_RANK",
                                           "OMPI_COMM_WORLD_SIZE",
                                           "OMPI_COMM_WORLD_LOCAL_RANK",
                                           "OMPI_MCA_ess_base_jobid",
                                           NULL};

/* ------------------------------------------------------------------------------------------- */
/* The rank program                                                                             */
/* ------------------------------------------------------------------------------------------- */

static int env_long(const char *name, long lo, long hi, long *out)
{
    const char *s = getenv(name);
    char *end;

    if (!s || !*s)
        return -1;
    errno = 0;
    *out = strtol(s, &end, 10);
    return *end || errno || *out < lo || *out > hi ? -1 : 0;
}

static int rank_main(const char *manager)
{
    const int ompi = strcmp(manager, "ompi") == 0;
    const char *rank_var = ompi ? "OMPI_COMM_WORLD_RANK" : "SLURM_PROCID";
    const char *size_var = ompi ? "OMPI_COMM_WORLD_SIZE" : "SLURM_NTASKS";
    const char *other = ompi ? "SLURM_" : "OMPI_COMM_WORLD_";
    const char *source = ompi ? "Open MPI" : "Slurm";
    extern char **environ;
    char **e;
    long want_rank, want_size;
    rdt_comm_t *comm;
    int64_t *v;
    int i, bad = 0;

    for (e = environ; *e; e++) {
        size_t n = strcspn(*e, "=");
        for (i = 0; foreign_vars[i]; i++)
            if (strlen(foreign_vars[i]) == n && strncmp(*e, foreign_vars[i], n) == 0 &&
                !(ompi && strncmp(*e, "OMPI_", 5) == 0))
                break;
        if (foreign_vars[i] || strncmp(*e, other, strlen(other)) == 0) {
            fprintf(stderr, "rank program (%s): %.*s is set: the rank could come from it\n", source,
                    (int)n, *e);
            return 2;
        }
    }
    if (env_long(size_var, 1, 1 << 20, &want_size) ||
        env_long(rank_var, 0, want_size - 1, &want_rank)) {
        fprintf(stderr, "rank program (%s): %s or %s missing or bad\n", source, rank_var, size_var);
        return 2;
    }
    if (rdt_comm_create_from_env(&comm) != RDT_SUCCESS) {
        fprintf(stderr, "create: %s\n", rdt_comm_last_error(NULL));
        return 1;
    }
    if (rdt_comm_rank(comm) != want_rank || rdt_comm_size(comm) != want_size) {
        fprintf(stderr, "rank %d of %d, but %s=%ld and %s=%ld\n", rdt_comm_rank(comm),
                rdt_comm_size(comm), rank_var, want_rank, size_var, want_size);
        bad = 1;
    }
    v = malloc(COUNT * sizeof(*v));
    if (!v)
        return 1;
    for (i = 0; i < COUNT; i++)
        v[i] = (int64_t)(want_rank + 1) * (i % 7 + 1);
    if (!bad && rdt_allreduce(comm, v, v, COUNT, RDT_INT64, RDT_SUM) != RDT_SUCCESS) {
        fprintf(stderr, "allreduce: %s\n", rdt_comm_last_error(comm));
        bad = 1;
    }
    /* sum over ranks of (r + 1) * (i % 7 + 1) = (i % 7 + 1) * n(n+1)/2, exact in int64 */
    for (i = 0; i < COUNT && !bad; i++) {
        if (v[i] != (int64_t)(i % 7 + 1) * want_size * (want_size + 1) / 2) {
            fprintf(stderr, "rank %ld: element %d is %lld\n", want_rank, i, (long long)v[i]);
            bad = 1;
        }
    }
    if (!bad && rdt_barrier(comm) != RDT_SUCCESS) {
        fprintf(stderr, "barrier: %s\n", rdt_comm_last_error(comm));
        bad = 1;
    }
    if (!bad)
        printf("rank %ld of %ld: allreduce ok (%s)\n", want_rank, want_size, source);
    fflush(stdout);
    rdt_comm_destroy(comm);
    free(v);
    return bad;
}

/* ------------------------------------------------------------------------------------------- */
/* Helpers of the test                                                                          */
/* ------------------------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int count_substr(const char *hay, const char *needle)
{
    int n = 0;
    const char *p = hay;
    while (hay && (p = strstr(p, needle))) {
        n++;
        p += strlen(needle);
    }
    return n;
}

static void expect_in(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fprintf(stderr, "missing '%s' in:\n%s\n", needle, hay);
    assert_non_null(strstr(hay, needle));
}

/* A port on 127.0.0.1 free now, below the ephemeral range (as the launcher picks its own). */
static int free_port(void)
{
    int port = rdt_free_port(0);
    if (port < 0)
        fail_msg("no free port on 127.0.0.1");
    return port;
}

static int count_marked(const char *marker, int kill_them)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d))) {
        char path[300], cmd[4096];
        ssize_t len, i;
        int fd;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        if ((fd = open(path, O_RDONLY)) < 0)
            continue;
        len = read(fd, cmd, sizeof(cmd) - 1);
        close(fd);
        if (len <= 0)
            continue;
        for (i = 0; i < len; i++)
            if (cmd[i] == '\0')
                cmd[i] = ' ';
        cmd[len] = '\0';
        if (!strstr(cmd, marker))
            continue;
        n++;
        if (kill_them) {
            fprintf(stderr, "left behind: pid %s: %s (killing it)\n", e->d_name, cmd);
            kill(atoi(e->d_name), SIGKILL);
        }
    }
    closedir(d);
    return n;
}

static void assert_no_leftovers(const char *marker)
{
    int64_t until = now_ms() + CHECK_SECS * 1000;
    int n;

    while ((n = count_marked(marker, 0)) > 0 && now_ms() < until)
        usleep(20000);
    if (n > 0)
        n = count_marked(marker, 1);
    assert_int_equal(n, 0);
}

/* A clean environment for the ranks: nothing that could name a rank except what the test
 * sets, bounded waits so a broken rendezvous fails instead of hanging. */
static void clean_environment(void)
{
    extern char **environ;
    int i, again = 1;

    for (i = 0; foreign_vars[i]; i++)
        unsetenv(foreign_vars[i]);
    unsetenv("RDT_ROOT");
    while (again) { /* unsetenv changes environ: rescan after each */
        char **e;
        again = 0;
        for (e = environ; *e; e++) {
            if (strncmp(*e, "SLURM_", 6) == 0 || strncmp(*e, "OMPI_COMM_WORLD_", 16) == 0 ||
                strncmp(*e, "PMIX_", 5) == 0) {
                char name[256];
                snprintf(name, sizeof(name), "%.*s", (int)strcspn(*e, "="), *e);
                unsetenv(name);
                again = 1;
                break;
            }
        }
    }
    setenv("RDT_CONNECT_TIMEOUT", "20", 1);
    setenv("RDT_TIMEOUT", "30", 1);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    n = (long)fread(buf, 1, (size_t)n, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

typedef struct proc {
    pid_t pid;
    int status;
    char out[320], err[320];
} proc_t;

/* Start @p argv with stdout and stderr to files, in a process group of its own; @p env are
 * NAME=VALUE strings added to this environment. */
static void proc_start(proc_t *p, const char *name, char *const *argv, char *const *env)
{
    snprintf(p->out, sizeof(p->out), "%s/%s.out", tmpdir, name);
    snprintf(p->err, sizeof(p->err), "%s/%s.err", tmpdir, name);
    p->status = -1;
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        int o = open(p->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_RDONLY);
        setpgid(0, 0);
        if (o < 0 || e < 0 || nul < 0)
            _exit(126);
        dup2(nul, 0);
        dup2(o, 1);
        dup2(e, 2);
        for (; env && *env; env++)
            putenv(*env);
        execv(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(p->pid, p->pid);
}

/* Wait for all @p n, killing them (and their process groups) at the deadline: a job that
 * takes longer is a failure, never a hang. */
static void procs_wait(proc_t *p, int n)
{
    int64_t deadline = now_ms() + JOB_SECS * 1000, kill_at = 0;
    int left = n, i;

    while (left > 0) {
        for (i = 0; i < n; i++) {
            int st;
            if (p[i].status >= 0 || p[i].pid <= 0)
                continue;
            if (waitpid(p[i].pid, &st, WNOHANG) == p[i].pid) {
                p[i].status = st;
                kill(-p[i].pid, SIGKILL); /* anything it left in its group */
                left--;
            }
        }
        if (left > 0 && !kill_at && now_ms() > deadline) {
            fprintf(stderr, "job still running after %d s: stopping it\n", JOB_SECS);
            for (i = 0; i < n; i++)
                if (p[i].status < 0)
                    kill(-p[i].pid, SIGTERM);
            kill_at = now_ms() + 3000;
        }
        if (kill_at && now_ms() > kill_at) {
            for (i = 0; i < n; i++)
                if (p[i].status < 0)
                    kill(-p[i].pid, SIGKILL);
        }
        if (left > 0)
            usleep(10000);
    }
    assert_int_equal(kill_at, 0);
}

/* ------------------------------------------------------------------------------------------- */
/* Open MPI's mpirun                                                                            */
/* ------------------------------------------------------------------------------------------- */

static void skip_without_mpirun(void)
{
    if (!mpirun_path[0]) {
        fprintf(stderr, "mpirun (Debian package openmpi-bin) is not installed: skipped\n");
        skip();
    }
}

/* mpirun ... -np NRANKS [-x RDT_ROOT=127.0.0.1:PORT] -x RDT_LOG=info THIS --rank ompi MARKER */
static void run_mpirun(proc_t *p, int with_root, char *marker, size_t mlen, char *root, size_t rlen)
{
    char np[16];
    char *argv[MAX_ARGS];
    int n = 0;

    snprintf(marker, mlen, "rdt-mpirun-test-%d-%d", (int)getpid(), ++marker_seq);
    snprintf(root, rlen, "RDT_ROOT=127.0.0.1:%d", free_port());
    snprintf(np, sizeof(np), "%d", NRANKS);
    argv[n++] = mpirun_path;
    argv[n++] = "--allow-run-as-root";
    argv[n++] = "--oversubscribe";
    argv[n++] = "-np";
    argv[n++] = np;
    if (with_root) {
        argv[n++] = "-x";
        argv[n++] = root;
    }
    argv[n++] = "-x";
    argv[n++] = "RDT_LOG=info";
    argv[n++] = self_exe;
    argv[n++] = "--rank";
    argv[n++] = "ompi";
    argv[n++] = marker;
    argv[n] = NULL;
    clean_environment();
    proc_start(p, "mpirun", argv, NULL);
    procs_wait(p, 1);
}

static void test_mpirun_example_runs_an_allreduce(void **state)
{
    char marker[96], root[64], want[128];
    proc_t p;
    char *out, *err;
    int r;

    skip_without_mpirun();
    run_mpirun(&p, 1, marker, sizeof(marker), root, sizeof(root));
    out = slurp(p.out);
    err = slurp(p.err);
    if (!WIFEXITED(p.status) || WEXITSTATUS(p.status) != 0)
        fprintf(stderr, "mpirun status %d\nstdout:\n%s\nstderr:\n%s\n", p.status, out, err);
    assert_true(WIFEXITED(p.status));
    assert_int_equal(WEXITSTATUS(p.status), 0);
    for (r = 0; r < NRANKS; r++) {
        snprintf(want, sizeof(want), "rank %d of %d: allreduce ok (Open MPI)\n", r, NRANKS);
        expect_in(out, want);
        /* the engine's own account: rank and size from Open MPI's variables, RDT_ROOT's
           rendezvous */
        snprintf(want, sizeof(want), "rank %d of %d (from Open MPI), rendezvous %s", r, NRANKS,
                 root + strlen("RDT_ROOT="));
        expect_in(err, want);
    }
    assert_int_equal(count_substr(out, "allreduce ok"), NRANKS);
    /* the token came from mpirun's job id: no warning that it was derived from the address */
    assert_null(strstr(err, "no RDT_TOKEN"));
    free(out);
    free(err);
    assert_no_leftovers(marker);
}

static void test_mpirun_without_rdt_root_is_a_clear_error(void **state)
{
    char marker[96], root[64];
    proc_t p;
    char *out, *err;

    skip_without_mpirun();
    run_mpirun(&p, 0, marker, sizeof(marker), root, sizeof(root));
    out = slurp(p.out);
    err = slurp(p.err);
    if (!WIFEXITED(p.status) || WEXITSTATUS(p.status) == 0 ||
        !strstr(err, "no rendezvous address; set RDT_ROOT=host:port"))
        fprintf(stderr, "mpirun status %d\nstdout:\n%s\nstderr:\n%s\n", p.status, out, err);
    assert_true(WIFEXITED(p.status));
    assert_int_not_equal(WEXITSTATUS(p.status), 0);
    expect_in(err, "(from Open MPI): no rendezvous address; set RDT_ROOT=host:port");
    assert_int_equal(count_substr(out, "allreduce ok"), 0);
    free(out);
    free(err);
    assert_no_leftovers(marker);
}

/* ------------------------------------------------------------------------------------------- */
/* Slurm's srun, emulated                                                                       */
/* ------------------------------------------------------------------------------------------- */

/*
 * What `srun -n NRANKS --export=ALL,RDT_ROOT=127.0.0.1:PORT prog` gives task r of a one-node
 * step: the SLURM_* variables below (those the engine reads, SLURM_PROCID, SLURM_NTASKS,
 * SLURM_LOCALID, SLURM_JOB_ID, and the usual others) and RDT_ROOT. Task @p bad_task (if >= 0)
 * gets another job id.
 */
static void run_srun_emulated(proc_t *p, int bad_task, const char *connect_timeout, char *marker,
                              size_t mlen, char *root, size_t rlen)
{
    char host[256] = "localhost", vars[NRANKS][24][300];
    long job = 100000 + getpid() % 800000;
    int r;

    snprintf(marker, mlen, "rdt-srun-test-%d-%d", (int)getpid(), ++marker_seq);
    snprintf(root, rlen, "RDT_ROOT=127.0.0.1:%d", free_port());
    gethostname(host, sizeof(host) - 1);
    clean_environment();
    setenv("RDT_CONNECT_TIMEOUT", connect_timeout, 1);
    for (r = 0; r < NRANKS; r++) {
        char *argv[] = {self_exe, "--rank", "slurm", marker, NULL};
        char *env[24], name[32];
        long id = r == bad_task ? job + 1 : job;
        int k = 0;
#define VAR(...) (snprintf(vars[r][k], sizeof(vars[r][k]), __VA_ARGS__), env[k] = vars[r][k], k++)
        VAR("SLURM_PROCID=%d", r);
        VAR("SLURM_NTASKS=%d", NRANKS);
        VAR("SLURM_NPROCS=%d", NRANKS);
        VAR("SLURM_LOCALID=%d", r);
        VAR("SLURM_NODEID=0");
        VAR("SLURM_JOB_ID=%ld", id);
        VAR("SLURM_JOBID=%ld", id);
        VAR("SLURM_STEP_ID=0");
        VAR("SLURM_STEPID=0");
        VAR("SLURM_NNODES=1");
        VAR("SLURM_JOB_NUM_NODES=1");
        VAR("SLURM_STEP_NUM_NODES=1");
        VAR("SLURM_STEP_NUM_TASKS=%d", NRANKS);
        VAR("SLURM_TASKS_PER_NODE=%d", NRANKS);
        VAR("SLURM_STEP_TASKS_PER_NODE=%d", NRANKS);
        VAR("SLURM_NODELIST=%s", host);
        VAR("SLURM_JOB_NODELIST=%s", host);
        VAR("SLURM_STEP_NODELIST=%s", host);
        VAR("SLURMD_NODENAME=%s", host);
        VAR("%s", root);
        VAR("RDT_LOG=info");
#undef VAR
        env[k] = NULL;
        snprintf(name, sizeof(name), "task%d", r);
        proc_start(&p[r], name, argv, env);
    }
    procs_wait(p, NRANKS);
}

static void test_srun_example_emulated_runs_an_allreduce(void **state)
{
    char marker[96], root[64], want[128];
    proc_t p[NRANKS];
    int r;

    run_srun_emulated(p, -1, "20", marker, sizeof(marker), root, sizeof(root));
    for (r = 0; r < NRANKS; r++) {
        char *out = slurp(p[r].out), *err = slurp(p[r].err);
        if (!WIFEXITED(p[r].status) || WEXITSTATUS(p[r].status) != 0)
            fprintf(stderr, "task %d status %d\nstdout:\n%s\nstderr:\n%s\n", r, p[r].status, out,
                    err);
        assert_true(WIFEXITED(p[r].status));
        assert_int_equal(WEXITSTATUS(p[r].status), 0);
        snprintf(want, sizeof(want), "rank %d of %d: allreduce ok (Slurm)\n", r, NRANKS);
        assert_string_equal(out, want);
        snprintf(want, sizeof(want), "rank %d of %d (from Slurm), rendezvous %s", r, NRANKS,
                 root + strlen("RDT_ROOT="));
        expect_in(err, want);
        assert_null(strstr(err, "no RDT_TOKEN")); /* the token is the job id */
        free(out);
        free(err);
    }
    assert_no_leftovers(marker);
}

/* The token is the job id: a task of another job is refused by the rendezvous, and the job
 * fails with an error instead of running with a stranger. */
static void test_srun_task_with_another_job_id_is_refused(void **state)
{
    char marker[96], root[64];
    proc_t p[NRANKS];
    char *err0;
    int r;

    /* 3 s: how long the refused task keeps trying, and rank 0 waits for it */
    run_srun_emulated(p, 2, "3", marker, sizeof(marker), root, sizeof(root));
    for (r = 0; r < NRANKS; r++) {
        char *out = slurp(p[r].out);
        assert_true(WIFEXITED(p[r].status));
        if (WEXITSTATUS(p[r].status) == 0)
            fprintf(stderr, "task %d exited 0:\n%s\n", r, out);
        assert_int_not_equal(WEXITSTATUS(p[r].status), 0);
        assert_null(strstr(out, "allreduce ok"));
        free(out);
    }
    err0 = slurp(p[0].err);
    expect_in(err0, "wrong job token");
    expect_in(err0, "did not arrive");
    free(err0);
    assert_no_leftovers(marker);
}

/* ------------------------------------------------------------------------------------------- */

static int find_mpirun(void)
{
    const char *path = getenv("PATH");
    char *copy, *dir, *save = NULL;

    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    copy = strdup(path);
    for (dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        snprintf(mpirun_path, sizeof(mpirun_path), "%s/mpirun", dir);
        if (access(mpirun_path, X_OK) == 0) {
            free(copy);
            return 1;
        }
    }
    free(copy);
    mpirun_path[0] = '\0';
    return 0;
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rdt-test-mpirun-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) ? -1 : 0;
}

static int teardown(void **state)
{
    return nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) ? -1 : 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mpirun_example_runs_an_allreduce),
        cmocka_unit_test(test_mpirun_without_rdt_root_is_a_clear_error),
        cmocka_unit_test(test_srun_example_emulated_runs_an_allreduce),
        cmocka_unit_test(test_srun_task_with_another_job_id_is_refused),
    };
    const char *req = getenv("RDT_TEST_REQUIRE_MPIRUN");
    ssize_t n;
    int rc;

    if (argc == 4 && strcmp(argv[1], "--rank") == 0)
        return rank_main(argv[2]);
    n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    if (n <= 0) {
        perror("readlink /proc/self/exe");
        return 1;
    }
    self_exe[n] = '\0';
    if (!find_mpirun() && req && strcmp(req, "1") == 0) {
        fprintf(stderr, "test_launcher_mpirun: FAILED: RDT_TEST_REQUIRE_MPIRUN=1 but mpirun is "
                        "not in PATH (install Debian's openmpi-bin)\n");
        return 1;
    }
    rc = cmocka_run_group_tests(tests, setup, teardown);
    if (rc == 0 && !mpirun_path[0]) {
        printf("test_launcher_mpirun: the mpirun cases were skipped: mpirun is not installed "
               "(Debian package openmpi-bin; RDT_TEST_REQUIRE_MPIRUN=1 makes this a failure)\n");
        return 77;
    }
    return rc;
}
