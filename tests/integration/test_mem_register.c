/*
 * test_mem_register.c - explicit registration of user buffers (rdt_mem_register,
 * rdt_mem_deregister) between real processes.
 *
 * Two ranks register their send and receive buffers, run allreduce and allgather of 8 MiB + 5
 * bytes several times in place and out of place, deregister, and run them again on the
 * unregistered path. Every result is compared byte for byte with a reference computed here by
 * plain loops; the send buffer must come back unchanged and nothing may be written past the
 * result. Two ctest entries (tests/CMakeLists.txt):
 *   test_mem_register          loopback TCP (registration is bookkeeping there), default suite
 *   test_mem_register --verbs  RDT_TRANSPORT=verbs (large messages go zero-copy), label
 *                              softroce; exit 77 without an RDMA device, a failure instead under
 *                              RDT_TEST_REQUIRE_RDMA=1 (rdt_test_require_rdma(), testutil.h)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdmatrain.h"
#include "spawn.h"
#include "testutil.h"

#define MR_SPAWN_TIMEOUT_S 300
#define MR_BYTES           ((8u << 20) + 5) /* per rank: odd on purpose */
#define MR_POISON          0xa5

/* Byte i of rank r's input in round k. */
static uint8_t mr_value(int r, size_t i, int k)
{
    return (uint8_t)((i * 131u + (size_t)r * 17u + (size_t)k * 29u) ^ (i >> 9));
}

static void mr_fill(uint8_t *buf, int r, int k)
{
    size_t i;
    for (i = 0; i < MR_BYTES; i++)
        buf[i] = mr_value(r, i, k);
}

/* 0 if buf[0..MR_BYTES) is rank r's input of round k; else prints what and returns 1. */
static int mr_check_input(const uint8_t *buf, int r, int k, int me, const char *what)
{
    size_t i;
    for (i = 0; i < MR_BYTES; i++) {
        if (buf[i] != mr_value(r, i, k)) {
            fprintf(stderr, "rank %d: %s: byte %zu is %02x, expected %02x (rank %d's input)\n",
                    me, what, i, buf[i], mr_value(r, i, k), r);
            return 1;
        }
    }
    return 0;
}

static int mr_check_sum(const uint8_t *buf, int p, int k, int me, const char *what)
{
    size_t i;
    int q;
    for (i = 0; i < MR_BYTES; i++) {
        uint8_t want = 0;
        for (q = 0; q < p; q++)
            want = (uint8_t)(want + mr_value(q, i, k)); /* uint8 sum wraps */
        if (buf[i] != want) {
            fprintf(stderr, "rank %d: %s: byte %zu is %02x, expected %02x\n", me, what, i, buf[i],
                    want);
            return 1;
        }
    }
    return 0;
}

static int mr_check_poison(const uint8_t *buf, size_t from, size_t to, int me, const char *what)
{
    size_t i;
    for (i = from; i < to; i++) {
        if (buf[i] != MR_POISON) {
            fprintf(stderr, "rank %d: %s: byte %zu outside the result was written\n", me, what,
                    i);
            return 1;
        }
    }
    return 0;
}

static int mr_call(rdt_comm_t *comm, rdt_status_t st, const char *what)
{
    if (st == RDT_SUCCESS)
        return 0;
    fprintf(stderr, "rank %d: %s: %s: %s\n", rdt_comm_rank(comm), what, rdt_status_str(st),
            rdt_comm_last_error(comm));
    return 1;
}

/* One round: allreduce and allgather, out of place and in place, on sbuf (MR_BYTES) and rbuf
 * (p * MR_BYTES). */
