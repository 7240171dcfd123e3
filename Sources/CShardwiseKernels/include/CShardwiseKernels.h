// Hand-written fused gradient kernels (AVX2 + FMA), chosen at run time.
//
// The functions are compiled for AVX2+FMA with a per-function target attribute (no global -mavx2),
// and only called after the CPU was checked (`__builtin_cpu_supports`). On a CPU without them, or
// on a non-x86 machine, `shardwise_kernels_avx2_available` returns 0 and the entry points return 0
// without touching anything: the caller then uses its cblas path.
#ifndef SHARDWISE_CSHARDWISEKERNELS_H
#define SHARDWISE_CSHARDWISEKERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when this CPU (and OS) runs AVX2 and FMA, else 0. Checked once, then cached.
int shardwise_kernels_avx2_available(void);

/// Link codes for the fused kernels.
#define SHARDWISE_LINK_IDENTITY 0
#define SHARDWISE_LINK_LOGISTIC 1

/// g ← Σᵢ xᵢ·(link(xᵢᵀw) − yᵢ) over the n rows of X (n × d, row-major, rows `d` apart, any
/// alignment), in one sequential pass over X: every other row, the loop that computes row i's dot
/// product with w also adds r_{i−2}·x_{i−2} + r_{i−1}·x_{i−1} (the two rows before, still in L1) to g. `*loss` receives Σᵢ ℓᵢ
/// (identity: ½rᵢ²; logistic: log(1 + e^zᵢ) − yᵢzᵢ), accumulated in double. `g` is overwritten.
/// Returns 1 when computed, 0 when AVX2+FMA is not available (nothing written).
int shardwise_gradient_sum_f64(const double *x, const double *y, const double *w, double *g,
                               size_t n, size_t d, int link, double *loss);
int shardwise_gradient_sum_f32(const float *x, const float *y, const float *w, float *g,
                               size_t n, size_t d, int link, double *loss);

#ifdef __cplusplus
}
#endif

#include "CShardwiseSparse.h"
#include "CShardwiseCodecs.h"

#endif
