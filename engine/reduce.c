/*
 * reduce.c - elementwise reduction kernels and float16/bfloat16 conversions.
 *
 * Each kernel body is written once, as a plain C loop in an always_inline function, and
 * instantiated in wrappers compiled for one target each (AVX-512, AVX2, the x86-64 baseline SSE2,
 * or the native target elsewhere): gcc vectorizes every instantiation for its own ISA, and one
 * table per ISA is picked at first use from what the CPU supports. No build-machine flag is
 * needed. On x86-64 the float16 and bfloat16 kernels are written with intrinsics (F16C and
 * AVX-512 conversions, bfloat16 rounding in 32-bit lanes); everywhere else, and for their scalar
 * tails, the conversions are the exact integer code below.
 */
#include "reduce.h"

#include <assert.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#define RDT_INLINE static inline __attribute__((always_inline))

typedef void (*rdt_reduce_fn_t)(void *dst, const void *a, const void *b, size_t n, rdt_op_t op);
typedef void (*rdt_scale_fn_t)(void *buf, size_t n, int divisor);

typedef struct {
    const char *name;
    rdt_reduce_fn_t reduce[RDT_DTYPE_COUNT];
    rdt_scale_fn_t scale[RDT_DTYPE_COUNT];
} rdt_reduce_kernels_t;

/* ------------------------------------------------------------------------------------------- */
/* Scalar conversions: integer code only, so they are exact whatever the FPU's rounding mode     */
/* and FTZ/DAZ flags (a trainer linked with -ffast-math sets those), and branch-free.            */
/* ------------------------------------------------------------------------------------------- */

RDT_INLINE uint32_t rdt_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

RDT_INLINE float rdt_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

