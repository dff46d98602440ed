/* kernels.h — numeric kernels for the transformer forward pass.
 *
 * Three groups, all float32 activations:
 *   1. set-up: pf_kernels_init picks the BLIS sub-configuration ("arch") from
 *      cpuid and the thread count; pf_kernels_describe says what was chosen.
 *   2. linear layers: Y[M,N] = X[M,K] · W[N,K]^T (+ bias) with W stored as
 *      F32, BF16 or F16. Large M goes through BLIS sgemm (half-precision W is
 *      widened panel by panel into a reusable scratch buffer); M <= PF_GEMV_MAX_M
 *      (decode, small batches) goes through a GEMV that streams W once (AVX-512
 *      or AVX2).
 *   3. row kernels: RMSNorm, SiLU·mul, RoPE (HF rotate-half layout), softmax,
 *      log-softmax, dot, axpy.
 * Every optimised kernel has a plain-C reference twin `pf_ref_*` (bottom of this
 * file) with the same contract; tests compare the two.
 *
 * Conventions
 *  - Shapes are row-major, PyTorch order ([out, in] for a weight). A "row stride"
 *    `ld*` is in elements, not bytes, and is >= the row length.
 *  - Kernels never allocate inside an OpenMP region and never print. Functions
 *    that can fail return pf_status and fill the pf_err passed last (may be NULL).
 *    The `void` kernels have no failure mode: their preconditions are documented
 *    and their arguments are trusted (they are called in the inner loops).
 *  - Outputs must not overlap inputs unless a function says "in place".
 *  - Kernels use all OpenMP threads (omp_get_max_threads()) for large inputs and
 *    are not meant to be called from inside another parallel region.
 */
#ifndef PF_KERNELS_H
#define PF_KERNELS_H

#include "pf.h"
#include "tensor.h"

/* for (int64_t i = 0; i < n; i++) { body } on OpenMP's threads (static schedule)
 * when `par`, else on this thread outside any OpenMP construct: a region with a
 * false `if` clause still builds a team of one, 1.2-1.7 us per call in this
 * project's 2-vCPU VM, more than the work of a 2048-wide RMSNorm (a decode step
 * makes ~7 such calls per layer; bench/README.md "The work between products"). */
#define PF_PAR_FOR(par, i, n, ...)                                                                 \
  do {                                                                                             \
    const int64_t pf_par_for_n_ = (n);                                                             \
    if (par) {                                                                                     \
      _Pragma("omp parallel for schedule(static)") for (int64_t i = 0; i < pf_par_for_n_; i++) {   \
        __VA_ARGS__;                                                                               \
      }                                                                                            \
    } else                                                                                         \
      for (int64_t i = 0; i < pf_par_for_n_; i++) {                                                \
        __VA_ARGS__;                                                                               \
      }                                                                                            \
  } while (0)

/* ------------------------------------------------------------------------- */
/* 1. set-up                                                                 */
/* ------------------------------------------------------------------------- */

/* Choose and initialise the BLIS architecture and thread count. Call it early in
 * main (it calls setenv, so before other threads read the environment); every
 * fallible kernel entry point also calls it. Idempotent and thread-safe
 * (pthread_once): later calls return the first call's status and message.
 *
 * Arch choice: if the user set BLIS_ARCH_TYPE it is respected. BLIS 0.9 reads
 * that variable as an integer arch_t id (strtol: a name like "generic" silently
 * becomes 0 = skx), so a name ("skx", "haswell", "generic", ...) is translated to
 * its id here. An id/name that this BLIS build lacks or this CPU cannot run is
 * PF_ERR_INVALID (BLIS itself would abort). Otherwise pfrun chooses from cpuid:
 * AVX-512 F+BW+DQ+VL -> skx; AVX2+FMA -> zen3/zen2/zen on AMD, haswell elsewhere;
 * AVX -> sandybridge; else generic. After bli_init the arch BLIS actually selected
 * is read back (bli_arch_query_id) and recorded.
 * Threads: OpenMP's count (OMP_NUM_THREADS, else the affinity mask), capped at a
 * cgroup CPU quota below it unless OMP_NUM_THREADS was set (omp_set_num_threads on
 * the calling thread: call init from the main thread); BLIS_NUM_THREADS if the
 * user set it, else the same count for BLIS. */
