/* rdt-test-labels: fault */
/*
 * test_leaks.c - after an error a rank is clean: the failed communicator can be destroyed, a new
 * one created in the same process (the trainer's restart from a checkpoint), and nothing is left
 * behind: no file descriptor, shared-memory mapping or segment, thread, or (verbs) QP. Memory is
 * LeakSanitizer's job (test_fault, test_timeouts; each measured rank here runs it too under ASan).
 *
 * Design. Real processes (tools/spawn.h), 3 ranks. Ranks 0 and 1 are the measured ones: they live
 * through the whole job and fail over and over. A rank that dies cannot come back in the same
 * process, so rank 2's process never joins a communicator itself: for each communicator it
 * forks a fresh child that plays rank 2 (same RDT_RANK, RDT_ROOT, RDT_TOKEN, RDT_SIZE), and that
 * child is the one that exits mid-job when it is the victim. Every communicator is a new
 * rendezvous at the same RDT_ROOT (rank 0 listens there again once it destroyed the last one;
 * the others retry until it does).
 *
 * Ranks 0 and 1 first record, before any communicator exists: their open descriptors
 * (/proc/self/fd), threads (/proc/self/task), mappings of shared files (/proc/self/maps lines
 * naming /dev/shm/ or a memfd) and /dev/shm entries that could be this job's. The shm transport
 * (transport/shm.c) keeps its rings in an unnamed memfd ("rdt-shm") and never names anything in
 * /dev/shm, so the entries checked are those named rdt* or carrying the job's token: none is
 * expected, and one appearing means a change started naming segments without removing them.
 * Other jobs on the machine may create /dev/shm entries meanwhile; those are not this job's.
 *
 * Then, for RDT_TRANSPORT=tcp, shm, auto, and auto with rank 2 under another host name
 * (RDT_HOSTNAME: the mux then has a shm peer and a tcp peer, and starts its helper thread), one
 * after the other in the same processes, 5 rounds of:
 * create, an allreduce that succeeds (result checked), then one failure, destroy on every rank
 * that is still alive, and the next create (the restart):
 *   - peer exit: rank 2's child starts a 4 MiB iallreduce and _exit()s in the middle of it; ranks
 *     0 and 1 fail with RDT_ERR_PEER_FAILED;
 *   - timeout: rank 2 does not call the allreduce (its child waits, connected, until both others
 *     gave up); ranks 0 and 1 set rdt_comm_set_timeout(0.3) for it and fail with RDT_ERR_TIMEOUT
 *     (or RDT_ERR_PEER_FAILED when the other one timed out first and closed);
 *   - abort: rank 1 calls rdt_comm_abort() then the allreduce (RDT_ERR_ABORTED); rank 0 and 2 fail
 *     with RDT_ERR_PEER_FAILED or RDT_ERR_ABORTED;
 *   - mismatch: RDT_CHECK=1 on every rank, rank 2 calls a broadcast where the others call an
 *     allreduce: RDT_ERR_MISMATCH on every rank; the next allreduce then succeeds (the check
 *     keeps the communicator usable) before it is destroyed.
 * After the rounds, one more restart with a clean allreduce. Then each of ranks 0 and 1 compares
 * with its baseline: descriptors, threads, shared mappings and /dev/shm entries must be back
 * exactly. A difference fails the test naming it: "fd 9 -> anon_inode:[eventfd]", the maps line,
 * the thread count, the entry. So that a count that never moves cannot pass for a clean one, the
 * figures while a communicator is connected are taken too and must show the communicator's
 * descriptors (and, over shm and auto, its mappings; with two host names, the mux's thread). The
 * figures are printed ("leaks: ...").
 *
 * `test_leaks --verbs` (ctest test_leaks_verbs, label softroce) runs the same over
 * RDT_TRANSPORT=verbs, 2 rounds, after rdt_test_require_rdma() (exit 77 = skipped without an
 * RDMA device, a failure with RDT_TEST_REQUIRE_RDMA=1). It also counts the descriptors of
 * /dev/infiniband/uverbs* (the device context: open while a communicator is, closed after) and
 * the process's QPs as `rdma res show qp` lists them (the lines carrying "pid <ours>"): more than
 * 0 while connected, 0 after every destroy. Without the rdma tool (iproute2) the QPs are not
 * counted (said in the figures); the uverbs descriptors still prove the context was closed, and
 * QPs cannot outlive it. ctest test_leaks_verbs_rdmacm runs it under RDT_IB_CM=rdmacm, where the
 * device context is librdmacm's, open from its first use to the end of the process: the baseline
 * is taken after that first use (l_rdmacm_first_use), and the QP count and the descriptors (the
 * rdma_cm event channel among them) carry the proof.
 *
 * An operation issued after rdt_comm_abort sends nothing (this test found that it used to: the
 * engine started the new request before it looked at the abort flag), so the allreduce rank 1
 * issues right after its abort fails on every rank.
 *
 * Run time about 12 s on 2 cores (20 timeouts of 0.3 s, 84 communicators).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef RDT_HAVE_VERBS
#include <rdma/rdma_cma.h>
#endif

#include "rdmatrain.h"
#include "spawn.h"
#include "testutil.h"

#define L_NRANKS     3 /* ranks 0 and 1 measured; rank 2 a fresh child per communicator */
#define L_MEASURED   2
#define L_MAX_FDS    1024
#define L_MSG        8192
#define L_SMALL      65536     /* floats of the allreduce that succeeds */
#define L_BIG        (1 << 20) /* floats of the one rank 2's child leaves mid-way */
#define L_MAX_TRANSP 4

