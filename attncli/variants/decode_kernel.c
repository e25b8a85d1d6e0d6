/* One decode step of softmax attention on the CPU in a single pass over the KV cache (AVX2/FMA).

   attncli builds this file with the system C compiler on first use and loads it with ctypes
   (variants/cdecode.py); without a compiler, or on a CPU without AVX2/FMA, decode runs through
   the BLAS path instead (variants/common.decode_attention, backend_used `gemv`).

   Why: with r query heads per KV head (GQA), a step is two r-row products over the cache. The
   BLAS runs r = 4 at 5-7 GB/s where one row streams at 17 (docs/backends.md). Here the keys and
   values are read once, as FlashDecoding does on a GPU, in blocks of tokens whose r rows of scores
   stay in L2 (SCORE_FLOATS): for each block the scores of all r rows, an online softmax (running
   maximum and sum), then the weighted sum of the block's values.

   Order of reads: the cache stores each head dim's tokens contiguously, so a block is hd runs of
   tokens, far apart. The scores read them a few runs at a time (8 at r <= 4, 16 at r <= 8, else
   32), each pass adding its head dims' share into the block's scores: a few long sequential
   streams, which the hardware prefetcher follows. One pass over all 64 runs of 512-token blocks
   (the first version) read at about 0.6-0.7 of the read-only rate, these passes at about 0.7-0.8
   (the host's noise moves both): 1.07-1.20x faster, the two timed in one process
   (docs/backends.md). Each pass re-reads and re-stores the scores through L1/L2, so the
   compute-bound wide groups take fewer passes, and a block of at most SHORT tokens (a short
   cache, mostly in the CPU's caches already) takes one. The values are read two runs at a time
   over the whole block (values_chunk). The whole kernel reads at about 0.97 of the read-only rate
   on the decode bandwidth benchmark's shape.

   attncli_gqa_step (at the end) runs a GQA layer's whole decode step in one call: the projections
   (attncli_linear), RoPE, the new token's key and value into the caches, this attention and the
   output projection.

   Layout (common.kv_cache_tensor): for batch b, KV head g, head dim j and token t, the key is
   k[b*k_sb + g*k_sg + j*k_sd + t] (the tokens of one head dim are contiguous), and so for v.
   q[b*q_sb + (g*r + i)*q_sh + j] is query head g*r + i; out is (batch, groups*r, dv), dense. */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef SHORT
#define SHORT 1024 /* blocks of at most this many tokens: the scores in one pass */
#endif
#ifndef SCORE_FLOATS
#define SCORE_FLOATS (48 * 1024) /* one block's r rows of scores: 192 KiB, half of L2; 16-32 Ki measured slower */
#endif

/* e^x for x <= 0 (softmax arguments after the maximum is subtracted): x = n ln2 + f, |f| <= ln2/2,
   e^x = 2^n e^f, e^f by its Taylor series to f^7 (relative error below f^8/8! < 6e-9). ln2 is split
   in two (355/512 exactly, then the rest) so n ln2 is subtracted without rounding error. */
static inline __m256 exp_nonpositive(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f)); /* e^-87 is near float32's smallest normal */
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.4426950408889634f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);   /* 355/512 */
    f = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.1219444005469057e-4f), f); /* ln2 - 355/512 */
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    __m256i two_n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(two_n));
}

static inline float hsum(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    return _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)));
}

static inline float hmax(__m256 v) {
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    return _mm_cvtss_f32(_mm_max_ss(x, _mm_movehdup_ps(x)));
}

struct problem {
    const float *q;
    float *k, *v; /* written only at slot S - 1 from knew, vnew (attncli_gqa_step's new token) */
    const float *knew, *vnew;
    float *out;
    long batch, groups, S, q_sb, q_sh, k_sb, k_sg, k_sd, v_sb, v_sg, v_sd, block;
    int r, hd, dv;
    float scale;
};

/* Scratch for one thread: scores (r, block), accumulators (r, dv), running max and sum (r), the
   block's maximum score of each row (r), and the rows' running vector maxima (r, 8), found as the
   last pass stores the scores. */
struct scratch { float *s, *acc, *m, *l, *bm, *top; };

/* One block's scores, s[i][t] = scale * q_i · k_t for the n tokens from kb, in passes of dc head
   dims: each pass adds q_i[j] k_j[t] for its dc dims into s (the first pass stores), in register
   tiles of 4 rows × 16 tokens; the last pass scales, stores and keeps each row's maximum. Inlined
   per dc so the inner loop has a constant trip count. */
