/*
 * test_launcher.c - the built `rdmatrain` program, run as a user would: collectives on 1, 2, 4
 * and 7 local ranks, hosts files, exit statuses (a rank exits 3, one is SIGKILLed, one hangs
 * past --timeout, one ignores SIGTERM), Ctrl-C and SIGTERM through the launcher, the launcher
 * itself SIGKILLed, output prefixes and files, refusals before anything starts, and "remote"
 * ranks through an --rsh agent that runs the remote command on this machine. Only 127.0.0.1:
 * jobs with such "remote" hosts pass --root 127.0.0.1, so the launcher does not look up the
 * made-up host names (fakenode, sshnode) to find its address toward them, which would be a DNS
 * query. The address it picks by default is tested in test_launcher_netns.c.
 *
 * rdt-test-labels: fault
 *
 * Every job passes a unique marker as the program's last argument; after each job no process
 * whose command line holds the marker may remain (/proc is scanned). RDT_LAUNCHER and
 * RDT_TEST_PROG (the program, tests/integration/rdt_allreduce_prog.c) come from CMake.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "freeport.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef RDT_LAUNCHER
#error "RDT_LAUNCHER (path of the rdmatrain program) must be defined by the build"
#endif

#define MAX_ARGS   48
#define JOB_SECS   60 /* a job that runs longer is a failure (and is killed) */
#define CHECK_SECS 5  /* how long asynchronous cleanup may take (launcher SIGKILLed) */

static char tmpdir[256];
static int marker_seq;

typedef struct buf {
    char *p;
    size_t len, cap;
} buf_t;

/* One run of the launcher: its output and how it ended. */
typedef struct run {
    buf_t out, err;
    int status; /* from waitpid */
    char marker[96];
} run_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void buf_add(buf_t *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void run_free(run_t *r)
{
    free(r->out.p);
    free(r->err.p);
    memset(r, 0, sizeof(*r));
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

/* Processes whose command line contains @p marker (zombies have none, and do not count). */
static int count_marked(const char *marker, int verbose)
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
        if (strstr(cmd, marker)) {
            if (verbose)
                fprintf(stderr, "left behind: pid %s: %s\n", e->d_name, cmd);
            n++;
        }
    }
    closedir(d);
    return n;
}

/* No process of the job may remain; @p wait_ms allows asynchronous cleanup to finish. */
static void assert_no_leftovers(const char *marker, int wait_ms)
{
    int64_t until = now_ms() + wait_ms;
    int n;

    while ((n = count_marked(marker, 0)) > 0 && now_ms() < until)
        usleep(20000);
    if (n > 0)
        n = count_marked(marker, 1);
    assert_int_equal(n, 0);
}

/*
 * Run the launcher with @p args (NULL-terminated; "@M" is replaced by the job's marker).
 * When the launcher's stdout holds @p ready_count copies of "ready", send it @p sig (0: none).
 */
static void run_launcher(run_t *r, const char *const *args, int ready_count, int sig)
{
    char *argv[MAX_ARGS];
    int outp[2], errp[2], n = 0, sent = 0, open_fds = 2;
    pid_t pid;
    int64_t deadline = now_ms() + JOB_SECS * 1000;

    memset(r, 0, sizeof(*r));
    snprintf(r->marker, sizeof(r->marker), "rdt-launcher-test-%d-%d", (int)getpid(), ++marker_seq);
    argv[n++] = RDT_LAUNCHER;
    for (; *args && n < MAX_ARGS - 1; args++)
        argv[n++] = strcmp(*args, "@M") == 0 ? r->marker : (char *)*args;
    argv[n] = NULL;
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
        execv(argv[0], argv);
        _exit(126);
    }
    close(outp[1]);
    close(errp[1]);
    while (open_fds > 0) {
        struct pollfd p[2] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
        int i, rc;
        if (now_ms() > deadline) {
            fprintf(stderr, "launcher still running after %d s: killing it\n", JOB_SECS);
            kill(pid, SIGKILL);
            deadline = now_ms() + 3600 * 1000;
        }
        rc = poll(p, 2, 200);
        if (rc < 0 && errno != EINTR)
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
            buf_add(i == 0 ? &r->out : &r->err, chunk, (size_t)got);
        }
        if (sig && !sent && count_substr(r->out.p, "ready") >= ready_count) {
            kill(pid, sig);
            sent = 1;
        }
    }
    while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
        ;
    if (sig)
        assert_true(sent);
    if (!r->out.p)
        buf_add(&r->out, "", 0);
    if (!r->err.p)
        buf_add(&r->err, "", 0);
}