enum { L_PEER_EXIT, L_TIMEOUT, L_ABORT, L_MISMATCH, L_NFAULTS, L_CLEAN = L_NFAULTS };
static const char *const l_fault_name[L_NFAULTS] = {"peer exit", "timeout", "abort", "mismatch"};

/* What a run covers: the host transports, or verbs alone. */
typedef struct l_plan {
    const char *transports[L_MAX_TRANSP];
    int ntransports;
    int rounds;
    double fault_timeout_s;   /* rdt_comm_set_timeout before the timeout case */
    const char *hang_timeout; /* RDT_TIMEOUT and RDT_CONNECT_TIMEOUT: a hang guard */
    int spawn_timeout_s;
    int verbs; /* count uverbs descriptors and QPs too, and require them while connected */
} l_plan_t;

/* Counts of one moment. */
typedef struct l_counts {
    int fds, threads, maps, names, uverbs, qps; /* qps -1: not counted */
} l_counts_t;

typedef struct l_rank {
    int cycles; /* communicators created, failed (or not, the restarts) and destroyed */
    l_counts_t before, peak[L_MAX_TRANSP], after[L_MAX_TRANSP];
    int done;
    char msg[L_MSG];
} l_rank_t;

typedef struct l_shared {
    l_rank_t r[L_NRANKS];
    atomic_int tally[L_NFAULTS][RDT_STATUS_COUNT]; /* statuses ranks 0 and 1 saw, per fault */
    atomic_int gave_up;                            /* ranks 0 and 1 past their timed-out call */
} l_shared_t;

static const l_plan_t *l_plan;
static l_shared_t *l_sh;

