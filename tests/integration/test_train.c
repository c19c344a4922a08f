/*
 * test_train.c - the trainer through the launcher, on small slices of Fashion-MNIST: every
 * parallel mode ends a few steps with the same weights as one rank on the same global batch
 * (within float32 rounding of a different summation order), checkpoints resume to the same
 * result as an uninterrupted run, compression sends what it says, and bad input is refused
 * with a sentence naming what is wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "model.h"
#include "testutil.h"

#define COMMON "--train-limit 1024 --test-limit 500 --epochs 1 --max-steps 6 --no-progress --seed 3"

static char dir[256];

typedef struct {
    int status; /* exit status, or 128 + signal */
    char *out;  /* stdout and stderr, merged */
} result_t;

/* Run "launcher ARGS" through the shell, output captured. */
static result_t run(const char *fmt, ...)
{
    char args[2048], cmd[4096];
    result_t r = {0, NULL};
    size_t len = 0, cap = 1 << 16;
    va_list ap;
    FILE *p;
    int st;

    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "cd %s && timeout 120 %s --timeout 100 %s 2>&1", dir, RDT_LAUNCHER,
             args);
    r.out = malloc(cap);
    assert_non_null(r.out);
    p = popen(cmd, "r");
    assert_non_null(p);
    for (;;) {
        size_t n;
        if (cap - len < 4096) {
            cap *= 2;
            r.out = realloc(r.out, cap);
            assert_non_null(r.out);
        }
        n = fread(r.out + len, 1, cap - len - 1, p);
        if (n == 0)
            break;
        len += n;
    }
    r.out[len] = '\0';
    st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return r;
}

static void expect_ok(result_t *r, const char *what)
{
    if (r->status != 0)
        fprintf(stderr, "%s: exit %d\n%s\n", what, r->status, r->out);
    assert_int_equal(r->status, 0);
}

static void expect_fail(result_t *r, const char *needle)
{
    if (r->status == 0 || !strstr(r->out, needle))
        fprintf(stderr, "expected a failure mentioning '%s', got exit %d:\n%s\n", needle, r->status,
                r->out);
    assert_int_not_equal(r->status, 0);
    assert_non_null(strstr(r->out, needle));
}



/* The parameters in @p name match those in @p ref to within @p tol, and differ from the
 * initial weights (the run trained). */
static void expect_same(const char *name, const char *ref, double tol)
{
    size_t n, m;
    float *a = rdt_test_load_floats(dir, name, &n), *b = rdt_test_load_floats(dir, ref, &m);
    rdt_mlp_t init;
    int sizes[4] = {784, 256, 128, 10};
    double d, moved;

    assert_int_equal(n, m);
    assert_int_equal(rdt_mlp_init(&init, sizes, 4, 0, 3, 3), 0);
    assert_int_equal(init.nparams, n);
    d = rdt_test_max_diff(a, b, n);
    moved = rdt_test_max_diff(a, init.params, n);
    if (!(d <= tol) || !(moved > 1e-3))
        fprintf(stderr, "%s vs %s: max difference %g (tolerance %g); moved from init %g\n", name,
                ref, d, tol, moved);
    assert_true(d <= tol);
    assert_true(moved > 1e-3);
    rdt_mlp_free(&init);
    free(a);
    free(b);
}

static int setup(void **state)
{
    result_t r;
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/rdt-train-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    /* the reference: one rank, global batch 64 */
    r = run("-np 1 train " COMMON " --batch 64 --save-params ref64.bin");
    expect_ok(&r, "one rank");
    free(r.out);
    return 0;
}

