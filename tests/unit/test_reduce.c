/*
 * test_reduce.c - reduction kernels and float16/bfloat16 conversions, checked against plain
 * references computed here from the definitions (double arithmetic, ldexp, nearbyint), never
 * with the code under test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reduce.h"
#include "testutil.h"

static const size_t lengths[] = {0, 1, 3, 15, 16, 17, 1000, 100003};
static const rdt_op_t ops[] = {RDT_SUM, RDT_PROD, RDT_MIN, RDT_MAX};

/* ------------------------------------------------------------------------------------------- */
/* Reference arithmetic                                                                         */
/* ------------------------------------------------------------------------------------------- */

/* Value of a 16-bit float pattern with mbits mantissa bits and exponent bias emax. */
static double ref_value16(uint16_t h, int mbits, int emax)
{
    int emask = (0x7fff >> mbits), e = (h >> mbits) & emask, m = h & ((1 << mbits) - 1);
    double v;

    if (e == emask)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp(m, 1 - emax - mbits);
    else
        v = ldexp((1 << mbits) + m, e - emax - mbits);
    return (h & 0x8000) ? -v : v;
}

/*
 * x rounded to nearest even into that 16-bit format: significand in units of the last place at
 * the exponent of x (clamped to the subnormal range), rounded by nearbyint, then encoded.
 */
static uint16_t ref_round16(double x, int mbits, int emax)
{
    uint16_t sign = signbit(x) ? 0x8000 : 0, inf = (uint16_t)(0x7fff & ~((1 << mbits) - 1));
    double m;
    int e;

    if (isnan(x))
        return sign | inf | (uint16_t)(1 << (mbits - 1));
    x = fabs(x);
    if (isinf(x))
        return sign | inf;
    if (x == 0)
        return sign;
    frexp(x, &e);
    e -= 1; /* 2^e <= x < 2^(e+1) */
    if (e < 1 - emax)
        e = 1 - emax;
    m = nearbyint(ldexp(x, mbits - e));
    if (m == ldexp(1, mbits + 1)) { /* rounded up into the next binade */
        m /= 2;
        e++;
    }
    if (e > emax)
        return sign | inf;
    if (m < ldexp(1, mbits)) /* subnormal */
        return sign | (uint16_t)m;
    return sign | (uint16_t)((e + emax) << mbits) | (uint16_t)(m - ldexp(1, mbits));
}

static double ref_half(uint16_t h)
{
    return ref_value16(h, 10, 15);
}

static double ref_bf16(uint16_t h)
{
    return ref_value16(h, 7, 127);
}

static uint16_t ref_to_half(double x)
{
    return ref_round16(x, 10, 15);
}

static uint16_t ref_to_bf16(double x)
{
    return ref_round16(x, 7, 127);
}

static int is_float(rdt_dtype_t dt)
{
    return dt == RDT_FLOAT16 || dt == RDT_BFLOAT16 || dt == RDT_FLOAT32 || dt == RDT_FLOAT64;
}

static int is_signed(rdt_dtype_t dt)
{
    return dt == RDT_INT8 || dt == RDT_INT32 || dt == RDT_INT64;
}

/* Element i of a float buffer, exactly, as a double. */
static double float_at(rdt_dtype_t dt, const void *buf, size_t i)
{
    uint16_t h;
    float f;
    double d;

    switch (dt) {
    case RDT_FLOAT16:
        memcpy(&h, (const char *)buf + 2 * i, 2);
        return ref_half(h);
    case RDT_BFLOAT16:
        memcpy(&h, (const char *)buf + 2 * i, 2);
        return ref_bf16(h);
    case RDT_FLOAT32:
        memcpy(&f, (const char *)buf + 4 * i, 4);
        return f;
    default:
        memcpy(&d, (const char *)buf + 8 * i, 8);
        return d;
    }
}

/* Round v to the element type (a single rounding from double) and store it at element i. */
static void float_put(rdt_dtype_t dt, void *buf, size_t i, double v)
{
    uint16_t h;
    float f = (float)v;

    switch (dt) {
    case RDT_FLOAT16:
        h = ref_to_half(v);
        memcpy((char *)buf + 2 * i, &h, 2);
        break;
    case RDT_BFLOAT16:
        h = ref_to_bf16(v);
        memcpy((char *)buf + 2 * i, &h, 2);
        break;
    case RDT_FLOAT32:
        memcpy((char *)buf + 4 * i, &f, 4);
        break;
    default:
        memcpy((char *)buf + 8 * i, &v, 8);
        break;
    }
}

/* Element i of an integer buffer, sign- or zero-extended to 64 bits. */
static uint64_t int_at(rdt_dtype_t dt, const void *buf, size_t i)
{
    const char *p = (const char *)buf + i * rdt_dtype_size(dt);
    int8_t s8;
    uint8_t u8;
    int32_t s32;
    uint32_t u32;
    uint64_t u64;

    switch (dt) {
    case RDT_INT8:
        memcpy(&s8, p, 1);
        return (uint64_t)(int64_t)s8;
    case RDT_UINT8:
        memcpy(&u8, p, 1);
        return u8;
    case RDT_INT32:
        memcpy(&s32, p, 4);
        return (uint64_t)(int64_t)s32;
    case RDT_UINT32:
        memcpy(&u32, p, 4);
        return u32;
    default:
        memcpy(&u64, p, 8);
        return u64;
    }
}

