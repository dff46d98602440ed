/* calibration.c — see calibration.h. The accumulation follows OptiPFair's
 * arithmetic points (float32 results), with sums taken in double. */
#include "calibration.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "forward.h"
#include "opdata.h"

typedef struct calib_state {
  pf_calibration *c;
  const uint8_t *layers;
  int want_norms, want_importance;
  double *sumsq; /* [max width] per-batch sums of squares */
  /* copies of the current layer's input, one per batch between its layer_input and
   * layer_output events (several when the pass runs a group of batches at once) */
  struct layer_in {
    int64_t index; /* the batch, -1 = free */
    float *x;      /* [B*S*H] */
    size_t cap;    /* floats */
  } *layer_in;
  int64_t n_layer_in;
  double *batch_scores;     /* [n_layers * n_batches] */
  int64_t first_head_layer; /* the layer whose o_proj_input counts the real tokens */
} calib_state;

static void accumulate_norms(calib_state *s, const pf_tap_event *ev) {
  const int64_t I = ev->width, rows = ev->batch * ev->seq;
  double *ss = s->sumsq;
  memset(ss, 0, sizeof(double) * (size_t)I);
#pragma omp parallel for schedule(static) if (rows * I > (1 << 16))
  for (int64_t i0 = 0; i0 < I; i0 += 64) {
    int64_t i1 = i0 + 64 < I ? i0 + 64 : I;
    for (int64_t r = 0; r < rows; r++) {
      if (!ev->mask[r]) continue;
      const float *x = ev->data + r * I;
      for (int64_t i = i0; i < i1; i++)
        ss[i] += (double)x[i] * (double)x[i];
    }
  }
  float *acc = s->c->norms[ev->layer];
  for (int64_t i = 0; i < I; i++)
    acc[i] += (float)sqrt(ss[i]);
}

/* The copy of batch `index`'s layer input, or with index -1 a free slot (added
 * when none is); NULL when out of memory or not found. */
static struct layer_in *layer_in_slot(calib_state *s, int64_t index) {
  for (int64_t i = 0; i < s->n_layer_in; i++)
    if (s->layer_in[i].index == index) return &s->layer_in[i];
  if (index >= 0) return NULL;
  struct layer_in *p = realloc(s->layer_in, (size_t)(s->n_layer_in + 1) * sizeof *p);
  if (!p) return NULL;
  s->layer_in = p;
  p[s->n_layer_in] = (struct layer_in){.index = -1};
  return &p[s->n_layer_in++];
}

/* 1 - mean cos over the batch's samples (real positions only); x is its layer input. */
static double batch_importance(const float *layer_in, const pf_tap_event *ev) {
  const int64_t H = ev->width;
  double sum = 0;
  int64_t n = 0;
  for (int64_t b = 0; b < ev->batch; b++) {
    double dot = 0, nx = 0, ny = 0;
    int finite = 1;
    for (int64_t t = 0; t < ev->seq; t++) {
      int64_t r = b * ev->seq + t;
      if (!ev->mask[r]) continue;
      const float *x = layer_in + r * H, *y = ev->data + r * H;
      for (int64_t h = 0; h < H; h++) {
        if (!isfinite(x[h]) || !isfinite(y[h])) finite = 0;
        dot += (double)x[h] * y[h];
        nx += (double)x[h] * x[h];
        ny += (double)y[h] * y[h];
      }
    }
    if (!finite) continue;
    double cx = fmax(sqrt(nx), 1e-8), cy = fmax(sqrt(ny), 1e-8);
    double cos = (double)(float)(dot / (cx * cy));
    if (!isfinite(cos)) continue;
    sum += cos;
    n++;
  }
  return n ? 1.0 - sum / (double)n : 0.0;
}

/* Per-token L2 norm of every head's output, summed over real tokens (double). */
static void accumulate_heads(calib_state *s, const pf_tap_event *ev) {
  const int64_t nh = s->c->n_heads, hd = ev->width / nh, rows = ev->batch * ev->seq;
  double *acc = s->c->head_norms[ev->layer];
  for (int64_t r = 0; r < rows; r++) {
    if (!ev->mask[r]) continue;
    const float *x = ev->data + r * ev->width;
    for (int64_t h = 0; h < nh; h++) {
      double ss = 0;
      for (int64_t d = 0; d < hd; d++)
        ss += (double)x[h * hd + d] * (double)x[h * hd + d];
      acc[h] += sqrt(ss);
    }
  }
  if (ev->layer == s->first_head_layer)
    for (int64_t r = 0; r < rows; r++)
      s->c->head_tokens += ev->mask[r] != 0;
}

