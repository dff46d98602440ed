/* pruning_heads.c — attention-head pruning: plan, scores, slicing, statistics
 * (see pruning_heads.h for the contract).
 *
 * Why it looks the way it does:
 *  - scores are sums of Frobenius norms; they are accumulated and compared in
 *    double (not rounded to float32 as the neuron scores are, where torch's
 *    float32 results are the reference), so the top-k agrees with a float64
 *    numpy computation;
 *  - the amount follows width pruning's rule on units: k removed =
 *    min(int(p/100 * units), units - 1) (pf_keep_from_percentage);
 *  - the pruned model keeps one head count per model: the forward, config.json
 *    and transformers have no per-layer head counts, so the plan refuses
 *    anything else up front instead of producing a checkpoint nobody can run.
 */
#include "pruning_heads.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calibration.h"
#include "op.h"
#include "pruning.h"

/* ---- scores ---- */

pf_status pf_heads_block_norms(const pf_tensor *o, int64_t n_heads, int64_t hd, pf_dtype as,
                               double *b, pf_err *err) {
  if (!o || o->ndim != 2 || o->shape[1] != n_heads * hd)
    return pf_err_set(err, PF_ERR_INVALID, "o_proj: expected [H, %lld], got %s",
                      (long long)(n_heads * hd), o ? "another shape" : "no tensor");
  if (!o->data && !o->lazy)
    return pf_err_set(err, PF_ERR_INVALID, "o_proj: planned tensor (dry run) has no weights");
  const int64_t H = o->shape[0], W = o->shape[1];
  float *row = malloc(sizeof(float) * (size_t)W);
  double *ss = calloc((size_t)n_heads, sizeof(double));
  if (!row || !ss) {
    free(row);
    free(ss);
    return pf_err_set(err, PF_ERR_NOMEM, "head scores: out of memory");
  }
  for (int64_t r = 0; r < H; r++) {
    pf_tensor_row_f32(o, r, row);
    if (as != o->dtype) pf_round_through(row, (size_t)W, as); /* as if loaded in `as` */
    for (int64_t h = 0; h < n_heads; h++) {
      double s = 0;
      for (int64_t d = 0; d < hd; d++)
        s += (double)row[h * hd + d] * (double)row[h * hd + d];
      ss[h] += s;
    }
  }
  for (int64_t h = 0; h < n_heads; h++)
    b[h] = sqrt(ss[h]);
  free(row);
  free(ss);
  return PF_OK;
}

void pf_heads_unit_scores(const double *b, const double *a, int64_t n_heads, int64_t n_kv,
                          double *score) {
  const int64_t g = n_heads / n_kv;
  for (int64_t u = 0; u < n_kv; u++) {
    double s = 0;
    for (int64_t h = u * g; h < (u + 1) * g; h++)
      s += a ? a[h] * b[h] : b[h];
    score[u] = s;
  }
}

pf_status pf_heads_topk(const double *score, int64_t n, int64_t k, int64_t *kept, pf_err *err) {
  return pf_topk_keep_f64(score, n, k, kept, err);
}

/* ---- plan ---- */

void pf_heads_plan_free(pf_heads_plan *p) {
  if (!p) return;
  for (int64_t i = 0; p->removed && i < p->n_layers; i++)
    free(p->removed[i]);
  free(p->removed);
  free(p->selected);
  memset(p, 0, sizeof *p);
}

/* Layer 0..L-1 attention tensors as the config says: [nh*hd, H] q, [kv*hd, H] k/v,
 * [H, nh*hd] o. */
