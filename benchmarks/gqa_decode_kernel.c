/* A hand-written AVX2 attempt at GQA decode's two 4-row products over the CPU cache layout
   (Kᵀ and Vᵀ: each head-dim row contiguous over the tokens, common.kv_cache_tensor), measured by
   gqa_decode_kernel.py against the BLAS path attncli runs (issue 17, acceptance 2). Not part of
   attncli: it records what a plain register-tiled kernel reaches on this CPU (docs/backends.md). */
#include <pthread.h>
#include <stddef.h>
#include <immintrin.h>

#ifndef PF
#define PF 64
#endif

/* q·Kᵀ: scores[i][k] = sum_j q[i][j] * kt[j*ldk + k] for i < r, k < S (q rows hd long, out rows S long) */
static void scores_one(const float *q, const float *kt, float *out, int r, int hd, long S, long ldk) {
    for (int i0 = 0; i0 < r; i0 += 4) {
        int ni = r - i0 < 4 ? r - i0 : 4;
        const float *q0 = q + (long)i0 * hd, *q1 = q0 + (ni > 1 ? hd : 0), *q2 = q0 + (ni > 2 ? 2 * hd : 0),
                    *q3 = q0 + (ni > 3 ? 3 * hd : 0);
        long k = 0;
        for (; k + 16 <= S; k += 16) {
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
            const float *kp = kt + k;
            for (int j = 0; j < hd; j++, kp += ldk) {
                _mm_prefetch((const char *)(kp + PF), _MM_HINT_T0);
                __m256 k0 = _mm256_loadu_ps(kp), k1 = _mm256_loadu_ps(kp + 8), b;
                b = _mm256_broadcast_ss(q0 + j); a00 = _mm256_fmadd_ps(b, k0, a00); a01 = _mm256_fmadd_ps(b, k1, a01);
                b = _mm256_broadcast_ss(q1 + j); a10 = _mm256_fmadd_ps(b, k0, a10); a11 = _mm256_fmadd_ps(b, k1, a11);
                b = _mm256_broadcast_ss(q2 + j); a20 = _mm256_fmadd_ps(b, k0, a20); a21 = _mm256_fmadd_ps(b, k1, a21);
                b = _mm256_broadcast_ss(q3 + j); a30 = _mm256_fmadd_ps(b, k0, a30); a31 = _mm256_fmadd_ps(b, k1, a31);
            }
            float *o = out + (long)i0 * S + k;
            _mm256_storeu_ps(o, a00); _mm256_storeu_ps(o + 8, a01);
            if (ni > 1) { _mm256_storeu_ps(o + S, a10); _mm256_storeu_ps(o + S + 8, a11); }
            if (ni > 2) { _mm256_storeu_ps(o + 2 * S, a20); _mm256_storeu_ps(o + 2 * S + 8, a21); }
            if (ni > 3) { _mm256_storeu_ps(o + 3 * S, a30); _mm256_storeu_ps(o + 3 * S + 8, a31); }
        }
        for (; k < S; k++)
            for (int i = 0; i < ni; i++) {
                float s = 0;
                for (int j = 0; j < hd; j++) s += q0[(long)i * hd + j] * kt[(long)j * ldk + k];
                out[(long)(i0 + i) * S + k] = s;
            }
    }
}