RDT_INLINE uint64_t rdt_f64_bits(double f)
{
    uint64_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

RDT_INLINE double rdt_bits_f64(uint64_t u)
{
    double f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

RDT_INLINE float rdt_h2f(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t em = h & 0x7fffu;
    /* Normal: move exponent and mantissa into place and rebias the exponent from 15 to 127. */
    uint32_t normal = (em << 13) + ((127u - 15u) << 23);
    /* inf stays inf; a NaN keeps its payload and is quieted, as the hardware conversions do. */
    uint32_t special = 0x7f800000u | (em << 13) | (em > 0x7c00u ? 0x00400000u : 0);
    /* Subnormal m * 2^-24: m converts to float exactly, then 24 comes off its exponent. */
    uint32_t sub = rdt_f32_bits((float)em) - (24u << 23);
    uint32_t r = em >= 0x7c00u ? special : em >= 0x0400u ? normal : em != 0 ? sub : 0;
    return rdt_bits_f32(sign | r);
}

RDT_INLINE uint16_t rdt_f2h(float f)
{
    uint32_t x = rdt_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t a = x & 0x7fffffffu;
    /* NaN: the top payload bits with the quiet bit set, so it cannot turn into inf. */
    uint32_t nan = 0x7e00u | ((a >> 13) & 0x3ffu);
    /*
     * Normal half (2^-14 <= |f| < 65520): rebias 127 -> 15 and round the 13 dropped bits to
     * nearest even; a carry out of the mantissa bumps the exponent, as it should.
     */
    uint32_t normal = (a - ((127u - 15u) << 23) + 0xfffu + ((a >> 13) & 1)) >> 13;
    /*
     * Subnormal half: round mant * 2^(e - 150) to a multiple of 2^-24, i.e. shift the 24-bit
     * mantissa right by 126 - e with round to nearest even. Below 2^-25 (e < 102) it is 0 (2^-25
     * itself is a tie, which goes to the even 0). The shift is clamped to stay defined for the
     * lanes that take another branch.
     */
    uint32_t e = a >> 23;
    uint32_t sh = 126u - (e < 102u ? 102u : e > 112u ? 112u : e);
    uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    uint32_t sub = e < 102u ? 0 : (mant + (1u << (sh - 1)) - 1 + ((mant >> sh) & 1)) >> sh;
    uint32_t r = a > 0x7f800000u    ? nan
                 : a >= 0x477ff000u ? 0x7c00u
                 : a >= 0x38800000u ? normal
                                    : sub;
    return (uint16_t)(sign | r);
}

RDT_INLINE float rdt_bf2f(uint16_t h)
{
    return rdt_bits_f32((uint32_t)h << 16);
}

RDT_INLINE uint16_t rdt_f2bf(float f)
{
    uint32_t x = rdt_f32_bits(f);
    /* Rounding could make a NaN inf (payload only in the low half) or carry it into the sign. */
    uint32_t nan = (x >> 16) | 0x40u;
    uint32_t rne = (x + 0x7fffu + ((x >> 16) & 1)) >> 16;
    return (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? nan : rne);
}

float rdt_half_to_float(uint16_t h)
{
    return rdt_h2f(h);
}

uint16_t rdt_float_to_half(float f)
{
    return rdt_f2h(f);
}

float rdt_bf16_to_float(uint16_t h)
{
    return rdt_bf2f(h);
}

uint16_t rdt_float_to_bf16(float f)
{
    return rdt_f2bf(f);
}

/* ------------------------------------------------------------------------------------------- */
/* Element operations                                                                            */
/* ------------------------------------------------------------------------------------------- */

/* SUM and PROD in the unsigned type, so they wrap instead of overflowing (UB in signed). */
#define RDT_DEFINE_INT_OPS(name, T, UT)                                                            \
    RDT_INLINE T rdt_sum_##name(T x, T y)                                                          \
    {                                                                                              \
        return (T)((UT)x + (UT)y);                                                                 \
    }                                                                                              \
    RDT_INLINE T rdt_prod_##name(T x, T y)                                                         \
    {                                                                                              \
        return (T)((UT)x * (UT)y);                                                                 \
    }                                                                                              \
    RDT_INLINE T rdt_min_##name(T x, T y)                                                          \
    {                                                                                              \
        return x < y ? x : y;                                                                      \
    }                                                                                              \
    RDT_INLINE T rdt_max_##name(T x, T y)                                                          \
    {                                                                                              \
        return x > y ? x : y;                                                                      \
    }

RDT_DEFINE_INT_OPS(i8, int8_t, uint8_t)
RDT_DEFINE_INT_OPS(u8, uint8_t, uint8_t)
RDT_DEFINE_INT_OPS(i32, int32_t, uint32_t)
RDT_DEFINE_INT_OPS(u32, uint32_t, uint32_t)
RDT_DEFINE_INT_OPS(i64, int64_t, uint64_t)
RDT_DEFINE_INT_OPS(u64, uint64_t, uint64_t)

RDT_INLINE float rdt_sum_f32(float x, float y)
{
    return x + y;
}

RDT_INLINE float rdt_prod_f32(float x, float y)
{
    return x * y;
}

/*
 * x < y ? x : y taken in both operand orders and merged bitwise. The two differ only for a pair
 * of zeros (the OR gives -0) or a NaN operand (the OR keeps the exponent all ones and the NaN's
 * mantissa bits, so a NaN): the result no longer depends on the order.
 */
RDT_INLINE float rdt_min_f32(float x, float y)
{
    return rdt_bits_f32(rdt_f32_bits(x < y ? x : y) | rdt_f32_bits(y < x ? y : x));
}

/* As rdt_min_f32, but the sign bits are ANDed so that +0 wins; the rest is still ORed. */
RDT_INLINE float rdt_max_f32(float x, float y)
{
    uint32_t p = rdt_f32_bits(x > y ? x : y), q = rdt_f32_bits(y > x ? y : x);
    return rdt_bits_f32((p & q) | ((p | q) & 0x7fffffffu));
}

RDT_INLINE double rdt_sum_f64(double x, double y)
{
    return x + y;
}

RDT_INLINE double rdt_prod_f64(double x, double y)
{
    return x * y;
}

RDT_INLINE double rdt_min_f64(double x, double y)
{
    return rdt_bits_f64(rdt_f64_bits(x < y ? x : y) | rdt_f64_bits(y < x ? y : x));
}

RDT_INLINE double rdt_max_f64(double x, double y)
{
    uint64_t p = rdt_f64_bits(x > y ? x : y), q = rdt_f64_bits(y > x ? y : x);
    return rdt_bits_f64((p & q) | ((p | q) & 0x7fffffffffffffffu));
}

/*
 * float16 and bfloat16: widen, reduce in float32, round once. float32's 24 significand bits are
 * at least 2p + 2 for both (p = 11, 8), so rounding twice (to float32, then to the type) gives
 * the correctly rounded sum, product or quotient.
 */
#define RDT_DEFINE_NARROW_OPS(name, TO_F, FROM_F)                                                  \
    RDT_INLINE uint16_t rdt_sum_##name(uint16_t x, uint16_t y)                                     \
    {                                                                                              \
        return FROM_F(TO_F(x) + TO_F(y));                                                          \
    }                                                                                              \
    RDT_INLINE uint16_t rdt_prod_##name(uint16_t x, uint16_t y)                                    \
    {                                                                                              \
        return FROM_F(TO_F(x) * TO_F(y));                                                          \
    }                                                                                              \
    RDT_INLINE uint16_t rdt_min_##name(uint16_t x, uint16_t y)                                     \
    {                                                                                              \
        return FROM_F(rdt_min_f32(TO_F(x), TO_F(y)));                                              \
    }                                                                                              \
    RDT_INLINE uint16_t rdt_max_##name(uint16_t x, uint16_t y)                                     \
    {                                                                                              \
        return FROM_F(rdt_max_f32(TO_F(x), TO_F(y)));                                              \
    }

RDT_DEFINE_NARROW_OPS(f16, rdt_h2f, rdt_f2h)
RDT_DEFINE_NARROW_OPS(bf16, rdt_bf2f, rdt_f2bf)

/* AVG: C division truncates toward zero; divisor >= 2 here, so INT_MIN / -1 cannot occur. */
#define RDT_DEFINE_INT_SCALE(name, T, DT)                                                          \
    RDT_INLINE T rdt_scale_##name(T x, int divisor)                                                \
    {                                                                                              \
        return (T)((DT)x / (DT)divisor);                                                           \
    }

RDT_DEFINE_INT_SCALE(i8, int8_t, int)
RDT_DEFINE_INT_SCALE(u8, uint8_t, unsigned)
RDT_DEFINE_INT_SCALE(i32, int32_t, int32_t)
RDT_DEFINE_INT_SCALE(u32, uint32_t, uint32_t)
RDT_DEFINE_INT_SCALE(i64, int64_t, int64_t)
RDT_DEFINE_INT_SCALE(u64, uint64_t, uint64_t)

RDT_INLINE float rdt_scale_f32(float x, int divisor)
{
    return x / (float)divisor;
}

RDT_INLINE double rdt_scale_f64(double x, int divisor)
{
    return x / (double)divisor;
}

RDT_INLINE uint16_t rdt_scale_f16(uint16_t x, int divisor)
{
    return rdt_f2h(rdt_h2f(x) / (float)divisor);
}

RDT_INLINE uint16_t rdt_scale_bf16(uint16_t x, int divisor)
{
    return rdt_f2bf(rdt_bf2f(x) / (float)divisor);
}

/* ------------------------------------------------------------------------------------------- */
/* Loops                                                                                         */
/* ------------------------------------------------------------------------------------------- */

/*
 * Blocks of a constant 256 bytes, then a scalar tail. gcc's -O2 (very-cheap cost model) only
 * vectorizes a loop whose trip count is a known multiple of the vector length, which the inner
 * loop is. ivdep because dst may be exactly a or b: no dependency between iterations, and it
 * spares the runtime overlap check that very-cheap would refuse. Partial overlap is excluded by
 * the contract.
 */
#define RDT_BLOCK_BYTES 256

/* clang (not our compiler, but its tools read this file) vectorizes with an overlap check. */
#if defined(__clang__)
#define RDT_IVDEP
#else
#define RDT_IVDEP _Pragma("GCC ivdep")
#endif

/* clang-format off: it cannot tell that RDT_IVDEP belongs to the loop below it */
/* d_[i_..] = FN(a_, b_) in steps of STEP elements while a whole step is left, each step one
 * vectorizable loop */
#define RDT_LOOP_STEPS_(FN, n, STEP)                                                               \
    for (; i_ + (STEP) <= (n); i_ += (STEP)) {                                                     \
        RDT_IVDEP                                                                                  \
        for (size_t j_ = 0; j_ < (STEP); j_++)                                                     \
            d_[i_ + j_] = FN(a_[i_ + j_], b_[i_ + j_]);                                            \
    }

/* Blocks of RDT_BLOCK_BYTES, then the tail in 64-byte pieces (a vector under a block, as a
 * 64-256 byte one-shot allreduce's, is vectorized too), then element by element. */
#define RDT_LOOP(T, dst, a, b, n, FN)                                                              \
    do {                                                                                           \
        T *d_ = (dst);                                                                             \
        const T *a_ = (a), *b_ = (b);                                                              \
        size_t i_ = 0;                                                                             \
        RDT_LOOP_STEPS_(FN, n, RDT_BLOCK_BYTES / sizeof(T))                                        \
        RDT_LOOP_STEPS_(FN, n, 64 / sizeof(T))                                                     \
        for (; i_ < (n); i_++)                                                                     \
            d_[i_] = FN(a_[i_], b_[i_]);                                                           \
    } while (0)
/* clang-format on */

#define RDT_SCALE_LOOP(T, buf, n, divisor, FN)                                                     \
    do {                                                                                           \
        T *p_ = (buf);                                                                             \
        const size_t blk_ = RDT_BLOCK_BYTES / sizeof(T);                                           \
        size_t i_ = 0;                                                                             \
        for (; i_ + blk_ <= (n); i_ += blk_) {                                                     \
            for (size_t j_ = 0; j_ < blk_; j_++)                                                   \
                p_[i_ + j_] = FN(p_[i_ + j_], (divisor));                                          \
        }                                                                                          \
        for (; i_ < (n); i_++)                                                                     \
            p_[i_] = FN(p_[i_], (divisor));                                                        \
    } while (0)

/* One switch per call, outside the loops; each case is its own vectorized loop. AVG sums. */
#define RDT_DEFINE_BODIES(name, T)                                                                 \
    RDT_INLINE void rdt_reduce_body_##name(void *dst, const void *a, const void *b, size_t n,      \
                                           rdt_op_t op)                                            \
    {                                                                                              \
        switch (op) {                                                                              \
        case RDT_PROD:                                                                             \
            RDT_LOOP(T, dst, a, b, n, rdt_prod_##name);                                            \
            break;                                                                                 \
        case RDT_MIN:                                                                              \
            RDT_LOOP(T, dst, a, b, n, rdt_min_##name);                                             \
            break;                                                                                 \
        case RDT_MAX:                                                                              \
            RDT_LOOP(T, dst, a, b, n, rdt_max_##name);                                             \
            break;                                                                                 \
        default:                                                                                   \
            RDT_LOOP(T, dst, a, b, n, rdt_sum_##name);                                             \
            break;                                                                                 \
        }                                                                                          \
    }                                                                                              \
    RDT_INLINE void rdt_scale_body_##name(void *buf, size_t n, int divisor)                        \
    {                                                                                              \
        RDT_SCALE_LOOP(T, buf, n, divisor, rdt_scale_##name);                                      \
    }

/*
 * The dtypes whose loops are plain C on every target, as (enum, name, C type, extra arguments
 * passed through to X). float16 and bfloat16 have kernels of their own on x86-64.
 */
#define RDT_DTYPES_PLAIN(X, ...)                                                                   \
    X(RDT_INT8, i8, int8_t, __VA_ARGS__)                                                           \
    X(RDT_UINT8, u8, uint8_t, __VA_ARGS__)                                                         \
    X(RDT_INT32, i32, int32_t, __VA_ARGS__)                                                        \
    X(RDT_UINT32, u32, uint32_t, __VA_ARGS__)                                                      \
    X(RDT_INT64, i64, int64_t, __VA_ARGS__)                                                        \
    X(RDT_UINT64, u64, uint64_t, __VA_ARGS__)                                                      \
    X(RDT_FLOAT32, f32, float, __VA_ARGS__)                                                        \
    X(RDT_FLOAT64, f64, double, __VA_ARGS__)

#define RDT_BODIES_(dtype, name, T, unused) RDT_DEFINE_BODIES(name, T)
RDT_DTYPES_PLAIN(RDT_BODIES_, )
RDT_DEFINE_BODIES(f16, uint16_t)
RDT_DEFINE_BODIES(bf16, uint16_t)

/* Calls LOOP with op as a constant: one loop per op, in which the op folds to one operation. */
#define RDT_SWITCH_OP(LOOP, dst, a, b, n, op)                                                      \
    do {                                                                                           \
        switch (op) {                                                                              \
        case RDT_PROD:                                                                             \
            LOOP(dst, a, b, n, RDT_PROD);                                                          \
            break;                                                                                 \
        case RDT_MIN:                                                                              \
            LOOP(dst, a, b, n, RDT_MIN);                                                           \
            break;                                                                                 \
        case RDT_MAX:                                                                              \
            LOOP(dst, a, b, n, RDT_MAX);                                                           \
            break;                                                                                 \
        default:                                                                                   \
            LOOP(dst, a, b, n, RDT_SUM);                                                           \
            break;                                                                                 \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------------------------------------- */
/* float16 and bfloat16 on x86-64: F16C (AVX2 set) and AVX-512, with intrinsics                  */
/* ------------------------------------------------------------------------------------------- */

#if defined(__x86_64__)

#define RDT_TARGET_AVX2   __attribute__((target("avx2,f16c")))
#define RDT_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define RDT_CVT_RNE       (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

/* x op y; _mm256_min_ps(x, y) is x < y ? x : y, merged as in rdt_min_f32 / rdt_max_f32. */
RDT_INLINE RDT_TARGET_AVX2 __m256 rdt_apply_avx2(__m256 x, __m256 y, rdt_op_t op)
{
    __m256 p, q;

    switch (op) {
    case RDT_PROD:
        return _mm256_mul_ps(x, y);
    case RDT_MIN:
        return _mm256_or_ps(_mm256_min_ps(x, y), _mm256_min_ps(y, x));
    case RDT_MAX:
        p = _mm256_max_ps(x, y);
        q = _mm256_max_ps(y, x);
        return _mm256_or_ps(_mm256_and_ps(p, q),
                            _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_or_ps(p, q)));
    default:
        return _mm256_add_ps(x, y);
    }
}

/*
 * rdt_f2bf on 8 floats, bit for bit (a signalling NaN that MIN/MAX pass through is quieted, as
 * in the scalar tail); the bfloat16 is left in the high half of each 32-bit lane.
 */
RDT_INLINE RDT_TARGET_AVX2 __m256i rdt_bf16_round_avx2(__m256 f)
{
    __m256i x = _mm256_castps_si256(f);
    __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(f, f, _CMP_UNORD_Q));
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    __m256i rne = _mm256_add_epi32(x, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));

    return _mm256_blendv_epi8(rne, _mm256_or_si256(x, _mm256_set1_epi32(0x00400000)), nan);
}

RDT_INLINE RDT_TARGET_AVX2 void rdt_f16_loop_avx2(uint16_t *d, const uint16_t *a, const uint16_t *b,
                                                  size_t n, rdt_op_t op)
{
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256 y = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i)));
        __m128i r = _mm256_cvtps_ph(rdt_apply_avx2(x, y, op), RDT_CVT_RNE);

        _mm_storeu_si128((__m128i *)(d + i), r);
    }
    if (i < n)
        rdt_reduce_body_f16(d + i, a + i, b + i, n - i, op);
}

/*
 * bfloat16 without a single shuffle: a 32-bit lane holds two elements (little-endian), the
 * even one widens by a shift left, the odd one by clearing the low half; the results go back
 * by a shift right and a 16-bit blend.
 */
RDT_INLINE RDT_TARGET_AVX2 void rdt_bf16_loop_avx2(uint16_t *d, const uint16_t *a,
                                                   const uint16_t *b, size_t n, rdt_op_t op)
{
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    size_t i = 0;

    for (; i + 16 <= n; i += 16) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(a + i));
        __m256i y = _mm256_loadu_si256((const __m256i *)(b + i));
        __m256 xe = _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
        __m256 ye = _mm256_castsi256_ps(_mm256_slli_epi32(y, 16));
        __m256 xo = _mm256_castsi256_ps(_mm256_and_si256(x, hi));
        __m256 yo = _mm256_castsi256_ps(_mm256_and_si256(y, hi));
        __m256i re = rdt_bf16_round_avx2(rdt_apply_avx2(xe, ye, op));
        __m256i ro = rdt_bf16_round_avx2(rdt_apply_avx2(xo, yo, op));

        _mm256_storeu_si256((__m256i *)(d + i),
                            _mm256_blend_epi16(_mm256_srli_epi32(re, 16), ro, 0xaa));
    }
    if (i < n)
        rdt_reduce_body_bf16(d + i, a + i, b + i, n - i, op);
}

