// The residual of one row from its linear predictor, and its loss: shared by the dense AVX2
// kernel (kernels.c) and the sparse one (sparse.c), in the same overflow-safe forms as the Swift
// side (GradientKernel.swift). Internal to this target.
#ifndef SHARDWISE_RESIDUAL_H
#define SHARDWISE_RESIDUAL_H

#include <math.h>
#include "CShardwiseKernels.h"

/// σ(z), log(1 + e^z).
static inline double shardwise_sigmoid(double z) {
    if (z >= 0) return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}
static inline double shardwise_log1pexp(double z) { return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)); }

/// link(z) − y, adding the row's loss (½r², or log(1 + e^z) − y·z) to *loss.
static inline double shardwise_residual(double z, double yi, int link, double *loss) {
    if (link == SHARDWISE_LINK_LOGISTIC) {
        *loss += shardwise_log1pexp(z) - yi * z;
        return shardwise_sigmoid(z) - yi;
    }
    double r = z - yi;
    *loss += 0.5 * r * r;
    return r;
}

#endif
