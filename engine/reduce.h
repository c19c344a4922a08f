/*
 * reduce.h - reduction kernels and element conversions.
 *
 * Kernels are selected once per process at runtime for the CPU they run on (x86-64: AVX2 or
 * AVX-512 where present, SSE2 otherwise; aarch64: NEON, which every aarch64 has), so the default
 * build carries no build-machine-only flags. float16 and bfloat16 are widened to float32, reduced,
 * and rounded once (round to nearest even) per call.
 */
#ifndef RDT_REDUCE_H
#define RDT_REDUCE_H

#include <stddef.h>
#include <stdint.h>

#include "rdmatrain.h"

/*
 * dst[i] = a[i] (op) b[i] for i < n. (Not named rdt_reduce: that is the public collective.)
 * dst may alias a or b (or both) exactly; otherwise the three must not overlap. Pointers are
 * aligned to the element size. op is SUM, PROD, MIN or MAX (AVG is SUM here; the caller scales at
 * the end); an unsupported (dtype, op) pair does nothing (callers check rdt_reduce_supported).
 * Integer SUM and PROD wrap around (computed in the unsigned type of the same width).
 * MIN/MAX of floats: a < b ? a : b (resp. >), except that -0 is the min and +0 the max of a pair of
 * zeros whatever their order, and a NaN operand gives a NaN.
 * Commutative bit for bit: rdt_reduce_local(d, a, b) and rdt_reduce_local(d, b, a) give identical
 * bits for every non-NaN input, so ranks that combine in different orders agree exactly.
 */
void rdt_reduce_local(void *dst, const void *a, const void *b, size_t n, rdt_dtype_t dtype,
                      rdt_op_t op);

/*
 * buf[i] = buf[i] / divisor for the AVG reduction: floats computed in their (widened) type and
 * rounded once, integers with C division truncating toward zero. divisor is the number of ranks,
 * >= 1 (1 leaves buf unchanged).
 */
void rdt_reduce_scale_avg(void *buf, size_t n, rdt_dtype_t dtype, int divisor);

/*
 * memcpy(dst, src, n) with stores that bypass the caches where the CPU has them (x86-64: SSE2
 * non-temporal stores, then a store fence; elsewhere plain memcpy): for copies into memory this
 * core will not read again soon, such as the receive buffers of a large direct collective, where
 * a plain store would first read every line it writes.
 */
void rdt_copy_stream(void *dst, const void *src, size_t n);

/* @return 1 if (dtype, op) is a valid pair (every op on every type is, today), else 0. */
int rdt_reduce_supported(rdt_dtype_t dtype, rdt_op_t op);

/* Scalar conversions, exact IEEE round-to-nearest-even for the narrowing ones. */
float rdt_half_to_float(uint16_t h);
uint16_t rdt_float_to_half(float f);
float rdt_bf16_to_float(uint16_t h);
uint16_t rdt_float_to_bf16(float f);

/* Name of the kernel set chosen at runtime ("avx512", "avx2", "sse2", "neon", "scalar"). */
const char *rdt_reduce_isa(void);

#endif /* RDT_REDUCE_H */