static int mr_round(rdt_comm_t *comm, uint8_t *sbuf, uint8_t *rbuf, int k, const char *path)
{
    int r = rdt_comm_rank(comm), p = rdt_comm_size(comm), q, bad = 0;
    size_t total = (size_t)p * MR_BYTES;
    char what[96];

    snprintf(what, sizeof(what), "allreduce out of place, round %d, %s", k, path);
    mr_fill(sbuf, r, k);
    memset(rbuf, MR_POISON, total);
    if (mr_call(comm, rdt_allreduce(comm, sbuf, rbuf, MR_BYTES, RDT_UINT8, RDT_SUM), what))
        return 1;
    bad |= mr_check_sum(rbuf, p, k, r, what);
    bad |= mr_check_poison(rbuf, MR_BYTES, total, r, what);
    bad |= mr_check_input(sbuf, r, k, r, "send buffer after allreduce");

    snprintf(what, sizeof(what), "allreduce in place, round %d, %s", k, path);
    memset(rbuf, MR_POISON, total);
    mr_fill(rbuf, r, k + 1000);
    if (mr_call(comm, rdt_allreduce(comm, rbuf, rbuf, MR_BYTES, RDT_UINT8, RDT_SUM), what))
        return 1;
    bad |= mr_check_sum(rbuf, p, k + 1000, r, what);
    bad |= mr_check_poison(rbuf, MR_BYTES, total, r, what);

    snprintf(what, sizeof(what), "allgather out of place, round %d, %s", k, path);
    mr_fill(sbuf, r, k + 2000);
    memset(rbuf, MR_POISON, total);
    if (mr_call(comm, rdt_allgather(comm, sbuf, rbuf, MR_BYTES, RDT_UINT8), what))
        return 1;
    for (q = 0; q < p; q++)
        bad |= mr_check_input(rbuf + (size_t)q * MR_BYTES, q, k + 2000, r, what);
    bad |= mr_check_input(sbuf, r, k + 2000, r, "send buffer after allgather");

    snprintf(what, sizeof(what), "allgather in place, round %d, %s", k, path);
    memset(rbuf, MR_POISON, total);
    mr_fill(rbuf + (size_t)r * MR_BYTES, r, k + 3000);
    if (mr_call(comm,
                rdt_allgather(comm, rbuf + (size_t)r * MR_BYTES, rbuf, MR_BYTES, RDT_UINT8),
                what))
        return 1;
    for (q = 0; q < p; q++)
        bad |= mr_check_input(rbuf + (size_t)q * MR_BYTES, q, k + 3000, r, what);
    return bad;
}

static int body_register(int rank, int nranks, void *arg)
{
    rdt_comm_t *comm = NULL;
    rdt_mem_t *hs = NULL, *hr = NULL;
    uint8_t *sbuf = malloc(MR_BYTES), *rbuf = malloc((size_t)nranks * MR_BYTES);
    rdt_status_t st;
    int bad = 0, k;

    setenv("RDT_TIMEOUT", "120", 1);
    if (!sbuf || !rbuf)
        return 4;
    st = rdt_comm_create_from_env(&comm);
    if (st != RDT_SUCCESS) {
        fprintf(stderr, "rank %d: create: %s: %s\n", rank, rdt_status_str(st),
                rdt_comm_last_error(NULL));
        return 3;
    }
    st = rdt_mem_deregister(comm, NULL);
    if (st != RDT_ERR_INVALID_ARG || !rdt_comm_last_error(comm)[0]) {
        fprintf(stderr, "rank %d: rdt_mem_deregister(NULL) gave %s, expected %s with a message\n",
                rank, rdt_status_str(st), rdt_status_str(RDT_ERR_INVALID_ARG));
        bad = 1;
    }
    if (mr_call(comm, rdt_mem_register(comm, sbuf, MR_BYTES, &hs), "register the send buffer") ||
        mr_call(comm, rdt_mem_register(comm, rbuf, (size_t)nranks * MR_BYTES, &hr),
                "register the receive buffer"))
        return 1;
    if (!hs || !hr || hs == hr) {
        fprintf(stderr, "rank %d: rdt_mem_register gave handles %p and %p\n", rank, (void *)hs,
                (void *)hr);
        return 1;
    }
    for (k = 0; k < 3 && !bad; k++)
        bad |= mr_round(comm, sbuf, rbuf, k, "registered");
    if (mr_call(comm, rdt_mem_deregister(comm, hs), "deregister the send buffer") ||
        mr_call(comm, rdt_mem_deregister(comm, hr), "deregister the receive buffer"))
        return 1;
    for (k = 3; k < 5 && !bad; k++)
        bad |= mr_round(comm, sbuf, rbuf, k, "deregistered");
    rdt_comm_destroy(comm);
    free(sbuf);
    free(rbuf);
    return bad;
}

static void test_registered_buffers_give_exact_results_and_deregistering_keeps_them_exact(
    void **state)
{
    int st[2], rc;

    rc = rdt_spawn_local(2, body_register, NULL, MR_SPAWN_TIMEOUT_S, st);
    if (rc != 0)
        fprintf(stderr, "ranks exited with %d and %d\n", st[0], st[1]);
    assert_int_equal(rc, 0);
}

int main(int argc, char **argv)
{
    int verbs = argc == 2 && strcmp(argv[1], "--verbs") == 0;

    if (argc > 1 && !verbs) {
        fprintf(stderr, "usage: test_mem_register [--verbs]\n");
        return 2;
    }
    if (verbs)
        rdt_test_require_rdma("test_mem_register --verbs", NULL); /* no device: 77, or 1 */
    /* the ranks inherit the transport: verbs or an error, never a silent fallback */
    setenv("RDT_TRANSPORT", verbs ? "verbs" : "tcp", 1);
    {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(
                test_registered_buffers_give_exact_results_and_deregistering_keeps_them_exact),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
    }
}
