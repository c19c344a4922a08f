/*
 * test_topo_engine.c - topo/ seen from a communicator: comm->topo built from the host names and
 * localities every rank exchanges at creation (RDT_HOSTNAME fakes two hosts on this machine),
 * its agreement with the host map select.c derives, split inheriting it, the topology line
 * rank 0 logs, and RDT_BIND applied at creation (sched_getaffinity afterwards): by the host
 * table when the launcher gives no local size, by the launcher's RDT_LOCAL_RANK/RDT_LOCAL_SIZE
 * before the exchange otherwise; a bad RDT_BIND fails creation naming it.
 *
 * Each rank body runs in a child (tools/spawn.h) and exits non-zero, saying why on stderr, when a
 * check fails; the parent asserts every exit status.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm.h"
#include "rdmatrain.h"
#include "spawn.h"
#include "topo.h"

#define SPAWN_TIMEOUT_S 60

static int g_rank = -1;

#define CHECK(cond)                                                                              \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "test_topo_engine: rank %d: line %d: check failed: %s\n", g_rank,  \
                    __LINE__, #cond);                                                            \
            _exit(2);                                                                            \
        }                                                                                        \
    } while (0)

/* What every rank body gets: the CPUs the test process may use (spawn pins ranks to one core
 * each when they fit; a body puts the full set back, as an unpinned launcher leaves it). */
typedef struct job {
    cpu_set_t allowed;
    const char *bind;  /* RDT_BIND, NULL: unset */
    int fake_hosts;    /* ranks 0..n/2-1 on "hosta", the others on "hostb"; else all "hosta" */
    int launcher_size; /* set RDT_LOCAL_RANK = rank and RDT_LOCAL_SIZE = nranks */
    char log[64];      /* rank 0's stderr goes there ("" keeps it) */
} job_t;

static void rank_setup(int rank, int nranks, const job_t *job)
{
    char num[16];

    g_rank = rank;
    CHECK(sched_setaffinity(0, sizeof(job->allowed), &job->allowed) == 0);
    setenv("RDT_TRANSPORT", "tcp", 1);
    setenv("RDT_HOSTNAME", job->fake_hosts && rank >= nranks / 2 ? "hostb" : "hosta", 1);
    if (job->bind)
        setenv("RDT_BIND", job->bind, 1);
    else
        unsetenv("RDT_BIND");
    if (job->launcher_size) {
        snprintf(num, sizeof(num), "%d", rank);
        setenv("RDT_LOCAL_RANK", num, 1);
        snprintf(num, sizeof(num), "%d", nranks);
        setenv("RDT_LOCAL_SIZE", num, 1);
    } else {
        unsetenv("RDT_LOCAL_RANK");
        unsetenv("RDT_LOCAL_SIZE");
    }
}

static rdt_comm_t *create(void)
{
    rdt_comm_t *comm = NULL;
    rdt_status_t st = rdt_comm_create_from_env(&comm);

    if (st != RDT_SUCCESS)
        fprintf(stderr, "test_topo_engine: rank %d: %s\n", g_rank, rdt_comm_last_error(NULL));
    CHECK(st == RDT_SUCCESS && comm);
    return comm;
}

/* topo/'s grouping and select.c's host map (each rank's host named by its lowest rank) agree. */
static void check_agrees_with_host_of(const rdt_comm_t *comm)
{
    const rdt_topo_t *t = comm->topo;
    int r;

    CHECK(t && comm->host_of);
    CHECK(t->nranks == comm->nranks);
    for (r = 0; r < comm->nranks; r++)
        CHECK(t->host_ranks[t->host_first[t->host_of[r]]] == comm->host_of[r]);
}

static void check_two_fake_hosts(const rdt_comm_t *comm)
{
    static const int host[4] = {0, 0, 1, 1}, local[4] = {0, 1, 0, 1};
    const rdt_topo_t *t = comm->topo;
    int r;

    CHECK(t->nranks == 4 && t->nhosts == 2 && t->max_local_size == 2);
    CHECK(t->local_size[0] == 2 && t->local_size[1] == 2);
    CHECK(!strcmp(t->host_name[0], "hosta") && !strcmp(t->host_name[1], "hostb"));
    for (r = 0; r < 4; r++) {
        CHECK(t->host_of[r] == host[r]);
        CHECK(t->local_rank[r] == local[r]);
        CHECK(t->numa_of[r] >= -1 && t->numa_of[r] < (t->nnuma[host[r]] ? t->nnuma[host[r]] : 1));
    }
    check_agrees_with_host_of(comm);
}