static pf_status check_structure(const pf_model *m, pf_err *err) {
  const pf_model_config *c = &m->config;
  if (m->n_layers <= 0)
    return pf_err_set(err, PF_ERR_INVALID, "attention-head pruning: the model has no layers");
  if (c->num_key_value_heads <= 0 || c->num_attention_heads % c->num_key_value_heads)
    return pf_err_set(err, PF_ERR_INVALID,
                      "attention-head pruning: num_attention_heads %lld is not a multiple of "
                      "num_key_value_heads %lld",
                      (long long)c->num_attention_heads, (long long)c->num_key_value_heads);
  const int64_t q = c->num_attention_heads * c->head_dim, kv = c->num_key_value_heads * c->head_dim;
  for (int64_t i = 0; i < m->n_layers; i++) {
    const pf_layer *l = &m->layers[i];
    if (!l->q_proj || !l->k_proj || !l->v_proj || !l->o_proj || l->q_proj->shape[0] != q ||
        l->k_proj->shape[0] != kv || l->v_proj->shape[0] != kv || l->o_proj->ndim != 2 ||
        l->o_proj->shape[1] != q)
      return pf_err_set(err, PF_ERR_INVALID,
                        "model.layers.%lld.self_attn: expected q_proj [%lld, H], k_proj/v_proj "
                        "[%lld, H] and o_proj [H, %lld] (num_attention_heads %lld, "
                        "num_key_value_heads %lld, head_dim %lld)",
                        (long long)i, (long long)q, (long long)kv, (long long)q,
                        (long long)c->num_attention_heads, (long long)c->num_key_value_heads,
                        (long long)c->head_dim);
  }
  return PF_OK;
}

/* A list value of integers -> malloc'd array (checked: units in range, no duplicates). */
static pf_status unit_list(const pf_value *v, const char *what, int64_t units, int64_t **out,
                           int64_t *n, pf_err *err) {
  if (!v || v->type != PF_V_LIST)
    return pf_err_set(err, PF_ERR_INVALID,
                      "head_indices%s: expected a list of unit indices, got %s", what,
                      v ? pf_vtype_name(v->type) : "nothing");
  int64_t len = (int64_t)v->u.list.len;
  int64_t *a = malloc(sizeof(int64_t) * (size_t)(len ? len : 1));
  if (!a) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  pf_status st = PF_OK;
  for (int64_t j = 0; !st && j < len; j++) {
    const pf_value *x = v->u.list.items[j];
    /* integers, or numbers without a fraction (Lua 2.0, JSON 2.0) */
    int whole = x->type == PF_V_INT ||
                (x->type == PF_V_NUM && x->u.n == floor(x->u.n) && fabs(x->u.n) < 9e15);
    double u = x->type == PF_V_INT ? (double)x->u.i : whole ? x->u.n : -1;
    if (!whole)
      st = pf_err_set(err, PF_ERR_INVALID,
                      "head_indices%s: item %lld: expected a unit index (an integer), got %s%s",
                      what, (long long)j, pf_vtype_name(x->type),
                      /* a list of lists: meant as a map by layer */
                      !what[0] && x->type == PF_V_LIST ? PF_LAYER_MAP_LIST_HINT : "");
    else if (u < 0 || u >= (double)units)
      st = pf_err_set(err, PF_ERR_INVALID,
                      "head_indices%s: item %lld: expected a unit index in 0-%lld (key/value "
                      "heads), got %.0f",
                      what, (long long)j, (long long)(units - 1), u);
    else
      a[j] = (int64_t)u;
    for (int64_t i = 0; !st && i < j; i++)
      if (a[i] == a[j])
        st = pf_err_set(err, PF_ERR_INVALID, "head_indices%s: unit %lld is given twice", what,
                        (long long)a[j]);
  }
  if (!st && len >= units)
    st = pf_err_set(err, PF_ERR_INVALID,
                    "head_indices%s: removes all %lld units; at least one must be kept", what,
                    (long long)units);
  if (st) {
    free(a);
    return st;
  }
  *out = a;
  *n = len;
  return PF_OK;
}