static RDT_TARGET_AVX2 void rdt_reduce_f16_avx2(void *dst, const void *a, const void *b, size_t n,
                                                rdt_op_t op)
{
    RDT_SWITCH_OP(rdt_f16_loop_avx2, dst, a, b, n, op);
}

static RDT_TARGET_AVX2 void rdt_reduce_bf16_avx2(void *dst, const void *a, const void *b, size_t n,
                                                 rdt_op_t op)
{
    RDT_SWITCH_OP(rdt_bf16_loop_avx2, dst, a, b, n, op);
}

/* The same four, 512 bits wide. */
RDT_INLINE RDT_TARGET_AVX512 __m512 rdt_apply_avx512(__m512 x, __m512 y, rdt_op_t op)
{
    __m512 p, q;

    switch (op) {
    case RDT_PROD:
        return _mm512_mul_ps(x, y);
    case RDT_MIN:
        return _mm512_or_ps(_mm512_min_ps(x, y), _mm512_min_ps(y, x));
    case RDT_MAX:
        p = _mm512_max_ps(x, y);
        q = _mm512_max_ps(y, x);
        return _mm512_or_ps(_mm512_and_ps(p, q),
                            _mm512_andnot_ps(_mm512_set1_ps(-0.0f), _mm512_or_ps(p, q)));
    default:
        return _mm512_add_ps(x, y);
    }
}

