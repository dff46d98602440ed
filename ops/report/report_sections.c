/* report_sections.c — the sections of the report built from step results
 * (pruning, layer importance, bias, evaluation, the user's table). Each
 * section looks for its results among the steps and adds nothing when there
 * are none. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"
#include "report_int.h"

/* Heading 1 once per section. */
static pf_status section(rep *r, int *started, const char *title, pf_err *err) {
  if (*started) return PF_OK;
  *started = 1;
  return pf_pdf_heading(r->pdf, 1, title, err);
}

static pf_status sub_heading(rep *r, const char *what, const pf_value *step, pf_err *err) {
  char name[160], h[240];
  rep_step_name(step, name, sizeof name);
  snprintf(h, sizeof h, "%s \xE2\x80\x94 %s", what, name);
  return pf_pdf_heading(r->pdf, 2, h, err);
}

static const char *num_str(rep_strs *st, const pf_value *m, const char *key) {
  char buf[64];
  rep_map_num(m, key, buf, sizeof buf);
  return rep_str(st, "%s", buf);
}

static pf_status kv_checked(rep *r, size_t n, const char **k, const char **v, pf_err *err) {
  for (size_t i = 0; i < n; i++)
    if (!k[i] || !v[i]) return pf_err_set(err, PF_ERR_NOMEM, "report: out of memory");
  return pf_pdf_kv(r->pdf, n, k, v, err);
}

static pf_status table_checked(rep *r, const pf_pdf_table_spec *t, pf_err *err) {
  for (size_t i = 0; i < t->nrows * t->ncols; i++)
    if (!t->cells[i]) return pf_err_set(err, PF_ERR_NOMEM, "report: out of memory");
  return pf_pdf_table(r->pdf, t, err);
}

/* ------------------------------------------------------------ pruning */

static pf_status width_layers(rep *r, const pf_value *layers, pf_err *err) {
  size_t n = layers && layers->type == PF_V_LIST ? layers->u.list.len : 0;
  if (!n) return PF_OK;
  rep_strs st = {0};
  const char **cells = calloc(n * 4, sizeof *cells);
  if (!cells) return pf_err_set(err, PF_ERR_NOMEM, "report: out of memory");
  for (size_t i = 0; i < n; i++) {
    const pf_value *e = layers->u.list.items[i];
    int64_t b = pf_map_int(e, "intermediate_size_before", 0),
            a = pf_map_int(e, "intermediate_size_after", 0);
    cells[i * 4] = rep_str(&st, "%lld", (long long)pf_map_int(e, "index", (int64_t)i));
    cells[i * 4 + 1] = num_str(&st, e, "intermediate_size_before");
    cells[i * 4 + 2] = num_str(&st, e, "intermediate_size_after");
    cells[i * 4 + 3] =
        b > 0 ? rep_str(&st, "%.1f", 100.0 * (double)a / (double)b) : rep_str(&st, "\xE2\x80\x94");
  }
  static const char *const head[4] = {"Layer", "Width before", "Width after", "Kept (%)"};
  static const pf_pdf_align al[4] = {PF_PDF_RIGHT, PF_PDF_RIGHT, PF_PDF_RIGHT, PF_PDF_RIGHT};
  static const double w[4] = {1, 1.4, 1.4, 1.2};
  pf_pdf_table_spec t = {
      .ncols = 4, .header = head, .align = al, .widths = w, .nrows = n, .cells = cells, .zebra = 1};
  pf_status s = table_checked(r, &t, err);
  free(cells);
  rep_strs_free(&st);
  return s;
}

/* Head pruning: which key/value heads each layer kept (two runs that keep the same
 * number of heads can keep different ones). */
static pf_status heads_layers(rep *r, const pf_value *layers, pf_err *err) {
  size_t n = layers && layers->type == PF_V_LIST ? layers->u.list.len : 0;
  if (!n) return PF_OK;
  rep_strs st = {0};
  const char **cells = calloc(n * 3, sizeof *cells);
  if (!cells) return pf_err_set(err, PF_ERR_NOMEM, "report: out of memory");
  for (size_t i = 0; i < n; i++) {
    const pf_value *e = layers->u.list.items[i];
    char kept[512];
    rep_value(e->type == PF_V_MAP ? pf_map_get(e, "kept_kv_heads") : NULL, kept, sizeof kept);
    cells[i * 3] = rep_str(&st, "%lld", (long long)pf_map_int(e, "index", (int64_t)i));
    cells[i * 3 + 1] = rep_str(&st, "%s \xE2\x86\x92 %s", num_str(&st, e, "kv_heads_before"),
                               num_str(&st, e, "kv_heads_after"));
    cells[i * 3 + 2] = rep_str(&st, "%s", strcmp(kept, "null") ? kept : "\xE2\x80\x94");
  }
  static const char *const head[3] = {"Layer", "Key/value heads", "Kept key/value heads"};
  static const pf_pdf_align al[3] = {PF_PDF_RIGHT, PF_PDF_RIGHT, PF_PDF_LEFT};
  static const double w[3] = {0.8, 1.4, 3.0};
  pf_pdf_table_spec t = {
      .ncols = 3, .header = head, .align = al, .widths = w, .nrows = n, .cells = cells, .zebra = 1};
  pf_status s = table_checked(r, &t, err);
  free(cells);
  rep_strs_free(&st);
  return s;
}

