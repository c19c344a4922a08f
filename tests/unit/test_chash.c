/*
 * test_chash.c - the consistent-hash ring of the parameter-server mode (trainer/chash.c): a
 * pinned hash (every rank and every build must place keys alike), lookups at the ring's edges,
 * the spread of keys, and how few keys move when a server comes or goes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chash.h"

#define NKEYS 10000

static uint64_t key_hash(int i)
{
    char key[32];

    snprintf(key, sizeof(key), "k%d", i);
    return rdt_chash_key(key);
}

/* Owner of every key "k<i>" on a ring of @p ids. */
static void owners(const int *ids, int n, int vnodes, int *owner)
{
    rdt_chash_t c;
    int i;

    assert_int_equal(rdt_chash_init(&c, ids, n, vnodes), 0);
    for (i = 0; i < NKEYS; i++)
        owner[i] = rdt_chash_lookup(&c, key_hash(i));
    rdt_chash_free(&c);
}

static void test_hash_is_fnv1a_then_fmix64_and_pinned(void **state)
{
    /* Computed from the definitions outside this code (FNV-1a 64, then murmur3's fmix64). */
    assert_true(rdt_chash_hash("", 0) == 0xefd01f60ba992926ULL);
    assert_true(rdt_chash_key("layer1.w.3") == 0x99083abdac35b7a9ULL);
    assert_true(rdt_chash_hash("server:0#0", 10) == 0x12552bed8df7b74bULL);
    assert_true(rdt_chash_hash("layer1.w.3xyz", 10) == rdt_chash_key("layer1.w.3"));
}

static void test_points_are_sorted_and_counted(void **state)
{
    const int ids[] = {5, 1, 9};
    rdt_chash_t c;
    int count[10] = {0};
    size_t i;

    assert_int_equal(rdt_chash_init(&c, ids, 3, 50), 0);
    assert_int_equal(c.nservers, 3);
    assert_int_equal(c.vnodes, 50);
    assert_int_equal(c.npoints, 150);
    for (i = 0; i < c.npoints; i++) {
        if (i > 0)
            assert_true(c.points[i - 1].hash < c.points[i].hash ||
                        (c.points[i - 1].hash == c.points[i].hash &&
                         c.points[i - 1].server < c.points[i].server));
        assert_true(c.points[i].server == 5 || c.points[i].server == 1 || c.points[i].server == 9);
        count[c.points[i].server]++;
    }
    assert_int_equal(count[1], 50);
    assert_int_equal(count[5], 50);
    assert_int_equal(count[9], 50);
    rdt_chash_free(&c);
}

static void test_lookup_takes_the_point_at_or_after_and_wraps(void **state)
{
    const int ids[] = {0, 1, 2, 3};
    rdt_chash_t c;
    size_t i, last;

    assert_int_equal(rdt_chash_init(&c, ids, 4, 20), 0);
    last = c.npoints - 1;
    assert_int_equal(rdt_chash_lookup(&c, 0), c.points[0].server);
    assert_int_equal(rdt_chash_lookup(&c, c.points[last].hash + 1), c.points[0].server);
    assert_int_equal(rdt_chash_lookup(&c, UINT64_MAX), c.points[0].server);
    for (i = 0; i < c.npoints; i++) {
        assert_int_equal(rdt_chash_lookup(&c, c.points[i].hash), c.points[i].server);
        if (i > 0 && c.points[i - 1].hash + 1 < c.points[i].hash)
            assert_int_equal(rdt_chash_lookup(&c, c.points[i - 1].hash + 1), c.points[i].server);
    }
    rdt_chash_free(&c);
}

static void test_lookup_is_deterministic_and_lands_on_a_server(void **state)
{
    const int ids[] = {7, 3, 100, -2};
    int *a = malloc(NKEYS * sizeof(int)), *b = malloc(NKEYS * sizeof(int));
    int i;

    assert_non_null(a);
    assert_non_null(b);
    owners(ids, 4, 64, a);
    owners(ids, 4, 64, b);
    for (i = 0; i < NKEYS; i++) {
        assert_int_equal(a[i], b[i]);
        assert_true(a[i] == 7 || a[i] == 3 || a[i] == 100 || a[i] == -2);
    }
    free(a);
    free(b);
}

static void test_four_servers_share_keys_within_a_quarter_of_even(void **state)
{
    const int ids[] = {0, 1, 2, 3};
    int *o = malloc(NKEYS * sizeof(int)), count[4] = {0};
    int i;

    assert_non_null(o);
    owners(ids, 4, 200, o);
    for (i = 0; i < NKEYS; i++)
        count[o[i]]++;
    for (i = 0; i < 4; i++) {
        print_message("server %d: %d keys\n", i, count[i]);
        assert_in_range(count[i], NKEYS / 4 * 3 / 4, NKEYS / 4 * 5 / 4);
    }
    free(o);
}