pf_status pf_kernels_init(pf_err *err);

/* The CPUs this process can use (runtime/kernels/cpus.c). */
typedef struct pf_cpu_budget {
  int online;          /* CPUs online */
  int affinity;        /* CPUs in the affinity mask */
  double quota;        /* the cgroup CPU quota in CPUs (1.5 = 150 ms per 100 ms); 0 = none */
  char quota_src[256]; /* the file it came from, "" if none */
  int cpus;            /* min(affinity, quota rounded up), at least 1 */
} pf_cpu_budget;

/* Fill b for this process. Best effort: unreadable cgroup files mean no quota. */
void pf_cpu_budget_get(pf_cpu_budget *b);

/* The smallest cgroup CPU quota (in CPUs) over the cgroup mounts of
 * root/proc/self/mountinfo, for this process's cgroups (root/proc/self/cgroup)
 * and their parents up to each mount point; 0 if none. root "" is the real
 * system, a directory a fixture tree (tests). src (may be NULL with cap 0): the
 * file the quota came from, relative to root. */
double pf_cpu_quota_read(const char *root, char *src, size_t src_cap);

/* Whole CPUs for a quota: rounded up (1.5 -> 2), at least 1; 0 for no quota. */
int pf_cpus_from_quota(double quota);

/* Threads for the kernels: omp_default (OpenMP's choice, from the affinity mask or
 * OMP_NUM_THREADS), capped at b->cpus when a quota is below it and the user did
 * not set OMP_NUM_THREADS (user_set). note: why it was capped, or that the
 * threads exceed the CPUs ("" otherwise). */
int pf_threads_choose(int omp_default, int user_set, const pf_cpu_budget *b, char *note,
                      size_t cap);

/* One line for `pfrun --version`, e.g.
 * "BLIS 0.9.0, arch skx (selected from cpuid: AMD Zen 5, avx512f/bw/dq/vl/bf16),
 *  2 threads, gemv avx512". Static storage, never NULL; initialises on first use
 * (on failure the line says "kernels not initialised: <reason>"). */
const char *pf_kernels_describe(void);

/* Instruction-set level used by the hand-written kernels (GEMV, row kernels). */
typedef enum pf_isa { PF_ISA_SCALAR = 0, PF_ISA_AVX2 = 1, PF_ISA_AVX512 = 2 } pf_isa;

typedef struct pf_kernels_info {
  int blis_arch_id;      /* arch_t id BLIS reports after init, -1 before */
  char blis_arch[24];    /* bli_arch_string of it: "skx", "haswell", "generic" */
  char blis_version[24]; /* "0.9.0" */
  char arch_source[160]; /* "cpuid: AMD Zen 5" or "BLIS_ARCH_TYPE=3" */
  char cpu[48];          /* "AMD Zen 5", "Intel family 6 model 0xa7" */
  char features[48];     /* "avx512f/bw/dq/vl/bf16", "avx2/fma/f16c" */
  int threads;           /* BLIS threads (= OpenMP threads unless the user said) */
  int omp_threads;       /* OpenMP threads (pf_threads_choose) */
  int cpus;              /* CPUs this process can use (pf_cpu_budget) */
  char threads_note[320]; /* "capped at the cgroup CPU quota ...", "... oversubscribed ...", "" */
  pf_isa isa;            /* best ISA the CPU + OS support */
} pf_kernels_info;

/* Filled by init; NULL if init failed. Static storage. */
const pf_kernels_info *pf_kernels_info_get(void);

/* Parse a BLIS_ARCH_TYPE value (decimal id or config name, case-insensitive) and
 * check that this BLIS build has the config and this CPU can run it. Exposed for
 * tests; pf_kernels_init uses it. */
pf_status pf_kernels_parse_arch(const char *value, int *arch_id, pf_err *err);

/* ISA the hand-written kernels currently use. */
pf_isa pf_kernels_isa(void);
/* Cap the ISA (tests and benchmarks use it to exercise the AVX2/scalar paths):
 * the effective level is min(want, what the CPU supports). Returns the previous
 * level. Not thread-safe against running kernels. */
pf_isa pf_kernels_set_isa(pf_isa want);
const char *pf_isa_name(pf_isa isa); /* "scalar", "avx2", "avx512" */

