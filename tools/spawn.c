/* spawn.c - see spawn.h. */
#include "spawn.h"
#include "freeport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void random_token(char *hex, size_t n)
{
    FILE *f = fopen("/dev/urandom", "rb");
    unsigned char b[16] = {0};
    size_t i;

    if (f) {
        if (fread(b, 1, sizeof(b), f) != sizeof(b))
            memset(b, 0x5a, sizeof(b));
        fclose(f);
    }
    for (i = 0; i < sizeof(b) && 2 * i + 2 < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", b[i]);
}

/* With no more ranks than cores, pin rank i to the i-th allowed core, as mpirun does for
 * np <= cores: otherwise two busy ranks may share a core while the other idles. */
void rdt_spawn_bind(int rank, int nranks)
{
    cpu_set_t allowed, one;
    int cpu, seen = 0;

    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || nranks > CPU_COUNT(&allowed))
        return;
    for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed) || seen++ != rank)
            continue;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        sched_setaffinity(0, sizeof(one), &one);
        return;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int rdt_spawn_local_hook(int nranks, rdt_spawn_fn_t fn, void *arg, int timeout_s, int *statuses,
                         rdt_spawn_hook_t hook, void *hook_arg)
{
    char root[64], token[40], buf[32];
    int *pids, left = 0, failed = 0, i, port;
    sigset_t chld, oldmask;
    double deadline;

    if (nranks < 1 || (port = rdt_free_port(0)) < 0)
        return -1;
    pids = calloc((size_t)nranks, sizeof(*pids));
    if (!pids)
        return -1;
    snprintf(root, sizeof(root), "127.0.0.1:%d", port);
    random_token(token, sizeof(token));
    fflush(stdout);
    fflush(stderr);
    /* SIGCHLD blocked from before the first fork, so an exit is never missed between a waitpid
     * and the wait for the next one (a blocked SIGCHLD stays pending even at its default
     * action); the ranks get the caller's mask back. */
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &oldmask);
    for (i = 0; i < nranks; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            failed = -1;
            break;
        }
        if (pid == 0) {
            free(pids); /* the parent's: a leak checker (valgrind) would blame the rank */
            sigprocmask(SIG_SETMASK, &oldmask, NULL);
            rdt_spawn_bind(i, nranks);
            snprintf(buf, sizeof(buf), "%d", i);
            setenv("RDT_RANK", buf, 1);
            snprintf(buf, sizeof(buf), "%d", nranks);
            setenv("RDT_SIZE", buf, 1);
            setenv("RDT_ROOT", root, 1);
            setenv("RDT_TOKEN", token, 1);
            fflush(stdout);
            _exit(fn(i, nranks, arg));
        }
        pids[i] = pid;
        statuses[i] = -1;
        left++;
    }
    if (hook && failed == 0)
        hook(nranks, pids, hook_arg);

    deadline = now_s() + timeout_s;
    while (left > 0) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid > 0) {
            for (i = 0; i < nranks; i++) {
                if (pids[i] == pid) {
                    statuses[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                    if (statuses[i] != 0)
                        failed = failed ? failed : 1;
                    pids[i] = 0;
                    left--;
                }
            }
            continue;
        }
        if (pid < 0 && errno != EINTR)
            break;
        if (now_s() > deadline) {
            for (i = 0; i < nranks; i++)
                if (pids[i] > 0)
                    kill(pids[i], SIGKILL);
            deadline = now_s() + 3600; /* reap the killed ones below */
        }
        /* Sleep until a rank exits (or a second passes: the deadline is looked at again). Not a
         * timed poll: a parent waking every few milliseconds takes the core from a rank pinned
         * to it, which showed in the latency of the benchmark's small collectives on a VM. */
        {
            struct timespec ts = {1, 0};
            sigtimedwait(&chld, NULL, &ts);
        }
    }
    sigprocmask(SIG_SETMASK, &oldmask, NULL);
    free(pids);
    return failed;
}

int rdt_spawn_local(int nranks, rdt_spawn_fn_t fn, void *arg, int timeout_s, int *statuses)
{
    return rdt_spawn_local_hook(nranks, fn, arg, timeout_s, statuses, NULL, NULL);
}
