#include "CShardwiseCodecs.h"
#include "CShardwiseKernels.h"

#include <math.h>
#include <string.h>

// MARK: - The portable paths (the definition; the vector paths give the same bytes)

/// float → binary16 bits, round to nearest even, for a float that is not NaN and |f| ≤ 65504.
static inline uint16_t half_bits(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, a = x & 0x7FFFFFFF;
    if (a >= 0x38800000) {                       // a normal half (≥ 2⁻¹⁴): rebias, round 13 bits off
        uint32_t h = a - 0x38000000;
        return (uint16_t)(sign | ((h + 0x0FFF + ((h >> 13) & 1)) >> 13));
    }
    if (a < 0x33000000) return (uint16_t)sign;   // below 2⁻²⁵ (2⁻²⁵ itself ties to the even 0)
    uint32_t e = a >> 23, m = (a & 0x7FFFFF) | 0x800000;
    uint32_t shift = 126 - e;                    // a subnormal half counts units of 2⁻²⁴: m·2^(e−126)
    uint32_t q = m >> shift, rest = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (q & 1))) q++;
    return (uint16_t)(sign | q);
}

static inline uint16_t f16_encode1(float f) {
    if (f != f) return 0x7E00;
    if (f > 65504.0f) f = 65504.0f;
    if (f < -65504.0f) f = -65504.0f;
    return half_bits(f);
}

/// binary16 → float, exactly (a signalling NaN comes back quiet, as F16C does).
static inline float f16_decode1(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1F, m = h & 0x3FF, bits;
    if (e == 0) {
        float f = (float)m * 5.9604644775390625e-8f;   // m·2⁻²⁴, exact
        return sign ? -f : f;
    }
    if (e == 31) bits = sign | 0x7F800000 | ((m ? (m | 0x200) : 0) << 13);
    else bits = sign | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t bf16_encode1(float f) {
    if (f != f) return 0x7FC0;
    uint32_t x;
    memcpy(&x, &f, 4);
    return (uint16_t)((x + 0x7FFF + ((x >> 16) & 1)) >> 16);   // no carry out of 32 bits unless NaN
}

static inline float bf16_decode1(uint16_t b) {
    uint32_t x = (uint32_t)b << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/// The scale of one int8 chunk: max|vᵢ|/127 over the non-NaN entries, 0 when that is 0 or ∞.
static inline float int8_scale(float m) { return (m > 0 && isfinite(m)) ? m / 127.0f : 0.0f; }

static inline int8_t int8_quantise(float x, float inverse) {
    float q = roundf(x * inverse);          // half away from zero
    q = q < 127.0f ? q : 127.0f;            // NaN → 127
    q = q >= -127.0f ? q : -127.0f;
    return (int8_t)q;
}

static inline void store_scale(uint8_t *p, float s) {
    uint32_t b;
    memcpy(&b, &s, 4);
    p[0] = (uint8_t)b; p[1] = (uint8_t)(b >> 8); p[2] = (uint8_t)(b >> 16); p[3] = (uint8_t)(b >> 24);
}

static inline float load_scale(const uint8_t *p) {
    uint32_t b = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float s;
    memcpy(&s, &b, 4);
    return s;
}

static int force_portable = 0;
void shardwise_codecs_force_portable(int portable) { __atomic_store_n(&force_portable, portable, __ATOMIC_RELAXED); }

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))

/// AVX2 (with the OS's YMM support, as `shardwise_kernels_avx2_available` checks) and F16C.
static int vector_state = -1;
static int vectors(void) {
    if (__atomic_load_n(&force_portable, __ATOMIC_RELAXED)) return 0;
    int s = __atomic_load_n(&vector_state, __ATOMIC_RELAXED);
    if (s < 0) {
        unsigned a, b, c, d;
        int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
        s = shardwise_kernels_avx2_available() && f16c ? 1 : 0;
        __atomic_store_n(&vector_state, s, __ATOMIC_RELAXED);
    }
    return s;
}

