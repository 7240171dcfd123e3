// Sparse (CSR) kernels: the gather dot product and the scatter update that every sparse product
// is made of, in portable C (several accumulators, no intrinsics), for float and double.
//
// A CSR block of `rows` rows is given by three arrays:
//   values  (nnz)      the nonzeros, row after row
//   indices (nnz)      their column indices, 32-bit, strictly increasing within a row
//   offsets (rows + 1) row i's nonzeros are values[offsets[i] ..< offsets[i + 1]], 64-bit
// `offsets` may point into the middle of a larger matrix's offsets (a row-range view): the offsets
// stay absolute, so `values` and `indices` are the whole matrix's arrays, never copied.
//
// The scatter updates of one row load all their targets before storing any: correct because a
// row's indices are distinct (the CSR invariant `CSRMatrix` checks on construction).
#ifndef SHARDWISE_CSHARDWISESPARSE_H
#define SHARDWISE_CSHARDWISESPARSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// g ← Σᵢ xᵢ·(link(xᵢᵀw) − yᵢ) over the rows, in one pass (each row's nonzeros are read once from
/// memory; the scatter re-reads them from L1). `g` (columns) is overwritten. Returns Σᵢ ℓᵢ
/// (identity: ½rᵢ², logistic: log(1 + e^zᵢ) − yᵢzᵢ), accumulated in double. `link` is
/// SHARDWISE_LINK_IDENTITY or SHARDWISE_LINK_LOGISTIC.
double shardwise_csr_gradient_sum_f64(const double *values, const int32_t *indices, const int64_t *offsets,
                                      size_t rows, const double *y, const double *w, double *g,
                                      size_t columns, int link);
double shardwise_csr_gradient_sum_f32(const float *values, const int32_t *indices, const int64_t *offsets,
                                      size_t rows, const float *y, const float *w, float *g,
                                      size_t columns, int link);

/// Σᵢ ℓᵢ only (no gradient), in double.
double shardwise_csr_loss_sum_f64(const double *values, const int32_t *indices, const int64_t *offsets,
                                  size_t rows, const double *y, const double *w, int link);
double shardwise_csr_loss_sum_f32(const float *values, const int32_t *indices, const int64_t *offsets,
                                  size_t rows, const float *y, const float *w, int link);

/// out ← X v: out[i] = xᵢᵀv (rows entries).
void shardwise_csr_multiply_f64(const double *values, const int32_t *indices, const int64_t *offsets,
                                size_t rows, const double *v, double *out);
void shardwise_csr_multiply_f32(const float *values, const int32_t *indices, const int64_t *offsets,
                                size_t rows, const float *v, float *out);

/// out ← Xᵀu = Σᵢ uᵢ xᵢ (columns entries, overwritten).
void shardwise_csr_multiply_transposed_f64(const double *values, const int32_t *indices, const int64_t *offsets,
                                           size_t rows, const double *u, double *out, size_t columns);
void shardwise_csr_multiply_transposed_f32(const float *values, const int32_t *indices, const int64_t *offsets,
                                           size_t rows, const float *u, float *out, size_t columns);

/// out ← Xᵀ D X v = Σᵢ dᵢ (xᵢᵀv) xᵢ in one pass; `weights` (rows entries, dᵢ) may be NULL for
/// D = I. `out` (columns) is overwritten.
void shardwise_csr_weighted_gram_f64(const double *values, const int32_t *indices, const int64_t *offsets,
                                     size_t rows, const double *v, const double *weights, double *out,
                                     size_t columns);
void shardwise_csr_weighted_gram_f32(const float *values, const int32_t *indices, const int64_t *offsets,
                                     size_t rows, const float *v, const float *weights, float *out,
                                     size_t columns);

#ifdef __cplusplus
}
#endif

#endif