static pf_status pruning_step(rep *r, const pf_value *step, const pf_value *res, int depth,
                              pf_err *err) {
  rep_strs st = {0};
  const char *k[12], *v[12];
  size_t n = 0;
  char pct[64];
  rep_num(pf_map_num(res, "percentage_reduction", NAN), pct, sizeof pct);
  k[n] = "Parameters before", v[n++] = num_str(&st, res, "original_parameters");
  k[n] = "Parameters after", v[n++] = num_str(&st, res, "pruned_parameters");
  k[n] = "Reduction", v[n++] = rep_str(&st, "%s (%s %%)", num_str(&st, res, "reduction"), pct);
  if (depth == 1) {
    char rl[512];
    rep_value(pf_map_get(res, "removed_layers"), rl, sizeof rl);
    k[n] = "Layers",
    v[n++] = rep_str(&st, "%s \xE2\x86\x92 %s", num_str(&st, res, "original_layer_count"),
                     num_str(&st, res, "final_layer_count"));
    k[n] = "Removed layers", v[n++] = rep_str(&st, "%s", rl);
    k[n] = "Layer reduction (%)", v[n++] = num_str(&st, res, "layer_reduction_percentage");
  } else if (depth == 2) { /* prune_heads */
    k[n] = "Attention heads",
    v[n++] = rep_str(&st, "%s \xE2\x86\x92 %s", num_str(&st, res, "num_attention_heads_before"),
                     num_str(&st, res, "num_attention_heads_after"));
    k[n] = "Key/value heads",
    v[n++] = rep_str(&st, "%s \xE2\x86\x92 %s", num_str(&st, res, "num_key_value_heads_before"),
                     num_str(&st, res, "num_key_value_heads_after"));
    k[n] = "head_dim", v[n++] = num_str(&st, res, "head_dim");
    k[n] = "KV cache bytes per token",
    v[n++] =
        rep_str(&st, "%s \xE2\x86\x92 %s", num_str(&st, res, "kv_cache_bytes_per_token_before"),
                num_str(&st, res, "kv_cache_bytes_per_token_after"));
  } else {
    const pf_value *p = pf_map_get(step, "params");
    if (p && p->type == PF_V_MAP && pf_map_has(p, "expansion_divisor")) {
      char req[64] = "";
      const pf_value *pp = pf_map_get(p, "pruning_percentage");
      if (pp) rep_value(pp, req, sizeof req);
      k[n] = "Requested", /* the divisor moves the widths away from the percentage */
          v[n++] = rep_str(&st, "%s%s%swidths rounded down to a multiple of %lld",
                           pp ? "remove " : "", req, pp ? " % of each layer's neurons; " : "",
                           (long long)pf_map_int(p, "expansion_divisor", 0));
    }
    k[n] = "Expansion rate (% of hidden size)", v[n++] = num_str(&st, res, "expansion_rate");
    if (pf_map_has(res, "pruned_layers"))
      k[n] = "Pruned layers", v[n++] = rep_str(&st, "%s of %s", num_str(&st, res, "pruned_layers"),
                                               num_str(&st, res, "total_layers"));
  }
  pf_status s = sub_heading(r,
                            depth == 2 ? "Attention-head pruning"
                            : depth    ? "Depth pruning"
                                       : "Width pruning",
                            step, err);
  if (!s) s = kv_checked(r, n, k, v, err);
  if (!s && !depth) s = width_layers(r, pf_map_get(res, "layers"), err);
  if (!s && depth == 2) s = heads_layers(r, pf_map_get(res, "layers"), err);
  rep_strs_free(&st);
  return s;
}

pf_status rep_pruning(rep *r, pf_err *err) {
  int started = 0;
  pf_status s = PF_OK;
  for (size_t i = 0; !s && i < rep_nsteps(r); i++) {
    const pf_value *step = rep_step(r, i), *res = rep_result(step);
    const char *op = rep_op(step);
    /* 0 width, 1 depth, 2 heads */
    int depth = strcmp(op, "prune_depth") == 0 ? 1 : strcmp(op, "prune_heads") == 0 ? 2 : 0;
    if (!res || (!depth && strcmp(op, "prune_width") != 0) ||
        !pf_map_has(res, "original_parameters"))
      continue;
    s = section(r, &started, "Pruning", err);
    if (!s) s = pruning_step(r, step, res, depth, err);
  }
  return s;
}

/* ------------------------------------------------------------ importance */

/* Layers removed by prune_depth steps that used this importance step. */
static size_t removed_by(const rep *r, const char *id, int64_t *out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; id && i < rep_nsteps(r); i++) {
    const pf_value *s = rep_step(r, i), *p = s ? pf_map_get(s, "params") : NULL,
                   *res = rep_result(s);
    if (strcmp(rep_op(s), "prune_depth") != 0 || !p || p->type != PF_V_MAP || !res) continue;
    if (strcmp(pf_map_str(p, "importance", ""), id) != 0) continue;
    const pf_value *rl = pf_map_get(res, "removed_layers");
    for (size_t j = 0; rl && rl->type == PF_V_LIST && j < rl->u.list.len && n < cap; j++)
      if (rl->u.list.items[j]->type == PF_V_INT) out[n++] = rl->u.list.items[j]->u.i;
  }
  return n;
}