static void expect_exit(const run_t *r, int code)
{
    if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != code)
        fprintf(stderr, "launcher status %d (want exit %d)\nstdout:\n%s\nstderr:\n%s\n", r->status,
                code, r->out.p, r->err.p);
    assert_true(WIFEXITED(r->status));
    assert_int_equal(WEXITSTATUS(r->status), code);
}

static void expect_in(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fprintf(stderr, "missing '%s' in:\n%s\n", needle, hay);
    assert_non_null(strstr(hay, needle));
}

/* Every rank of @p n printed its allreduce line, with @p prefix_fmt ("[%d] ") before it. */
static void expect_allreduce_lines(const run_t *r, int n, const char *const *prefixes)
{
    int i;
    for (i = 0; i < n; i++) {
        char line[256], pre[64];
        if (prefixes)
            snprintf(pre, sizeof(pre), "%s", prefixes[i]);
        else
            snprintf(pre, sizeof(pre), "[%d] ", i);
        snprintf(line, sizeof(line), "%srank %d of %d: allreduce ok", pre, i, n);
        expect_in(r->out.p, line);
    }
    assert_int_equal(count_substr(r->out.p, "allreduce ok"), n);
}

/* ------------------------------------------------------------------------------------------- */

static void test_allreduce_on_1_2_4_and_7_local_ranks(void **state)
{
    static const char *const counts[] = {"1", "2", "4", "7"};
    size_t k;

    for (k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
        const char *args[] = {"-np", counts[k], "--", RDT_TEST_PROG, "@M", NULL};
        run_t r;
        int i, n = atoi(counts[k]);

        run_launcher(&r, args, 0, 0);
        expect_exit(&r, 0);
        expect_allreduce_lines(&r, n, NULL);
        for (i = 0; i < n; i++) {
            char want[64];
            snprintf(want, sizeof(want), "(local rank %d)", i);
            expect_in(r.out.p, want);
        }
        assert_string_equal(r.err.p, "");
        assert_no_leftovers(r.marker, 0);
        run_free(&r);
    }
}

static void test_default_is_two_local_ranks_and_environment_is_fresh(void **state)
{
    const char *args[] = {RDT_TEST_PROG, "--env", "RDT_TOKEN", "--env", "RDT_ROOT", "--env",
                          "RDT_LOCAL_RANK", "--env", "RDT_LOCAL_SIZE", "@M", NULL};
    run_t a, b;
    char tok_a[64] = "", tok_b[64] = "";
    const char *p;

    run_launcher(&a, args, 0, 0);
    expect_exit(&a, 0);
    expect_allreduce_lines(&a, 2, NULL);
    expect_in(a.out.p, "[1] rank 1 RDT_ROOT=127.0.0.1:");
    expect_in(a.out.p, "[1] rank 1 RDT_LOCAL_RANK=1");
    expect_in(a.out.p, "[0] rank 0 RDT_LOCAL_SIZE=2");
    expect_in(a.out.p, "[1] rank 1 RDT_LOCAL_SIZE=2");
    p = strstr(a.out.p, "[0] rank 0 RDT_TOKEN=");
    assert_non_null(p);
    sscanf(p + strlen("[0] rank 0 RDT_TOKEN="), "%63s", tok_a);
    assert_int_equal(strlen(tok_a), 32);
    assert_int_equal(strspn(tok_a, "0123456789abcdef"), 32);
    run_launcher(&b, args, 0, 0);
    expect_exit(&b, 0);
    p = strstr(b.out.p, "[1] rank 1 RDT_TOKEN=");
    assert_non_null(p);
    sscanf(p + strlen("[1] rank 1 RDT_TOKEN="), "%63s", tok_b);
    assert_string_not_equal(tok_a, tok_b);
    assert_no_leftovers(a.marker, 0);
    run_free(&a);
    run_free(&b);
}