/* head_indices -> p->removed / p->selected; *n_removed: the count (uniform). */
static pf_status plan_explicit(const pf_model *m, const pf_heads_opts *o, pf_heads_plan *p,
                               pf_err *err) {
  const pf_value *hi = o->head_indices;
  int64_t count = -1, n = 0;
  char what[48];
  if (hi->type == PF_V_LIST) {
    for (int64_t i = 0; i < p->n_layers; i++) {
      if (!p->selected[i]) continue;
      what[0] = 0;
      pf_status st = unit_list(hi, what, p->n_kv, &p->removed[i], &n, err);
      if (st) return st;
      count = n;
    }
  } else if (hi->type == PF_V_MAP) {
    if (o->have_layer_indices)
      return pf_err_set(err, PF_ERR_INVALID,
                        "head_indices as a map {\"<layer>\": [...]} names its layers; "
                        "layer_indices must not be given with it");
    memset(p->selected, 0, (size_t)p->n_layers);
    long long first = -1; /* the layer whose count the others must match */
    for (size_t k = 0; k < hi->u.map.len; k++) {
      char *end = NULL;
      const char *key = hi->u.map.keys[k];
      long long l = strtoll(key, &end, 10);
      if (!*key || *end || l < 0 || l >= m->n_layers)
        return pf_err_set(err, PF_ERR_INVALID,
                          "head_indices: key '%s' is not a layer of this model (0-%lld)", key,
                          (long long)m->n_layers - 1);
      snprintf(what, sizeof what, " of layer %lld", l);
      pf_status st = unit_list(hi->u.map.vals[k], what, p->n_kv, &p->removed[l], &n, err);
      if (st) return st;
      if (count >= 0 && n != count)
        return pf_err_set(err, PF_ERR_INVALID,
                          "head_indices: layer %lld removes %lld units, layer %lld removes %lld: "
                          "every layer must keep the same number of heads (pfrun's forward, "
                          "config.json and transformers have one head count per model)",
                          l, (long long)n, first, (long long)count);
      if (count < 0) first = l;
      count = n;
      p->selected[l] = 1;
    }
  } else {
    return pf_err_set(err, PF_ERR_INVALID,
                      "head_indices: expected a list of units to remove or a map "
                      "{\"<layer>\": [units]}, got %s",
                      pf_vtype_name(hi->type));
  }
  p->keep = p->n_kv - (count < 0 ? 0 : count);
  return PF_OK;
}

/* Every layer must end with the same head count. */
static pf_status check_uniform(const pf_heads_plan *p, pf_err *err) {
  if (p->keep == p->n_kv) return PF_OK;
  char list[256] = "";
  size_t len = 0, n = 0;
  for (int64_t i = 0; i < p->n_layers; i++)
    if (!p->selected[i]) {
      if (len + 24 < sizeof list)
        len +=
            (size_t)snprintf(list + len, sizeof list - len, "%s%lld", n ? ", " : "", (long long)i);
      n++;
    }
  if (!n) return PF_OK;
  return pf_err_set(err, PF_ERR_INVALID,
                    "attention-head pruning must prune every layer alike: layers [%s] would keep "
                    "%lld key/value heads while the pruned ones keep %lld (pfrun's forward, "
                    "config.json and transformers have one num_attention_heads / "
                    "num_key_value_heads per model); drop layer_indices or cover every layer",
                    list, (long long)p->n_kv, (long long)p->keep);
}

int pf_heads_transformers_note(const pf_model_config *c, char *buf, size_t n) {
  const int64_t derived = c->num_attention_heads > 0 ? c->hidden_size / c->num_attention_heads : 0;
  if (derived == c->head_dim) return 0;
  const char *t = c->model_type;
  if (!strcmp(t, "gpt2") || !strcmp(t, "gpt_neox"))
    snprintf(buf, n,
             "transformers derives %s's head size from hidden_size / heads (%lld, not head_dim "
             "%lld): the saved checkpoint loads in pfrun, not in transformers",
             !strcmp(t, "gpt2") ? "GPT-2" : "GPT-NeoX", (long long)derived, (long long)c->head_dim);
  else if (!strcmp(c->rope_scaling.rope_type, "longrope"))
    snprintf(buf, n,
             "transformers checks the longrope factor lists against hidden_size / "
             "num_attention_heads (%lld, not head_dim %lld) and refuses the config: the saved "
             "checkpoint loads in pfrun, not in transformers",
             (long long)derived, (long long)c->head_dim);
  else
    return 0;
  return 1;
}

/* One way of choosing the heads, exactly. */
static pf_status check_given(const pf_heads_opts *o, pf_err *err) {
  int given = (o->have_percentage != 0) + (o->have_keep != 0) + (o->head_indices != NULL);
  if (given > 1)
    return pf_err_set(err, PF_ERR_INVALID,
                      "pruning_percentage, num_kv_heads_to_keep and head_indices are mutually "
                      "exclusive. Provide only one.");
  if (given == 0)
    return pf_err_set(err, PF_ERR_INVALID,
                      "attention-head pruning needs pruning_percentage, num_kv_heads_to_keep or "
                      "head_indices");
  return PF_OK;
}

