// The lossy codecs' inner loops (float16, bfloat16, int8), for double and float vectors.
//
// Each has a vector path (F16C for float16, AVX2 for bfloat16 and int8), chosen at run time, and a
// portable path; both give the same bytes for every input (NaN, ±∞, denormals and ties included),
// so nodes on different CPUs agree. The semantics, which the Swift tests check against a naive
// reference:
//
// - float16: v → float (round to nearest even) → clamp to ±65504 → binary16 (round to nearest
//   even); NaN → 0x7E00. Decoding is exact.
// - bfloat16: v → float → the upper 16 bits rounded to nearest even; NaN → 0x7FC0. Decoding exact.
// - int8: per chunk of `chunk` entries, a little-endian float scale s = max|float(vᵢ)|/127 (0 when
//   the chunk is all zero or its maximum is not finite; NaNs do not count towards the maximum),
//   then each entry q = round_half_away(float(vᵢ)·(1/s)) clamped to [−127, 127] (NaN → 127), as a
//   signed byte. Decoding gives float(q)·s.
#ifndef SHARDWISE_CSHARDWISECODECS_H
#define SHARDWISE_CSHARDWISECODECS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void shardwise_f16_encode_f64(const double *v, size_t n, uint16_t *out);
void shardwise_f16_encode_f32(const float *v, size_t n, uint16_t *out);
void shardwise_f16_decode_f64(const uint16_t *in, size_t n, double *out);
void shardwise_f16_decode_f32(const uint16_t *in, size_t n, float *out);

void shardwise_bf16_encode_f64(const double *v, size_t n, uint16_t *out);
void shardwise_bf16_encode_f32(const float *v, size_t n, uint16_t *out);
void shardwise_bf16_decode_f64(const uint16_t *in, size_t n, double *out);
void shardwise_bf16_decode_f32(const uint16_t *in, size_t n, float *out);

/// `out` holds n + 4·⌈n/chunk⌉ bytes: per chunk, its scale then its entries. chunk ≥ 1.
void shardwise_int8_encode_f64(const double *v, size_t n, size_t chunk, uint8_t *out);
void shardwise_int8_encode_f32(const float *v, size_t n, size_t chunk, uint8_t *out);
void shardwise_int8_decode_f64(const uint8_t *in, size_t n, size_t chunk, double *out);
void shardwise_int8_decode_f32(const uint8_t *in, size_t n, size_t chunk, float *out);

/// Top-k with error feedback: e ← e + v; the k entries of largest |e| (a NaN counts as the largest;
/// among equal magnitudes the lower indices) are written to `out` as a little-endian UInt32 count k,
/// then k pairs (UInt32 index, float value) in index order, and e keeps what was not sent
/// (e − float(e) for a sent entry). `out` holds 4 + 8k bytes. The k-th largest is selected among
/// the entries that reach a threshold guessed from a sample (about k of them): two passes over e,
/// no sort, the same result whatever the guess.
void shardwise_topk_encode_f64(const double *v, size_t n, size_t k, double *e, uint8_t *out);
void shardwise_topk_encode_f32(const float *v, size_t n, size_t k, double *e, uint8_t *out);

/// Forces the portable paths (1) or lets the CPU choose (0): for tests that compare the two.
void shardwise_codecs_force_portable(int portable);

#ifdef __cplusplus
}
#endif

#endif