static int body_two_fake_hosts(int rank, int nranks, void *arg)
{
    const job_t *job = arg;
    rdt_comm_t *comm, *sub = NULL;
    float v = (float)(rank + 1);
    const rdt_topo_t *t;
    int r;

    rank_setup(rank, nranks, job);
    if (rank == 0 && job->log[0]) {
        setenv("RDT_LOG", "info", 1);
        setenv("RDT_LOG_SUBSYS", "comm", 1);
        CHECK(freopen(job->log, "w", stderr) != NULL);
        setvbuf(stderr, NULL, _IONBF, 0); /* the child leaves with _exit: nothing buffered */
    }
    comm = create();
    check_two_fake_hosts(comm);
    t = comm->topo;
    /* unbound and no RDMA device to choose (this machine has none): nothing depends on where a
     * rank runs, so it is not probed (hwloc's discovery is not free) and is unknown everywhere;
     * the bound cases below check a probed locality travelling in the exchange */
    for (r = 0; r < 4; r++)
        CHECK(t->numa_of[r] == -1 && t->nic_of[r] == -1);
    CHECK(rdt_allreduce(comm, &v, &v, 1, RDT_FLOAT32, RDT_SUM) == RDT_SUCCESS);
    CHECK(v == 10.0f);

    /* split by parity: {0, 2} and {1, 3}, one rank per fake host, locality inherited */
    CHECK(rdt_comm_split(comm, rank % 2, rank, &sub) == RDT_SUCCESS && sub);
    CHECK(sub->topo && sub->topo->nranks == 2 && sub->topo->nhosts == 2);
    CHECK(sub->topo->local_rank[0] == 0 && sub->topo->local_rank[1] == 0);
    CHECK(sub->topo->numa_of[0] == t->numa_of[rank % 2]);
    CHECK(sub->topo->numa_of[1] == t->numa_of[rank % 2 + 2]);
    CHECK(sub->topo->nic_of[1] == t->nic_of[rank % 2 + 2]);
    check_agrees_with_host_of(sub);
    rdt_comm_destroy(sub);
    rdt_comm_destroy(comm);
    return 0;
}

static void run(int nranks, rdt_spawn_fn_t fn, job_t *job)
{
    int st[8], r;

    CHECK(nranks <= 8);
    assert_int_equal(sched_getaffinity(0, sizeof(job->allowed), &job->allowed), 0);
    rdt_spawn_local(nranks, fn, job, SPAWN_TIMEOUT_S, st);
    for (r = 0; r < nranks; r++)
        if (st[r] != 0)
            fail_msg("rank %d exited with status %d", r, st[r]);
}

static void test_four_ranks_on_two_fake_hosts_have_their_topology(void **state)
{
    job_t job;
    char line[1024];
    FILE *f;
    int found = 0;
    int fd;

    memset(&job, 0, sizeof(job));
    job.fake_hosts = 1;
    snprintf(job.log, sizeof(job.log), "/tmp/rdt_topo_engine_XXXXXX");
    fd = mkstemp(job.log);
    assert_true(fd >= 0);
    close(fd);
    run(4, body_two_fake_hosts, &job);

    /* rank 0 logged the topology once, at info */
    f = fopen(job.log, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        if (strstr(line, "topology: 2 hosts, ranks per host 2/2, NUMA nodes per host ")) {
            found++;
            assert_non_null(strstr(line, "(node known for 0 of 4 ranks), NICs per host "));
        }
    fclose(f);
    if (found != 1) {
        fprintf(stderr, "rank 0's log (%s):\n", job.log);
        f = fopen(job.log, "r");
        while (f && fgets(line, sizeof(line), f))
            fputs(line, stderr);
        if (f)
            fclose(f);
    }
    unlink(job.log);
    assert_int_equal(found, 1);
}

/* Physical cores among the CPUs of @p set (CPUs that list the same hardware threads are one). */
static int cores_in(const cpu_set_t *set)
{
    char seen[CPU_SETSIZE / 8][32];
    int n = 0, cpu, i;

    for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        char path[128], sib[32] = "";
        FILE *f;
        int dup = 0;

        if (!CPU_ISSET(cpu, set))
            continue;
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list",
                 cpu);
        f = fopen(path, "r");
        if (!f || !fgets(sib, sizeof(sib), f))
            snprintf(sib, sizeof(sib), "cpu%d", cpu); /* unknown: count it as a core */
        if (f)
            fclose(f);
        for (i = 0; i < n; i++)
            dup |= !strcmp(seen[i], sib);
        if (!dup && n < (int)(sizeof(seen) / sizeof(seen[0])))
            snprintf(seen[n++], sizeof(seen[0]), "%s", sib);
    }
    return n;
}

static int set_equal(const cpu_set_t *a, const cpu_set_t *b)
{
    return CPU_EQUAL(a, b);
}

static int set_disjoint(const cpu_set_t *a, const cpu_set_t *b)
{
    cpu_set_t x;

    CPU_AND(&x, a, b);
    return CPU_COUNT(&x) == 0;
}

static int set_within(const cpu_set_t *a, const cpu_set_t *outer)
{
    cpu_set_t x;

    CPU_AND(&x, a, outer);
    return CPU_EQUAL(&x, a);
}

/*
 * After creation with RDT_BIND: every rank's CPUs are a non-empty part of the allowed ones, and
 * ranks of one host with different local ranks have disjoint sets when there are cores enough
 * (core mode), gathered over the communicator itself.
 */