static void l_fail(l_rank_t *me, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void l_fail(l_rank_t *me, const char *fmt, ...)
{
    va_list ap;
    size_t used = strlen(me->msg);
    if (used + 2 >= sizeof(me->msg))
        return;
    if (used)
        me->msg[used++] = '\n';
    va_start(ap, fmt);
    vsnprintf(me->msg + used, sizeof(me->msg) - used, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------------------------ */
/* Counting                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* The open descriptors, ascending, without the one listing them. */
static int l_list_fds(int *fds, int max)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    int n = 0, i, j;

    if (!d)
        return -1;
    while ((de = readdir(d)) != NULL) {
        int fd;
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        fd = atoi(de->d_name);
        if (fd != dirfd(d) && n < max)
            fds[n++] = fd;
    }
    closedir(d);
    for (i = 1; i < n; i++) /* insertion sort: a few dozen */
        for (j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
            int t = fds[j];
            fds[j] = fds[j - 1];
            fds[j - 1] = t;
        }
    return n;
}

static void l_fd_target(int fd, char *buf, size_t len)
{
    char path[64];
    ssize_t n;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    n = readlink(path, buf, len - 1);
    buf[n > 0 ? n : 0] = '\0';
    if (n <= 0)
        snprintf(buf, len, "?");
}

static int l_count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    int n = 0;
    if (!d)
        return -1;
    while ((de = readdir(d)) != NULL)
        n += isdigit((unsigned char)de->d_name[0]) != 0;
    closedir(d);
    return n;
}

/* Lines of /proc/self/maps mapping a file of /dev/shm or a memfd; appended to @p out if given. */
static int l_shm_maps(char *out, size_t len)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int n = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        if (!strstr(line, "/dev/shm/") && !strstr(line, "/memfd:"))
            continue;
        if (++n <= 6 && out && strlen(out) + strlen(line) + 4 < len)
            strcat(strcat(out, "    "), line);
        else if (n == 7 && out && strlen(out) + 9 < len)
            strcat(out, "    ...\n"); /* the first few say what it is */
    }
    fclose(f);
    return n;
}

/* Entries of /dev/shm that could be this job's: named rdt* or carrying its token. */
static int l_shm_names(char *out, size_t len)
{
    const char *token = getenv("RDT_TOKEN");
    DIR *d = opendir("/dev/shm");
    struct dirent *de;
    int n = 0;
    if (!d)
        return 0; /* no /dev/shm: nothing can be left there */
    while ((de = readdir(d)) != NULL) {
        if (strncasecmp(de->d_name, "rdt", 3) != 0 &&
            !(token && token[0] && strcasestr(de->d_name, token)))
            continue;
        n++;
        if (out && strlen(out) + strlen(de->d_name) + 16 < len)
            strcat(strcat(strcat(out, "    /dev/shm/"), de->d_name), "\n");
    }
    closedir(d);
    return n;
}

/* QPs of this process in `rdma res show qp` (iproute2), or -1 without the tool. The lines read
 * "link rxe0/1 lqpn 17 type RC state RTS ... comm test_leaks pid 1234" (kernel QPs have no pid).
 * Called with memory registered: glibc's system() and popen() start the shell with posix_spawn
 * (a vfork-like clone sharing the address space), so no copy-on-write fork touches pinned pages. */
static int l_count_qps(void)
{
    char line[1024];
    FILE *p;
    int n = 0;

    if (system("command -v rdma >/dev/null 2>&1") != 0)
        return -1;
    p = popen("rdma res show qp 2>/dev/null", "r");
    if (!p)
        return -1;
    while (fgets(line, sizeof(line), p)) {
        char *save = NULL, *tok = strtok_r(line, " \t\n", &save);
        while (tok) {
            if (strcmp(tok, "pid") == 0) {
                tok = strtok_r(NULL, " \t\n", &save);
                if (tok && atol(tok) == (long)getpid())
                    n++;
                break;
            }
            tok = strtok_r(NULL, " \t\n", &save);
        }
    }
    pclose(p);
    return n;
}

/* Descriptors and counts now; the descriptor numbers in @p fds (L_MAX_FDS) if given. */
static l_counts_t l_count(int *fds)
{
    int own[L_MAX_FDS], *v = fds ? fds : own, i;
    char target[256];
    l_counts_t c;

    memset(&c, 0, sizeof(c));
    c.qps = l_plan->verbs ? l_count_qps() : -1; /* first: popen's pipe is closed again after */
    c.fds = l_list_fds(v, L_MAX_FDS);
    for (i = 0; i < c.fds; i++) {
        l_fd_target(v[i], target, sizeof(target));
        c.uverbs += strncmp(target, "/dev/infiniband/uverbs", 22) == 0;
    }
    c.threads = l_count_threads();
    c.maps = l_shm_maps(NULL, 0);
    c.names = l_shm_names(NULL, 0);
    return c;
}

