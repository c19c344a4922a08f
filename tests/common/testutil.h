/* testutil.h - helpers shared by the cmocka tests. */
#ifndef RDT_TESTUTIL_H
#define RDT_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "sched.h"

/* Deterministic pseudo-random numbers (splitmix64), so a failing case can be replayed. */
uint64_t rdt_test_rand(uint64_t *state);

/* Replay (coll, algo) on p ranks in the simulator; fail the cmocka test with its sentence if any
 * check fails. */
void rdt_test_sim_expect_ok(rdt_coll_t coll, rdt_algo_t algo, int p, int root, size_t count,
                            size_t slice, rdt_dtype_t dtype, rdt_op_t op, int in_place);

#endif
