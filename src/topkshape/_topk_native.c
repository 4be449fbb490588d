/* Exact spatial Top-K masks on the CPU: one select per row over |x| bit patterns.
 *
 * Why C: numpy's introselect plus the whole-array passes around it (the key, the
 * compare, the masked copy) cost 2-5x a plain masked copy of the same tensor
 * (benchmarks/topk_op.py). Here each row (one sample and channel, H*W entries) is read
 * from memory once and then handled in cache:
 *
 *   1. a histogram of the top RADIX_BITS bits of SAMPLE strided keys brackets the K-th
 *      largest key: the bins that hold sample ranks expected +- 4 standard deviations;
 *   2. one pass over the row counts the keys above the bracket and gathers those in it
 *      (a few percent of the row; 16 keys per step with AVX-512 for 32-bit keys);
 *   3. radix levels over the gathered keys, each sized to the keys left, find the K-th;
 *      where the bracket missed it (an unlucky or periodic sample: counted, and tested),
 *      a histogram of the whole row does, as it does for rows shorter than 2 * SAMPLE;
 *   4. one pass writes the mask and, for spatial_topk, Eq. 1's output with it.
 *
 * The key of a float is its bit pattern with the sign bit cleared: non-negative floats
 * order like those patterns read as unsigned integers, so the select is exact and
 * integer-only (float16 and bfloat16 are 16-bit keys, float64 64-bit keys).
 *
 * Tie and zero rules are topkshape.ops's: exact == 0 keeps every entry whose key is at
 * least the K-th largest and non-zero; exact == 1 keeps exactly K, ties at the K-th
 * taken in index order. Rows are spread over OpenMP threads (torch's; see topk_rows).
 * topkshape.ops calls this file through ctypes, which releases the GIL; the module init
 * at the end exists only so that setuptools builds and places it like any extension.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Compiled once per x86-64 level and picked at load time: AVX-512 or AVX2 vectorise the
   compare, mask and copy loops where the CPU has them, and a wheel built on one machine
   still runs on an older one. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define PER_CPU_LEVEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PER_CPU_LEVEL
#endif
#define INLINE static inline __attribute__((always_inline))

/* This thread's share of a parallel region: one contiguous range of rows each. */
#ifdef _OPENMP
#define PART_OF_THREAD(part, parts)                                                                \
    do {                                                                                          \
        part = omp_get_thread_num();                                                              \
        parts = omp_get_num_threads();                                                            \
    } while (0)
#else
#define PART_OF_THREAD(part, parts) ((void)0)
#endif

/* Whether topk_rows spreads rows over OpenMP threads (else topkshape.ops uses threads of its own). */
int topk_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

#define RADIX_BITS 11
#define BINS ((size_t)1 << RADIX_BITS)
/* Keys sampled per row to bracket the K-th largest; shorter rows are histogrammed whole. */
#define SAMPLE 256
/* Candidate sets this small are finished by counting (at most FEW * FEW compares). */
#define FEW 8

/* The bracket pass of kth_key for 32-bit keys with AVX-512: 16 keys per step, the ones in
   bins low..low+span compressed into cand (vpcompressd into a register, then a full store:
   the form that is fast on AMD Zen 4 too), the ones above counted. Returns the number
   gathered; *above gets the count above. The scalar loop in kth_key is the reference. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX512_BRACKET 1
__attribute__((target("avx512f,popcnt"))) static int64_t bracket_u32_avx512(const uint32_t *row, int64_t n, int shift,
                                                                         uint32_t low, uint32_t span, uint32_t *cand,
                                                                         int64_t *above_out)
{
    const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);
    const __m512i lows = _mm512_set1_epi32((int)low), spans = _mm512_set1_epi32((int)span);
    const __m512i highs = _mm512_set1_epi32((int)(low + span));
    int64_t above = 0, m = 0, i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_and_si512(_mm512_loadu_si512((const void *)(row + i)), magnitude);
        __m512i b = _mm512_srli_epi32(v, (unsigned)shift);
        above += __builtin_popcount(_mm512_cmpgt_epu32_mask(b, highs));
        __mmask16 inside = _mm512_cmple_epu32_mask(_mm512_sub_epi32(b, lows), spans);
        /* m <= i, so the 16 lanes stored at cand + m stay within cand[0..n). */
        _mm512_storeu_si512((void *)(cand + m), _mm512_maskz_compress_epi32(inside, v));
        m += __builtin_popcount(inside);
    }
    for (; i < n; i++) {
        uint32_t v = row[i] & 0x7fffffffu, b = v >> shift;
        above += b > low + span;
        cand[m] = v;
        m += b - low <= span;
    }
    *above_out = above;
    return m;
}

