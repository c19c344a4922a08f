/*
 * test_data.c - the dataset reader (trainer/data.c): IDX files written here, plain and gzipped,
 * read back value for value; every malformed file refused with a sentence naming the file and
 * the fault; mutated files never crash it; and the installed Fashion-MNIST, whose facts (first
 * labels, pixel sums, 1000 test images per class) were taken from the files independently.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data.h"
#include "testutil.h"

#define TRAIN_IMAGES "train-images-idx3-ubyte"
#define TRAIN_LABELS "train-labels-idx1-ubyte"
#define TEST_IMAGES  "t10k-images-idx3-ubyte"
#define TEST_LABELS  "t10k-labels-idx1-ubyte"

/* The temporary directory of the whole run (group setup), emptied between tests. */
static char tmpdir[64];

/* An IDX file being built in memory. */
typedef struct {
    unsigned char buf[1 << 16];
    size_t len;
} idx_t;

static void put_be32(idx_t *f, uint32_t v)
{
    f->buf[f->len++] = (unsigned char)(v >> 24);
    f->buf[f->len++] = (unsigned char)(v >> 16);
    f->buf[f->len++] = (unsigned char)(v >> 8);
    f->buf[f->len++] = (unsigned char)v;
}

/* Magic 0 0 type ndims, the sizes, then @p n data bytes. */
static void idx_build(idx_t *f, int type, int ndims, const uint32_t *dims, const void *data,
                      size_t n)
{
    f->len = 0;
    put_be32(f, (uint32_t)type << 8 | (uint32_t)ndims);
    for (int i = 0; i < ndims; i++)
        put_be32(f, dims[i]);
    assert_true(f->len + n <= sizeof(f->buf));
    memcpy(f->buf + f->len, data, n);
    f->len += n;
}

static void path_of(const char *name, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", tmpdir, name);
}

/* Write @p n bytes as tmpdir/name, plain, or gzipped (and named name.gz) when @p gz. */
static void write_file(const char *name, const void *bytes, size_t n, int gz)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s%s", tmpdir, name, gz ? ".gz" : "");
    if (gz) {
        gzFile f = gzopen(path, "wb");

        assert_non_null(f);
        if (n)
            assert_int_equal(gzwrite(f, bytes, (unsigned)n), (int)n);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");

        assert_non_null(f);
        assert_int_equal(fwrite(bytes, 1, n, f), n);
        assert_int_equal(fclose(f), 0);
    }
}

/* Pixel i of the synthetic images: covers 0 and 255 and values between. */
static uint8_t pixel(int i)
{
    return (uint8_t)(i * 37 % 256);
}

/* n images of rows x cols (pixel(i)) and labels i % 10, as files with the given names. */
static void write_set(const char *iname, const char *lname, int n, int rows, int cols, int gz)
{
    static idx_t f;
    uint8_t data[4096];
    uint32_t idims[3] = {(uint32_t)n, (uint32_t)rows, (uint32_t)cols}, ldims[1] = {(uint32_t)n};

    assert_true(n * rows * cols <= (int)sizeof(data));
    for (int i = 0; i < n * rows * cols; i++)
        data[i] = pixel(i);
    idx_build(&f, 0x08, 3, idims, data, (size_t)(n * rows * cols));
    write_file(iname, f.buf, f.len, gz);
    for (int i = 0; i < n; i++)
        data[i] = (uint8_t)(i % 10);
    idx_build(&f, 0x08, 1, ldims, data, (size_t)n);
    write_file(lname, f.buf, f.len, gz);
}

static void empty_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char path[512];

    if (!d)
        return;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

