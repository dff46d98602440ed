/* kern_transpose16.h — a 16x16 transpose of 32-bit elements in AVX-512 registers,
 * shared by gemm_amx.c and gemm_dpbf16.c. Include it after <immintrin.h> inside a
 * region compiled for AVX-512 F (#pragma GCC target); not a public header. */
#ifndef PF_KERN_TRANSPOSE16_H
#define PF_KERN_TRANSPOSE16_H

/* out[c] = column c of the 16 rows in[0..15] (in is not modified). */
static inline void pf_transpose16(const __m512 in[16], __m512 out[16]) {
  __m512 r[16], t[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(in[2 * i], in[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(in[2 * i], in[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) { /* r[4i+j], 128-bit lane L: rows 4i..4i+3 of column 4L+j */
    const __m512d a0 = _mm512_castps_pd(t[4 * i]), a1 = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d a2 = _mm512_castps_pd(t[4 * i + 2]), a3 = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
  }
  for (int j = 0; j < 4; j++) {
    t[j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
    t[4 + j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xdd);
    t[8 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
    t[12 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xdd);
  }
  for (int j = 0; j < 4; j++) {
    out[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
    out[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
    out[4 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0x88);
    out[12 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0xdd);
  }
}

#endif