static int teardown(void **state)
{
    char cmd[512];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_data_parallel(void **state)
{
    result_t r;
    (void)state;
    r = run("-np 2 train " COMMON " --batch 32 --save-params dp2.bin");
    expect_ok(&r, "data, 2 ranks");
    assert_non_null(strstr(r.out, "test accuracy"));
    free(r.out);
    expect_same("dp2.bin", "ref64.bin", 1e-5);
    /* 4 ranks, and buckets of one layer each (several allreduces in flight) */
    r = run("-np 4 train " COMMON " --batch 16 --bucket-kb 1 --save-params dp4.bin");
    expect_ok(&r, "data, 4 ranks");
    free(r.out);
    expect_same("dp4.bin", "ref64.bin", 1e-5);
}

static void test_tensor_parallel(void **state)
{
    result_t r;
    (void)state;
    r = run("-np 2 train " COMMON " --parallel tensor --batch 64 --save-params tp2.bin");
    expect_ok(&r, "tensor, 2 ranks");
    assert_non_null(strstr(r.out, "column-parallel"));
    free(r.out);
    expect_same("tp2.bin", "ref64.bin", 1e-5);
    /* 4 ranks: the last layer (10 outputs) is replicated */
    r = run("-np 4 train " COMMON " --parallel tensor --batch 64 --save-params tp4.bin");
    expect_ok(&r, "tensor, 4 ranks");
    assert_non_null(strstr(r.out, "replicated"));
    free(r.out);
    expect_same("tp4.bin", "ref64.bin", 1e-5);
    /* data x tensor: 2 data groups of 2 tensor ranks */
    r = run("-np 4 train " COMMON " --parallel data --tensor 2 --batch 32 --save-params dt.bin");
    expect_ok(&r, "data x tensor");
    free(r.out);
    expect_same("dt.bin", "ref64.bin", 1e-5);
}

static void test_pipeline_parallel(void **state)
{
    result_t r;
    (void)state;
    r = run("-np 2 train " COMMON
            " --parallel pipeline --batch 64 --micro 4 --save-params pp2.bin");
    expect_ok(&r, "pipeline, 2 stages");
    free(r.out);
    expect_same("pp2.bin", "ref64.bin", 1e-5);
    r = run("-np 3 train " COMMON
            " --parallel pipeline --batch 64 --micro 8 --save-params pp3.bin");
    expect_ok(&r, "pipeline, 3 stages");
    free(r.out);
    expect_same("pp3.bin", "ref64.bin", 1e-5);
}

/* Two epochs at once, or one and a resume: the same weights, bit for bit (momentum too). */
static void test_checkpoint_resume(void **state)
{
    result_t r;
    size_t n, m;
    float *a, *b;
    (void)state;
    r = run("-np 2 train --train-limit 1024 --test-limit 200 --max-steps 4 --no-progress "
            "--batch 32 --momentum 0.9 --schedule constant --epochs 2 --save-params whole.bin");
    expect_ok(&r, "two epochs");
    free(r.out);
    r = run("-np 2 train --train-limit 1024 --test-limit 200 --max-steps 4 --no-progress "
            "--batch 32 --momentum 0.9 --schedule constant --epochs 1 --checkpoint ck");
    expect_ok(&r, "first epoch");
    free(r.out);
    r = run("-np 2 train --train-limit 1024 --test-limit 200 --max-steps 4 --no-progress "
            "--batch 32 --momentum 0.9 --schedule constant --epochs 2 --checkpoint ck --resume "
            "--save-params "
            "resumed.bin");
    expect_ok(&r, "resume");
    assert_non_null(strstr(r.out, "resumed from"));
    free(r.out);
    a = rdt_test_load_floats(dir, "whole.bin", &n);
    b = rdt_test_load_floats(dir, "resumed.bin", &m);
    assert_int_equal(n, m);
    assert_memory_equal(a, b, n * sizeof(float));
    free(a);
    free(b);
    /* another rank layout, another model shape, another mode: refused */
    r = run("-np 1 train --train-limit 1024 --test-limit 200 --max-steps 4 --no-progress "
            "--batch 64 --momentum 0.9 --schedule constant --epochs 3 --checkpoint ck --resume");
    expect_fail(&r, "another model shape or rank layout");
    free(r.out);
    r = run("-np 2 train --train-limit 1024 --test-limit 200 --max-steps 4 --no-progress "
            "--batch 32 --momentum 0.9 --schedule constant --epochs 3 --layers 784-64-10 "
            "--checkpoint ck --resume");
    expect_fail(&r, "another model shape or rank layout");
    free(r.out);
    r = run("-np 2 train --train-limit 1024 --test-limit 200 --max-steps 4 --no-progress "
            "--batch 64 --momentum 0.9 --schedule constant --epochs 3 --parallel pipeline "
            "--checkpoint ck --resume");
    expect_fail(&r, "another model shape or rank layout");
    free(r.out);
}

/* The bytes each compression puts on the wire, from the metrics file. */
static double metric_bytes(const char *file)
{
    char path[512], line[1024];
    double bytes = -1;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof(line), f)); /* header */
    assert_non_null(strstr(line, "bytes_sent"));
    assert_non_null(fgets(line, sizeof(line), f));
    {
        const char *last = strrchr(line, ',');
        assert_non_null(last);
        bytes = strtod(last + 1, NULL);
    }
    fclose(f);
    return bytes;
}

