/*
 * test_mapped.c - rdt_mem_alloc's registry and the cache of mapped allocations (engine/mapped.c),
 * in one process: this process's own allocations are mapped a second time through
 * /proc/<pid>/fd, as a peer on the same host maps them, so what is written through one address
 * must be read through the other.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapped.h"
#include "rdmatrain.h"
#include "testutil.h"

#define NALLOC 100 /* more than the cache keeps between calls (64) */

/* Mappings of rdt_mem_alloc memory in this process. */
static int mappings(void)
{
    return rdt_test_maps_count("/memfd:rdt-mem.");
}

static void test_find_describes_a_buffer_inside_an_allocation_only(void **state)
{
    unsigned char *p = NULL, x[8];
    rdt_mapped_desc_t d, e;

    (void)state;
    assert_int_equal(rdt_mem_alloc(10000, (void **)&p), RDT_SUCCESS);
    assert_int_equal(rdt_mapped_find(p + 100, 500, &d), 1);
    assert_int_equal(d.offset, 100);
    assert_true(d.size >= 10000);
    assert_true(d.serial != 0);
    /* the whole (page-rounded) allocation qualifies, one byte more does not */
    assert_int_equal(rdt_mapped_find(p, (size_t)d.size, &e), 1);
    assert_int_equal(rdt_mapped_find(p + 1, (size_t)d.size, &e), 0);
    assert_int_equal(e.serial, 0);
    assert_int_equal(rdt_mapped_find(x, sizeof(x), &e), 0);
    assert_int_equal(rdt_mapped_find(NULL, 0, &e), 0);
    assert_int_equal(rdt_mem_free(p), RDT_SUCCESS);
    assert_int_equal(rdt_mapped_find(p + 100, 500, &e), 0); /* freed: gone from the registry */
}

static void test_mapped_twice_the_memory_is_the_same_and_the_cache_is_bounded(void **state)
{
    unsigned char *p[NALLOC], *q[NALLOC], *extra = NULL;
    rdt_mapped_cache_t *cache = NULL;
    rdt_mapped_desc_t d;
    char err[300];
    int i;

    (void)state;
    for (i = 0; i < NALLOC; i++) {
        assert_int_equal(rdt_mem_alloc(4096 + (size_t)i, (void **)&p[i]), RDT_SUCCESS);
        p[i][i] = (unsigned char)(i + 1);
    }
    /* one call mapping every allocation: none may be unmapped while the call uses it */
    assert_int_equal(rdt_mapped_call(&cache), 0);
    for (i = 0; i < NALLOC; i++) {
        assert_int_equal(rdt_mapped_find(p[i] + i, 1, &d), 1);
        q[i] = rdt_mapped_peer(&cache, 1, &d, err, sizeof(err));
        if (!q[i])
            fail_msg("allocation %d: %s", i, err);
        assert_ptr_not_equal(q[i], p[i] + i); /* a second mapping, not the same address */
    }
    for (i = 0; i < NALLOC; i++) {
        assert_int_equal(q[i][0], (unsigned char)(i + 1)); /* still mapped, same memory */
        q[i][0] = (unsigned char)(200 - i);
        assert_int_equal(p[i][i], (unsigned char)(200 - i));
    }
    assert_int_equal(mappings(), 2 * NALLOC);
    /* the next call reuses what it finds and unmaps the least recently used beyond 64 */
    assert_int_equal(rdt_mapped_call(&cache), 0);
    assert_int_equal(rdt_mapped_find(p[NALLOC - 1], 1, &d), 1);
    assert_ptr_equal(rdt_mapped_peer(&cache, 1, &d, err, sizeof(err)),
                     q[NALLOC - 1] - (NALLOC - 1));
    assert_int_equal(rdt_mem_alloc(4096, (void **)&extra), RDT_SUCCESS);
    assert_int_equal(rdt_mapped_find(extra, 1, &d), 1);
    assert_non_null(rdt_mapped_peer(&cache, 1, &d, err, sizeof(err))); /* a miss: one goes */
    assert_int_equal(mappings(), 2 * NALLOC + 1);
    assert_int_equal(rdt_mem_free(extra), RDT_SUCCESS);
    for (i = 0; i < NALLOC; i++)
        assert_int_equal(rdt_mem_free(p[i]), RDT_SUCCESS);
    assert_int_equal(mappings(), NALLOC); /* the cache's: freed memory stays mapped there */
    rdt_mapped_cache_free(cache);
    assert_int_equal(mappings(), 0);
}

static void test_a_descriptor_naming_another_file_is_refused(void **state)
{
    unsigned char *p = NULL;
    rdt_mapped_cache_t *cache = NULL;
    rdt_mapped_desc_t d;
    char err[300];

    (void)state;
    assert_int_equal(rdt_mem_alloc(8192, (void **)&p), RDT_SUCCESS);
    assert_int_equal(rdt_mapped_find(p, 8192, &d), 1);
    assert_int_equal(rdt_mapped_call(&cache), 0);
    d.serial += 1000; /* the descriptor's file is another allocation's (or a reused number) */
    assert_null(rdt_mapped_peer(&cache, 1, &d, err, sizeof(err)));
    assert_non_null(strstr(err, "is not the allocation it announced"));
    d.serial -= 1000;
    d.size += 4096; /* a size that does not match */
    assert_null(rdt_mapped_peer(&cache, 1, &d, err, sizeof(err)));
    d.size -= 4096;
    d.fd = 100000; /* no such descriptor */
    assert_null(rdt_mapped_peer(&cache, 1, &d, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot open /proc/"));
    rdt_mapped_cache_free(cache);
    assert_int_equal(rdt_mem_free(p), RDT_SUCCESS);
    assert_int_equal(mappings(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_describes_a_buffer_inside_an_allocation_only),
        cmocka_unit_test(test_mapped_twice_the_memory_is_the_same_and_the_cache_is_bounded),
        cmocka_unit_test(test_a_descriptor_naming_another_file_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