/// Eight floats from eight doubles or floats.
AVX2 static inline __m256 load8_f64(const double *p) {
    return _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd(p + 4)), _mm256_cvtpd_ps(_mm256_loadu_pd(p)));
}
AVX2 static inline __m256 load8_f32(const float *p) { return _mm256_loadu_ps(p); }
AVX2 static inline void store8_f64(double *p, __m256 v) {
    _mm256_storeu_pd(p, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    _mm256_storeu_pd(p + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}
AVX2 static inline void store8_f32(float *p, __m256 v) { _mm256_storeu_ps(p, v); }

/// Eight 32-bit lanes narrowed to eight 16-bit ones (signed saturation; masks stay masks).
AVX2 static inline __m128i narrow16(__m256i v) {
    return _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

#define CODEC_FUNCTIONS(SUFFIX, T)                                                                     \
AVX2 static void f16_encode_##SUFFIX##_avx2(const T *v, size_t n, uint16_t *out) {                    \
    const __m256 hi = _mm256_set1_ps(65504.0f), lo = _mm256_set1_ps(-65504.0f);                        \
    const __m128i nan = _mm_set1_epi16(0x7E00);                                                        \
    size_t i = 0;                                                                                      \
    for (; i + 8 <= n; i += 8) {                                                                       \
        __m256 x = load8_##SUFFIX(v + i);                                                              \
        __m128i isnan = narrow16(_mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)));              \
        x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);                                                   \
        __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);                 \
        _mm_storeu_si128((__m128i *)(out + i), _mm_blendv_epi8(h, nan, isnan));                        \
    }                                                                                                  \
    for (; i < n; i++) out[i] = f16_encode1((float)v[i]);                                              \
}                                                                                                      \
AVX2 static void f16_decode_##SUFFIX##_avx2(const uint16_t *in, size_t n, T *out) {                   \
    size_t i = 0;                                                                                      \
    for (; i + 8 <= n; i += 8) store8_##SUFFIX(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(in + i)))); \
    for (; i < n; i++) out[i] = (T)f16_decode1(in[i]);                                                 \
}                                                                                                      \
AVX2 static void bf16_encode_##SUFFIX##_avx2(const T *v, size_t n, uint16_t *out) {                   \
    const __m256i bias = _mm256_set1_epi32(0x7FFF), one = _mm256_set1_epi32(1);                        \
    const __m256i nan = _mm256_set1_epi32(0x7FC0);                                                     \
    size_t i = 0;                                                                                      \
    for (; i + 8 <= n; i += 8) {                                                                       \
        __m256 x = load8_##SUFFIX(v + i);                                                              \
        __m256i b = _mm256_castps_si256(x);                                                            \
        __m256i r = _mm256_add_epi32(b, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(b, 16), one))); \
        r = _mm256_srli_epi32(r, 16);                                                                  \
        r = _mm256_blendv_epi8(r, nan, _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)));        \
        __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));  \
        _mm_storeu_si128((__m128i *)(out + i), packed);                                                \
    }                                                                                                  \
    for (; i < n; i++) out[i] = bf16_encode1((float)v[i]);                                             \
}                                                                                                      \
AVX2 static void bf16_decode_##SUFFIX##_avx2(const uint16_t *in, size_t n, T *out) {                  \
    size_t i = 0;                                                                                      \
    for (; i + 8 <= n; i += 8) {                                                                       \
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(in + i)));                 \
        store8_##SUFFIX(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));                       \
    }                                                                                                  \
    for (; i < n; i++) out[i] = (T)bf16_decode1(in[i]);                                                \
}                                                                                                      \
AVX2 static void int8_encode_##SUFFIX##_avx2(const T *v, size_t n, size_t chunk, uint8_t *out) {      \
    const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f), onev = _mm256_set1_ps(1.0f); \
    const __m256 top = _mm256_set1_ps(127.0f), bottom = _mm256_set1_ps(-127.0f);                       \
    for (size_t start = 0; start < n; start += chunk) {                                                \
        size_t end = start + chunk < n ? start + chunk : n, i = start;                                 \
        __m256 m8 = _mm256_setzero_ps();                                                               \
        for (; i + 8 <= end; i += 8) m8 = _mm256_max_ps(_mm256_andnot_ps(sign, load8_##SUFFIX(v + i)), m8); \
        float lanes[8], m = 0;                                                                         \
        _mm256_storeu_ps(lanes, m8);                                                                   \
        for (int k = 0; k < 8; k++) m = lanes[k] > m ? lanes[k] : m;                                   \
        for (; i < end; i++) { float a = fabsf((float)v[i]); m = a > m ? a : m; }                      \
        float scale = int8_scale(m), inverse = scale > 0 ? 1.0f / scale : 0.0f;                        \
        store_scale(out, scale);                                                                       \
        out += 4;                                                                                      \
        const __m256 inv = _mm256_set1_ps(inverse);                                                    \
        for (i = start; i + 8 <= end; i += 8) {                                                        \
            __m256 x = _mm256_mul_ps(load8_##SUFFIX(v + i), inv);                                      \
            __m256 t = _mm256_round_ps(x, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);                     \
            __m256 away = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(x, t)), half, _CMP_GE_OQ); \
            t = _mm256_add_ps(t, _mm256_and_ps(away, _mm256_or_ps(_mm256_and_ps(x, sign), onev)));     \
            t = _mm256_max_ps(_mm256_min_ps(t, top), bottom);                                          \
            __m128i w = narrow16(_mm256_cvttps_epi32(t));                                              \
            _mm_storel_epi64((__m128i *)(out + (i - start)), _mm_packs_epi16(w, w));                   \
        }                                                                                              \
        for (; i < end; i++) out[i - start] = (uint8_t)int8_quantise((float)v[i], inverse);            \
        out += end - start;                                                                            \
    }                                                                                                  \
}                                                                                                      \
AVX2 static void int8_decode_##SUFFIX##_avx2(const uint8_t *in, size_t n, size_t chunk, T *out) {     \
    for (size_t start = 0; start < n; start += chunk) {                                                \
        size_t end = start + chunk < n ? start + chunk : n, i = start;                                 \
        float scale = load_scale(in);                                                                  \
        in += 4;                                                                                       \
        const __m256 s = _mm256_set1_ps(scale);                                                        \
        for (; i + 8 <= end; i += 8) {                                                                 \
            __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(in + (i - start))));    \
            store8_##SUFFIX(out + i, _mm256_mul_ps(_mm256_cvtepi32_ps(q), s));                         \
        }                                                                                              \
        for (; i < end; i++) out[i] = (T)((float)(int8_t)in[i - start] * scale);                       \
        in += end - start;                                                                             \
    }                                                                                                  \
}