/* Compare the counts after @p transport's cycles with the baseline; say what differs. */
static void l_compare(l_rank_t *me, int rank, const char *transport, const int *base_fds,
                      const l_counts_t *base)
{
    int now_fds[L_MAX_FDS], i, j, left = 0;
    char where[160], list[L_MSG / 2], target[256];
    l_counts_t now = l_count(now_fds);

    snprintf(where, sizeof(where), "rank %d, after %d rounds of create/fail/destroy over %s", rank,
             l_plan->rounds, transport);
    list[0] = '\0';
    for (i = 0; i < now.fds; i++) { /* left open */
        for (j = 0; j < base->fds && base_fds[j] != now_fds[i]; j++) {
        }
        if (j < base->fds || ++left > 8)
            continue;
        l_fd_target(now_fds[i], target, sizeof(target));
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%sfd %d -> %s",
                 list[0] ? ", " : "", now_fds[i], target);
    }
    if (left)
        l_fail(me, "%s: %d file descriptors left open (%d before, %d now): %s%s", where, left,
               base->fds, now.fds, list, left > 8 ? ", ..." : "");
    list[0] = '\0';
    for (j = 0; j < base->fds; j++) { /* closed behind the owner's back */
        for (i = 0; i < now.fds && now_fds[i] != base_fds[j]; i++) {
        }
        if (i == now.fds)
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%d", list[0] ? ", " : "",
                     base_fds[j]);
    }
    if (list[0])
        l_fail(me, "%s: descriptors the library did not own were closed: %s", where, list);
    if (now.threads != base->threads)
        l_fail(me, "%s: %d threads, %d before any communicator", where, now.threads, base->threads);
    if (now.maps != base->maps) {
        list[0] = '\0';
        l_shm_maps(list, sizeof(list));
        l_fail(me, "%s: %d mappings of /dev/shm files or memfds, %d before; now:\n%s", where,
               now.maps, base->maps, list);
    }
    if (now.names != base->names) {
        list[0] = '\0';
        l_shm_names(list, sizeof(list));
        l_fail(me, "%s: %d /dev/shm entries of this job, %d before; now:\n%s", where, now.names,
               base->names, list);
    }
    if (now.uverbs != base->uverbs)
        l_fail(me, "%s: %d descriptors of /dev/infiniband/uverbs*, %d before", where, now.uverbs,
               base->uverbs);
    if (now.qps != base->qps)
        l_fail(me, "%s: %d QPs of this process in `rdma res show qp`, %d before", where, now.qps,
               base->qps);
    for (i = 0; i < l_plan->ntransports; i++)
        if (strcmp(l_plan->transports[i], transport) == 0)
            me->after[i] = now;
}

/* ------------------------------------------------------------------------------------------ */
/* The ranks                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* What a communicator is for: its transport, and the fault it ends with (L_CLEAN: none).
 * "auto2" is RDT_TRANSPORT=auto with rank 2 under another host name (RDT_HOSTNAME): the mux then
 * has a shm peer and a network peer, and starts its helper thread. */
static void l_env(const char *transport, int fault, int rank)
{
    int two_hosts = strcmp(transport, "auto2") == 0;
    setenv("RDT_TRANSPORT", two_hosts ? "auto" : transport, 1);
    if (two_hosts && rank == 2)
        setenv("RDT_HOSTNAME", "rdt-test-leaks-other-host", 1);
    else
        unsetenv("RDT_HOSTNAME");
    setenv("RDT_CHECK", fault == L_MISMATCH ? "1" : "0", 1);
    setenv("RDT_TIMEOUT", l_plan->hang_timeout, 1);
    setenv("RDT_CONNECT_TIMEOUT", l_plan->hang_timeout, 1);
    setenv("RDT_LOG", "error", 1);
}

static rdt_status_t l_sum(rdt_comm_t *comm, float *v, size_t n, int rank, int *bad_p)
{
    rdt_status_t st;
    size_t i;
    for (i = 0; i < n; i++)
        v[i] = (float)(rank + 1);
    st = rdt_allreduce(comm, v, v, n, RDT_FLOAT32, RDT_SUM);
    for (i = 0; st == RDT_SUCCESS && i < n; i += n / 7)
        if (v[i] != (float)(L_NRANKS * (L_NRANKS + 1) / 2))
            *bad_p = 1;
    return st;
}