static int group_setup(void **state)
{
    const char *base = getenv("TMPDIR");

    snprintf(tmpdir, sizeof(tmpdir), "%s/rdt_test_data_XXXXXX",
             base && *base && strlen(base) < 32 ? base : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    empty_tmpdir();
    return rmdir(tmpdir);
}

static int test_teardown(void **state)
{
    empty_tmpdir();
    return 0;
}

static void expect_set(const rdt_dataset_t *ds, int n, int rows, int cols)
{
    assert_int_equal(ds->n, n);
    assert_int_equal(ds->rows, rows);
    assert_int_equal(ds->cols, cols);
    assert_int_equal(ds->dim, rows * cols);
    for (int i = 0; i < n * rows * cols; i++) {
        /* exactly pixel / 255.0f, and that is within float rounding of the real quotient */
        assert_true(ds->x[i] == pixel(i) / 255.0f);
        assert_true(fabs(ds->x[i] - pixel(i) / 255.0) <= 1e-7);
        assert_true(ds->x[i] >= 0.0f && ds->x[i] <= 1.0f);
    }
    for (int i = 0; i < n; i++)
        assert_int_equal(ds->y[i], i % 10);
}

/* ------------------------------------------------------------------------------------------- */
/* Good files                                                                                   */
/* ------------------------------------------------------------------------------------------- */

static void test_plain_files_load_with_pixels_scaled_to_unit_interval(void **state)
{
    rdt_dataset_t ds;
    char err[512] = "";

    write_set(TRAIN_IMAGES, TRAIN_LABELS, 12, 3, 4, 0);
    if (rdt_dataset_load(tmpdir, 0, 0, &ds, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    expect_set(&ds, 12, 3, 4);
    assert_true(ds.x[0] == 0.0f);
    rdt_dataset_free(&ds);
    rdt_dataset_free(NULL);
}

static void test_gzipped_test_set_loads_and_gz_is_preferred_over_plain(void **state)
{
    rdt_dataset_t ds;
    char err[512] = "";
    static idx_t f;
    const uint32_t ldims[1] = {12};
    const uint8_t other[12] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};

    write_set(TEST_IMAGES, TEST_LABELS, 12, 5, 2, 1);
    /* A plain labels file next to the .gz, with other labels: must be ignored. */
    idx_build(&f, 0x08, 1, ldims, other, sizeof(other));
    write_file(TEST_LABELS, f.buf, f.len, 0);
    if (rdt_dataset_load(tmpdir, 1, 0, &ds, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    expect_set(&ds, 12, 5, 2);
    rdt_dataset_free(&ds);

    /* Only the plain file: it is used. */
    {
        char path[256];

        snprintf(path, sizeof(path), "%s/%s.gz", tmpdir, TEST_LABELS);
        assert_int_equal(unlink(path), 0);
    }
    if (rdt_dataset_load(tmpdir, 1, 0, &ds, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(ds.y[0], 9);
    rdt_dataset_free(&ds);
}

static void test_limit_keeps_the_first_samples(void **state)
{
    rdt_dataset_t ds;
    char err[512] = "";

    write_set(TRAIN_IMAGES, TRAIN_LABELS, 12, 3, 4, 1);
    assert_int_equal(rdt_dataset_load(tmpdir, 0, 5, &ds, err, sizeof(err)), 0);
    expect_set(&ds, 5, 3, 4);
    rdt_dataset_free(&ds);
    assert_int_equal(rdt_dataset_load(tmpdir, 0, 1000, &ds, err, sizeof(err)), 0);
    expect_set(&ds, 12, 3, 4);
    rdt_dataset_free(&ds);
}

static void test_idx_read_returns_dims_and_raw_bytes(void **state)
{
    static idx_t f;
    const uint32_t dims[3] = {2, 3, 5};
    uint8_t data[30], *got = NULL;
    int d[3] = {-1, -1, -1};
    size_t len = 0;
    char path[256], err[512] = "";

    for (int i = 0; i < 30; i++)
        data[i] = (uint8_t)(255 - i);
    idx_build(&f, 0x08, 3, dims, data, sizeof(data));
    write_file("a.idx", f.buf, f.len, 1);
    path_of("a.idx.gz", path, sizeof(path));
    if (rdt_idx_read(path, 3, d, &got, &len, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(d[0], 2);
    assert_int_equal(d[1], 3);
    assert_int_equal(d[2], 5);
    assert_int_equal(len, 30);
    assert_memory_equal(got, data, 30);
    free(got);
}

/* ------------------------------------------------------------------------------------------- */
/* Bad files                                                                                    */
/* ------------------------------------------------------------------------------------------- */

/* Loading the train set from tmpdir fails, leaves ds alone and says @p name and every word. */
static void expect_load_error(const char *name, const char *w1, const char *w2)
{
    rdt_dataset_t ds, before;
    char err[512] = "";

    memset(&ds, 0x5a, sizeof(ds));
    before = ds;
    assert_int_equal(rdt_dataset_load(tmpdir, 0, 0, &ds, err, sizeof(err)), -1);
    assert_memory_equal(&ds, &before, sizeof(ds));
    if (!strstr(err, name) || !strstr(err, w1) || (w2 && !strstr(err, w2)))
        fail_msg("error \"%s\" should name %s and say \"%s\"%s%s", err, name, w1, w2 ? " and " : "",
                 w2 ? w2 : "");
    print_message("  %s\n", err);
}

/* Replace the train images file by @p f (plain), next to good labels for 4 samples. */
static void with_images(const idx_t *f)
{
    write_set(TRAIN_IMAGES, TRAIN_LABELS, 4, 2, 2, 0);
    write_file(TRAIN_IMAGES, f->buf, f->len, 0);
}

static void test_missing_files_name_both_candidates(void **state)
{
    char dir[256];

    expect_load_error(TRAIN_IMAGES ".gz", "neither", TRAIN_IMAGES " exists");
    write_set(TRAIN_IMAGES, TRAIN_LABELS, 4, 2, 2, 1);
    snprintf(dir, sizeof(dir), "%s/%s.gz", tmpdir, TRAIN_LABELS);
    assert_int_equal(unlink(dir), 0);
    expect_load_error(TRAIN_LABELS ".gz", "neither", TRAIN_LABELS " exists");
}

static void test_bad_magic_is_not_an_idx_file(void **state)
{
    static idx_t f;

    memcpy(f.buf, "GIF89a..........", 16);
    f.len = 16;
    with_images(&f);
    expect_load_error(TRAIN_IMAGES, "not an IDX file", "magic");

    f.len = 0; /* empty file */
    with_images(&f);
    expect_load_error(TRAIN_IMAGES, "not an IDX file", NULL);

    f.len = 3; /* shorter than the magic */
    with_images(&f);
    expect_load_error(TRAIN_IMAGES, "not an IDX file", NULL);
}

static void test_other_element_types_are_refused(void **state)
{
    static idx_t f;
    const uint32_t dims[3] = {4, 2, 2};
    const float data[16] = {0};

    idx_build(&f, 0x0D, 3, dims, data, sizeof(data));
    with_images(&f);
    expect_load_error(TRAIN_IMAGES, "element type 0x0d", "unsigned bytes");
    idx_build(&f, 0x42, 3, dims, data, 16);
    with_images(&f);
    expect_load_error(TRAIN_IMAGES, "element type 0x42", "not an IDX file");
}

static void test_wrong_dimension_count_is_refused(void **state)
{
    static idx_t f;
    const uint32_t dims[2] = {4, 4};
    const uint8_t data[16] = {0};

    idx_build(&f, 0x08, 2, dims, data, sizeof(data));
    with_images(&f);
    expect_load_error(TRAIN_IMAGES, "2 dimensions", "expected 3");

    /* labels with 3 dimensions */
    write_set(TRAIN_IMAGES, TRAIN_LABELS, 4, 2, 2, 0);
    write_set(TRAIN_LABELS, "unused", 4, 2, 2, 0);
    expect_load_error(TRAIN_LABELS, "3 dimensions", "expected 1");
}

static void test_truncated_data_and_header_say_how_much_arrived(void **state)
{
    static idx_t f;
    const uint32_t dims[3] = {4, 2, 2};
    const uint8_t data[16] = {0};

    idx_build(&f, 0x08, 3, dims, data, sizeof(data));
    f.len -= 7;
    with_images(&f);
    expect_load_error(TRAIN_IMAGES, "truncated", "expected 16 bytes of data, got 9");

    f.len = 10; /* magic and 1.5 sizes */
    with_images(&f);
    expect_load_error(TRAIN_IMAGES, "truncated header", NULL);

    /* Gzipped and cut: the same, never a crash. */
    idx_build(&f, 0x08, 3, dims, data, sizeof(data));
    f.len -= 7;
    write_set(TRAIN_IMAGES, TRAIN_LABELS, 4, 2, 2, 1);
    write_file(TRAIN_IMAGES, f.buf, f.len, 1);
    expect_load_error(TRAIN_IMAGES ".gz", "truncated", "got 9");
}

static void test_trailing_bytes_are_refused(void **state)
{
    static idx_t f;
    const uint32_t dims[3] = {4, 2, 2};
    const uint8_t data[17] = {0};

    idx_build(&f, 0x08, 3, dims, data, sizeof(data));
    with_images(&f);
    expect_load_error(TRAIN_IMAGES, "trailing bytes", NULL);
}

static void test_label_out_of_range_names_sample_and_value(void **state)
{
    static idx_t f;
    const uint32_t dims[1] = {4};
    const uint8_t labels[4] = {0, 9, 3, 10};

    write_set(TRAIN_IMAGES, TRAIN_LABELS, 4, 2, 2, 0);
    idx_build(&f, 0x08, 1, dims, labels, sizeof(labels));
    write_file(TRAIN_LABELS, f.buf, f.len, 0);
    expect_load_error(TRAIN_LABELS, "sample 3 is 10", "out of range");
}

static void test_image_and_label_counts_must_agree(void **state)
{
    static idx_t f;
    const uint32_t dims[1] = {3};
    const uint8_t labels[3] = {0, 1, 2};

    write_set(TRAIN_IMAGES, TRAIN_LABELS, 4, 2, 2, 0);
    idx_build(&f, 0x08, 1, dims, labels, sizeof(labels));
    write_file(TRAIN_LABELS, f.buf, f.len, 0);
    expect_load_error(TRAIN_IMAGES, "4 images", "3 labels");
    expect_load_error(TRAIN_LABELS, "counts differ", NULL);
}

static void test_huge_or_empty_sizes_are_refused_before_allocating(void **state)
{
    static idx_t f;
    const uint32_t huge[3] = {0xffffffffu, 0xffffffffu, 0xffffffffu};
    const uint32_t just_over[3] = {2, 1u << 30, 2};  /* 2^32 bytes */
    const uint32_t one_dim[3] = {1, 1, 0x80000000u}; /* 2^31 bytes, but a size above INT_MAX */
    const uint32_t at_limit[3] = {2, 1u << 29, 2};   /* exactly 2^31 bytes: allowed, then short */
    const uint32_t zero_rows[3] = {4, 0, 2};
    const uint8_t data[8] = {1, 2, 3, 4, 5, 6, 7, 8};

    idx_build(&f, 0x08, 3, huge, data, sizeof(data));
    with_images(&f);
    expect_load_error(TRAIN_IMAGES, "too large", NULL);
    idx_build(&f, 0x08, 3, just_over, data, sizeof(data));
    with_images(&f);
    expect_load_error(TRAIN_IMAGES, "too large", NULL);
    idx_build(&f, 0x08, 3, one_dim, data, sizeof(data));
    with_images(&f);
    expect_load_error(TRAIN_IMAGES, "too large", NULL);
    idx_build(&f, 0x08, 3, at_limit, data, sizeof(data));
    with_images(&f);
    expect_load_error(TRAIN_IMAGES, "truncated", "expected 2147483648 bytes of data, got 8");
    idx_build(&f, 0x08, 3, zero_rows, data, 0);
    with_images(&f);
    expect_load_error(TRAIN_IMAGES, "0 x 2", NULL);
}

static void test_corrupt_gzip_is_an_error_naming_the_file(void **state)
{
    /* A gzip header followed by garbage. */
    const unsigned char bad[] = {0x1f, 0x8b, 0x08, 0x00, 0,    0,    0,    0,    0,    0x03, 0xff,
                                 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, 0x77, 0x66, 0x55};

    write_set(TRAIN_IMAGES, TRAIN_LABELS, 4, 2, 2, 1);
    write_file(TRAIN_IMAGES ".gz", bad, sizeof(bad), 0);
    expect_load_error(TRAIN_IMAGES ".gz", TRAIN_IMAGES, NULL);
}

/*
 * Hostile input: 400 files made from a good gzipped and a good plain IDX file by flipping bytes
 * and cutting them short. Each load succeeds or fails with a message; none may crash (the ASan
 * build checks every access).
 */
static void test_mutated_files_never_crash(void **state)
{
    static idx_t f, gz;
    const uint32_t dims[3] = {4, 3, 3};
    uint8_t data[36];
    char path[256];
    uint64_t st = 77;
    int ok = 0;

    for (int i = 0; i < 36; i++)
        data[i] = pixel(i);
    idx_build(&f, 0x08, 3, dims, data, sizeof(data));
    write_file("good", f.buf, f.len, 1);
    path_of("good.gz", path, sizeof(path));
    {
        FILE *in = fopen(path, "rb");

        assert_non_null(in);
        gz.len = fread(gz.buf, 1, sizeof(gz.buf), in);
        fclose(in);
    }
    write_set(TRAIN_IMAGES, TRAIN_LABELS, 4, 3, 3, 0);
    for (int t = 0; t < 400; t++) {
        static idx_t m;
        const idx_t *src = t % 2 ? &gz : &f;
        rdt_dataset_t ds;
        char err[512] = "";
        int flips = (int)(rdt_test_rand(&st) % 4);

        m = *src;
        for (int k = 0; k < flips; k++)
            m.buf[rdt_test_rand(&st) % m.len] ^= (unsigned char)(1u << (rdt_test_rand(&st) % 8));
        if (rdt_test_rand(&st) % 3 == 0)
            m.len = (size_t)(rdt_test_rand(&st) % m.len);
        write_file(TRAIN_IMAGES, m.buf, m.len, 0);
        if (rdt_dataset_load(tmpdir, 0, 0, &ds, err, sizeof(err)) == 0) {
            assert_int_equal(ds.n, 4);
            rdt_dataset_free(&ds);
            ok++;
        } else {
            assert_non_null(strstr(err, TRAIN_IMAGES));
        }
    }
    assert_true(ok > 0 && ok < 400);
}

/* ------------------------------------------------------------------------------------------- */
/* The installed Fashion-MNIST                                                                  */
/* ------------------------------------------------------------------------------------------- */

static void require_fashion_mnist(void)
{
    struct stat st;

    if (stat(RDT_DATA_DEFAULT_DIR, &st) != 0)
        fail_msg("%s is missing: install the Debian package dataset-fashion-mnist "
                 "(tools/install-deps.sh installs it)",
                 RDT_DATA_DEFAULT_DIR);
}

/* Sum of the raw pixels (0..255) of sample i, recovered from the scaled floats. */
static long pixel_sum(const rdt_dataset_t *ds, int i)
{
    long s = 0;

    for (int k = 0; k < ds->dim; k++)
        s += lrintf(ds->x[(size_t)i * ds->dim + k] * 255.0f);
    return s;
}

static void test_fashion_mnist_train_set_with_limit(void **state)
{
    const uint8_t first[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    rdt_dataset_t ds;
    char err[512] = "";
    float lo = 1, hi = 0;

    require_fashion_mnist();
    if (rdt_dataset_load(RDT_DATA_DEFAULT_DIR, 0, 1000, &ds, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(ds.n, 1000);
    assert_int_equal(ds.rows, 28);
    assert_int_equal(ds.cols, 28);
    assert_int_equal(ds.dim, 784);
    assert_memory_equal(ds.y, first, sizeof(first));
    for (int i = 0; i < 1000; i++)
        assert_true(ds.y[i] < RDT_DATA_CLASSES);
    for (size_t i = 0; i < (size_t)ds.n * ds.dim; i++) {
        lo = ds.x[i] < lo ? ds.x[i] : lo;
        hi = ds.x[i] > hi ? ds.x[i] : hi;
    }
    assert_true(lo == 0.0f && hi == 1.0f);
    assert_int_equal(pixel_sum(&ds, 0), 76247);
    assert_int_equal(pixel_sum(&ds, 999), 69838);
    rdt_dataset_free(&ds);
}

static void test_fashion_mnist_test_set_has_1000_images_per_class(void **state)
{
    const uint8_t first[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    int hist[RDT_DATA_CLASSES] = {0};
    rdt_dataset_t ds;
    char err[512] = "";

    require_fashion_mnist();
    if (rdt_dataset_load(RDT_DATA_DEFAULT_DIR, 1, 0, &ds, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(ds.n, 10000);
    assert_int_equal(ds.rows, 28);
    assert_int_equal(ds.cols, 28);
    assert_memory_equal(ds.y, first, sizeof(first));
    for (int i = 0; i < ds.n; i++) {
        assert_true(ds.y[i] < RDT_DATA_CLASSES);
        hist[ds.y[i]]++;
    }
    for (int c = 0; c < RDT_DATA_CLASSES; c++)
        assert_int_equal(hist[c], 1000);
    assert_int_equal(pixel_sum(&ds, 0), 33456);
    assert_int_equal(pixel_sum(&ds, 999), 28316);
    rdt_dataset_free(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_plain_files_load_with_pixels_scaled_to_unit_interval,
                                  test_teardown),
        cmocka_unit_test_teardown(test_gzipped_test_set_loads_and_gz_is_preferred_over_plain,
                                  test_teardown),
        cmocka_unit_test_teardown(test_limit_keeps_the_first_samples, test_teardown),
        cmocka_unit_test_teardown(test_idx_read_returns_dims_and_raw_bytes, test_teardown),
        cmocka_unit_test_teardown(test_missing_files_name_both_candidates, test_teardown),
        cmocka_unit_test_teardown(test_bad_magic_is_not_an_idx_file, test_teardown),
        cmocka_unit_test_teardown(test_other_element_types_are_refused, test_teardown),
        cmocka_unit_test_teardown(test_wrong_dimension_count_is_refused, test_teardown),
        cmocka_unit_test_teardown(test_truncated_data_and_header_say_how_much_arrived,
                                  test_teardown),
        cmocka_unit_test_teardown(test_trailing_bytes_are_refused, test_teardown),
        cmocka_unit_test_teardown(test_label_out_of_range_names_sample_and_value, test_teardown),
        cmocka_unit_test_teardown(test_image_and_label_counts_must_agree, test_teardown),
        cmocka_unit_test_teardown(test_huge_or_empty_sizes_are_refused_before_allocating,
                                  test_teardown),
        cmocka_unit_test_teardown(test_corrupt_gzip_is_an_error_naming_the_file, test_teardown),
        cmocka_unit_test_teardown(test_mutated_files_never_crash, test_teardown),
        cmocka_unit_test(test_fashion_mnist_train_set_with_limit),
        cmocka_unit_test(test_fashion_mnist_test_set_has_1000_images_per_class),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
