/*
 * test_launcher_netns.c - `rdmatrain -H hosts --rsh AGENT` across network namespaces: ranks
 * really run on different addresses and the engine's TCP connections cross veth links.
 *
 * The test builds, with `ip`, four network namespaces of its own (names rdtln<pid>-*):
 *
 *     ns a: eth0 198.51.100.11/24 --+
 *     ns b: eth0 198.51.100.12/24 --+-- veth --> bridge br0 in ns sw
 *     ns c: eth0 198.51.100.13/24 --+
 *
 * The launcher runs in ns a (the test enters it with setns() before exec), so its "localhost"
 * is 198.51.100.11; hosts files name 198.51.100.12 and .13, which it reaches through an --rsh
 * agent the test writes: `agent HOST COMMAND` runs COMMAND through `ip netns exec` in HOST's
 * namespace, in a session of its own, as sshd would. The root namespace is not touched: no
 * address, route or interface is added there, and no packet leaves the namespaces created here.
 *
 * Checked, against what the setup makes true rather than against the launcher's own output:
 * every rank's allreduce result (the program checks each element against the closed form);
 * the network namespace of every rank process (/proc/PID/ns/net against /run/netns/NAME, ranks
 * told apart by RDT_RANK in /proc/PID/environ); the address each rank's engine listens on
 * (RDT_LOG=info) is its namespace's; RDT_ROOT; the bytes the bridge ports carried during the
 * job (at least the vector each way: the ranks of one namespace cannot finish without the
 * other namespace's sum); the exit status; and that no process of the job is left.
 *
 * Needs root and `ip netns`. Without them it exits 77 (ctest: skipped), or fails when
 * RDT_TEST_REQUIRE_NETNS=1 (as CI sets it). Namespaces are deleted in the group teardown, on
 * SIGINT/SIGTERM, and, if a run was SIGKILLed, by the next run (those whose pid is gone).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if !defined(RDT_LAUNCHER) || !defined(RDT_TEST_PROG)
#error "RDT_LAUNCHER and RDT_TEST_PROG must be defined by the build"
#endif

#define MAX_ARGS   48
#define JOB_SECS   60   /* a job that runs longer is a failure (and is killed) */
#define CHECK_SECS 5    /* how long asynchronous cleanup may take */
#define VEC_BYTES  8000 /* rdt_allreduce_prog's vector: 1000 int64 */
#define NS_PREFIX  "rdtln"
#define NETNS_DIR  "/run/netns"

enum { NS_SW, NS_A, NS_B, NS_C, NS_COUNT };
static const char *const ns_suffix[NS_COUNT] = {"sw", "a", "b", "c"};
static const char *const ns_addr[NS_COUNT] = {NULL, "198.51.100.11", "198.51.100.12",
                                              "198.51.100.13"};

static char ns_name[NS_COUNT][64];
static char ip_path[256];
static char tmpdir[256] = "";
static char agent[300];
static int marker_seq;

typedef struct buf {
    char *p;
    size_t len, cap;
} buf_t;

typedef struct run {
    buf_t out, err;
    int status;
    char marker[96];
} run_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------------------------- */
/* ip, namespaces                                                                               */
/* ------------------------------------------------------------------------------------------- */

/* Run `ip ARGS...` (NULL-terminated), output to @p log if not NULL (else /dev/null); the exit
 * status, or -1. Async-signal-safe when @p log is NULL (used by the signal handler). */
