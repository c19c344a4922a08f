/* testutil.h - helpers shared by the cmocka tests. */
#ifndef RDT_TESTUTIL_H
#define RDT_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Deterministic pseudo-random numbers (splitmix64), so a failing case can be replayed. */
uint64_t rdt_test_rand(uint64_t *state);

#endif