static pf_status calib_tap(void *ud, const pf_tap_event *ev, pf_err *err) {
  calib_state *s = ud;
  size_t need = (size_t)(ev->batch * ev->seq * ev->width);
  switch (ev->point) {
  case PF_TAP_DOWN_PROJ_INPUT:
    if (s->want_norms && (!s->layers || s->layers[ev->layer])) accumulate_norms(s, ev);
    break;
  case PF_TAP_O_PROJ_INPUT:
    if (s->c->head_norms && s->c->head_norms[ev->layer]) accumulate_heads(s, ev);
    break;
  case PF_TAP_LAYER_INPUT: {
    struct layer_in *in = layer_in_slot(s, -1);
    if (in && need > in->cap) {
      float *p = realloc(in->x, need * sizeof(float));
      if (!p) in = NULL;
      if (p) in->x = p, in->cap = need;
    }
    if (!in) return pf_err_set(err, PF_ERR_NOMEM, "calibration: out of memory");
    memcpy(in->x, ev->data, need * sizeof(float));
    in->index = ev->index;
    break;
  }
  case PF_TAP_LAYER_OUTPUT: {
    struct layer_in *in = layer_in_slot(s, ev->index);
    if (!in)
      return pf_err_set(err, PF_ERR_INVALID, "calibration: batch %lld: layer_output without input",
                        (long long)ev->index);
    s->batch_scores[ev->index * s->c->n_layers + ev->layer] = batch_importance(in->x, ev);
    in->index = -1;
    break;
  }
  default:
    break;
  }
  return PF_OK;
}

static pf_status calib_alloc(const pf_model *m, int want_norms, int want_importance,
                             const uint8_t *layers, pf_calibration *c, pf_err *err) {
  memset(c, 0, sizeof *c);
  c->n_layers = m->n_layers;
  c->widths = calloc((size_t)m->n_layers, sizeof *c->widths);
  c->norms = calloc((size_t)m->n_layers, sizeof *c->norms);
  if (want_importance) c->importance = calloc((size_t)m->n_layers, sizeof *c->importance);
  if (!c->widths || !c->norms || (want_importance && !c->importance)) goto nomem;
  c->n_heads = m->config.num_attention_heads;
  if (want_norms && !(c->head_norms = calloc((size_t)m->n_layers, sizeof *c->head_norms)))
    goto nomem;
  for (int64_t l = 0; l < m->n_layers; l++) {
    c->widths[l] = pf_layer_width(&m->layers[l]);
    if (want_norms && (!layers || layers[l]) &&
        !(c->norms[l] = calloc((size_t)c->widths[l], sizeof(float))))
      goto nomem;
    if (want_norms && (!layers || layers[l]) &&
        !(c->head_norms[l] = calloc((size_t)c->n_heads, sizeof(double))))
      goto nomem;
  }
  return PF_OK;
nomem:
  pf_calibration_free(c);
  return pf_err_set(err, PF_ERR_NOMEM, "calibration: out of memory");
}

/* Final importance: mean of the finite per-batch scores (0.0 when none). */
static void finish_importance(calib_state *s, int64_t nb) {
  pf_calibration *c = s->c;
  for (int64_t l = 0; l < c->n_layers; l++) {
    double sum = 0;
    int64_t n = 0;
    for (int64_t b = 0; b < nb; b++) {
      double v = s->batch_scores[b * c->n_layers + l];
      if (isfinite(v)) {
        sum += v;
        n++;
      }
    }
    c->importance[l] = n ? sum / (double)n : 0.0;
  }
}