/* "Least important: layer 2 (0.1295), ..." for the three lowest scores. */
static void lowest(const pf_value *imp, char *buf, size_t n) {
  size_t o = (size_t)snprintf(buf, n, "Least important layers (lowest 1 \xE2\x88\x92 cosine): ");
  uint8_t used[4096] = {0};
  size_t len = imp->u.map.len < sizeof used ? imp->u.map.len : sizeof used;
  for (int k = 0; k < 3 && o < n; k++) {
    size_t best = len;
    for (size_t i = 0; i < len; i++) {
      const pf_value *v = imp->u.map.vals[i];
      if (used[i] || v->type != PF_V_NUM) continue;
      if (best == len || v->u.n < imp->u.map.vals[best]->u.n) best = i;
    }
    if (best == len) break;
    used[best] = 1;
    char num[32];
    rep_num(imp->u.map.vals[best]->u.n, num, sizeof num);
    o += (size_t)snprintf(buf + o, n - o, "%slayer %s (%s)", k ? ", " : "", imp->u.map.keys[best],
                          num);
  }
  if (o < n) snprintf(buf + o, n - o, ".");
}

pf_status rep_importance(rep *r, pf_err *err) {
  int started = 0;
  pf_status s = PF_OK;
  for (size_t i = 0; !s && i < rep_nsteps(r); i++) {
    const pf_value *step = rep_step(r, i), *res = rep_result(step);
    const pf_value *imp = res ? pf_map_get(res, "importance") : NULL;
    if (!imp || imp->type != PF_V_MAP || imp->u.map.len == 0) continue;
    int64_t hl[512];
    size_t nh = removed_by(r, pf_map_str(step, "id", NULL), hl, 512);
    pf_value *files = pf_value_list();
    char sub[32], *png = NULL;
    snprintf(sub, sizeof sub, "importance_%zu", i);
    pf_plot_out o = {.dir = r->chart_dir,
                     .format = PF_CHART_PNG,
                     .width_in = 8.0,
                     .height_in = 4.2,
                     .no_footer = 1,
                     .ctx = r->ctx};
    s = files ? section(r, &started, "Layer importance", err)
              : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    if (!s) s = sub_heading(r, "Layer importance", step, err);
    if (!s) s = pf_plot_importance(res, hl, nh, &o, files, err);
    if (!s && !(png = rep_chart_path(r, sub))) s = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    if (!s && rename(files->u.list.items[0]->u.s, png) != 0)
      s = pf_err_set(err, PF_ERR_IO, "report: cannot rename the importance chart");
    if (!s) {
      char text[800];
      lowest(imp, text, sizeof text);
      const pf_value *dv = pf_map_get(res, "data");
      if (dv && dv->type == PF_V_MAP && pf_map_has(dv, "samples")) {
        size_t o = strlen(text);
        const int64_t cut = pf_map_int(dv, "samples_truncated", 0);
        o += (size_t)snprintf(
            text + o, sizeof text - o, " Calibration text: %lld samples, %lld tokens",
            (long long)pf_map_int(dv, "samples", 0), (long long)pf_map_int(dv, "tokens", 0));
        if (cut && o < sizeof text)
          o += (size_t)snprintf(text + o, sizeof text - o, "; %lld samples cut to max_length",
                                (long long)cut);
        if (o < sizeof text) snprintf(text + o, sizeof text - o, ".");
      }
      s = pf_pdf_paragraph(r->pdf, text, err);
    }
    if (!s) {
      char cap[300];
      snprintf(cap, sizeof cap,
               "Layer importance, 1 \xE2\x88\x92 cosine similarity of each layer's input and "
               "output on the calibration text%s.",
               nh ? "; the layers removed by depth pruning in red" : "");
      s = rep_figure(r, png, cap, err);
    }
    free(png);
    pf_value_release(files);
  }
  return s;
}

/* ------------------------------------------------------------ bias */

static const char *change_str(rep_strs *st, const pf_value *e) {
  const pf_value *c = e && e->type == PF_V_MAP ? pf_map_get(e, "change_percent") : NULL;
  if (!c || c->type != PF_V_NUM || !isfinite(c->u.n)) {
    const pf_value *b = e && e->type == PF_V_MAP ? pf_map_get(e, "before") : NULL;
    const int zero = b && b->type == PF_V_NUM && b->u.n == 0; /* no percentage of 0 */
    return rep_str(st, "\xE2\x80\x94%s", zero ? " (before is 0)" : "");
  }
  return rep_str(st, "%+.1f", c->u.n);
}