pf_status pf_heads_opts_check(const pf_heads_opts *o, pf_err *err) {
  pf_status st = check_given(o, err);
  if (!st && o->have_percentage)
    st = pf_check_percentage(o->pruning_percentage, o->percentage_is_int, err);
  return st;
}

pf_status pf_heads_plan_make(const pf_model *m, const pf_heads_opts *o, pf_heads_plan *p,
                             pf_err *err) {
  memset(p, 0, sizeof *p);
  pf_status st = check_structure(m, err);
  if (!st) st = check_given(o, err);
  if (st) return st;
  if (o->have_layer_indices) {
    st = pf_check_layer_indices(o->layer_indices, o->n_layer_indices, m->n_layers, err);
    if (st) return st;
  }
  const pf_model_config *c = &m->config;
  p->n_layers = m->n_layers;
  p->n_heads = c->num_attention_heads;
  p->n_kv = c->num_key_value_heads;
  p->head_dim = c->head_dim;
  p->group = p->n_heads / p->n_kv;
  p->head_norms = o->head_norms;
  p->score_dtype = o->score_dtype;
  p->selected = calloc((size_t)p->n_layers, 1);
  p->removed = calloc((size_t)p->n_layers, sizeof *p->removed);
  if (!p->selected || !p->removed) {
    pf_heads_plan_free(p);
    return pf_err_set(err, PF_ERR_NOMEM, "head plan: out of memory");
  }
  for (int64_t i = 0; i < p->n_layers; i++)
    p->selected[i] = !o->have_layer_indices;
  for (size_t i = 0; o->have_layer_indices && i < o->n_layer_indices; i++)
    p->selected[o->layer_indices[i]] = 1;
  if (o->head_norms && (int64_t)o->n_head_norms != m->n_layers)
    st = pf_err_set(err, PF_ERR_INVALID, "head norms: expected %lld layers, got %zu",
                    (long long)m->n_layers, o->n_head_norms);
  else if (o->have_percentage) {
    double pct = o->pruning_percentage;
    st = pf_check_percentage(pct, o->percentage_is_int, err);
    if (!st && (p->keep = pf_keep_from_percentage(pct, p->n_kv)) == p->n_kv && pct > 0) {
      char ps[48];
      pf_format_pynum(pct, o->percentage_is_int, ps, sizeof ps);
      st = pf_err_set(err, PF_ERR_INVALID,
                      "No effective pruning: pruning_percentage %s removes int(%s/100*%lld) = 0 "
                      "of the %lld units (key/value heads) of each layer. Increase "
                      "pruning_percentage or give num_kv_heads_to_keep.",
                      ps, ps, (long long)p->n_kv, (long long)p->n_kv);
    }
  } else if (o->have_keep) {
    if (o->num_kv_heads_to_keep < 1 || o->num_kv_heads_to_keep > p->n_kv)
      st = pf_err_set(err, PF_ERR_INVALID,
                      "num_kv_heads_to_keep must be between 1 and %lld (num_key_value_heads), "
                      "got %lld",
                      (long long)p->n_kv, (long long)o->num_kv_heads_to_keep);
    else
      p->keep = o->num_kv_heads_to_keep;
  } else {
    st = plan_explicit(m, o, p, err);
  }
  for (int64_t i = 0; !st && p->head_norms && i < p->n_layers; i++)
    if (p->selected[i] && p->keep < p->n_kv && !p->removed[i] && !p->head_norms[i])
      st = pf_err_set(err, PF_ERR_INVALID,
                      "calibration: no head norms for layer %lld (was the calibrate step run "
                      "with layer_indices that leave it out?)",
                      (long long)i);
  if (!st) st = check_uniform(p, err);
  if (st) pf_heads_plan_free(p);
  return st;
}

/* ---- slicing ---- */

typedef struct attn_set {
  pf_tensor *q, *qb, *k, *kb, *v, *vb, *o;
} attn_set;

static pf_status install_attn(pf_layer *l, attn_set *n, pf_status st) {
  pf_tensor **src[7] = {&n->q, &n->qb, &n->k, &n->kb, &n->v, &n->vb, &n->o};
  pf_tensor **dst[7] = {&l->q_proj, &l->q_bias, &l->k_proj, &l->k_bias,
                        &l->v_proj, &l->v_bias, &l->o_proj};
  for (int i = 0; i < 7; i++) {
    if (st || !*src[i]) {
      pf_tensor_release(*src[i]);
      continue;
    }
    pf_tensor_release(*dst[i]);
    *dst[i] = *src[i];
  }
  return st;
}