pf_status pf_calibration_run(const pf_model *m, const pf_dataset *ds, const uint8_t *layers,
                             int want_norms, int want_importance, pf_calibration *out,
                             const pf_ctx *ctx, pf_err *err) {
  pf_status st = calib_alloc(m, want_norms, want_importance, layers, out, err);
  if (st) return st;
  int64_t nb = pf_dataset_batch_count(ds), maxw = 1;
  for (int64_t l = 0; l < m->n_layers; l++)
    if (out->widths[l] > maxw) maxw = out->widths[l];
  calib_state s = {
      .c = out, .layers = layers, .want_norms = want_norms, .want_importance = want_importance};
  s.sumsq = malloc(sizeof(double) * (size_t)maxw);
  s.batch_scores = calloc((size_t)(nb * m->n_layers + 1), sizeof(double));
  pf_forward *f = NULL;
  pf_batch *batches = NULL;
  if (!s.sumsq || !s.batch_scores) st = pf_err_set(err, PF_ERR_NOMEM, "calibration: out of memory");
  if (!st) st = pf_dataset_batches(ds, &batches, err);
  if (!st) st = pf_forward_new(m, &f, err);
  pf_taps taps = {.points = 0, .fn = calib_tap, .user_data = &s};
  if (want_norms) taps.points |= (1u << PF_TAP_DOWN_PROJ_INPUT) | (1u << PF_TAP_O_PROJ_INPUT);
  s.first_head_layer = -1;
  for (int64_t l = 0; want_norms && l < m->n_layers && s.first_head_layer < 0; l++)
    if (out->head_norms[l]) s.first_head_layer = l;
  if (want_importance) taps.points |= (1u << PF_TAP_LAYER_INPUT) | (1u << PF_TAP_LAYER_OUTPUT);
  const pf_pass pass = {.batches = batches,
                        .n = nb,
                        .taps = &taps,
                        .split = 1,
                        .group_taps = 1,
                        .what = want_importance && !want_norms ? "importance" : "calibration",
                        .log_plan = 1};
  pf_pass_info info;
  if (!st) st = pf_forward_pass(f, &pass, &info, ctx, err);
  if (st) pf_err_prefix(err, "calibration");
  /* MPI: every rank ran its share; norms add up in rank order, batch scores
   * are disjoint (exact) */
  for (int64_t l = 0; !st && want_norms && l < m->n_layers; l++)
    if (out->norms[l]) st = pf_dist_sum_f32(out->norms[l], out->widths[l], err);
  for (int64_t l = 0; !st && want_norms && l < m->n_layers; l++)
    if (out->head_norms[l]) st = pf_dist_sum_f64(out->head_norms[l], out->n_heads, err);
  if (!st && want_norms) st = pf_dist_sum_f64(&out->head_tokens, 1, err);
  for (int64_t l = 0; !st && want_norms && l < m->n_layers; l++) /* sums -> means */
    for (int64_t h = 0; out->head_norms[l] && h < out->n_heads; h++)
      out->head_norms[l][h] = out->head_tokens > 0 ? out->head_norms[l][h] / out->head_tokens : 0;
  if (!st && want_importance) st = pf_dist_sum_f64(s.batch_scores, nb * m->n_layers, err);
  free(batches);
  if (!st && want_importance) finish_importance(&s, nb);
  out->batches = nb;
  pf_forward_free(f);
  free(s.sumsq);
  for (int64_t i = 0; i < s.n_layer_in; i++)
    free(s.layer_in[i].x);
  free(s.layer_in);
  free(s.batch_scores);
  if (st) pf_calibration_free(out);
  return st;
}

void pf_calibration_free(pf_calibration *c) {
  if (!c) return;
  for (int64_t l = 0; c->norms && l < c->n_layers; l++)
    free(c->norms[l]);
  free(c->norms);
  for (int64_t l = 0; c->head_norms && l < c->n_layers; l++)
    free(c->head_norms[l]);
  free(c->head_norms);
  free(c->widths);
  free(c->importance);
  memset(c, 0, sizeof *c);
}