RDT_INLINE RDT_TARGET_AVX512 __m512i rdt_bf16_round_avx512(__m512 f)
{
    __m512i x = _mm512_castps_si512(f);
    __mmask16 nan = _mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    __m512i rne = _mm512_add_epi32(x, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));

    return _mm512_mask_blend_epi32(nan, rne, _mm512_or_si512(x, _mm512_set1_epi32(0x00400000)));
}

RDT_INLINE RDT_TARGET_AVX512 void rdt_f16_loop_avx512(uint16_t *d, const uint16_t *a,
                                                      const uint16_t *b, size_t n, rdt_op_t op)
{
    size_t i = 0;

    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(a + i)));
        __m512 y = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + i)));
        __m256i r = _mm512_cvtps_ph(rdt_apply_avx512(x, y, op), RDT_CVT_RNE);

        _mm256_storeu_si256((__m256i *)(d + i), r);
    }
    if (i < n)
        rdt_reduce_body_f16(d + i, a + i, b + i, n - i, op);
}

RDT_INLINE RDT_TARGET_AVX512 void rdt_bf16_loop_avx512(uint16_t *d, const uint16_t *a,
                                                       const uint16_t *b, size_t n, rdt_op_t op)
{
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    size_t i = 0;

    for (; i + 32 <= n; i += 32) {
        __m512i x = _mm512_loadu_si512(a + i);
        __m512i y = _mm512_loadu_si512(b + i);
        __m512 xe = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
        __m512 ye = _mm512_castsi512_ps(_mm512_slli_epi32(y, 16));
        __m512 xo = _mm512_castsi512_ps(_mm512_and_si512(x, hi));
        __m512 yo = _mm512_castsi512_ps(_mm512_and_si512(y, hi));
        __m512i re = rdt_bf16_round_avx512(rdt_apply_avx512(xe, ye, op));
        __m512i ro = rdt_bf16_round_avx512(rdt_apply_avx512(xo, yo, op));

        _mm512_storeu_si512(d + i,
                            _mm512_mask_blend_epi16(0xaaaaaaaau, _mm512_srli_epi32(re, 16), ro));
    }
    if (i < n)
        rdt_reduce_body_bf16(d + i, a + i, b + i, n - i, op);
}

