/* act.c — the row kernels other model families need: MLP activations by their
 * Hugging Face ACT2FN names, LayerNorm with bias (GPT-2, GPT-NeoX) and the
 * c·tanh(x/c) soft-cap (Gemma 2/3). Plain loops, one OpenMP pragma each; SiLU
 * keeps its vectorised kernel in rowops.c.
 *
 * Formulas (../shared/reference/arch-gpt2-neox.md §5.2, arch-gemma-phi3.md §5.1):
 *   gelu_new / gelu_pytorch_tanh: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
 *   gelu:       0.5·x·(1 + erf(x/√2))
 *   gelu_fast:  0.5·x·(1 + tanh(0.7978845608·x·(1 + 0.044715·x²)))
 *   quick_gelu: x·sigmoid(1.702·x)
 *   tanh, linear (the identity): as transformers' ACT2FN
 * evaluated in double per element and rounded once (the reference is float64;
 * PyTorch's float32 kernels differ in the last bits, far inside every tolerance).
 */
#include <math.h>
#include <string.h>

#include "kern_internal.h"

static const struct {
  const char *name;
  pf_act act;
} act_names[] = {
    {"silu", PF_ACT_SILU},
    {"swish", PF_ACT_SILU},
    {"gelu_pytorch_tanh", PF_ACT_GELU_TANH},
    {"gelu_new", PF_ACT_GELU_TANH},
    {"gelu", PF_ACT_GELU_ERF},
    {"gelu_fast", PF_ACT_GELU_FAST},
    {"quick_gelu", PF_ACT_QUICK_GELU},
    {"relu", PF_ACT_RELU},
    {"tanh", PF_ACT_TANH},
    {"linear", PF_ACT_LINEAR},
};

pf_status pf_act_parse(const char *name, pf_act *out, pf_err *err) {
  for (size_t i = 0; name && i < sizeof act_names / sizeof act_names[0]; i++)
    if (!strcmp(name, act_names[i].name)) {
      *out = act_names[i].act;
      return PF_OK;
    }
  return pf_err_set(err, PF_ERR_UNSUPPORTED,
                    "activation: expected one of silu, swish, gelu, gelu_new, gelu_pytorch_tanh, "
                    "gelu_fast, quick_gelu, relu, tanh, linear, got \"%s\"",
                    name ? name : "(null)");
}

static inline float act1(pf_act a, float xf) {
  const double x = xf;
  switch (a) {
  case PF_ACT_GELU_TANH:
    return (float)(0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))));
  case PF_ACT_GELU_ERF:
    return (float)(0.5 * x * (1.0 + erf(x * 0.7071067811865476)));
  case PF_ACT_GELU_FAST:
    return (float)(0.5 * x * (1.0 + tanh(0.7978845608 * x * (1.0 + 0.044715 * x * x))));
  case PF_ACT_QUICK_GELU:
    return (float)(x / (1.0 + exp(-1.702 * x)));
  case PF_ACT_RELU:
    return xf > 0.0f ? xf : 0.0f;
  case PF_ACT_TANH:
    return (float)tanh(x);
  case PF_ACT_LINEAR:
    return xf;
  default:
    return (float)(x / (1.0 + exp(-x)));
  }
}

void pf_act_apply(pf_act a, float *x, int64_t n) {
  PF_PAR_FOR(n >= PF_KERN_PAR_MIN, i, n, x[i] = act1(a, x[i]));
}

void pf_act_mul(pf_act a, float *out, const float *g, const float *u, int64_t n) {
  if (a == PF_ACT_SILU) {
    pf_silu_mul(out, g, u, n);
    return;
  }
  PF_PAR_FOR(n >= PF_KERN_PAR_MIN, i, n, out[i] = act1(a, g[i]) * u[i]);
}

static void layernorm_row(float *yr, const float *xr, const float *w, const float *b, int64_t n,
                          float eps) {
  double mean = 0, var = 0;
  for (int64_t i = 0; i < n; i++)
    mean += xr[i];
  mean /= (double)n;
  for (int64_t i = 0; i < n; i++)
    var += ((double)xr[i] - mean) * ((double)xr[i] - mean);
  const double inv = 1.0 / sqrt(var / (double)n + (double)eps);
  for (int64_t i = 0; i < n; i++)
    yr[i] = (float)(((double)xr[i] - mean) * inv) * w[i] + (b ? b[i] : 0.0f);
}

void pf_layernorm(float *y, const float *x, const float *w, const float *b, int64_t rows,
                  int64_t n, float eps) {
  PF_PAR_FOR(rows > 1 && rows * n >= PF_KERN_PAR_MIN, r, rows,
             layernorm_row(y + r * n, x + r * n, w, b, n, eps));
}

void pf_softcap(float *x, int64_t n, float cap) {
  for (int64_t i = 0; i < n; i++)
    x[i] = tanhf(x[i] / cap) * cap;
}