/* Rows "name | before | after | change" of a map of {before, after, change_percent}. */
static pf_status compare_table(rep *r, const char *first, const pf_value *m, const pf_value *extra,
                               const char *extra_name, pf_err *err) {
  size_t n = (m && m->type == PF_V_MAP ? m->u.map.len : 0) + (extra != NULL);
  if (!n) return PF_OK;
  rep_strs st = {0};
  const char **cells = calloc(n * 4, sizeof *cells);
  if (!cells) return pf_err_set(err, PF_ERR_NOMEM, "report: out of memory");
  for (size_t i = 0; i < n; i++) {
    int last = extra && i == n - 1;
    const pf_value *e = last ? extra : m->u.map.vals[i];
    cells[i * 4] = rep_str(&st, "%s", last ? extra_name : m->u.map.keys[i]);
    cells[i * 4 + 1] = num_str(&st, e, "before");
    cells[i * 4 + 2] = num_str(&st, e, "after");
    cells[i * 4 + 3] = change_str(&st, e);
  }
  const char *head[4] = {first, "Before", "After", "Change (%)"};
  static const pf_pdf_align al[4] = {PF_PDF_LEFT, PF_PDF_RIGHT, PF_PDF_RIGHT, PF_PDF_RIGHT};
  static const double w[4] = {2.2, 1.2, 1.2, 1.0};
  pf_pdf_table_spec t = {
      .ncols = 4, .header = head, .align = al, .widths = w, .nrows = n, .cells = cells, .zebra = 1};
  pf_status s = table_checked(r, &t, err);
  free(cells);
  rep_strs_free(&st);
  return s;
}

/* The pairs' overall before/after: {pair_k: {overall: {...}}} -> {pair_k: {...}}. */
static pf_status pairs_overall(rep *r, const pf_value *pairs, pf_err *err) {
  if (!pairs || pairs->type != PF_V_MAP || !pairs->u.map.len) return PF_OK;
  pf_value *m = pf_value_map();
  pf_status s = m ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (size_t i = 0; !s && i < pairs->u.map.len; i++) {
    pf_value *o =
        pairs->u.map.vals[i]->type == PF_V_MAP ? pf_map_get(pairs->u.map.vals[i], "overall") : NULL;
    if (!o) continue;
    pf_value_retain(o);
    if (pf_map_set(m, pairs->u.map.keys[i], o)) s = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  if (!s && m->u.map.len) s = compare_table(r, "Prompt pair (overall)", m, NULL, NULL, err);
  pf_value_release(m);
  return s;
}

/* The prompts of each pair, and how they were compared: a reviewer reads pair_3 in
 * the tables above as these two prompts. */
static pf_status pairs_prompts(rep *r, const pf_value *pairs, pf_err *err) {
  size_t n = pairs && pairs->type == PF_V_MAP ? pairs->u.map.len : 0;
  if (!n) return PF_OK;
  rep_strs st = {0};
  const char **cells = calloc(n * 4, sizeof *cells);
  if (!cells) return pf_err_set(err, PF_ERR_NOMEM, "report: out of memory");
  int pooled = 0;
  for (size_t i = 0; i < n; i++) {
    const pf_value *e = pairs->u.map.vals[i];
    const char *al = e->type == PF_V_MAP ? pf_map_str(e, "aligned", "") : "";
    pooled |= !strcmp(al, "mean_pooled");
    cells[i * 4] = rep_str(&st, "%s", pairs->u.map.keys[i]);
    cells[i * 4 + 1] = rep_str(&st, "%s", e->type == PF_V_MAP ? pf_map_str(e, "prompt1", "") : "");
    cells[i * 4 + 2] = rep_str(&st, "%s", e->type == PF_V_MAP ? pf_map_str(e, "prompt2", "") : "");
    cells[i * 4 + 3] = rep_str(&st, "%s", !strcmp(al, "mean_pooled") ? "mean-pooled" : "by token");
  }
  static const char *const head[4] = {"Pair", "Prompt 1", "Prompt 2", "Compared"};
  static const pf_pdf_align al[4] = {PF_PDF_LEFT, PF_PDF_LEFT, PF_PDF_LEFT, PF_PDF_LEFT};
  static const double w[4] = {0.8, 2.6, 2.6, 1.0};
  pf_pdf_table_spec t = {
      .ncols = 4, .header = head, .align = al, .widths = w, .nrows = n, .cells = cells, .zebra = 1};
  pf_status s = table_checked(r, &t, err);
  if (!s && pooled)
    s = pf_pdf_note(r->pdf,
                    "Mean-pooled: the two prompts have different numbers of tokens, so each "
                    "activation is averaged over the tokens before the difference is taken "
                    "(OptiPFair reports no metric for such a pair).",
                    err);
  free(cells);
  rep_strs_free(&st);
  return s;
}

static pf_status chart_figure(rep *r,
                              pf_status (*draw)(rep *, const pf_value *, pf_value *, pf_err *),
                              const pf_value *res, const char *name, const char *caption,
                              pf_err *err) {
  pf_value *files = pf_value_list();
  char *png = rep_chart_path(r, name);
  pf_status s =
      files && png ? draw(r, res, files, err) : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!s && rename(files->u.list.items[0]->u.s, png) != 0)
    s = pf_err_set(err, PF_ERR_IO, "report: cannot rename chart %s", name);
  if (!s) s = rep_figure(r, png, caption, err);
  pf_value_release(files);
  free(png);
  return s;
}

static pf_status draw_comparison(rep *r, const pf_value *res, pf_value *files, pf_err *err) {
  pf_plot_out o = {.dir = r->chart_dir,
                   .format = PF_CHART_PNG,
                   .width_in = 8.0,
                   .height_in = 4.6,
                   .no_footer = 1,
                   .ctx = r->ctx};
  return pf_plot_comparison(res, 1, &o, files, err);
}

