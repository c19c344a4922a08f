/* rdt-test-labels: fault */
/*
 * test_fault.c - a dead or silent peer never leaves the others hanging, and they name it.
 *
 * Real processes (tools/spawn.h) run a loop of allreduce, broadcast and alltoall (int32, sizes
 * from 1000 elements to 1 Mi elements, so that a fault often lands mid-transfer), each result
 * checked at both ends, over RDT_TRANSPORT=tcp, shm and auto on 3 and 4 ranks. The parent injects
 * one fault once every rank finished a call, after a random delay (the seed is printed; set
 * RDT_TEST_SEED to replay it):
 *
 * - SIGKILL of one rank, with RDT_TIMEOUT=60: every other rank must fail with an error that
 *   names the killed rank ("rank 2 (host ...)") and is not a timeout, within RDT_TIMEOUT + 2 s
 *   of the kill. Kills aim at allreduce, broadcast and alltoall in turn (the parent strikes
 *   while the victim is inside that kind of call), 6 per transport and rank count
 *   (RDT_TEST_FAULT_KILLS=N for more), and half as many on 3 ranks over shm with buffers from
 *   rdt_mem_alloc (direct collectives) and with every allreduce staged; the count per kind and
 *   the longest kill-to-error time per transport are printed ("faults: ...").
 * - SIGSTOP of one rank, with RDT_TIMEOUT=3 (the timeout path): the others fail with a timeout
 *   within 3 + 2 s, each saying that the stopped rank did not answer on the status channel
 *   (engine/ctl.h): on 3 ranks where every other rank waits for it directly (4 MiB
 *   binomial-tree broadcasts from it), and on 4 ranks with the whole mix, where most ranks wait
 *   for a rank that waits for it.
 * - shutdown(SHUT_RDWR) of one rank's TCP connection, taken from the running process with
 *   pidfd_getfd: both ends fail naming each other, the other ranks name one of the two.
 * - Through the launcher (BUILD/trainer/rdmatrain, found next to this program): one rank of
 *   this very program (run as `test_fault --fault-prog`) kills itself mid-loop; the launcher
 *   must exit non-zero naming it, and every other rank's output must name it. The same with
 *   SIGSTOP: the launcher says that the rank was stopped, and names it in its failure line.
 *
 * `test_fault --verbs` (what test_fault_verbs runs, label softroce) is the SIGKILL case over
 * RDT_TRANSPORT=verbs on 3 ranks, 4 kills, with hang guards sized for SoftRoCE under emulation.
 *
 * Shared state between the parent and the ranks lives in a MAP_SHARED page made before fork.
 */
#include <rdmatrain.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
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
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "spawn.h"
#include "testutil.h"

#define F_MAX_RANKS      4
#define F_MSG            1024
#define F_MAX_ELEMS      ((size_t)1 << 20)
#define F_KILL_TIMEOUT   "60"
#define F_STOP_TIMEOUT_S 3
#define F_SLACK_S        2.0
#define F_MAX_DELAY_MS   250

/* Hang guards (longer under --verbs: SoftRoCE in an emulated VM is slow) */
static int f_loop_s = 25;          /* a rank that sees no error within this fails the test */
static int f_spawn_timeout_s = 40; /* spawn SIGKILLs what is left after this */
static int f_start_timeout_s = 20; /* every rank must finish its first call within this */

enum { F_ALLREDUCE, F_BROADCAST, F_ALLTOALL, F_NKINDS };
static const char *const f_kind_name[F_NKINDS] = {"allreduce", "broadcast", "alltoall"};

enum { F_FAULT_KILL, F_FAULT_STOP, F_FAULT_SHUT };

/* What a rank reports to the parent. */
enum { F_RUNNING, F_FAILED_AS_EXPECTED, F_NO_ERROR, F_WRONG_RESULT, F_SETUP_FAILED };

typedef struct f_rank {
    atomic_int iters; /* calls completed */
    atomic_int kind;  /* the call in progress */
    atomic_int state; /* F_* above */
    int status;       /* the failing call's rdt_status_t */
    int64_t err_ns;   /* CLOCK_MONOTONIC when the failing call returned */
    char msg[F_MSG];
} f_rank_t;

typedef struct f_shared {
    f_rank_t r[F_MAX_RANKS];
} f_shared_t;

typedef struct f_job {
    const char *transport;
    const char *timeout;
    f_shared_t *sh;
    int nranks;
    int fault;
    int victim;
    int delay_ms;
    int bcast_only;  /* every call a broadcast (binomial tree) from the victim */
    int target_kind; /* F_FAULT_KILL: strike while the victim is in this call (-1: any) */
    /* filled by the hook */
    int hook_ok;
    int64_t fault_ns;
    int kind_at_fault;
    int shut_peer; /* F_FAULT_SHUT: the rank at the other end of the socket */
    char hook_error[256];
} f_job_t;

static uint64_t f_seed_state;

