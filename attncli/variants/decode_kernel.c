/* One decode step of softmax attention on the CPU in a single pass over the KV cache (AVX2/FMA).

   attncli builds this file with the system C compiler on first use and loads it with ctypes
   (variants/cdecode.py); without a compiler, or on a CPU without AVX2/FMA, decode runs through
   the BLAS path instead (variants/common.decode_attention, backend_used `gemv`).

   Why: with r query heads per KV head (GQA), a step is two r-row products over the cache. The
   BLAS runs r = 4 at 5-7 GB/s where one row streams at 17 (docs/backends.md). Here the keys and
   values are read once, in blocks of BLOCK tokens, as FlashDecoding does on a GPU: for each block
   the scores of all r rows, an online softmax (running maximum and sum), then the weighted sum of
   the block's values. Software prefetch walks the next block while the current one is computed.

   Layout (common.kv_cache_tensor): for batch b, KV head g, head dim j and token t, the key is
   k[b*k_sb + g*k_sg + j*k_sd + t] (the tokens of one head dim are contiguous), and so for v.
   q[b*q_sb + (g*r + i)*q_sh + j] is query head g*r + i; out is (batch, groups*r, dv), dense. */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef BLOCK
#define BLOCK 512 /* tokens per block: 128 KiB of keys at hd 64 (fits L2); 256-1024 measure alike */
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
    const float *q, *k, *v;
    float *out;
    long batch, groups, S, q_sb, q_sh, k_sb, k_sg, k_sd, v_sb, v_sg, v_sd;
    int r, hd, dv;
    float scale;
};

/* Scratch for one thread: scores (r, BLOCK), accumulators (r, dv), running max and sum (r), and the
   block's maximum score of each row (r), found as the scores are stored. */
struct scratch { float *s, *acc, *m, *l, *bm; };