/* Store the low bits of v (little- or big-endian alike) at element i. */
static void int_put(rdt_dtype_t dt, void *buf, size_t i, uint64_t v)
{
    char *p = (char *)buf + i * rdt_dtype_size(dt);
    uint8_t u8 = (uint8_t)v;
    uint32_t u32 = (uint32_t)v;

    switch (rdt_dtype_size(dt)) {
    case 1:
        memcpy(p, &u8, 1);
        break;
    case 4:
        memcpy(p, &u32, 4);
        break;
    default:
        memcpy(p, &v, 8);
        break;
    }
}

/* -0 is the smaller of two zeros, and a NaN operand gives NaN. */
static double ref_min(double x, double y)
{
    if (isnan(x) || isnan(y))
        return NAN;
    if (x != y)
        return x < y ? x : y;
    return signbit(x) ? x : y;
}

static double ref_max(double x, double y)
{
    if (isnan(x) || isnan(y))
        return NAN;
    if (x != y)
        return x > y ? x : y;
    return signbit(x) ? y : x;
}

/*
 * out[i] = a[i] op b[i]. Integers: modulo 2^64 on the extended values, then truncated, which is
 * the wrap-around of the narrow type. Floats: in double, where the sum of two of our elements is
 * exact or (float32/float64) correctly rounded twice with room to spare (53 >= 2 * 24 + 2), so one
 * rounding to the element type gives the correctly rounded result.
 */
static void ref_reduce(rdt_dtype_t dt, rdt_op_t op, const void *a, const void *b, void *out,
                       size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (is_float(dt)) {
            double x = float_at(dt, a, i), y = float_at(dt, b, i);
            double r = op == RDT_PROD  ? x * y
                       : op == RDT_MIN ? ref_min(x, y)
                       : op == RDT_MAX ? ref_max(x, y)
                                       : x + y;
            float_put(dt, out, i, r);
        } else {
            uint64_t x = int_at(dt, a, i), y = int_at(dt, b, i);
            int less = is_signed(dt) ? (int64_t)x < (int64_t)y : x < y;
            uint64_t r = op == RDT_PROD  ? x * y
                         : op == RDT_MIN ? (less ? x : y)
                         : op == RDT_MAX ? (less ? y : x)
                                         : x + y;
            int_put(dt, out, i, r);
        }
    }
}

/* ------------------------------------------------------------------------------------------- */
/* Inputs and comparison                                                                        */
/* ------------------------------------------------------------------------------------------- */

static int elem_is_nan(rdt_dtype_t dt, const void *buf, size_t i)
{
    return is_float(dt) && isnan(float_at(dt, buf, i));
}

/*
 * Random elements that exercise each type: a quarter special values (zeros of both signs, inf,
 * smallest subnormal, largest finite, +-1), a quarter small values (so that sums and products
 * round, and MIN/MAX meet equal values), half random bit patterns (NaNs too unless !nans).
 */
static void fill_random(rdt_dtype_t dt, void *buf, size_t n, uint64_t *rng, int nans)
{
    static const uint16_t half_special[] = {0x0000, 0x8000, 0x7c00, 0xfc00, 0x0001,
                                            0x8001, 0x7bff, 0xfbff, 0x3c00, 0xbc00};
    static const uint16_t bf16_special[] = {0x0000, 0x8000, 0x7f80, 0xff80, 0x0001,
                                            0x8001, 0x7f7f, 0xff7f, 0x3f80, 0xbf80};
    static const float f32_special[] = {0.0f,       -0.0f,   INFINITY, -INFINITY, 0x1p-149f,
                                        -0x1p-149f, FLT_MAX, -FLT_MAX, 1.0f,      -1.0f};
    static const double f64_special[] = {0.0,        -0.0,    INFINITY, -INFINITY, 0x1p-1074,
                                         -0x1p-1074, DBL_MAX, -DBL_MAX, 1.0,       -1.0};
    size_t es = rdt_dtype_size(dt);

    for (size_t i = 0; i < n; i++) {
        char *p = (char *)buf + i * es;
        uint64_t r = rdt_test_rand(rng), kind = r & 3, k = (r >> 2) % 10;
        uint64_t v = rdt_test_rand(rng);
        int16_t small = (int16_t)((int)(v % 9) - 4);
        uint16_t h;
        float f;
        double d;

        if (!is_float(dt)) {
            int_put(dt, buf, i, kind == 0 ? (uint64_t)(int64_t)small : v);
            continue;
        }
        do {
            switch (dt) {
            case RDT_FLOAT16:
                h = kind == 0   ? half_special[k]
                    : kind == 1 ? (uint16_t)(((v & 1) << 15) | (((v >> 1) % 6 + 12) << 10) |
                                             ((v >> 8) & 0x3ff))
                                : (uint16_t)v;
                memcpy(p, &h, 2);
                break;
            case RDT_BFLOAT16:
                h = kind == 0   ? bf16_special[k]
                    : kind == 1 ? (uint16_t)(((v & 1) << 15) | (((v >> 1) % 6 + 124) << 7) |
                                             ((v >> 8) & 0x7f))
                                : (uint16_t)v;
                memcpy(p, &h, 2);
                break;
            case RDT_FLOAT32:
                f = kind == 0 ? f32_special[k] : (float)small / 3.0f;
                memcpy(p, kind > 1 ? (const void *)&v : &f, 4);
                break;
            default:
                d = kind == 0 ? f64_special[k] : (double)small / 3.0;
                memcpy(p, kind > 1 ? (const void *)&v : &d, 8);
                break;
            }
            v = rdt_test_rand(rng);
        } while (!nans && elem_is_nan(dt, buf, i));
    }
}

