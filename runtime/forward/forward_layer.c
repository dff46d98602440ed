/* forward_layer.c — one decoder layer of every supported family (eval mode),
 * shared by the full forward and by KV-cache decoding. In canonical names:
 *
 *   a  = o_proj(attn(rope(qk_norm(q_proj(n1))), rope(qk_norm(k_proj(n1))), v_proj(n1)))
 *   h  = x + post(a)                       post = attn_post_norm (Gemma 2/3) or identity
 *   m  = down_proj(act(gate_proj(n2)) * up_proj(n2))      GLU MLP
 *      | down_proj(act(up_proj(n2)))                      plain MLP (GPT-2 fc, NeoX)
 *   x' = h + post(m)                       post = mlp_post_norm (Gemma 2/3)
 *   with n1 = norm1(x), n2 = norm2(h); norms are RMSNorm, Gemma's RMSNorm·(1+w) or
 *   LayerNorm with bias (arch.h). GPT-NeoX's parallel residual instead computes
 *   x' = x + (m + a) with n2 = norm2(x). Biases wherever the layer has them.
 *
 * Taps fire in pf_tap_point order as their values become available; each tap
 * hands out a runner buffer as it is at that moment (no copies): the gate
 * buffer is overwritten by act(gate) * up only after the gate and up taps ran,
 * and down_proj / mlp_output are one buffer.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "forward_int.h"

int pf_fwd_tap_wanted(const pf_taps *taps, pf_tap_point p, int64_t layer) {
  if (!taps || !taps->fn || !(taps->points & (1u << p))) return 0;
  return !taps->layers || taps->layers[layer];
}

static pf_status tap(pf_forward *f, const pf_fwd_step *st, pf_tap_point p, int64_t l,
                     const float *data, int64_t width, pf_err *err) {
  if (!pf_fwd_tap_wanted(st->taps, p, l)) return PF_OK;
  pf_tap_event ev = {.point = p,
                     .layer = l,
                     .batch = st->batch,
                     .seq = st->seq,
                     .width = width,
                     .data = data,
                     .mask = f->mask,
                     .index = st->index};
  pf_status s = PF_OK;
  if (!st->n_members) s = st->taps->fn(st->taps->user_data, &ev, err);
  for (int64_t i = 0, row = 0; !s && i < st->n_members; row += st->members[i++].batch) {
    ev.batch = st->members[i].batch; /* a group: each member on its own rows */
    ev.index = st->members[i].index;
    ev.data = data + row * st->seq * width;
    ev.mask = f->mask + row * st->seq;
    s = st->taps->fn(st->taps->user_data, &ev, err);
  }
  if (s == PF_OK) return PF_OK;
  if (err && err->code == PF_OK) pf_err_set(err, s, "the callback returned %d", (int)s);
  if (err) err->code = s;
  pf_err_prefix(err, "tap %s", pf_tap_name(p));
  return s;
}

/* q/k/v projections (k and v straight into their destination), q/k norm, RoPE. */
static pf_status qkv(pf_forward *f, const pf_fwd_layer *L, const pf_fwd_step *st, float *kd,
                     float *vd, pf_err *err) {
  const pf_layer *w = L->w;
  const int64_t T = st->batch * st->seq;
  pf_status s;
  const pf_tensor *const ws3[3] = {w->q_proj, w->k_proj, w->v_proj}, *const bs3[3] = {w->q_bias,
                                                                                      w->k_bias,
                                                                                      w->v_bias};
  float *const ys3[3] = {f->q, kd, vd};
  if ((s = pf_linear_many(f->xn, T, f->H, 3, ws3, bs3, ys3, f->ws, err))) return s;
  if (L->q_norm) pf_rmsnorm(f->q, f->q, L->q_norm, T * f->n_heads, f->hd, f->eps);
  if (L->k_norm) pf_rmsnorm(kd, kd, L->k_norm, T * f->n_kv, f->hd, f->eps);
  if (L->rope && ((s = pf_rope_apply(L->rope, f->q, T, f->n_heads, f->q_dim, f->pos, err)) ||
                  (s = pf_rope_apply(L->rope, kd, T, f->n_kv, f->kv_dim, f->pos, err))))
    return s;
  return PF_OK;
}