static int l_in(rdt_status_t st, rdt_status_t a, rdt_status_t b)
{
    return st == a || st == b;
}

/* Rank 2 for one communicator, in a child of rank 2's process; its exit status says how it went.
 * @p timeouts_so_far: timeout cases before this one in the job (to know when both others gave
 * up). */
static int l_victim(const char *transport, int fault, int timeouts_so_far, float *v)
{
    l_rank_t *me = &l_sh->r[2];
    rdt_comm_t *comm;
    rdt_request_t *req;
    rdt_status_t st;
    int bad = 0, done = 0, waited;

    l_env(transport, fault, 2);
    if (rdt_comm_create_from_env(&comm) != RDT_SUCCESS) {
        l_fail(me, "rank 2 (%s, %s): create: %s", transport,
               fault == L_CLEAN ? "restart" : l_fault_name[fault], rdt_comm_last_error(NULL));
        return 1;
    }
    st = l_sum(comm, v, L_SMALL, 2, &bad);
    if (st != RDT_SUCCESS || bad) {
        l_fail(me, "rank 2 (%s): the allreduce before the fault: %s", transport,
               bad ? "wrong result" : rdt_comm_last_error(comm));
        rdt_comm_destroy(comm);
        return 1;
    }
    switch (fault) {
    case L_PEER_EXIT: /* leave in the middle of a transfer, without a word */
        if (rdt_iallreduce(comm, v, v, L_BIG, RDT_FLOAT32, RDT_SUM, &req) == RDT_SUCCESS)
            rdt_test(req, &done);
        _exit(0);
    case L_TIMEOUT: /* connected and silent until both others gave up */
        for (waited = 0;
             atomic_load(&l_sh->gave_up) < L_MEASURED * (timeouts_so_far + 1) && waited < 30000;
             waited++)
            usleep(1000);
        break;
    case L_ABORT: /* rank 1 aborted before calling: this allreduce cannot complete */
        if (l_sum(comm, v, L_SMALL, 2, &bad) == RDT_SUCCESS)
            l_fail(me, "rank 2 (%s): an allreduce after rank 1's abort succeeded", transport);
        break;
    case L_MISMATCH:
        st = rdt_broadcast(comm, v, v, L_SMALL, RDT_FLOAT32, 0);
        if (st != RDT_ERR_MISMATCH)
            l_fail(me, "rank 2 (%s): the mismatched broadcast: %s: %s", transport,
                   rdt_status_str(st), rdt_comm_last_error(comm));
        if (l_sum(comm, v, L_SMALL, 2, &bad) != RDT_SUCCESS || bad)
            l_fail(me, "rank 2 (%s): the allreduce after the mismatch: %s", transport,
                   bad ? "wrong result" : rdt_comm_last_error(comm));
        break;
    default:
        break;
    }
    rdt_comm_destroy(comm);
    return me->msg[0] != '\0';
}

/* Rank 2's process: a fresh child per communicator, in the order ranks 0 and 1 go through. */
static int l_rank2(float *v)
{
    int t, round, fault, timeouts = 0, bad = 0;

    for (t = 0; t < l_plan->ntransports; t++) {
        for (round = 0; round <= l_plan->rounds; round++) {
            for (fault = 0; fault < L_NFAULTS; fault++) {
                int f = round == l_plan->rounds ? L_CLEAN : fault, status;
                pid_t pid;
                fflush(stdout);
                fflush(stderr);
                pid = fork();
                if (pid < 0)
                    return 1;
                if (pid == 0)
                    _exit(l_victim(l_plan->transports[t], f, timeouts, v));
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
                }
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                    bad = 1;
                timeouts += f == L_TIMEOUT;
                if (f == L_CLEAN)
                    break;
            }
        }
    }
    return bad;
}


/* Under RDT_IB_CM=rdmacm the transport uses librdmacm's device contexts, which librdmacm opens
 * on first use and keeps until the process exits (one per device, not per communicator): they
 * are opened here, before the baseline, so that what must come back exactly is everything the
 * communicators made (their rdma_cm event channel, QPs, CQs, registrations). */
