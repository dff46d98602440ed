/* metrics.c — op "metrics": OptiPFair's calculate_bias_metrics for every pair
 * of a bias_activations result (reference §9, bias_metrics.json of §9.3), a
 * before/after comparison, and the neuron-level analysis of the seed guide.
 * The math is in bias_metrics.c; the result format in ops/bias_format.md. A dry
 * run checks the inputs and returns empty pairs and summary, writing nothing. */
#include <stdlib.h>
#include <string.h>

#include "bias_metrics.h"
#include "dist.h"
#include "fsutil.h"
#include "op.h"

static const pf_param_spec metrics_params[] = {
    {"activations", PF_P_ANY, 0, NULL, NULL, 0, 0,
     "a bias_activations result (recipes: its step id); or give before and after"},
    {"before", PF_P_ANY, 0, NULL, NULL, 0, 0,
     "a bias_activations result of the original model (with after: a comparison)"},
    {"after", PF_P_ANY, 0, NULL, NULL, 0, 0,
     "a bias_activations result over the same prompt pairs, e.g. of the pruned model"},
    {"neurons", PF_P_BOOL, 0, "false", NULL, 0, 0,
     "also the neuron-level analysis: per activation the mean over pairs of |mean over positions "
     "of prompt 1 - of prompt 2| per neuron, and the top_n most different neurons"},
    {"top_n", PF_P_INT, 0, "20", NULL, 0, 1e9, "how many neurons the neuron-level ranking lists"},
    {"output_dir", PF_P_STR, 0, NULL, NULL, 0, 0,
     "write bias_metrics.json there (OptiPFair's structure, indent 4; NaN as null), and "
     "bias_metrics_before.json with before/after"},
};

typedef struct side {
  pf_bias_pair *pairs;
  size_t n;
  pf_value *metrics, *summary; /* pf_bias_metrics_all results */
  const pf_model *source;      /* the model the activations came from, when known */
} side;

static void side_free(side *s) {
  free(s->pairs);
  pf_value_release(s->metrics);
  pf_value_release(s->summary);
}

/* The pairs and their metrics (a dry run only parses: empty maps). */
static pf_status side_run(const pf_value *res, const char *what, int dry, side *s, pf_err *err) {
  pf_status st = pf_bias_result_pairs(res, what, &s->pairs, &s->n, err);
  s->source = res && res->type == PF_V_MAP ? pf_map_model(res, "source") : NULL;
  if (!st && !dry) st = pf_bias_metrics_all(s->pairs, s->n, &s->metrics, &s->summary, err);
  if (!st && dry && (!(s->metrics = pf_value_map()) || !(s->summary = pf_value_map())))
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  return st ? pf_err_prefix(err, "%s", what) : PF_OK;
}

/* before and after must hold the same prompt pairs, in the same order. */
static pf_status same_pairs(const side *b, const side *a, pf_err *err) {
  if (b->n != a->n)
    return pf_err_set(err, PF_ERR_INVALID,
                      "before has %zu prompt pairs and after %zu: compare results of the same "
                      "pairs",
                      b->n, a->n);
  for (size_t i = 0; i < b->n; i++)
    if (b->pairs[i].index != a->pairs[i].index ||
        strcmp(b->pairs[i].prompt1, a->pairs[i].prompt1) ||
        strcmp(b->pairs[i].prompt2, a->pairs[i].prompt2))
      return pf_err_set(err, PF_ERR_INVALID,
                        "before and after hold different prompt pairs at pair %zu (\"%.60s\" / "
                        "\"%.60s\" vs \"%.60s\" / \"%.60s\")",
                        i + 1, b->pairs[i].prompt1, b->pairs[i].prompt2, a->pairs[i].prompt1,
                        a->pairs[i].prompt2);
  return PF_OK;
}

