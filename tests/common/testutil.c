/* testutil.c - see testutil.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif
#ifdef RDT_HAVE_VERBS
#include <infiniband/verbs.h>
#endif

#include "testutil.h"

#include "comm.h"

rdt_comm_t *rdt_test_create_or_die(void)
{
    rdt_comm_t *comm = NULL;
    rdt_status_t st = rdt_comm_create_from_env(&comm);

    if (st != RDT_SUCCESS) {
        fprintf(stderr, "create: %s: %s\n", rdt_status_str(st), rdt_comm_last_error(NULL));
        _exit(3);
    }
    return comm;
}

void *rdt_test_alloc(size_t bytes, int mapped)
{
    void *p = NULL;

    if (!mapped) {
        p = calloc(1, bytes ? bytes : 1);
        if (!p)
            fprintf(stderr, "calloc(%zu) failed\n", bytes);
        return p;
    }
    if (rdt_mem_alloc(bytes, &p) != RDT_SUCCESS) {
        fprintf(stderr, "rdt_mem_alloc(%zu): %s\n", bytes, rdt_comm_last_error(NULL));
        return NULL;
    }
    return p;
}

int rdt_test_free(void *p, int mapped)
{
    if (!mapped) {
        free(p);
        return 0;
    }
    if (rdt_mem_free(p) != RDT_SUCCESS) {
        fprintf(stderr, "rdt_mem_free: %s\n", rdt_comm_last_error(NULL));
        return -1;
    }
    return 0;
}

void rdt_test_comm_paths(const rdt_comm_t *comm, uint64_t *direct, uint64_t *staged,
                         uint64_t *oneshot)
{
    *direct = comm->direct_calls;
    *staged = comm->staged_calls;
    *oneshot = comm->oneshot_ar_calls;
}

uint64_t rdt_test_comm_one_slice(const rdt_comm_t *comm)
{
    return comm->one_slice_calls;
}

uint64_t rdt_test_comm_contended_waits(const rdt_comm_t *comm)
{
    return comm->contended_waits;
}

int rdt_test_maps_count(const char *needle)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int n = 0;

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

int rdt_test_leaks(int rank)
{
#ifdef __SANITIZE_ADDRESS__
    if (__lsan_do_recoverable_leak_check()) {
        fprintf(stderr, "rank %d: LeakSanitizer found leaks\n", rank);
        return 1;
    }
#endif
    (void)rank;
    return 0;
}

uint64_t rdt_test_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rdt_test_sim_expect_ok(rdt_coll_t coll, rdt_algo_t algo, int p, int root, size_t count,
                            size_t slice, rdt_dtype_t dtype, rdt_op_t op, int in_place)
{
    rdt_sim_params_t prm = {.coll = coll,
                            .algo = algo,
                            .nranks = p,
                            .root = root,
                            .count = count,
                            .slice = slice,
                            .dtype = dtype,
                            .op = op,
                            .in_place = in_place};
    rdt_sim_result_t res;

    if (rdt_sim_run(&prm, &res) != RDT_SUCCESS)
        fail_msg("%s %s on %d ranks (root %d, count %zu, slice %zu, %s, %s, %s): %s",
                 rdt_algo_name(algo), rdt_coll_name(coll), p, root, count, slice,
                 rdt_dtype_name(dtype), rdt_op_name(op), in_place ? "in place" : "out of place",
                 res.error);
}

int rdt_test_rdma_probe(rdt_test_rdma_t *found, char *why, size_t why_len)
{
#ifdef RDT_HAVE_VERBS
    struct ibv_device **list;
    int n = 0, i, ok = 0, opened = 0;

    list = ibv_get_device_list(&n);
    if (!list || n == 0) {
        snprintf(why, why_len, "no RDMA device (is rdma_rxe or a NIC driver loaded?)");
        if (list)
            ibv_free_device_list(list);
        return 0;
    }
    for (i = 0; i < n && !ok; i++) {
        struct ibv_context *ctx = ibv_open_device(list[i]);
        struct ibv_device_attr da;
        uint8_t port;
        if (!ctx)
            continue;
        opened++;
        if (ibv_query_device(ctx, &da) == 0) {
            for (port = 1; port <= da.phys_port_cnt && !ok; port++) {
                struct ibv_port_attr pa;
                if (ibv_query_port(ctx, port, &pa) != 0 || pa.state != IBV_PORT_ACTIVE)
                    continue;
                ok = 1;
                if (found) {
                    snprintf(found->dev, sizeof(found->dev), "%s",
                             ibv_get_device_name(list[i]));
                    found->port = port;
                }
            }
        }
        ibv_close_device(ctx);
    }
    if (!ok)
        snprintf(why, why_len, "%d RDMA device(s), %d could be opened, none has an active port",
                 n, opened);
    ibv_free_device_list(list);
    return ok;
#else
    (void)found;
    snprintf(why, why_len, "this build has no verbs transport (libibverbs-dev was missing when "
                           "it was configured)");
    return 0;
#endif
}

void rdt_test_require_rdma(const char *test, rdt_test_rdma_t *found)
{
    const char *req = getenv("RDT_TEST_REQUIRE_RDMA");
    char why[160];

    if (rdt_test_rdma_probe(found, why, sizeof(why)))
        return;
    if (req && req[0] && strcmp(req, "0") != 0) {
        fprintf(stderr, "%s: FAILED: RDT_TEST_REQUIRE_RDMA=%s but %s; this test needs an RDMA "
                        "device here and must not be skipped\n", test, req, why);
        exit(1);
    }
    printf("%s: SKIPPED: %s (run through tools/softroce.sh; RDT_TEST_REQUIRE_RDMA=1 makes this "
           "a failure)\n", test, why);
    fflush(stdout);
    exit(RDT_TEST_EXIT_SKIP);
}

float *rdt_test_load_floats(const char *dir, const char *name, size_t *n_p)
{
    char path[512];
    struct stat st;
    float *p;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size % 4, 0);
    *n_p = (size_t)st.st_size / 4;
    p = malloc((size_t)st.st_size + 1);
    assert_non_null(p);
    f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(p, 4, *n_p, f), *n_p);
    fclose(f);
    return p;
}

double rdt_test_max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}