static pf_status draw_neurons(rep *r, const pf_value *res, pf_value *files, pf_err *err) {
  pf_plot_out o = {.dir = r->chart_dir,
                   .format = PF_CHART_PNG,
                   .width_in = 8.0,
                   .height_in = 4.2,
                   .no_footer = 1,
                   .ctx = r->ctx};
  return pf_plot_neurons(res, 40, &o, files, err);
}

static pf_status neuron_top(rep *r, const pf_value *top, int after, pf_err *err) {
  size_t n = top && top->type == PF_V_LIST ? top->u.list.len : 0;
  if (n > 15) n = 15;
  if (!n) return PF_OK;
  int parent = 0; /* a depth-pruned model: its layers' numbers before pruning too */
  for (size_t i = 0; i < n; i++)
    parent |=
        top->u.list.items[i]->type == PF_V_MAP && pf_map_has(top->u.list.items[i], "source_layer");
  const size_t nc = parent ? 4 : 3;
  rep_strs st = {0};
  const char **cells = calloc(n * nc, sizeof *cells);
  if (!cells) return pf_err_set(err, PF_ERR_NOMEM, "report: out of memory");
  for (size_t i = 0; i < n; i++) {
    const pf_value *e = top->u.list.items[i];
    size_t c = i * nc;
    cells[c++] = rep_str(&st, "%s", e->type == PF_V_MAP ? pf_map_str(e, "key", "?") : "?");
    if (parent) cells[c++] = num_str(&st, e, "source_layer");
    cells[c++] = num_str(&st, e, "neuron");
    cells[c] = num_str(&st, e, "difference");
  }
  char note[320];
  snprintf(note, sizeof note, "The %s%s%s:", n == 1 ? "largest neuron difference" : "",
           n == 1 ? "" : rep_str(&st, "%zu largest neuron differences", n),
           parent  ? " of the pruned model, whose layers are numbered anew (the layer's number "
                     "before pruning in the second column)"
           : after ? " of the model after pruning"
                   : "");
  pf_status s0 = pf_pdf_paragraph(r->pdf, note, err);
  if (s0) {
    free(cells);
    rep_strs_free(&st);
    return s0;
  }
  static const char *const head3[3] = {"Activation", "Neuron", "Difference"},
                           *head4[4] = {"Activation", "Layer before pruning", "Neuron",
                                        "Difference"};
  static const pf_pdf_align al[4] = {PF_PDF_LEFT, PF_PDF_RIGHT, PF_PDF_RIGHT, PF_PDF_RIGHT};
  static const double w3[3] = {2.5, 1, 1.2}, w4[4] = {2.5, 1.3, 1, 1.2};
  pf_pdf_table_spec t = {.ncols = nc,
                         .header = parent ? head4 : head3,
                         .align = al,
                         .widths = parent ? w4 : w3,
                         .nrows = n,
                         .cells = cells};
  pf_status s = table_checked(r, &t, err);
  free(cells);
  rep_strs_free(&st);
  return s;
}

static pf_status bias_step(rep *r, const pf_value *step, const pf_value *res, size_t i,
                           pf_err *err) {
  const pf_value *cmp = pf_map_get(res, "comparison"), *sum = pf_map_get(res, "summary");
  const pf_value *neu = pf_map_get(res, "neurons");
  char name[48];
  pf_status s = sub_heading(r, "Bias metrics", step, err);
  if (!s && cmp && cmp->type == PF_V_MAP) {
    s = pf_pdf_paragraph(r->pdf,
                         "Mean absolute activation difference between the two prompts of each "
                         "pair (OptiPFair's bias metric, averaged over pairs) before and after "
                         "pruning; a negative change means the pruned model treats the prompts "
                         "more alike.",
                         err);
    if (!s)
      s = compare_table(r, "Component", pf_map_get(cmp, "components"), pf_map_get(cmp, "overall"),
                        "overall", err);
    snprintf(name, sizeof name, "bias_%zu", i);
    if (!s)
      s = chart_figure(r, draw_comparison, res, name,
                       "Bias before and after pruning per component.", err);
    if (!s) s = pairs_overall(r, pf_map_get(cmp, "pairs"), err);
    if (!s) s = pairs_prompts(r, pf_map_get(res, "pairs"), err);
  } else if (!s && sum && sum->type == PF_V_MAP && sum->u.map.len) {
    rep_strs st = {0};
    const char *k[32], *v[32];
    size_t n = 0;
    for (size_t j = 0; j < sum->u.map.len && n < 32; j++, n++) {
      k[n] = sum->u.map.keys[j];
      v[n] = num_str(&st, sum, sum->u.map.keys[j]);
    }
    s = pf_pdf_paragraph(
        r->pdf, "Mean activation difference per component, averaged over the prompt pairs.", err);
    if (!s) s = kv_checked(r, n, k, v, err);
    if (!s) s = pairs_prompts(r, pf_map_get(res, "pairs"), err);
    rep_strs_free(&st);
  }
  if (!s && neu && neu->type == PF_V_MAP) {
    snprintf(name, sizeof name, "neurons_%zu", i);
    const int after = cmp && cmp->type == PF_V_MAP;
    s = chart_figure(r, draw_neurons, res, name,
                     after ? "Per-neuron difference of the mean-pooled activations of the two "
                             "prompts, averaged over pairs, in the model after pruning."
                           : "Per-neuron difference of the mean-pooled activations of the two "
                             "prompts, averaged over pairs.",
                     err);
    if (!s) s = neuron_top(r, pf_map_get(neu, "top"), after, err);
  }
  return s;
}