/* Elements equal bit for bit, or both NaN (payloads are not specified). */
static void assert_same_elements(rdt_dtype_t dt, rdt_op_t op, const void *got, const void *want,
                                 const void *a, const void *b, size_t n)
{
    size_t es = rdt_dtype_size(dt);

    for (size_t i = 0; i < n; i++) {
        const char *g = (const char *)got + i * es, *w = (const char *)want + i * es;

        if (elem_is_nan(dt, want, i) && elem_is_nan(dt, got, i))
            continue;
        if (memcmp(g, w, es) != 0) {
            uint64_t gv = 0, wv = 0, av = 0, bv = 0;
            memcpy(&gv, g, es);
            memcpy(&wv, w, es);
            memcpy(&av, (const char *)a + i * es, es);
            memcpy(&bv, (const char *)b + i * es, es);
            fail_msg("%s %s element %zu of %zu: a=%#llx b=%#llx gave %#llx, want %#llx",
                     rdt_dtype_name(dt), rdt_op_name(op), i, n, (unsigned long long)av,
                     (unsigned long long)bv, (unsigned long long)gv, (unsigned long long)wv);
        }
    }
}

/* ------------------------------------------------------------------------------------------- */
/* Reductions                                                                                   */
/* ------------------------------------------------------------------------------------------- */

/*
 * Every dtype and length, at aligned addresses and one element off, with a guard element
 * before and after dst that must stay untouched.
 */
static void check_op_against_reference(rdt_op_t op)
{
    uint64_t rng = 0x5eed0000u + (uint64_t)op;

    for (rdt_dtype_t dt = 0; dt < RDT_DTYPE_COUNT; dt++) {
        size_t es = rdt_dtype_size(dt);

        for (size_t li = 0; li < sizeof(lengths) / sizeof(lengths[0]); li++) {
            for (size_t off = 0; off < 2; off++) {
                size_t n = lengths[li], bytes = (n + 2) * es;
                char *a = malloc(bytes), *b = malloc(bytes), *d = malloc(bytes);
                char *want = malloc(n * es + 1);

                assert_non_null(a);
                assert_non_null(b);
                assert_non_null(d);
                assert_non_null(want);
                memset(d, 0xa5, bytes);
                fill_random(dt, a + off * es, n, &rng, 1);
                fill_random(dt, b + off * es, n, &rng, 1);
                ref_reduce(dt, op, a + off * es, b + off * es, want, n);
                rdt_reduce_local(d + off * es, a + off * es, b + off * es, n, dt, op);
                assert_same_elements(dt, op, d + off * es, want, a + off * es, b + off * es, n);
                for (size_t j = 0; j < off * es; j++)
                    assert_int_equal((unsigned char)d[j], 0xa5);
                for (size_t j = (off + n) * es; j < bytes; j++)
                    assert_int_equal((unsigned char)d[j], 0xa5);
                free(a);
                free(b);
                free(d);
                free(want);
            }
        }
    }
}

static void test_sum_of_every_dtype_matches_scalar_reference(void **state)
{
    check_op_against_reference(RDT_SUM);
}

static void test_prod_of_every_dtype_matches_scalar_reference(void **state)
{
    check_op_against_reference(RDT_PROD);
}

static void test_min_of_every_dtype_matches_scalar_reference(void **state)
{
    check_op_against_reference(RDT_MIN);
}

static void test_max_of_every_dtype_matches_scalar_reference(void **state)
{
    check_op_against_reference(RDT_MAX);
}

static void test_avg_reduces_like_sum(void **state)
{
    uint64_t rng = 7;
    size_t n = 1003;

    for (rdt_dtype_t dt = 0; dt < RDT_DTYPE_COUNT; dt++) {
        size_t es = rdt_dtype_size(dt);
        char *a = malloc(n * es), *b = malloc(n * es), *d = malloc(n * es), *want = malloc(n * es);

        assert_true(a && b && d && want);
        fill_random(dt, a, n, &rng, 1);
        fill_random(dt, b, n, &rng, 1);
        ref_reduce(dt, RDT_SUM, a, b, want, n);
        rdt_reduce_local(d, a, b, n, dt, RDT_AVG);
        assert_same_elements(dt, RDT_AVG, d, want, a, b, n);
        free(a);
        free(b);
        free(d);
        free(want);
    }
}

