/* testutil.c - see testutil.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testutil.h"

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
