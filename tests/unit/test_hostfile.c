/*
 * test_hostfile.c - the launcher's hosts-file and -H parser (trainer/hostfile.c): every accepted
 * form, every refusal with its exact "source:line:column: ..." sentence, and rank placement.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostfile.h"

static const char *const self[] = {"node7.example.org", NULL};

/* Parse @p text as file "hosts.txt"; on failure *err holds the sentence. */
static int parse_file(const char *text, rdt_hostlist_t *l, char *err, size_t errlen)
{
    return rdt_hostlist_parse_file(text, strlen(text), "hosts.txt", self, l, err, errlen);
}

static void expect_host(const rdt_hostlist_t *l, int i, const char *name, int slots, int local,
                        int line, int col)
{
    assert_true(i < l->nhosts);
    assert_string_equal(l->hosts[i].name, name);
    assert_int_equal(l->hosts[i].slots, slots);
    assert_int_equal(l->hosts[i].local, local);
    assert_int_equal(l->hosts[i].line, line);
    assert_int_equal(l->hosts[i].col, col);
}

/* Parsing @p text must fail with exactly @p want, and leave the list untouched. */
static void expect_file_error(const char *text, const char *want)
{
    rdt_hostlist_t l = {(rdt_host_t *)&l, 42, 42};
    char err[256] = "";

    assert_int_equal(parse_file(text, &l, err, sizeof(err)), -1);
    assert_string_equal(err, want);
    assert_ptr_equal(l.hosts, (rdt_host_t *)&l);
    assert_int_equal(l.nhosts, 42);
}

static void expect_inline_error(const char *spec, const char *want)
{
    rdt_hostlist_t l = {NULL, 42, 42};
    char err[256] = "";

    assert_int_equal(rdt_hostlist_parse_inline(spec, self, &l, err, sizeof(err)), -1);
    assert_string_equal(err, want);
    assert_int_equal(l.nhosts, 42);
}