static void test_hosts_file_inline_list_np_and_oversubscribe(void **state)
{
    char path[300];
    FILE *f;
    run_t r;

    snprintf(path, sizeof(path), "%s/hosts.txt", tmpdir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "# this machine only\nlocalhost slots=3  # three ranks\n");
    fclose(f);
    {
        const char *args[] = {"-H", path, RDT_TEST_PROG, "@M", NULL};
        run_launcher(&r, args, 0, 0);
        expect_exit(&r, 0);
        expect_allreduce_lines(&r, 3, NULL);
        run_free(&r);
    }
    {
        const char *args[] = {"--hostfile", path, "-np", "2", RDT_TEST_PROG, "@M", NULL};
        run_launcher(&r, args, 0, 0);
        expect_exit(&r, 0);
        expect_allreduce_lines(&r, 2, NULL);
        run_free(&r);
    }
    {
        const char *args[] = {"-H", "127.0.0.1:2", "-np", "3", "--oversubscribe",
                              "--", RDT_TEST_PROG, "@M",  NULL};
        run_launcher(&r, args, 0, 0);
        expect_exit(&r, 0);
        expect_allreduce_lines(&r, 3, NULL);
        assert_no_leftovers(r.marker, 0);
        run_free(&r);
    }
}

static void test_refusals_start_nothing(void **state)
{
    char dup[300], want[400];
    FILE *f;
    run_t r;
    size_t k;
    static const struct {
        const char *args[8];
        int code;
        const char *msg;
    } cases[] = {
        {{"-np", "0", RDT_TEST_PROG, "@M"}, 2, "-np expects a number of ranks from 1 to"},
        {{"-np", "two", RDT_TEST_PROG, "@M"}, 2, "-np expects a number of ranks"},
        {{"-H", "localhost:2", "-np", "5", RDT_TEST_PROG, "@M"},
         2,
         "rdmatrain: -np 5 is more than the 2 slots of -H (1 host); list more slots, lower -np, "
         "or pass --oversubscribe\n"},
        {{"-H", "localhost:2,h2:0", RDT_TEST_PROG, "@M"},
         2,
         "rdmatrain: -H:1:16: expected a positive integer after ':', got '0'\n"},
        {{"-H", "no-such-dir/hosts", RDT_TEST_PROG, "@M"},
         2,
         "cannot open hosts file 'no-such-dir/hosts'"},
        {{"-H", "missing-hosts.txt", RDT_TEST_PROG, "@M"},
         2,
         "cannot open hosts file 'missing-hosts.txt'"},
        {{"--timeout", "-1", RDT_TEST_PROG, "@M"}, 2, "--timeout expects a positive number"},
        {{"-x", "RDT_RANK=3", RDT_TEST_PROG, "@M"},
         2,
         "-x 'RDT_RANK=3': RDT_RANK is set by the launcher for each rank"},
        {{"-x", "1BAD=3", RDT_TEST_PROG, "@M"}, 2, "-x '1BAD=3': expected VAR=VALUE or VAR"},
        {{"--bogus", RDT_TEST_PROG, "@M"}, 2, "unknown option '--bogus'"},
        {{"--root", "::1", RDT_TEST_PROG, "@M"},
         2,
         "rdmatrain: --root '::1': write an IPv6 address in brackets, as [ADDR] or [ADDR]:PORT\n"},
        {{"--root", "node1:0", RDT_TEST_PROG, "@M"},
         2,
         "rdmatrain: --root 'node1:0': the port must be a number from 1 to 65535\n"},
        {{"--root", "no de", RDT_TEST_PROG, "@M"}, 2, "rdmatrain: --root 'no de': expected HOST"},
        {{"--root", "[::1", RDT_TEST_PROG, "@M"}, 2, "rdmatrain: --root '[::1': expected HOST"},
        {{"-np", "2"}, 2, "no program to run"},
        {{"-np", "2", "./no-such-program-@M"}, 127, "cannot run './no-such-program-"},
        {{"-np", "2", "no-such-program-in-path", "@M"}, 127, "not found in PATH"},
    };

    for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        run_launcher(&r, cases[k].args, 0, 0);
        expect_exit(&r, cases[k].code);
        expect_in(r.err.p, cases[k].msg);
        assert_string_equal(r.out.p, "");
        run_free(&r);
    }

    snprintf(dup, sizeof(dup), "%s/dup-hosts.txt", tmpdir);
    f = fopen(dup, "w");
    assert_non_null(f);
    fprintf(f, "localhost slots=2\n127.0.0.1:2\n");
    fclose(f);
    {
        const char *args[] = {"-H", dup, RDT_TEST_PROG, "@M", NULL};
        run_launcher(&r, args, 0, 0);
        expect_exit(&r, 2);
        snprintf(want, sizeof(want),
                 "rdmatrain: %s:2:1: host '127.0.0.1' is this machine, already listed as "
                 "'localhost' at 1:1\n",
                 dup);
        assert_string_equal(r.err.p, want);
        run_free(&r);
    }
}