static inline __attribute__((always_inline)) void scores_in_passes(const struct problem *P, const float *q,
                                                                    const float *k, long kb, long n,
                                                                    struct scratch *w, const int dc) {
    const int r = P->r, hd = P->hd;
    const long sd = P->k_sd, n16 = n / 16 * 16, B = P->block;
    const __m256 sc = _mm256_set1_ps(P->scale);
    for (int i = 0; i < r; i++) _mm256_store_ps(w->top + 8 * i, _mm256_set1_ps(-INFINITY));
    for (int j0 = 0; j0 < hd; j0 += dc) {
        const int j1 = j0 + dc < hd ? j0 + dc : hd, first = j0 == 0, last = j1 == hd;
        for (long t = 0; t < n16; t += 16) {
            const float *kp = k + kb + t + j0 * sd;
            for (int i0 = 0; i0 < r; i0 += 4) { /* the tile's keys come from L1 for every group after the first */
                const int ni = r - i0 < 4 ? r - i0 : 4; /* rows past r repeat row i0, unstored */
                const float *q0 = q + i0 * P->q_sh, *q1 = q0 + (ni > 1 ? P->q_sh : 0),
                            *q2 = q0 + (ni > 2 ? 2 * P->q_sh : 0), *q3 = q0 + (ni > 3 ? 3 * P->q_sh : 0);
                float *s0 = w->s + i0 * B + t, *s1 = s0 + (ni > 1 ? B : 0), *s2 = s0 + (ni > 2 ? 2 * B : 0),
                      *s3 = s0 + (ni > 3 ? 3 * B : 0);
                __m256 a00, a01, a10, a11, a20, a21, a30, a31;
                if (first) {
                    a00 = a01 = a10 = a11 = a20 = a21 = a30 = a31 = _mm256_setzero_ps();
                } else {
                    a00 = _mm256_load_ps(s0), a01 = _mm256_load_ps(s0 + 8), a10 = _mm256_load_ps(s1);
                    a11 = _mm256_load_ps(s1 + 8), a20 = _mm256_load_ps(s2), a21 = _mm256_load_ps(s2 + 8);
                    a30 = _mm256_load_ps(s3), a31 = _mm256_load_ps(s3 + 8);
                }
                const float *kj = kp;
                for (int j = j0; j < j1; j++, kj += sd) {
                    __m256 k0 = _mm256_loadu_ps(kj), k1 = _mm256_loadu_ps(kj + 8), b;
                    b = _mm256_broadcast_ss(q0 + j); a00 = _mm256_fmadd_ps(b, k0, a00); a01 = _mm256_fmadd_ps(b, k1, a01);
                    b = _mm256_broadcast_ss(q1 + j); a10 = _mm256_fmadd_ps(b, k0, a10); a11 = _mm256_fmadd_ps(b, k1, a11);
                    b = _mm256_broadcast_ss(q2 + j); a20 = _mm256_fmadd_ps(b, k0, a20); a21 = _mm256_fmadd_ps(b, k1, a21);
                    b = _mm256_broadcast_ss(q3 + j); a30 = _mm256_fmadd_ps(b, k0, a30); a31 = _mm256_fmadd_ps(b, k1, a31);
                }
                __m256 acc[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
                float *row[4] = {s0, s1, s2, s3};
                for (int i = 0; i < ni; i++) {
                    __m256 x0 = acc[i][0], x1 = acc[i][1];
                    if (last) {
                        float *top = w->top + 8 * (i0 + i);
                        x0 = _mm256_mul_ps(x0, sc), x1 = _mm256_mul_ps(x1, sc);
                        _mm256_store_ps(top, _mm256_max_ps(_mm256_load_ps(top), _mm256_max_ps(x0, x1)));
                    }
                    _mm256_store_ps(row[i], x0);
                    _mm256_store_ps(row[i] + 8, x1);
                }
            }
        }
    }
    for (int i = 0; i < r; i++) w->bm[i] = hmax(_mm256_load_ps(w->top + 8 * i));
    for (long t = n16; t < n; t++)
        for (int i = 0; i < r; i++) {
            const float *qi = q + i * P->q_sh;
            double dot = 0; /* the last < 16 keys, one at a time: summed in double, rounded once */
            for (int j = 0; j < hd; j++) dot += (double)qi[j] * k[j * sd + kb + t];
            const float x = (float)dot * P->scale;
            w->s[i * B + t] = x;
            if (x > w->bm[i]) w->bm[i] = x;
        }
}

static void block_scores(const struct problem *P, const float *q, const float *k, long kb, long n, struct scratch *w) {
    if (n <= SHORT) scores_in_passes(P, q, k, kb, n, w, 64);
    else if (P->r <= 4) scores_in_passes(P, q, k, kb, n, w, 8);
    else if (P->r <= 8) scores_in_passes(P, q, k, kb, n, w, 16);
    else scores_in_passes(P, q, k, kb, n, w, 32);
}

/* Online softmax over a block: the running maximum m and sum l of each row, the accumulated values
   rescaled by e^(m_old - m_new), and s turned into e^(s - m_new). */
static void block_softmax(const struct problem *P, long n, struct scratch *w) {
    const long n8 = n / 8 * 8;
    for (int i = 0; i < P->r; i++) {
        float *si = w->s + i * P->block, *acc = w->acc + (long)i * P->dv;
        float m = w->bm[i] > w->m[i] ? w->bm[i] : w->m[i];
        long t;
        if (m > w->m[i]) { /* 0 on the first block, where m[i] is -inf and nothing is accumulated */
            const float alpha = expf(w->m[i] - m);
            w->l[i] *= alpha;
            for (int j = 0; j < P->dv; j++) acc[j] *= alpha;
            w->m[i] = m;
        }
        const __m256 mm = _mm256_set1_ps(m);
        __m256 z = _mm256_setzero_ps();
        for (t = 0; t < n8; t += 8) {
            __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_load_ps(si + t), mm));
            z = _mm256_add_ps(z, e);
            _mm256_store_ps(si + t, e);
        }
        double sum = hsum(z);
        for (; t < n; t++) sum += (si[t] = expf(si[t] - m));
        w->l[i] += sum;
    }
}