static RDT_TARGET_AVX512 void rdt_reduce_f16_avx512(void *dst, const void *a, const void *b,
                                                    size_t n, rdt_op_t op)
{
    RDT_SWITCH_OP(rdt_f16_loop_avx512, dst, a, b, n, op);
}

static RDT_TARGET_AVX512 void rdt_reduce_bf16_avx512(void *dst, const void *a, const void *b,
                                                     size_t n, rdt_op_t op)
{
    RDT_SWITCH_OP(rdt_bf16_loop_avx512, dst, a, b, n, op);
}

#endif /* __x86_64__ */

/* ------------------------------------------------------------------------------------------- */
/* Kernel sets and their selection                                                               */
/* ------------------------------------------------------------------------------------------- */

/* Wrappers compiled for one target (ATTR); the inlined bodies are vectorized for it. */
#define RDT_SCALE_WRAPPER_(name, isa, ATTR)                                                        \
    static ATTR void rdt_scale_##name##_##isa(void *buf, size_t n, int divisor)                    \
    {                                                                                              \
        rdt_scale_body_##name(buf, n, divisor);                                                    \
    }

#define RDT_WRAPPERS_(dtype, name, T, isa, ATTR)                                                   \
    static ATTR void rdt_reduce_##name##_##isa(void *dst, const void *a, const void *b, size_t n,  \
                                               rdt_op_t op)                                        \
    {                                                                                              \
        rdt_reduce_body_##name(dst, a, b, n, op);                                                  \
    }                                                                                              \
    RDT_SCALE_WRAPPER_(name, isa, ATTR)