static void test_open_mpi_form_with_comments_blank_lines_and_crlf(void **state)
{
    const char *text = "# cluster A\n"
                       "\n"
                       "node1 slots=4\n"
                       "  node2\tslots = 2   # trailing comment\r\n"
                       "node3\n"
                       "   \t\n"
                       "node4 slots=2 max_slots=8\n"
                       "node5 max-slots=3\n"
                       "# the end";
    rdt_hostlist_t l;
    char err[256] = "";

    assert_int_equal(parse_file(text, &l, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(l.nhosts, 5);
    assert_int_equal(l.total_slots, 4 + 2 + 1 + 2 + 1);
    expect_host(&l, 0, "node1", 4, 0, 3, 1);
    expect_host(&l, 1, "node2", 2, 0, 4, 3);
    expect_host(&l, 2, "node3", 1, 0, 5, 1);
    expect_host(&l, 3, "node4", 2, 0, 7, 1);
    expect_host(&l, 4, "node5", 1, 0, 8, 1);
    rdt_hostlist_fini(&l);
    assert_null(l.hosts);
    rdt_hostlist_fini(&l); /* twice is fine */
}

static void test_horovod_form_and_mixed_forms(void **state)
{
    const char *text = "a.example.com:8\n"
                       "b:1 # one\n"
                       "user@c slots=3\n"
                       "d_1-x:2";
    rdt_hostlist_t l;
    char err[256];

    assert_int_equal(parse_file(text, &l, err, sizeof(err)), 0);
    assert_int_equal(l.nhosts, 4);
    assert_int_equal(l.total_slots, 14);
    expect_host(&l, 0, "a.example.com", 8, 0, 1, 1);
    expect_host(&l, 1, "b", 1, 0, 2, 1);
    expect_host(&l, 2, "user@c", 3, 0, 3, 1);
    expect_host(&l, 3, "d_1-x", 2, 0, 4, 1);
    rdt_hostlist_fini(&l);
}

static void test_inline_lists(void **state)
{
    rdt_hostlist_t l;
    char err[256];

    assert_int_equal(rdt_hostlist_parse_inline("h1:2,h2:3", self, &l, err, sizeof(err)), 0);
    assert_int_equal(l.nhosts, 2);
    assert_int_equal(l.total_slots, 5);
    expect_host(&l, 0, "h1", 2, 0, 1, 1);
    expect_host(&l, 1, "h2", 3, 0, 1, 6);
    rdt_hostlist_fini(&l);

    assert_int_equal(rdt_hostlist_parse_inline("h1,h2,localhost:4", self, &l, err, sizeof(err)), 0);
    assert_int_equal(l.nhosts, 3);
    expect_host(&l, 0, "h1", 1, 0, 1, 1);
    expect_host(&l, 1, "h2", 1, 0, 1, 4);
    expect_host(&l, 2, "localhost", 4, 1, 1, 7);
    rdt_hostlist_fini(&l);
}

static void test_local_names_are_localhost_loopback_and_own_name(void **state)
{
    assert_true(rdt_host_is_local("localhost", self));
    assert_true(rdt_host_is_local("LocalHost", NULL));
    assert_true(rdt_host_is_local("127.0.0.1", NULL));
    assert_true(rdt_host_is_local("127.1.2.3", NULL));
    assert_true(rdt_host_is_local("me@localhost", NULL));
    assert_true(rdt_host_is_local("node7.example.org", self));
    assert_true(rdt_host_is_local("node7", self)); /* short form of our own name */
    assert_true(rdt_host_is_local("NODE7.example.org", self));
    assert_false(rdt_host_is_local("node7.other.org", self));
    assert_false(rdt_host_is_local("node70", self));
    assert_false(rdt_host_is_local("node7", NULL));
    assert_false(rdt_host_is_local("127.0.0.256", NULL));
    assert_false(rdt_host_is_local("127.0.0", NULL));
    assert_false(rdt_host_is_local("128.0.0.1", NULL));
    assert_false(rdt_host_is_local("localhost2", NULL));
}

static void test_local_hosts_are_marked_in_files(void **state)
{
    rdt_hostlist_t l;
    char err[256];

    assert_int_equal(parse_file("node7 slots=2\nremote:2\n", &l, err, sizeof(err)), 0);
    expect_host(&l, 0, "node7", 2, 1, 1, 1);
    expect_host(&l, 1, "remote", 2, 0, 2, 1);
    rdt_hostlist_fini(&l);
}

static void test_slot_count_errors_name_line_column_and_token(void **state)
{
    expect_file_error("a slots=2\nb slots=2\nnode slots=-2\n",
                      "hosts.txt:3:12: expected a positive integer after 'slots=', got '-2'");
    expect_file_error("node slots=0", "hosts.txt:1:12: expected a positive integer after "
                                      "'slots=', got '0'");
    expect_file_error("node slots=", "hosts.txt:1:12: expected a positive integer after "
                                     "'slots=', got end of line");
    expect_file_error("node slots=\n", "hosts.txt:1:12: expected a positive integer after "
                                       "'slots=', got end of line");
    expect_file_error("node slots=4x", "hosts.txt:1:12: expected a positive integer after "
                                       "'slots=', got '4x'");
    expect_file_error("node slots=2.5", "hosts.txt:1:12: expected a positive integer after "
                                        "'slots=', got '2.5'");
    expect_file_error("node slots=+2", "hosts.txt:1:12: expected a positive integer after "
                                       "'slots=', got '+2'");
    expect_file_error("node slots=99999999999999999999",
                      "hosts.txt:1:12: 99999999999999999999 slots is too many for one host "
                      "(at most 65536)");
    expect_file_error("node slots=65537",
                      "hosts.txt:1:12: 65537 slots is too many for one host (at most 65536)");
    expect_file_error("node:0", "hosts.txt:1:6: expected a positive integer after ':', got '0'");
    expect_file_error("x\nnode:-1",
                      "hosts.txt:2:6: expected a positive integer after ':', got '-1'");
    expect_file_error("node:", "hosts.txt:1:6: expected a positive integer after ':', got end "
                               "of line");
    expect_file_error("node: 2", "hosts.txt:1:6: expected a positive integer after ':', got "
                                 "a space");
    expect_file_error("node max_slots=0",
                      "hosts.txt:1:16: expected a positive integer after 'max_slots=', got '0'");
    expect_file_error("node slots=4 max_slots=2", "hosts.txt:1:6: slots=4 is more than "
                                                  "max_slots=2");
}

static void test_syntax_errors_say_what_was_expected(void **state)
{
    expect_file_error("node cpus=4",
                      "hosts.txt:1:6: expected 'slots=N' or end of line, got 'cpus=4'");
    expect_file_error("node slots", "hosts.txt:1:6: expected 'slots=N' or end of line, got "
                                    "'slots'");
    expect_file_error("node Slots=4",
                      "hosts.txt:1:6: expected 'slots=N' or end of line, got 'Slots=4'");
    expect_file_error("node slots=2 slots=3",
                      "hosts.txt:1:14: 'slots' is given twice for host 'node'");
    expect_file_error("node:2 slots=3",
                      "hosts.txt:1:8: expected end of line after 'node:2', got 'slots=3'");
    expect_file_error("node:2:3", "hosts.txt:1:6: expected a positive integer after ':', got "
                                  "'2:3'");
    expect_file_error("\n\n  :4\n", "hosts.txt:3:3: expected a host name, got ':4'");
    expect_file_error("=4\n", "hosts.txt:1:1: expected a host name, got '=4'");
    expect_file_error("node*1 slots=2", "hosts.txt:1:5: unexpected '*' in host name (letters, "
                                        "digits, '.', '-', '_' and user@ are allowed)");
    expect_file_error("no\001de", "hosts.txt:1:3: unexpected byte 0x01 in host name (letters, "
                                  "digits, '.', '-', '_' and user@ are allowed)");
    expect_file_error("a@b@c", "hosts.txt:1:4: a host name has at most one '@' (user@host)");
    expect_file_error("@host", "hosts.txt:1:1: expected user@host around '@'");
    expect_file_error("user@", "hosts.txt:1:6: expected user@host around '@'");
    expect_file_error("node slots=2 \001",
                      "hosts.txt:1:14: expected 'slots=N' or end of line, got '\\x01'");
}

static void test_nul_bytes_are_errors_not_terminators(void **state)
{
    static const char text[] = "a:1\nb\0c:1\n";
    rdt_hostlist_t l;
    char err[256];

    assert_int_equal(
        rdt_hostlist_parse_file(text, sizeof(text) - 1, "f", NULL, &l, err, sizeof(err)), -1);
    assert_string_equal(err, "f:2:2: unexpected byte 0x00 in host name (letters, digits, '.', "
                             "'-', '_' and user@ are allowed)");
}

static void test_long_names_are_refused(void **state)
{
    char text[400], want[200];

    memset(text, 'a', 256);
    strcpy(text + 256, " slots=1");
    snprintf(want, sizeof(want), "hosts.txt:1:1: host name is longer than 255 characters");
    expect_file_error(text, want);
    text[255] = '\0'; /* 255 is fine */
    {
        rdt_hostlist_t l;
        char err[256];
        assert_int_equal(parse_file(text, &l, err, sizeof(err)), 0);
        assert_int_equal(strlen(l.hosts[0].name), 255);
        rdt_hostlist_fini(&l);
    }
}

static void test_duplicates_are_refused_including_two_names_of_this_machine(void **state)
{
    expect_file_error("a slots=2\nb:2\n a:1\n", "hosts.txt:3:2: host 'a' is listed twice "
                                                "(first at 1:1)");
    expect_file_error("A:1\na:1", "hosts.txt:2:1: host 'a' is listed twice (first at 1:1)");
    expect_file_error("u@a:1\nv@a:1", "hosts.txt:2:1: host 'v@a' is listed twice (first at "
                                      "1:1)");
    expect_file_error("localhost:2\n127.0.0.1:2",
                      "hosts.txt:2:1: host '127.0.0.1' is this machine, already listed as "
                      "'localhost' at 1:1");
    expect_file_error("node7:2\nlocalhost:2", "hosts.txt:2:1: host 'localhost' is this machine, "
                                              "already listed as 'node7' at 1:1");
    expect_inline_error("h1:2,h2:2,h1:1", "-H:1:11: host 'h1' is listed twice (first at 1:1)");
}

static void test_empty_inputs_are_refused(void **state)
{
    expect_file_error("", "hosts.txt:1:1: expected at least one host, got an empty file");
    expect_file_error("# nothing\n\n   \n",
                      "hosts.txt:4:1: expected at least one host, got only comments and blank "
                      "lines");
    expect_inline_error("", "-H:1:1: expected a host list such as 'node1:2,node2:2', got "
                            "nothing");
}

static void test_inline_errors_name_the_column(void **state)
{
    expect_inline_error("h1:2,h2:x", "-H:1:9: expected a positive integer after ':', got 'x'");
    expect_inline_error("h1:2,,h2", "-H:1:6: expected a host name, got ','");
    expect_inline_error("h1:2,", "-H:1:6: expected a host name, got end of list");
    expect_inline_error("h1:", "-H:1:4: expected a positive integer after ':', got end of list");
    expect_inline_error("h1:0,h2", "-H:1:4: expected a positive integer after ':', got '0'");
    expect_inline_error("h1 slots=2", "-H:1:3: expected ',' or ':N' after host 'h1', got a "
                                      "space");
    expect_inline_error("h1:2, h2:2", "-H:1:6: expected a host name, got a space");
    expect_inline_error("h1#x", "-H:1:3: unexpected '#' in host name (letters, digits, '.', "
                                "'-', '_' and user@ are allowed)");
    expect_inline_error("localhost,127.0.0.1:3", "-H:1:11: host '127.0.0.1' is this machine, "
                                                 "already listed as 'localhost' at 1:1");
}

static void test_error_buffer_may_be_small_or_absent(void **state)
{
    rdt_hostlist_t l;
    char err[8];

    assert_int_equal(parse_file("a:0", &l, err, sizeof(err)), -1);
    assert_string_equal(err, "hosts.t");
    assert_int_equal(parse_file("a:0", &l, NULL, 0), -1);
}

static void test_placement_fills_hosts_in_order(void **state)
{
    rdt_hostlist_t l;
    rdt_rank_place_t p[8];
    char err[256];
    static const int want_host[] = {0, 0, 0, 1, 1, 2};
    static const int want_local[] = {0, 1, 2, 0, 1, 0};
    int i;

    assert_int_equal(rdt_hostlist_parse_inline("a:3,b:2,c:4", NULL, &l, err, sizeof(err)), 0);
    assert_int_equal(rdt_hostlist_place(&l, 6, 0, "-H", p, err, sizeof(err)), 0);
    for (i = 0; i < 6; i++) {
        assert_int_equal(p[i].host, want_host[i]);
        assert_int_equal(p[i].local_rank, want_local[i]);
    }
    assert_int_equal(rdt_hostlist_place(&l, 1, 0, "-H", p, err, sizeof(err)), 0);
    assert_int_equal(p[0].host, 0);
    rdt_hostlist_fini(&l);
}

static void test_placement_refuses_more_ranks_than_slots_unless_oversubscribed(void **state)
{
    rdt_hostlist_t l;
    rdt_rank_place_t p[16];
    char err[256];
    static const int want_count[] = {4, 3, 3}; /* 3+1, 2+1, 2+1 */
    int count[3] = {0}, i;

    assert_int_equal(rdt_hostlist_parse_inline("a:3,b:2,c:2", NULL, &l, err, sizeof(err)), 0);
    assert_int_equal(rdt_hostlist_place(&l, 8, 0, "-H", p, err, sizeof(err)), -1);
    assert_string_equal(err, "-np 8 is more than the 7 slots of -H (3 hosts); list more slots, "
                             "lower -np, or pass --oversubscribe");
    assert_int_equal(rdt_hostlist_place(&l, 10, 1, "-H", p, err, sizeof(err)), 0);
    for (i = 0; i < 10; i++) {
        count[p[i].host]++;
        if (i > 0 && p[i].host == p[i - 1].host)
            assert_int_equal(p[i].local_rank, p[i - 1].local_rank + 1);
        else
            assert_int_equal(p[i].local_rank, 0);
    }
    for (i = 0; i < 3; i++)
        assert_int_equal(count[i], want_count[i]);
    assert_int_equal(rdt_hostlist_place(&l, 0, 1, "-H", p, err, sizeof(err)), -1);
    assert_string_equal(err, "-np must be from 1 to 1048576, got 0");
    assert_int_equal(rdt_hostlist_place(&l, -3, 1, "-H", p, err, sizeof(err)), -1);
    rdt_hostlist_fini(&l);

    assert_int_equal(rdt_hostlist_local(2, &l, err, sizeof(err)), 0);
    expect_host(&l, 0, "localhost", 2, 1, 0, 0);
    assert_int_equal(rdt_hostlist_place(&l, 3, 0, "this host", p, err, sizeof(err)), -1);
    assert_string_equal(err, "-np 3 is more than the 2 slots of this host (1 host); list more "
                             "slots, lower -np, or pass --oversubscribe");
    rdt_hostlist_fini(&l);
    assert_int_equal(rdt_hostlist_local(0, &l, err, sizeof(err)), -1);
}

/* Every prefix of a valid file parses or fails cleanly (no reads past the given length). */
static void test_every_prefix_of_a_file_is_handled(void **state)
{
    const char *text = "# c\nnode1 slots=4 max_slots=9 # x\r\nnode2:3\nu@node3\n";
    size_t n, len = strlen(text);

    for (n = 0; n <= len; n++) {
        char *copy = malloc(n ? n : 1); /* exact size: ASan catches any overread */
        rdt_hostlist_t l;
        char err[256];
        assert_non_null(copy);
        memcpy(copy, text, n);
        if (rdt_hostlist_parse_file(copy, n, "p", NULL, &l, err, sizeof(err)) == 0)
            rdt_hostlist_fini(&l);
        else
            assert_true(strncmp(err, "p:", 2) == 0);
        free(copy);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_mpi_form_with_comments_blank_lines_and_crlf),
        cmocka_unit_test(test_horovod_form_and_mixed_forms),
        cmocka_unit_test(test_inline_lists),
        cmocka_unit_test(test_local_names_are_localhost_loopback_and_own_name),
        cmocka_unit_test(test_local_hosts_are_marked_in_files),
        cmocka_unit_test(test_slot_count_errors_name_line_column_and_token),
        cmocka_unit_test(test_syntax_errors_say_what_was_expected),
        cmocka_unit_test(test_nul_bytes_are_errors_not_terminators),
        cmocka_unit_test(test_long_names_are_refused),
        cmocka_unit_test(test_duplicates_are_refused_including_two_names_of_this_machine),
        cmocka_unit_test(test_empty_inputs_are_refused),
        cmocka_unit_test(test_inline_errors_name_the_column),
        cmocka_unit_test(test_error_buffer_may_be_small_or_absent),
        cmocka_unit_test(test_placement_fills_hosts_in_order),
        cmocka_unit_test(test_placement_refuses_more_ranks_than_slots_unless_oversubscribed),
        cmocka_unit_test(test_every_prefix_of_a_file_is_handled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
