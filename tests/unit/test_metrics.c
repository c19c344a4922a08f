/*
 * test_metrics.c - what the trainer reports (trainer/metrics.c): CSV and JSON-lines records read
 * back field by field, NaN as JSON null, the SVG plot's structure and escaping, and the
 * progress output in both its terminal and its log-file forms (no timing: only what is
 * guaranteed whatever the speed of the machine).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"

typedef struct {
    char base[64];
    char path[128];
    char err[512];
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));

    if (!fx)
        return -1;
    snprintf(fx->base, sizeof(fx->base), "/tmp/rdt_test_metrics_XXXXXX");
    if (!mkdtemp(fx->base)) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

/* The tests create at most these files in base. */
static int teardown(void **state)
{
    static const char *const names[] = {"m.csv", "m.jsonl", "m.json", "plot.svg", "plot.svg.tmp"};
    fx_t *fx = *state;
    char path[128];
    size_t i;
    int rc;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", fx->base, names[i]);
        unlink(path);
    }
    rc = rmdir(fx->base);
    free(fx);
    return rc;
}

static const char *in_base(fx_t *fx, const char *name)
{
    snprintf(fx->path, sizeof(fx->path), "%s/%s", fx->base, name);
    return fx->path;
}

static char *slurp_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long len;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);
    buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    fclose(f);
    return buf;
}

/* Everything written to a tmpfile(), as a string. */
static char *slurp_stream(FILE *f)
{
    char *buf;
    long len;

    fflush(f);
    len = ftell(f);
    rewind(f);
    buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    return buf;
}

static int count_char(const char *s, char c)
{
    int n = 0;

    for (; *s; s++)
        n += *s == c;
    return n;
}

/* Values with at most six significant digits, so that %.6g writes them exactly. */
static const rdt_epoch_metrics_t rows[3] = {
    {1, 2.30259, 0.1135, 2.29, 0.1028, 12.5, 4800, 0.25, 123456789012ULL},
    {2, 0.512345, 0.8765, 0.4, 0.9, 11.75, 5106.38, 0.3125, 0},
    {3, 1e-05, 1, 3.5e-07, 0.99999, 0.001, 1.5e+06, 0, UINT64_MAX},
};

