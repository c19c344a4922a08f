/* rdt-test-labels: slow */
/*
 * test_sched_large.c - the halving/doubling builders replayed at 1,024 ranks and every algorithm
 * priced at 4,096 ranks: about 30 s under sanitizers, too slow for the quick unit run;
 * test_sched.c covers 1..33, 64, 127, 128 and 1,000 ranks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>

#include "sched.h"
#include "testutil.h"

static const rdt_cost_params_t test_cost = {5e-6, 2.5e-10, 1e-10};

static void test_power_of_two_1024_ranks_is_correct_for_the_halving_algorithms(void **state)
{
    (void)state;
    rdt_test_sim_expect_ok(RDT_COLL_ALLREDUCE, RDT_ALGO_RABENSEIFNER, 1024, 0, 3000, 0, RDT_FLOAT64,
                           RDT_AVG, 1);
    rdt_test_sim_expect_ok(RDT_COLL_ALLREDUCE, RDT_ALGO_RECDBL, 1024, 0, 50, 0, RDT_BFLOAT16,
                           RDT_SUM, 1);
    rdt_test_sim_expect_ok(RDT_COLL_REDUCE_SCATTER, RDT_ALGO_RABENSEIFNER, 1024, 0, 1, 0, RDT_INT32,
                           RDT_SUM, 1);
    rdt_test_sim_expect_ok(RDT_COLL_ALLGATHER, RDT_ALGO_RECDBL, 1024, 0, 1, 0, RDT_UINT8, RDT_SUM,
                           0);
    rdt_test_sim_expect_ok(RDT_COLL_ALLTOALL, RDT_ALGO_PAIRWISE, 1024, 0, 1, 0, RDT_INT32, RDT_SUM,
                           1);
}

/* Pricing at 4,096 ranks: every algorithm, a latency-bound and a bandwidth-bound size. The
 * price must be finite, at least the lower bound, and the closed form must track it. */
static void test_every_algorithm_prices_4096_ranks(void **state)
{
    static const size_t sizes[] = {8, 64u << 20};
    int c, a;
    unsigned si;

    (void)state;
    for (c = 0; c < RDT_COLL_COUNT; c++) {
        for (a = 0; a < RDT_ALGO_COUNT; a++) {
            if (!rdt_sched_supported((rdt_coll_t)c, (rdt_algo_t)a))
                continue;
            for (si = 0; si < 2; si++) {
                double pr = rdt_sim_price(c, a, 4096, sizes[si], &test_cost);
                double lb = rdt_cost_lower_bound(c, 4096, sizes[si], &test_cost);
                double cf = rdt_cost_model(c, a, 4096, sizes[si], &test_cost);
                if (!(isfinite(pr) && pr > 0 && lb <= pr * (1 + 1e-12) && cf >= 0.67 * pr &&
                      cf <= 1.5 * pr))
                    fail_msg("%s %s on 4096 ranks, %zu bytes: price %g, bound %g, closed form "
                             "%g",
                             rdt_algo_name(a), rdt_coll_name(c), sizes[si], pr, lb, cf);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_power_of_two_1024_ranks_is_correct_for_the_halving_algorithms),
        cmocka_unit_test(test_every_algorithm_prices_4096_ranks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