static void test_compression(void **state)
{
    static const char *const kinds[] = {"none", "fp16", "bf16", "topk"};
    double bytes[4];
    int i;
    (void)state;
    for (i = 0; i < 4; i++) {
        result_t r = run("-np 2 train " COMMON " --batch 32 --compress %s --metrics m-%s.csv "
                         "--plot p-%s.svg",
                         kinds[i], kinds[i], kinds[i]);
        expect_ok(&r, kinds[i]);
        free(r.out);
        {
            char file[64];
            snprintf(file, sizeof(file), "m-%s.csv", kinds[i]);
            bytes[i] = metric_bytes(file);
        }
    }
    /* 6 steps of the 235146-float gradient */
    assert_true(bytes[0] == 6.0 * 235146 * 4);
    assert_true(bytes[1] == 6.0 * 235146 * 2);
    assert_true(bytes[2] == 6.0 * 235146 * 2);
    assert_true(bytes[3] == 6.0 * 2351 * 8);
}

static void test_bad_input(void **state)
{
    result_t r;
    (void)state;
    r = run("-np 1 train " COMMON " --data /nonexistent-dir");
    expect_fail(&r, "/nonexistent-dir/train-images-idx3-ubyte");
    free(r.out);
    r = run("-np 1 train " COMMON " --layers 100-10");
    expect_fail(&r, "input has 100 values");
    free(r.out);
    r = run("-np 1 train " COMMON " --layers 784-10-7");
    expect_fail(&r, "must end with 10 outputs");
    free(r.out);
    r = run("-np 2 train --train-limit 100 --batch 64 --epochs 1 --no-progress");
    expect_fail(&r, "larger than the 100 training samples");
    free(r.out);
    r = run("-np 4 train " COMMON " --parallel pipeline");
    expect_fail(&r, "at most 3 ranks");
    free(r.out);
    r = run("-np 3 train " COMMON " --parallel tensor --layers 784-100-10");
    expect_fail(&r, "3 does not divide 100");
    free(r.out);
    r = run("-np 2 train " COMMON " --parallel pipeline --micro 5");
    expect_fail(&r, "--micro 5 does not divide");
    free(r.out);
    r = run("-np 1 train --epochs zero");
    expect_fail(&r, "--epochs expects a whole number");
    free(r.out);
    r = run("train --help");
    expect_ok(&r, "help");
    assert_non_null(strstr(r.out, "--parallel MODE"));
    free(r.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_parallel),     cmocka_unit_test(test_tensor_parallel),
        cmocka_unit_test(test_pipeline_parallel), cmocka_unit_test(test_checkpoint_resume),
        cmocka_unit_test(test_compression),       cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