static void l_rdmacm_first_use(void)
{
#ifdef RDT_HAVE_VERBS
    const char *cm = getenv("RDT_IB_CM");
    struct ibv_context **devs;

    if (!l_plan->verbs || !cm || strcmp(cm, "rdmacm") != 0)
        return;
    devs = rdma_get_devices(NULL);
    if (devs)
        rdma_free_devices(devs);
#endif
}
/* One communicator on rank 0 or 1: create, allreduce, @p fault, destroy. */
static void l_cycle(int rank, const char *transport, int ti, int fault, float *v)
{
    l_rank_t *me = &l_sh->r[rank];
    const char *what = fault == L_CLEAN ? "restart" : l_fault_name[fault];
    rdt_comm_t *comm;
    rdt_status_t st, ok_a = RDT_SUCCESS, ok_b = RDT_SUCCESS;
    l_counts_t c;
    int bad = 0;

    l_env(transport, fault, rank);
    st = rdt_comm_create_from_env(&comm);
    if (st != RDT_SUCCESS) {
        l_fail(me, "rank %d (%s, %s, cycle %d): create: %s", rank, transport, what, me->cycles,
               rdt_comm_last_error(NULL));
        if (fault == L_TIMEOUT)
            atomic_fetch_add(&l_sh->gave_up, 1);
        return;
    }
    st = l_sum(comm, v, L_SMALL, rank, &bad);
    if (st != RDT_SUCCESS || bad)
        l_fail(me, "rank %d (%s, %s): the allreduce before the fault: %s", rank, transport, what,
               bad ? "wrong result" : rdt_comm_last_error(comm));
    c = l_count(NULL); /* connected: the communicator's resources show */
    if (c.fds > me->peak[ti].fds)
        me->peak[ti].fds = c.fds;
    if (c.maps > me->peak[ti].maps)
        me->peak[ti].maps = c.maps;
    if (c.threads > me->peak[ti].threads)
        me->peak[ti].threads = c.threads;
    if (c.uverbs > me->peak[ti].uverbs)
        me->peak[ti].uverbs = c.uverbs;
    if (c.qps > me->peak[ti].qps)
        me->peak[ti].qps = c.qps;

    switch (fault) {
    case L_PEER_EXIT:
        st = rdt_allreduce(comm, v, v, L_BIG, RDT_FLOAT32, RDT_SUM);
        ok_a = ok_b = RDT_ERR_PEER_FAILED;
        break;
    case L_TIMEOUT:
        rdt_comm_set_timeout(comm, l_plan->fault_timeout_s);
        st = rdt_allreduce(comm, v, v, L_SMALL, RDT_FLOAT32, RDT_SUM);
        atomic_fetch_add(&l_sh->gave_up, 1);
        ok_a = RDT_ERR_TIMEOUT;
        ok_b = RDT_ERR_PEER_FAILED;
        break;
    case L_ABORT:
        if (rank == 1 && rdt_comm_abort(comm) != RDT_SUCCESS)
            l_fail(me, "rank 1 (%s): rdt_comm_abort failed", transport);
        st = rdt_allreduce(comm, v, v, L_SMALL, RDT_FLOAT32, RDT_SUM);
        ok_a = RDT_ERR_ABORTED;
        ok_b = rank == 1 ? RDT_ERR_ABORTED : RDT_ERR_PEER_FAILED;
        break;
    case L_MISMATCH:
        st = rdt_allreduce(comm, v, v, L_SMALL, RDT_FLOAT32, RDT_SUM);
        ok_a = ok_b = RDT_ERR_MISMATCH;
        break;
    default:
        break;
    }
    if (fault != L_CLEAN) {
        atomic_fetch_add(&l_sh->tally[fault][st], 1);
        if (!l_in(st, ok_a, ok_b))
            l_fail(me, "rank %d (%s, %s): the faulty call returned %s (expected %s%s%s): %s", rank,
                   transport, what, rdt_status_str(st), rdt_status_str(ok_a),
                   ok_b != ok_a ? " or " : "", ok_b != ok_a ? rdt_status_str(ok_b) : "",
                   rdt_comm_last_error(comm));
    }
    if (fault == L_MISMATCH && (l_sum(comm, v, L_SMALL, rank, &bad) != RDT_SUCCESS || bad))
        l_fail(me, "rank %d (%s): the allreduce after the mismatch: %s", rank, transport,
               bad ? "wrong result" : rdt_comm_last_error(comm));
    rdt_comm_destroy(comm);
    me->cycles++;
}