static void test_dst_may_alias_a_or_b_or_both(void **state)
{
    uint64_t rng = 11;
    size_t n = 100003;

    for (rdt_dtype_t dt = 0; dt < RDT_DTYPE_COUNT; dt++) {
        size_t es = rdt_dtype_size(dt);
        char *a = malloc(n * es), *b = malloc(n * es), *d = malloc(n * es), *want = malloc(n * es);

        assert_true(a && b && d && want);
        fill_random(dt, a, n, &rng, 1);
        fill_random(dt, b, n, &rng, 1);
        for (size_t oi = 0; oi < 4; oi++) {
            rdt_op_t op = ops[oi];

            ref_reduce(dt, op, a, b, want, n);
            memcpy(d, a, n * es);
            rdt_reduce_local(d, d, b, n, dt, op);
            assert_same_elements(dt, op, d, want, a, b, n);
            memcpy(d, b, n * es);
            rdt_reduce_local(d, a, d, n, dt, op);
            assert_same_elements(dt, op, d, want, a, b, n);
            ref_reduce(dt, op, a, a, want, n);
            memcpy(d, a, n * es);
            rdt_reduce_local(d, d, d, n, dt, op);
            assert_same_elements(dt, op, d, want, a, a, n);
        }
        free(a);
        free(b);
        free(d);
        free(want);
    }
}

/* Ranks combine in different orders and must still agree exactly; zeros of both signs included. */
static void test_every_dtype_and_op_is_commutative_bit_for_bit(void **state)
{
    uint64_t rng = 13;
    size_t n = 1003;

    for (rdt_dtype_t dt = 0; dt < RDT_DTYPE_COUNT; dt++) {
        size_t es = rdt_dtype_size(dt);
        char *a = malloc(n * es), *b = malloc(n * es), *ab = malloc(n * es), *ba = malloc(n * es);

        assert_true(a && b && ab && ba);
        fill_random(dt, a, n, &rng, 0);
        fill_random(dt, b, n, &rng, 0);
        if (is_float(dt)) {
            for (size_t i = 0; i < n; i += 5) {
                float_put(dt, a, i, 0.0);
                float_put(dt, b, i, -0.0);
            }
        }
        for (size_t oi = 0; oi < 4; oi++) {
            rdt_reduce_local(ab, a, b, n, dt, ops[oi]);
            rdt_reduce_local(ba, b, a, n, dt, ops[oi]);
            for (size_t i = 0; i < n; i++) {
                if (memcmp(ab + i * es, ba + i * es, es) != 0)
                    fail_msg("%s %s element %zu differs with the operands swapped",
                             rdt_dtype_name(dt), rdt_op_name(ops[oi]), i);
            }
        }
        free(a);
        free(b);
        free(ab);
        free(ba);
    }
}

/*
 * Vector bodies and scalar tails must agree on every input, NaN payloads included, so that a
 * result does not depend on where a chunk boundary fell: one call over the whole buffer against
 * one call per element.
 */
static void test_result_bits_do_not_depend_on_position_in_buffer(void **state)
{
    uint64_t rng = 17;
    size_t n = 1003;

    for (rdt_dtype_t dt = 0; dt < RDT_DTYPE_COUNT; dt++) {
        size_t es = rdt_dtype_size(dt);
        char *a = malloc(n * es), *b = malloc(n * es), *whole = malloc(n * es), *one = malloc(es);

        assert_true(a && b && whole && one);
        fill_random(dt, a, n, &rng, 1);
        fill_random(dt, b, n, &rng, 1);
        for (size_t oi = 0; oi < 4; oi++) {
            rdt_reduce_local(whole, a, b, n, dt, ops[oi]);
            for (size_t i = 0; i < n; i++) {
                rdt_reduce_local(one, a + i * es, b + i * es, 1, dt, ops[oi]);
                if (memcmp(one, whole + i * es, es) != 0)
                    fail_msg("%s %s element %zu: alone and in a buffer differ", rdt_dtype_name(dt),
                             rdt_op_name(ops[oi]), i);
            }
        }
        free(a);
        free(b);
        free(whole);
        free(one);
    }
}

static void test_min_max_of_signed_zeros_ignore_operand_order(void **state)
{
    for (rdt_dtype_t dt = RDT_FLOAT16; dt <= RDT_FLOAT64; dt++) {
        char a[16], b[16], d[16];

        float_put(dt, a, 0, 0.0);
        float_put(dt, a, 1, -0.0);
        float_put(dt, b, 0, -0.0);
        float_put(dt, b, 1, 0.0);
        rdt_reduce_local(d, a, b, 2, dt, RDT_MIN);
        assert_true(float_at(dt, d, 0) == 0 && signbit(float_at(dt, d, 0)));
        assert_true(float_at(dt, d, 1) == 0 && signbit(float_at(dt, d, 1)));
        rdt_reduce_local(d, a, b, 2, dt, RDT_MAX);
        assert_true(float_at(dt, d, 0) == 0 && !signbit(float_at(dt, d, 0)));
        assert_true(float_at(dt, d, 1) == 0 && !signbit(float_at(dt, d, 1)));
    }
}

