/*
 * test_ckpt.c - trainer checkpoints (trainer/ckpt.c): bit-exact round trips, the documented
 * on-disk layout, and a refusal with a useful sentence for every way a file can be wrong
 * (another job shape, corrupt, truncated, not a checkpoint, another version). Each test works
 * in its own mkdtemp directory, removed afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "ckpt.h"
#include "testutil.h"

#define HDR_SIZE 164   /* the layout documented at the top of ckpt.c */
#define NPARAMS  10007 /* more than two of the 4096-float chunks, and not a multiple */

typedef struct {
    char base[64];  /* the mkdtemp directory */
    char dir[96];   /* base/ck: the checkpoint directory, created by the first save */
    char file[128]; /* dir/checkpoint.rdt */
    char tmp[136];  /* dir/checkpoint.rdt.tmp */
    float params[NPARAMS], vel[NPARAMS];
    float p2[NPARAMS], v2[NPARAMS];
    char err[512];
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));

    if (!fx)
        return -1;
    snprintf(fx->base, sizeof(fx->base), "/tmp/rdt_test_ckpt_XXXXXX");
    if (!mkdtemp(fx->base)) {
        free(fx);
        return -1;
    }
    snprintf(fx->dir, sizeof(fx->dir), "%s/ck", fx->base);
    snprintf(fx->file, sizeof(fx->file), "%s/%s", fx->dir, RDT_CKPT_FILE);
    snprintf(fx->tmp, sizeof(fx->tmp), "%s.tmp", fx->file);
    *state = fx;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    int rc = nftw(fx->base, rm_entry, 8, FTW_DEPTH | FTW_PHYS);

    free(fx);
    return rc;
}

/* Arbitrary bit patterns (NaNs with payloads, denormals, -0 included): bit-exact or bust. */
static void fill_random(float *a, size_t n, uint64_t seed)
{
    size_t i;

    for (i = 0; i < n; i++) {
        uint32_t u = (uint32_t)rdt_test_rand(&seed);
        memcpy(&a[i], &u, 4);
    }
}

static rdt_ckpt_meta_t sample_meta(size_t nparams, int has_vel)
{
    rdt_ckpt_meta_t m = {.mode = "data+tensor",
                         .nranks = 4,
                         .layout = {2, 2, 0, 0},
                         .nsizes = 4,
                         .sizes = {784, 256, 128, 10},
                         .batch = 64,
                         .seed = 0x123456789abcdef0ULL,
                         .epoch = 3,
                         .step = 5000000000ULL,
                         .nparams = nparams,
                         .has_vel = has_vel};
    return m;
}

static unsigned char *slurp(const char *path, size_t *len_p)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long len;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    rewind(f);
    buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *len_p = (size_t)len;
    return buf;
}

