// OpenBLAS (CBLAS) and LAPACKE, as Debian ships them.
//
// Why a shim: `lapack_int` is a macro in lapacke.h, which Swift cannot import, so it is re-declared
// here as a typedef of the same width. Debian's libopenblas carries no LAPACKE symbols, which is why
// the module map links `lapacke` beside `openblas`.
#ifndef SHARDWISE_COPENBLAS_SHIM_H
#define SHARDWISE_COPENBLAS_SHIM_H

#include <cblas.h>
#include <lapacke.h>

typedef lapack_int shardwise_lapack_int;

/// Number of threads OpenBLAS may use for one call. Several nodes sharing one process set this to 1.
static inline void shardwise_blas_set_threads(int n) { openblas_set_num_threads(n); }
static inline int shardwise_blas_get_threads(void) { return openblas_get_num_threads(); }

#endif