static inline float hsum(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

#define KB 1024
/* P·V: out[i][j] = sum_k p[i][k] * vt[j*ldv + k] for i < r, j < hd (p rows S long) */
static void pv_one(const float *p, const float *vt, float *out, int r, int hd, long S, long ldv) {
    for (int i0 = 0; i0 < r; i0 += 4) {
        int ni = r - i0 < 4 ? r - i0 : 4;
        const float *p0 = p + (long)i0 * S, *p1 = p0 + (ni > 1 ? S : 0), *p2 = p0 + (ni > 2 ? 2 * S : 0),
                    *p3 = p0 + (ni > 3 ? 3 * S : 0);
        float acc[4][512];
        for (int i = 0; i < 4; i++) for (int j = 0; j < hd; j++) acc[i][j] = 0;
        for (long kb = 0; kb < S; kb += KB) {
            long ke = kb + KB < S ? kb + KB : S, kv = kb + ((ke - kb) / 8) * 8;
            for (int j = 0; j < hd; j += 2) {
                const float *v0 = vt + (long)j * ldv, *v1 = j + 1 < hd ? v0 + ldv : v0;
                __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
                for (long k = kb; k < kv; k += 8) {
                    _mm_prefetch((const char *)(v0 + k + PF), _MM_HINT_T0);
                    _mm_prefetch((const char *)(v1 + k + PF), _MM_HINT_T0);
                    __m256 x0 = _mm256_loadu_ps(v0 + k), x1 = _mm256_loadu_ps(v1 + k), w;
                    w = _mm256_loadu_ps(p0 + k); a00 = _mm256_fmadd_ps(w, x0, a00); a01 = _mm256_fmadd_ps(w, x1, a01);
                    w = _mm256_loadu_ps(p1 + k); a10 = _mm256_fmadd_ps(w, x0, a10); a11 = _mm256_fmadd_ps(w, x1, a11);
                    w = _mm256_loadu_ps(p2 + k); a20 = _mm256_fmadd_ps(w, x0, a20); a21 = _mm256_fmadd_ps(w, x1, a21);
                    w = _mm256_loadu_ps(p3 + k); a30 = _mm256_fmadd_ps(w, x0, a30); a31 = _mm256_fmadd_ps(w, x1, a31);
                }
                float t[4][2] = {{hsum(a00), hsum(a01)}, {hsum(a10), hsum(a11)}, {hsum(a20), hsum(a21)}, {hsum(a30), hsum(a31)}};
                for (long k = kv; k < ke; k++) {
                    const float *pr[4] = {p0, p1, p2, p3};
                    for (int i = 0; i < 4; i++) { t[i][0] += pr[i][k] * v0[k]; t[i][1] += pr[i][k] * v1[k]; }
                }
                for (int i = 0; i < 4; i++) { acc[i][j] += t[i][0]; if (j + 1 < hd) acc[i][j + 1] += t[i][1]; }
            }
        }
        for (int i = 0; i < ni; i++) for (int j = 0; j < hd; j++) out[(long)(i0 + i) * hd + j] = acc[i][j];
    }
}

struct job { int kind, r, hd; long S, ld, pstart, pend; const float *a, *m; float *out; long a_stride, m_stride, o_stride; };

static void *work(void *arg) {
    struct job *jb = arg;
    for (long p = jb->pstart; p < jb->pend; p++) {
        if (jb->kind == 0)
            scores_one(jb->a + p * jb->a_stride, jb->m + p * jb->m_stride, jb->out + p * jb->o_stride, jb->r, jb->hd, jb->S, jb->ld);
        else
            pv_one(jb->a + p * jb->a_stride, jb->m + p * jb->m_stride, jb->out + p * jb->o_stride, jb->r, jb->hd, jb->S, jb->ld);
    }
    return 0;
}

/* kind 0: out = q·Kᵀ, a = q (pairs, r, hd), m = Kᵀ (pairs, hd, ld), out (pairs, r, S);
   kind 1: out = P·V, a = P (pairs, r, S), m = Vᵀ (pairs, hd, ld), out (pairs, r, hd).
   Pairs are split over `threads` pthreads. Returns 0, or -1 (no thread), -2 (hd > 512). */
int attncli_group_product(int kind, const float *a, const float *m, float *out, long pairs, int r, int hd, long S,
                          long ld, long m_stride, int threads) {
    if (hd > 512) return -2;
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    if (threads > pairs) threads = (int)pairs;
    struct job jobs[64];
    pthread_t tid[64];
    long a_stride = kind == 0 ? (long)r * hd : (long)r * S, o_stride = kind == 0 ? (long)r * S : (long)r * hd;
    for (int t = 0; t < threads; t++)
        jobs[t] = (struct job){kind, r, hd, S, ld, pairs * t / threads, pairs * (t + 1) / threads, a, m, out,
                               a_stride, m_stride, o_stride};
    for (int t = 1; t < threads; t++)
        if (pthread_create(&tid[t], 0, work, &jobs[t])) return -1;
    work(&jobs[0]);
    for (int t = 1; t < threads; t++) pthread_join(tid[t], 0);
    return 0;
}