static int l_leaks(int rank)
{
    if (!rdt_test_leaks(rank))
        return 0;
    l_fail(&l_sh->r[rank], "rank %d: LeakSanitizer found leaks (its report is above)", rank);
    return 1;
}

static int l_body(int rank, int nranks, void *arg)
{
    l_rank_t *me = &l_sh->r[rank];
    int base_fds[L_MAX_FDS], t, round, fault;
    float *v = malloc(L_BIG * sizeof(*v));
    l_counts_t base;

    (void)nranks;
    (void)arg;
    if (!v)
        return 1;
    if (rank == 2) {
        int rc = l_rank2(v);
        free(v);
        return rc;
    }
    l_rdmacm_first_use();
    base = l_count(base_fds); /* before any communicator exists */
    me->before = base;
    for (t = 0; t < l_plan->ntransports; t++) {
        me->peak[t] = base;
        for (round = 0; round < l_plan->rounds; round++)
            for (fault = 0; fault < L_NFAULTS; fault++)
                l_cycle(rank, l_plan->transports[t], t, fault, v);
        l_cycle(rank, l_plan->transports[t], t, L_CLEAN, v);
        l_compare(me, rank, l_plan->transports[t], base_fds, &base);
    }
    free(v);
    me->done = 1;
    return (me->msg[0] != '\0') | l_leaks(rank);
}