#define RDT_REDUCE_ENTRY_(dtype, name, T, isa) [dtype] = rdt_reduce_##name##_##isa,
#define RDT_SCALE_ENTRY_(dtype, name, T, isa)  [dtype] = rdt_scale_##name##_##isa,

/*
 * The kernel set rdt_kernels_<isa>, compiled with ATTR. Its float16 and bfloat16 reduce kernels
 * are defined beforehand: with intrinsics above, or by RDT_NARROW_PORTABLE.
 */
#define RDT_DEFINE_KERNELS(isa, ATTR)                                                              \
    RDT_DTYPES_PLAIN(RDT_WRAPPERS_, isa, ATTR)                                                     \
    RDT_SCALE_WRAPPER_(f16, isa, ATTR)                                                             \
    RDT_SCALE_WRAPPER_(bf16, isa, ATTR)                                                            \
    static const rdt_reduce_kernels_t rdt_kernels_##isa = {                                        \
        .name = #isa,                                                                              \
        .reduce = {RDT_DTYPES_PLAIN(RDT_REDUCE_ENTRY_, isa)[RDT_FLOAT16] = rdt_reduce_f16_##isa,   \
                   [RDT_BFLOAT16] = rdt_reduce_bf16_##isa},                                        \
        .scale = {RDT_DTYPES_PLAIN(RDT_SCALE_ENTRY_, isa)[RDT_FLOAT16] = rdt_scale_f16_##isa,      \
                  [RDT_BFLOAT16] = rdt_scale_bf16_##isa},                                          \
    };

/* float16 and bfloat16 kernels from the plain loops, for the targets without their own. */
#define RDT_NARROW_PORTABLE(isa, ATTR)                                                             \
    static ATTR void rdt_reduce_f16_##isa(void *dst, const void *a, const void *b, size_t n,       \
                                          rdt_op_t op)                                             \
    {                                                                                              \
        rdt_reduce_body_f16(dst, a, b, n, op);                                                     \
    }                                                                                              \
    static ATTR void rdt_reduce_bf16_##isa(void *dst, const void *a, const void *b, size_t n,      \
                                           rdt_op_t op)                                            \
    {                                                                                              \
        rdt_reduce_body_bf16(dst, a, b, n, op);                                                    \
    }