/* Row indices of the kept heads: kept units -> query rows, key/value rows, in
 * ascending order (units ascending, heads of a unit consecutive). */
static void kept_rows(const pf_heads_plan *p, const int64_t *units, int64_t *qrows, int64_t *kvrows,
                      int64_t *qheads) {
  const int64_t g = p->group, hd = p->head_dim;
  int64_t nq = 0, nkv = 0, nh = 0;
  for (int64_t j = 0; j < p->keep; j++) {
    int64_t u = units[j];
    for (int64_t d = 0; d < hd; d++)
      kvrows[nkv++] = u * hd + d;
    for (int64_t h = u * g; h < (u + 1) * g; h++) {
      qheads[nh++] = h;
      for (int64_t d = 0; d < hd; d++)
        qrows[nq++] = h * hd + d;
    }
  }
}

static pf_status slice_layer(pf_layer *l, const int64_t *qr, int64_t nq, const int64_t *kr,
                             int64_t nk, pf_err *err) {
  attn_set n = {0};
  pf_status st = pf_tensor_gather_rows(l->q_proj, qr, nq, &n.q, err);
  if (!st && l->q_bias) st = pf_tensor_gather_elems(l->q_bias, qr, nq, &n.qb, err);
  if (!st) st = pf_tensor_gather_rows(l->k_proj, kr, nk, &n.k, err);
  if (!st && l->k_bias) st = pf_tensor_gather_elems(l->k_bias, kr, nk, &n.kb, err);
  if (!st) st = pf_tensor_gather_rows(l->v_proj, kr, nk, &n.v, err);
  if (!st && l->v_bias) st = pf_tensor_gather_elems(l->v_bias, kr, nk, &n.vb, err);
  if (!st) st = pf_tensor_gather_cols(l->o_proj, qr, nq, &n.o, err);
  return install_attn(l, &n, st);
}

static pf_status plan_tensor(const pf_tensor *t, int dim, int64_t size, pf_tensor **out,
                             pf_err *err) {
  int64_t shape[2] = {t->shape[0], t->ndim > 1 ? t->shape[1] : 0};
  shape[dim] = size;
  return pf_tensor_new_planned(t->dtype, t->ndim, shape, out, err);
}

static pf_status plan_layer(pf_layer *l, int64_t nq, int64_t nk, pf_err *err) {
  attn_set n = {0};
  pf_status st = plan_tensor(l->q_proj, 0, nq, &n.q, err);
  if (!st && l->q_bias) st = plan_tensor(l->q_bias, 0, nq, &n.qb, err);
  if (!st) st = plan_tensor(l->k_proj, 0, nk, &n.k, err);
  if (!st && l->k_bias) st = plan_tensor(l->k_bias, 0, nk, &n.kb, err);
  if (!st) st = plan_tensor(l->v_proj, 0, nk, &n.v, err);
  if (!st && l->v_bias) st = plan_tensor(l->v_bias, 0, nk, &n.vb, err);
  if (!st) st = plan_tensor(l->o_proj, 1, nq, &n.o, err);
  return install_attn(l, &n, st);
}

/* Units kept in layer i: explicit (complement of removed) or the top-k scores. */
static pf_status choose_units(const pf_heads_plan *p, int64_t i, const pf_layer *l, double *score,
                              int64_t *units, pf_err *err) {
  double *b = malloc(sizeof(double) * (size_t)p->n_heads);
  if (!b) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  pf_status st = pf_heads_block_norms(l->o_proj, p->n_heads, p->head_dim, p->score_dtype, b, err);
  const double *a = p->head_norms ? p->head_norms[i] : NULL;
  if (!st) pf_heads_unit_scores(b, a, p->n_heads, p->n_kv, score);
  free(b);
  if (st || !p->removed[i]) return st ? st : pf_heads_topk(score, p->n_kv, p->keep, units, err);
  int64_t n = 0;
  for (int64_t u = 0; u < p->n_kv; u++) {
    int gone = 0;
    for (int64_t j = 0; j < p->n_kv - p->keep; j++)
      gone |= p->removed[i][j] == u;
    if (!gone) units[n++] = u;
  }
  return PF_OK;
}

