/*
 * rdt_allreduce_prog.c - the program test_launcher.c runs under `rdmatrain`: a client of the
 * public API only. Every rank creates the world communicator from the launcher's environment,
 * checks it against RDT_RANK/RDT_SIZE/RDT_LOCAL_RANK, allreduces a vector and checks every
 * element, prints one line and exits 0. Options make one rank misbehave afterwards:
 *
 *   --exit R C      rank R exits with status C, the others wait to be stopped
 *   --kill R        rank R kills itself with SIGKILL, the others wait to be stopped
 *   --hang R        rank R never finishes, the others exit 0
 *   --wait-signal   every rank prints "rank N ready" and waits for SIGINT/SIGTERM, then prints
 *                   "rank N got SIGxxx" and exits 0
 *   --ignore-term   ignore SIGTERM (only SIGKILL stops it)
 *   --child         every rank first starts a child process (a copy of this program sleeping,
 *                   in the rank's process group) that the launcher must not leave behind
 *   --no-comm       skip the communicator (for launcher-only tests)
 *   --env VAR       print VAR's value ("rank N VAR=value")
 *   anything else   ignored (tests pass a unique marker to find their processes in /proc)
 */
#include <rdmatrain.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COUNT     1000
#define WAIT_SECS 600 /* "forever", bounded so nothing can outlive a broken launcher by much */

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

static int env_int(const char *name)
{
    const char *v = getenv(name);
    return v ? atoi(v) : -1;
}

static void wait_long(void)
{
    int i;
    for (i = 0; i < WAIT_SECS && !got_signal; i++)
        sleep(1);
}

/* sum over ranks of (r + 1) * (i % 7 + 1) is (i % 7 + 1) * n(n+1)/2, exactly, in int64 */
static int run_allreduce(int *rank_p)
{
    rdt_comm_t *comm;
    int64_t *v = malloc(COUNT * sizeof(*v));
    int rank, size, i, bad = 0;

    if (!v)
        return 1;
    if (rdt_comm_create_from_env(&comm) != RDT_SUCCESS) {
        fprintf(stderr, "create: %s\n", rdt_comm_last_error(NULL));
        free(v);
        return 1;
    }
    rank = rdt_comm_rank(comm);
    size = rdt_comm_size(comm);
    if (rank != env_int("RDT_RANK") || size != env_int("RDT_SIZE") ||
        env_int("RDT_LOCAL_RANK") < 0 || !getenv("RDT_TOKEN") ||
        strlen(getenv("RDT_TOKEN")) != 32) {
        fprintf(stderr, "rank %d of %d disagrees with the environment\n", rank, size);
        bad = 1;
    }
    for (i = 0; i < COUNT; i++)
        v[i] = (int64_t)(rank + 1) * (i % 7 + 1);
    if (rdt_allreduce(comm, v, v, COUNT, RDT_INT64, RDT_SUM) != RDT_SUCCESS) {
        fprintf(stderr, "allreduce: %s\n", rdt_comm_last_error(comm));
        bad = 1;
    }
    for (i = 0; i < COUNT && !bad; i++) {
        if (v[i] != (int64_t)(i % 7 + 1) * size * (size + 1) / 2) {
            fprintf(stderr, "rank %d: element %d is %lld\n", rank, i, (long long)v[i]);
            bad = 1;
        }
    }
    if (!bad)
        printf("rank %d of %d: allreduce ok (local rank %d)\n", rank, size,
               env_int("RDT_LOCAL_RANK"));
    fflush(stdout);
    /* Every rank has printed its line once this returns: a rank that fails next cannot have
     * the others stopped before they said it. */
    if (!bad && rdt_barrier(comm) != RDT_SUCCESS) {
        fprintf(stderr, "barrier: %s\n", rdt_comm_last_error(comm));
        bad = 1;
    }
    rdt_comm_destroy(comm);
    free(v);
    *rank_p = rank;
    return bad;
}

int main(int argc, char **argv)
{
    int exit_rank = -1, exit_code = 0, kill_rank = -1, hang_rank = -1, wait_signal = 0;
    int no_comm = 0, rank = env_int("RDT_RANK"), i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--sleeper") == 0) { /* the child of --child */
            wait_long();
            return 0;
        } else if (strcmp(argv[i], "--exit") == 0 && i + 2 < argc) {
            exit_rank = atoi(argv[++i]);
            exit_code = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--kill") == 0 && i + 1 < argc) {
            kill_rank = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--hang") == 0 && i + 1 < argc) {
            hang_rank = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--wait-signal") == 0) {
            wait_signal = 1;
            signal(SIGINT, on_signal);
            signal(SIGTERM, on_signal);
        } else if (strcmp(argv[i], "--ignore-term") == 0) {
            signal(SIGTERM, SIG_IGN);
        } else if (strcmp(argv[i], "--no-comm") == 0) {
            no_comm = 1;
        } else if (strcmp(argv[i], "--env") == 0 && i + 1 < argc) {
            const char *v = getenv(argv[++i]);
            printf("rank %d %s=%s\n", rank, argv[i], v ? v : "(unset)");
        } else if (strcmp(argv[i], "--child") == 0) {
            pid_t pid = fork();
            if (pid == 0) {
                char *args[] = {argv[0], "--sleeper", argv[argc - 1], NULL};
                execv("/proc/self/exe", args);
                _exit(1);
            }
        }
    }
    if (!no_comm && run_allreduce(&rank))
        return 1;
    if (wait_signal) {
        printf("rank %d ready\n", rank);
        fflush(stdout);
        wait_long();
        printf("rank %d got %s\n", rank, got_signal == SIGINT ? "SIGINT" : "SIGTERM");
        return got_signal ? 0 : 1;
    }
    if (rank == exit_rank)
        return exit_code;
    if (rank == kill_rank)
        raise(SIGKILL);
    if (rank == hang_rank || (exit_rank >= 0 || kill_rank >= 0)) {
        wait_long();
        return 1;
    }
    return 0;
}
