#include "CShardwiseKernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma")))

static int avx2_state = -1;

int shardwise_kernels_avx2_available(void) {
    int s = __atomic_load_n(&avx2_state, __ATOMIC_RELAXED);
    if (s < 0) {
        __builtin_cpu_init();
        s = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
        __atomic_store_n(&avx2_state, s, __ATOMIC_RELAXED);
    }
    return s;
}

#include "residual.h"

// MARK: - The kernel, one template for float and double
//
// One sequential stream over X: row i's dot product with w is read from memory, and every other
// row (i even) the same loop also adds r_{i−2}·x_{i−2} + r_{i−1}·x_{i−1} (the two rows before, still
// in L1) to g — so loads to memory stay in flight while the gradient is updated, and g is loaded
// and stored once per two rows. The rows still pending at the end are added alone.
//
// Measured on the 2e5×500 benchmark (float32, one thread, Zen 3, shared machine; % of the read
// probe): groups of four rows (four interleaved streams, next group's dots beside the current
// group's update) 62–67%; two rows read together 56%; one row, g updated with the row before 80–85%;
// this one 86–89%; software prefetch (T0/T1, 0.25–32 KB ahead) only lost. Any n, any d (scalar
// tails), any alignment (unaligned loads). Dots accumulate in the scalar type (as ?gemv does), the
// loss in double.

#define SHARDWISE_KERNEL(NAME, T, V, L, LOADU, STOREU, FMADD, ADD, SET1, ZERO, HSUM)                   \
AVX2 static inline T NAME##_dot(const T *q, const T *w, size_t d) {                                    \
    V a0 = ZERO(), a1 = a0;                                                                            \
    size_t j = 0;                                                                                      \
    for (; j + 2 * L <= d; j += 2 * L) {                                                               \
        a0 = FMADD(LOADU(q + j), LOADU(w + j), a0);                                                    \
        a1 = FMADD(LOADU(q + j + L), LOADU(w + j + L), a1);                                            \
    }                                                                                                  \
    for (; j + L <= d; j += L) a0 = FMADD(LOADU(q + j), LOADU(w + j), a0);                             \
    T z = HSUM(ADD(a0, a1));                                                                           \
    for (; j < d; j++) z += q[j] * w[j];                                                               \
    return z;                                                                                          \
}                                                                                                      \
                                                                                                       \
/* Returns q·w and does g += ra·c0 + rb·c1 (c1 = c0 + d), in one loop. */                              \
AVX2 static inline T NAME##_dot_update(const T *q, const T *w, const T *c0, T ra, T rb, T *g,          \
                                       size_t d) {                                                     \
    const T *c1 = c0 + d;                                                                              \
    V R0 = SET1(ra), R1 = SET1(rb), a0 = ZERO(), a1 = a0;                                              \
    size_t j = 0;                                                                                      \
    for (; j + 2 * L <= d; j += 2 * L) {                                                               \
        a0 = FMADD(LOADU(q + j), LOADU(w + j), a0);                                                    \
        a1 = FMADD(LOADU(q + j + L), LOADU(w + j + L), a1);                                            \
        STOREU(g + j, FMADD(R1, LOADU(c1 + j), FMADD(R0, LOADU(c0 + j), LOADU(g + j))));               \
        STOREU(g + j + L, FMADD(R1, LOADU(c1 + j + L), FMADD(R0, LOADU(c0 + j + L), LOADU(g + j + L)))); \
    }                                                                                                  \
    for (; j + L <= d; j += L) {                                                                       \
        a0 = FMADD(LOADU(q + j), LOADU(w + j), a0);                                                    \
        STOREU(g + j, FMADD(R1, LOADU(c1 + j), FMADD(R0, LOADU(c0 + j), LOADU(g + j))));               \
    }                                                                                                  \
    T z = HSUM(ADD(a0, a1));                                                                           \
    for (; j < d; j++) {                                                                               \
        z += q[j] * w[j];                                                                              \
        g[j] += ra * c0[j] + rb * c1[j];                                                               \
    }                                                                                                  \
    return z;                                                                                          \
}                                                                                                      \
                                                                                                       \