pf_status rep_bias(rep *r, pf_err *err) {
  int started = 0;
  pf_status s = PF_OK;
  for (size_t i = 0; !s && i < rep_nsteps(r); i++) {
    const pf_value *step = rep_step(r, i), *res = rep_result(step);
    if (!res || strcmp(rep_op(step), "metrics") != 0) continue;
    if (!pf_map_has(res, "comparison") && !pf_map_has(res, "summary") &&
        !pf_map_has(res, "neurons"))
      continue;
    s = section(r, &started, "Bias", err);
    if (!s) s = bias_step(r, step, res, i, err);
  }
  return s;
}

/* ------------------------------------------------------------ evaluation */

/* A timing figure with the precision its noise supports, or a dash. */
static const char *speed_str(rep_strs *st, const pf_value *m, const char *key, const char *fmt) {
  const pf_value *v = m && m->type == PF_V_MAP ? pf_map_get(m, key) : NULL;
  if (!v || (v->type != PF_V_NUM && v->type != PF_V_INT)) return rep_str(st, "\xE2\x80\x94");
  return rep_str(st, fmt, v->type == PF_V_NUM ? v->u.n : (double)v->u.i);
}

/* A parameter of the step as given, else the op's default (results.json keeps the
 * parameters the recipe gave). */
static int64_t param_int(const pf_value *params, const char *op, const char *key) {
  if (params && params->type == PF_V_MAP && pf_map_has(params, key))
    return pf_map_int(params, key, 0);
  const pf_op *o = pf_op_find(op);
  for (size_t i = 0; o && i < o->n_params; i++)
    if (!strcmp(o->params[i].name, key) && o->params[i].def)
      return strtoll(o->params[i].def, NULL, 10);
  return 0;
}

/* "min / mean / max" of a time_inference map, 3 significant digits. */
static const char *spread_str(rep_strs *st, const pf_value *m) {
  if (!m || m->type != PF_V_MAP || !pf_map_has(m, "avg_time")) return rep_str(st, "\xE2\x80\x94");
  return rep_str(st, "%#.3g / %#.3g / %#.3g", pf_map_num(m, "min_time", NAN),
                 pf_map_num(m, "avg_time", NAN), pf_map_num(m, "max_time", NAN));
}