pf_value *pf_calibration_to_value(const pf_calibration *c) {
  pf_value *v = pf_value_map(), *norms = pf_value_map(), *imp = pf_value_map();
  pf_value *heads = pf_value_map();
  pf_status st = v && norms && imp && heads ? PF_OK : PF_ERR_NOMEM;
  char key[32];
  for (int64_t l = 0; !st && l < c->n_layers; l++) {
    snprintf(key, sizeof key, "%lld", (long long)l);
    if (c->norms && c->norms[l]) {
      pf_value *list = pf_value_list();
      st = list ? PF_OK : PF_ERR_NOMEM;
      for (int64_t i = 0; !st && i < c->widths[l]; i++)
        st = pf_list_push(list, pf_value_num((double)c->norms[l][i]));
      if (!st)
        st = pf_map_set(norms, key, list);
      else
        pf_value_release(list);
    }
    if (!st && c->importance) st = pf_map_set(imp, key, pf_value_num(c->importance[l]));
    if (!st && c->head_norms && c->head_norms[l]) {
      pf_value *list = pf_value_list();
      st = list ? PF_OK : PF_ERR_NOMEM;
      for (int64_t h = 0; !st && h < c->n_heads; h++)
        st = pf_list_push(list, pf_value_num(c->head_norms[l][h]));
      if (!st)
        st = pf_map_set(heads, key, list);
      else
        pf_value_release(list);
    }
  }
  /* the model's layer count: a calibration given to another model (a depth-pruned
   * child, whose layer numbers mean other layers) is refused even when it covers
   * only layers that exist there */
  if (!st) st = pf_map_set_int(v, "num_hidden_layers", c->n_layers);
  if (!st && norms->u.map.len) {
    st = pf_map_set(v, "norms", norms);
    norms = NULL;
  }
  if (!st && c->importance) {
    st = pf_map_set(v, "importance", imp);
    imp = NULL;
  }
  if (!st && heads->u.map.len) {
    st = pf_map_set(v, "head_norms", heads);
    heads = NULL;
  }
  pf_value_release(norms);
  pf_value_release(imp);
  pf_value_release(heads);
  if (st) {
    pf_value_release(v);
    return NULL;
  }
  return v;
}

/* The width that layer `key`'s norms have in v (a real list or a planned
 * count), checked against the model: the same messages for both. */
static pf_status norm_layer(const char *key, const pf_value *val, int planned, const pf_model *m,
                            const pf_calibration *c, int64_t *layer, pf_err *err) {
  char *end = NULL;
  long long l = strtoll(key, &end, 10);
  if (!*key || *end || l < 0 || l >= m->n_layers)
    return pf_err_set(err, PF_ERR_INVALID,
                      "calibration: norms key '%s' is not a layer of this model (0-%lld)", key,
                      (long long)m->n_layers - 1);
  int ok = planned ? val->type == PF_V_INT : val->type == PF_V_LIST;
  int64_t got = !ok ? 0 : planned ? val->u.i : (int64_t)val->u.list.len;
  if (!ok || got != c->widths[l])
    return pf_err_set(err, PF_ERR_INVALID,
                      "calibration: norms of layer %lld: expected %lld values, got %lld (was it "
                      "computed on another model?)",
                      l, (long long)c->widths[l], (long long)got);
  *layer = (int64_t)l;
  return PF_OK;
}

pf_status pf_calibration_check_layers(const pf_value *v, int64_t n_layers, const char *what,
                                      pf_err *err) {
  if (!v || v->type != PF_V_MAP) return PF_OK;
  const pf_value *plan = pf_map_get(v, "planned");
  const pf_value *n = pf_map_get(plan && plan->type == PF_V_MAP ? plan : v, "num_hidden_layers");
  if (!n || n->type != PF_V_INT || n->u.i == n_layers) return PF_OK;
  return pf_err_set(err, PF_ERR_INVALID,
                    "%s: computed on a model with %lld layers, this model has %lld (a "
                    "calibration of the model before depth pruning? its layer numbers name other "
                    "layers here: calibrate this model)",
                    what, (long long)n->u.i, (long long)n_layers);
}

pf_status pf_calibration_check_model(const pf_value *v, const pf_model *m, int dry_run,
                                     pf_err *err) {
  pf_status st = pf_calibration_check_layers(v, m->n_layers, "calibration", err);
  const pf_value *fp = v && v->type == PF_V_MAP ? pf_map_get(v, "model_fingerprint") : NULL;
  if (st || dry_run || !fp || fp->type != PF_V_STR) return st;
  char mfp[PF_SHA256_HEX];
  if ((st = pf_model_fingerprint(m, mfp, err)) != PF_OK) return st;
  if (!strcmp(mfp, fp->u.s)) return PF_OK;
  return pf_err_set(err, PF_ERR_INVALID,
                    "calibration: computed on another model than %s (its norms describe that "
                    "model's activations, model_fingerprint %.12s…, this model's is %.12s…): "
                    "calibrate this model and pass that result",
                    m->name ? m->name : "this one", fp->u.s, mfp);
}