CODEC_FUNCTIONS(f64, double)
CODEC_FUNCTIONS(f32, float)

#define VECTOR(call) do { if (vectors()) { call; return; } } while (0)
#else
#define VECTOR(call) do { } while (0)
#endif

// MARK: - Entry points: the vector path where the CPU has it, else the portable loop

#define ENTRY_POINTS(SUFFIX, T)                                                                        \
void shardwise_f16_encode_##SUFFIX(const T *v, size_t n, uint16_t *out) {                             \
    VECTOR(f16_encode_##SUFFIX##_avx2(v, n, out));                                                     \
    for (size_t i = 0; i < n; i++) out[i] = f16_encode1((float)v[i]);                                  \
}                                                                                                      \
void shardwise_f16_decode_##SUFFIX(const uint16_t *in, size_t n, T *out) {                            \
    VECTOR(f16_decode_##SUFFIX##_avx2(in, n, out));                                                    \
    for (size_t i = 0; i < n; i++) out[i] = (T)f16_decode1(in[i]);                                     \
}                                                                                                      \
void shardwise_bf16_encode_##SUFFIX(const T *v, size_t n, uint16_t *out) {                            \
    VECTOR(bf16_encode_##SUFFIX##_avx2(v, n, out));                                                    \
    for (size_t i = 0; i < n; i++) out[i] = bf16_encode1((float)v[i]);                                 \
}                                                                                                      \
void shardwise_bf16_decode_##SUFFIX(const uint16_t *in, size_t n, T *out) {                           \
    VECTOR(bf16_decode_##SUFFIX##_avx2(in, n, out));                                                   \
    for (size_t i = 0; i < n; i++) out[i] = (T)bf16_decode1(in[i]);                                    \
}                                                                                                      \
void shardwise_int8_encode_##SUFFIX(const T *v, size_t n, size_t chunk, uint8_t *out) {               \
    VECTOR(int8_encode_##SUFFIX##_avx2(v, n, chunk, out));                                             \
    for (size_t start = 0; start < n; start += chunk) {                                                \
        size_t end = start + chunk < n ? start + chunk : n;                                            \
        float m = 0;                                                                                   \
        for (size_t i = start; i < end; i++) { float a = fabsf((float)v[i]); m = a > m ? a : m; }      \
        float scale = int8_scale(m), inverse = scale > 0 ? 1.0f / scale : 0.0f;                        \
        store_scale(out, scale);                                                                       \
        out += 4;                                                                                      \
        for (size_t i = start; i < end; i++) *out++ = (uint8_t)int8_quantise((float)v[i], inverse);    \
    }                                                                                                  \
}                                                                                                      \
void shardwise_int8_decode_##SUFFIX(const uint8_t *in, size_t n, size_t chunk, T *out) {              \
    VECTOR(int8_decode_##SUFFIX##_avx2(in, n, chunk, out));                                            \
    for (size_t start = 0; start < n; start += chunk) {                                                \
        size_t end = start + chunk < n ? start + chunk : n;                                            \
        float scale = load_scale(in);                                                                  \
        in += 4;                                                                                       \
        for (size_t i = start; i < end; i++) out[i] = (T)((float)(int8_t)*in++ * scale);               \
    }                                                                                                  \
}