/* Matmul precision of linear layers with BF16 weights and more than
 * PF_GEMV_MAX_M input rows (prefill, calibration, perplexity, bias analysis):
 *   PF_MATMUL_BF16: the activations are rounded to BF16 (round to nearest even)
 *     and multiplied with float32 accumulation — what PyTorch does for a BF16
 *     model. On AMX tiles (TDPBF16PS) where the CPU has AMX-BF16 and Linux
 *     grants it; else with AVX512-BF16 (VDPBF16PS, e.g. AMD Zen 4/5) while the
 *     ISA level (pf_kernels_set_isa) is avx512; elsewhere this falls back to the
 *     float32 path.
 *   PF_MATMUL_F32: the weights are widened to float32 and BLIS multiplies them
 *     with float32 activations (more accurate; ~2-4x slower on AMX CPUs, ~1.5x
 *     on AVX512-BF16 ones).
 * The default is BF16; the environment variable PFRUN_MATMUL=f32|bf16 (read by
 * init) or pf_kernels_set_matmul changes it. F32 and F16 weights, the GEMV path
 * (decode) and attention always compute in float32. */
typedef enum pf_matmul { PF_MATMUL_BF16 = 0, PF_MATMUL_F32 = 1 } pf_matmul;

/* Returns the previous setting. Not thread-safe against running kernels. */
pf_matmul pf_kernels_set_matmul(pf_matmul want);
pf_matmul pf_kernels_matmul(void);
/* 1 if the AMX BF16 path is available on this machine (init succeeded). */
int pf_kernels_have_amx(void);
/* 1 if a bf16 matmul path (AMX, or AVX512-BF16 at the current ISA level) is
 * available, whatever the setting. */
int pf_kernels_have_bf16_matmul(void);
/* The precision BF16 weights really get: the setting where a bf16 path is
 * available, else PF_MATMUL_F32. */
pf_matmul pf_kernels_matmul_effective(void);
/* The path BF16 weights with many rows take now: "bf16 amx", "bf16 avx512-bf16"
 * or "f32" (results.json "matmul_path"). Static storage. */
const char *pf_kernels_matmul_path(void);
/* "bf16", "f32"; parse: the same names (case-insensitive), PF_ERR_INVALID otherwise. */
const char *pf_matmul_name(pf_matmul m);
pf_status pf_matmul_parse(const char *s, pf_matmul *out, pf_err *err);

/* ------------------------------------------------------------------------- */
/* 2. linear layers                                                          */
/* ------------------------------------------------------------------------- */

/* Inputs with at most this many rows use the GEMV path (weights streamed once, in
 * groups of 4 rows over cache-sized blocks of W). Measured with bench_gemm on an
 * 8192x2048 weight: the GEMV path wins up to m ~ 32 for BF16 and F32, because the
 * GEMM path pays a fixed cost for widening and packing all of W. */
#define PF_GEMV_MAX_M 16

/* With BF16 weights and the bf16 matmul precision on an AMX CPU, inputs with more
 * than this many rows use the AMX tiles instead (bench_gemm, 8192x2048 weight:
 * at m = 8 AMX takes 1.06 ms against the GEMV's 1.68 ms; at m = 4, 1.06 against
 * 0.89). Decoding one token at a time stays on the GEMV. */
#define PF_AMX_MIN_M 4

/* The same for the AVX512-BF16 path (CPUs without AMX). It pays a fixed cost for
 * packing all of W, so it only wins once the GEMV has to stream W twice or more
 * (bench/README.md, AMD Zen 5, 8192x2048 weight, one thread, best of 20: m = 4
 * GEMV 3.69 ms vs 4.60 ms; m = 6: 4.54 vs 3.52 ms). */
#define PF_DPBF16_MIN_M 4

/* The smallest row count from which a linear layer takes the same kernel whatever the
 * number of rows. Every kernel computes a row from that row and W alone, in an order that
 * does not depend on the other rows, so from this size on a row's result has the same bits
 * whether its batch is multiplied alone or stacked with others (layer-major passes stack
 * small batches; forward_pass.c). */
int64_t pf_kern_uniform_min_m(void);