/* Per transport: longest fault-to-last-error time; per kind: kills survived. */
static double f_longest[4]; /* tcp, shm, auto, verbs */
static int f_kills[F_NKINDS];
static int f_next_kind; /* the kind of call the next kill aims at, round robin */
static int f_mapped;    /* the ranks' buffers come from rdt_mem_alloc: direct collectives */
static int f_staged;    /* every allreduce staged (RDT_SHM_STAGED=1; malloc'd buffers) */

static int64_t f_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void f_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static f_shared_t *f_shared_new(void)
{
    void *p =
        mmap(NULL, sizeof(f_shared_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    memset(p, 0, sizeof(f_shared_t));
    return p;
}

/* ------------------------------------------------------------------------------------------ */
/* The ranks                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static const size_t f_sizes[] = {1000, 65536 + 3, (size_t)1 << 18, F_MAX_ELEMS};
#define F_NSIZES (sizeof(f_sizes) / sizeof(f_sizes[0]))

/* One call of the loop; its first and last elements are checked against values that change
 * with every iteration, so a stale or partial result shows. Returns the call's status; a wrong
 * result sets *bad_p. */
static rdt_status_t f_call(rdt_comm_t *comm, int kind, size_t n, int it, int root, int32_t *s,
                           int32_t *r, int *bad_p)
{
    int rank = rdt_comm_rank(comm), p = rdt_comm_size(comm);
    int32_t tri = (int32_t)(p * (p + 1) / 2);
    rdt_status_t st;

    if (kind == F_ALLREDUCE) {
        s[0] = (rank + 1) * (it + 1);
        s[n - 1] = rank + 1 + it;
        st = rdt_allreduce(comm, s, r, n, RDT_INT32, RDT_SUM);
        if (st == RDT_SUCCESS && (r[0] != tri * (it + 1) || r[n - 1] != tri + p * it))
            *bad_p = 1;
        return st;
    }
    if (kind == F_BROADCAST) {
        root = root >= 0 ? root : it % p;
        s[0] = (rank + 1) * 1000 + it;
        s[n - 1] = -(rank + 1) * 1000 - it;
        st = rdt_broadcast(comm, s, r, n, RDT_INT32, root);
        if (st == RDT_SUCCESS && (r[0] != (root + 1) * 1000 + it || r[n - 1] != -r[0]))
            *bad_p = 1;
        return st;
    }
    {
        size_t c = n / (size_t)p, j;
        for (j = 0; j < (size_t)p; j++) {
            s[j * c] = rank * 100 + (int)j + it;
            s[j * c + c - 1] = -(rank * 100 + (int)j + it);
        }
        st = rdt_alltoall(comm, s, r, c, RDT_INT32);
        for (j = 0; st == RDT_SUCCESS && j < (size_t)p; j++)
            if (r[j * c] != (int)j * 100 + rank + it || r[j * c + c - 1] != -r[j * c])
                *bad_p = 1;
        return st;
    }
}

static void f_record(f_rank_t *me, int state, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void f_record(f_rank_t *me, int state, int status, const char *fmt, ...)
{
    va_list ap;
    me->err_ns = f_now_ns();
    me->status = status;
    va_start(ap, fmt);
    vsnprintf(me->msg, sizeof(me->msg), fmt, ap);
    va_end(ap);
    atomic_store(&me->state, state);
}

/* Loop until a call fails (the expected end: recorded for the parent) or f_loop_s passes. */
static int f_body(int rank, int nranks, void *arg)
{
    f_job_t *job = arg;
    f_rank_t *me = &job->sh->r[rank];
    rdt_comm_t *comm;
    int32_t *s, *r;
    int64_t deadline = f_now_ns() + (int64_t)f_loop_s * 1000000000;
    int it, bad = 0;
    rdt_status_t st;

    (void)nranks;
    setenv("RDT_TRANSPORT", job->transport, 1);
    setenv("RDT_TIMEOUT", job->timeout, 1);
    setenv("RDT_LOG", "error", 1);
    if (job->bcast_only)
        setenv("RDT_ALGO", "broadcast:tree", 1);
    if (f_mapped) /* every size direct (RDT_SHM_DIRECT=1): peers read and write these */
        setenv("RDT_SHM_DIRECT", "1", 1);
    if (f_staged) { /* every allreduce staged: chunks through the share areas */
        setenv("RDT_SHM_DIRECT", "1", 1);
        setenv("RDT_SHM_STAGED", "1", 1);
    }
    s = rdt_test_alloc(F_MAX_ELEMS * sizeof(*s), f_mapped);
    r = rdt_test_alloc(F_MAX_ELEMS * sizeof(*r), f_mapped);
    if (!s || !r) {
        f_record(me, F_SETUP_FAILED, 0, "no memory");
        return 1;
    }
    st = rdt_comm_create_from_env(&comm);
    if (st != RDT_SUCCESS) {
        f_record(me, F_SETUP_FAILED, (int)st, "create: %s", rdt_comm_last_error(NULL));
        return 1;
    }
    for (it = 0; f_now_ns() < deadline; it++) {
        int kind = job->bcast_only ? F_BROADCAST : it % F_NKINDS;
        size_t n = job->bcast_only ? F_MAX_ELEMS : f_sizes[(size_t)(it / F_NKINDS) % F_NSIZES];
        atomic_store(&me->kind, kind);
        st = f_call(comm, kind, n, it, job->bcast_only ? job->victim : -1, s, r, &bad);
        if (st != RDT_SUCCESS) {
            f_record(me, F_FAILED_AS_EXPECTED, (int)st, "%s", rdt_comm_last_error(comm));
            break;
        }
        if (bad) {
            f_record(me, F_WRONG_RESULT, 0, "%s #%d of %zu elements: wrong result",
                     f_kind_name[kind], it, n);
            break;
        }
        atomic_fetch_add(&me->iters, 1);
    }
    if (atomic_load(&me->state) == F_RUNNING)
        f_record(me, F_NO_ERROR, 0, "no error within %d s (%d calls)", f_loop_s, it);
    rdt_comm_destroy(comm);
    rdt_test_free(s, f_mapped);
    rdt_test_free(r, f_mapped);
    return atomic_load(&me->state) == F_FAILED_AS_EXPECTED ? 0 : 1;
}

/* ------------------------------------------------------------------------------------------ */
/* The parent: fault injection                                                                  */
/* ------------------------------------------------------------------------------------------ */

static int f_pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int f_pidfd_getfd(int pidfd, int fd)
{
    return (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
}

static int f_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return -1;
}

/* The rendezvous port of a rank (RDT_ROOT in its environment), to leave that socket alone. */
static int f_root_port(pid_t pid)
{
    char path[64], buf[8192];
    FILE *f;
    size_t n, i;
    int port = -1;

    snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (i = 0; i < n; i += strlen(buf + i) + 1) {
        if (strncmp(buf + i, "RDT_ROOT=", 9) == 0) {
            const char *c = strrchr(buf + i, ':');
            port = c ? atoi(c + 1) : -1;
        }
    }
    return port;
}

/* Call @p fn on every connected TCP socket of @p pid (a duplicate taken with pidfd_getfd) until
 * it returns nonzero; returns that value. */
typedef int (*f_sock_fn_t)(int fd, int local_port, int peer_port, void *arg);

static int f_for_each_socket(pid_t pid, f_sock_fn_t fn, void *arg)
{
    char path[64];
    struct dirent *de;
    DIR *d;
    int pidfd, rc = 0;

    pidfd = f_pidfd_open(pid);
    if (pidfd < 0)
        return 0;
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    d = opendir(path);
    while (d && rc == 0 && (de = readdir(d)) != NULL) {
        struct sockaddr_storage a, b;
        socklen_t la = sizeof(a), lb = sizeof(b);
        int fd, acc = 0, type = 0;
        socklen_t l = sizeof(acc);
        if (de->d_name[0] == '.')
            continue;
        fd = f_pidfd_getfd(pidfd, atoi(de->d_name));
        if (fd < 0)
            continue;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) == 0 && type == SOCK_STREAM &&
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l) == 0 && !acc &&
            getsockname(fd, (struct sockaddr *)&a, &la) == 0 &&
            getpeername(fd, (struct sockaddr *)&b, &lb) == 0 &&
            (a.ss_family == AF_INET || a.ss_family == AF_INET6))
            rc = fn(fd, f_port(&a), f_port(&b), arg);
        close(fd);
    }
    if (d)
        closedir(d);
    close(pidfd);
    return rc;
}