static int run_ip(const char *log, const char *const *args)
{
    char *argv[24];
    pid_t pid;
    int n = 0, st;

    argv[n++] = ip_path;
    while (*args && n < 23)
        argv[n++] = (char *)*args++;
    argv[n] = NULL;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = log ? open(log, O_WRONLY | O_CREAT | O_APPEND, 0644) : open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ip with printf-built arguments separated by blanks (names here have none). */
static int ipf(const char *log, const char *fmt, ...)
{
    char line[512], *args[24], *save = NULL, *w;
    va_list ap;
    int n = 0;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    for (w = strtok_r(line, " ", &save); w && n < 23; w = strtok_r(NULL, " ", &save))
        args[n++] = w;
    args[n] = NULL;
    return run_ip(log, (const char *const *)args);
}

static void print_file(const char *path)
{
    char text[4096];
    FILE *f = fopen(path, "r");
    size_t n;

    if (!f)
        return;
    n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    fprintf(stderr, "%s", text);
}

/* Kill every process in namespace @p name (there should be none) and delete it. */
static int ns_delete(const char *name)
{
    char path[300], cmd[400];
    FILE *p;
    int pid, killed = 0;

    snprintf(path, sizeof(path), NETNS_DIR "/%s", name);
    if (access(path, F_OK))
        return 0;
    snprintf(cmd, sizeof(cmd), "'%s' netns pids '%s' 2>/dev/null", ip_path, name);
    if ((p = popen(cmd, "r"))) {
        while (fscanf(p, "%d", &pid) == 1)
            if (pid > 1 && kill(pid, SIGKILL) == 0)
                killed++;
        pclose(p);
    }
    if (killed)
        fprintf(stderr, "killed %d process%s left in namespace %s\n", killed,
                killed == 1 ? "" : "es", name);
    return ipf(NULL, "netns del %s", name) == 0 && access(path, F_OK) ? 0 : -1;
}

/* Namespaces of earlier runs of this test that were SIGKILLed (their pid is gone). */
static void delete_stale_namespaces(void)
{
    DIR *d = opendir(NETNS_DIR);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d))) {
        char *end;
        long pid;
        if (strncmp(e->d_name, NS_PREFIX, strlen(NS_PREFIX)) != 0)
            continue;
        pid = strtol(e->d_name + strlen(NS_PREFIX), &end, 10);
        if (end == e->d_name + strlen(NS_PREFIX) || *end != '-' || pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        fprintf(stderr, "deleting namespace %s of an earlier run (pid %ld is gone)\n", e->d_name,
                pid);
        ns_delete(e->d_name);
    }
    closedir(d);
}

static void on_fatal_signal(int sig)
{
    int i;
    for (i = 0; i < NS_COUNT; i++) {
        const char *args[] = {"netns", "del", ns_name[i], NULL};
        if (ns_name[i][0])
            run_ip(NULL, args);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static int delete_namespaces(void)
{
    int i, rc = 0;
    for (i = 0; i < NS_COUNT; i++) {
        if (ns_name[i][0] && ns_delete(ns_name[i])) {
            fprintf(stderr, "cannot delete network namespace %s\n", ns_name[i]);
            rc = -1;
        }
    }
    return rc;
}

/* The topology of the header comment. 0, or -1 with ip's messages printed. */
static int create_namespaces(const char *log)
{
    int i, rc = 0;

    for (i = 0; i < NS_COUNT; i++)
        snprintf(ns_name[i], sizeof(ns_name[i]), NS_PREFIX "%d-%s", (int)getpid(), ns_suffix[i]);
    for (i = 0; i < NS_COUNT && rc == 0; i++)
        rc |= ipf(log, "netns add %s", ns_name[i]);
    rc = rc ? rc : ipf(log, "-n %s link add br0 type bridge", ns_name[NS_SW]);
    rc = rc ? rc : ipf(log, "-n %s link set br0 up", ns_name[NS_SW]);
    for (i = NS_A; i < NS_COUNT && rc == 0; i++) {
        const char *h = ns_name[i], *sw = ns_name[NS_SW], *sfx = ns_suffix[i];
        rc |= ipf(log, "link add name eth0 netns %s type veth peer name p-%s netns %s", h, sfx, sw);
        rc = rc ? rc : ipf(log, "-n %s link set p-%s master br0", sw, sfx);
        rc = rc ? rc : ipf(log, "-n %s link set p-%s up", sw, sfx);
        rc = rc ? rc : ipf(log, "-n %s link set lo up", h);
        rc = rc ? rc : ipf(log, "-n %s addr add %s/24 dev eth0", h, ns_addr[i]);
        rc = rc ? rc : ipf(log, "-n %s link set eth0 up", h);
    }
    if (rc) {
        fprintf(stderr, "setting up the network namespaces failed; ip said:\n");
        print_file(log);
    }
    return rc ? -1 : 0;
}

/* The number in /sys/class/net/p-X/statistics/WHAT of the bridge namespace. */
static long long port_counter(int ns, const char *what)
{
    char cmd[512];
    long long v = -1;
    FILE *p;

    snprintf(cmd, sizeof(cmd), "'%s' netns exec '%s' cat /sys/class/net/p-%s/statistics/%s",
             ip_path, ns_name[NS_SW], ns_suffix[ns], what);
    p = popen(cmd, "r");
    assert_non_null(p);
    if (fscanf(p, "%lld", &v) != 1)
        v = -1;
    pclose(p);
    assert_true(v >= 0);
    return v;
}

typedef struct counters {
    long long rx[NS_COUNT], tx[NS_COUNT];
} counters_t;

static void read_counters(counters_t *c)
{
    int i;
    for (i = NS_A; i < NS_COUNT; i++) {
        c->rx[i] = port_counter(i, "rx_bytes");
        c->tx[i] = port_counter(i, "tx_bytes");
    }
}

/* Bytes into and out of each namespace @p ns[] (0-terminated) grew by at least the vector. */
static void expect_traffic(const counters_t *before, const int *ns)
{
    counters_t after;
    read_counters(&after);
    for (; *ns; ns++) {
        long long in = after.tx[*ns] - before->tx[*ns], out = after.rx[*ns] - before->rx[*ns];
        if (in < VEC_BYTES || out < VEC_BYTES)
            fprintf(stderr,
                    "namespace %s: %lld bytes in and %lld out over its veth, want at "
                    "least %d each way\n",
                    ns_name[*ns], in, out, VEC_BYTES);
        assert_true(in >= VEC_BYTES);
        assert_true(out >= VEC_BYTES);
    }
}

/* ------------------------------------------------------------------------------------------- */
/* Processes                                                                                    */
/* ------------------------------------------------------------------------------------------- */

static ssize_t read_proc(const char *pid, const char *what, char *buf, size_t len)
{
    char path[300];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%s/%s", pid, what);
    if ((fd = open(path, O_RDONLY)) < 0)
        return -1;
    n = read(fd, buf, len - 1);
    close(fd);
    if (n >= 0)
        buf[n] = '\0';
    return n;
}

/* Calls @p fn for each process whose command line holds @p marker; returns their number. */
static int for_marked(const char *marker, void (*fn)(const char *pid, const char *argv0, void *),
                      void *arg)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d))) {
        char cmd[8192], flat[8192];
        ssize_t len, i;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        if ((len = read_proc(e->d_name, "cmdline", cmd, sizeof(cmd))) <= 0)
            continue;
        for (i = 0; i < len; i++)
            flat[i] = cmd[i] ? cmd[i] : ' ';
        flat[len] = '\0';
        if (!strstr(flat, marker))
            continue;
        n++;
        if (fn)
            fn(e->d_name, cmd, arg);
    }
    closedir(d);
    return n;
}