/* Reusable scratch memory for the GEMM path (half-precision weight panels widened
 * to float32, a converted bias). It grows to the largest request and is kept, so
 * steady-state calls allocate nothing and touch no fresh pages. One workspace must
 * not be used by two calls at the same time. */
typedef struct pf_workspace pf_workspace;

pf_status pf_workspace_new(pf_workspace **out, pf_err *err);
void pf_workspace_free(pf_workspace *ws);          /* NULL ok */
size_t pf_workspace_bytes(const pf_workspace *ws); /* current capacity */

/* Y[m, n] (row stride ldy) = X[m, k] (row stride ldx) · W[n, k]^T (row stride ldw,
 * dtype wdt) + bias[n] (NULL: none) + beta * Y (beta 0: Y is not read, may hold
 * garbage). W is F32, BF16 or F16 (raw little-endian bits, e.g. mmap'd safetensors).
 * `ws` NULL uses a kernel-owned workspace, kept for the life of the process (calls
 * that need it serialise on a mutex; the GEMV path and F32 weights need none).
 * Y must not overlap X, W or bias. m == 0 or n == 0 is a no-op; k == 0 gives bias.
 * Errors: PF_ERR_INVALID (negative size, ld too small, NULL data), PF_ERR_NOMEM. */
pf_status pf_gemm_xwt(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, const void *w,
                      pf_dtype wdt, int64_t ldw, const float *bias, float beta, float *y,
                      int64_t ldy, pf_workspace *ws, pf_err *err);

/* The tensor form: y[m, N] = x[m, K] · w^T + bias, with w a 2-D tensor [N, K]
 * (any dtype) and bias NULL or a 1-D tensor [N] (any dtype). x and y are dense
 * (row strides K and N). Errors name what was expected and found:
 * "linear: weight: expected shape [N, 2048], got [8192, 1024]". */
pf_status pf_linear(const float *x, int64_t m, int64_t k, const pf_tensor *w, const pf_tensor *bias,
                    float *y, pf_workspace *ws, pf_err *err);

/* n (1..4) linear layers on the same x: y[i][m, N_i] = x[m, K] · w[i]^T + bias[i]
 * (bias[i] NULL: none), the same results as n calls of pf_linear. For decoding
 * (m <= 4, weights on the GEMV path, no bias or a float32 one) the products run
 * in one parallel region, a thread going on to the next weight without waiting
 * for the others (q/k/v, gate/up of a layer); otherwise one call after the other.
 * Errors as pf_linear's, for the first weight that has one. */
pf_status pf_linear_many(const float *x, int64_t m, int64_t k, int n, const pf_tensor *const w[],
                         const pf_tensor *const bias[], float *const y[], pf_workspace *ws,
                         pf_err *err);

/* Plain float32 GEMM, row-major, for attention (Q·K^T, P·V):
 * C[m, n] = alpha * op(A) · op(B) + beta * C, op(A) is [m, k] (A stored [m, k] with
 * row stride lda, or [k, m] when trans_a), op(B) is [k, n] (B stored [k, n], or
 * [n, k] when trans_b). beta 0: C is not read. Errors: PF_ERR_INVALID for bad
 * sizes/strides, or init's error. */
pf_status pf_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                   int64_t ldc, pf_err *err);

/* ------------------------------------------------------------------------- */
/* 3. row kernels                                                            */
/* ------------------------------------------------------------------------- */

/* RMSNorm over each of `rows` rows of length n (HF LlamaRMSNorm, float32):
 * y[r, :] = w * (x[r, :] / sqrt(mean(x[r, :]^2) + eps)). x, y: [rows, n] dense,
 * w: [n]. In place (y == x) is allowed. */
void pf_rmsnorm(float *y, const float *x, const float *w, int64_t rows, int64_t n, float eps);

/* SwiGLU: out[i] = silu(g[i]) * u[i], silu(g) = g / (1 + exp(-g)). In place
 * (out == g or out == u) is allowed. */
void pf_silu_mul(float *out, const float *g, const float *u, int64_t n);