typedef struct f_find {
    int port;      /* looking for a socket whose local port is this */
    int skip_port; /* the rendezvous port */
    int peer_port; /* found: the victim socket's peer port */
    int fd;        /* found: a duplicate of the victim's socket */
} f_find_t;

static int f_match_local(int fd, int local_port, int peer_port, void *arg)
{
    f_find_t *f = arg;
    (void)fd;
    (void)peer_port;
    return local_port == f->port;
}

/* The victim's first data connection (not the rendezvous): keep a duplicate of it. */
static int f_pick_one(int fd, int local_port, int peer_port, void *arg)
{
    f_find_t *f = arg;
    if (local_port == f->skip_port || peer_port == f->skip_port)
        return 0;
    f->fd = dup(fd);
    f->peer_port = peer_port;
    f->port = local_port;
    return f->fd >= 0;
}

static void f_kill_all(int nranks, const int *pids)
{
    int i;
    for (i = 0; i < nranks; i++)
        kill(pids[i], SIGKILL);
}

static int f_survivors_done(const f_job_t *job)
{
    int i;
    for (i = 0; i < job->nranks; i++)
        if (i != job->victim && atomic_load(&job->sh->r[i].state) == F_RUNNING)
            return 0;
    return 1;
}

/* Once every rank finished a call: wait the random delay, note the call in progress at the
 * victim, inject the fault. On any trouble kill everything: the test then fails on hook_ok. */