static void print_left(const char *pid, const char *argv0, void *arg)
{
    (void)arg;
    fprintf(stderr, "left behind: pid %s: %s\n", pid, argv0);
}

static void assert_no_leftovers(const char *marker, int wait_ms)
{
    int64_t until = now_ms() + wait_ms;
    int n;

    while ((n = for_marked(marker, NULL, NULL)) > 0 && now_ms() < until)
        usleep(20000);
    if (n > 0)
        n = for_marked(marker, print_left, NULL);
    assert_int_equal(n, 0);
}

/* Where each rank process runs: the inode of its network namespace, by RDT_RANK. */
typedef struct rank_ns {
    int np;
    ino_t ino[16];
    int seen[16];
} rank_ns_t;

static void note_rank_ns(const char *pid, const char *argv0, void *arg)
{
    rank_ns_t *rn = arg;
    char env[65536], link[300], path[64];
    const char *p;
    ssize_t n, len;
    unsigned long long ino;
    int rank = -1;

    if (strcmp(argv0, RDT_TEST_PROG) != 0)
        return; /* the agent, its shells, setsid: not a rank */
    len = read_proc(pid, "environ", env, sizeof(env));
    for (p = env; len > 0 && p < env + len; p += strlen(p) + 1)
        if (strncmp(p, "RDT_RANK=", 9) == 0)
            rank = atoi(p + 9);
    snprintf(path, sizeof(path), "/proc/%s/ns/net", pid);
    n = readlink(path, link, sizeof(link) - 1);
    assert_true(n > 0);
    link[n] = '\0';
    assert_int_equal(sscanf(link, "net:[%llu]", &ino), 1);
    if (rank < 0 || rank >= rn->np) {
        fprintf(stderr, "pid %s: RDT_RANK is %d, not a rank of %d\n", pid, rank, rn->np);
        fail();
    }
    rn->ino[rank] = (ino_t)ino;
    rn->seen[rank]++;
}