/* sums[2i + c] = sum over t0 <= t < t1 of p_i[t] v_c[t], in float. Its own function, so that only
   its accumulators and loads hold registers in the loop: inlined, the caller's double partial sums
   spilled them to the stack. Each p_i[t] is loaded once into a register (the empty asm keeps gcc
   from folding it into both of its multiply-adds as a second load). Both: 0.87x the time with the
   cache in L3, 0.95x from DRAM, one thread (docs/backends.md). */
static __attribute__((noinline)) void values_chunk(const float *v0, const float *v1, const float *p0,
                                                   const float *p1, const float *p2, const float *p3, long t0,
                                                   long t1, float *sums) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    for (long t = t0; t < t1; t += 8) {
        __m256 x0 = _mm256_loadu_ps(v0 + t), x1 = _mm256_loadu_ps(v1 + t);
        __m256 e0 = _mm256_load_ps(p0 + t), e1 = _mm256_load_ps(p1 + t);
        __m256 e2 = _mm256_load_ps(p2 + t), e3 = _mm256_load_ps(p3 + t);
        __asm__("" : "+x"(e0), "+x"(e1), "+x"(e2), "+x"(e3));
        a00 = _mm256_fmadd_ps(e0, x0, a00); a01 = _mm256_fmadd_ps(e0, x1, a01);
        a10 = _mm256_fmadd_ps(e1, x0, a10); a11 = _mm256_fmadd_ps(e1, x1, a11);
        a20 = _mm256_fmadd_ps(e2, x0, a20); a21 = _mm256_fmadd_ps(e2, x1, a21);
        a30 = _mm256_fmadd_ps(e3, x0, a30); a31 = _mm256_fmadd_ps(e3, x1, a31);
    }
    sums[0] = hsum(a00), sums[1] = hsum(a01), sums[2] = hsum(a10), sums[3] = hsum(a11);
    sums[4] = hsum(a20), sums[5] = hsum(a21), sums[6] = hsum(a30), sums[7] = hsum(a31);
}

/* acc[i][j] += sum_t p[i][t] v[j][t] over the block's n tokens, two value rows at a time in tiles of
   4 rows; 512 tokens are summed in float, then added in double. */