static void f_hook(int nranks, const int *pids, void *arg)
{
    f_job_t *job = arg;
    int64_t until = f_now_ns() + (int64_t)f_start_timeout_s * 1000000000;
    int i, ready = 0;

    while (!ready && f_now_ns() < until) {
        ready = 1;
        for (i = 0; i < nranks; i++) {
            if (atomic_load(&job->sh->r[i].state) != F_RUNNING) {
                snprintf(job->hook_error, sizeof(job->hook_error),
                         "rank %d stopped before the fault: %.200s", i, job->sh->r[i].msg);
                f_kill_all(nranks, pids);
                return;
            }
            ready &= atomic_load(&job->sh->r[i].iters) > 0;
        }
        if (!ready)
            f_sleep_ms(2);
    }
    if (!ready) {
        snprintf(job->hook_error, sizeof(job->hook_error), "a rank did not finish a call in %d s",
                 f_start_timeout_s);
        f_kill_all(nranks, pids);
        return;
    }
    f_sleep_ms(job->delay_ms);
    /* then the next time the victim is inside the wanted kind of call (it sets `kind` just
     * before the call), so that every kind gets its share of kills */
    until = f_now_ns() + (int64_t)f_start_timeout_s * 1000000000;
    while (job->target_kind >= 0 &&
           atomic_load(&job->sh->r[job->victim].kind) != job->target_kind && f_now_ns() < until)
        sched_yield();
    job->kind_at_fault = atomic_load(&job->sh->r[job->victim].kind);
    job->fault_ns = f_now_ns();
    if (job->fault == F_FAULT_KILL) {
        kill(pids[job->victim], SIGKILL);
    } else if (job->fault == F_FAULT_STOP) {
        kill(pids[job->victim], SIGSTOP);
        until = job->fault_ns + (int64_t)(F_STOP_TIMEOUT_S + 10) * 1000000000;
        while (!f_survivors_done(job) && f_now_ns() < until)
            f_sleep_ms(5);
        kill(pids[job->victim], SIGKILL);
        kill(pids[job->victim], SIGCONT);
    } else {
        f_find_t f = {0, f_root_port(pids[job->victim]), -1, -1};
        job->shut_peer = -1;
        /* its other end first: once shut down, that end is closed at once */
        if (!f_for_each_socket(pids[job->victim], f_pick_one, &f)) {
            snprintf(job->hook_error, sizeof(job->hook_error),
                     "rank %d has no tcp connection to shut down", job->victim);
            f_kill_all(nranks, pids);
            return;
        }
        for (i = 0; i < nranks && job->shut_peer < 0; i++) {
            f_find_t g = {f.peer_port, -1, -1, -1};
            if (i != job->victim && f_for_each_socket(pids[i], f_match_local, &g))
                job->shut_peer = i;
        }
        if (job->shut_peer < 0) {
            snprintf(job->hook_error, sizeof(job->hook_error),
                     "no rank owns the other end (port %d) of rank %d's connection", f.peer_port,
                     job->victim);
            close(f.fd);
            f_kill_all(nranks, pids);
            return;
        }
        job->fault_ns = f_now_ns();
        if (shutdown(f.fd, SHUT_RDWR) != 0) {
            snprintf(job->hook_error, sizeof(job->hook_error), "shutdown: %s", strerror(errno));
            close(f.fd);
            f_kill_all(nranks, pids);
            return;
        }
        close(f.fd);
    }
    job->hook_ok = 1;
}

/* "rank 2 (host x)": how every sentence of the engine and the transports names a rank. */
static int f_names(const char *msg, int rank)
{
    char want[32];
    snprintf(want, sizeof(want), "rank %d (host ", rank);
    return strstr(msg, want) != NULL;
}

/* "rank 2 (host x) did not answer": the status channel found it at the end of the chain of
 * waiting ranks (engine/ctl.h). */
static int f_blames(const char *msg, int rank)
{
    char want[32];
    const char *p = msg;

    snprintf(want, sizeof(want), "rank %d (host ", rank);
    while ((p = strstr(p, want)) != NULL) {
        const char *close = strchr(p, ')');
        if (close && strncmp(close + 1, " did not answer", 15) == 0)
            return 1;
        p += strlen(want);
    }
    return 0;
}

static int f_transport_index(const char *t)
{
    return strcmp(t, "tcp") == 0 ? 0 : strcmp(t, "shm") == 0 ? 1 : strcmp(t, "auto") == 0 ? 2 : 3;
}