static void test_nan_operand_gives_nan_for_every_float_dtype_and_op(void **state)
{
    static const double others[] = {1.0, -2.5, 0.0, -0.0, INFINITY, -INFINITY};
    size_t n = 300; /* a full 256-byte block and a tail for every element size */

    for (rdt_dtype_t dt = RDT_FLOAT16; dt <= RDT_FLOAT64; dt++) {
        size_t es = rdt_dtype_size(dt);
        char *a = malloc(n * es), *b = malloc(n * es), *d = malloc(n * es);

        assert_true(a && b && d);
        for (size_t i = 0; i < n; i++) {
            float_put(dt, a, i, NAN);
            float_put(dt, b, i, others[i % 6]);
        }
        for (size_t oi = 0; oi < 4; oi++) {
            rdt_reduce_local(d, a, b, n, dt, ops[oi]);
            for (size_t i = 0; i < n; i++)
                assert_true(elem_is_nan(dt, d, i));
            rdt_reduce_local(d, b, a, n, dt, ops[oi]);
            for (size_t i = 0; i < n; i++)
                assert_true(elem_is_nan(dt, d, i));
        }
        free(a);
        free(b);
        free(d);
    }
}

static void test_unsupported_pair_leaves_dst_untouched(void **state)
{
    uint32_t a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, d[4] = {9, 9, 9, 9};

    rdt_reduce_local(d, a, b, 4, RDT_DTYPE_COUNT, RDT_SUM);
    rdt_reduce_local(d, a, b, 4, RDT_UINT32, RDT_OP_COUNT);
    for (int i = 0; i < 4; i++)
        assert_int_equal(d[i], 9);
    rdt_reduce_local(d, a, b, 4, RDT_UINT32, RDT_SUM);
    assert_int_equal(d[3], 12);
}

/* ------------------------------------------------------------------------------------------- */
/* Conversions                                                                                  */
/* ------------------------------------------------------------------------------------------- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

typedef struct {
    const char *name;
    int mbits, emax;
    float (*widen)(uint16_t);
    uint16_t (*narrow)(float);
} fmt16_t;

static const fmt16_t fmt_half = {"float16", 10, 15, rdt_half_to_float, rdt_float_to_half};
static const fmt16_t fmt_bf16 = {"bfloat16", 7, 127, rdt_bf16_to_float, rdt_float_to_bf16};

static int pattern_is_nan(const fmt16_t *fmt, uint16_t h)
{
    uint16_t inf = (uint16_t)(0x7fff & ~((1 << fmt->mbits) - 1));
    return (h & inf) == inf && (h & ((1 << fmt->mbits) - 1)) != 0;
}

static void check_widen_all_patterns(const fmt16_t *fmt)
{
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = fmt->widen((uint16_t)h);
        double want = ref_value16((uint16_t)h, fmt->mbits, fmt->emax);

        if (isnan(want)) {
            assert_true(isnan(f));
        } else if ((double)f != want) {
            fail_msg("%s %#x widened to %a, want %a", fmt->name, h, (double)f, want);
        }
        assert_int_equal(!!signbit(f), !!(h & 0x8000));
    }
}

static void check_round_trip_all_patterns(const fmt16_t *fmt)
{
    for (uint32_t h = 0; h < 0x10000; h++) {
        uint16_t back = fmt->narrow(fmt->widen((uint16_t)h));

        if (pattern_is_nan(fmt, (uint16_t)h))
            assert_true(pattern_is_nan(fmt, back));
        else if (back != h)
            fail_msg("%s %#x came back as %#x", fmt->name, h, back);
    }
}

/*
 * Between every two adjacent finite values of the same sign: the midpoint (exact in float) goes
 * to the one with an even mantissa, and one float ulp either side goes to the nearer one.
 */
static void check_ties_between_all_neighbours(const fmt16_t *fmt)
{
    uint16_t inf = (uint16_t)(0x7fff & ~((1 << fmt->mbits) - 1));

    for (uint32_t lo = 0; lo + 1 < inf; lo++) {
        for (uint32_t sign = 0; sign <= 0x8000; sign += 0x8000) {
            uint16_t l = (uint16_t)(lo | sign), h = (uint16_t)((lo + 1) | sign);
            double vl = ref_value16(l, fmt->mbits, fmt->emax);
            double vh = ref_value16(h, fmt->mbits, fmt->emax);
            float mid = (float)((vl + vh) / 2);

            assert_true((double)mid == (vl + vh) / 2);
            if (fmt->narrow(mid) != ((lo & 1) ? h : l))
                fail_msg("%s tie %a gave %#x, between %#x and %#x", fmt->name, (double)mid,
                         fmt->narrow(mid), l, h);
            assert_int_equal(fmt->narrow(nextafterf(mid, (float)vl)), l);
            assert_int_equal(fmt->narrow(nextafterf(mid, (float)vh)), h);
        }
    }
}