static void block_values(const struct problem *P, const float *v, long n, struct scratch *w) {
    const int r = P->r, dv = P->dv;
    const long vd = P->v_sd, n8 = n / 8 * 8, B = P->block;
    for (int j = 0; j < dv; j += 2) {
        const int two = j + 1 < dv;
        const float *v0 = v + j * vd, *v1 = two ? v0 + vd : v0;
        for (int i0 = 0; i0 < r; i0 += 4) {
            const int ni = r - i0 < 4 ? r - i0 : 4;
            const float *p0 = w->s + i0 * B, *p1 = p0 + (ni > 1 ? B : 0), *p2 = p0 + (ni > 2 ? 2 * B : 0),
                        *p3 = p0 + (ni > 3 ? 3 * B : 0);
            double part[4][2] = {{0}};
            for (long t0 = 0; t0 < n8; t0 += 512) {
                const long t1 = t0 + 512 < n8 ? t0 + 512 : n8;
                float sums[8];
                values_chunk(v0, v1, p0, p1, p2, p3, t0, t1, sums);
                for (int i = 0; i < 4; i++) part[i][0] += sums[2 * i], part[i][1] += sums[2 * i + 1];
            }
            const float *pr[4] = {p0, p1, p2, p3};
            for (long t = n8; t < n; t++) /* the last < 8 tokens, in double */
                for (int i = 0; i < 4; i++) { part[i][0] += (double)pr[i][t] * v0[t]; part[i][1] += (double)pr[i][t] * v1[t]; }
            for (int i = 0; i < ni; i++) {
                float *acc = w->acc + (long)(i0 + i) * dv;
                acc[j] += part[i][0];
                if (two) acc[j + 1] += part[i][1];
            }
        }
    }
}

static void one_pair(const struct problem *P, long p, struct scratch *w) {
    const long b = p / P->groups, g = p % P->groups;
    const float *q = P->q + b * P->q_sb + g * P->r * P->q_sh;
    float *k = P->k + b * P->k_sb + g * P->k_sg, *v = P->v + b * P->v_sb + g * P->v_sg;
    if (P->knew) /* the new token into its slot: here, by the thread that reads these runs next */
        for (int j = 0; j < P->hd; j++) {
            k[j * P->k_sd + P->S - 1] = P->knew[p * P->hd + j];
            v[j * P->v_sd + P->S - 1] = P->vnew[p * P->dv + j];
        }
    for (int i = 0; i < P->r; i++) w->m[i] = -INFINITY, w->l[i] = 0;
    memset(w->acc, 0, sizeof(float) * P->r * P->dv);
    for (long kb = 0; kb < P->S; kb += P->block) {
        const long n = P->S - kb < P->block ? P->S - kb : P->block;
        block_scores(P, q, k, kb, n, w);
        block_softmax(P, n, w);
        block_values(P, v + kb, n, w);
    }
    float *out = P->out + (b * P->groups + g) * P->r * P->dv;
    for (int i = 0; i < P->r; i++)
        for (int j = 0; j < P->dv; j++) out[(long)i * P->dv + j] = w->acc[(long)i * P->dv + j] / w->l[i];
}

/* The step for every (batch, KV head) pair, split over `threads` OpenMP threads. `block` tokens per
   block (a multiple of 16), or 0: as many as SCORE_FLOATS of scores hold, at least 256, at most S.
   Built with -fopenmp and loaded into a torch process, the library binds to torch's own libgomp
   (the same soname, already loaded), so the kernel runs on torch's intra-op threads: no second pool
   spins against them. Returns 0; -1 when a thread's scratch could not be allocated (out incomplete). */
static int decode(const float *q, float *k, float *v, const float *knew, const float *vnew, float *out, long batch,
                  long groups, int r, int hd, int dv, long S, long q_sb, long q_sh, long k_sb, long k_sg, long k_sd,
                  long v_sb, long v_sg, long v_sd, float scale, int threads, long block) {
    if (block <= 0) {
        block = SCORE_FLOATS / r / 16 * 16;
        if (block < 256) block = 256;
        if (block > (S + 15) / 16 * 16) block = (S + 15) / 16 * 16;
    }
    block = (block + 15) / 16 * 16;
    const struct problem P = {q, k, v, knew, vnew, out, batch, groups, S, q_sb, q_sh, k_sb, k_sg, k_sd,
                              v_sb, v_sg, v_sd, block, r, hd, dv, scale};
    const long pairs = batch * groups;
    const size_t floats = (size_t)r * (8 + block + dv + 3) + 16; /* top first: every row 32-byte aligned */
    int failed = 0;
    if (threads > pairs) threads = (int)pairs;
    if (threads < 1) threads = 1;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        float *mem = aligned_alloc(64, sizeof(float) * ((floats + 15) / 16 * 16));
        float *s = mem + 8 * r;
        struct scratch w = {s, s + r * block, s + r * (block + dv), s + r * (block + dv + 1), s + r * (block + dv + 2), mem};
        failed = mem == 0;
#pragma omp for schedule(static)
        for (long p = 0; p < pairs; p++)
            if (mem) one_pair(&P, p, &w);
            else failed = 1;
        free(mem);
    }
    return failed ? -1 : 0;
}