/* {"<key>": [D floats], ..., "top": [...]} over the pairs of s. */
static pf_status neurons_value(const side *s, int64_t top_n, pf_value **out, pf_err *err) {
  pf_neuron_acc *acc = NULL;
  pf_value *top = NULL;
  *out = NULL;
  pf_status st = pf_neuron_acc_new(&acc, err);
  for (size_t i = 0; !st && i < s->n; i++) {
    st = pf_neuron_acc_add(acc, s->pairs[i].act1, s->pairs[i].act2, err);
    if (st) pf_err_prefix(err, "neurons: pair %lld", (long long)s->pairs[i].index);
  }
  if (!st) st = pf_neuron_acc_result(acc, 0, out, err);
  if (!st) st = pf_neuron_top(*out, top_n, &top, err);
  /* a depth-pruned model numbers its layers anew: each entry also names the layer's
   * number in the checkpoint the model was pruned from */
  const pf_model *m = s->source;
  int renumbered = 0;
  for (int64_t l = 0; m && l < m->n_layers; l++)
    renumbered |= m->layers[l].source_index != l;
  for (size_t i = 0; !st && renumbered && i < top->u.list.len; i++) {
    pf_value *e = top->u.list.items[i];
    const int64_t l = pf_map_int(e, "layer", -1);
    if (l >= 0 && l < m->n_layers && pf_map_set_int(e, "source_layer", m->layers[l].source_index))
      st = pf_err_set(err, PF_ERR_NOMEM, "neurons: out of memory");
  }
  if (!st && pf_map_set(*out, "top", top) != PF_OK)
    st = pf_err_set(err, PF_ERR_NOMEM, "neurons: out of memory");
  pf_neuron_acc_free(acc);
  if (st) {
    pf_value_release(*out);
    *out = NULL;
  }
  return st;
}

/* Write one JSON file as Python's json.dump(indent=4) does; appends its path to files. */
static pf_status write_json(const char *dir, const char *name, const pf_value *v, pf_value *files,
                            pf_err *err) {
  char *path = pf_path_join(dir, name);
  char *text = pf_value_to_json_text_indent(v, 4, 1);
  pf_status st = path && text ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  size_t len = text ? strlen(text) : 0;
  if (!st && len && text[len - 1] == '\n') len--; /* json.dump writes no final newline */
  if (!st) st = pf_write_file(path, text, len, err);
  if (!st && pf_list_push(files, pf_value_str(path)) != PF_OK)
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  free(path);
  free(text);
  return st;
}

static pf_status write_files(const char *dir, const side *cur, const side *before, pf_value *res,
                             pf_err *err) {
  pf_value *files = pf_value_list();
  char *made = pf_missing_dir(dir); /* the folders pf_mkdirs creates */
  pf_status st = files ? pf_mkdirs(dir, err) : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st) st = write_json(dir, "bias_metrics.json", cur->metrics, files, err);
  if (!st && before) st = write_json(dir, "bias_metrics_before.json", before->metrics, files, err);
  if (!st) {
    st = pf_map_set(res, "files", files) ? pf_err_set(err, PF_ERR_NOMEM, "out of memory") : PF_OK;
    files = NULL;
  }
  pf_remove_listed(files); /* a failure leaves neither file */
  if (st) pf_remove_empty_dirs(dir, made);
  free(made);
  pf_value_release(files);
  return st ? pf_err_prefix(err, "output_dir %s", dir) : PF_OK;
}