ENTRY_POINTS(f64, double)
ENTRY_POINTS(f32, float)

// MARK: - Top-k selection

#include <stdlib.h>

/// The bits of |x| as an unsigned key: ordered like the magnitudes, NaN above +∞.
static inline uint64_t magnitude_key(double x) {
    uint64_t b;
    memcpy(&b, &x, 8);
    return b & 0x7FFFFFFFFFFFFFFFull;
}

/// The element of rank `r` (0 = smallest) of a[0..<n] (Hoare's selection; reorders a).
static uint64_t select_rank(uint64_t *a, size_t n, size_t r) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint64_t pivot = a[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                uint64_t t = a[i]; a[i] = a[j]; a[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (r <= j && j < hi) hi = j;
        else if (r >= i) lo = i;
        else return a[r];
    }
    return a[r];
}

static inline void topk_put(uint8_t **p, double *e, size_t i) {
    uint32_t index = (uint32_t)i;
    float value = (float)e[i];
    memcpy(*p, &index, 4);
    memcpy(*p + 4, &value, 4);
    e[i] -= (double)value;
    *p += 8;
}

/// After pass 1 (e ← e + v): a threshold guessed from a strided sample of the keys, low enough
/// that, with a margin of four standard deviations, at least k keys reach it; pass 2 keeps the
/// indices whose key reaches it (in index order; about k of them), and the exact k-th largest is
/// selected among those. Should fewer than k reach the guess, pass 2 is run again keeping
/// everything. The result never depends on the guess, only the time does.
static void topk_emit(size_t n, size_t k, double *e, uint8_t *out) {
    uint32_t count = (uint32_t)k;
    memcpy(out, &count, 4);   // little-endian hosts only (x86-64, arm64)
    uint8_t *p = out + 4;
    if (k == n) {
        for (size_t i = 0; i < n; i++) topk_put(&p, e, i);
        return;
    }
    size_t samples = n < 8192 ? n : 8192, stride = n / samples;
    uint64_t *sample = malloc(samples * sizeof(uint64_t));
    for (size_t j = 0; j < samples; j++) sample[j] = magnitude_key(e[j * stride]);
    double f = (double)k / (double)n, sd = sqrt((double)samples * f * (1 - f));
    double rank = (double)samples * (1 - f) - 4 * sd - 1;
    uint64_t guess = rank <= 0 ? 0 : select_rank(sample, samples, (size_t)rank);
    free(sample);
    size_t capacity = 2 * k + 64, m = 0;
    size_t *kept = malloc(capacity * sizeof(size_t));
    uint64_t *keys = malloc(capacity * sizeof(uint64_t));
    for (int attempt = 0; attempt < 2; attempt++) {
        m = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t key = magnitude_key(e[i]);
            if (key < guess) continue;
            if (m == capacity) {
                capacity *= 2;
                kept = realloc(kept, capacity * sizeof(size_t));
                keys = realloc(keys, capacity * sizeof(uint64_t));
            }
            kept[m] = i;
            keys[m++] = key;
        }
        if (m >= k) break;
        guess = 0;   // the sample misled: keep everything
    }
    uint64_t *scratch = malloc(m * sizeof(uint64_t));
    memcpy(scratch, keys, m * sizeof(uint64_t));
    uint64_t threshold = select_rank(scratch, m, m - k);
    free(scratch);
    size_t ties = k;
    for (size_t j = 0; j < m; j++) ties -= keys[j] > threshold;
    for (size_t j = 0; j < m; j++) {
        if (keys[j] > threshold) topk_put(&p, e, kept[j]);
        else if (keys[j] == threshold && ties > 0) { ties--; topk_put(&p, e, kept[j]); }
    }
    free(kept);
    free(keys);
}

#define TOPK_ENTRY(SUFFIX, T)                                                                          \
void shardwise_topk_encode_##SUFFIX(const T *v, size_t n, size_t k, double *e, uint8_t *out) {        \
    for (size_t i = 0; i < n; i++) e[i] += (double)v[i];                                               \
    topk_emit(n, k, e, out);                                                                           \
}

TOPK_ENTRY(f64, double)
TOPK_ENTRY(f32, float)