static pf_status eval_step(rep *r, const pf_value *step, const pf_value *res, pf_err *err) {
  rep_strs st = {0};
  const pf_value *p = pf_map_get(step, "params"), *cmp = pf_map_get(res, "compare");
  const pf_value *sp = pf_map_get(res, "speed"), *csp = pf_map_get(res, "compare_speed");
  const pf_value *ic = pf_map_get(res, "inference_comparison");
  int parent = (cmp && cmp->type == PF_V_MAP) || (csp && csp->type == PF_V_MAP);
  const char *dash = "\xE2\x80\x94";
  const char *cells[12 * 3];
  size_t n = 0;
#define ROW(name, a, b) (cells[n * 3] = (name), cells[n * 3 + 1] = (a), cells[n * 3 + 2] = (b), n++)
  if (pf_map_has(res, "perplexity")) {
    ROW("Perplexity", num_str(&st, cmp, "perplexity"), num_str(&st, res, "perplexity"));
    ROW("Mean NLL (nats/token)", num_str(&st, cmp, "nll"), num_str(&st, res, "nll"));
  }
  if (pf_map_has(res, "kl_divergence"))
    ROW("KL divergence (parent \xE2\x80\x96 model)", dash, num_str(&st, res, "kl_divergence"));
  if (pf_map_has(res, "top1_agreement")) {
    double t = pf_map_num(res, "top1_agreement", NAN);
    ROW("Top-1 agreement with the parent (%)", dash, rep_str(&st, "%.2f", t * 100));
  }
  if (sp && sp->type == PF_V_MAP) { /* times vary run to run: the spread is shown */
    ROW("Generation speed (tokens/s, mean time)", speed_str(&st, csp, "tokens_per_second", "%.1f"),
        speed_str(&st, sp, "tokens_per_second", "%.1f"));
    ROW("Time per run (s): min / mean / max", spread_str(&st, csp), spread_str(&st, sp));
  }
  if (ic && ic->type == PF_V_MAP) {
    ROW("Speedup (parent mean time / model mean time)", dash,
        speed_str(&st, ic, "speedup", "%.2f"));
    const double pm = pf_map_num(csp, "min_time", 0), mm = pf_map_num(sp, "min_time", 0);
    if (pm > 0 && mm > 0)
      ROW("Speedup of the fastest runs (parent min / model min)", dash,
          rep_str(&st, "%.2f", pm / mm));
  }
#undef ROW
  const char *model = p && p->type == PF_V_MAP ? pf_map_str(p, "model", "model") : "model";
  const char *pname = p && p->type == PF_V_MAP ? pf_map_str(p, "compare", "parent") : "parent";
  const char *head[3] = {"Metric", rep_str(&st, "Parent (%s)", pname),
                         rep_str(&st, "Model (%s)", model)};
  static const pf_pdf_align al[3] = {PF_PDF_LEFT, PF_PDF_RIGHT, PF_PDF_RIGHT};
  static const double w3[3] = {2.2, 1.5, 1.5}, w2[2] = {2.4, 1.2};
  const char *cells2[8 * 2], *head2[2] = {"Metric", head[2]};
  for (size_t i = 0; i < n; i++)
    cells2[i * 2] = cells[i * 3], cells2[i * 2 + 1] = cells[i * 3 + 2];
  pf_pdf_table_spec t = {.ncols = parent ? 3 : 2,
                         .header = parent ? head : head2,
                         .align = al,
                         .widths = parent ? w3 : w2,
                         .nrows = n,
                         .cells = parent ? cells : cells2,
                         .zebra = 1};
  pf_status s = sub_heading(r, "Evaluation", step, err);
  if (!s && n) s = table_checked(r, &t, err);
  const pf_value *d = pf_map_get(res, "data");
  if (!s && d && d->type == PF_V_MAP) {
    char note[400];
    const int64_t cut = pf_map_int(d, "samples_truncated", 0);
    snprintf(note, sizeof note,
             "Perplexity text: %lld samples, %lld tokens, %lld predicted positions%s.",
             (long long)pf_map_int(d, "samples", 0), (long long)pf_map_int(d, "tokens", 0),
             (long long)pf_map_int(res, "predicted_tokens", 0),
             cut ? rep_str(&st, "; %lld samples cut to max_length %lld", (long long)cut,
                           (long long)param_int(p, "evaluate", "max_length"))
                 : "");
    s = pf_pdf_note(r->pdf, note, err);
  }
  if (!s && sp && sp->type == PF_V_MAP) {
    char note[400];
    const long long runs = (long long)pf_map_int(sp, "num_runs", 0),
                    warm = (long long)param_int(p, "evaluate", "warmup_runs");
    snprintf(note, sizeof note,
             "Generation speed: %lld timed run%s of %lld new tokens each after %lld warm-up "
             "run%s, greedy, one prompt. Times vary from run to run (min / max above): a speedup "
             "inside that spread is not a measured difference.",
             runs, runs == 1 ? "" : "s", (long long)pf_map_int(sp, "generated_tokens", 0), warm,
             warm == 1 ? "" : "s");
    s = pf_pdf_note(r->pdf, note, err);
  }
  rep_strs_free(&st);
  return s;
}

pf_status rep_eval(rep *r, pf_err *err) {
  int started = 0;
  pf_status s = PF_OK;
  for (size_t i = 0; !s && i < rep_nsteps(r); i++) {
    const pf_value *step = rep_step(r, i), *res = rep_result(step);
    if (!res || strcmp(rep_op(step), "evaluate") != 0) continue;
    s = section(r, &started, "Evaluation", err);
    if (!s) s = eval_step(r, step, res, err);
  }
  return s;
}

/* ------------------------------------------------------------ recovery */

/* One evaluate step of a reconstructed model: parent, pruned before recovery,
 * recovered; then the share of the perplexity gap closed. */
static pf_status recovery_step(rep *r, const pf_value *step, const pf_value *rv, pf_err *err) {
  rep_strs st = {0};
  const char *dash = "\xE2\x80\x94", *cells[4 * 4];
  size_t n = 0;
  int kl = pf_map_has(rv, "kl_before");
#define ROW(name, a, b, c)                                                                         \
  (cells[n * 4] = (name), cells[n * 4 + 1] = (a), cells[n * 4 + 2] = (b), cells[n * 4 + 3] = (c),  \
   n++)
  ROW("Perplexity",
      pf_map_has(rv, "parent_perplexity") ? num_str(&st, rv, "parent_perplexity") : dash,
      num_str(&st, rv, "perplexity_before"), num_str(&st, rv, "perplexity_after"));
  char pn[64]; /* the parent's NLL is the log of its perplexity */
  rep_num(log(pf_map_num(rv, "parent_perplexity", NAN)), pn, sizeof pn);
  ROW("Mean NLL (nats/token)", pf_map_has(rv, "parent_perplexity") ? rep_str(&st, "%s", pn) : dash,
      num_str(&st, rv, "nll_before"), num_str(&st, rv, "nll_after"));
  if (kl) {
    ROW("KL divergence (parent \xE2\x80\x96 model)", dash, num_str(&st, rv, "kl_before"),
        num_str(&st, rv, "kl_after"));
    ROW("Top-1 agreement with the parent (%)", dash,
        rep_str(&st, "%.2f", 100 * pf_map_num(rv, "top1_before", NAN)),
        rep_str(&st, "%.2f", 100 * pf_map_num(rv, "top1_after", NAN)));
  }
#undef ROW
  static const char *head[4] = {"Metric", "Parent", "Pruned", "Recovered"};
  static const pf_pdf_align al[4] = {PF_PDF_LEFT, PF_PDF_RIGHT, PF_PDF_RIGHT, PF_PDF_RIGHT};
  static const double w[4] = {2.4, 1.0, 1.0, 1.0};
  pf_pdf_table_spec t = {
      .ncols = 4, .header = head, .align = al, .widths = w, .nrows = n, .cells = cells, .zebra = 1};
  pf_status s = sub_heading(r, "Recovery", step, err);
  if (!s) s = table_checked(r, &t, err);
  if (!s && pf_map_has(rv, "gap_recovered")) {
    char note[200];
    snprintf(note, sizeof note,
             "Share of the perplexity gap to the parent closed by the reconstruction: %.1f %%.",
             100 * pf_map_num(rv, "gap_recovered", NAN));
    s = pf_pdf_note(r->pdf, note, err);
  }
  rep_strs_free(&st);
  return s;
}