/* Every rank process r runs in namespace want[r]. */
static void expect_rank_namespaces(const char *marker, int np, const int *want)
{
    rank_ns_t rn;
    int r;

    memset(&rn, 0, sizeof(rn));
    rn.np = np;
    for_marked(marker, note_rank_ns, &rn);
    for (r = 0; r < np; r++) {
        char path[300];
        struct stat st;
        snprintf(path, sizeof(path), NETNS_DIR "/%s", ns_name[want[r]]);
        assert_int_equal(stat(path, &st), 0);
        if (rn.seen[r] != 1 || rn.ino[r] != st.st_ino)
            fprintf(stderr,
                    "rank %d: %d process(es), network namespace inode %llu; want 1 in "
                    "%s (inode %llu)\n",
                    r, rn.seen[r], (unsigned long long)rn.ino[r], ns_name[want[r]],
                    (unsigned long long)st.st_ino);
        assert_int_equal(rn.seen[r], 1);
        assert_true(rn.ino[r] == st.st_ino);
    }
}

/* ------------------------------------------------------------------------------------------- */
/* Running the launcher in namespace a                                                          */
/* ------------------------------------------------------------------------------------------- */

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

typedef void (*ready_fn)(run_t *r, void *arg);

/*
 * Run the launcher in namespace a with @p args ("@M": the job's marker). When its stdout holds
 * @p ready_count lines with "ready", call @p on_ready (if any) and send SIGINT.
 */
static void run_launcher(run_t *r, const char *const *args, int ready_count, ready_fn on_ready,
                         void *arg)
{
    char *argv[MAX_ARGS], nspath[300];
    int outp[2], errp[2], n = 0, sent = 0, open_fds = 2, nsfd;
    pid_t pid;
    int64_t deadline = now_ms() + JOB_SECS * 1000;

    memset(r, 0, sizeof(*r));
    snprintf(r->marker, sizeof(r->marker), "rdt-netns-test-%d-%d", (int)getpid(), ++marker_seq);
    argv[n++] = RDT_LAUNCHER;
    for (; *args && n < MAX_ARGS - 1; args++)
        argv[n++] = strcmp(*args, "@M") == 0 ? r->marker : (char *)*args;
    argv[n] = NULL;
    snprintf(nspath, sizeof(nspath), "%s/agent.log", tmpdir);
    unlink(nspath); /* what an earlier, failed job left */
    snprintf(nspath, sizeof(nspath), NETNS_DIR "/%s", ns_name[NS_A]);
    nsfd = open(nspath, O_RDONLY | O_CLOEXEC);
    assert_true(nsfd >= 0);
    assert_int_equal(pipe(outp), 0);
    assert_int_equal(pipe(errp), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* if this test dies, the launcher stops the job */
        if (setns(nsfd, CLONE_NEWNET)) {
            dprintf(errp[1], "setns %s: %s\n", nspath, strerror(errno));
            _exit(126);
        }
        /* A rank that cannot reach the rendezvous says so after 15 s (RDT_* knobs reach the
           remote ranks too); the job's --timeout is the bound after that. */
        setenv("RDT_CONNECT_TIMEOUT", "15", 1);
        dup2(outp[1], 1);
        dup2(errp[1], 2);
        close(outp[0]);
        close(outp[1]);
        close(errp[0]);
        close(errp[1]);
        execv(argv[0], argv);
        _exit(126);
    }
    close(nsfd);
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
                close(p[i].fd);
                if (i == 0)
                    outp[0] = -1;
                else
                    errp[0] = -1;
                open_fds--;
                continue;
            }
            buf_add(i == 0 ? &r->out : &r->err, chunk, (size_t)got);
        }
        if (ready_count && !sent && count_substr(r->out.p, "ready") >= ready_count) {
            if (on_ready)
                on_ready(r, arg);
            kill(pid, SIGINT);
            sent = 1;
        }
    }
    while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
        ;
    if (ready_count && !sent)
        fprintf(stderr, "the ranks never all said ready\nstdout:\n%s\nstderr:\n%s\n",
                r->out.p ? r->out.p : "", r->err.p ? r->err.p : "");
    if (ready_count)
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