int attncli_decode(const float *q, const float *k, const float *v, float *out, long batch, long groups, int r,
                   int hd, int dv, long S, long q_sb, long q_sh, long k_sb, long k_sg, long k_sd, long v_sb,
                   long v_sg, long v_sd, float scale, int threads, long block) {
    return decode(q, (float *)k, (float *)v, 0, 0, out, batch, groups, r, hd, dv, S, q_sb, q_sh, k_sb, k_sg, k_sd,
                  v_sb, v_sg, v_sd, scale, threads, block); /* nothing is written through k and v */
}

/* A projection of a few rows (decode: one token per sequence), y = x·Wᵀ: y[i*out + o] =
   sum_d x[i*x_s + d] w[o*w_s + d] for i < rows, o < out. Each thread streams its share of W's rows
   (two at a time, adjacent, so one sequential stream) once, against every row of x in tiles of 4
   rows × 2 outputs, prefetching the rows 4 ahead (0.88x the time without, 4 rows; 2-8 ahead
   measure alike); y is written in its (rows, out) layout. The BLAS's few-row products read W at
   about half the read-only rate here and their output needs a transposing copy
   (common.Projection). The last < 8 of each dot product are summed in double. Returns 0. */
int attncli_linear(const float *x, const float *w, float *y, int rows, long in, long out, long x_s, long w_s,
                   int threads) {
    const long pairs = (out + 1) / 2, in8 = in / 8 * 8;
    if (threads > pairs) threads = (int)pairs;
    if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long p = 0; p < pairs; p++) {
        const long o = 2 * p;
        const int two = o + 1 < out;
        const float *w0 = w + o * w_s, *w1 = two ? w0 + w_s : w0;
        for (int i0 = 0; i0 < rows; i0 += 4) {
            const int ni = rows - i0 < 4 ? rows - i0 : 4; /* rows past `rows` repeat row i0, unstored */
            const float *x0 = x + i0 * x_s, *x1 = x0 + (ni > 1 ? x_s : 0), *x2 = x0 + (ni > 2 ? 2 * x_s : 0),
                        *x3 = x0 + (ni > 3 ? 3 * x_s : 0);
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
            for (long d = 0; d < in8; d += 8) {
                if (i0 == 0 && !(d & 15)) { /* the rows 4 ahead, a line per row per step (prefetch cannot fault) */
                    _mm_prefetch((const char *)(w0 + d + 4 * w_s), _MM_HINT_T0);
                    _mm_prefetch((const char *)(w1 + d + 4 * w_s), _MM_HINT_T0);
                }
                __m256 u = _mm256_loadu_ps(w0 + d), t = _mm256_loadu_ps(w1 + d), e;
                e = _mm256_loadu_ps(x0 + d); a00 = _mm256_fmadd_ps(e, u, a00); a01 = _mm256_fmadd_ps(e, t, a01);
                e = _mm256_loadu_ps(x1 + d); a10 = _mm256_fmadd_ps(e, u, a10); a11 = _mm256_fmadd_ps(e, t, a11);
                e = _mm256_loadu_ps(x2 + d); a20 = _mm256_fmadd_ps(e, u, a20); a21 = _mm256_fmadd_ps(e, t, a21);
                e = _mm256_loadu_ps(x3 + d); a30 = _mm256_fmadd_ps(e, u, a30); a31 = _mm256_fmadd_ps(e, t, a31);
            }
            double part[4][2] = {{hsum(a00), hsum(a01)}, {hsum(a10), hsum(a11)}, {hsum(a20), hsum(a21)}, {hsum(a30), hsum(a31)}};
            const float *xr[4] = {x0, x1, x2, x3};
            for (long d = in8; d < in; d++)
                for (int i = 0; i < 4; i++) { part[i][0] += (double)xr[i][d] * w0[d]; part[i][1] += (double)xr[i][d] * w1[d]; }
            for (int i = 0; i < ni; i++) {
                y[(i0 + i) * out + o] = (float)part[i][0];
                if (two) y[(i0 + i) * out + o + 1] = (float)part[i][1];
            }
        }
    }
    return 0;
}