static void test_a_rank_exiting_3_stops_the_others_and_sets_the_status(void **state)
{
    const char *args[] = {"-np", "4", RDT_TEST_PROG, "--exit", "2", "3", "@M", NULL};
    run_t r;

    run_launcher(&r, args, 0, 0);
    expect_exit(&r, 3);
    assert_string_equal(r.err.p, "rdmatrain: rank 2 on localhost exited with status 3; stopping "
                                 "the other ranks\n");
    expect_allreduce_lines(&r, 4, NULL);
    assert_no_leftovers(r.marker, 0);
    run_free(&r);
}

static void test_a_rank_killed_by_sigkill_is_named_with_its_signal(void **state)
{
    const char *args[] = {"-np", "3", RDT_TEST_PROG, "--kill", "1", "--child", "@M", NULL};
    run_t r;

    run_launcher(&r, args, 0, 0);
    expect_exit(&r, 128 + SIGKILL);
    assert_string_equal(r.err.p, "rdmatrain: rank 1 on localhost was killed by signal 9 "
                                 "(SIGKILL); stopping the other ranks\n");
    assert_no_leftovers(r.marker, 0); /* the ranks' children too */
    run_free(&r);
}

static void test_a_rank_hanging_past_the_timeout_is_stopped(void **state)
{
    const char *args[] = {"-np", "2", "--timeout", "1", RDT_TEST_PROG, "--hang", "1", "@M", NULL};
    run_t r;

    run_launcher(&r, args, 0, 0);
    expect_exit(&r, 124);
    assert_string_equal(r.err.p, "rdmatrain: the job ran longer than --timeout 1 s; stopping 1 "
                                 "rank still running (rank 1 on localhost)\n");
    assert_no_leftovers(r.marker, 0);
    run_free(&r);
}

static void test_a_rank_ignoring_sigterm_is_killed_after_the_grace_period(void **state)
{
    const char *args[] = {"-np",           "2",      "--timeout", "1",  RDT_TEST_PROG,
                          "--ignore-term", "--hang", "0",         "@M", NULL};
    run_t r;

    run_launcher(&r, args, 0, 0);
    expect_exit(&r, 124);
    expect_in(r.err.p, "stopping 1 rank still running (rank 0 on localhost)\n");
    expect_in(r.err.p, "rdmatrain: 1 rank still running 3 s after being told to stop; killing "
                       "(SIGKILL): rank 0 on localhost\n");
    assert_no_leftovers(r.marker, 0);
    run_free(&r);
}

/* Ctrl-C (SIGINT) and SIGTERM sent to the launcher reach every rank and their children. */
static void test_sigint_and_sigterm_reach_every_rank(void **state)
{
    static const int sigs[] = {SIGINT, SIGTERM};
    size_t k;

    for (k = 0; k < 2; k++) {
        const char *args[] = {"-np", "4", RDT_TEST_PROG, "--wait-signal", "--child", "@M", NULL};
        const char *name = sigs[k] == SIGINT ? "SIGINT" : "SIGTERM";
        run_t r;
        char want[128];
        int i;

        run_launcher(&r, args, 4, sigs[k]);
        expect_exit(&r, 128 + sigs[k]);
        for (i = 0; i < 4; i++) {
            snprintf(want, sizeof(want), "[%d] rank %d got %s\n", i, i, name);
            expect_in(r.out.p, want);
        }
        snprintf(want, sizeof(want), "rdmatrain: got %s; forwarding it to 4 ranks", name);
        expect_in(r.err.p, want);
        assert_no_leftovers(r.marker, 0);
        run_free(&r);
    }
}