/* Block scores: s[i][t] = scale * q_i · k_t for the n tokens from kb; prefetches the block's values. */
static void block_scores(const struct problem *P, const float *q, const float *k, const float *v,
                         long kb, long n, float *s, float *bm) {
    const int r = P->r, hd = P->hd;
    const long sd = P->k_sd, n16 = n / 16 * 16, vd = P->v_sd;
    const __m256 sc = _mm256_set1_ps(P->scale);
    for (int i0 = 0; i0 < r; i0 += 4) {
        const int ni = r - i0 < 4 ? r - i0 : 4; /* rows past r repeat the group's first row, unstored */
        const float *q0 = q + i0 * P->q_sh, *q1 = q0 + (ni > 1 ? P->q_sh : 0), *q2 = q0 + (ni > 2 ? 2 * P->q_sh : 0),
                    *q3 = q0 + (ni > 3 ? 3 * P->q_sh : 0);
        float *s0 = s + (long)i0 * BLOCK;
        __m256 top[4] = {_mm256_set1_ps(-INFINITY), _mm256_set1_ps(-INFINITY), _mm256_set1_ps(-INFINITY),
                         _mm256_set1_ps(-INFINITY)};
        for (long t = 0; t < n16; t += 16) {
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
            const float *kp = k + kb + t;
            for (int j = 0; j < hd; j++, kp += sd) {
                if (i0 == 0 && j < P->dv) /* this block's values, one line per step, for block_values */
                    _mm_prefetch((const char *)(v + j * vd + kb + t), _MM_HINT_T0);
                __m256 k0 = _mm256_loadu_ps(kp), k1 = _mm256_loadu_ps(kp + 8), b;
                b = _mm256_broadcast_ss(q0 + j); a00 = _mm256_fmadd_ps(b, k0, a00); a01 = _mm256_fmadd_ps(b, k1, a01);
                b = _mm256_broadcast_ss(q1 + j); a10 = _mm256_fmadd_ps(b, k0, a10); a11 = _mm256_fmadd_ps(b, k1, a11);
                b = _mm256_broadcast_ss(q2 + j); a20 = _mm256_fmadd_ps(b, k0, a20); a21 = _mm256_fmadd_ps(b, k1, a21);
                b = _mm256_broadcast_ss(q3 + j); a30 = _mm256_fmadd_ps(b, k0, a30); a31 = _mm256_fmadd_ps(b, k1, a31);
            }
            __m256 acc[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
            for (int i = 0; i < ni; i++) {
                __m256 x0 = _mm256_mul_ps(acc[i][0], sc), x1 = _mm256_mul_ps(acc[i][1], sc);
                _mm256_store_ps(s0 + (long)i * BLOCK + t, x0);
                _mm256_store_ps(s0 + (long)i * BLOCK + t + 8, x1);
                top[i] = _mm256_max_ps(top[i], _mm256_max_ps(x0, x1));
            }
        }
        for (int i = 0; i < ni; i++) bm[i0 + i] = hmax(top[i]);
        for (long t = n16; t < n; t++)
            for (int i = 0; i < ni; i++) {
                const float *qi = q + (i0 + i) * P->q_sh;
                double dot = 0; /* the last < 16 keys, one at a time: summed in double, rounded once */
                for (int j = 0; j < hd; j++) dot += (double)qi[j] * k[j * sd + kb + t];
                const float x = (float)dot * P->scale;
                s0[(long)i * BLOCK + t] = x;
                if (x > bm[i0 + i]) bm[i0 + i] = x;
            }
    }
}

/* Online softmax over a block: the running maximum m and sum l of each row, the accumulated values
   rescaled by e^(m_old - m_new), and s turned into e^(s - m_new). */
static void block_softmax(const struct problem *P, long n, struct scratch *w) {
    const long n8 = n / 8 * 8;
    for (int i = 0; i < P->r; i++) {
        float *si = w->s + (long)i * BLOCK, *acc = w->acc + (long)i * P->dv;
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

/* acc[i][j] += sum_t p[i][t] v[j][t] over the block; prefetches the nn tokens of keys from `next`
   (the next block's, or the next pair's first). */
static void block_values(const struct problem *P, const float *v, const float *next, long n, long nn,
                         struct scratch *w) {
    const int r = P->r, dv = P->dv;
    const long vd = P->v_sd, kd = P->k_sd, n8 = n / 8 * 8;
    for (int i0 = 0; i0 < r; i0 += 4) {
        const int ni = r - i0 < 4 ? r - i0 : 4;
        const float *p0 = w->s + (long)i0 * BLOCK, *p1 = p0 + (ni > 1 ? BLOCK : 0),
                    *p2 = p0 + (ni > 2 ? 2 * BLOCK : 0), *p3 = p0 + (ni > 3 ? 3 * BLOCK : 0);
        for (int j = 0; j < dv; j += 2) {
            const int two = j + 1 < dv;
            const float *v0 = v + j * vd, *v1 = two ? v0 + vd : v0;
            const float *k0 = next + (long)j * kd, *k1 = k0 + (two && j + 1 < P->hd ? kd : 0);
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
            for (long t = 0; t < n8; t += 8) {
                if (i0 == 0 && !(t & 15) && t < nn && j < P->hd) { /* the next block's keys, row by row */
                    _mm_prefetch((const char *)(k0 + t), _MM_HINT_T0);
                    _mm_prefetch((const char *)(k1 + t), _MM_HINT_T0);
                }
                __m256 x0 = _mm256_loadu_ps(v0 + t), x1 = _mm256_loadu_ps(v1 + t), e;
                e = _mm256_load_ps(p0 + t); a00 = _mm256_fmadd_ps(e, x0, a00); a01 = _mm256_fmadd_ps(e, x1, a01);
                e = _mm256_load_ps(p1 + t); a10 = _mm256_fmadd_ps(e, x0, a10); a11 = _mm256_fmadd_ps(e, x1, a11);
                e = _mm256_load_ps(p2 + t); a20 = _mm256_fmadd_ps(e, x0, a20); a21 = _mm256_fmadd_ps(e, x1, a21);
                e = _mm256_load_ps(p3 + t); a30 = _mm256_fmadd_ps(e, x0, a30); a31 = _mm256_fmadd_ps(e, x1, a31);
            }
            double part[4][2] = {{hsum(a00), hsum(a01)}, {hsum(a10), hsum(a11)}, {hsum(a20), hsum(a21)}, {hsum(a30), hsum(a31)}};
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

static const float *pair_keys(const struct problem *P, long p) {
    return P->k + (p / P->groups) * P->k_sb + (p % P->groups) * P->k_sg;
}

static void one_pair(const struct problem *P, long p, struct scratch *w) {
    const long b = p / P->groups, g = p % P->groups, pairs = P->batch * P->groups;
    const float *q = P->q + b * P->q_sb + g * P->r * P->q_sh;
    const float *k = pair_keys(P, p), *v = P->v + b * P->v_sb + g * P->v_sg;
    for (int i = 0; i < P->r; i++) w->m[i] = -INFINITY, w->l[i] = 0;
    memset(w->acc, 0, sizeof(float) * P->r * P->dv);
    for (long kb = 0; kb < P->S; kb += BLOCK) {
        const long n = P->S - kb < BLOCK ? P->S - kb : BLOCK, rest = P->S - kb - n;
        const float *next = rest ? k + kb + BLOCK : p + 1 < pairs ? pair_keys(P, p + 1) : k;
        const long nn = rest ? (rest < BLOCK ? rest : BLOCK) : p + 1 < pairs ? (P->S < BLOCK ? P->S : BLOCK) : 0;
        block_scores(P, q, k, v, kb, n, w->s, w->bm);
        block_softmax(P, n, w);
        block_values(P, v + kb, next, n, nn, w);
    }
    float *out = P->out + (b * P->groups + g) * P->r * P->dv;
    for (int i = 0; i < P->r; i++)
        for (int j = 0; j < P->dv; j++) out[(long)i * P->dv + j] = w->acc[(long)i * P->dv + j] / w->l[i];
}

/* The step for every (batch, KV head) pair, split over `threads` OpenMP threads. Built with
   -fopenmp and loaded into a torch process, the library binds to torch's own libgomp (the same
   soname, already loaded), so the kernel runs on torch's intra-op threads: no second pool spins
   against them. Returns 0; -1 when a thread's scratch could not be allocated (out incomplete). */
int attncli_decode(const float *q, const float *k, const float *v, float *out, long batch, long groups, int r,
                   int hd, int dv, long S, long q_sb, long q_sh, long k_sb, long k_sg, long k_sd, long v_sb,
                   long v_sg, long v_sd, float scale, int threads) {
    const struct problem P = {q, k, v, out, batch, groups, S, q_sb, q_sh, k_sb, k_sg, k_sd, v_sb, v_sg, v_sd, r, hd, dv, scale};
    const long pairs = batch * groups;
    const size_t floats = ((size_t)r * (BLOCK + dv + 3) + 15) / 16 * 16; /* a multiple of 64 bytes */
    int failed = 0;
    if (threads > pairs) threads = (int)pairs;
    if (threads < 1) threads = 1;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        float *mem = aligned_alloc(64, sizeof(float) * floats);
        struct scratch w = {mem, mem + (long)r * BLOCK, mem + (long)r * (BLOCK + dv), mem + (long)r * (BLOCK + dv + 1),
                             mem + (long)r * (BLOCK + dv + 2)};
        failed = mem == 0;
#pragma omp for schedule(static)
        for (long p = 0; p < pairs; p++)
            if (mem) one_pair(&P, p, &w);
            else failed = 1;
        free(mem);
    }
    return failed ? -1 : 0;
}