/* A line of @p text that starts with @p prefix and contains @p what. */
static int line_with(const char *text, const char *prefix, const char *what)
{
    const char *p = text;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[2048];
        if (len >= sizeof(line))
            len = sizeof(line) - 1;
        memcpy(line, p, len);
        line[len] = '\0';
        if (strncmp(line, prefix, strlen(prefix)) == 0 && strstr(line, what))
            return 1;
        p = nl ? nl + 1 : NULL;
    }
    return 0;
}

/*
 * Rank r runs on host label[r] whose address is addr[r]: its allreduce line, its local rank,
 * the address its engine listens on (RDT_LOG=info), and RDT_ROOT = @p root + ":PORT", the same
 * port for all.
 */
static void expect_ranks(const run_t *r, int np, const char *const *label, const char *const *addr,
                         const int *local_rank, const char *root)
{
    char pre[64], want[160], first_root[160] = "";
    int i;

    for (i = 0; i < np; i++) {
        const char *p;
        snprintf(pre, sizeof(pre), "[%s:%d] ", label[i], i);
        snprintf(want, sizeof(want), "%srank %d of %d: allreduce ok (local rank %d)\n", pre, i, np,
                 local_rank[i]);
        expect_in(r->out.p, want);
        snprintf(want, sizeof(want), "listening on %s", addr[i]);
        if (!line_with(r->err.p, pre, want))
            fprintf(stderr, "no line '%s... %s' in:\n%s\n", pre, want, r->err.p);
        assert_true(line_with(r->err.p, pre, want));
        snprintf(want, sizeof(want), "%srank %d RDT_ROOT=%s:", pre, i, root);
        p = strstr(r->out.p, want);
        if (!p)
            fprintf(stderr, "missing '%s' in:\n%s\n", want, r->out.p);
        assert_non_null(p);
        p = strstr(p, "RDT_ROOT=") + strlen("RDT_ROOT=");
        snprintf(want, sizeof(want), "%.*s", (int)strcspn(p, "\n"), p);
        if (i == 0)
            snprintf(first_root, sizeof(first_root), "%s", want);
        assert_string_equal(want, first_root);
    }
    assert_int_equal(count_substr(r->out.p, "allreduce ok"), np);
}

static void write_hosts(const char *name, const char *text, char *path, size_t len)
{
    FILE *f;
    snprintf(path, len, "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The agent was asked for host .12 @p nb times and .13 @p nc times (in any order: the agents
 * run concurrently), and for nothing else; then forget it. */
static void expect_agent_log(int nb, int nc)
{
    char path[300], text[1024] = "";
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "%s/agent.log", tmpdir);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(path);
    if (count_substr(text, "198.51.100.12\n") != nb ||
        count_substr(text, "198.51.100.13\n") != nc || count_substr(text, "\n") != nb + nc)
        fprintf(stderr, "agent log:\n%s\nwant .12 %d times and .13 %d times\n", text, nb, nc);
    assert_int_equal(count_substr(text, "198.51.100.12\n"), nb);
    assert_int_equal(count_substr(text, "198.51.100.13\n"), nc);
    assert_int_equal(count_substr(text, "\n"), nb + nc);
}

/* ------------------------------------------------------------------------------------------- */

typedef struct placement {
    int np;
    const int *ns;
} placement_t;

static void check_namespaces_while_ready(run_t *r, void *arg)
{
    const placement_t *pl = arg;
    expect_rank_namespaces(r->marker, pl->np, pl->ns);
}

/* 2 namespaces x 2 ranks, rank 0 remote: the rendezvous is on 198.51.100.12. The ranks wait
 * after the allreduce, so the test looks at their namespaces, then sends Ctrl-C. */