static int avx512_state = -1; /* -1: not yet asked; a benign race: every thread stores the same */

static int avx512_usable(void)
{
    if (avx512_state < 0) {
        __builtin_cpu_init();
        avx512_state = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("popcnt");
    }
    return avx512_state;
}
#else
#define HAVE_AVX512_BRACKET 0
static int avx512_usable(void) { return 0; }
#endif

/* Whether the AVX-512 bracket pass runs: request 0 turns it off, 1 back on where the CPU
   has it, -1 only asks. Returns the state after the request. For tests and benchmarks,
   which compare it with the portable loop; call it while no selection runs. */
int topk_vector_bracket(int request)
{
#if HAVE_AVX512_BRACKET
    if (request >= 0) {
        avx512_state = -1;
        if (request == 0 || !avx512_usable())
            avx512_state = 0;
    }
    return avx512_usable();
#else
    (void)request;
    return 0;
#endif
}

/* Rows whose sampled bracket missed the K-th key and were histogrammed whole, since load:
   tests check that Gaussian rows never miss and that a sample built to miss does. */
static int64_t bracket_misses = 0;

int64_t topk_bracket_misses(void) { return __atomic_load_n(&bracket_misses, __ATOMIC_RELAXED); }

INLINE void count_miss(void) { __atomic_fetch_add(&bracket_misses, 1, __ATOMIC_RELAXED); }

/* The smallest number of bits b with 2^b >= m, at least 1. */
INLINE int bits_for(int64_t m)
{
    int b = 1;
    while (((int64_t)1 << b) < m)
        b++;
    return b;
}

/* Walks a histogram down from `bin` to the bin that holds the rank-th largest entry; *rank
   becomes that entry's rank within its bin. */
INLINE size_t bin_of_rank(const uint32_t *hist, size_t bin, int64_t *rank)
{
    while (hist[bin] < *rank) {
        *rank -= hist[bin];
        bin--;
    }
    return bin;
}