static pf_value *int_list(const int64_t *a, int64_t n) {
  if (!a) return pf_value_null();
  pf_value *v = pf_value_list();
  for (int64_t i = 0; v && i < n; i++)
    if (pf_list_push(v, pf_value_int(a[i]))) {
      pf_value_release(v);
      return NULL;
    }
  return v;
}

static pf_value *num_list(const double *a, int64_t n) {
  if (!a) return pf_value_null();
  pf_value *v = pf_value_list();
  for (int64_t i = 0; v && i < n; i++)
    if (pf_list_push(v, pf_value_num(a[i]))) {
      pf_value_release(v);
      return NULL;
    }
  return v;
}

static pf_value *layer_entry(const pf_heads_plan *p, int64_t i, const int64_t *units,
                             const int64_t *qheads, const double *score) {
  pf_value *e = pf_value_map();
  pf_status st = e ? PF_OK : PF_ERR_NOMEM;
  if (!st) st = pf_map_set_int(e, "index", i);
  if (!st) st = pf_map_set_int(e, "heads_before", p->n_heads);
  if (!st) st = pf_map_set_int(e, "heads_after", p->keep * p->group);
  if (!st) st = pf_map_set_int(e, "kv_heads_before", p->n_kv);
  if (!st) st = pf_map_set_int(e, "kv_heads_after", p->keep);
  pf_value *x = NULL;
  if (!st) st = (x = int_list(units, p->keep)) ? pf_map_set(e, "kept_kv_heads", x) : PF_ERR_NOMEM;
  if (!st)
    st = (x = int_list(qheads, p->keep * p->group)) ? pf_map_set(e, "kept_heads", x) : PF_ERR_NOMEM;
  if (!st) st = (x = num_list(score, p->n_kv)) ? pf_map_set(e, "scores", x) : PF_ERR_NOMEM;
  if (st) {
    pf_value_release(e);
    return NULL;
  }
  return e;
}