/* Random bit patterns (all exponents) and random values in and around the format's range. */
static void check_narrow_random_floats(const fmt16_t *fmt, uint64_t seed)
{
    uint64_t rng = seed;
    int lo = 127 - fmt->emax - fmt->mbits - 5, hi = 127 + fmt->emax + 2; /* float exponents */
    uint64_t span;

    lo = lo < 0 ? 0 : lo;
    hi = hi > 254 ? 254 : hi;
    span = (uint64_t)(hi - lo + 1);
    for (int i = 0; i < 2000000; i++) {
        uint64_t r = rdt_test_rand(&rng);
        uint32_t bits = (uint32_t)r, e = (uint32_t)lo + (uint32_t)((r >> 32) % span);
        float f;
        uint16_t got, want;

        if (i & 1) /* exponent near the format's range, to hit subnormals and overflow often */
            bits = (bits & 0x807fffffu) | e << 23;
        f = bits_f32(bits);
        got = fmt->narrow(f);
        want = ref_round16(f, fmt->mbits, fmt->emax);
        if (isnan(f))
            assert_true(pattern_is_nan(fmt, got) && (got & 0x8000) == (want & 0x8000));
        else if (got != want)
            fail_msg("%s of %a (%#x): got %#x, want %#x", fmt->name, (double)f, bits, got, want);
    }
}

static void test_half_to_float_matches_definition_for_all_65536_patterns(void **state)
{
    check_widen_all_patterns(&fmt_half);
}

static void test_half_round_trips_through_float_for_every_pattern(void **state)
{
    check_round_trip_all_patterns(&fmt_half);
}

static void test_float_to_half_rounds_ties_to_even_between_all_neighbours(void **state)
{
    check_ties_between_all_neighbours(&fmt_half);
}

static void test_float_to_half_matches_reference_on_random_floats(void **state)
{
    check_narrow_random_floats(&fmt_half, 21);
}

#if defined(__FLT16_MAX__)
/* A second, independent reference where the compiler has one: its own _Float16 conversion. */
static void test_float_to_half_agrees_with_compiler_float16(void **state)
{
    uint64_t rng = 23;

    for (int i = 0; i < 1000000; i++) {
        float f = bits_f32((uint32_t)rdt_test_rand(&rng));
        _Float16 h = (_Float16)f;
        uint16_t want;

        memcpy(&want, &h, 2);
        if (!isnan(f))
            assert_int_equal(rdt_float_to_half(f), want);
    }
}
#endif

static void test_float_to_half_overflows_to_inf_and_keeps_nans(void **state)
{
    assert_int_equal(rdt_float_to_half(65504.0f), 0x7bff);
    assert_int_equal(rdt_float_to_half(nextafterf(65520.0f, 0)), 0x7bff);
    assert_int_equal(rdt_float_to_half(65520.0f), 0x7c00); /* tie, 0x7bff is odd */
    assert_int_equal(rdt_float_to_half(-1e10f), 0xfc00);
    assert_int_equal(rdt_float_to_half(-INFINITY), 0xfc00);
    assert_int_equal(rdt_float_to_half(0x1p-25f), 0x0000); /* tie with the even 0 */
    assert_int_equal(rdt_float_to_half(nextafterf(0x1p-25f, 1)), 0x0001);
    assert_int_equal(rdt_float_to_half(-0x1p-149f), 0x8000);
    /* A payload only in bits the conversion drops must still give a NaN, not inf. */
    assert_true(pattern_is_nan(&fmt_half, rdt_float_to_half(bits_f32(0x7f800001u))));
    assert_true(pattern_is_nan(&fmt_half, rdt_float_to_half(bits_f32(0xff800001u))));
    assert_int_equal(rdt_float_to_half(bits_f32(0xff800001u)) & 0x8000, 0x8000);
}

static void test_bf16_to_float_matches_definition_for_all_65536_patterns(void **state)
{
    check_widen_all_patterns(&fmt_bf16);
}

static void test_bf16_round_trips_through_float_for_every_pattern(void **state)
{
    check_round_trip_all_patterns(&fmt_bf16);
}

static void test_float_to_bf16_rounds_ties_to_even_between_all_neighbours(void **state)
{
    check_ties_between_all_neighbours(&fmt_bf16);
}

static void test_float_to_bf16_matches_reference_on_random_floats(void **state)
{
    check_narrow_random_floats(&fmt_bf16, 31);
}

static void test_float_to_bf16_overflows_to_inf_and_keeps_nans(void **state)
{
    assert_int_equal(rdt_float_to_bf16(0x1.fep127f), 0x7f7f);
    assert_int_equal(rdt_float_to_bf16(0x1.ffp127f), 0x7f80); /* tie, 0x7f7f is odd */
    assert_int_equal(rdt_float_to_bf16(nextafterf(0x1.ffp127f, 0)), 0x7f7f);
    assert_int_equal(rdt_float_to_bf16(-INFINITY), 0xff80);
    assert_int_equal(rdt_float_to_bf16(0x1p-134f), 0x0000);   /* tie with the even 0 */
    assert_int_equal(rdt_float_to_bf16(0x1.8p-133f), 0x0002); /* tie between 1 and 2 */
    assert_true(pattern_is_nan(&fmt_bf16, rdt_float_to_bf16(bits_f32(0x7f800001u))));
    assert_true(pattern_is_nan(&fmt_bf16, rdt_float_to_bf16(bits_f32(0x7fffffffu))));
    assert_int_equal(rdt_float_to_bf16(bits_f32(0xff800001u)) & 0x8000, 0x8000);
    assert_int_equal(f32_bits(rdt_bf16_to_float(0x3f80)), 0x3f800000u);
}