/* One job with one fault; checks every survivor; returns the fault-to-last-error time (s). */
static double f_run(const char *transport, int nranks, int fault, const char *timeout,
                    int bcast_only)
{
    f_job_t job;
    int st[F_MAX_RANKS], i;
    double limit = atof(timeout) + F_SLACK_S, worst = 0;

    memset(&job, 0, sizeof(job));
    job.transport = transport;
    job.timeout = timeout;
    job.sh = f_shared_new();
    job.nranks = nranks;
    job.fault = fault;
    job.bcast_only = bcast_only;
    job.target_kind = fault == F_FAULT_KILL ? f_next_kind++ % F_NKINDS : -1;
    job.victim = 1 + (int)(rdt_test_rand(&f_seed_state) % (uint64_t)(nranks - 1));
    job.delay_ms = (int)(rdt_test_rand(&f_seed_state) % F_MAX_DELAY_MS);
    rdt_spawn_local_hook(nranks, f_body, &job, f_spawn_timeout_s, st, f_hook, &job);
    if (!job.hook_ok) {
        for (i = 0; i < nranks; i++)
            print_message("  rank %d: exit %d: %s\n", i, st[i], job.sh->r[i].msg);
        fail_msg("%s, %d ranks: %s", transport, nranks, job.hook_error);
    }
    for (i = 0; i < nranks; i++) {
        const f_rank_t *r = &job.sh->r[i];
        double t = (double)(r->err_ns - job.fault_ns) / 1e9;
        if (i == job.victim && fault != F_FAULT_SHUT)
            continue;
        if (r->state != F_FAILED_AS_EXPECTED || st[i] != 0)
            fail_msg("%s, %d ranks, fault at rank %d during %s after %d ms: rank %d (exit %d) "
                     "did not fail as expected: %s",
                     transport, nranks, job.victim, f_kind_name[job.kind_at_fault], job.delay_ms, i,
                     st[i], r->msg);
        if (t > limit)
            fail_msg("%s, %d ranks: rank %d failed %.2f s after the fault at rank %d (limit "
                     "%.1f s): %s",
                     transport, nranks, i, t, job.victim, limit, r->msg);
        if (fault == F_FAULT_KILL && r->status == RDT_ERR_TIMEOUT)
            fail_msg("%s, %d ranks: rank %d waited for the timeout instead of seeing rank %d "
                     "die: %s",
                     transport, nranks, i, job.victim, r->msg);
        /* a rank may hear first that another timed out (and whom it blamed) */
        if (fault == F_FAULT_STOP && r->status != RDT_ERR_TIMEOUT &&
            r->status != RDT_ERR_PEER_FAILED)
            fail_msg("%s, %d ranks: rank %d neither timed out nor heard of another's timeout: %s",
                     transport, nranks, i, r->msg);
        if (fault == F_FAULT_SHUT) {
            int other = i == job.victim ? job.shut_peer : job.victim;
            if (!f_names(r->msg, other) &&
                (i == job.victim || i == job.shut_peer || !f_names(r->msg, job.shut_peer)))
                fail_msg("%s, %d ranks, rank %d's connection to rank %d shut down: rank %d's "
                         "error names neither: %s",
                         transport, nranks, job.victim, job.shut_peer, i, r->msg);
        } else if (fault == F_FAULT_STOP && !f_blames(r->msg, job.victim)) {
            fail_msg("%s, %d ranks, rank %d stopped during %s after %d ms: rank %d's error does "
                     "not say that rank %d did not answer: %s",
                     transport, nranks, job.victim, f_kind_name[job.kind_at_fault], job.delay_ms,
                     i, job.victim, r->msg);
        } else if (!f_names(r->msg, job.victim)) {
            fail_msg("%s, %d ranks, rank %d %s during %s after %d ms: rank %d's error does not "
                     "name it: %s",
                     transport, nranks, job.victim, fault == F_FAULT_KILL ? "killed" : "stopped",
                     f_kind_name[job.kind_at_fault], job.delay_ms, i, r->msg);
        }
        if (t > worst)
            worst = t;
    }
    if (getenv("RDT_TEST_VERBOSE"))
        for (i = 0; i < nranks; i++)
            print_message("  %s/%d rank %d: %s\n", transport, nranks, i, job.sh->r[i].msg);
    if (fault == F_FAULT_KILL)
        f_kills[job.kind_at_fault]++;
    munmap(job.sh, sizeof(*job.sh));
    return worst;
}

static void f_kill_series(const char *transport, int nranks, int nkills)
{
    int k, ti = f_transport_index(transport);
    for (k = 0; k < nkills; k++) {
        double t = f_run(transport, nranks, F_FAULT_KILL, F_KILL_TIMEOUT, 0);
        if (t > f_longest[ti])
            f_longest[ti] = t;
    }
}

/* kills per transport and rank count (RDT_TEST_FAULT_KILLS overrides, to stress) */
static int f_nkills = 6;
#define F_KILLS f_nkills

static void test_killed_rank_is_named_by_every_survivor_over_tcp_on_3_ranks(void **state)
{
    (void)state;
    f_kill_series("tcp", 3, F_KILLS);
}

static void test_killed_rank_is_named_by_every_survivor_over_tcp_on_4_ranks(void **state)
{
    (void)state;
    f_kill_series("tcp", 4, F_KILLS);
}