/* MLP activations (act.c), by Hugging Face ACT2FN name. */
typedef enum pf_act {
  PF_ACT_SILU,       /* silu, swish */
  PF_ACT_GELU_TANH,  /* gelu_new, gelu_pytorch_tanh */
  PF_ACT_GELU_ERF,   /* gelu (exact) */
  PF_ACT_GELU_FAST,  /* gelu_fast */
  PF_ACT_QUICK_GELU, /* quick_gelu */
  PF_ACT_RELU,       /* relu */
  PF_ACT_TANH,       /* tanh */
  PF_ACT_LINEAR      /* linear: the identity */
} pf_act;
/* PF_ERR_UNSUPPORTED naming the accepted names for anything else. */
pf_status pf_act_parse(const char *name, pf_act *out, pf_err *err);
/* x[i] = act(x[i]) in place. */
void pf_act_apply(pf_act a, float *x, int64_t n);
/* out[i] = act(g[i]) * u[i] (GLU); in place (out == g or u) allowed. */
void pf_act_mul(pf_act a, float *out, const float *g, const float *u, int64_t n);
/* LayerNorm of `rows` rows of n: (x - mean) / sqrt(var + eps) * w + b (biased
 * variance; b may be NULL). y may equal x. */
void pf_layernorm(float *y, const float *x, const float *w, const float *b, int64_t rows,
                  int64_t n, float eps);
/* x = cap * tanh(x / cap) (Gemma 2/3 soft-caps; three float operations as HF). */
void pf_softcap(float *x, int64_t n, float cap);

/* In-place softmax of one row x[n] (max-subtracted; -INFINITY entries give 0; at
 * least one entry must be finite). */
void pf_softmax_row(float *x, int64_t n);
/* pf_softmax_row on `rows` rows of length n with row stride ld, OpenMP over rows. */
void pf_softmax_rows(float *x, int64_t rows, int64_t n, int64_t ld);
/* log(sum(exp(x[i]))) computed stably (float32 lanes, double reduction). */
double pf_logsumexp(const float *x, int64_t n);
/* out[i] = x[i] - logsumexp(x); returns the logsumexp. In place allowed. */
double pf_log_softmax_row(float *out, const float *x, int64_t n);

/* sum a[i] * b[i] (float32 lanes). */
float pf_dot(const float *a, const float *b, int64_t n);
/* out[h] = pf_dot(a[h], b, n) for h < 4, the same bits, b read once for the four
 * (decode attention: the query heads that share a key). */
void pf_dot4(const float *const a[4], const float *b, int64_t n, float out[4]);
/* y[i] += alpha * x[i]. */
void pf_axpy(float *y, float alpha, const float *x, int64_t n);

/* ---- RoPE (Hugging Face layout: rotate_half on the two halves of a head) ---- */

typedef enum pf_rope_type {
  PF_ROPE_DEFAULT = 0, /* rope_scaling absent or rope_type "default" */
  PF_ROPE_LINEAR = 1,  /* inv_freq / factor */
  PF_ROPE_LLAMA3 = 2,  /* transformers _compute_llama3_parameters */
  PF_ROPE_YARN = 3,    /* _compute_yarn_parameters (Qwen2.5 long context) */
  PF_ROPE_LONGROPE = 4 /* _compute_longrope_parameters (Phi-3.5, Phi-4-mini): one table per
                          factor list, the forward picks by sequence length */
} pf_rope_type;

/* Names copy config.json: rope_theta, head_dim and the rope_scaling keys. */
typedef struct pf_rope_params {
  pf_rope_type rope_type;
  double rope_theta;
  int64_t head_dim;                         /* even, > 0 */
  double factor;                            /* linear, llama3 */
  double low_freq_factor;                   /* llama3 */
  double high_freq_factor;                  /* llama3, > low_freq_factor */
  int64_t original_max_position_embeddings; /* llama3 */
  int64_t rotary_dim; /* partial rotary (Phi-3, GPT-NeoX): only the first rotary_dim
                         features of each head rotate, halves rotary_dim/2 apart, and
                         inv_freq uses rotary_dim; 0 = head_dim (full rotary) */
  double attention_factor;  /* yarn, longrope: cos and sin are multiplied by it; 0 = 1 */
  double beta_fast, beta_slow; /* yarn (0 = 32 and 1) */
  int64_t max_position_embeddings; /* yarn: the correction range's context length */
  const double *ext_factors; /* longrope: [rotary width / 2] (borrowed), inv_freq[j] =
                                1 / (ext[j] * theta^(2j/d)) */
} pf_rope_params;