/* ------------------------------------------------------------------------------------------- */
/* AVG scaling                                                                                  */
/* ------------------------------------------------------------------------------------------- */

/* Truncating division spelled out on the magnitude, not with C's signed '/'. */
static uint64_t ref_trunc_div(rdt_dtype_t dt, uint64_t x, int divisor)
{
    int neg = is_signed(dt) && (int64_t)x < 0;
    uint64_t mag = neg ? 0 - x : x, q = mag / (uint64_t)divisor;

    return neg ? 0 - q : q;
}

static void test_scale_avg_truncates_integers_toward_zero(void **state)
{
    static const int divisors[] = {2, 3, 7, 64};
    int8_t i8[] = {-7, 7, -128, 127, -1, 1, 0};
    int32_t i32[] = {-7, 7, INT32_MIN, INT32_MAX, -1};
    int64_t i64[] = {-7, 7, INT64_MIN, INT64_MAX, -1};
    uint64_t rng = 41;

    rdt_reduce_scale_avg(i8, 7, RDT_INT8, 2);
    assert_int_equal(i8[0], -3);
    assert_int_equal(i8[1], 3);
    assert_int_equal(i8[2], -64);
    assert_int_equal(i8[3], 63);
    assert_int_equal(i8[4], 0);
    assert_int_equal(i8[5], 0);
    rdt_reduce_scale_avg(i32, 5, RDT_INT32, 2);
    assert_int_equal(i32[0], -3);
    assert_int_equal(i32[2], INT32_MIN / 2);
    assert_int_equal(i32[4], 0);
    rdt_reduce_scale_avg(i64, 5, RDT_INT64, 4);
    assert_true(i64[0] == -1 && i64[1] == 1 && i64[2] == INT64_MIN / 4 && i64[4] == 0);

    for (rdt_dtype_t dt = 0; dt < RDT_DTYPE_COUNT; dt++) {
        size_t n = 1003, es = rdt_dtype_size(dt);
        char *buf, *orig;

        if (is_float(dt))
            continue;
        buf = malloc(n * es);
        orig = malloc(n * es);
        assert_true(buf && orig);
        for (size_t di = 0; di < 4; di++) {
            fill_random(dt, orig, n, &rng, 1);
            memcpy(buf, orig, n * es);
            rdt_reduce_scale_avg(buf, n, dt, divisors[di]);
            for (size_t i = 0; i < n; i++) {
                uint64_t want = ref_trunc_div(dt, int_at(dt, orig, i), divisors[di]);
                if (int_at(dt, buf, i) != want)
                    fail_msg("%s %#llx / %d gave %#llx", rdt_dtype_name(dt),
                             (unsigned long long)int_at(dt, orig, i), divisors[di],
                             (unsigned long long)int_at(dt, buf, i));
            }
        }
        free(buf);
        free(orig);
    }
}

/* Reference: the quotient in double, rounded once to the type (double rounding is innocuous). */
static void test_scale_avg_divides_floats_in_their_widened_type(void **state)
{
    static const int divisors[] = {2, 3, 7, 1000};
    uint64_t rng = 43;
    float third = 1.0f;
    uint16_t h = 0x3c00; /* 1.0 */

    rdt_reduce_scale_avg(&third, 1, RDT_FLOAT32, 3);
    assert_true(third == 1.0f / 3.0f);
    rdt_reduce_scale_avg(&h, 1, RDT_FLOAT16, 3);
    assert_int_equal(h, 0x3555); /* 1/3 in binary16 */

    for (rdt_dtype_t dt = RDT_FLOAT16; dt <= RDT_FLOAT64; dt++) {
        size_t n = 100003, es = rdt_dtype_size(dt);
        char *buf = malloc(n * es), *orig = malloc(n * es), *want = malloc(n * es);

        assert_true(buf && orig && want);
        for (size_t di = 0; di < 4; di++) {
            fill_random(dt, orig, n, &rng, 1);
            memcpy(buf, orig, n * es);
            for (size_t i = 0; i < n; i++)
                float_put(dt, want, i, float_at(dt, orig, i) / divisors[di]);
            rdt_reduce_scale_avg(buf, n, dt, divisors[di]);
            assert_same_elements(dt, RDT_AVG, buf, want, orig, orig, n);
        }
        free(buf);
        free(orig);
        free(want);
    }
}

static void test_scale_avg_by_one_leaves_buffer_unchanged(void **state)
{
    uint64_t rng = 47;

    for (rdt_dtype_t dt = 0; dt < RDT_DTYPE_COUNT; dt++) {
        size_t n = 300, es = rdt_dtype_size(dt);
        char *buf = malloc(n * es), *orig = malloc(n * es);

        assert_true(buf && orig);
        fill_random(dt, orig, n, &rng, 1);
        memcpy(buf, orig, n * es);
        rdt_reduce_scale_avg(buf, n, dt, 1);
        assert_memory_equal(buf, orig, n * es);
        free(buf);
        free(orig);
    }
}