static void test_two_namespaces_of_two_ranks_each(void **state)
{
    static const char *const label[] = {"198.51.100.12", "198.51.100.12", "198.51.100.13",
                                        "198.51.100.13"};
    static const int local_rank[] = {0, 1, 0, 1};
    static const int where[] = {NS_B, NS_B, NS_C, NS_C};
    static const int traffic_ns[] = {NS_B, NS_C, 0};
    placement_t pl = {4, where};
    char hosts[300], want[128];
    const char *args[] = {"-H",          hosts,
                          "--rsh",       agent,
                          "-x",          "RDT_LOG=info",
                          "-x",          "RDT_TRANSPORT=tcp",
                          "--timeout",   "40",
                          RDT_TEST_PROG, "--env",
                          "RDT_ROOT",    "--wait-signal",
                          "@M",          NULL};
    counters_t before;
    run_t r;
    int i;

    write_hosts("hosts-bc.txt", "# two namespaces\n198.51.100.12 slots=2\n198.51.100.13 slots=2\n",
                hosts, sizeof(hosts));
    read_counters(&before);
    run_launcher(&r, args, 4, check_namespaces_while_ready, &pl);
    expect_exit(&r, 130);
    expect_ranks(&r, 4, label, label, local_rank, "198.51.100.12");
    for (i = 0; i < 4; i++) {
        snprintf(want, sizeof(want), "[%s:%d] rank %d got SIGINT\n", label[i], i, i);
        expect_in(r.out.p, want);
    }
    expect_traffic(&before, traffic_ns);
    expect_agent_log(2, 2);
    assert_no_leftovers(r.marker, CHECK_SECS * 1000);
    run_free(&r);
}

/* Rank 0 on the launcher's host, 2 ranks in each of two namespaces: without --root, the
 * rendezvous must be the launcher's address toward them (198.51.100.11), not its name or
 * 127.0.0.1, which the namespaces cannot reach. */
static void test_launcher_host_and_two_namespaces_default_root(void **state)
{
    static const char *const label[] = {"localhost", "198.51.100.12", "198.51.100.12",
                                        "198.51.100.13", "198.51.100.13"};
    static const char *const addr[] = {"198.51.100.11", "198.51.100.12", "198.51.100.12",
                                       "198.51.100.13", "198.51.100.13"};
    static const int local_rank[] = {0, 0, 1, 0, 1};
    static const int where[] = {NS_A, NS_B, NS_B, NS_C, NS_C};
    static const int traffic_ns[] = {NS_A, NS_B, NS_C, 0};
    placement_t pl = {5, where};
    char hosts[300];
    const char *args[] = {"-H",          hosts,
                          "--rsh",       agent,
                          "-x",          "RDT_LOG=info",
                          "-x",          "RDT_TRANSPORT=tcp",
                          "--timeout",   "40",
                          RDT_TEST_PROG, "--env",
                          "RDT_ROOT",    "--wait-signal",
                          "@M",          NULL};
    const char *plain[] = {"-H",        hosts,          "--rsh",       agent,
                           "-x",        "RDT_LOG=info", "-x",          "RDT_TRANSPORT=tcp",
                           "--timeout", "40",           RDT_TEST_PROG, "--env",
                           "RDT_ROOT",  "@M",           NULL};
    counters_t before;
    run_t r;

    write_hosts("hosts-abc.txt",
                "localhost slots=1\n198.51.100.12 slots=2\n198.51.100.13 slots=2\n", hosts,
                sizeof(hosts));
    read_counters(&before);
    run_launcher(&r, args, 5, check_namespaces_while_ready, &pl);
    expect_exit(&r, 130);
    expect_ranks(&r, 5, label, addr, local_rank, "198.51.100.11");
    expect_traffic(&before, traffic_ns);
    expect_agent_log(2, 2);
    assert_no_leftovers(r.marker, CHECK_SECS * 1000);
    run_free(&r);

    /* and to its normal end: every rank exits 0, so does the launcher */
    run_launcher(&r, plain, 0, NULL, NULL);
    expect_exit(&r, 0);
    expect_ranks(&r, 5, label, addr, local_rank, "198.51.100.11");
    assert_null(strstr(r.err.p, "rdmatrain: ")); /* the launcher had nothing to report */
    expect_agent_log(2, 2);
    assert_no_leftovers(r.marker, CHECK_SECS * 1000);
    run_free(&r);
}