static void test_killed_rank_is_named_by_every_survivor_over_shm_on_3_ranks(void **state)
{
    (void)state;
    f_kill_series("shm", 3, F_KILLS);
}

static void test_killed_rank_is_named_by_every_survivor_over_shm_on_4_ranks(void **state)
{
    (void)state;
    f_kill_series("shm", 4, F_KILLS);
}

static void test_killed_rank_is_named_by_every_survivor_over_auto_on_3_and_4_ranks(void **state)
{
    (void)state;
    f_kill_series("auto", 3, F_KILLS / 2);
    f_kill_series("auto", 4, F_KILLS / 2);
}

static void test_killed_rank_is_named_by_every_survivor_of_direct_calls_on_3_ranks(void **state)
{
    (void)state;
    f_mapped = 1;
    f_kill_series("shm", 3, F_KILLS / 2);
    f_mapped = 0;
}

static void test_killed_rank_is_named_by_every_survivor_of_staged_allreduces_on_3_ranks(
    void **state)
{
    (void)state;
    f_staged = 1;
    f_kill_series("shm", 3, F_KILLS / 2);
    f_staged = 0;
}

static void test_kills_summary(void **state)
{
    (void)state;
    print_message("faults: %d kills during allreduce, %d during broadcast, %d during alltoall, "
                  "every survivor named the killed rank; longest kill-to-error %.3f s (tcp "
                  "%.3f s, shm %.3f s, auto %.3f s)\n",
                  f_kills[F_ALLREDUCE], f_kills[F_BROADCAST], f_kills[F_ALLTOALL],
                  f_longest[0] > f_longest[1]
                      ? (f_longest[0] > f_longest[2] ? f_longest[0] : f_longest[2])
                      : (f_longest[1] > f_longest[2] ? f_longest[1] : f_longest[2]),
                  f_longest[0], f_longest[1], f_longest[2]);
    assert_int_equal(f_kills[F_ALLREDUCE] + f_kills[F_BROADCAST] + f_kills[F_ALLTOALL],
                     4 * F_KILLS + 4 * (F_KILLS / 2));
}

/* SIGSTOP once over tcp and once over shm on @p nranks ranks (@p bcast_only: broadcasts from
 * the stopped rank only), with RDT_TIMEOUT=F_STOP_TIMEOUT_S. */
static void f_stop_tcp_and_shm(int nranks, int bcast_only)
{
    static const char *const transports[] = {"tcp", "shm"};
    char to[16];
    int i;

    snprintf(to, sizeof(to), "%d", F_STOP_TIMEOUT_S);
    for (i = 0; i < 2; i++) {
        double t = f_run(transports[i], nranks, F_FAULT_STOP, to, bcast_only);
        print_message("faults: SIGSTOP over %s, %d ranks: last survivor failed %.3f s after\n",
                      transports[i], nranks, t);
    }
}

/* Every other rank waits for the stopped rank directly here: broadcasts of 4 MiB from it, as
 * binomial trees on 3 ranks (both others are its children). */
static void test_stopped_rank_times_the_others_out_naming_it_over_tcp_and_shm(void **state)
{
    (void)state;
    f_stop_tcp_and_shm(3, 1);
}

/* On 4 ranks with the whole mix (rings, trees, pairwise exchanges), a rank often waits for one
 * that waits for the stopped one: its timeout alone would name its neighbour. The status
 * channel follows the chain, so every rank still names the stopped one as the rank that did
 * not answer. */
static void test_stopped_rank_is_found_through_the_chain_of_waiting_ranks_on_4_ranks(void **state)
{
    (void)state;
    f_stop_tcp_and_shm(4, 0);
}

static void
test_connection_shut_down_under_the_engine_fails_both_ends_naming_each_other(void **state)
{
    double t;
    (void)state;
    t = f_run("tcp", 3, F_FAULT_SHUT, F_KILL_TIMEOUT, 0);
    print_message("faults: tcp connection shut down, 3 ranks: last error %.3f s after\n", t);
    t = f_run("tcp", 4, F_FAULT_SHUT, F_KILL_TIMEOUT, 0);
    print_message("faults: tcp connection shut down, 4 ranks: last error %.3f s after\n", t);
}

/* ------------------------------------------------------------------------------------------ */
/* Through the launcher                                                                         */
/* ------------------------------------------------------------------------------------------ */

/* `test_fault --fault-prog VICTIM ITERS`, started by rdmatrain: allreduce 256 Ki int32 in a
 * loop; rank VICTIM kills itself with SIGKILL after ITERS calls; every other rank prints its
 * error and exits 3. SIGTERM (the launcher stopping the job) is noted, not obeyed, so that the
 * ranks get to print: the launcher's SIGKILL follows 3 s later. */
static volatile sig_atomic_t f_prog_term;

static void f_prog_on_term(int sig)
{
    (void)sig;
    f_prog_term = 1;
}

