/*
 * test_topo.c - topo/: grouping ranks by host name, the spec and text descriptions with their
 * errors, the writers, hwloc discovery of this machine, XML loading (exported from this machine,
 * and a hand-written two-socket host with RDMA devices), and RDT_BIND in child processes.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "topo.h"

/* nranks names of RDT_TOPO_NAME_MAX bytes, as the bootstrap gathers them */
static char *name_table(int nranks, const char *const *names)
{
    char *tab = calloc((size_t)nranks, RDT_TOPO_NAME_MAX);
    int r;

    assert_non_null(tab);
    for (r = 0; r < nranks; r++)
        snprintf(tab + (size_t)r * RDT_TOPO_NAME_MAX, RDT_TOPO_NAME_MAX, "%s", names[r]);
    return tab;
}

static rdt_topo_t *group(int nranks, const char *const *names)
{
    char *tab = name_table(nranks, names);
    rdt_topo_t *t = NULL;
    char err[256] = "";

    assert_int_equal(
        rdt_topo_from_hosts(nranks, tab, RDT_TOPO_NAME_MAX, NULL, &t, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    free(tab);
    return t;
}

static void expect_ints(const int *got, const int *want, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if (got[i] != want[i])
            fail_msg("element %d: got %d, want %d", i, got[i], want[i]);
    }
}

/* Invariants every topology must satisfy, checked from the arrays alone. */
static void check_consistent(const rdt_topo_t *t)
{
    int r, h, sum = 0, maxl = 0;

    for (h = 0; h < t->nhosts; h++) {
        assert_true(t->local_size[h] >= 1);
        assert_int_equal(t->host_first[h], sum);
        sum += t->local_size[h];
        maxl = t->local_size[h] > maxl ? t->local_size[h] : maxl;
        /* hosts numbered in order of their lowest rank */
        if (h > 0)
            assert_true(t->host_ranks[t->host_first[h]] > t->host_ranks[t->host_first[h - 1]]);
    }
    assert_int_equal(sum, t->nranks);
    assert_int_equal(maxl, t->max_local_size);
    for (r = 0; r < t->nranks; r++) {
        h = t->host_of[r];
        assert_true(h >= 0 && h < t->nhosts);
        assert_int_equal(t->host_ranks[t->host_first[h] + t->local_rank[r]], r);
        assert_true(t->numa_of[r] >= -1 && t->numa_of[r] < (t->nnuma[h] ? t->nnuma[h] : 0));
        assert_true(t->nic_of[r] >= -1 && t->nic_of[r] < (t->nnics[h] ? t->nnics[h] : 0));
    }
}

/* ---------------------------------------------------------------------------------------------
 * Grouping by host name.
 * ------------------------------------------------------------------------------------------- */

static void test_eight_hosts_of_eight_ranks_group_in_rank_order(void **state)
{
    const char *names[64];
    char buf[64][16];
    rdt_topo_t *t;
    int r, h;

    for (r = 0; r < 64; r++) {
        snprintf(buf[r], sizeof(buf[r]), "node%02d", 7 - r / 8); /* names sort backwards */
        names[r] = buf[r];
    }
    t = group(64, names);
    assert_int_equal(t->nranks, 64);
    assert_int_equal(t->nhosts, 8);
    assert_int_equal(t->max_local_size, 8);
    for (r = 0; r < 64; r++) {
        assert_int_equal(t->host_of[r], r / 8);
        assert_int_equal(t->local_rank[r], r % 8);
        assert_int_equal(t->numa_of[r], -1);
        assert_int_equal(t->nic_of[r], -1);
        assert_int_equal(t->host_ranks[r], r);
    }
    for (h = 0; h < 8; h++) {
        char want[16];
        snprintf(want, sizeof(want), "node%02d", 7 - h);
        assert_string_equal(t->host_name[h], want);
        assert_int_equal(t->local_size[h], 8);
        assert_int_equal(t->host_first[h], 8 * h);
        assert_int_equal(t->nnuma[h], 0);
        assert_int_equal(t->nnics[h], 0);
    }
    check_consistent(t);
    rdt_topo_destroy(t);
}

static void test_uneven_three_one_four(void **state)
{
    const char *names[] = {"a", "a", "a", "b", "c", "c", "c", "c"};
    const int host_of[] = {0, 0, 0, 1, 2, 2, 2, 2}, local[] = {0, 1, 2, 0, 0, 1, 2, 3};
    const int size[] = {3, 1, 4}, first[] = {0, 3, 4};
    rdt_topo_t *t = group(8, names);

    assert_int_equal(t->nhosts, 3);
    expect_ints(t->host_of, host_of, 8);
    expect_ints(t->local_rank, local, 8);
    expect_ints(t->local_size, size, 3);
    expect_ints(t->host_first, first, 3);
    assert_int_equal(t->max_local_size, 4);
    check_consistent(t);
    rdt_topo_destroy(t);
}

static void test_one_rank_is_one_host(void **state)
{
    const char *names[] = {"solo"};
    rdt_topo_t *t = group(1, names);

    assert_int_equal(t->nranks, 1);
    assert_int_equal(t->nhosts, 1);
    assert_int_equal(t->host_of[0], 0);
    assert_int_equal(t->local_rank[0], 0);
    assert_int_equal(t->local_size[0], 1);
    assert_string_equal(t->host_name[0], "solo");
    check_consistent(t);
    rdt_topo_destroy(t);
}

static void test_interleaved_hosts_keep_global_rank_order_within_a_host(void **state)
{
    /* "zeta" sorts after "alpha" but holds rank 0: it is host 0 */
    const char *names[] = {"zeta", "alpha", "zeta", "alpha", "mid", "zeta"};
    const int host_of[] = {0, 1, 0, 1, 2, 0}, local[] = {0, 0, 1, 1, 0, 2};
    const int grouped[] = {0, 2, 5, 1, 3, 4}, size[] = {3, 2, 1};
    rdt_topo_t *t = group(6, names);

    assert_int_equal(t->nhosts, 3);
    expect_ints(t->host_of, host_of, 6);
    expect_ints(t->local_rank, local, 6);
    expect_ints(t->host_ranks, grouped, 6);
    expect_ints(t->local_size, size, 3);
    assert_string_equal(t->host_name[0], "zeta");
    assert_string_equal(t->host_name[1], "alpha");
    assert_string_equal(t->host_name[2], "mid");
    check_consistent(t);
    rdt_topo_destroy(t);
}

static void test_numa_and_nic_per_rank_are_carried(void **state)
{
    const char *names[] = {"h0", "h1", "h0", "h1"};
    const rdt_topo_loc_t loc[] = {{1, 2, 0, 2}, {0, 1, -1, 0}, {0, 2, 1, 2}, {-1, 1, -1, 0}};
    const int numa[] = {1, 0, 0, -1}, nic[] = {0, -1, 1, -1};
    char *tab = name_table(4, names);
    rdt_topo_t *t = NULL;
    char err[256] = "";

    assert_int_equal(rdt_topo_from_hosts(4, tab, RDT_TOPO_NAME_MAX, loc, &t, err, sizeof(err)), 0);
    expect_ints(t->numa_of, numa, 4);
    expect_ints(t->nic_of, nic, 4);
    assert_int_equal(t->nnuma[0], 2);
    assert_int_equal(t->nnics[0], 2);
    assert_int_equal(t->nnuma[1], 1);
    assert_int_equal(t->nnics[1], 0);
    check_consistent(t);
    rdt_topo_destroy(t);
    free(tab);
}

static void expect_hosts_error(int nranks, const char *tab, size_t stride,
                               const rdt_topo_loc_t *loc, const char *want)
{
    rdt_topo_t *t = (rdt_topo_t *)&t;
    char err[512] = "";

    assert_int_equal(rdt_topo_from_hosts(nranks, tab, stride, loc, &t, err, sizeof(err)), -1);
    assert_string_equal(err, want);
    assert_ptr_equal(t, (rdt_topo_t *)&t); /* untouched */
}

static void test_bad_host_tables_are_refused_with_the_rank(void **state)
{
    const char *names[] = {"h0", "", "h0"};
    const char *same[] = {"h0", "h1", "h0"};
    char *tab = name_table(3, names), *ok = name_table(3, same);
    rdt_topo_loc_t loc[3] = {{0, 2, 0, 1}, {0, 1, 0, 1}, {0, 1, 0, 1}};
    char unterminated[2 * 8];

    expect_hosts_error(3, tab, RDT_TOPO_NAME_MAX, NULL, "rank 1: empty host name");
    memset(unterminated, 'x', sizeof(unterminated));
    unterminated[7] = '\0';
    expect_hosts_error(2, unterminated, 8, NULL,
                       "rank 1: host name is not terminated within 8 bytes");
    expect_hosts_error(3, ok, RDT_TOPO_NAME_MAX, loc,
                       "ranks 0 and 2 both report host 'h0' but see 2 and 1 NUMA nodes, 1 and 1 "
                       "NICs: two machines with one name? (set RDT_HOSTNAME to tell them apart)");
    loc[0].nnuma = 1;
    loc[2].numa = 1;
    expect_hosts_error(3, ok, RDT_TOPO_NAME_MAX, loc,
                       "rank 2 reports NUMA node 1 but its host has 1 NUMA nodes");
    loc[2].numa = 0;
    loc[1].nic = 0;
    loc[1].nnics = 0;
    expect_hosts_error(3, ok, RDT_TOPO_NAME_MAX, loc,
                       "rank 1 reports NIC 0 but its host has 0 NICs (unknown or none: the NIC "
                       "must be -1)");
    expect_hosts_error(0, ok, RDT_TOPO_NAME_MAX, NULL, "bad rank count 0 (1 to 4194304)");
    expect_hosts_error(3, NULL, RDT_TOPO_NAME_MAX, NULL,
                       "bad host table: NULL, stride 64 (1 to 64)");
    expect_hosts_error(3, ok, 65, NULL, "bad host table: given, stride 65 (1 to 64)");
    free(tab);
    free(ok);
}

/* ---------------------------------------------------------------------------------------------
 * Specs.
 * ------------------------------------------------------------------------------------------- */

static rdt_topo_t *spec(const char *s)
{
    rdt_topo_t *t = NULL;
    char err[256] = "";

    if (rdt_topo_from_spec(s, &t, err, sizeof(err)) != 0)
        fail_msg("spec '%s' refused: %s", s, err);
    check_consistent(t);
    return t;
}

static void test_spec_shapes(void **state)
{
    rdt_topo_t *t;
    int r;

    t = spec("8x8");
    assert_int_equal(t->nranks, 64);
    assert_int_equal(t->nhosts, 8);
    for (r = 0; r < 64; r++) {
        assert_int_equal(t->host_of[r], r / 8);
        assert_int_equal(t->local_rank[r], r % 8);
        assert_int_equal(t->numa_of[r], -1);
        assert_int_equal(t->nic_of[r], -1);
    }
    assert_string_equal(t->host_name[7], "h7");
    rdt_topo_destroy(t);

    t = spec("4,2,3");
    {
        const int size[] = {4, 2, 3}, host_of[] = {0, 0, 0, 0, 1, 1, 2, 2, 2};
        assert_int_equal(t->nranks, 9);
        expect_ints(t->local_size, size, 3);
        expect_ints(t->host_of, host_of, 9);
    }
    rdt_topo_destroy(t);

    t = spec("2x4:numa2:nic2");
    {
        const int numa[] = {0, 0, 1, 1, 0, 0, 1, 1};
        expect_ints(t->numa_of, numa, 8);
        expect_ints(t->nic_of, numa, 8); /* NIC i on NUMA node i */
        assert_int_equal(t->nnuma[1], 2);
        assert_int_equal(t->nnics[1], 2);
    }
    rdt_topo_destroy(t);

    t = spec("1");
    assert_int_equal(t->nranks, 1);
    assert_int_equal(t->nhosts, 1);
    rdt_topo_destroy(t);

    /* 3 ranks over 2 NUMA nodes, 4 NICs: floor(l*2/3) and floor(l*4/3) */
    t = spec("3:nics4:numa2");
    {
        const int numa[] = {0, 0, 1}, nic[] = {0, 1, 2};
        expect_ints(t->numa_of, numa, 3);
        expect_ints(t->nic_of, nic, 3);
    }
    rdt_topo_destroy(t);
}

static void expect_spec_error(const char *s, const char *want)
{
    rdt_topo_t *t = (rdt_topo_t *)&t;
    char err[256] = "";

    assert_int_equal(rdt_topo_from_spec(s, &t, err, sizeof(err)), -1);
    assert_string_equal(err, want);
    assert_ptr_equal(t, (rdt_topo_t *)&t);
}

static void test_spec_errors_name_the_column(void **state)
{
    expect_spec_error("", "spec:1:1: empty spec (e.g. 8x8, 4,2,3 or 2x4:numa2:nic2)");
    expect_spec_error("x8", "spec:1:1: expected a number of ranks or hosts, got 'x8'");
    expect_spec_error("8x", "spec:1:3: expected a number of ranks, got ''");
    expect_spec_error("4,,2", "spec:1:3: expected a number of ranks, got ''");
    expect_spec_error("2x3x4", "spec:1:4: expected ':' or the end after '3', got 'x'");
    expect_spec_error("4,2x3", "spec:1:4: expected ',' ':' or the end after '2', got 'x'");
    expect_spec_error("8 x 8", "spec:1:2: expected ',' 'x' ':' or the end after '8', got ' '");
    expect_spec_error("0x8", "spec:1:1: 0 hosts is out of range (1 to 65536)");
    expect_spec_error("2x0", "spec:1:3: 0 ranks per host is out of range (1 to 65536)");
    expect_spec_error("8\x01", "spec:1:2: expected ',' 'x' ':' or the end after '8', got '\\x01'");
    expect_spec_error("4,99999999999", "spec:1:3: 99999999999 ranks is out of range (1 to 65536)");
    expect_spec_error("8x8:numa0",
                      "spec:1:9: expected a number from 1 to 4096 after 'numa', got '0'");
    expect_spec_error("8x8:numa",
                      "spec:1:9: expected a number from 1 to 4096 after 'numa', got ''");
    expect_spec_error("8x8:nic2x",
                      "spec:1:8: expected a number from 1 to 4096 after 'nic', got '2x'");
    expect_spec_error("8x8:cores4", "spec:1:5: unknown option 'cores4' (expected numaN or nicN)");
    expect_spec_error("8x8:", "spec:1:5: unknown option '' (expected numaN or nicN)");
    expect_spec_error("8x8:nic2:nics3", "spec:1:10: 'nics' given twice");
    expect_spec_error("65536x65536",
                      "spec:1:1: 4294967296 ranks in all, above the limit of 4194304");
}

/* ---------------------------------------------------------------------------------------------
 * Text descriptions.
 * ------------------------------------------------------------------------------------------- */

static int text(const char *s, rdt_topo_t **t, char *err, size_t errlen)
{
    return rdt_topo_from_text(s, strlen(s), "topo.txt", t, err, errlen);
}

static void test_text_description_with_comments_tabs_and_crlf(void **state)
{
    const char *s = "# two fat hosts and a thin one\n"
                    "\n"
                    "host fat-1 ranks 4 numa 2 nics 2   # comment\r\n"
                    "\thost thin.example  nics 1 ranks 1\n"
                    "host fat_2 numa 2 ranks 3\n"
                    "   # the end, no final newline";
    const int host_of[] = {0, 0, 0, 0, 1, 2, 2, 2};
    const int numa[] = {0, 0, 1, 1, -1, 0, 0, 1};
    const int nic[] = {0, 0, 1, 1, 0, -1, -1, -1};
    rdt_topo_t *t = NULL;
    char err[256] = "";

    assert_int_equal(text(s, &t, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(t->nranks, 8);
    assert_int_equal(t->nhosts, 3);
    assert_string_equal(t->host_name[0], "fat-1");
    assert_string_equal(t->host_name[1], "thin.example");
    assert_string_equal(t->host_name[2], "fat_2");
    expect_ints(t->host_of, host_of, 8);
    expect_ints(t->numa_of, numa, 8);
    expect_ints(t->nic_of, nic, 8);
    assert_int_equal(t->nnuma[1], 0);
    assert_int_equal(t->nnics[2], 0);
    check_consistent(t);
    rdt_topo_destroy(t);
}

static void expect_text_error(const char *s, const char *want)
{
    rdt_topo_t *t = (rdt_topo_t *)&t;
    char err[256] = "";

    assert_int_equal(text(s, &t, err, sizeof(err)), -1);
    assert_string_equal(err, want);
    assert_ptr_equal(t, (rdt_topo_t *)&t);
}

static void test_text_errors_name_line_and_column(void **state)
{
    expect_text_error("", "topo.txt: no host described (expected lines 'host NAME ranks N')");
    expect_text_error("# only\n\n",
                      "topo.txt: no host described (expected lines 'host NAME ranks N')");
    expect_text_error("hots a ranks 1\n",
                      "topo.txt:1:1: expected 'host' at the start of a line, got 'hots'");
    expect_text_error("host a ranks 1\n  host\n",
                      "topo.txt:2:7: expected a host name after 'host'");
    expect_text_error("host a ranks 2\nhost b ranks -2\n",
                      "topo.txt:2:14: expected a positive integer after 'ranks', got '-2'");
    expect_text_error("host a ranks 0",
                      "topo.txt:1:14: expected a positive integer after 'ranks', got '0'");
    expect_text_error("host a ranks 4x",
                      "topo.txt:1:14: expected a positive integer after 'ranks', got '4x'");
    expect_text_error("host a ranks", "topo.txt:1:13: expected a positive integer after 'ranks'");
    expect_text_error("host a ranks # four\n",
                      "topo.txt:1:14: expected a positive integer after 'ranks'");
    expect_text_error("host a ranks 70000",
                      "topo.txt:1:14: ranks 70000 is above the limit of 65536 per host");
    expect_text_error("host a numa 2\n", "topo.txt:1:1: host 'a' has no 'ranks N'");
    expect_text_error("host a ranks 1 cores 4\n",
                      "topo.txt:1:16: unknown keyword 'cores' (expected ranks, numa or nics)");
    expect_text_error("host a ranks 1 ranks 2\n",
                      "topo.txt:1:16: 'ranks' given twice for host 'a'");
    expect_text_error("host a ranks 1\nhost b ranks 1\n\nhost a ranks 2\n",
                      "topo.txt:4:6: duplicate host 'a' (first on line 1)");
    expect_text_error("host a/b ranks 1\n", "topo.txt:1:7: invalid character '/' in host name");
    expect_text_error("host a\xc3\xa9 ranks 1\n", "topo.txt:1:7: invalid byte 0xc3 in host name");
    expect_text_error(
        "host aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa ranks 1",
        "topo.txt:1:6: host name longer than 63 characters");
    expect_text_error("host a ranks 1\rhost b ranks 1\n",
                      "topo.txt:1:14: expected a positive integer after 'ranks', got '1\\x0dhost'");
}

static void test_nul_bytes_in_text_are_errors(void **state)
{
    const char s[] = "host a ranks 1\nhost b\0 ranks 1\n";
    rdt_topo_t *t = NULL;
    char err[256] = "";

    assert_int_equal(rdt_topo_from_text(s, sizeof(s) - 1, "f", &t, err, sizeof(err)), -1);
    assert_string_equal(err, "f:2:7: invalid byte 0x00 in host name");
}

/* Every prefix and every one-byte change of a valid description is either accepted (and then
 * consistent) or refused with a located message; never a crash (ASan runs this too). */
static void test_every_prefix_and_mutation_is_handled(void **state)
{
    const char *base =
        "# c\nhost n1 ranks 3 numa 2 nics 1\r\nhost n2\tranks 1\nhost n3 ranks 2 nics 2";
    const char subst[] = {'\0', '\n', ' ', '#', '0', 'x', '\r', ',', ':'};
    size_t len = strlen(base), i, k;
    char *copy = malloc(len);
    char err[256];

    assert_non_null(copy);
    for (i = 0; i <= len; i++) {
        rdt_topo_t *t = NULL;
        memcpy(copy, base, len);
        err[0] = '\0';
        if (rdt_topo_from_text(copy, i, "p", &t, err, sizeof(err)) == 0) {
            check_consistent(t);
            rdt_topo_destroy(t);
        } else {
            assert_true(strncmp(err, "p:", 2) == 0);
        }
        for (k = 0; i < len && k < sizeof(subst); k++) {
            t = NULL;
            memcpy(copy, base, len);
            copy[i] = subst[k];
            if (rdt_topo_from_text(copy, len, "p", &t, err, sizeof(err)) == 0) {
                check_consistent(t);
                rdt_topo_destroy(t);
            } else {
                assert_true(strncmp(err, "p:", 2) == 0);
            }
        }
    }
    /* the same for specs */
    {
        const char *sb = "12,3,4:numa2:nic4";
        char sc[32];
        for (i = 0; i <= strlen(sb); i++)
            for (k = 0; k < sizeof(subst); k++) {
                rdt_topo_t *t = NULL;
                snprintf(sc, sizeof(sc), "%s", sb);
                if (i < strlen(sb))
                    sc[i] = subst[k];
                else
                    sc[i] = '\0';
                if (rdt_topo_from_spec(sc, &t, err, sizeof(err)) == 0) {
                    check_consistent(t);
                    rdt_topo_destroy(t);
                } else {
                    assert_true(strncmp(err, "spec:1:", 7) == 0);
                }
            }
    }
    free(copy);
}

/* ---------------------------------------------------------------------------------------------
 * Writers.
 * ------------------------------------------------------------------------------------------- */

static void test_json_of_an_uneven_two_host_shape(void **state)
{
    const char *want =
        "{\n"
        "  \"nranks\": 4,\n"
        "  \"nhosts\": 2,\n"
        "  \"hosts\": [\n"
        "    {\"name\": \"h0\", \"local_size\": 3, \"numa_nodes\": 2, \"nics\": 2, \"ranks\": [0, "
        "1, 2]},\n"
        "    {\"name\": \"h1\", \"local_size\": 1, \"numa_nodes\": 2, \"nics\": 2, \"ranks\": "
        "[3]}\n"
        "  ],\n"
        "  \"ranks\": [\n"
        "    {\"rank\": 0, \"host\": 0, \"local_rank\": 0, \"numa\": 0, \"nic\": 0},\n"
        "    {\"rank\": 1, \"host\": 0, \"local_rank\": 1, \"numa\": 0, \"nic\": 0},\n"
        "    {\"rank\": 2, \"host\": 0, \"local_rank\": 2, \"numa\": 1, \"nic\": 1},\n"
        "    {\"rank\": 3, \"host\": 1, \"local_rank\": 0, \"numa\": 0, \"nic\": 0}\n"
        "  ]\n"
        "}\n";
    rdt_topo_t *t = spec("3,1:numa2:nic2");
    char *json = rdt_topo_to_json(t);

    assert_non_null(json);
    assert_string_equal(json, want);
    free(json);
    rdt_topo_destroy(t);
}

static void test_json_escapes_names_and_shows_unknowns(void **state)
{
    const char *names[] = {"a\"b\\c", "\x01\xc3\xa9", "a\"b\\c"};
    const char *want =
        "{\n"
        "  \"nranks\": 3,\n"
        "  \"nhosts\": 2,\n"
        "  \"hosts\": [\n"
        "    {\"name\": \"a\\\"b\\\\c\", \"local_size\": 2, \"numa_nodes\": 0, \"nics\": 0, "
        "\"ranks\": [0, 2]},\n"
        "    {\"name\": \"\\u0001\\u00c3\\u00a9\", \"local_size\": 1, \"numa_nodes\": 0, \"nics\": "
        "0, \"ranks\": [1]}\n"
        "  ],\n"
        "  \"ranks\": [\n"
        "    {\"rank\": 0, \"host\": 0, \"local_rank\": 0, \"numa\": -1, \"nic\": -1},\n"
        "    {\"rank\": 1, \"host\": 1, \"local_rank\": 0, \"numa\": -1, \"nic\": -1},\n"
        "    {\"rank\": 2, \"host\": 0, \"local_rank\": 1, \"numa\": -1, \"nic\": -1}\n"
        "  ]\n"
        "}\n";
    rdt_topo_t *t = group(3, names);
    char *json = rdt_topo_to_json(t);

    assert_non_null(json);
    assert_string_equal(json, want);
    free(json);
    rdt_topo_destroy(t);
}

static void test_text_output_of_a_shape(void **state)
{
    const char *want = "3 ranks on 2 hosts, 1 to 2 per host\n"
                       "host 0 h0: 2 ranks, 2 NUMA nodes, NICs unknown or none\n"
                       "  rank    0   1\n"
                       "  numa    0   1\n"
                       "  nic     ?   ?\n"
                       "host 1 h1: 1 rank, 2 NUMA nodes, NICs unknown or none\n"
                       "  rank    2\n"
                       "  numa    0\n"
                       "  nic     ?\n";
    rdt_topo_t *t = spec("2,1:numa2");
    char *s = rdt_topo_to_text(t);

    assert_non_null(s);
    assert_string_equal(s, want);
    free(s);
    rdt_topo_destroy(t);
}

/* ---------------------------------------------------------------------------------------------
 * hwloc: this machine.
 * ------------------------------------------------------------------------------------------- */

static void test_probe_of_this_machine_is_sane(void **state)
{
    rdt_topo_host_t *h = NULL;
    rdt_topo_probe_t p;
    cpu_set_t allowed;
    long online = sysconf(_SC_NPROCESSORS_CONF);
    char err[256] = "";
    int i;

    assert_int_equal(rdt_topo_host_detect(&h, err, sizeof(err)), 0);
    assert_true(h->ncores >= 1);
    assert_true(h->npus >= h->ncores);
    assert_true(h->npus <= online);
    assert_true(h->nnuma >= 1);
    assert_true(h->npackages >= 1);
    for (i = 0; i < h->ncores; i++)
        assert_true(h->core_numa[i] >= -1 && h->core_numa[i] < h->nnuma);
    for (i = 0; i < h->nnics; i++) {
        assert_true(h->nics[i].name[0] != '\0');
        assert_true(h->nics[i].numa >= -1 && h->nics[i].numa < h->nnuma);
        if (i > 0) /* RDMA devices first */
            assert_true(h->nics[i].kind >= h->nics[i - 1].kind);
    }

    assert_int_equal(rdt_topo_local_probe(0, &p, err, sizeof(err)), 0);
    assert_int_equal(p.ncores, h->ncores);
    assert_int_equal(p.npus, h->npus);
    assert_int_equal(p.loc.nnuma, h->nnuma);
    assert_int_equal(p.loc.nnics, h->nnics);
    assert_true(p.loc.numa >= -1 && p.loc.numa < p.loc.nnuma);
    assert_true(p.loc.nic >= -1 && p.loc.nic < p.loc.nnics);
    if (h->nnuma == 1) /* one node: whatever the CPU, it is node 0 */
        assert_int_equal(p.loc.numa, 0);
    if (p.loc.nic >= 0)
        assert_string_equal(p.nic_name, h->nics[p.loc.nic].name);
    else
        assert_string_equal(p.nic_name, "");
    assert_int_equal(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
    if (p.cpu >= 0)
        assert_true(CPU_ISSET(p.cpu, &allowed));
    assert_int_equal(p.bound, CPU_COUNT(&allowed) < h->npus);
    assert_int_equal(rdt_topo_local_probe(-1, &p, err, sizeof(err)), -1);
    assert_string_equal(err, "bad local rank -1");
    rdt_topo_host_destroy(h);
}

static void same_host(const rdt_topo_host_t *a, const rdt_topo_host_t *b)
{
    int i;

    assert_int_equal(a->npackages, b->npackages);
    assert_int_equal(a->nnuma, b->nnuma);
    assert_int_equal(a->ncores, b->ncores);
    assert_int_equal(a->npus, b->npus);
    expect_ints(a->core_numa, b->core_numa, a->ncores);
    expect_ints(a->numa_ncores, b->numa_ncores, a->nnuma);
    assert_int_equal(a->nnics, b->nnics);
    for (i = 0; i < a->nnics; i++) {
        assert_string_equal(a->nics[i].name, b->nics[i].name);
        assert_string_equal(a->nics[i].pci_busid, b->nics[i].pci_busid);
        assert_int_equal(a->nics[i].numa, b->nics[i].numa);
    }
}

static void test_exported_xml_of_this_machine_reloads_identically(void **state)
{
    char dir[] = "/tmp/rdt-topo-XXXXXX", path[64], err[256] = "";
    rdt_topo_host_t *live = NULL, *fromxml = NULL, *fromfile = NULL;
    char *xml;
    FILE *f;

    /* no sysfs for the reloads: the live detection adds nothing from it on this machine only if
     * it has no virtual RDMA device, so compare against a detection without one too */
    xml = rdt_topo_host_export_xml(err, sizeof(err));
    assert_non_null(xml);
    assert_non_null(strstr(xml, "<topology"));
    assert_int_equal(
        rdt_topo_host_from_xml_buffer(xml, strlen(xml) + 1, NULL, &fromxml, err, sizeof(err)), 0);
    assert_int_equal(rdt_topo_host_detect(&live, err, sizeof(err)), 0);
    if (access("/sys/class/infiniband", F_OK) != 0)
        same_host(live, fromxml);
    else /* virtual RDMA devices come from sysfs: compare the CPU side only */
        assert_int_equal(live->ncores, fromxml->ncores);
    assert_string_equal(live->name, fromxml->name);

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/host.xml", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(xml, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rdt_topo_host_from_xml(path, NULL, &fromfile, err, sizeof(err)), 0);
    same_host(fromxml, fromfile);
    unlink(path);
    rmdir(dir);
    rdt_topo_host_destroy(live);
    rdt_topo_host_destroy(fromxml);
    rdt_topo_host_destroy(fromfile);
    free(xml);
}

/* ---------------------------------------------------------------------------------------------
 * hwloc: a two-socket host written here, with RDMA devices (one virtual, as rxe on a machine
 * where hwloc is told to show virtual devices) and a fake /sys for the netdevs of virtual ones.
 * ------------------------------------------------------------------------------------------- */

#define OBJ(type, os, set, node, gp)                                                               \
    "<object type=\"" type "\" os_index=\"" #os "\" cpuset=\"" set "\" complete_cpuset=\"" set     \
    "\" nodeset=\"" node "\" complete_nodeset=\"" node "\" gp_index=\"" #gp "\""
#define CORE(os, set, node, gp)                                                                    \
    OBJ("Core", os, set, node, gp) ">" OBJ("PU", os, set, node, 1##gp) "/></object>"

/* clang-format off */
static const char two_socket_xml[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<!DOCTYPE topology SYSTEM \"hwloc2.dtd\">\n"
    "<topology version=\"2.0\">\n"
    "<object type=\"Machine\" os_index=\"0\" cpuset=\"0x0000000f\" complete_cpuset=\"0x0000000f\" "
    "allowed_cpuset=\"0x0000000f\" nodeset=\"0x00000003\" complete_nodeset=\"0x00000003\" "
    "allowed_nodeset=\"0x00000003\" gp_index=\"1\">\n"
    "<info name=\"HostName\" value=\"fake2s\"/>\n"
    OBJ("Package", 0, "0x00000003", "0x00000001", 2) ">\n"
      OBJ("NUMANode", 0, "0x00000003", "0x00000001", 3) " local_memory=\"1073741824\"/>\n"
      CORE(0, "0x00000001", "0x00000001", 4)
      CORE(1, "0x00000002", "0x00000001", 5)
      "<object type=\"Bridge\" gp_index=\"20\" bridge_type=\"0-1\" depth=\"0\" "
      "bridge_pci=\"0000:[00-00]\">\n"
        "<object type=\"PCIDev\" gp_index=\"21\" pci_busid=\"0000:00:03.0\" "
        "pci_type=\"0200 [1af4:1041] [1af4:1041] 01\" pci_link_speed=\"0.000000\">\n"
          "<object type=\"OSDev\" gp_index=\"22\" name=\"eth0\" osdev_type=\"2\"/>\n"
        "</object>\n"
        "<object type=\"PCIDev\" gp_index=\"23\" pci_busid=\"0000:00:04.0\" "
        "pci_type=\"0200 [8086:1572] [8086:0000] 01\" pci_link_speed=\"0.000000\">\n"
          "<object type=\"OSDev\" gp_index=\"24\" name=\"eth1\" osdev_type=\"2\"/>\n"
        "</object>\n"
      "</object>\n"
    "</object>\n"
    OBJ("Package", 1, "0x0000000c", "0x00000002", 6) ">\n"
      OBJ("NUMANode", 1, "0x0000000c", "0x00000002", 7) " local_memory=\"1073741824\"/>\n"
      CORE(2, "0x00000004", "0x00000002", 8)
      CORE(3, "0x00000008", "0x00000002", 9)
      "<object type=\"Bridge\" gp_index=\"30\" bridge_type=\"0-1\" depth=\"0\" "
      "bridge_pci=\"0000:[3b-3b]\">\n"
        "<object type=\"PCIDev\" gp_index=\"31\" pci_busid=\"0000:3b:00.0\" "
        "pci_type=\"0207 [15b3:101b] [15b3:0008] 00\" pci_link_speed=\"15.753846\">\n"
          "<object type=\"OSDev\" gp_index=\"32\" name=\"ib0\" osdev_type=\"2\"/>\n"
          "<object type=\"OSDev\" gp_index=\"33\" name=\"mlx5_0\" osdev_type=\"3\"/>\n"
        "</object>\n"
      "</object>\n"
    "</object>\n"
    "<object type=\"OSDev\" gp_index=\"40\" name=\"rxe0\" osdev_type=\"3\"/>\n"
    "</object>\n"
    "</topology>\n";

/* a machine with one NUMA node, two PUs, no package or core level, no I/O */
static const char flat_xml[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<!DOCTYPE topology SYSTEM \"hwloc2.dtd\">\n"
    "<topology version=\"2.0\">\n"
    "<object type=\"Machine\" os_index=\"0\" cpuset=\"0x00000003\" complete_cpuset=\"0x00000003\" "
    "allowed_cpuset=\"0x00000003\" nodeset=\"0x00000001\" complete_nodeset=\"0x00000001\" "
    "allowed_nodeset=\"0x00000001\" gp_index=\"1\">\n"
    OBJ("NUMANode", 0, "0x00000003", "0x00000001", 2) "/>\n"
    OBJ("PU", 0, "0x00000001", "0x00000001", 3) "/>\n"
    OBJ("PU", 1, "0x00000002", "0x00000001", 4) "/>\n"
    "</object>\n"
    "</topology>\n";
/* clang-format on */

typedef struct {
    char root[64];
} fake_sys_t;

static void write_attr(const char *root, const char *rel, const char *value)
{
    char path[256], *slash;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", root, rel);
    for (slash = strchr(path + strlen(root) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        mkdir(path, 0755);
        *slash = '/';
    }
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", value);
    assert_int_equal(fclose(f), 0);
}

/* rxe0 on eth0 (PCI, NUMA 0), rxe1 on a dummy netdev (nowhere), siw0 on ib0 (NUMA 1, found
 * through its GID's netdev rather than `parent`). */
static void fake_sys_create(fake_sys_t *fs)
{
    char path[256];

    snprintf(fs->root, sizeof(fs->root), "/tmp/rdt-topo-sys-XXXXXX");
    assert_non_null(mkdtemp(fs->root));
    write_attr(fs->root, "class/infiniband/rxe1/parent", "dummy0");
    write_attr(fs->root, "class/infiniband/rxe0/parent", "eth0");
    write_attr(fs->root, "class/infiniband/siw0/ports/1/gid_attrs/ndevs/0", "ib0");
    /* a PCI RDMA device missing from hwloc's view: located through its `device` link */
    snprintf(path, sizeof(path), "%s/class/infiniband/mlx5_9", fs->root);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/class/infiniband/mlx5_9/device", fs->root);
    assert_int_equal(symlink("../../../devices/pci0000:3b/0000:3b:00.0", path), 0);
}

static void fake_sys_remove(fake_sys_t *fs)
{
    static const char *const paths[] = {"class/infiniband/mlx5_9/device",
                                        "class/infiniband/mlx5_9",
                                        "class/infiniband/rxe1/parent",
                                        "class/infiniband/rxe0/parent",
                                        "class/infiniband/siw0/ports/1/gid_attrs/ndevs/0",
                                        "class/infiniband/siw0/ports/1/gid_attrs/ndevs",
                                        "class/infiniband/siw0/ports/1/gid_attrs",
                                        "class/infiniband/siw0/ports/1",
                                        "class/infiniband/siw0/ports",
                                        "class/infiniband/siw0",
                                        "class/infiniband/rxe1",
                                        "class/infiniband/rxe0",
                                        "class/infiniband",
                                        "class",
                                        ""};
    char path[256];
    size_t i;

    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", fs->root, paths[i]);
        assert_int_equal(remove(path), 0);
    }
}

static void expect_nic(const rdt_topo_nic_t *n, rdt_topo_nic_kind_t kind, const char *name,
                       const char *netdev, const char *pci, int numa, int is_virtual)
{
    assert_int_equal(n->kind, kind);
    assert_string_equal(n->name, name);
    assert_string_equal(n->netdev, netdev);
    assert_string_equal(n->pci_busid, pci);
    assert_int_equal(n->numa, numa);
    assert_int_equal(n->is_virtual, is_virtual);
}

static void test_two_socket_xml_locates_nics_by_pci_and_netdev(void **state)
{
    rdt_topo_host_t *h = NULL;
    char err[256] = "";
    const int core_numa[] = {0, 0, 1, 1}, numa_ncores[] = {2, 2};

    assert_int_equal(rdt_topo_host_from_xml_buffer(two_socket_xml, sizeof(two_socket_xml), NULL, &h,
                                                   err, sizeof(err)),
                     0);
    assert_string_equal(h->name, "fake2s");
    assert_int_equal(h->npackages, 2);
    assert_int_equal(h->nnuma, 2);
    assert_int_equal(h->ncores, 4);
    assert_int_equal(h->npus, 4);
    expect_ints(h->core_numa, core_numa, 4);
    expect_ints(h->numa_ncores, numa_ncores, 2);
    /* without sysfs: rxe0 is virtual and its netdev unknown; eth0 and eth1 are plain NICs */
    assert_int_equal(h->nnics, 4);
    expect_nic(&h->nics[0], RDT_TOPO_NIC_RDMA, "mlx5_0", "ib0", "0000:3b:00.0", 1, 0);
    expect_nic(&h->nics[1], RDT_TOPO_NIC_RDMA, "rxe0", "", "", -1, 1);
    expect_nic(&h->nics[2], RDT_TOPO_NIC_NET, "eth0", "eth0", "0000:00:03.0", 0, 0);
    expect_nic(&h->nics[3], RDT_TOPO_NIC_NET, "eth1", "eth1", "0000:00:04.0", 0, 0);
    /* NUMA 0 has no RDMA device: any RDMA device, by local rank; NUMA 1 has mlx5_0 */
    assert_int_equal(rdt_topo_host_pick_nic(h, 0, 0), 0);
    assert_int_equal(rdt_topo_host_pick_nic(h, 0, 1), 1);
    assert_int_equal(rdt_topo_host_pick_nic(h, 1, 0), 0);
    assert_int_equal(rdt_topo_host_pick_nic(h, 1, 1), 0);
    assert_int_equal(rdt_topo_host_pick_nic(h, -1, 3), 1);
    rdt_topo_host_destroy(h);
}

static void test_virtual_rdma_devices_are_located_through_their_netdev(void **state)
{
    rdt_topo_host_t *h = NULL;
    rdt_topo_t *t = NULL;
    fake_sys_t fs;
    char err[256] = "";
    const int numa[] = {0, 0, 1, 1}, nic[] = {1, 1, 4, 0};

    fake_sys_create(&fs);
    assert_int_equal(rdt_topo_host_from_xml_buffer(two_socket_xml, sizeof(two_socket_xml), fs.root,
                                                   &h, err, sizeof(err)),
                     0);
    fake_sys_remove(&fs);
    /* eth0 is now rxe0's netdev: listed once, as the RDMA device. Order: hwloc's RDMA devices
     * (mlx5_0, rxe0), then those only sysfs has, by name, then plain NICs */
    assert_int_equal(h->nnics, 6);
    expect_nic(&h->nics[0], RDT_TOPO_NIC_RDMA, "mlx5_0", "ib0", "0000:3b:00.0", 1, 0);
    expect_nic(&h->nics[1], RDT_TOPO_NIC_RDMA, "rxe0", "eth0", "0000:00:03.0", 0, 1);
    expect_nic(&h->nics[2], RDT_TOPO_NIC_RDMA, "mlx5_9", "", "0000:3b:00.0", 1, 0);
    expect_nic(&h->nics[3], RDT_TOPO_NIC_RDMA, "rxe1", "dummy0", "", -1, 1);
    expect_nic(&h->nics[4], RDT_TOPO_NIC_RDMA, "siw0", "ib0", "0000:3b:00.0", 1, 1);
    expect_nic(&h->nics[5], RDT_TOPO_NIC_NET, "eth1", "eth1", "0000:00:04.0", 0, 0);

    /* 4 local ranks: cores 0..3, so NUMA 0,0,1,1; NUMA 0's one RDMA device is rxe0 (1); NUMA 1
     * has mlx5_0 (0), mlx5_9 (2) and siw0 (4), taken by local rank mod 3: 2 -> siw0, 3 -> mlx5_0 */
    assert_int_equal(rdt_topo_from_host(h, "n1", 4, &t, err, sizeof(err)), 0);
    check_consistent(t);
    assert_string_equal(t->host_name[0], "n1");
    expect_ints(t->numa_of, numa, 4);
    expect_ints(t->nic_of, nic, 4);
    assert_int_equal(t->nnuma[0], 2);
    assert_int_equal(t->nnics[0], 6);
    rdt_topo_destroy(t);
    rdt_topo_host_destroy(h);
}

static void test_host_text_of_the_two_socket_xml(void **state)
{
    const char *want = "host fake2s: 2 packages, 2 NUMA nodes, 4 cores, 4 hardware threads\n"
                       "  numa 0: 2 cores\n"
                       "  numa 1: 2 cores\n"
                       "  nic 0: rdma mlx5_0, netdev ib0, pci 0000:3b:00.0, numa 1\n"
                       "  nic 1: rdma rxe0, netdev unknown, pci none (virtual), numa unknown\n"
                       "  nic 2: net eth0, pci 0000:00:03.0, numa 0\n"
                       "  nic 3: net eth1, pci 0000:00:04.0, numa 0\n";
    rdt_topo_host_t *h = NULL;
    char err[256] = "", *buf = NULL;
    size_t size = 0;
    FILE *f;

    assert_int_equal(rdt_topo_host_from_xml_buffer(two_socket_xml, sizeof(two_socket_xml), NULL, &h,
                                                   err, sizeof(err)),
                     0);
    f = open_memstream(&buf, &size);
    assert_non_null(f);
    assert_int_equal(rdt_topo_host_write_text(h, f), 0);
    assert_int_equal(fclose(f), 0);
    assert_string_equal(buf, want);
    free(buf);
    rdt_topo_host_destroy(h);
}

static void test_host_without_numa_cores_or_nics(void **state)
{
    rdt_topo_host_t *h = NULL;
    rdt_topo_t *t = NULL;
    char err[256] = "";
    const int minus1[] = {-1, -1, -1}, zero[] = {0, 0, 0};

    assert_int_equal(
        rdt_topo_host_from_xml_buffer(flat_xml, sizeof(flat_xml), NULL, &h, err, sizeof(err)), 0);
    assert_int_equal(h->npackages, 1);
    assert_int_equal(h->nnuma, 1);
    assert_int_equal(h->ncores, 2); /* no core level: a PU is a core */
    assert_int_equal(h->npus, 2);
    assert_int_equal(h->nnics, 0);
    assert_int_equal(rdt_topo_host_pick_nic(h, 0, 0), -1);
    assert_int_equal(rdt_topo_from_host(h, NULL, 3, &t, err, sizeof(err)), 0);
    assert_string_equal(t->host_name[0], "localhost"); /* no HostName in the XML */
    expect_ints(t->numa_of, zero, 3);
    expect_ints(t->nic_of, minus1, 3);
    rdt_topo_destroy(t);
    rdt_topo_host_destroy(h);
}

static void test_bad_xml_is_refused_with_the_file_name(void **state)
{
    char dir[] = "/tmp/rdt-topo-XXXXXX", path[64], err[256] = "";
    rdt_topo_host_t *h = (rdt_topo_host_t *)&h;
    FILE *f;

    assert_int_equal(rdt_topo_host_from_xml("/nonexistent/x.xml", NULL, &h, err, sizeof(err)), -1);
    assert_string_equal(err, "/nonexistent/x.xml: cannot open: No such file or directory");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/bad.xml", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("<topology version=\"2.0\"><object type=\"Nonsense\"/></topology>\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rdt_topo_host_from_xml(path, NULL, &h, err, sizeof(err)), -1);
    assert_true(strncmp(err, path, strlen(path)) == 0);
    assert_non_null(strstr(err, "XML"));
    unlink(path);
    rmdir(dir);
    assert_int_equal(rdt_topo_host_from_xml_buffer("junk", 4, NULL, &h, err, sizeof(err)), -1);
    assert_true(strncmp(err, "XML buffer: ", 12) == 0);
    assert_ptr_equal(h, (rdt_topo_host_t *)&h);
}

/* ---------------------------------------------------------------------------------------------
 * RDT_BIND, in children (binding is per process).
 * ------------------------------------------------------------------------------------------- */

/* Bind a child as (mode, l, L) and return the CPU set it ended with; fails the test if the bind
 * call fails, with its message. */
static cpu_set_t bound_set(rdt_topo_bind_t mode, int l, int L)
{
    int fd[2], status;
    cpu_set_t set;
    char msg[256] = "";
    pid_t pid;

    assert_int_equal(pipe(fd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cpu_set_t s;
        int rc = rdt_topo_bind(mode, l, L, msg, sizeof(msg));
        CPU_ZERO(&s);
        if (rc != 0 || sched_getaffinity(0, sizeof(s), &s) != 0)
            CPU_ZERO(&s);
        (void)!write(fd[1], &s, sizeof(s));
        (void)!write(fd[1], msg, sizeof(msg));
        _exit(rc != 0);
    }
    close(fd[1]);
    assert_int_equal(read(fd[0], &set, sizeof(set)), (ssize_t)sizeof(set));
    assert_int_equal(read(fd[0], msg, sizeof(msg)), (ssize_t)sizeof(msg));
    close(fd[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("bind(%d, %d, %d) failed: %s", (int)mode, l, L, msg);
    assert_true(strncmp(msg, mode == RDT_TOPO_BIND_CORE ? "core " : "numa node ", 5) == 0);
    return set;
}

static void test_bind_core_partitions_the_allowed_cpus(void **state)
{
    rdt_topo_host_t *h = NULL;
    cpu_set_t allowed, uni, sets[256], inter;
    char err[256] = "";
    int L, l, m;

    assert_int_equal(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
    L = CPU_COUNT(&allowed);
    if (L > 256)
        L = 256;
    assert_int_equal(rdt_topo_host_detect(&h, err, sizeof(err)), 0);
    CPU_ZERO(&uni);
    for (l = 0; l < L; l++) {
        sets[l] = bound_set(RDT_TOPO_BIND_CORE, l, L);
        assert_true(CPU_COUNT(&sets[l]) >= 1);
        CPU_AND(&inter, &sets[l], &allowed);
        assert_true(CPU_EQUAL(&inter, &sets[l])); /* within what this process may use */
        for (m = 0; m < l; m++) { /* one core each: equal (hyperthreads share) or disjoint */
            CPU_AND(&inter, &sets[l], &sets[m]);
            assert_true(CPU_COUNT(&inter) == 0 || CPU_EQUAL(&sets[l], &sets[m]));
        }
        CPU_OR(&uni, &uni, &sets[l]);
    }
    if (L == CPU_COUNT(&allowed)) /* as many ranks as CPUs: every core used */
        assert_true(CPU_EQUAL(&uni, &allowed));
    if (h->npus == h->ncores && L == h->ncores) /* no SMT: one CPU each, all different */
        for (l = 0; l < L; l++)
            assert_int_equal(CPU_COUNT(&sets[l]), 1);

    /* numa: a superset of the rank's core; on a one-node machine every allowed CPU */
    for (l = 0; l < L && l < 4; l++) {
        cpu_set_t n = bound_set(RDT_TOPO_BIND_NUMA, l, L);
        CPU_AND(&inter, &n, &sets[l]);
        assert_true(CPU_EQUAL(&inter, &sets[l]));
        if (h->nnuma == 1)
            assert_true(CPU_EQUAL(&n, &allowed));
    }
    rdt_topo_host_destroy(h);
}

static void test_bind_arguments_and_modes(void **state)
{
    rdt_topo_bind_t m = RDT_TOPO_BIND_CORE;
    char msg[256] = "";

    assert_int_equal(rdt_topo_bind_parse("none", &m, msg, sizeof(msg)), 0);
    assert_int_equal(m, RDT_TOPO_BIND_NONE);
    assert_int_equal(rdt_topo_bind_parse("numa", &m, msg, sizeof(msg)), 0);
    assert_int_equal(m, RDT_TOPO_BIND_NUMA);
    assert_int_equal(rdt_topo_bind_parse("core", &m, msg, sizeof(msg)), 0);
    assert_int_equal(m, RDT_TOPO_BIND_CORE);
    assert_int_equal(rdt_topo_bind_parse("socket", &m, msg, sizeof(msg)), -1);
    assert_string_equal(msg, "RDT_BIND='socket' is not one of none, numa, core");
    assert_int_equal(m, RDT_TOPO_BIND_CORE);

    assert_int_equal(rdt_topo_bind(RDT_TOPO_BIND_CORE, 2, 2, msg, sizeof(msg)), -1);
    assert_string_equal(msg, "bad local rank 2 of 2");
    assert_int_equal(rdt_topo_bind(RDT_TOPO_BIND_NUMA, -1, 2, msg, sizeof(msg)), -1);
    assert_string_equal(msg, "bad local rank -1 of 2");
    assert_int_equal(rdt_topo_bind((rdt_topo_bind_t)7, 0, 1, msg, sizeof(msg)), -1);
    assert_string_equal(msg, "bad binding mode 7");
    assert_int_equal(rdt_topo_bind(RDT_TOPO_BIND_NONE, 0, 1, msg, sizeof(msg)), 0);
    assert_string_equal(msg, "none");
}

/* The engine's probe: the same answer as the uncached one, and the NIC's kind and node. */
static void test_cached_probe_matches_the_uncached_one(void **state)
{
    rdt_topo_probe_t a, b, c;
    rdt_topo_host_t *h = NULL;
    char err[256] = "";

    assert_int_equal(rdt_topo_host_detect(&h, err, sizeof(err)), 0);
    assert_int_equal(rdt_topo_local_probe(1, &a, err, sizeof(err)), 0);
    assert_int_equal(rdt_topo_local_probe_cached(1, &b, err, sizeof(err)), 0);
    assert_int_equal(rdt_topo_local_probe_cached(1, &c, err, sizeof(err)), 0);
    assert_int_equal(b.loc.nnuma, a.loc.nnuma);
    assert_int_equal(b.loc.nnics, a.loc.nnics);
    assert_int_equal(b.ncores, a.ncores);
    assert_int_equal(b.npus, a.npus);
    assert_int_equal(b.npackages, a.npackages);
    assert_int_equal(b.bound, a.bound);
    if (a.loc.nnuma == 1) /* else the thread may have moved between the calls */
        assert_int_equal(b.loc.numa, a.loc.numa);
    assert_int_equal(c.loc.nic, b.loc.nic);
    assert_string_equal(c.nic_name, b.nic_name);
    if (b.loc.nic >= 0) {
        assert_string_equal(b.nic_name, h->nics[b.loc.nic].name);
        assert_int_equal(b.nic_rdma, h->nics[b.loc.nic].kind == RDT_TOPO_NIC_RDMA);
        assert_int_equal(b.nic_numa, h->nics[b.loc.nic].numa);
    } else {
        assert_int_equal(b.nic_numa, -1);
        assert_int_equal(b.nic_rdma, 0);
    }
    assert_int_equal(rdt_topo_local_probe_cached(-1, &c, err, sizeof(err)), -1);
    assert_string_equal(err, "bad local rank -1");
    rdt_topo_host_destroy(h);
}

/* The cache keeps the hardware, not the binding: a later binding shows in the next probe. */
static void test_cached_probe_sees_a_later_binding(void **state)
{
    cpu_set_t allowed;
    pid_t pid;
    int status = -1;

    assert_int_equal(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
    if (CPU_COUNT(&allowed) < 2)
        skip();
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        rdt_topo_probe_t p;
        cpu_set_t one;
        int cpu = 0, ok;

        ok = rdt_topo_local_probe_cached(0, &p, NULL, 0) == 0 && !p.bound;
        while (!CPU_ISSET(cpu, &allowed))
            cpu++;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        ok = ok && sched_setaffinity(0, sizeof(one), &one) == 0;
        ok = ok && rdt_topo_local_probe_cached(0, &p, NULL, 0) == 0 && p.bound && p.cpu == cpu &&
             p.loc.numa >= 0;
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_summary_lines(void **state)
{
    rdt_topo_t *t = NULL;
    char err[256] = "", buf[512], small[24];
    static const char *const names[] = {"a", "a", "b"};
    rdt_topo_loc_t loc[3] = {{0, 2, 1, 2}, {1, 2, -1, 2}, {-1, 0, -1, 0}};
    char *tab;

    assert_int_equal(rdt_topo_from_spec("3,1,4:numa2:nic2", &t, err, sizeof(err)), 0);
    rdt_topo_summary(t, buf, sizeof(buf));
    assert_string_equal(buf, "3 hosts, ranks per host 3/1/4, NUMA nodes per host 2/2/2 (node "
                             "known for 8 of 8 ranks), NICs per host 2/2/2 (nearest known for 8 "
                             "of 8 ranks)");
    rdt_topo_summary(t, small, sizeof(small));
    assert_string_equal(small, "3 hosts, ranks per host");
    rdt_topo_destroy(t);

    assert_int_equal(rdt_topo_from_spec("20x1", &t, err, sizeof(err)), 0);
    rdt_topo_summary(t, buf, sizeof(buf));
    assert_string_equal(buf, "20 hosts, ranks per host 1/1/1/1/1/1/1/1/1/1/1/1/1/1/1/1/..., NUMA "
                             "nodes per host ?/?/?/?/?/?/?/?/?/?/?/?/?/?/?/?/... (node known for "
                             "0 of 20 ranks), NICs per host ?/?/?/?/?/?/?/?/?/?/?/?/?/?/?/?/... "
                             "(nearest known for 0 of 20 ranks)");
    rdt_topo_destroy(t);

    tab = name_table(3, names);
    assert_int_equal(rdt_topo_from_hosts(3, tab, RDT_TOPO_NAME_MAX, loc, &t, err, sizeof(err)), 0);
    rdt_topo_summary(t, buf, sizeof(buf));
    assert_string_equal(buf, "2 hosts, ranks per host 2/1, NUMA nodes per host 2/? (node known "
                             "for 2 of 3 ranks), NICs per host 2/? (nearest known for 1 of 3 "
                             "ranks)");
    rdt_topo_destroy(t);
    free(tab);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eight_hosts_of_eight_ranks_group_in_rank_order),
        cmocka_unit_test(test_uneven_three_one_four),
        cmocka_unit_test(test_one_rank_is_one_host),
        cmocka_unit_test(test_interleaved_hosts_keep_global_rank_order_within_a_host),
        cmocka_unit_test(test_numa_and_nic_per_rank_are_carried),
        cmocka_unit_test(test_bad_host_tables_are_refused_with_the_rank),
        cmocka_unit_test(test_spec_shapes),
        cmocka_unit_test(test_spec_errors_name_the_column),
        cmocka_unit_test(test_text_description_with_comments_tabs_and_crlf),
        cmocka_unit_test(test_text_errors_name_line_and_column),
        cmocka_unit_test(test_nul_bytes_in_text_are_errors),
        cmocka_unit_test(test_every_prefix_and_mutation_is_handled),
        cmocka_unit_test(test_json_of_an_uneven_two_host_shape),
        cmocka_unit_test(test_json_escapes_names_and_shows_unknowns),
        cmocka_unit_test(test_text_output_of_a_shape),
        cmocka_unit_test(test_probe_of_this_machine_is_sane),
        cmocka_unit_test(test_exported_xml_of_this_machine_reloads_identically),
        cmocka_unit_test(test_two_socket_xml_locates_nics_by_pci_and_netdev),
        cmocka_unit_test(test_virtual_rdma_devices_are_located_through_their_netdev),
        cmocka_unit_test(test_host_text_of_the_two_socket_xml),
        cmocka_unit_test(test_host_without_numa_cores_or_nics),
        cmocka_unit_test(test_bad_xml_is_refused_with_the_file_name),
        cmocka_unit_test(test_bind_core_partitions_the_allowed_cpus),
        cmocka_unit_test(test_bind_arguments_and_modes),
        cmocka_unit_test(test_cached_probe_matches_the_uncached_one),
        cmocka_unit_test(test_cached_probe_sees_a_later_binding),
        cmocka_unit_test(test_summary_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