/* The launcher killed with SIGKILL cannot clean up itself: ranks die with it (parent-death
 * signal) and the watchdog kills their process groups (their children). */
static void test_a_killed_launcher_leaves_no_process(void **state)
{
    const char *args[] = {"-np", "3", RDT_TEST_PROG, "--wait-signal", "--child", "@M", NULL};
    run_t r;

    run_launcher(&r, args, 3, SIGKILL);
    assert_true(WIFSIGNALED(r.status));
    assert_int_equal(WTERMSIG(r.status), SIGKILL);
    assert_no_leftovers(r.marker, CHECK_SECS * 1000);
    run_free(&r);
}

static void test_output_is_prefixed_line_by_line_and_partial_lines_are_kept(void **state)
{
    const char *args[] = {
        "-np",     "2",  "--",
        "/bin/sh", "-c", "printf 'ab'; sleep 0.2; printf 'c\\nd\\n\\nlast'; printf 'e\\n' >&2",
        "@M",      NULL};
    run_t r;

    run_launcher(&r, args, 0, 0);
    expect_exit(&r, 0);
    expect_in(r.out.p, "[0] abc\n");
    expect_in(r.out.p, "[1] abc\n");
    expect_in(r.out.p, "[0] d\n[0] \n");
    expect_in(r.out.p, "[0] last\n");
    expect_in(r.out.p, "[1] last\n");
    expect_in(r.err.p, "[0] e\n");
    expect_in(r.err.p, "[1] e\n");
    assert_int_equal(count_substr(r.out.p, "\n"), 8);
    run_free(&r);
}

static void test_output_dir_keeps_one_file_per_rank(void **state)
{
    char dir[300];
    const char *args[] = {"-np", "3", "--output-dir", dir, RDT_TEST_PROG, "@M", NULL};
    run_t r;
    int i;

    snprintf(dir, sizeof(dir), "%s/out/logs", tmpdir);
    run_launcher(&r, args, 0, 0);
    expect_exit(&r, 0);
    assert_string_equal(r.out.p, "");
    for (i = 0; i < 3; i++) {
        char path[400], text[512] = "", want[128];
        FILE *f;
        snprintf(path, sizeof(path), "%s/rank.%d.log", dir, i);
        f = fopen(path, "r");
        assert_non_null(f);
        assert_true(fread(text, 1, sizeof(text) - 1, f) > 0);
        fclose(f);
        snprintf(want, sizeof(want), "rank %d of 3: allreduce ok", i);
        expect_in(text, want);
    }
    run_free(&r);
}

/* An --rsh agent standing in for ssh: run "AGENT HOST COMMAND" as sshd would run COMMAND (through
 * a shell, in a session of its own), on this machine, and log HOST. */
static void write_agent(char *path, size_t len)
{
    FILE *f;

    snprintf(path, len, "%s/fake-ssh", tmpdir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "#!/bin/sh\nhost=$1; shift\necho \"$host\" >> '%s/agent.log'\n"
            "exec setsid -w /bin/sh -c \"$*\"\n",
            tmpdir);
    fclose(f);
    assert_int_equal(chmod(path, 0755), 0);
}

static void test_remote_ranks_through_an_rsh_agent(void **state)
{
    char agent[300], log[300], text[256] = "";
    const char *args[] = {"-H",          "localhost:1,fakenode:2",
                          "--rsh",       agent,
                          "--root",      "127.0.0.1",
                          "-x",          "FOO=it's a b",
                          RDT_TEST_PROG, "--env",
                          "FOO",         "--env",
                          "RDT_ROOT",    "@M",
                          NULL};
    static const char *const prefixes[] = {"[localhost:0] ", "[fakenode:1] ", "[fakenode:2] "};
    run_t r;
    FILE *f;

    write_agent(agent, sizeof(agent));
    snprintf(log, sizeof(log), "%s/agent.log", tmpdir);
    unlink(log);
    run_launcher(&r, args, 0, 0);
    expect_exit(&r, 0);
    expect_allreduce_lines(&r, 3, prefixes);
    expect_in(r.out.p, "[fakenode:2] rank 2 of 3: allreduce ok (local rank 1)");
    expect_in(r.out.p, "[fakenode:1] rank 1 FOO=it's a b\n");
    expect_in(r.out.p, "[localhost:0] rank 0 FOO=it's a b\n");
    expect_in(r.out.p, "[fakenode:2] rank 2 RDT_ROOT=127.0.0.1:");
    f = fopen(log, "r");
    assert_non_null(f);
    assert_true(fread(text, 1, sizeof(text) - 1, f) > 0);
    fclose(f);
    assert_string_equal(text, "fakenode\nfakenode\n");
    assert_no_leftovers(r.marker, 0);
    run_free(&r);
}