/* Defaults: type default, theta 10000, head_dim 128; factor, low/high_freq_factor and
 * original_max_position_embeddings hold Llama 3.1's rope_scaling (8, 1, 4, 8192), so
 * they only matter once rope_type is changed. */
pf_rope_params pf_rope_default_params(void);
/* "default", "linear", "llama3", "yarn", "longrope" (and the legacy "su") -> type;
 * PF_ERR_UNSUPPORTED naming the accepted ones for others. */
pf_status pf_rope_type_parse(const char *s, pf_rope_type *out, pf_err *err);

/* inv_freq[rotary width/2] as transformers computes it (float32 arithmetic). */
pf_status pf_rope_inv_freq(const pf_rope_params *p, float *inv_freq, pf_err *err);

/* Precomputed cos/sin for positions [0, max_pos). HF's emb = cat(freqs, freqs), so
 * only the first half is stored. */
typedef struct pf_rope_table {
  int64_t head_dim; /* distance between heads in pf_rope_apply */
  int64_t rot_dim;  /* rotated features per head (<= head_dim) */
  int64_t max_pos;
  float *inv_freq; /* [rot_dim/2], owned */
  float *cos;      /* [max_pos, rot_dim/2], owned: cos((float)(pos * inv_freq[i])) */
  float *sin;      /* [max_pos, rot_dim/2], owned */
} pf_rope_table;

pf_status pf_rope_table_new(const pf_rope_params *p, int64_t max_pos, pf_rope_table **out,
                            pf_err *err);
void pf_rope_table_free(pf_rope_table *t); /* NULL ok */

/* Rotate q or k in place: x is [n_tok, n_heads, head_dim] with row stride ld
 * between tokens (>= n_heads*head_dim); token t is at position pos[t].
 * x1 = x[:half], x2 = x[half:2*half] with half = rot_dim/2; x1' = x1*cos - x2*sin;
 * x2' = x2*cos + x1*sin; features rot_dim.. of a head are left as they are.
 * Errors: PF_ERR_INVALID when a position is outside [0, max_pos) (checked before
 * anything is written). */
pf_status pf_rope_apply(const pf_rope_table *t, float *x, int64_t n_tok, int64_t n_heads,
                        int64_t ld, const int64_t *pos, pf_err *err);

/* ------------------------------------------------------------------------- */
/* 4. reference twins: naive loops, double accumulation, no OpenMP/SIMD.      */
/*    Same contracts as above (errors: none; arguments trusted).             */
/* ------------------------------------------------------------------------- */

void pf_ref_gemm_xwt(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, const void *w,
                     pf_dtype wdt, int64_t ldw, const float *bias, float beta, float *y,
                     int64_t ldy);
/* pf_ref_gemm_xwt with every x rounded to BF16 first: the bf16 matmul path. */
void pf_ref_gemm_xwt_bf16x(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx,
                           const void *w, pf_dtype wdt, int64_t ldw, const float *bias, float beta,
                           float *y, int64_t ldy);
/* x rounded to the nearest BF16 value, ties to even (as a float). */
float pf_ref_round_bf16(float x);
void pf_ref_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc);
void pf_ref_rmsnorm(float *y, const float *x, const float *w, int64_t rows, int64_t n, float eps);
void pf_ref_silu_mul(float *out, const float *g, const float *u, int64_t n);
void pf_ref_softmax_row(float *x, int64_t n);
double pf_ref_logsumexp(const float *x, int64_t n);
double pf_ref_log_softmax_row(float *out, const float *x, int64_t n);
float pf_ref_dot(const float *a, const float *b, int64_t n);
void pf_ref_axpy(float *y, float alpha, const float *x, int64_t n);
/* Rotates with angles pos[t] * inv_freq[i] computed per element (no table). */
void pf_ref_rope_apply(const float *inv_freq, int64_t head_dim, float *x, int64_t n_tok,
                       int64_t n_heads, int64_t ld, const int64_t *pos);
/* Plain scalar decoders (bit manipulation, no F16C), used by the twins. */
float pf_ref_bf16_to_f32(uint16_t h);
float pf_ref_f16_to_f32(uint16_t h);

#endif