#define DEFINE_TOPK(SUFFIX, KEY, SIGN_BIT)                                                         \
    /* Keeps, in order, the candidates whose bits from `shift` up, masked by `mask`, equal         \
       `value`; returns how many. */                                                              \
    INLINE int64_t keep_bin_##SUFFIX(KEY *cand, int64_t m, int shift, size_t mask, size_t value)  \
    {                                                                                             \
        int64_t kept = 0;                                                                         \
        for (int64_t j = 0; j < m; j++) {                                                         \
            KEY v = cand[j];                                                                      \
            cand[kept] = v;                                                                       \
            kept += ((size_t)(v >> shift) & mask) == value;                                       \
        }                                                                                         \
        return kept;                                                                              \
    }                                                                                             \
                                                                                                  \
    /* The rank-th largest of cand[0..m) (1 <= rank <= m), all of which share their bits from    \
       `shift` up: radix levels on the bits below, each sized to the candidates left, until     \
       few remain or all are equal. Reorders cand. */                                            \
    INLINE KEY finish_##SUFFIX(KEY *cand, int64_t m, int64_t rank, int shift, uint32_t *hist)    \
    {                                                                                             \
        while (shift > 0 && m > FEW) {                                                            \
            int width = bits_for(m) + 1;                                                          \
            width = width > RADIX_BITS ? RADIX_BITS : width;                                      \
            int next = shift > width ? shift - width : 0;                                         \
            size_t low = ((size_t)1 << (shift - next)) - 1;                                       \
            memset(hist, 0, (low + 1) * sizeof *hist);                                            \
            for (int64_t j = 0; j < m; j++)                                                       \
                hist[(size_t)(cand[j] >> next) & low]++;                                          \
            size_t bin = bin_of_rank(hist, low, &rank);                                           \
            m = keep_bin_##SUFFIX(cand, m, next, low, bin);                                       \
            shift = next;                                                                         \
        }                                                                                         \
        for (int64_t j = 0; j < m; j++) {                                                         \
            int64_t larger = 0, equal = 0;                                                        \
            for (int64_t i = 0; i < m; i++) {                                                     \
                larger += cand[i] > cand[j];                                                      \
                equal += cand[i] == cand[j];                                                      \
            }                                                                                     \
            if (larger < rank && rank <= larger + equal)                                          \
                return cand[j];                                                                   \
        }                                                                                         \
        return cand[0]; /* not reached: some candidate holds every rank 1..m */                   \
    }                                                                                             \
                                                                                                  \
    /* The k-th largest key of row[0..n) (1 <= k <= n) from a histogram of every key's top      \
       RADIX_BITS bits: exact for any row, and what short rows use. */                           \
    INLINE KEY radix_kth_##SUFFIX(const KEY *row, int64_t n, int64_t k, KEY *cand, uint32_t *hist) \
    {                                                                                             \
        const KEY magnitude = (KEY) ~((KEY)1 << (SIGN_BIT));                                      \
        const int shift = (SIGN_BIT) > RADIX_BITS ? (SIGN_BIT) - RADIX_BITS : 0;                  \
        KEY top = 0;                                                                              \
        for (int64_t i = 0; i < n; i++) {                                                         \
            KEY v = row[i] & magnitude;                                                           \
            top = v > top ? v : top;                                                              \
        }                                                                                         \
        size_t bin = (size_t)(top >> shift);                                                      \
        memset(hist, 0, (bin + 1) * sizeof *hist);                                                \
        for (int64_t i = 0; i < n; i++)                                                           \
            hist[(KEY)(row[i] & magnitude) >> shift]++;                                           \
        int64_t rank = k;                                                                         \
        bin = bin_of_rank(hist, bin, &rank);                                                      \
        int64_t m = 0;                                                                            \
        for (int64_t i = 0; i < n; i++) {                                                         \
            KEY v = row[i] & magnitude;                                                           \
            cand[m] = v;                                                                          \
            m += (size_t)(v >> shift) == bin;                                                     \
        }                                                                                         \
        return finish_##SUFFIX(cand, m, rank, shift, hist);                                       \
    }                                                                                             \
                                                                                                  \
    /* The k-th largest key of row[0..n). A histogram of SAMPLE strided keys brackets it with   \
       high probability (rank expected +- 4 standard deviations + 2, in top-bit bins); one     \
       pass counts the keys above the bracket and gathers those inside it, a few percent of     \
       the row, and the k-th is found among those. Where the bracket misses (an unlucky or     \
       periodic sample) the whole-row histogram answers: the same key, one pass later. */       \
    INLINE KEY kth_key_##SUFFIX(const KEY *row, int64_t n, int64_t k, KEY *cand, uint32_t *hist)  \
    {                                                                                             \
        if (n < 2 * SAMPLE)                                                                       \
            return radix_kth_##SUFFIX(row, n, k, cand, hist);                                     \
        const KEY magnitude = (KEY) ~((KEY)1 << (SIGN_BIT));                                      \
        const int shift = (SIGN_BIT) > RADIX_BITS ? (SIGN_BIT) - RADIX_BITS : 0;                  \
        uint32_t *counts = hist + BINS; /* all zero between rows: cheaper than clearing 8 KB */    \
        int64_t stride = n / SAMPLE, s = 0;                                                       \
        size_t top = 0;                                                                           \
        for (int64_t i = stride / 2; i < n; i += stride, s++) {                                   \
            size_t b = (KEY)(row[i] & magnitude) >> shift;                                        \
            counts[b]++;                                                                          \
            top = b > top ? b : top;                                                              \
        }                                                                                         \
        double expected = (double)k * (double)s / (double)n;                                      \
        double spread = 4.0 * __builtin_sqrt(expected * (1.0 - expected / (double)s)) + 2.0;      \
        /* A rank within the spread of the sample's top (or bottom) opens the bracket there:      \
           the row may hold keys beyond the sample's extremes. */                                 \
        int64_t first = expected - spread < 1.0 ? 0 : (int64_t)(expected - spread);              \
        int64_t last = expected + spread + 1.0 >= (double)s ? s + 1 : (int64_t)(expected + spread) + 1; \
        size_t low = top;                                                                         \
        int64_t seen = counts[top];                                                               \
        while (seen < first)                                                                      \
            seen += counts[--low];                                                                \
        const size_t high = first == 0 ? BINS - 1 : low;                                          \
        while (seen < last && low > 0)                                                            \
            seen += counts[--low];                                                                \
        for (int64_t i = stride / 2; i < n; i += stride)                                          \
            counts[(KEY)(row[i] & magnitude) >> shift] = 0;                                       \
        const size_t span = high - low;                                                           \
        int64_t above = 0, m = 0;                                                                 \
        if (HAVE_AVX512_BRACKET && sizeof(KEY) == 4 && avx512_usable()) {                        \
            m = bracket_u32_avx512((const uint32_t *)row, n, shift, (uint32_t)low, (uint32_t)span,  \
                                   (uint32_t *)cand, &above);                                     \
        } else {                                                                                  \
            for (int64_t i = 0; i < n; i++) {                                                     \
                KEY v = row[i] & magnitude;                                                       \
                size_t b = v >> shift;                                                            \
                above += b > high;                                                                \
                cand[m] = v;                                                                      \
                m += b - low <= span;                                                             \
            }                                                                                     \
        }                                                                                         \
        if (above >= k || k > above + m) {                                                        \
            count_miss();                                                                         \
            return radix_kth_##SUFFIX(row, n, k, cand, hist);                                     \
        }                                                                                         \
        int64_t rank = k - above;                                                                 \
        size_t bin = 0; /* the candidates' largest bin, above low; then the k-th's */             \
        for (int64_t j = 0; j < m; j++) {                                                         \
            size_t b = (size_t)(cand[j] >> shift) - low;                                          \
            bin = b > bin ? b : bin;                                                              \
        }                                                                                         \
        memset(hist, 0, (bin + 1) * sizeof *hist);                                                \
        for (int64_t j = 0; j < m; j++)                                                           \
            hist[(size_t)(cand[j] >> shift) - low]++;                                             \
        bin = bin_of_rank(hist, bin, &rank);                                                      \
        m = keep_bin_##SUFFIX(cand, m, shift, SIZE_MAX, low + bin);                               \
        return finish_##SUFFIX(cand, m, rank, shift, hist);                                       \
    }                                                                                             \
                                                                                                  \
    /* Rows [lo, hi) of topk_rows below, in one thread. Returns 0, or -1 when out of memory. */ \
    PER_CPU_LEVEL static int select_rows_##SUFFIX(const KEY *bits, uint8_t *mask, KEY *out, int64_t lo, \
                                                  int64_t hi, int64_t n, int64_t k, int exact,    \
                                                  int complement)                                 \
    {                                                                                             \
        const KEY magnitude = (KEY) ~((KEY)1 << (SIGN_BIT));                                      \
        KEY *cand = malloc((size_t)n * sizeof *cand);                                             \
        uint32_t *hist = calloc(2 * BINS, sizeof *hist); /* a histogram, and kth_key's counts */ \
        if (cand == NULL || hist == NULL) {                                                       \
            free(cand);                                                                           \
            free(hist);                                                                           \
            return -1;                                                                            \
        }                                                                                         \
        const uint8_t flip = complement ? 1 : 0;                                                  \
        for (int64_t r = lo; r < hi; r++) {                                                       \
            const KEY *row = bits + r * n;                                                        \
            uint8_t *row_mask = mask + r * n;                                                     \
            KEY threshold = kth_key_##SUFFIX(row, n, k, cand, hist);                              \
            if (!exact && threshold == 0)                                                         \
                threshold = 1; /* a zero is never a Top-K response */                             \
            KEY *row_out = out == NULL ? NULL : out + r * n;                                      \
            int64_t kept = 0;                                                                     \
            if (row_out == NULL) {                                                                \
                for (int64_t i = 0; i < n; i++) {                                                 \
                    uint8_t keep = (KEY)(row[i] & magnitude) >= threshold;                        \
                    row_mask[i] = keep ^ flip;                                                    \
                    kept += keep;                                                                 \
                }                                                                                 \
            } else { /* mask and output in one pass */                                            \
                for (int64_t i = 0; i < n; i++) {                                                 \
                    uint8_t keep = (KEY)(row[i] & magnitude) >= threshold;                        \
                    row_mask[i] = keep ^ flip;                                                    \
                    row_out[i] = keep ^ flip ? row[i] : 0;                                        \
                    kept += keep;                                                                 \
                }                                                                                 \
            }                                                                                     \
            if (exact && kept > k) { /* ties at the threshold: the first ones in index order */ \
                int64_t above = 0;                                                                \
                for (int64_t i = 0; i < n; i++)                                                   \
                    above += (KEY)(row[i] & magnitude) > threshold;                               \
                int64_t tied_left = k - above;                                                    \
                for (int64_t i = 0; i < n; i++) {                                                 \
                    KEY v = row[i] & magnitude;                                                   \
                    uint8_t selected = v > threshold || (v == threshold && tied_left > 0);        \
                    tied_left -= v == threshold && selected;                                      \
                    row_mask[i] = selected ^ flip;                                                \
                    if (row_out != NULL)                                                          \
                        row_out[i] = selected ^ flip ? row[i] : 0;                                \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        free(cand);                                                                               \
        free(hist);                                                                               \
        return 0;                                                                                 \
    }                                                                                             \
                                                                                                  \
    /* The Top-K mask of `rows` rows of n entries each (its complement when `complement`),     \
       and, where out is not NULL, the entries that mask keeps with zeros elsewhere, on up to  \
       `threads` OpenMP threads: torch's own, as torch loaded libgomp.so.1 first, so they are    \
       awake after torch's last parallel op, where threads of our own would wait for cores     \
       those spin on. Returns 0, -1 when out of memory, or -2 for a k outside 1..n. */           \
    int topk_rows_##SUFFIX(const KEY *bits, uint8_t *mask, KEY *out, int64_t rows, int64_t n,     \
                           int64_t k, int exact, int complement, int threads)                     \
    {                                                                                             \
        if (n < 1 || k < 1 || k > n)                                                              \
            return rows > 0 ? -2 : 0; /* no K-th largest to find */                               \
        int failed = 0;                                                                           \
        (void)threads;                                                                            \
        _Pragma("omp parallel num_threads(threads < 1 ? 1 : threads) reduction(| : failed)")       \
        {                                                                                         \
            int64_t part = 0, parts = 1;                                                          \
            PART_OF_THREAD(part, parts);                                                          \
            failed |= select_rows_##SUFFIX(bits, mask, out, rows * part / parts,                  \
                                           rows * (part + 1) / parts, n, k, exact, complement) != 0; \
        }                                                                                         \
        return failed ? -1 : 0;                                                                   \
    }

DEFINE_TOPK(u16, uint16_t, 15)
DEFINE_TOPK(u32, uint32_t, 31)
DEFINE_TOPK(u64, uint64_t, 63)

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_topk_native", "Radix-select Top-K masks, called through ctypes by topkshape.ops.",
    -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__topk_native(void) { return PyModule_Create(&module); }