static void test_remote_ranks_get_signals_and_report_failures(void **state)
{
    char agent[300];
    const char *sig_args[] = {
        "-H",          "localhost:1,fakenode:2", "--rsh",   agent, "--root", "127.0.0.1",
        RDT_TEST_PROG, "--wait-signal",          "--child", "@M",  NULL};
    const char *exit_args[] = {"-H",          "localhost:1,fakenode:2",
                               "--rsh",       agent,
                               "--root",      "127.0.0.1",
                               RDT_TEST_PROG, "--exit",
                               "2",           "5",
                               "@M",          NULL};
    run_t r;

    write_agent(agent, sizeof(agent));
    run_launcher(&r, sig_args, 3, SIGINT);
    expect_exit(&r, 130);
    expect_in(r.out.p, "[localhost:0] rank 0 got SIGINT\n");
    expect_in(r.out.p, "[fakenode:1] rank 1 got SIGINT\n");
    expect_in(r.out.p, "[fakenode:2] rank 2 got SIGINT\n");
    assert_no_leftovers(r.marker, CHECK_SECS * 1000);
    run_free(&r);

    run_launcher(&r, exit_args, 0, 0);
    expect_exit(&r, 5);
    expect_in(r.err.p, "rdmatrain: rank 2 on fakenode exited with status 5; stopping the other "
                       "ranks\n");
    assert_no_leftovers(r.marker, CHECK_SECS * 1000);
    run_free(&r);
}

/*
 * A real sshd (Debian's openssh-server), started here on a free loopback port with throwaway
 * host and user keys, and "remote" hosts reached through it: ssh -o HostName=127.0.0.1 makes
 * any host name land here, while the launcher treats it as remote. Skipped when sshd or
 * ssh-keygen is not installed, or without root (sshd's privilege separation needs it).
 */
static pid_t sshd_start(char *rsh, size_t rshlen)
{
    char cfg[300], cmd[1200];
    FILE *f;
    pid_t pid;
    int port = 0, i;

    if (access("/usr/sbin/sshd", X_OK) || access("/usr/bin/ssh-keygen", X_OK) || geteuid() != 0)
        return 0;
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && rm -f hostkey* userkey* && ssh-keygen -q -t ed25519 -N '' -f hostkey && "
             "ssh-keygen -q -t ed25519 -N '' -f userkey && cp userkey.pub authorized_keys",
             tmpdir);
    assert_int_equal(system(cmd), 0);
    mkdir("/run/sshd", 0755); /* sshd's privilege separation directory */
    port = rdt_free_port(0); /* sshd binds it with SO_REUSEADDR too */
    assert_true(port > 0);
    snprintf(cfg, sizeof(cfg), "%s/sshd_config", tmpdir);
    f = fopen(cfg, "w");
    assert_non_null(f);
    fprintf(f,
            "ListenAddress 127.0.0.1\nPort %d\nHostKey %s/hostkey\n"
            "AuthorizedKeysFile %s/authorized_keys\nStrictModes no\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nPidFile none\n",
            port, tmpdir, tmpdir);
    fclose(f);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int nul = open("/dev/null", O_WRONLY);
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* even if this test crashes */
        dup2(nul, 1);
        dup2(nul, 2);
        execl("/usr/sbin/sshd", "/usr/sbin/sshd", "-D", "-e", "-f", cfg, (char *)NULL);
        _exit(127);
    }
    for (i = 0; i < 250; i++) { /* until it accepts connections */
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        if (ok)
            break;
        usleep(20000);
    }
    if (i == 250)
        fprintf(stderr, "sshd did not start listening on 127.0.0.1:%d (try sshd -t -f %s)\n", port,
                cfg);
    assert_true(i < 250);
    snprintf(rsh, rshlen,
             "ssh -F /dev/null -i %s/userkey -o HostName=127.0.0.1 -p %d -o BatchMode=yes "
             "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
             tmpdir, port);
    return pid;
}

