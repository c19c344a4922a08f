/* testutil.h - helpers shared by the cmocka tests. */
#ifndef RDT_TESTUTIL_H
#define RDT_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "rdmatrain.h"
#include "sched.h"

/* In a rank: the communicator from the environment, or exit 3 with the reason on stderr. */
rdt_comm_t *rdt_test_create_or_die(void);

/* A rank's last words: 1 (and a line on stderr) if LeakSanitizer finds a leak; 0 without
 * AddressSanitizer. */
int rdt_test_leaks(int rank);

/* Lines of this process's /proc/self/maps that contain @p needle (e.g. "/memfd:rdt-shm" for
 * pieces of shm segments, "/memfd:rdt-mem." for rdt_mem_alloc memory); -1 if it cannot be read. */
int rdt_test_maps_count(const char *needle);

/* @p bytes of zero-filled memory: from rdt_mem_alloc if @p mapped (peers on this host can map
 * it: direct collectives), else calloc; NULL (and a line on stderr) on failure. Freed with
 * rdt_test_free(p, the same @p mapped), which returns 0, or -1 with a line on stderr. */
void *rdt_test_alloc(size_t bytes, int mapped);
int rdt_test_free(void *p, int mapped);

/* How many of @p comm's collectives so far ran direct (every rank's buffers rdt_mem_alloc
 * memory), staged (large allreduces through the share areas otherwise) and allreduces run as
 * one-shot exchanges above RDT_SHM_ONESHOT (RDT_SHM_ONESHOT_ALLREDUCE, with or without the
 * direct offers): engine counters, so a test can tell which path its calls took. */
void rdt_test_comm_paths(const rdt_comm_t *comm, uint64_t *direct, uint64_t *staged,
                         uint64_t *oneshot);
/* How many allreduces the offers sent to their schedule in one slice (every rank in place, below
 * twice RDT_SHM_STAGED, not oversubscribed: exec.c's staged_inplace_schedule). */
uint64_t rdt_test_comm_one_slice(const rdt_comm_t *comm);
/* How many waits slept at once because this rank's core was found shared with another busy
 * thread or process (exec.c's contended_sample). */
uint64_t rdt_test_comm_contended_waits(const rdt_comm_t *comm);

/* Deterministic pseudo-random numbers (splitmix64), so a failing case can be replayed. */
uint64_t rdt_test_rand(uint64_t *state);

/* Replay (coll, algo) on p ranks in the simulator; fail the cmocka test with its sentence if any
 * check fails. */
void rdt_test_sim_expect_ok(rdt_coll_t coll, rdt_algo_t algo, int p, int root, size_t count,
                            size_t slice, rdt_dtype_t dtype, rdt_op_t op, int in_place);

/* The float32 values of file @p dir/@p name (a raw array, as rdmatrain train --save-params
 * writes it), malloc'ed; *n_p their count. Fails the cmocka test if it cannot be read. */
float *rdt_test_load_floats(const char *dir, const char *name, size_t *n_p);

/* Largest |a[i] - b[i]|; a NaN on either side counts as infinitely far. */
double rdt_test_max_diff(const float *a, const float *b, size_t n);

/*
 * RDMA device, one rule for every test of the `softroce` label.
 *
 * A test that needs an RDMA device calls rdt_test_require_rdma() at the top of main(). Without a
 * device with an active port (or in a build without the verbs transport) it exits with
 * RDT_TEST_EXIT_SKIP, which tests/CMakeLists.txt declares as the test's SKIP_RETURN_CODE, so
 * ctest reports it as skipped, never as passed. With RDT_TEST_REQUIRE_RDMA=1 in the environment
 * (CI sets it inside the SoftRoCE VM), a missing device is a failure instead (exit 1), with a
 * message saying so.
 */
#define RDT_TEST_EXIT_SKIP 77

typedef struct rdt_test_rdma {
    char dev[64]; /* the first device with an active port ("rxe0") */
    int port;     /* its first active port */
} rdt_test_rdma_t;

/* 1 and *found filled when some RDMA device has an active port; else 0 and a reason in why[]. */
int rdt_test_rdma_probe(rdt_test_rdma_t *found, char *why, size_t why_len);

/* Return when a device exists (filling *found if not NULL), else exit as described above.
 * @p test names the caller in the message. */
void rdt_test_require_rdma(const char *test, rdt_test_rdma_t *found);

#endif