/* ------------------------------------------------------------------------------------------- */
/* Queries                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static void test_supported_accepts_every_pair_and_rejects_out_of_range(void **state)
{
    for (rdt_dtype_t dt = 0; dt < RDT_DTYPE_COUNT; dt++)
        for (rdt_op_t op = 0; op < RDT_OP_COUNT; op++)
            assert_int_equal(rdt_reduce_supported(dt, op), 1);
    assert_int_equal(rdt_reduce_supported(RDT_DTYPE_COUNT, RDT_SUM), 0);
    assert_int_equal(rdt_reduce_supported(RDT_FLOAT32, RDT_OP_COUNT), 0);
    assert_int_equal(rdt_reduce_supported((rdt_dtype_t)-1, RDT_SUM), 0);
    assert_int_equal(rdt_reduce_supported(RDT_FLOAT32, (rdt_op_t)-1), 0);
}

static void test_isa_is_a_known_kernel_set(void **state)
{
    const char *isa = rdt_reduce_isa();
#if defined(__x86_64__)
    static const char *const known[] = {"avx512", "avx2", "sse2"};
#elif defined(__aarch64__)
    static const char *const known[] = {"neon"};
#else
    static const char *const known[] = {"scalar"};
#endif
    int found = 0;

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        found |= strcmp(isa, known[i]) == 0;
    if (!found)
        fail_msg("unexpected kernel set \"%s\"", isa);
    print_message("reduction kernels: %s\n", isa);
}

/* Every length 0..600 and a large one, at every alignment of source and destination mod 16:
 * the bytes copied equal the source's, and the bytes around the destination are untouched. */
static void test_streaming_copy_copies_exactly_at_every_alignment(void **state)
{
    enum { MAXN = 70000, GUARD = 32 };
    unsigned char *src = malloc(MAXN + 64), *dst = malloc(MAXN + 64 + 2 * GUARD);
    size_t n, i;
    int sa, da;

    (void)state;
    assert_non_null(src);
    assert_non_null(dst);
    for (i = 0; i < MAXN + 64; i++)
        src[i] = (unsigned char)(i * 131 + 7);
    for (sa = 0; sa < 16; sa++)
        for (da = 0; da < 16; da++)
            for (n = 0; n <= MAXN; n = n < 600 ? n + 1 : n < MAXN - 5 ? MAXN - 5 : n + 1) {
                unsigned char *d = dst + GUARD + da;
                memset(dst, 0xee, MAXN + 64 + 2 * GUARD);
                rdt_copy_stream(d, src + sa, n);
                assert_memory_equal(d, src + sa, n);
                for (i = 0; i < (size_t)GUARD + (size_t)da; i++)
                    assert_int_equal(dst[i], 0xee);
                for (i = 0; i < GUARD; i++)
                    assert_int_equal(d[n + i], 0xee);
            }
    free(src);
    free(dst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_isa_is_a_known_kernel_set),
        cmocka_unit_test(test_supported_accepts_every_pair_and_rejects_out_of_range),
        cmocka_unit_test(test_sum_of_every_dtype_matches_scalar_reference),
        cmocka_unit_test(test_prod_of_every_dtype_matches_scalar_reference),
        cmocka_unit_test(test_min_of_every_dtype_matches_scalar_reference),
        cmocka_unit_test(test_max_of_every_dtype_matches_scalar_reference),
        cmocka_unit_test(test_avg_reduces_like_sum),
        cmocka_unit_test(test_dst_may_alias_a_or_b_or_both),
        cmocka_unit_test(test_every_dtype_and_op_is_commutative_bit_for_bit),
        cmocka_unit_test(test_result_bits_do_not_depend_on_position_in_buffer),
        cmocka_unit_test(test_min_max_of_signed_zeros_ignore_operand_order),
        cmocka_unit_test(test_nan_operand_gives_nan_for_every_float_dtype_and_op),
        cmocka_unit_test(test_unsupported_pair_leaves_dst_untouched),
        cmocka_unit_test(test_half_to_float_matches_definition_for_all_65536_patterns),
        cmocka_unit_test(test_half_round_trips_through_float_for_every_pattern),
        cmocka_unit_test(test_float_to_half_rounds_ties_to_even_between_all_neighbours),
        cmocka_unit_test(test_float_to_half_matches_reference_on_random_floats),
#if defined(__FLT16_MAX__)
        cmocka_unit_test(test_float_to_half_agrees_with_compiler_float16),
#endif
        cmocka_unit_test(test_float_to_half_overflows_to_inf_and_keeps_nans),
        cmocka_unit_test(test_bf16_to_float_matches_definition_for_all_65536_patterns),
        cmocka_unit_test(test_bf16_round_trips_through_float_for_every_pattern),
        cmocka_unit_test(test_float_to_bf16_rounds_ties_to_even_between_all_neighbours),
        cmocka_unit_test(test_float_to_bf16_matches_reference_on_random_floats),
        cmocka_unit_test(test_float_to_bf16_overflows_to_inf_and_keeps_nans),
        cmocka_unit_test(test_scale_avg_truncates_integers_toward_zero),
        cmocka_unit_test(test_scale_avg_divides_floats_in_their_widened_type),
        cmocka_unit_test(test_scale_avg_by_one_leaves_buffer_unchanged),
        cmocka_unit_test(test_streaming_copy_copies_exactly_at_every_alignment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