/* How a prune_width / prune_heads step reconstructed (its "reconstruct" figures). */
static pf_status recovery_how(rep *r, const pf_value *step, const pf_value *info, pf_err *err) {
  char name[160], note[600];
  rep_step_name(step, name, sizeof name);
  snprintf(note, sizeof note,
           "Reconstruction in %s: %s' = W C[:,K] (C[K,K] + %g mean(diag C[K,K]) I)^-1 "
           "for %lld layers, C summed over %lld calibration tokens (%lld layers from the "
           "cache); collecting C %.3g s, solving %.3g s.",
           name, strcmp(rep_op(step), "prune_heads") ? "down_proj" : "o_proj",
           pf_map_num(info, "damping", NAN), (long long)pf_map_int(info, "layers", 0),
           (long long)pf_map_int(info, "tokens", 0),
           (long long)pf_map_int(info, "cached_layers", 0),
           pf_map_num(info, "collect_seconds", NAN), pf_map_num(info, "solve_seconds", NAN));
  return pf_pdf_note(r->pdf, note, err);
}

pf_status rep_recovery(rep *r, pf_err *err) {
  int started = 0;
  pf_status s = PF_OK;
  for (size_t i = 0; !s && i < rep_nsteps(r); i++) {
    const pf_value *step = rep_step(r, i), *res = rep_result(step);
    const pf_value *rv = res ? pf_map_get(res, "recovery") : NULL;
    const pf_value *info = res ? pf_map_get(res, "reconstruct") : NULL;
    if (rv && rv->type == PF_V_MAP && !strcmp(rep_op(step), "evaluate")) {
      s = section(r, &started, "Recovery", err);
      if (!s) s = recovery_step(r, step, rv, err);
    } else if (info && info->type == PF_V_MAP &&
               (!strcmp(rep_op(step), "prune_width") || !strcmp(rep_op(step), "prune_heads"))) {
      s = section(r, &started, "Recovery", err);
      if (!s) s = recovery_how(r, step, info, err);
    }
  }
  return s;
}

/* ------------------------------------------------------------ user table */

pf_status rep_user_table(rep *r, const pf_value *table, pf_err *err) {
  if (!table || table->type != PF_V_LIST) return PF_OK;
  const char *cols[16];
  size_t nc = 0, nr = table->u.list.len, dropped = 0;
  for (size_t i = 0; i < nr; i++) { /* columns: keys in first-seen order */
    const pf_value *row = table->u.list.items[i];
    for (size_t k = 0; k < row->u.map.len; k++) {
      size_t j = 0;
      while (j < nc && strcmp(cols[j], row->u.map.keys[k]) != 0)
        j++;
      if (j == nc && nc < 16)
        cols[nc++] = row->u.map.keys[k];
      else if (j == nc)
        dropped++;
    }
  }
  pf_status s = pf_pdf_heading(r->pdf, 1, "Table", err);
  if (s || nc == 0) return s ? s : pf_pdf_note(r->pdf, "The table has no columns.", err);
  rep_strs st = {0};
  const char **cells = calloc(nr * nc > 0 ? nr * nc : 1, sizeof *cells);
  pf_pdf_align al[16];
  if (!cells) return pf_err_set(err, PF_ERR_NOMEM, "report: out of memory");
  for (size_t j = 0; j < nc; j++) {
    int numeric = 1;
    for (size_t i = 0; i < nr; i++) {
      const pf_value *v = pf_map_get(table->u.list.items[i], cols[j]);
      char buf[256];
      if (v && v->type == PF_V_NUM && isnan(v->u.n)) /* printf's "-nan" for some NaNs */
        snprintf(buf, sizeof buf, "nan");
      else if (v && v->type == PF_V_NUM)
        snprintf(buf, sizeof buf, "%.6g", v->u.n);
      else if (v)
        rep_value(v, buf, sizeof buf);
      else
        buf[0] = '\0';
      numeric &= !v || v->type == PF_V_NUM || v->type == PF_V_INT;
      cells[i * nc + j] = rep_str(&st, "%s", buf);
    }
    al[j] = numeric ? PF_PDF_RIGHT : PF_PDF_LEFT;
  }
  pf_pdf_table_spec t = {
      .ncols = nc, .header = cols, .align = al, .nrows = nr, .cells = cells, .zebra = 1};
  s = table_checked(r, &t, err);
  if (!s && dropped) s = pf_pdf_note(r->pdf, "Columns beyond the 16th are not shown.", err);
  free(cells);
  rep_strs_free(&st);
  return s;
}