static pid_t sshd_pid;

/* The teardown of the sshd test: runs even when an assertion ended the test early. */
static int sshd_stop(void **state)
{
    int st;
    if (sshd_pid > 0) {
        kill(sshd_pid, SIGTERM);
        waitpid(sshd_pid, &st, 0);
    }
    sshd_pid = 0;
    return 0;
}

static void test_remote_ranks_through_a_real_sshd(void **state)
{
    char rsh[600];
    const char *ok_args[] = {
        "-H",          "localhost:1,sshnode:2", "--rsh", rsh,   "--root", "127.0.0.1", "-x",
        "FOO=a 'b' c", RDT_TEST_PROG,           "--env", "FOO", "@M",     NULL};
    const char *sig_args[] = {
        "-H",          "localhost:1,sshnode:2", "--rsh",   rsh,  "--root", "127.0.0.1",
        RDT_TEST_PROG, "--wait-signal",         "--child", "@M", NULL};
    const char *exit_args[] = {"-H",          "localhost:1,sshnode:2",
                               "--rsh",       rsh,
                               "--root",      "127.0.0.1",
                               RDT_TEST_PROG, "--exit",
                               "1",           "4",
                               "--child",     "@M",
                               NULL};
    static const char *const prefixes[] = {"[localhost:0] ", "[sshnode:1] ", "[sshnode:2] "};
    run_t r;

    if (!(sshd_pid = sshd_start(rsh, sizeof(rsh))))
        skip();
    run_launcher(&r, ok_args, 0, 0);
    expect_exit(&r, 0);
    expect_allreduce_lines(&r, 3, prefixes);
    expect_in(r.out.p, "[sshnode:2] rank 2 FOO=a 'b' c\n");
    assert_no_leftovers(r.marker, CHECK_SECS * 1000);
    run_free(&r);

    run_launcher(&r, sig_args, 3, SIGINT); /* Ctrl-C reaches the remote programs */
    expect_exit(&r, 130);
    expect_in(r.out.p, "[sshnode:1] rank 1 got SIGINT\n");
    expect_in(r.out.p, "[sshnode:2] rank 2 got SIGINT\n");
    assert_no_leftovers(r.marker, CHECK_SECS * 1000);
    run_free(&r);

    run_launcher(&r, exit_args, 0, 0);
    expect_exit(&r, 4);
    expect_in(r.err.p, "rdmatrain: rank 1 on sshnode exited with status 4; stopping the other "
                       "ranks\n");
    assert_no_leftovers(r.marker, CHECK_SECS * 1000);
    run_free(&r);

    run_launcher(&r, sig_args, 3, SIGKILL); /* the launcher dies: the watchdog and the remote
                                               wrappers clean up */
    assert_no_leftovers(r.marker, CHECK_SECS * 1000);
    run_free(&r);
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rdt-test-launcher-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allreduce_on_1_2_4_and_7_local_ranks),
        cmocka_unit_test(test_default_is_two_local_ranks_and_environment_is_fresh),
        cmocka_unit_test(test_hosts_file_inline_list_np_and_oversubscribe),
        cmocka_unit_test(test_refusals_start_nothing),
        cmocka_unit_test(test_a_rank_exiting_3_stops_the_others_and_sets_the_status),
        cmocka_unit_test(test_a_rank_killed_by_sigkill_is_named_with_its_signal),
        cmocka_unit_test(test_a_rank_hanging_past_the_timeout_is_stopped),
        cmocka_unit_test(test_a_rank_ignoring_sigterm_is_killed_after_the_grace_period),
        cmocka_unit_test(test_sigint_and_sigterm_reach_every_rank),
        cmocka_unit_test(test_a_killed_launcher_leaves_no_process),
        cmocka_unit_test(test_output_is_prefixed_line_by_line_and_partial_lines_are_kept),
        cmocka_unit_test(test_output_dir_keeps_one_file_per_rank),
        cmocka_unit_test(test_remote_ranks_through_an_rsh_agent),
        cmocka_unit_test(test_remote_ranks_get_signals_and_report_failures),
        cmocka_unit_test_teardown(test_remote_ranks_through_a_real_sshd, sshd_stop),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
