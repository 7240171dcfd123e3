#include "CShardwiseKernels.h"
#include "residual.h"

#include <math.h>
#include <string.h>

// The two primitives, written once for float and double (SPARSE_PRIMITIVES below):
//
//   dot(v, j, m, w)      Σₖ v[k]·w[j[k]]  — the gather; four accumulators, so the loads of w
//                        (random, from L1/L2) overlap instead of waiting on one add chain
//   axpy(r, v, j, m, g)  g[j[k]] += r·v[k] — the scatter; four loads, then four stores: the
//                        indices of one row are distinct, so no store can feed a later load
//
// A row's nonzeros are read from memory by its dot and again, from L1, by its scatter: the fused
// products below stream X once. Dots accumulate in the scalar type (as ?gemv does), losses in double.

#define SPARSE_PRIMITIVES(S, T)                                                                        \
static inline T csr_dot_##S(const T *v, const int32_t *j, size_t m, const T *w) {                      \
    T a0 = 0, a1 = 0, a2 = 0, a3 = 0;                                                                  \
    size_t k = 0;                                                                                      \
    for (; k + 4 <= m; k += 4) {                                                                       \
        a0 += v[k] * w[j[k]];                                                                          \
        a1 += v[k + 1] * w[j[k + 1]];                                                                  \
        a2 += v[k + 2] * w[j[k + 2]];                                                                  \
        a3 += v[k + 3] * w[j[k + 3]];                                                                  \
    }                                                                                                  \
    for (; k < m; k++) a0 += v[k] * w[j[k]];                                                           \
    return (a0 + a1) + (a2 + a3);                                                                      \
}                                                                                                      \
                                                                                                       \
static inline void csr_axpy_##S(T r, const T *v, const int32_t *j, size_t m, T *g) {                   \
    size_t k = 0;                                                                                      \
    for (; k + 4 <= m; k += 4) {                                                                       \
        const int32_t j0 = j[k], j1 = j[k + 1], j2 = j[k + 2], j3 = j[k + 3];                          \
        const T g0 = g[j0], g1 = g[j1], g2 = g[j2], g3 = g[j3];                                        \
        g[j0] = g0 + r * v[k];                                                                         \
        g[j1] = g1 + r * v[k + 1];                                                                     \
        g[j2] = g2 + r * v[k + 2];                                                                     \
        g[j3] = g3 + r * v[k + 3];                                                                     \
    }                                                                                                  \
    for (; k < m; k++) g[j[k]] += r * v[k];                                                            \
}                                                                                                      \
                                                                                                       \
double shardwise_csr_gradient_sum_##S(const T *values, const int32_t *indices, const int64_t *offsets, \
                                      size_t rows, const T *y, const T *w, T *g, size_t columns,       \
                                      int link) {                                                      \
    memset(g, 0, columns * sizeof(T));                                                                 \
    double loss = 0;                                                                                   \
    for (size_t i = 0; i < rows; i++) {                                                                \
        const int64_t lo = offsets[i];                                                                 \
        const size_t m = (size_t)(offsets[i + 1] - lo);                                                \
        const T z = csr_dot_##S(values + lo, indices + lo, m, w);                                      \
        const T r = (T)shardwise_residual((double)z, (double)y[i], link, &loss);                          \
        csr_axpy_##S(r, values + lo, indices + lo, m, g);                                              \
    }                                                                                                  \
    return loss;                                                                                       \
}                                                                                                      \
                                                                                                       \
double shardwise_csr_loss_sum_##S(const T *values, const int32_t *indices, const int64_t *offsets,     \
                                  size_t rows, const T *y, const T *w, int link) {                     \
    double loss = 0;                                                                                   \
    for (size_t i = 0; i < rows; i++) {                                                                \
        const int64_t lo = offsets[i];                                                                 \
        const T z = csr_dot_##S(values + lo, indices + lo, (size_t)(offsets[i + 1] - lo), w);          \
        (void)shardwise_residual((double)z, (double)y[i], link, &loss);                                   \
    }                                                                                                  \
    return loss;                                                                                       \
}                                                                                                      \
                                                                                                       \
void shardwise_csr_multiply_##S(const T *values, const int32_t *indices, const int64_t *offsets,       \
                                size_t rows, const T *v, T *out) {                                     \
    for (size_t i = 0; i < rows; i++) {                                                                \
        const int64_t lo = offsets[i];                                                                 \
        out[i] = csr_dot_##S(values + lo, indices + lo, (size_t)(offsets[i + 1] - lo), v);             \
    }                                                                                                  \
}                                                                                                      \
                                                                                                       \
void shardwise_csr_multiply_transposed_##S(const T *values, const int32_t *indices,                    \
                                           const int64_t *offsets, size_t rows, const T *u, T *out,    \
                                           size_t columns) {                                           \
    memset(out, 0, columns * sizeof(T));                                                               \
    for (size_t i = 0; i < rows; i++) {                                                                \
        const int64_t lo = offsets[i];                                                                 \
        csr_axpy_##S(u[i], values + lo, indices + lo, (size_t)(offsets[i + 1] - lo), out);             \
    }                                                                                                  \
}                                                                                                      \
                                                                                                       \
void shardwise_csr_weighted_gram_##S(const T *values, const int32_t *indices, const int64_t *offsets,  \
                                     size_t rows, const T *v, const T *weights, T *out,                \
                                     size_t columns) {                                                 \
    memset(out, 0, columns * sizeof(T));                                                               \
    for (size_t i = 0; i < rows; i++) {                                                                \
        const int64_t lo = offsets[i];                                                                 \
        const size_t m = (size_t)(offsets[i + 1] - lo);                                                \
        T t = csr_dot_##S(values + lo, indices + lo, m, v);                                            \
        if (weights) t *= weights[i];                                                                  \
        csr_axpy_##S(t, values + lo, indices + lo, m, out);                                            \
    }                                                                                                  \
}

SPARSE_PRIMITIVES(f64, double)
SPARSE_PRIMITIVES(f32, float)