/* Rotate one head's first `rot` elements by RoPE at one position: cos and sin hold that position's
   `rot` values (common.Rope.tables). Half-split (GPT-NeoX, Llama): element i pairs with i + rot/2;
   interleaved (DeepSeek): 2i with 2i + 1. The same products as common.Rope: x·cos ∓ x'·sin. */
static void rotate(float *x, const float *cos, const float *sin, int rot, int interleave) {
    if (interleave) {
        for (int i = 0; i < rot; i += 2) {
            const float a = x[i], b = x[i + 1];
            x[i] = a * cos[i] - b * sin[i];
            x[i + 1] = b * cos[i + 1] + a * sin[i + 1];
        }
        return;
    }
    const int half = rot / 2;
    for (int i = 0; i < half; i++) {
        const float a = x[i], b = x[i + half];
        x[i] = a * cos[i] - b * sin[i];
        x[i + half] = b * cos[i + half] + a * sin[i + half];
    }
}

/* y = x·Wᵀ + b for a (rows, out) result: attncli_linear, then the bias (NULL: none) added to the
   rounded product, as nn.Linear's `out + bias`. */
static void project(const float *x, const float *w, const float *b, float *y, int rows, long in, long out,
                    long x_s, long w_s, int threads) {
    attncli_linear(x, w, y, rows, in, out, x_s, w_s, threads);
    if (b)
        for (int i = 0; i < rows; i++)
            for (long o = 0; o < out; o++) y[i * out + o] += b[o];
}

/* A whole decode step of a GQA layer (variants/gqa.py, GQAAttention.step without a window), one
   token per sequence, in one call: q, k, v = x·Wᵀ (+ bias) for each of the `rows` sequences, RoPE
   on q and k (cos, sin: NULL for none), the new key and value stored at slot `pos` of the caches
   (kc, vc: element (b, g, t, j) at b*k_sb + g*k_sg + t + j*k_sd, tokens contiguous), attention of
   the h = g·r query heads over the pos + 1 cached tokens (attncli_decode), and y = o·W_oᵀ (+ bias).
   The same arithmetic as the module's own step, with none of the per-op dispatch between the
   products: after a pass over a cache far larger than the CPU's caches that dispatch runs cold,
   about 1.3 ms of a 6.4 ms step on the decode bandwidth benchmark's shape (docs/backends.md).
   Each (batch, KV head) pair's new key and value are stored by the thread that then reads that
   pair's runs (one_pair), not in a loop of 2·rows·g·hd scattered stores before (0.17 ms, each
   store a page of its own). x[i*x_s + c]; each weight's rows w[o*w_s + c]; y is (rows, d_model)
   dense. Returns 0; -1 when scratch could not be allocated (then y, and the caches' slot `pos`,
   may be incomplete). */
int attncli_gqa_step(const float *x, int rows, long d, long x_s, const float *wq, const float *wk,
                     const float *wv, const float *wo, long wq_s, long wk_s, long wv_s, long wo_s, const float *bq,
                     const float *bk, const float *bv, const float *bo, int h, int g, int hd, const float *cos,
                     const float *sin, int rot, int interleave, float *kc, float *vc, long k_sb, long k_sg,
                     long k_sd, long v_sb, long v_sg, long v_sd, long pos, float scale, float *y, int threads,
                     long block) {
    const long nq = (long)h * hd, nk = (long)g * hd;
    float *mem = aligned_alloc(64, sizeof(float) * (((size_t)rows * (2 * nq + 2 * nk) + 15) / 16 * 16));
    if (!mem) return -1;
    float *q = mem, *k = q + rows * nq, *v = k + rows * nk, *o = v + rows * nk;
    project(x, wq, bq, q, rows, d, nq, x_s, wq_s, threads);
    project(x, wk, bk, k, rows, d, nk, x_s, wk_s, threads);
    project(x, wv, bv, v, rows, d, nk, x_s, wv_s, threads);
    if (cos)
        for (int i = 0; i < rows; i++) {
            for (int hh = 0; hh < h; hh++) rotate(q + i * nq + (long)hh * hd, cos, sin, rot, interleave);
            for (int gg = 0; gg < g; gg++) rotate(k + i * nk + (long)gg * hd, cos, sin, rot, interleave);
        }
    int rc = decode(q, kc, vc, k, v, o, rows, g, h / g, hd, hd, pos + 1, nq, hd, k_sb, k_sg, k_sd, v_sb, v_sg, v_sd,
                    scale, threads, block);
    if (rc == 0) project(o, wo, bo, y, rows, nq, d, nq, wo_s, threads);
    free(mem);
    return rc;
}