static int f_prog_main(int victim, int iters, int stop)
{
    const size_t n = (size_t)1 << 18;
    int32_t *v = calloc(n, sizeof(*v));
    rdt_comm_t *comm;
    int rank, it;

    signal(SIGTERM, f_prog_on_term);
    if (!v || rdt_comm_create_from_env(&comm) != RDT_SUCCESS) {
        fprintf(stderr, "create: %s\n", rdt_comm_last_error(NULL));
        return 1;
    }
    rank = rdt_comm_rank(comm);
    for (it = 0; it < 100000; it++) {
        if (rank == victim && it == iters)
            raise(stop ? SIGSTOP : SIGKILL);
        if (rdt_allreduce(comm, v, v, n, RDT_INT32, RDT_MAX) != RDT_SUCCESS) {
            int waited;
            printf("fault-prog rank %d failed: %s\n", rank, rdt_comm_last_error(comm));
            fflush(stdout);
            /* Stay until the launcher stops the job: a survivor exiting at once may be reaped
             * in the same pass as the killed rank, and the launcher names the first exit it
             * looks at (this test is about the name, see the report of this change). */
            for (waited = 0; !stop && !f_prog_term && waited < 2000; waited++)
                f_sleep_ms(10);
            rdt_comm_destroy(comm);
            free(v);
            return 3;
        }
    }
    printf("fault-prog rank %d: no error\n", rank);
    rdt_comm_destroy(comm);
    free(v);
    return 0;
}

static char f_self[4096];

/* Run `rdmatrain -np 3 -- test_fault --fault-prog VICTIM ITERS [stop]` with @p env; its output
 * (stdout and stderr) into @p out; returns the launcher's wait status. */
static int f_launch_prog(const char *env, int victim, int iters, int stop, char *out, size_t cap)
{
    char launcher[4096 + 32], cmd[16384], line[4096], *slash;
    size_t used = 0;
    FILE *p;

    snprintf(launcher, sizeof(launcher), "%s", f_self);
    slash = strrchr(launcher, '/');
    assert_non_null(slash);
    *slash = '\0';
    slash = strrchr(launcher, '/');
    assert_non_null(slash);
    snprintf(slash, sizeof(launcher) - (size_t)(slash - launcher), "/trainer/rdmatrain");
    if (access(launcher, X_OK) != 0)
        fail_msg("the launcher %s is missing: build the whole tree", launcher);
    snprintf(cmd, sizeof(cmd), "%s %s -np 3 -- %s --fault-prog %d %d%s 2>&1", env, launcher,
             f_self, victim, iters, stop ? " stop" : "");
    p = popen(cmd, "r");
    assert_non_null(p);
    out[0] = '\0';
    while (fgets(line, sizeof(line), p)) {
        size_t l = strlen(line);
        if (used + l < cap) {
            memcpy(out + used, line, l + 1);
            used += l;
        }
    }
    return pclose(p);
}

static void test_launcher_names_the_killed_rank_and_so_do_the_survivors(void **state)
{
    char line[4096], out[65536];
    int victim, iters, status, i;
    (void)state;

    victim = 1 + (int)(rdt_test_rand(&f_seed_state) % 2);
    iters = 2 + (int)(rdt_test_rand(&f_seed_state) % 20);
    status = f_launch_prog("RDT_TRANSPORT=tcp RDT_TIMEOUT=60 RDT_LOG=error", victim, iters, 0,
                           out, sizeof(out));
    print_message("launcher output (rank %d killed after %d calls):\n%s", victim, iters, out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 128 + SIGKILL);
    snprintf(line, sizeof(line), "rank %d on ", victim);
    assert_non_null(strstr(out, line));
    assert_non_null(strstr(out, "killed by signal 9"));
    for (i = 0; i < 3; i++) {
        char want[64], *l;
        if (i == victim)
            continue;
        snprintf(want, sizeof(want), "fault-prog rank %d failed: ", i);
        l = strstr(out, want);
        if (!l)
            fail_msg("rank %d printed no error", i);
        *strchrnul(l, '\n') = '\0';
        if (!f_names(l, victim))
            fail_msg("rank %d's error does not name rank %d: %s", i, victim, l);
        l[strlen(l)] = '\n';
    }
}

/* A rank stopped with SIGSTOP under the launcher: the launcher says so when it happens and
 * again in its failure line, and the others time out naming it as the rank that did not answer
 * (RDT_TIMEOUT=2; the launcher's exit status is the first survivor's, 3). */