pf_status pf_calibration_from_value(const pf_value *v, const pf_model *m, int dry_run,
                                    pf_calibration *out, pf_err *err) {
  memset(out, 0, sizeof *out);
  pf_status cs = pf_calibration_check_model(v, m, dry_run, err);
  if (cs) return cs;
  const pf_value *plan = v && v->type == PF_V_MAP ? pf_map_get(v, "planned") : NULL;
  if (plan && !dry_run)
    return pf_err_set(err, PF_ERR_INVALID,
                      "calibration: a dry run's planned result holds no norms (give the result of "
                      "a calibrate step that ran)");
  const pf_value *src = plan && plan->type == PF_V_MAP ? plan : v;
  const pf_value *norms =
      src && src->type == PF_V_MAP ? pf_map_get(src, plan ? "norm_widths" : "norms") : NULL;
  if (!norms && !plan) norms = v;
  if (!norms || norms->type != PF_V_MAP)
    return pf_err_set(err, PF_ERR_INVALID,
                      "calibration: expected a calibrate result (a map with \"norms\")");
  pf_status st = calib_alloc(m, 0, 0, NULL, out, err);
  for (size_t k = 0; !st && k < norms->u.map.len; k++) {
    const pf_value *list = norms->u.map.vals[k];
    int64_t l = 0;
    st = norm_layer(norms->u.map.keys[k], list, plan != NULL, m, out, &l, err);
    if (!st && out->norms[l])
      st = pf_err_set(err, PF_ERR_INVALID, "calibration: norms of layer %lld are given twice",
                      (long long)l);
    /* planned: zero norms of the right width, so a dry run goes the real way */
    if (!st && !(out->norms[l] = calloc((size_t)out->widths[l] + 1, sizeof(float))))
      st = pf_err_set(err, PF_ERR_NOMEM, "calibration: out of memory");
    for (int64_t i = 0; !st && !plan && i < out->widths[l]; i++) {
      const pf_value *x = list->u.list.items[i];
      if (x->type != PF_V_NUM && x->type != PF_V_INT)
        st = pf_err_set(err, PF_ERR_INVALID, "calibration: norms of layer %lld: item %lld is %s",
                        (long long)l, (long long)i, pf_vtype_name(x->type));
      else if (x->type == PF_V_NUM && !isfinite(x->u.n)) /* scores would order nothing */
        st = pf_err_set(err, PF_ERR_INVALID,
                        "calibration: norms of layer %lld: item %lld is %s, expected a finite "
                        "number (did the calibration pass overflow?)",
                        (long long)l, (long long)i, isnan(x->u.n) ? "nan" : "inf");
      else
        out->norms[l][i] = (float)(x->type == PF_V_INT ? (double)x->u.i : x->u.n);
    }
  }
  if (st) pf_calibration_free(out);
  return st;
}

pf_value *pf_calibration_plan_value(const pf_model *m, const uint8_t *layers, int want_norms) {
  pf_value *v = pf_value_map(), *plan = pf_value_map(), *widths = NULL;
  pf_status st = v && plan ? pf_map_set_int(plan, "num_hidden_layers", m->n_layers) : PF_ERR_NOMEM;
  if (!st && want_norms) st = (widths = pf_value_map()) ? PF_OK : PF_ERR_NOMEM;
  char key[32];
  for (int64_t l = 0; !st && widths && l < m->n_layers; l++) {
    if (layers && !layers[l]) continue;
    snprintf(key, sizeof key, "%lld", (long long)l);
    st = pf_map_set_int(widths, key, pf_layer_width(&m->layers[l]));
  }
  if (!st && widths) {
    st = pf_map_set(plan, "norm_widths", widths);
    widths = NULL;
  }
  if (!st) {
    st = pf_map_set(v, "planned", plan);
    plan = NULL;
  }
  pf_value_release(widths);
  pf_value_release(plan);
  if (st) {
    pf_value_release(v);
    return NULL;
  }
  return v;
}