#if defined(__x86_64__)

RDT_DEFINE_KERNELS(avx512, RDT_TARGET_AVX512)
RDT_DEFINE_KERNELS(avx2, RDT_TARGET_AVX2)
RDT_NARROW_PORTABLE(sse2, )
RDT_DEFINE_KERNELS(sse2, )

/* By cpuid, as clang before 16 does not know "f16c" in __builtin_cpu_supports. */
static int rdt_cpu_has_f16c(void)
{
    unsigned eax, ebx, ecx, edx;

    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
}

static const rdt_reduce_kernels_t *rdt_kernels_pick(void)
{
    __builtin_cpu_init();
    /* The AVX-512 set uses byte, quadword and 256-bit forms too: Skylake-SP and later. */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return &rdt_kernels_avx512;
    /* Every AVX2 CPU has F16C, but a VM may hide it; then the baseline set is the safe one. */
    if (__builtin_cpu_supports("avx2") && rdt_cpu_has_f16c())
        return &rdt_kernels_avx2;
    return &rdt_kernels_sse2;
}

#elif defined(__aarch64__)

/* Every aarch64 has NEON, and the plain loops vectorize for it. */
RDT_NARROW_PORTABLE(neon, )
RDT_DEFINE_KERNELS(neon, )

static const rdt_reduce_kernels_t *rdt_kernels_pick(void)
{
    return &rdt_kernels_neon;
}