static void test_launcher_names_a_stopped_rank_and_so_do_the_others(void **state)
{
    char want[128], out[65536], *l;
    int victim, iters, status, i;
    (void)state;

    victim = 1 + (int)(rdt_test_rand(&f_seed_state) % 2);
    iters = 2 + (int)(rdt_test_rand(&f_seed_state) % 20);
    status = f_launch_prog("RDT_TRANSPORT=tcp RDT_TIMEOUT=2 RDT_LOG=error", victim, iters, 1, out,
                           sizeof(out));
    print_message("launcher output (rank %d stopped after %d calls):\n%s", victim, iters, out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3);
    snprintf(want, sizeof(want), "rank %d on ", victim);
    l = strstr(out, want);
    assert_non_null(l);
    assert_non_null(strstr(l, " was stopped by SIGSTOP: the other ranks will wait for it"));
    snprintf(want, sizeof(want), "; rank %d on ", victim);
    l = strstr(out, want);
    if (!l || !strstr(l, " is stopped (SIGSTOP): the others waited for it"))
        fail_msg("the launcher's failure line does not name the stopped rank %d", victim);
    for (i = 0; i < 3; i++) {
        if (i == victim)
            continue;
        snprintf(want, sizeof(want), "fault-prog rank %d failed: ", i);
        l = strstr(out, want);
        if (!l)
            fail_msg("rank %d printed no error", i);
        *strchrnul(l, '\n') = '\0';
        if (!f_blames(l, victim))
            fail_msg("rank %d's error does not say that rank %d did not answer: %s", i, victim,
                     l);
        l[strlen(l)] = '\n';
    }
}

/* --verbs (test_fault_verbs runs this once it found a device): kills over RDT_TRANSPORT=verbs,
 * 3 ranks, a handful only (SoftRoCE under emulation is slow). */
#define F_VERBS_KILLS 4

static void test_killed_rank_is_named_by_every_survivor_over_verbs_on_3_ranks(void **state)
{
    int total;
    (void)state;
    f_kill_series("verbs", 3, F_VERBS_KILLS);
    total = f_kills[F_ALLREDUCE] + f_kills[F_BROADCAST] + f_kills[F_ALLTOALL];
    print_message("faults: %d kills during allreduce, %d during broadcast, %d during alltoall "
                  "over verbs, every survivor named the killed rank; longest kill-to-error "
                  "%.3f s\n",
                  f_kills[F_ALLREDUCE], f_kills[F_BROADCAST], f_kills[F_ALLTOALL], f_longest[3]);
    assert_int_equal(total, F_VERBS_KILLS);
}

static int f_verbs_main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_killed_rank_is_named_by_every_survivor_over_verbs_on_3_ranks),
    };
    f_loop_s = 200;
    f_start_timeout_s = 200;
    f_spawn_timeout_s = 400;
    rdt_test_require_rdma("test_fault --verbs", NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

int main(int argc, char **argv)
{
    const char *seed = getenv("RDT_TEST_SEED");
    ssize_t n;

    if (argc >= 4 && strcmp(argv[1], "--fault-prog") == 0)
        return f_prog_main(atoi(argv[2]), atoi(argv[3]), argc >= 5 && !strcmp(argv[4], "stop"));
    n = readlink("/proc/self/exe", f_self, sizeof(f_self) - 1);
    if (n <= 0)
        return 1;
    f_self[n] = '\0';
    f_seed_state = seed ? strtoull(seed, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    printf("test_fault: seed %llu (RDT_TEST_SEED replays it)\n", (unsigned long long)f_seed_state);
    fflush(stdout);
    if (getenv("RDT_TEST_FAULT_KILLS") && atoi(getenv("RDT_TEST_FAULT_KILLS")) >= 2)
        f_nkills = atoi(getenv("RDT_TEST_FAULT_KILLS"));
    if (argc >= 2 && strcmp(argv[1], "--verbs") == 0)
        return f_verbs_main();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_killed_rank_is_named_by_every_survivor_over_tcp_on_3_ranks),
        cmocka_unit_test(test_killed_rank_is_named_by_every_survivor_over_tcp_on_4_ranks),
        cmocka_unit_test(test_killed_rank_is_named_by_every_survivor_over_shm_on_3_ranks),
        cmocka_unit_test(test_killed_rank_is_named_by_every_survivor_over_shm_on_4_ranks),
        cmocka_unit_test(test_killed_rank_is_named_by_every_survivor_over_auto_on_3_and_4_ranks),
        cmocka_unit_test(test_killed_rank_is_named_by_every_survivor_of_direct_calls_on_3_ranks),
        cmocka_unit_test(
            test_killed_rank_is_named_by_every_survivor_of_staged_allreduces_on_3_ranks),
        cmocka_unit_test(test_kills_summary),
        cmocka_unit_test(test_stopped_rank_times_the_others_out_naming_it_over_tcp_and_shm),
        cmocka_unit_test(test_stopped_rank_is_found_through_the_chain_of_waiting_ranks_on_4_ranks),
        cmocka_unit_test(
            test_connection_shut_down_under_the_engine_fails_both_ends_naming_each_other),
        cmocka_unit_test(test_launcher_names_the_killed_rank_and_so_do_the_survivors),
        cmocka_unit_test(test_launcher_names_a_stopped_rank_and_so_do_the_others),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