static void test_a_fifth_server_takes_about_a_fifth_and_only_moves_keys_to_itself(void **state)
{
    const int ids[] = {0, 1, 2, 3, 4};
    int *before = malloc(NKEYS * sizeof(int)), *after = malloc(NKEYS * sizeof(int));
    int i, moved = 0;

    assert_non_null(before);
    assert_non_null(after);
    owners(ids, 4, 200, before);
    owners(ids, 5, 200, after);
    for (i = 0; i < NKEYS; i++) {
        if (before[i] != after[i]) {
            assert_int_equal(after[i], 4);
            moved++;
        }
    }
    print_message("moved %d of %d keys\n", moved, NKEYS);
    assert_in_range(moved, NKEYS * 12 / 100, NKEYS * 28 / 100);
    free(before);
    free(after);
}

static void test_removing_a_server_moves_only_its_keys(void **state)
{
    const int all[] = {0, 1, 2, 3}, rest[] = {0, 1, 3};
    int *before = malloc(NKEYS * sizeof(int)), *after = malloc(NKEYS * sizeof(int));
    int i, had = 0;

    assert_non_null(before);
    assert_non_null(after);
    owners(all, 4, 200, before);
    owners(rest, 3, 200, after);
    for (i = 0; i < NKEYS; i++) {
        if (before[i] == 2) {
            assert_int_not_equal(after[i], 2);
            had++;
        } else {
            assert_int_equal(after[i], before[i]);
        }
    }
    assert_true(had > 0);
    free(before);
    free(after);
}

static void test_bad_arguments_are_refused_and_leave_the_ring_alone(void **state)
{
    const int ids[] = {1, 2, 1};
    rdt_chash_point_t sentinel;
    rdt_chash_t c = {42, 42, 42, &sentinel};

    assert_int_equal(rdt_chash_init(&c, ids, 0, 10), -1);
    assert_int_equal(rdt_chash_init(&c, NULL, 2, 10), -1);
    assert_int_equal(rdt_chash_init(&c, ids, 2, 0), -1);
    assert_int_equal(rdt_chash_init(&c, ids, 2, -5), -1);
    assert_int_equal(rdt_chash_init(&c, ids, 2, (1 << 16) + 1), -1);
    assert_int_equal(rdt_chash_init(&c, ids, 3, 10), -1); /* 1 twice */
    assert_int_equal(rdt_chash_init(NULL, ids, 2, 10), -1);
    assert_int_equal(c.nservers, 42);
    assert_ptr_equal(c.points, &sentinel);

    assert_int_equal(rdt_chash_init(&c, ids, 2, 1 << 16), 0); /* the largest vnodes is fine */
    assert_int_equal(c.npoints, 2 << 16);
    rdt_chash_free(&c);
    assert_null(c.points);
    assert_int_equal(rdt_chash_lookup(&c, 123), -1); /* a freed ring owns nothing */
    rdt_chash_free(&c);
    rdt_chash_free(NULL);
}

static void test_a_one_server_ring_owns_everything(void **state)
{
    const int id = 17;
    rdt_chash_t c;
    int i;

    assert_int_equal(rdt_chash_init(&c, &id, 1, 1), 0);
    for (i = 0; i < NKEYS; i++)
        assert_int_equal(rdt_chash_lookup(&c, key_hash(i)), 17);
    assert_int_equal(rdt_chash_lookup(&c, 0), 17);
    assert_int_equal(rdt_chash_lookup(&c, UINT64_MAX), 17);
    rdt_chash_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_is_fnv1a_then_fmix64_and_pinned),
        cmocka_unit_test(test_points_are_sorted_and_counted),
        cmocka_unit_test(test_lookup_takes_the_point_at_or_after_and_wraps),
        cmocka_unit_test(test_lookup_is_deterministic_and_lands_on_a_server),
        cmocka_unit_test(test_four_servers_share_keys_within_a_quarter_of_even),
        cmocka_unit_test(test_a_fifth_server_takes_about_a_fifth_and_only_moves_keys_to_itself),
        cmocka_unit_test(test_removing_a_server_moves_only_its_keys),
        cmocka_unit_test(test_bad_arguments_are_refused_and_leave_the_ring_alone),
        cmocka_unit_test(test_a_one_server_ring_owns_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