#else

/* Other targets: the same loops, vectorized for whatever the compiler targets by default. */
RDT_NARROW_PORTABLE(scalar, )
RDT_DEFINE_KERNELS(scalar, )

static const rdt_reduce_kernels_t *rdt_kernels_pick(void)
{
    return &rdt_kernels_scalar;
}

#endif

/* Picked once; a race between first callers is harmless, they store the same pointer. */
static const rdt_reduce_kernels_t *rdt_kernels(void)
{
    static const rdt_reduce_kernels_t *chosen;
    const rdt_reduce_kernels_t *k = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);

    if (!k) {
        k = rdt_kernels_pick();
        __atomic_store_n(&chosen, k, __ATOMIC_RELEASE);
    }
    return k;
}

int rdt_reduce_supported(rdt_dtype_t dtype, rdt_op_t op)
{
    return (unsigned)dtype < (unsigned)RDT_DTYPE_COUNT && (unsigned)op < (unsigned)RDT_OP_COUNT;
}

void rdt_reduce_local(void *dst, const void *a, const void *b, size_t n, rdt_dtype_t dtype,
                      rdt_op_t op)
{
    if (n == 0 || !rdt_reduce_supported(dtype, op))
        return;
    rdt_kernels()->reduce[dtype](dst, a, b, n, op);
}

void rdt_reduce_scale_avg(void *buf, size_t n, rdt_dtype_t dtype, int divisor)
{
    assert(divisor >= 1);
    if (n == 0 || divisor <= 1 || (unsigned)dtype >= (unsigned)RDT_DTYPE_COUNT)
        return;
    rdt_kernels()->scale[dtype](buf, n, divisor);
}

const char *rdt_reduce_isa(void)
{
    return rdt_kernels()->name;
}

/* ------------------------------------------------------------------------------------------- */
/* Streaming copy                                                                                */
/* ------------------------------------------------------------------------------------------- */

void rdt_copy_stream(void *dst, const void *src, size_t n)
{
#if defined(__x86_64__)
    unsigned char *d = dst;
    const unsigned char *s = src;
    size_t head = (16 - ((uintptr_t)d & 15)) & 15;

    if (n < 256) {
        memcpy(d, s, n);
        return;
    }
    memcpy(d, s, head); /* up to the first 16-byte boundary of dst */
    d += head;
    s += head;
    n -= head;
    for (; n >= 64; n -= 64, d += 64, s += 64) {
        __m128i x0 = _mm_loadu_si128((const __m128i *)s);
        __m128i x1 = _mm_loadu_si128((const __m128i *)(s + 16));
        __m128i x2 = _mm_loadu_si128((const __m128i *)(s + 32));
        __m128i x3 = _mm_loadu_si128((const __m128i *)(s + 48));
        _mm_stream_si128((__m128i *)d, x0);
        _mm_stream_si128((__m128i *)(d + 16), x1);
        _mm_stream_si128((__m128i *)(d + 32), x2);
        _mm_stream_si128((__m128i *)(d + 48), x3);
    }
    memcpy(d, s, n);
    _mm_sfence(); /* ordered before whatever publishes the data */
#else
    memcpy(dst, src, n);
#endif
}