static void test_csv_has_the_header_and_every_record_reads_back_equal(void **state)
{
    fx_t *fx = *state;
    rdt_metrics_t m;
    char *text, *line, *save = NULL;
    int i;

    assert_int_equal(rdt_metrics_open(&m, in_base(fx, "m.csv"), fx->err, sizeof(fx->err)), 0);
    assert_int_equal(m.json, 0);
    for (i = 0; i < 3; i++)
        assert_int_equal(rdt_metrics_append(&m, &rows[i], fx->err, sizeof(fx->err)), 0);
    assert_int_equal(rdt_metrics_close(&m, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(rdt_metrics_close(&m, fx->err, sizeof(fx->err)), 0); /* twice is fine */

    text = slurp_file(fx->path);
    assert_int_equal(count_char(text, '\n'), 4);
    line = strtok_r(text, "\n", &save);
    assert_string_equal(line, "epoch,train_loss,train_acc,test_loss,test_acc,seconds,"
                              "samples_per_s,comm_share,bytes_sent");
    for (i = 0; i < 3; i++) {
        rdt_epoch_metrics_t r;
        line = strtok_r(NULL, "\n", &save);
        assert_non_null(line);
        assert_int_equal(sscanf(line, "%d,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%" SCNu64, &r.epoch,
                                &r.train_loss, &r.train_acc, &r.test_loss, &r.test_acc, &r.seconds,
                                &r.samples_per_s, &r.comm_share, &r.bytes_sent),
                         9);
        assert_int_equal(r.epoch, rows[i].epoch);
        assert_true(r.train_loss == rows[i].train_loss);
        assert_true(r.train_acc == rows[i].train_acc);
        assert_true(r.test_loss == rows[i].test_loss);
        assert_true(r.test_acc == rows[i].test_acc);
        assert_true(r.seconds == rows[i].seconds);
        assert_true(r.samples_per_s == rows[i].samples_per_s);
        assert_true(r.comm_share == rows[i].comm_share);
        assert_true(r.bytes_sent == rows[i].bytes_sent);
    }
    free(text);
}

/* The number after "key": in a JSON object, or NAN if the value is null. */
static double json_field(const char *obj, const char *key)
{
    char pat[64];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(obj, pat);
    if (!p)
        fail_msg("no %s in %s", pat, obj);
    p += strlen(pat);
    if (strncmp(p, "null", 4) == 0)
        return NAN;
    return strtod(p, NULL);
}

static void test_json_lines_read_back_equal_and_nan_is_null(void **state)
{
    fx_t *fx = *state;
    rdt_epoch_metrics_t odd = rows[1];
    rdt_metrics_t m;
    char *text, *line, *save = NULL;
    int i;

    odd.epoch = 4;
    odd.test_loss = NAN;
    odd.train_loss = INFINITY;
    odd.samples_per_s = -INFINITY;
    assert_int_equal(rdt_metrics_open(&m, in_base(fx, "m.jsonl"), fx->err, sizeof(fx->err)), 0);
    assert_int_equal(m.json, 1);
    for (i = 0; i < 3; i++)
        assert_int_equal(rdt_metrics_append(&m, &rows[i], fx->err, sizeof(fx->err)), 0);
    assert_int_equal(rdt_metrics_append(&m, &odd, fx->err, sizeof(fx->err)), 0);
    /* Flushed per record: the file is complete before close. */
    text = slurp_file(fx->path);
    assert_int_equal(count_char(text, '\n'), 4);
    free(text);
    assert_int_equal(rdt_metrics_close(&m, fx->err, sizeof(fx->err)), 0);

    text = slurp_file(fx->path);
    assert_null(strstr(text, "nan"));
    assert_null(strstr(text, "inf"));
    line = strtok_r(text, "\n", &save);
    for (i = 0; i < 4; i++) {
        const rdt_epoch_metrics_t *r = i < 3 ? &rows[i] : &odd;
        char bytes[32];
        assert_non_null(line);
        assert_true(strncmp(line, "{\"epoch\":", 9) == 0);
        assert_int_equal(line[strlen(line) - 1], '}');
        assert_int_equal(count_char(line, ':'), 9);
        assert_true(json_field(line, "epoch") == r->epoch);
        if (i < 3) {
            assert_true(json_field(line, "train_loss") == r->train_loss);
            assert_true(json_field(line, "test_loss") == r->test_loss);
            assert_true(json_field(line, "samples_per_s") == r->samples_per_s);
        } else {
            assert_non_null(strstr(line, "\"train_loss\":null,"));
            assert_non_null(strstr(line, "\"test_loss\":null,"));
            assert_non_null(strstr(line, "\"samples_per_s\":null,"));
        }
        assert_true(json_field(line, "train_acc") == r->train_acc);
        assert_true(json_field(line, "test_acc") == r->test_acc);
        assert_true(json_field(line, "seconds") == r->seconds);
        assert_true(json_field(line, "comm_share") == r->comm_share);
        snprintf(bytes, sizeof(bytes), "\"bytes_sent\":%" PRIu64 "}", r->bytes_sent);
        assert_non_null(strstr(line, bytes));
        line = strtok_r(NULL, "\n", &save);
    }
    assert_null(line);
    free(text);

    assert_int_equal(rdt_metrics_open(&m, in_base(fx, "m.json"), fx->err, sizeof(fx->err)), 0);
    assert_int_equal(m.json, 1);
    assert_int_equal(rdt_metrics_close(&m, fx->err, sizeof(fx->err)), 0);
}

static void test_metrics_errors_name_the_path(void **state)
{
    fx_t *fx = *state;
    rdt_metrics_t m;

    assert_int_equal(rdt_metrics_open(&m, "/nonexistent-rdt-dir/m.csv", fx->err, sizeof(fx->err)),
                     -1);
    assert_non_null(strstr(fx->err, "/nonexistent-rdt-dir/m.csv"));
    assert_non_null(strstr(fx->err, "No such file or directory"));
    /* /dev/full takes the open and refuses the first flush: the CSV header. */
    assert_int_equal(rdt_metrics_open(&m, "/dev/full", fx->err, sizeof(fx->err)), -1);
    assert_non_null(strstr(fx->err, "/dev/full"));
    assert_non_null(strstr(fx->err, "No space left on device"));
}

static void test_svg_plot_is_a_complete_escaped_document(void **state)
{
    fx_t *fx = *state;
    rdt_epoch_metrics_t r[12];
    char *svg;
    int i;

    for (i = 0; i < 12; i++) {
        r[i] = rows[0];
        r[i].epoch = i + 1;
        r[i].train_loss = 2.3 / (i + 1);
        r[i].test_loss = 2.4 / (i + 1);
        r[i].test_acc = 0.1 + 0.07 * i;
        r[i].train_acc = 0.12 + 0.07 * i;
    }
    r[5].test_loss = NAN; /* a skipped evaluation */
    r[6].test_acc = INFINITY;
    assert_int_equal(
        rdt_plot_svg(in_base(fx, "plot.svg"), r, 12, "a & b <c> \"d\"", fx->err, sizeof(fx->err)),
        0);
    svg = slurp_file(fx->path);
    assert_true(strncmp(svg, "<?xml", 5) == 0);
    assert_non_null(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_non_null(strstr(svg, "width=\"900\""));
    assert_non_null(strstr(svg, "height=\"420\""));
    assert_string_equal(svg + strlen(svg) - 7, "</svg>\n");
    assert_int_equal(count_char(svg, '<'), count_char(svg, '>')); /* no stray < or > in text */
    assert_non_null(strstr(svg, ">a &amp; b &lt;c&gt; &quot;d&quot;</text>"));
    assert_non_null(strstr(svg, "<polyline"));
    assert_non_null(strstr(svg, ">epoch</text>"));
    assert_non_null(strstr(svg, ">loss</text>"));
    assert_non_null(strstr(svg, ">test loss</text>"));
    assert_non_null(strstr(svg, ">test accuracy</text>"));
    assert_non_null(strstr(svg, ">12</text>")); /* an x tick at the last epoch */
    assert_null(strstr(svg, "nan"));
    assert_null(strstr(svg, "inf"));
    assert_int_equal(access(in_base(fx, "plot.svg.tmp"), F_OK), -1);
    free(svg);
}

static void test_svg_plot_of_one_epoch_draws_a_marker(void **state)
{
    fx_t *fx = *state;
    char *svg;

    assert_int_equal(
        rdt_plot_svg(in_base(fx, "plot.svg"), rows, 1, "one", fx->err, sizeof(fx->err)), 0);
    svg = slurp_file(fx->path);
    assert_non_null(strstr(svg, "<circle"));
    assert_non_null(strstr(svg, "</svg>"));
    assert_null(strstr(svg, "nan"));
    assert_null(strstr(svg, "inf"));
    free(svg);

    /* An epoch with nothing finite still gives a document. */
    {
        rdt_epoch_metrics_t r = {1, NAN, NAN, NAN, NAN, 0, 0, 0, 0};
        assert_int_equal(
            rdt_plot_svg(in_base(fx, "plot.svg"), &r, 1, NULL, fx->err, sizeof(fx->err)), 0);
        svg = slurp_file(fx->path);
        assert_non_null(strstr(svg, "</svg>"));
        assert_null(strstr(svg, "nan"));
        free(svg);
    }
}

static void test_svg_plot_errors_name_the_path(void **state)
{
    fx_t *fx = *state;

    assert_int_equal(
        rdt_plot_svg("/nonexistent-rdt-dir/p.svg", rows, 3, "t", fx->err, sizeof(fx->err)), -1);
    assert_non_null(strstr(fx->err, "/nonexistent-rdt-dir/p.svg"));
    assert_int_equal(rdt_plot_svg(in_base(fx, "plot.svg"), rows, 0, "t", fx->err, sizeof(fx->err)),
                     -1);
    assert_non_null(strstr(fx->err, fx->path));
    assert_int_equal(access(fx->path, F_OK), -1);
}

/* Feed steps 1..total one by one into a non-tty progress; return what it printed. */
static char *progress_log(long total)
{
    FILE *f = tmpfile();
    rdt_progress_t p;
    char *out;
    long s;

    assert_non_null(f);
    rdt_progress_begin(&p, f, 0, 3, 10, total);
    for (s = 1; s <= total; s++)
        rdt_progress_update(&p, s, 0.5, 1000);
    rdt_progress_end(&p);
    out = slurp_stream(f);
    fclose(f);
    return out;
}

static void test_progress_in_a_log_prints_one_line_per_tenth(void **state)
{
    char *out = progress_log(100), *line, *save = NULL, want[64];
    int k = 0;

    assert_int_equal(count_char(out, '\n'), 10);
    assert_int_equal(count_char(out, '\r'), 0);
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        k++;
        snprintf(want, sizeof(want), "epoch 3/10 %3d%%  %d/100 steps  loss 0.5000", 10 * k, 10 * k);
        if (strncmp(line, want, strlen(want)) != 0)
            fail_msg("line %d is \"%s\", expected it to start \"%s\"", k, line, want);
    }
    assert_int_equal(k, 10);
    free(out);

    /* Fewer steps than tenths: one line per step, never two for one step. */
    out = progress_log(7);
    assert_int_equal(count_char(out, '\n'), 7);
    assert_non_null(strstr(out, " 7/7 steps"));
    free(out);
    /* 1000 steps: still ten lines, at 100, 200, ... 1000. */
    out = progress_log(1000);
    assert_int_equal(count_char(out, '\n'), 10);
    assert_non_null(strstr(out, " 100/1000 steps"));
    assert_null(strstr(out, " 101/1000 steps"));
    free(out);
}

static void test_progress_in_a_log_skips_tenths_it_jumped_over(void **state)
{
    FILE *f = tmpfile();
    rdt_progress_t p;
    char *out;

    assert_non_null(f);
    rdt_progress_begin(&p, f, 0, 1, 1, 1000);
    rdt_progress_update(&p, 99, 1, 1);   /* before the first tenth: nothing */
    rdt_progress_update(&p, 250, 1, 1);  /* one line, not two */
    rdt_progress_update(&p, 299, 1, 1);  /* nothing: the next line is due at 300 */
    rdt_progress_update(&p, 1000, 1, 1); /* one line */
    rdt_progress_end(&p);
    out = slurp_stream(f);
    assert_int_equal(count_char(out, '\n'), 2);
    assert_non_null(strstr(out, " 25%  250/1000 steps"));
    assert_non_null(strstr(out, "100%  1000/1000 steps"));
    free(out);
    fclose(f);
}

static void test_progress_on_a_terminal_redraws_in_place_and_ends_at_100(void **state)
{
    FILE *f = tmpfile();
    rdt_progress_t p;
    char *out, *last;
    long s;

    assert_non_null(f);
    rdt_progress_begin(&p, f, 1, 2, 5, 100);
    for (s = 1; s <= 100; s++)
        rdt_progress_update(&p, s, 0.25, 12345);
    out = slurp_stream(f);
    /* The first step and the last are always drawn, those between as time allows. */
    assert_in_range(count_char(out, '\r'), 2, 100);
    assert_int_equal(count_char(out, '\n'), 0);
    assert_true(strncmp(out, "\repoch 2/5 [", 12) == 0);
    last = strrchr(out, '\r');
    assert_non_null(strstr(last, "[####################] 100%  100/100 steps  loss 0.2500  "
                                 "12345 samples/s"));
    free(out);

    rdt_progress_end(&p);
    out = slurp_stream(f);
    assert_int_equal(out[strlen(out) - 1], '\n');
    assert_int_equal(count_char(out, '\n'), 1);
    free(out);
    fclose(f);
}

static void test_progress_end_without_a_bar_prints_nothing(void **state)
{
    FILE *f = tmpfile();
    rdt_progress_t p;
    char *out;

    assert_non_null(f);
    rdt_progress_begin(&p, f, 1, 1, 1, 50);
    rdt_progress_end(&p);
    rdt_progress_begin(&p, f, 0, 1, 1, 50);
    rdt_progress_end(&p);
    out = slurp_stream(f);
    assert_string_equal(out, "");
    free(out);
    fclose(f);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_csv_has_the_header_and_every_record_reads_back_equal),
        T(test_json_lines_read_back_equal_and_nan_is_null),
        T(test_metrics_errors_name_the_path),
        T(test_svg_plot_is_a_complete_escaped_document),
        T(test_svg_plot_of_one_epoch_draws_a_marker),
        T(test_svg_plot_errors_name_the_path),
        cmocka_unit_test(test_progress_in_a_log_prints_one_line_per_tenth),
        cmocka_unit_test(test_progress_in_a_log_skips_tenths_it_jumped_over),
        cmocka_unit_test(test_progress_on_a_terminal_redraws_in_place_and_ends_at_100),
        cmocka_unit_test(test_progress_end_without_a_bar_prints_nothing),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