/* pairs, summary [, before], [neurons], [comparison] of the computed sides. */
static pf_status assemble(const pf_value *params, side *cur, side *before, pf_value *res,
                          pf_err *err) {
  pf_status st = pf_map_set(res, "pairs", pf_value_copy(cur->metrics));
  if (!st) st = pf_map_set(res, "summary", pf_value_copy(cur->summary));
  if (!st && before) {
    pf_value *b = pf_value_map();
    st = b ? pf_map_set(b, "pairs", pf_value_copy(before->metrics)) : PF_ERR_NOMEM;
    if (!st) st = pf_map_set(b, "summary", pf_value_copy(before->summary));
    if (!st)
      st = pf_map_set(res, "before", b);
    else
      pf_value_release(b);
  }
  if (st) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (pf_map_bool(params, "neurons", 0)) {
    pf_value *nv = NULL;
    st = neurons_value(cur, pf_map_int(params, "top_n", 20), &nv, err);
    if (!st && pf_map_set(res, "neurons", nv)) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  if (!st && before) {
    pf_value *cmp = NULL;
    st = pf_bias_compare(before->metrics, before->summary, cur->metrics, cur->summary, &cmp, err);
    if (!st && pf_map_set(res, "comparison", cmp))
      st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  const char *dir = pf_map_str(params, "output_dir", NULL);
  if (!st && dir && pf_dist_writer()) st = write_files(dir, cur, before, res, err); /* MPI: rank 0 */
  return st;
}

/* Which inputs: activations alone, or before + after. */
static pf_status inputs(const pf_value *params, const pf_value **cur, const pf_value **before,
                        pf_err *err) {
  int a = pf_map_has(params, "activations"), b = pf_map_has(params, "before"),
      f = pf_map_has(params, "after");
  *cur = pf_map_get(params, a ? "activations" : "after");
  *before = b ? pf_map_get(params, "before") : NULL;
  if (a && !b && !f) return PF_OK;
  if (!a && b && f) return PF_OK;
  if (a)
    return pf_err_set(err, PF_ERR_INVALID, "give either activations or before and after, not both");
  return pf_err_set(err, PF_ERR_INVALID,
                    "give activations (a bias_activations result) or both before and after%s",
                    b   ? " (after is missing)"
                    : f ? " (before is missing)"
                        : "");
}

static pf_status metrics_run(const pf_op *op, const pf_value *params, pf_value **out,
                             const pf_ctx *ctx, pf_err *err) {
  const pf_value *mv, *bv;
  side cur = {0}, before = {0};
  pf_value *res = NULL;
  pf_status st = inputs(params, &mv, &bv, err);
  int dry = ctx && ctx->dry_run;
  if (!st && bv) st = side_run(bv, "before", dry, &before, err);
  if (!st) st = side_run(mv, bv ? "after" : "activations", dry, &cur, err);
  if (!st && bv) st = same_pairs(&before, &cur, err);
  if (!st && !(res = pf_value_map())) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st && dry) st = pf_map_set(res, "pairs", pf_value_copy(cur.metrics));
  if (!st && dry) st = pf_map_set(res, "summary", pf_value_copy(cur.summary));
  if (!st && !dry) st = assemble(params, &cur, bv ? &before : NULL, res, err);
  side_free(&cur);
  side_free(&before);
  if (st) {
    pf_value_release(res);
    return st;
  }
  *out = res;
  return PF_OK;
}

const pf_op pf_op_metrics = {
    .name = "metrics",
    .alias = NULL,
    .summary = "bias metrics of prompt-pair activations (OptiPFair calculate_bias_metrics), "
               "before/after comparisons, neuron-level differences",
    .params = metrics_params,
    .n_params = sizeof metrics_params / sizeof metrics_params[0],
    .returns = "{pairs: {pair_N: {prompt1, prompt2, metrics: {layer_metrics, overall_metrics, "
               "component_metrics} or {}, aligned: exact|mean_pooled}}, summary: {<component>: "
               "mean over pairs of its mean_difference, overall}, [before: {pairs, summary}], "
               "[neurons: {<activation>: [D], top: [{key, layer, component, neuron, difference, "
               "[source_layer: the layer's number in the checkpoint a depth-pruned model came "
               "from]}]}], [comparison: {pairs, components, overall} of {before, after, "
               "change_percent}], [files]}; see ops/bias/bias_format.md",
    .run = metrics_run,
};