/* --root HOST:PORT is passed as it is. */
static void test_root_option_sets_the_rendezvous(void **state)
{
    static const char *const label[] = {"localhost", "198.51.100.12", "198.51.100.13"};
    static const char *const addr[] = {"198.51.100.11", "198.51.100.12", "198.51.100.13"};
    static const int local_rank[] = {0, 0, 0};
    char hosts[300];
    const char *args[] = {"-H",          hosts,
                          "--rsh",       agent,
                          "--root",      "198.51.100.11:29500",
                          "-x",          "RDT_LOG=info",
                          "-x",          "RDT_TRANSPORT=tcp",
                          "--timeout",   "40",
                          RDT_TEST_PROG, "--env",
                          "RDT_ROOT",    "@M",
                          NULL};
    run_t r;
    int i;

    write_hosts("hosts-abc1.txt", "localhost\n198.51.100.12\n198.51.100.13\n", hosts,
                sizeof(hosts));
    run_launcher(&r, args, 0, NULL, NULL);
    expect_exit(&r, 0);
    expect_ranks(&r, 3, label, addr, local_rank, "198.51.100.11");
    for (i = 0; i < 3; i++) {
        char want[96];
        snprintf(want, sizeof(want), "[%s:%d] rank %d RDT_ROOT=198.51.100.11:29500\n", label[i], i,
                 i);
        expect_in(r.out.p, want);
    }
    expect_agent_log(1, 1);
    assert_no_leftovers(r.marker, CHECK_SECS * 1000);
    run_free(&r);
}

/* A rank failing in a namespace stops the others in both namespaces; the launcher names it. */
static void test_a_rank_failing_in_a_namespace_stops_the_job(void **state)
{
    char hosts[300];
    const char *args[] = {"-H",          hosts,    "--rsh", agent, "--timeout", "40",
                          RDT_TEST_PROG, "--exit", "3",     "7",   "@M",        NULL};
    static const char said[] =
        "rdmatrain: rank 3 on 198.51.100.13 exited with status 7; stopping the other ranks\n";
    run_t r;

    write_hosts("hosts-bc2.txt", "198.51.100.12:2\n198.51.100.13:2\n", hosts, sizeof(hosts));
    run_launcher(&r, args, 0, NULL, NULL);
    expect_exit(&r, 7);
    /* the launcher's one line, first; the agents' setsid may add "child did not exit
       normally" lines for the ranks it stopped */
    if (strncmp(r.err.p, said, strlen(said)) != 0)
        fprintf(stderr, "stderr:\n%s\n", r.err.p);
    assert_int_equal(strncmp(r.err.p, said, strlen(said)), 0);
    assert_int_equal(count_substr(r.err.p, "rdmatrain: "), 1);
    assert_int_equal(count_substr(r.out.p, "allreduce ok"), 4);
    assert_no_leftovers(r.marker, CHECK_SECS * 1000);
    run_free(&r);
}

/* A --root that rank 0's host does not have: a clear error from rank 0, the job stopped. */
static void test_a_rendezvous_rank_0_cannot_bind_is_an_error_not_a_hang(void **state)
{
    char hosts[300];
    const char *args[] = {"-H",        hosts, "--rsh",       agent, "--root", "198.51.100.11",
                          "--timeout", "40",  RDT_TEST_PROG, "@M",  NULL};
    run_t r;

    write_hosts("hosts-bc3.txt", "198.51.100.12:2\n198.51.100.13:1\n", hosts, sizeof(hosts));
    run_launcher(&r, args, 0, NULL, NULL);
    assert_true(WIFEXITED(r.status));
    if (WEXITSTATUS(r.status) != 1 || !line_with(r.err.p, "[198.51.100.12:0] ", "198.51.100.11"))
        fprintf(stderr, "status %d\nstdout:\n%s\nstderr:\n%s\n", r.status, r.out.p, r.err.p);
    assert_int_equal(WEXITSTATUS(r.status), 1);
    assert_true(line_with(r.err.p, "[198.51.100.12:0] ", "198.51.100.11"));
    expect_in(r.err.p, "rdmatrain: rank 0 on 198.51.100.12 exited with status 1");
    assert_int_equal(count_substr(r.out.p, "allreduce ok"), 0);
    assert_no_leftovers(r.marker, CHECK_SECS * 1000);
    run_free(&r);
}

/* ------------------------------------------------------------------------------------------- */