static void spew(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void save_sample(fx_t *fx, int has_vel)
{
    rdt_ckpt_meta_t m = sample_meta(NPARAMS, has_vel);

    fill_random(fx->params, NPARAMS, 1);
    fill_random(fx->vel, NPARAMS, 2);
    assert_int_equal(
        rdt_ckpt_save(fx->dir, &m, fx->params, has_vel ? fx->vel : NULL, fx->err, sizeof(fx->err)),
        0);
}

/* Load must fail, with every one of the NULL-terminated strings in its sentence. */
static void expect_load_error(fx_t *fx, const rdt_ckpt_meta_t *expect, ...)
{
    rdt_ckpt_meta_t got;
    const char *s;
    va_list ap;

    fx->err[0] = '\0';
    got.epoch = -77;
    assert_int_equal(rdt_ckpt_load(fx->dir, expect, &got, fx->p2, fx->v2, fx->err, sizeof(fx->err)),
                     -1);
    print_message("%s\n", fx->err);
    assert_int_equal(got.epoch, -77); /* untouched on failure */
    va_start(ap, expect);
    while ((s = va_arg(ap, const char *)) != NULL) {
        if (!strstr(fx->err, s))
            fail_msg("\"%s\" not in \"%s\"", s, fx->err);
    }
    va_end(ap);
}

static void assert_meta_equal(const rdt_ckpt_meta_t *a, const rdt_ckpt_meta_t *b)
{
    int i;

    assert_string_equal(a->mode, b->mode);
    assert_int_equal(a->nranks, b->nranks);
    for (i = 0; i < 4; i++)
        assert_int_equal(a->layout[i], b->layout[i]);
    assert_int_equal(a->nsizes, b->nsizes);
    for (i = 0; i < a->nsizes; i++)
        assert_int_equal(a->sizes[i], b->sizes[i]);
    assert_int_equal(a->batch, b->batch);
    assert_true(a->seed == b->seed);
    assert_int_equal(a->epoch, b->epoch);
    assert_true(a->step == b->step);
    assert_int_equal(a->nparams, b->nparams);
    assert_int_equal(a->has_vel, b->has_vel);
}

static void test_round_trip_with_momentum_is_bit_exact(void **state)
{
    fx_t *fx = *state;
    rdt_ckpt_meta_t m = sample_meta(NPARAMS, 1), got;

    save_sample(fx, 1);
    assert_int_equal(access(fx->tmp, F_OK), -1); /* renamed away */
    assert_int_equal(rdt_ckpt_load(fx->dir, &m, &got, fx->p2, fx->v2, fx->err, sizeof(fx->err)), 0);
    assert_meta_equal(&got, &m);
    assert_memory_equal(fx->p2, fx->params, sizeof(fx->params));
    assert_memory_equal(fx->v2, fx->vel, sizeof(fx->vel));
}

static void test_round_trip_without_momentum_leaves_vel_alone(void **state)
{
    fx_t *fx = *state;
    rdt_ckpt_meta_t m = sample_meta(NPARAMS, 0), got;
    size_t len;
    unsigned char *buf;

    save_sample(fx, 0);
    memset(fx->v2, 0x5a, sizeof(fx->v2));
    assert_int_equal(rdt_ckpt_load(fx->dir, &m, &got, fx->p2, fx->v2, fx->err, sizeof(fx->err)), 0);
    assert_meta_equal(&got, &m);
    assert_memory_equal(fx->p2, fx->params, sizeof(fx->params));
    assert_int_equal(((unsigned char *)fx->v2)[0], 0x5a);
    assert_int_equal(((unsigned char *)fx->v2)[sizeof(fx->v2) - 1], 0x5a);
    buf = slurp(fx->file, &len);
    assert_int_equal(len, HDR_SIZE + 4 * NPARAMS);
    free(buf);
}

static void test_a_later_save_replaces_the_checkpoint(void **state)
{
    fx_t *fx = *state;
    rdt_ckpt_meta_t m = sample_meta(NPARAMS, 1), got;

    save_sample(fx, 1);
    fill_random(fx->params, NPARAMS, 11);
    fill_random(fx->vel, NPARAMS, 12);
    m.epoch = 4;
    m.step = 5000001000ULL;
    assert_int_equal(rdt_ckpt_save(fx->dir, &m, fx->params, fx->vel, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(rdt_ckpt_load(fx->dir, &m, &got, fx->p2, fx->v2, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(got.epoch, 4);
    assert_true(got.step == 5000001000ULL);
    assert_memory_equal(fx->p2, fx->params, sizeof(fx->params));
    assert_memory_equal(fx->v2, fx->vel, sizeof(fx->vel));
    assert_int_equal(access(fx->tmp, F_OK), -1);
}

static void test_the_file_has_the_documented_little_endian_layout(void **state)
{
    fx_t *fx = *state;
    size_t len;
    unsigned char *b;
    uint32_t u;

    save_sample(fx, 1);
    b = slurp(fx->file, &len);
    assert_int_equal(len, HDR_SIZE + 8 * NPARAMS);
    assert_memory_equal(b, "RDTCKPT1", 8);
    assert_int_equal(b[8], 1); /* version 1, little-endian */
    assert_int_equal(b[9] | b[10] | b[11], 0);
    assert_string_equal((char *)b + 12, "data+tensor");
    assert_int_equal(b[28], 4); /* nranks */
    assert_int_equal(b[48], 4); /* nsizes */
    assert_int_equal(b[52] | b[53] << 8, 784);
    assert_int_equal(b[120], 64);   /* batch */
    assert_int_equal(b[128], 0xf0); /* seed, low byte first */
    assert_int_equal(b[135], 0x12);
    assert_int_equal(b[144] | b[145] << 8, NPARAMS);
    assert_int_equal(b[152], 1); /* has_vel */
    assert_int_equal(b[156] | b[157] << 8 | b[158] << 16 | (uint32_t)b[159] << 24,
                     (uint32_t)crc32(0, b + HDR_SIZE, (uInt)(8 * NPARAMS)));
    assert_int_equal(b[160] | b[161] << 8 | b[162] << 16 | (uint32_t)b[163] << 24,
                     (uint32_t)crc32(0, b, 160));
    memcpy(&u, &fx->params[0], 4);
    assert_int_equal(b[HDR_SIZE] | b[HDR_SIZE + 1] << 8 | b[HDR_SIZE + 2] << 16 |
                         (uint32_t)b[HDR_SIZE + 3] << 24,
                     u);
    memcpy(&u, &fx->vel[0], 4);
    assert_int_equal(b[HDR_SIZE + 4 * NPARAMS], u & 0xff);
    free(b);
}

static void test_every_other_job_shape_is_refused_naming_the_field(void **state)
{
    fx_t *fx = *state;
    rdt_ckpt_meta_t m = sample_meta(NPARAMS, 1), e, got;
    const char *why = "another model shape or rank layout";

    save_sample(fx, 1);

    e = m;
    snprintf(e.mode, sizeof(e.mode), "tensor");
    expect_load_error(fx, &e, fx->file, "mode \"data+tensor\" in the checkpoint, \"tensor\" here",
                      why, NULL);
    e = m;
    e.nranks = 2;
    expect_load_error(fx, &e, "nranks 4 in the checkpoint, 2 here", why, NULL);
    e = m;
    e.layout[3] = 1;
    expect_load_error(fx, &e, "layout 2,2,0,0 in the checkpoint, 2,2,0,1 here", why, NULL);
    e = m;
    e.nsizes = 3;
    e.sizes[1] = 128;
    e.sizes[2] = 10;
    expect_load_error(fx, &e, "model shape 784-256-128-10 in the checkpoint, 784-128-10 here", why,
                      NULL);
    e = m;
    e.sizes[2] = 129;
    expect_load_error(fx, &e, "model shape 784-256-128-10 in the checkpoint, 784-256-129-10 here",
                      why, NULL);
    e = m;
    e.batch = 128;
    expect_load_error(fx, &e, "batch 64 in the checkpoint, 128 here", why, NULL);
    e = m;
    e.seed = 7;
    expect_load_error(fx, &e, "seed 1311768467463790320 in the checkpoint, 7 here", why, NULL);
    e = m;
    e.nparams = NPARAMS - 1;
    expect_load_error(fx, &e, "nparams 10007 in the checkpoint, 10006 here", why, NULL);
    e = m;
    e.has_vel = 0;
    expect_load_error(fx, &e, "has_vel", "1 in the checkpoint, 0 here", why, NULL);

    /* The training position is what a checkpoint is for: never compared. */
    e = m;
    e.epoch = 0;
    e.step = 0;
    assert_int_equal(rdt_ckpt_load(fx->dir, &e, &got, fx->p2, fx->v2, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(got.epoch, 3);
}

static void test_a_flipped_byte_is_caught_by_the_crc(void **state)
{
    fx_t *fx = *state;
    size_t len;
    unsigned char *b;

    save_sample(fx, 1);
    b = slurp(fx->file, &len);

    b[HDR_SIZE + 4 * NPARAMS + 777] ^= 0x10; /* in the momentum */
    spew(fx->file, b, len);
    expect_load_error(fx, NULL, fx->file, "corrupt", "CRC-32", NULL);

    b[HDR_SIZE + 4 * NPARAMS + 777] ^= 0x10;
    b[HDR_SIZE + 3] ^= 0x80; /* sign of params[0] */
    spew(fx->file, b, len);
    expect_load_error(fx, NULL, fx->file, "corrupt", "CRC-32", NULL);

    b[HDR_SIZE + 3] ^= 0x80;
    b[120] ^= 1; /* batch, in the header */
    spew(fx->file, b, len);
    expect_load_error(fx, NULL, fx->file, "corrupt", "header", NULL);

    b[120] ^= 1;
    spew(fx->file, b, len);
    assert_int_equal(rdt_ckpt_load(fx->dir, NULL, NULL, fx->p2, fx->v2, fx->err, sizeof(fx->err)),
                     0);
    free(b);
}

static void test_a_truncated_file_is_refused_with_both_sizes(void **state)
{
    fx_t *fx = *state;
    char want[128];

    save_sample(fx, 1);
    assert_int_equal(truncate(fx->file, HDR_SIZE + 8 * NPARAMS - 3), 0);
    snprintf(want, sizeof(want), "need %d bytes, got %d", HDR_SIZE + 8 * NPARAMS,
             HDR_SIZE + 8 * NPARAMS - 3);
    expect_load_error(fx, NULL, fx->file, "truncated", want, NULL);

    assert_int_equal(truncate(fx->file, HDR_SIZE), 0);
    expect_load_error(fx, NULL, "truncated", "got 164", NULL);
    assert_int_equal(truncate(fx->file, 100), 0);
    expect_load_error(fx, NULL, "truncated", "expected at least 164 bytes, got 100", NULL);
    assert_int_equal(truncate(fx->file, 5), 0);
    expect_load_error(fx, NULL, "truncated", "got 5", NULL);
    assert_int_equal(truncate(fx->file, 0), 0);
    expect_load_error(fx, NULL, "truncated", "got 0", NULL);
}

static void test_trailing_bytes_are_refused(void **state)
{
    fx_t *fx = *state;
    FILE *f;

    save_sample(fx, 0);
    f = fopen(fx->file, "ab");
    assert_non_null(f);
    fputc('x', f);
    fclose(f);
    expect_load_error(fx, NULL, fx->file, "trailing bytes", NULL);
}

static void test_garbage_and_other_versions_are_refused(void **state)
{
    fx_t *fx = *state;
    static const char text[] = "epoch,train_loss\n1,0.5\n";
    size_t len;
    unsigned char *b;

    save_sample(fx, 1);
    b = slurp(fx->file, &len);
    b[8] = 2;
    spew(fx->file, b, len);
    expect_load_error(fx, NULL, fx->file, "format version 2", "version 1", NULL);

    spew(fx->file, text, sizeof(text) - 1);
    expect_load_error(fx, NULL, fx->file, "not an rdmatrain checkpoint", NULL);
    spew(fx->file, "RDX", 3);
    expect_load_error(fx, NULL, "not an rdmatrain checkpoint", NULL);
    free(b);
}

/* A header with a valid CRC whose nparams cannot match the file. */
static void test_an_absurd_parameter_count_is_refused(void **state)
{
    fx_t *fx = *state;
    size_t len;
    unsigned char *b;
    uint32_t crc;
    int i;

    save_sample(fx, 1);
    b = slurp(fx->file, &len);
    for (i = 0; i < 8; i++)
        b[144 + i] = (unsigned char)((1ULL << 62) >> (8 * i));
    crc = (uint32_t)crc32(0, b, 160);
    for (i = 0; i < 4; i++)
        b[160 + i] = (unsigned char)(crc >> (8 * i));
    spew(fx->file, b, len);
    expect_load_error(fx, NULL, fx->file, "4611686018427387904 parameters", NULL);

    for (i = 0; i < 8; i++)
        b[144 + i] = (unsigned char)((uint64_t)(NPARAMS + 1) >> (8 * i));
    crc = (uint32_t)crc32(0, b, 160);
    for (i = 0; i < 4; i++)
        b[160 + i] = (unsigned char)(crc >> (8 * i));
    spew(fx->file, b, len);
    expect_load_error(fx, NULL, "truncated", "10008 parameters", NULL);
    free(b);
}

static void test_no_directory_or_no_file_means_nothing_to_resume(void **state)
{
    fx_t *fx = *state;
    rdt_ckpt_meta_t got;

    assert_int_equal(rdt_ckpt_load(fx->dir, NULL, &got, NULL, NULL, fx->err, sizeof(fx->err)), 1);
    assert_int_equal(mkdir(fx->dir, 0755), 0);
    assert_int_equal(rdt_ckpt_load(fx->dir, NULL, &got, fx->p2, fx->v2, fx->err, sizeof(fx->err)),
                     1);
    /* A crash before the rename leaves only the .tmp: still nothing to resume. */
    spew(fx->tmp, "RDTCKPT1 half written", 21);
    assert_int_equal(rdt_ckpt_load(fx->dir, NULL, &got, fx->p2, fx->v2, fx->err, sizeof(fx->err)),
                     1);
}

static void test_a_regular_file_in_place_of_the_directory_is_an_error(void **state)
{
    fx_t *fx = *state;
    rdt_ckpt_meta_t m = sample_meta(4, 0), got;

    spew(fx->dir, "x", 1);
    assert_int_equal(rdt_ckpt_save(fx->dir, &m, fx->params, NULL, fx->err, sizeof(fx->err)), -1);
    assert_non_null(strstr(fx->err, fx->dir));
    assert_non_null(strstr(fx->err, "not a directory"));
    fx->err[0] = '\0';
    assert_int_equal(rdt_ckpt_load(fx->dir, NULL, &got, fx->p2, fx->v2, fx->err, sizeof(fx->err)),
                     -1);
    assert_non_null(strstr(fx->err, fx->file));
    assert_non_null(strstr(fx->err, "Not a directory"));
}

static void test_a_leftover_tmp_file_does_not_disturb_save_or_load(void **state)
{
    fx_t *fx = *state;
    rdt_ckpt_meta_t m = sample_meta(NPARAMS, 1), got;

    save_sample(fx, 1);
    spew(fx->tmp, "garbage from a crash", 20);
    assert_int_equal(rdt_ckpt_load(fx->dir, &m, &got, fx->p2, fx->v2, fx->err, sizeof(fx->err)), 0);
    assert_memory_equal(fx->p2, fx->params, sizeof(fx->params));
    m.epoch = 9;
    assert_int_equal(rdt_ckpt_save(fx->dir, &m, fx->params, fx->vel, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(access(fx->tmp, F_OK), -1);
    assert_int_equal(rdt_ckpt_load(fx->dir, &m, &got, fx->p2, fx->v2, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(got.epoch, 9);
}

static void test_a_header_only_load_reads_no_parameters(void **state)
{
    fx_t *fx = *state;
    rdt_ckpt_meta_t m = sample_meta(NPARAMS, 1), got;
    char slash[128];

    save_sample(fx, 1);
    assert_int_equal(rdt_ckpt_load(fx->dir, NULL, &got, NULL, NULL, fx->err, sizeof(fx->err)), 0);
    assert_meta_equal(&got, &m);
    /* A trailing slash on DIR names the same file. */
    snprintf(slash, sizeof(slash), "%s//", fx->dir);
    memset(&got, 0, sizeof(got));
    assert_int_equal(rdt_ckpt_load(slash, &m, &got, NULL, NULL, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(got.nparams, NPARAMS);

    /* No parameters at all is a valid (if useless) checkpoint. */
    m = sample_meta(0, 1);
    assert_int_equal(rdt_ckpt_save(fx->dir, &m, NULL, NULL, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(rdt_ckpt_load(fx->dir, &m, &got, fx->p2, fx->v2, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(got.nparams, 0);
}

static void test_bad_save_arguments_are_refused_without_a_file(void **state)
{
    fx_t *fx = *state;
    rdt_ckpt_meta_t m = sample_meta(8, 1);

    assert_int_equal(rdt_ckpt_save(fx->dir, &m, fx->params, NULL, fx->err, sizeof(fx->err)), -1);
    assert_non_null(strstr(fx->err, "has_vel 1"));
    m.has_vel = 0;
    assert_int_equal(rdt_ckpt_save(fx->dir, &m, NULL, NULL, fx->err, sizeof(fx->err)), -1);
    m.nsizes = RDT_MLP_LAYERS_MAX + 2;
    assert_int_equal(rdt_ckpt_save(fx->dir, &m, fx->params, NULL, fx->err, sizeof(fx->err)), -1);
    assert_non_null(strstr(fx->err, "layer sizes"));
    m = sample_meta(8, 0);
    memset(m.mode, 'x', sizeof(m.mode));
    assert_int_equal(rdt_ckpt_save(fx->dir, &m, fx->params, NULL, fx->err, sizeof(fx->err)), -1);
    assert_non_null(strstr(fx->err, "mode"));
    m = sample_meta(8, 0);
    assert_int_equal(rdt_ckpt_save("", &m, fx->params, NULL, fx->err, sizeof(fx->err)), -1);
    assert_int_equal(rdt_ckpt_save(fx->dir, &m, fx->params, NULL, NULL, 0), 0); /* err optional */
    assert_int_equal(access(fx->tmp, F_OK), -1);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_round_trip_with_momentum_is_bit_exact),
        T(test_round_trip_without_momentum_leaves_vel_alone),
        T(test_a_later_save_replaces_the_checkpoint),
        T(test_the_file_has_the_documented_little_endian_layout),
        T(test_every_other_job_shape_is_refused_naming_the_field),
        T(test_a_flipped_byte_is_caught_by_the_crc),
        T(test_a_truncated_file_is_refused_with_both_sizes),
        T(test_trailing_bytes_are_refused),
        T(test_garbage_and_other_versions_are_refused),
        T(test_an_absurd_parameter_count_is_refused),
        T(test_no_directory_or_no_file_means_nothing_to_resume),
        T(test_a_regular_file_in_place_of_the_directory_is_an_error),
        T(test_a_leftover_tmp_file_does_not_disturb_save_or_load),
        T(test_a_header_only_load_reads_no_parameters),
        T(test_bad_save_arguments_are_refused_without_a_file),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