/* ------------------------------------------------------------------------------------------ */
/* The parent                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void l_run(const l_plan_t *plan)
{
    int st[L_NRANKS], i, t, f, s, rc;
    char line[1024];

    l_plan = plan;
    l_sh = mmap(NULL, sizeof(*l_sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(l_sh != MAP_FAILED);
    memset(l_sh, 0, sizeof(*l_sh));
    rc = rdt_spawn_local(L_NRANKS, l_body, NULL, plan->spawn_timeout_s, st);

    for (f = 0; f < L_NFAULTS; f++) {
        int used = snprintf(line, sizeof(line), "leaks: %s, ranks 0 and 1 saw:", l_fault_name[f]);
        for (s = 0; s < RDT_STATUS_COUNT; s++)
            if (atomic_load(&l_sh->tally[f][s]) > 0 && used < (int)sizeof(line))
                used += snprintf(line + used, sizeof(line) - (size_t)used, " %d x %s",
                                 atomic_load(&l_sh->tally[f][s]), rdt_status_str((rdt_status_t)s));
        print_message("%s\n", line);
    }
    for (i = 0; i < L_MEASURED; i++) {
        const l_rank_t *r = &l_sh->r[i];
        print_message("leaks: rank %d: %d communicators created, %d of them failed, destroyed, "
                      "then restarted\n",
                      i, r->cycles, plan->ntransports * plan->rounds * L_NFAULTS);
        for (t = 0; t < plan->ntransports; t++) {
            const l_counts_t *b = &r->before, *p = &r->peak[t], *a = &r->after[t];
            int used =
                snprintf(line, sizeof(line),
                         "leaks: rank %d %-5s before -> connected (most) -> after: fds %d "
                         "-> %d -> %d, threads %d -> %d -> %d, shared mappings %d -> %d -> "
                         "%d, /dev/shm entries %d -> %d",
                         i, plan->transports[t], b->fds, p->fds, a->fds, b->threads, p->threads,
                         a->threads, b->maps, p->maps, a->maps, b->names, a->names);
            if (plan->verbs && used < (int)sizeof(line))
                snprintf(line + used, sizeof(line) - (size_t)used,
                         ", uverbs fds %d -> %d -> %d, QPs %s%d -> %d -> %d", b->uverbs, p->uverbs,
                         a->uverbs, b->qps < 0 ? "(no rdma tool) " : "", b->qps, p->qps, a->qps);
            print_message("%s\n", line);
        }
    }
    for (i = 0; i < L_NRANKS; i++) {
        const char *m = l_sh->r[i].msg;
        while (*m) { /* a line at a time: cmocka's print buffer is short */
            int len = (int)strcspn(m, "\n");
            print_message("%.*s\n", len, m);
            m += len + (m[len] == '\n');
        }
        if (st[i] != 0)
            print_message("rank %d exited with status %d%s\n", i, st[i],
                          st[i] == 137 ? " (killed at the spawn deadline: a hang)" : "");
    }
    for (i = 0; i < L_NRANKS; i++)
        if (l_sh->r[i].msg[0])
            fail_msg("rank %d did not come back clean (all of it above): %.*s", i,
                     (int)strcspn(l_sh->r[i].msg, "\n"), l_sh->r[i].msg);
    assert_int_equal(rc, 0);
    for (i = 0; i < L_MEASURED; i++) {
        const l_rank_t *r = &l_sh->r[i];
        assert_true(r->done);
        assert_int_equal(r->cycles, plan->ntransports * (plan->rounds * L_NFAULTS + 1));
        /* the counting sees a communicator's resources, so "back to the baseline" means something
         */
        for (t = 0; t < plan->ntransports; t++) {
            if (r->peak[t].fds <= r->before.fds)
                fail_msg("rank %d over %s: no more descriptors with a communicator than without "
                         "(%d): the count misses them",
                         i, plan->transports[t], r->before.fds);
            if (strcmp(plan->transports[t], "tcp") != 0 && !plan->verbs &&
                r->peak[t].maps <= r->before.maps)
                fail_msg("rank %d over %s: no shared mapping seen with a communicator", i,
                         plan->transports[t]);
            if (strcmp(plan->transports[t], "auto2") == 0 &&
                r->peak[t].threads <= r->before.threads)
                fail_msg("rank %d over auto with two host names: no more threads with a "
                         "communicator than without (%d): the mux's helper is not counted",
                         i, r->before.threads);
            if (plan->verbs && r->peak[t].uverbs == 0)
                fail_msg("rank %d over verbs: no /dev/infiniband/uverbs* descriptor seen with a "
                         "communicator: the count misses the device context",
                         i);
            if (plan->verbs && r->before.qps >= 0 && r->peak[t].qps <= 0)
                fail_msg("rank %d over verbs: `rdma res show qp` listed no QP of this process "
                         "while a communicator was connected: the QP count does not work here",
                         i);
        }
    }
    munmap(l_sh, sizeof(*l_sh));
    l_sh = NULL;
}

static const l_plan_t l_host_plan = {
    .transports = {"tcp", "shm", "auto", "auto2"},
    .ntransports = 4,
    .rounds = 5,
    .fault_timeout_s = 0.3,
    .hang_timeout = "20",
    .spawn_timeout_s = 120,
    .verbs = 0,
};

/* SoftRoCE in an emulated VM is slow: fewer rounds, longer timeouts. */
static const l_plan_t l_verbs_plan = {
    .transports = {"verbs"},
    .ntransports = 1,
    .rounds = 2,
    .fault_timeout_s = 1.0,
    .hang_timeout = "120",
    .spawn_timeout_s = 800,
    .verbs = 1,
};

static void test_failed_communicators_leave_no_fd_mapping_or_thread_over_tcp_shm_auto(void **state)
{
    (void)state;
    l_run(&l_host_plan);
}

static void test_failed_communicators_leave_no_fd_qp_or_device_context_over_verbs(void **state)
{
    (void)state;
    l_run(&l_verbs_plan);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--verbs") == 0) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_failed_communicators_leave_no_fd_qp_or_device_context_over_verbs),
        };
        rdt_test_require_rdma("test_leaks --verbs", NULL);
        return cmocka_run_group_tests(tests, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_communicators_leave_no_fd_mapping_or_thread_over_tcp_shm_auto),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