static int setup(void **state)
{
    char log[300];
    FILE *f;

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rdt-test-netns-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(log, sizeof(log), "%s/ip.log", tmpdir);
    signal(SIGINT, on_fatal_signal);
    signal(SIGTERM, on_fatal_signal);
    signal(SIGHUP, on_fatal_signal);
    if (create_namespaces(log))
        return -1;
    snprintf(agent, sizeof(agent), "%s/netns-agent", tmpdir);
    f = fopen(agent, "w");
    if (!f)
        return -1;
    fprintf(f,
            "#!/bin/sh\n"
            "# rsh agent of test_launcher_netns: AGENT HOST COMMAND runs COMMAND in HOST's\n"
            "# network namespace, through a shell in a session of its own, as sshd would.\n"
            "# RDT_HOSTNAME=HOST: namespaces share this machine's hostname, and the engine\n"
            "# would rightly use shared memory between them; as separate machines they talk\n"
            "# over their veths.\n"
            "host=$1; shift\n"
            "echo \"$host\" >> '%s/agent.log'\n"
            "case $host in\n"
            "  %s) ns=%s ;;\n  %s) ns=%s ;;\n  %s) ns=%s ;;\n"
            "  *) echo \"netns-agent: no namespace for host '$host'\" >&2; exit 255 ;;\n"
            "esac\n"
            "exec '%s' netns exec \"$ns\" env RDT_HOSTNAME=\"$host\" setsid -w /bin/sh -c \"$*\"\n",
            tmpdir, ns_addr[NS_A], ns_name[NS_A], ns_addr[NS_B], ns_name[NS_B], ns_addr[NS_C],
            ns_name[NS_C], ip_path);
    fclose(f);
    return chmod(agent, 0755);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) ? -1 : 0;
}

static int teardown(void **state)
{
    int rc = delete_namespaces();

    if (tmpdir[0] && nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS))
        rc = -1;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    return rc;
}

/* Can this process make network namespaces? NULL, or why not. */
static const char *netns_unavailable(char *why, size_t len)
{
    static const char *const dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
    char probe[64], log[] = "/tmp/rdt-netns-probe-XXXXXX";
    size_t i;
    int fd;

    if (geteuid() != 0)
        return "not running as root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)";
    for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(ip_path, sizeof(ip_path), "%s/ip", dirs[i]);
        if (access(ip_path, X_OK) == 0)
            break;
    }
    if (i == sizeof(dirs) / sizeof(dirs[0]))
        return "no 'ip' program (Debian package iproute2)";
    if (access("/usr/bin/setsid", X_OK) && access("/bin/setsid", X_OK))
        return "no 'setsid' program (Debian package util-linux)";
    delete_stale_namespaces();
    snprintf(probe, sizeof(probe), NS_PREFIX "%d-probe", (int)getpid());
    if ((fd = mkstemp(log)) < 0)
        return "cannot create a temporary file";
    close(fd);
    if (ipf(log, "netns add %s", probe) != 0 ||
        ipf(log, "-n %s link add name v0 type veth peer name v1", probe) != 0 ||
        ipf(log, "-n %s link add br0 type bridge", probe) != 0) {
        FILE *f = fopen(log, "r");
        size_t n = 0;
        int off = snprintf(why, len, "'ip netns add' or a veth or bridge in it failed: ");
        if (f && off > 0 && (size_t)off < len) {
            n = fread(why + off, 1, len - (size_t)off - 1, f);
            why[(size_t)off + n] = '\0';
        }
        if (f)
            fclose(f);
        ipf(NULL, "netns del %s", probe);
        unlink(log);
        return why;
    }
    ipf(NULL, "netns del %s", probe);
    unlink(log);
    return NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_namespaces_of_two_ranks_each),
        cmocka_unit_test(test_launcher_host_and_two_namespaces_default_root),
        cmocka_unit_test(test_root_option_sets_the_rendezvous),
        cmocka_unit_test(test_a_rank_failing_in_a_namespace_stops_the_job),
        cmocka_unit_test(test_a_rendezvous_rank_0_cannot_bind_is_an_error_not_a_hang),
    };
    char why[1024];
    const char *no = netns_unavailable(why, sizeof(why));
    const char *req = getenv("RDT_TEST_REQUIRE_NETNS");

    if (no) {
        if (req && strcmp(req, "1") == 0) {
            fprintf(stderr,
                    "test_launcher_netns: FAILED: RDT_TEST_REQUIRE_NETNS=1 but network "
                    "namespaces cannot be used here: %s\n",
                    no);
            return 1;
        }
        printf("test_launcher_netns: skipped: %s (set RDT_TEST_REQUIRE_NETNS=1 to make this a "
               "failure)\n",
               no);
        return 77;
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