/* g += r·c alone (the last pending row when n is odd). */                                             \
AVX2 static inline void NAME##_update1(const T *c, T r, T *g, size_t d) {                              \
    V R = SET1(r);                                                                                     \
    size_t j = 0;                                                                                      \
    for (; j + L <= d; j += L) STOREU(g + j, FMADD(R, LOADU(c + j), LOADU(g + j)));                    \
    for (; j < d; j++) g[j] += r * c[j];                                                               \
}                                                                                                      \
                                                                                                       \
AVX2 static double NAME(const T *x, const T *y, const T *w, T *g, size_t n, size_t d, int link) {      \
    memset(g, 0, d * sizeof(T));                                                                       \
    double loss = 0;                                                                                   \
    if (n == 0) return 0;                                                                              \
    /* ra, rb: residuals of the pending pair, rows p and p + 1 (p even). */                            \
    T ra = (T)shardwise_residual((double)NAME##_dot(x, w, d), (double)y[0], link, &loss), rb = 0;                \
    for (size_t i = 1; i < n; i++) {                                                                   \
        const T *q = x + i * d;                                                                        \
        if (i & 1) {                                                                                   \
            rb = (T)shardwise_residual((double)NAME##_dot(q, w, d), (double)y[i], link, &loss);                  \
        } else {                                                                                       \
            T z = NAME##_dot_update(q, w, x + (i - 2) * d, ra, rb, g, d);                              \
            ra = (T)shardwise_residual((double)z, (double)y[i], link, &loss);                                    \
        }                                                                                              \
    }                                                                                                  \
    if (n & 1) {                                                                                       \
        NAME##_update1(x + (n - 1) * d, ra, g, d);                                                     \
    } else {                                                                                           \
        const T *c0 = x + (n - 2) * d;                                                                 \
        NAME##_update1(c0, ra, g, d);                                                                  \
        NAME##_update1(c0 + d, rb, g, d);                                                              \
    }                                                                                                  \
    return loss;                                                                                       \
}

AVX2 static inline double hsum_pd(__m256d v) {
    __m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
    lo = _mm_add_pd(lo, hi);
    return _mm_cvtsd_f64(_mm_add_sd(lo, _mm_unpackhi_pd(lo, lo)));
}

AVX2 static inline float hsum_ps(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    return _mm_cvtss_f32(_mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1)));
}

SHARDWISE_KERNEL(gradient_f64_avx2, double, __m256d, 4, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_fmadd_pd,
                 _mm256_add_pd, _mm256_set1_pd, _mm256_setzero_pd, hsum_pd)
SHARDWISE_KERNEL(gradient_f32_avx2, float, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps,
                 _mm256_add_ps, _mm256_set1_ps, _mm256_setzero_ps, hsum_ps)

int shardwise_gradient_sum_f64(const double *x, const double *y, const double *w, double *g,
                               size_t n, size_t d, int link, double *loss) {
    if (!shardwise_kernels_avx2_available()) return 0;
    *loss = gradient_f64_avx2(x, y, w, g, n, d, link);
    return 1;
}

int shardwise_gradient_sum_f32(const float *x, const float *y, const float *w, float *g,
                               size_t n, size_t d, int link, double *loss) {
    if (!shardwise_kernels_avx2_available()) return 0;
    *loss = gradient_f32_avx2(x, y, w, g, n, d, link);
    return 1;
}

#else  // not x86: no hand-written kernels; the caller keeps its cblas path.

int shardwise_kernels_avx2_available(void) { return 0; }

int shardwise_gradient_sum_f64(const double *x, const double *y, const double *w, double *g,
                               size_t n, size_t d, int link, double *loss) {
    (void)x; (void)y; (void)w; (void)g; (void)n; (void)d; (void)link; (void)loss;
    return 0;
}

int shardwise_gradient_sum_f32(const float *x, const float *y, const float *w, float *g,
                               size_t n, size_t d, int link, double *loss) {
    (void)x; (void)y; (void)w; (void)g; (void)n; (void)d; (void)link; (void)loss;
    return 0;
}

#endif