/* Prune layer i of nm (real or planned) and describe it. */
static pf_status prune_one(pf_model *nm, const pf_heads_plan *p, int64_t i, int dry,
                           pf_value **entry, pf_err *err) {
  const int64_t nq = p->keep * p->group * p->head_dim, nk = p->keep * p->head_dim;
  pf_layer *l = &nm->layers[i];
  int64_t *units = malloc(sizeof(int64_t) * (size_t)p->n_kv);
  int64_t *qheads = malloc(sizeof(int64_t) * (size_t)p->n_heads);
  int64_t *qr = malloc(sizeof(int64_t) * (size_t)(nq ? nq : 1));
  int64_t *kr = malloc(sizeof(int64_t) * (size_t)(nk ? nk : 1));
  double *score = malloc(sizeof(double) * (size_t)p->n_kv);
  pf_status st = units && qheads && qr && kr && score ? PF_OK : PF_ERR_NOMEM;
  if (st) pf_err_set(err, st, "out of memory");
  if (!st && dry) st = plan_layer(l, nq, nk, err);
  if (!st && !dry) st = choose_units(p, i, l, score, units, err);
  if (!st && !dry) kept_rows(p, units, qr, kr, qheads);
  if (!st && !dry) st = slice_layer(l, qr, nq, kr, nk, err);
  if (!st) {
    *entry = dry ? layer_entry(p, i, NULL, NULL, NULL) : layer_entry(p, i, units, qheads, score);
    if (!*entry) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  free(units);
  free(qheads);
  free(qr);
  free(kr);
  free(score);
  return st;
}

static pf_status heads_stats(const pf_model *m, const pf_model *nm, const pf_heads_plan *p,
                             pf_value **out, pf_err *err) {
  int64_t orig = pf_model_param_count(m), pruned = pf_model_param_count(nm);
  uint64_t dsz = pf_dtype_size(m->dtype);
  int64_t kv_after = nm->config.num_key_value_heads;
  pf_value *s = pf_value_map();
  pf_status st = s ? PF_OK : PF_ERR_NOMEM;
  if (!st) st = pf_map_set_int(s, "original_parameters", orig);
  if (!st) st = pf_map_set_int(s, "pruned_parameters", pruned);
  if (!st) st = pf_map_set_int(s, "reduction", orig - pruned);
  if (!st)
    st = pf_map_set_num(s, "percentage_reduction",
                        orig ? ((double)(orig - pruned) / (double)orig) * 100.0 : 0.0);
  if (!st) st = pf_map_set_int(s, "num_attention_heads_before", p->n_heads);
  if (!st) st = pf_map_set_int(s, "num_attention_heads_after", nm->config.num_attention_heads);
  if (!st) st = pf_map_set_int(s, "num_key_value_heads_before", p->n_kv);
  if (!st) st = pf_map_set_int(s, "num_key_value_heads_after", kv_after);
  if (!st) st = pf_map_set_int(s, "head_dim", p->head_dim);
  if (!st)
    st = pf_map_set_int(
        s, "kv_cache_bytes_per_token_before",
        (int64_t)(2 * (uint64_t)p->n_layers * (uint64_t)p->n_kv * (uint64_t)p->head_dim * dsz));
  if (!st)
    st = pf_map_set_int(
        s, "kv_cache_bytes_per_token_after",
        (int64_t)(2 * (uint64_t)nm->n_layers * (uint64_t)kv_after * (uint64_t)p->head_dim * dsz));
  if (st) {
    pf_value_release(s);
    return pf_err_set(err, PF_ERR_NOMEM, "statistics: out of memory");
  }
  *out = s;
  return PF_OK;
}

pf_status pf_prune_heads(const pf_model *m, const pf_heads_opts *o, const pf_ctx *ctx,
                         pf_model **out, pf_value **stats, pf_err *err) {
  *out = NULL;
  if (stats) *stats = NULL;
  pf_heads_plan p;
  pf_status st = pf_heads_plan_make(m, o, &p, err);
  if (st) return st;
  pf_model *nm = NULL;
  pf_value *layers = pf_value_list(), *s = NULL;
  int dry = ctx && ctx->dry_run;
  int64_t total = 0, done = 0;
  for (int64_t i = 0; i < p.n_layers; i++)
    total += p.selected[i];
  st = layers ? pf_model_derive(m, &nm, err) : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (int64_t i = 0; !st && p.keep < p.n_kv && i < p.n_layers; i++) {
    if (!p.selected[i]) continue;
    pf_value *e = NULL;
    st = pf_ctx_check_interrupt(ctx, err);
    if (!st) st = prune_one(nm, &p, i, dry, &e, err);
    if (!st && pf_list_push(layers, e)) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    if (st) pf_err_prefix(err, "model.layers.%lld.self_attn", (long long)i);
    pf_ctx_progress(ctx, "prune_heads", (uint64_t)++done, (uint64_t)total);
  }
  if (!st) {
    nm->config.num_attention_heads = p.keep * p.group;
    nm->config.num_key_value_heads = p.keep;
  }
  if (!st && stats) st = heads_stats(m, nm, &p, &s, err);
  if (!st && stats) {
    st = pf_map_set(s, "layers", layers);
    layers = NULL;
    if (st) pf_err_set(err, st, "statistics: out of memory");
  }
  pf_heads_plan_free(&p);
  pf_value_release(layers);
  if (st) {
    pf_value_release(s);
    pf_model_release(nm);
    return st;
  }
  *out = nm;
  if (stats) *stats = s;
  return PF_OK;
}

/* ---- for o_proj recovery ---- */

pf_status pf_heads_kept_channels(const pf_value *result, int64_t layer, int64_t **out, int64_t *n,
                                 pf_err *err) {
  *out = NULL;
  *n = 0;
  const pf_value *ls = result && result->type == PF_V_MAP ? pf_map_get(result, "layers") : NULL;
  int64_t hd = result && result->type == PF_V_MAP ? pf_map_int(result, "head_dim", 0) : 0;
  if (!ls || ls->type != PF_V_LIST || hd <= 0)
    return pf_err_set(err, PF_ERR_INVALID,
                      "kept channels: expected a prune_heads result (with \"layers\" and "
                      "\"head_dim\")");
  for (size_t k = 0; k < ls->u.list.len; k++) {
    const pf_value *e = ls->u.list.items[k];
    if (e->type != PF_V_MAP || pf_map_int(e, "index", -1) != layer) continue;
    const pf_value *kh = pf_map_get(e, "kept_heads");
    if (!kh || kh->type != PF_V_LIST)
      return pf_err_set(err, PF_ERR_INVALID,
                        "kept channels of layer %lld: kept_heads is null (a dry run's result)",
                        (long long)layer);
    int64_t cnt = (int64_t)kh->u.list.len * hd;
    int64_t *c = malloc(sizeof(int64_t) * (size_t)(cnt ? cnt : 1));
    if (!c) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    for (size_t j = 0; j < kh->u.list.len; j++)
      for (int64_t d = 0; d < hd; d++)
        c[(int64_t)j * hd + d] = kh->u.list.items[j]->u.i * hd + d;
    *out = c;
    *n = cnt;
    return PF_OK;
  }
  return pf_err_set(err, PF_ERR_NOT_FOUND, "kept channels: layer %lld was not pruned",
                    (long long)layer);
}

/* ---- head norms from a calibrate result ---- */

void pf_head_norms_free(double **norms, int64_t n_layers) {
  for (int64_t i = 0; norms && i < n_layers; i++)
    free(norms[i]);
  free(norms);
}

static pf_status head_norm_layer(const char *key, const pf_value *list, const pf_model *m,
                                 double **norms, pf_err *err) {
  char *end = NULL;
  long long l = strtoll(key, &end, 10);
  const int64_t nh = m->config.num_attention_heads;
  if (!*key || *end || l < 0 || l >= m->n_layers)
    return pf_err_set(err, PF_ERR_INVALID,
                      "calibration: head_norms key '%s' is not a layer of this model (0-%lld)", key,
                      (long long)m->n_layers - 1);
  if (list->type != PF_V_LIST || (int64_t)list->u.list.len != nh)
    return pf_err_set(err, PF_ERR_INVALID,
                      "calibration: head_norms of layer %lld: expected %lld values "
                      "(num_attention_heads), got %lld (was it computed on another model?)",
                      l, (long long)nh,
                      list->type == PF_V_LIST ? (long long)list->u.list.len : -1LL);
  if (!(norms[l] = malloc(sizeof(double) * (size_t)nh)))
    return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (int64_t h = 0; h < nh; h++) {
    const pf_value *x = list->u.list.items[h];
    if (x->type != PF_V_NUM && x->type != PF_V_INT)
      return pf_err_set(err, PF_ERR_INVALID,
                        "calibration: head_norms of layer %lld: item %lld is %s", l, (long long)h,
                        pf_vtype_name(x->type));
    norms[l][h] = x->type == PF_V_INT ? (double)x->u.i : x->u.n;
  }
  return PF_OK;
}

pf_status pf_head_norms_from_value(const pf_value *v, const pf_model *m, int dry_run, double ***out,
                                   pf_err *err) {
  *out = NULL;
  pf_status cs = pf_calibration_check_model(v, m, dry_run, err);
  if (cs) return cs;
  const pf_value *plan = v && v->type == PF_V_MAP ? pf_map_get(v, "planned") : NULL;
  if (plan && !dry_run)
    return pf_err_set(err, PF_ERR_INVALID,
                      "calibration: a dry run's planned result holds no head norms (give the "
                      "result of a calibrate step that ran)");
  const pf_value *hn = v && v->type == PF_V_MAP ? pf_map_get(v, "head_norms") : NULL;
  if (!plan && (!hn || hn->type != PF_V_MAP))
    return pf_err_set(err, PF_ERR_INVALID,
                      "calibration: expected a calibrate result with \"head_norms\" (attention "
                      "head output norms)");
  double **norms = calloc((size_t)m->n_layers, sizeof *norms);
  if (!norms) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  pf_status st = PF_OK;
  for (size_t k = 0; !plan && !st && k < hn->u.map.len; k++)
    st = head_norm_layer(hn->u.map.keys[k], hn->u.map.vals[k], m, norms, err);
  if (st) {
    pf_head_norms_free(norms, m->n_layers);
    return st;
  }
  if (plan) { /* a dry run: zero norms everywhere, so it goes the real way */
    for (int64_t l = 0; l < m->n_layers && !st; l++)
      if (!(norms[l] = calloc((size_t)m->config.num_attention_heads, sizeof(double))))
        st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    if (st) {
      pf_head_norms_free(norms, m->n_layers);
      return st;
    }
  }
  *out = norms;
  return PF_OK;
}