/* Self-attention: n1 in f->xn, result (after o_proj) in f->o. */
static pf_status attention(pf_forward *f, int64_t l, const pf_fwd_step *st, pf_err *err) {
  const pf_fwd_layer *L = &f->layers[l];
  /* Rows of a batch whose keys are not contiguous in the store (decoding several
   * sequences side by side, each in its own slot of kv_bstride floats), and keys
   * stored head by head (kv_gstride), are computed in the runner's buffers first,
   * then copied to their places. */
  const int64_t kvd = f->kv_dim, hd = f->hd, T = st->batch * st->seq;
  const int apart = st->kv_gstride > 0;
  const int scatter = apart || (st->batch > 1 && st->kv_bstride != st->seq * kvd);
  float *kd = scatter ? f->k : st->k + st->p0 * kvd, *vd = scatter ? f->v : st->v + st->p0 * kvd;
  pf_status s = qkv(f, L, st, kd, vd, err);
  if (s != PF_OK) return s;
  for (int64_t t = 0; scatter && t < T; t++) {
    const int64_t b = t / st->seq, j = st->p0 + t % st->seq;
    if (!apart) {
      const size_t at = (size_t)(b * st->kv_bstride + j * kvd);
      memcpy(st->k + at, kd + t * kvd, (size_t)kvd * sizeof *kd);
      memcpy(st->v + at, vd + t * kvd, (size_t)kvd * sizeof *vd);
      continue;
    }
    for (int64_t g = 0; g < f->n_kv; g++) {
      const size_t at = (size_t)(b * st->kv_bstride + g * st->kv_gstride + j * hd);
      memcpy(st->k + at, kd + t * kvd + g * hd, (size_t)hd * sizeof *kd);
      memcpy(st->v + at, vd + t * kvd + g * hd, (size_t)hd * sizeof *vd);
    }
  }
  const pf_attn_job job = {.batch = st->batch,
                           .seq = st->seq,
                           .p0 = st->p0,
                           .n_heads = f->n_heads,
                           .n_kv = f->n_kv,
                           .hd = f->hd,
                           .window = L->window,
                           .scale = L->scale,
                           .softcap = f->attn_softcap,
                           .q = f->q,
                           .ldq = f->q_dim,
                           .k = st->k,
                           .v = st->v,
                           .ldkv = apart ? hd : kvd,
                           .bstride = st->kv_bstride,
                           .gstride = st->kv_gstride,
                           .len = f->len,
                           .out = f->att,
                           .ldo = f->q_dim};
  const int nthr = omp_get_max_threads(); /* the scratch has f->nthr >= this slices */
  pf_attn_run(&job, f->scratch, f->scratch_per_thr, nthr < f->nthr ? nthr : f->nthr);
  if ((s = tap(f, st, PF_TAP_O_PROJ_INPUT, l, f->att, f->q_dim, err))) return s;
  return pf_linear(f->att, T, f->q_dim, L->w->o_proj, L->w->o_bias, f->o, f->ws, err);
}

/* x += y over T rows of H. */
static void residual_add(float *x, const float *y, int64_t n) {
  PF_PAR_FOR(n >= 65536, i, n, x[i] += y[i]);
}

/* The MLP on n2 (in f->xn); result in f->o. A plain MLP has no gate/up taps. */
static pf_status mlp(pf_forward *f, int64_t l, const pf_fwd_step *st, pf_err *err) {
  const pf_fwd_layer *L = &f->layers[l];
  const pf_layer *w = L->w;
  const int64_t T = st->batch * st->seq, I = L->inter;
  pf_status s;
  if (!w->gate_proj) {
    if ((s = pf_linear(f->xn, T, f->H, w->up_proj, w->up_bias, f->g, f->ws, err))) return s;
    pf_act_apply(f->act, f->g, T * I);
  } else {
    const pf_tensor *const ws2[2] = {w->gate_proj, w->up_proj}, *const bs2[2] = {w->gate_bias,
                                                                                 w->up_bias};
    float *const ys2[2] = {f->g, f->u};
    if ((s = pf_linear_many(f->xn, T, f->H, 2, ws2, bs2, ys2, f->ws, err)) ||
        (s = tap(f, st, PF_TAP_GATE_PROJ, l, f->g, I, err)) ||
        (s = tap(f, st, PF_TAP_UP_PROJ, l, f->u, I, err)))
      return s;
    pf_act_mul(f->act, f->g, f->g, f->u, T * I);
  }
  if ((s = tap(f, st, PF_TAP_DOWN_PROJ_INPUT, l, f->g, I, err)) ||
      (s = pf_linear(f->g, T, I, w->down_proj, w->down_bias, f->o, f->ws, err)) ||
      (s = tap(f, st, PF_TAP_DOWN_PROJ, l, f->o, f->H, err)) ||
      (s = tap(f, st, PF_TAP_MLP_OUTPUT, l, f->o, f->H, err)))
    return s;
  return PF_OK;
}

pf_status pf_fwd_layer_run(pf_forward *f, int64_t l, const pf_fwd_step *st, pf_err *err) {
  const pf_fwd_layer *L = &f->layers[l];
  const int64_t T = st->batch * st->seq;
  pf_status s;
  if ((s = tap(f, st, PF_TAP_LAYER_INPUT, l, f->x, f->H, err))) goto fail;
  pf_fwd_norm(f, f->xn, f->x, L->ln1, L->ln1_b, T);
  if ((s = tap(f, st, PF_TAP_INPUT_NORM, l, f->xn, f->H, err)) || (s = attention(f, l, st, err)) ||
      (s = tap(f, st, PF_TAP_ATTENTION_OUTPUT, l, f->o, f->H, err)))
    goto fail;
  if (L->attn_post) pf_rmsnorm(f->o, f->o, L->attn_post, T, f->H, f->eps);
  if (f->parallel) { /* GPT-NeoX: x' = x + (mlp(norm2(x)) + attn(norm1(x))) */
    memcpy(f->a2, f->o, (size_t)(T * f->H) * sizeof *f->a2);
    pf_fwd_norm(f, f->xn, f->x, L->ln2, L->ln2_b, T);
    if ((s = mlp(f, l, st, err))) goto fail;
    residual_add(f->o, f->a2, T * f->H);
    residual_add(f->x, f->o, T * f->H);
  } else {
    residual_add(f->x, f->o, T * f->H);
    pf_fwd_norm(f, f->xn, f->x, L->ln2, L->ln2_b, T);
    if ((s = mlp(f, l, st, err))) goto fail;
    if (L->mlp_post) pf_rmsnorm(f->o, f->o, L->mlp_post, T, f->H, f->eps);
    residual_add(f->x, f->o, T * f->H);
  }
  if ((s = tap(f, st, PF_TAP_LAYER_OUTPUT, l, f->x, f->H, err))) goto fail;
  return PF_OK;
fail:
  pf_err_prefix(err, "layer %lld", (long long)l);
  return s;
}