static int body_bind(int rank, int nranks, void *arg)
{
    const job_t *job = arg;
    cpu_set_t mine, all[8];
    rdt_comm_t *comm;
    const rdt_topo_t *t;
    int r, s, core = !strcmp(job->bind, "core");

    rank_setup(rank, nranks, job);
    comm = create();
    t = comm->topo;
    CHECK(sched_getaffinity(0, sizeof(mine), &mine) == 0);
    CHECK(CPU_COUNT(&mine) >= 1 && set_within(&mine, &job->allowed));
    CHECK(rdt_allgather(comm, &mine, all, sizeof(mine), RDT_UINT8) == RDT_SUCCESS);
    for (r = 0; r < nranks; r++)
        for (s = 0; s < nranks; s++) {
            int same_host = t->host_of[r] == t->host_of[s];
            int same_local = t->local_rank[r] == t->local_rank[s];
            if (!core || r == s)
                continue;
            if (same_host && cores_in(&job->allowed) >= t->local_size[t->host_of[r]])
                CHECK(set_disjoint(&all[r], &all[s]));
            if (!job->launcher_size && same_local) /* every fake host divides the same CPUs */
                CHECK(set_equal(&all[r], &all[s]));
        }
    if (!core && t->nnuma[t->host_of[rank]] == 1) /* numa mode, one node: all allowed CPUs */
        CHECK(set_equal(&mine, &job->allowed));
    for (r = 0; r < nranks; r++) {
        if (job->launcher_size) /* bound before the exchange: the bound location was sent */
            CHECK(t->numa_of[r] >= 0);
        else /* bound after it: reported unknown rather than where the rank was before */
            CHECK(t->numa_of[r] == -1 && t->nic_of[r] == -1);
    }
    rdt_comm_destroy(comm);
    return 0;
}

static void test_bind_core_by_the_host_table_on_two_fake_hosts(void **state)
{
    job_t job;

    memset(&job, 0, sizeof(job));
    job.fake_hosts = 1;
    job.bind = "core";
    run(4, body_bind, &job);
}

static void test_bind_core_before_the_exchange_with_the_launchers_local_size(void **state)
{
    job_t job;

    memset(&job, 0, sizeof(job));
    job.launcher_size = 1;
    job.bind = "core";
    run(2, body_bind, &job);
}

static void test_bind_numa_takes_the_node_of_the_core(void **state)
{
    job_t job;

    memset(&job, 0, sizeof(job));
    job.launcher_size = 1;
    job.bind = "numa";
    run(2, body_bind, &job);
}

static int body_bogus_bind(int rank, int nranks, void *arg)
{
    const job_t *job = arg;
    rdt_comm_t *comm = NULL;

    rank_setup(rank, nranks, job);
    CHECK(rdt_comm_create_from_env(&comm) == RDT_ERR_CONFIG && comm == NULL);
    CHECK(strstr(rdt_comm_last_error(NULL), "RDT_BIND='bogus' is not one of none, numa, core"));
    return 0;
}

static void test_bogus_bind_fails_creation_naming_rdt_bind(void **state)
{
    job_t job;

    memset(&job, 0, sizeof(job));
    job.bind = "bogus";
    run(2, body_bogus_bind, &job);
}

static int oob_one(const void *send, void *recv, size_t bytes, void *ctx)
{
    memcpy(recv, send, bytes);
    return 0;
}

static int body_oob(int rank, int nranks, void *arg)
{
    const job_t *job = arg;
    rdt_comm_t *comm = NULL;
    rdt_status_t st;

    rank_setup(rank, nranks, job);
    st = rdt_comm_create_oob(0, 1, oob_one, NULL, &comm);
    CHECK(st == RDT_SUCCESS && comm);
    CHECK(comm->topo && comm->topo->nranks == 1 && comm->topo->nhosts == 1);
    CHECK(comm->topo->local_size[0] == 1 && comm->topo->local_rank[0] == 0);
    check_agrees_with_host_of(comm);
    rdt_comm_destroy(comm);
    /* the same rank again: RDT_BIND applies once per process, creation still succeeds */
    st = rdt_comm_create_oob(0, 1, oob_one, NULL, &comm);
    CHECK(st == RDT_SUCCESS && comm);
    rdt_comm_destroy(comm);
    return 0;
}

static void test_out_of_band_creation_binds_and_has_a_topology(void **state)
{
    job_t job;

    memset(&job, 0, sizeof(job));
    job.bind = "core";
    run(1, body_oob, &job);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_four_ranks_on_two_fake_hosts_have_their_topology),
        cmocka_unit_test(test_bind_core_by_the_host_table_on_two_fake_hosts),
        cmocka_unit_test(test_bind_core_before_the_exchange_with_the_launchers_local_size),
        cmocka_unit_test(test_bind_numa_takes_the_node_of_the_core),
        cmocka_unit_test(test_bogus_bind_fails_creation_naming_rdt_bind),
        cmocka_unit_test(test_out_of_band_creation_binds_and_has_a_topology),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
