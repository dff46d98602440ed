/* bias.c — prompt-pair parameters, target types, layer selection and the
 * activation capture of the bias ops (see bias.h). The capture is a tap on the
 * one forward pass: the tap points fire in forward order, which is the order in
 * which OptiPFair's hooks fire, so the activation maps come out in the same
 * key order as OptiPFair's dicts. */
#include "bias.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "json.h"
#include "strbuf.h"

/* ---- prompt pairs from a value ---- */

static pf_status pair_from_item(const pf_value *it, size_t i, char **a, char **b, pf_err *err) {
  const pf_value *p1 = NULL, *p2 = NULL;
  *a = *b = NULL;
  if (it->type == PF_V_LIST && it->u.list.len == 2) {
    p1 = it->u.list.items[0];
    p2 = it->u.list.items[1];
  } else if (it->type == PF_V_MAP) {
    p1 = pf_map_get(it, "prompt1");
    p2 = pf_map_get(it, "prompt2");
  }
  if (!p1 || !p2 || p1->type != PF_V_STR || p2->type != PF_V_STR)
    return pf_err_set(err, PF_ERR_INVALID,
                      "prompt_pairs[%zu]: expected [prompt1, prompt2] (two strings) or "
                      "{prompt1, prompt2}, got %s%s",
                      i, it->type == PF_V_LIST ? "a list of " : "",
                      it->type == PF_V_LIST ? "other than two strings" : pf_vtype_name(it->type));
  *a = strdup(p1->u.s);
  *b = strdup(p2->u.s);
  if (*a && *b) return PF_OK;
  free(*a);
  free(*b);
  return pf_err_set(err, PF_ERR_NOMEM, "prompt_pairs: out of memory");
}

static pf_status push_pair(pf_prompt_pairs *p, char *a, char *b, size_t *cap, pf_err *err) {
  if (p->n == *cap) {
    size_t nc = *cap ? *cap * 2 : 8;
    pf_prompt_pair *items = realloc(p->items, nc * sizeof *items);
    if (!items) {
      free(a);
      free(b);
      return pf_err_set(err, PF_ERR_NOMEM, "prompt_pairs: out of memory");
    }
    p->items = items;
    *cap = nc;
  }
  p->items[p->n++] = (pf_prompt_pair){a, b};
  return PF_OK;
}

static pf_status pairs_from_list(const pf_value *v, pf_prompt_pairs *out, pf_err *err) {
  size_t cap = 0;
  for (size_t i = 0; i < v->u.list.len; i++) {
    char *a = NULL, *b = NULL;
    pf_status st = pair_from_item(v->u.list.items[i], i, &a, &b, err);
    if (!st) st = push_pair(out, a, b, &cap, err);
    if (st) return st;
  }
  return PF_OK;
}

/* One JSONL line (line[0, len)): {"prompt1": ..., "prompt2": ...}, read as the data
 * files are (pf_jsonl_object: as json.loads reads it, or refused). */
static pf_status jsonl_line(const char *path, size_t lineno, const char *line, size_t len,
                            pf_prompt_pairs *out, size_t *cap, pf_err *err) {
  cJSON *j = NULL;
  pf_status st = pf_jsonl_object(line, len, &j, err);
  if (st) return pf_err_prefix(err, "%s:%zu", path, lineno);
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "prompt1");
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "prompt2");
  if (!cJSON_IsString(a) || !cJSON_IsString(b))
    st = pf_err_set(err, PF_ERR_FORMAT,
                    "%s:%zu: expected a JSON object with string fields \"prompt1\" and "
                    "\"prompt2\", found %s for \"%s\"",
                    path, lineno, pf_json_kind(cJSON_IsString(a) ? b : a),
                    cJSON_IsString(a) ? "prompt2" : "prompt1");
  else
    st = push_pair(out, strdup(a->valuestring), strdup(b->valuestring), cap, err);
  if (!st && (!out->items[out->n - 1].prompt1 || !out->items[out->n - 1].prompt2))
    st = pf_err_set(err, PF_ERR_NOMEM, "prompt_pairs: out of memory");
  cJSON_Delete(j);
  return st;
}

static pf_status pairs_from_jsonl(const char *path, pf_prompt_pairs *out, pf_err *err) {
  char *text = NULL;
  size_t len = 0, cap = 0, lineno = 0;
  pf_status st = pf_read_file(path, (size_t)256 << 20, &text, &len, err);
  if (st) return pf_err_prefix(err, "prompt_pairs: not \"default\" and not a readable .jsonl file");
  size_t at = 0;            /* (a UTF-8 BOM: cJSON skips it) */
  while (!st && at < len) { /* by length: a NUL byte is an error, not the end of the file */
    const char *line = text + at, *nl = memchr(line, '\n', len - at);
    const size_t n = nl ? (size_t)(nl - line) : len - at;
    lineno++;
    size_t k = 0;
    while (k < n && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r'))
      k++;
    if (k < n) st = jsonl_line(path, lineno, line, n, out, &cap, err);
    at += n + 1;
  }
  free(text);
  return st;
}

/* {template, attribute_category, attribute_pairs?} -> generate_prompt_pairs. */
static pf_status pairs_from_template(const pf_value *v, pf_prompt_pairs *out, pf_err *err) {
  const char *t = pf_map_str(v, "template", NULL), *cat = pf_map_str(v, "attribute_category", NULL);
  if (!t || !cat)
    return pf_err_set(err, PF_ERR_INVALID,
                      "prompt_pairs: a map needs the strings \"template\" and "
                      "\"attribute_category\" (and optionally \"attribute_pairs\")");
  if (pf_bias_template(t)) t = pf_bias_template(t);
  const pf_value *ap = pf_map_get(v, "attribute_pairs");
  if (!ap || ap->type == PF_V_NULL) return pf_generate_prompt_pairs(t, cat, NULL, 0, out, err);
  if (ap->type != PF_V_LIST)
    return pf_err_set(err, PF_ERR_INVALID, "prompt_pairs.attribute_pairs: expected a list, got %s",
                      pf_vtype_name(ap->type));
  size_t n = ap->u.list.len;
  const char *(*pairs)[2] = calloc(n ? n : 1, sizeof *pairs);
  if (!pairs) return pf_err_set(err, PF_ERR_NOMEM, "prompt_pairs: out of memory");
  pf_status st = PF_OK;
  for (size_t i = 0; !st && i < n; i++) {
    const pf_value *it = ap->u.list.items[i];
    if (it->type != PF_V_LIST || it->u.list.len != 2 || it->u.list.items[0]->type != PF_V_STR ||
        it->u.list.items[1]->type != PF_V_STR)
      st = pf_err_set(err, PF_ERR_INVALID,
                      "prompt_pairs.attribute_pairs[%zu]: expected two strings", i);
    else
      pairs[i][0] = it->u.list.items[0]->u.s, pairs[i][1] = it->u.list.items[1]->u.s;
  }
  if (!st) st = pf_generate_prompt_pairs(t, cat, (const char *const(*)[2])pairs, n, out, err);
  free(pairs);
  return st;
}

pf_status pf_prompt_pairs_from_value(const pf_value *v, pf_prompt_pairs *out, pf_err *err) {
  memset(out, 0, sizeof *out);
  pf_status st;
  if (!v || v->type == PF_V_NULL || (v->type == PF_V_STR && strcmp(v->u.s, "default") == 0))
    return pf_prompt_pairs_default(out, err);
  if (v->type == PF_V_STR)
    st = pairs_from_jsonl(v->u.s, out, err);
  else if (v->type == PF_V_LIST)
    st = pairs_from_list(v, out, err);
  else if (v->type == PF_V_MAP)
    st = pairs_from_template(v, out, err);
  else
    st = pf_err_set(err, PF_ERR_INVALID,
                    "prompt_pairs: expected \"default\", a list of pairs, a .jsonl path or "
                    "{template, attribute_category}, got %s",
                    pf_vtype_name(v->type));
  if (st) pf_prompt_pairs_free(out);
  return st;
}

/* ---- target types ---- */

static const char *const target_names[PF_BIAS_TARGET_COUNT] = {
    "attention", "mlp_output",      "gate_proj", "up_proj",
    "down_proj", "down_proj_input", "input_norm"};
static const char *const target_prefixes[PF_BIAS_TARGET_COUNT] = {
    "attention_output", "mlp_output",      "gate_proj", "up_proj",
    "down_proj",        "down_proj_input", "input_norm"};
static const pf_tap_point target_taps[PF_BIAS_TARGET_COUNT] = {
    PF_TAP_ATTENTION_OUTPUT, PF_TAP_MLP_OUTPUT,      PF_TAP_GATE_PROJ, PF_TAP_UP_PROJ,
    PF_TAP_DOWN_PROJ,        PF_TAP_DOWN_PROJ_INPUT, PF_TAP_INPUT_NORM};

const char *pf_bias_target_name(pf_bias_target t) {
  return (unsigned)t < PF_BIAS_TARGET_COUNT ? target_names[t] : "?";
}

const char *pf_bias_target_prefix(pf_bias_target t) {
  return (unsigned)t < PF_BIAS_TARGET_COUNT ? target_prefixes[t] : "?";
}

uint32_t pf_bias_targets_default(void) {
  return ((1u << PF_BIAS_TARGET_COUNT) - 1) & ~(1u << PF_BIAS_DOWN_PROJ_INPUT);
}

static int target_find(const char *name) {
  for (int t = 0; t < PF_BIAS_TARGET_COUNT; t++)
    if (strcmp(name, target_names[t]) == 0) return t;
  return -1;
}

/* Python repr() of a str: '...' (or "..." when it holds ' but no "). */
static void py_repr(pf_strbuf *b, const char *s) {
  char q = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';
  pf_sb_put(b, &q, 1);
  for (const char *p = s; *p; p++) {
    if (*p == '\\' || *p == q) pf_sb_put(b, "\\", 1);
    pf_sb_put(b, p, 1);
  }
  pf_sb_put(b, &q, 1);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "Invalid target_layers: [...]. Valid options are: [...]" (both sorted, unique). */
static pf_status invalid_targets(const char **bad, size_t n, pf_err *err) {
  const char *valid[PF_BIAS_TARGET_COUNT];
  memcpy(valid, target_names, sizeof valid);
  qsort(bad, n, sizeof *bad, cmp_str);
  qsort(valid, PF_BIAS_TARGET_COUNT, sizeof *valid, cmp_str);
  pf_strbuf b = {0};
  pf_sb_str(&b, "Invalid target_layers: [");
  for (size_t i = 0, k = 0; i < n; i++) {
    if (i && strcmp(bad[i], bad[i - 1]) == 0) continue;
    if (k++) pf_sb_str(&b, ", ");
    py_repr(&b, bad[i]);
  }
  pf_sb_str(&b, "]. Valid options are: [");
  for (size_t i = 0; i < PF_BIAS_TARGET_COUNT; i++) {
    if (i) pf_sb_str(&b, ", ");
    py_repr(&b, valid[i]);
  }
  pf_sb_str(&b, "]");
  char *msg = pf_sb_take(&b);
  pf_status st = pf_err_set(err, PF_ERR_INVALID, "%s", msg ? msg : "Invalid target_layers");
  free(msg);
  return st;
}

/* The names of a target_layers value as a borrowed array (strings in v). */
static pf_status target_strings(const pf_value *v, const char ***names, size_t *n, pf_err *err) {
  size_t len = v->type == PF_V_LIST ? v->u.list.len : 1;
  *names = calloc(len ? len : 1, sizeof **names);
  if (!*names) return pf_err_set(err, PF_ERR_NOMEM, "target_layers: out of memory");
  *n = len;
  for (size_t i = 0; i < len; i++) {
    const pf_value *it = v->type == PF_V_LIST ? v->u.list.items[i] : v;
    if (it->type != PF_V_STR) {
      free(*names);
      *names = NULL;
      return pf_err_set(err, PF_ERR_INVALID,
                        "target_layers: expected a list of strings (target types), got %s%s",
                        v->type == PF_V_LIST ? "a list holding " : "", pf_vtype_name(it->type));
    }
    (*names)[i] = it->u.s;
  }
  return PF_OK;
}

static pf_status targets_mask(const char **names, size_t n, uint32_t *mask, pf_err *err) {
  const char **bad = calloc(n ? n : 1, sizeof *bad);
  if (!bad) return pf_err_set(err, PF_ERR_NOMEM, "target_layers: out of memory");
  size_t nbad = 0;
  *mask = 0;
  for (size_t i = 0; i < n; i++) {
    int t = target_find(names[i]);
    if (t < 0)
      bad[nbad++] = names[i];
    else
      *mask |= 1u << t;
  }
  pf_status st = nbad ? invalid_targets(bad, nbad, err) : PF_OK;
  free(bad);
  return st;
}

/* The names as given (duplicates removed), or the default in registration order. */
static pf_value *targets_list(const char **names, size_t n, uint32_t mask) {
  pf_value *l = pf_value_list();
  pf_status st = l ? PF_OK : PF_ERR_NOMEM;
  uint32_t seen = 0;
  for (size_t i = 0; !st && names && i < n; i++) {
    int t = target_find(names[i]);
    if (!(seen & (1u << t))) st = pf_list_push(l, pf_value_str(names[i]));
    seen |= 1u << t;
  }
  for (int t = 0; !st && !names && t < PF_BIAS_TARGET_COUNT; t++)
    if (mask & (1u << t)) st = pf_list_push(l, pf_value_str(target_names[t]));
  if (st) {
    pf_value_release(l);
    return NULL;
  }
  return l;
}

pf_status pf_bias_targets_from_value(const pf_value *v, uint32_t def, uint32_t *mask,
                                     pf_value **list, pf_err *err) {
  const char **names = NULL;
  size_t n = 0;
  pf_status st = PF_OK;
  if (list) *list = NULL;
  *mask = def;
  if (v && v->type != PF_V_NULL) {
    if (v->type != PF_V_LIST && v->type != PF_V_STR)
      return pf_err_set(err, PF_ERR_INVALID,
                        "target_layers: expected a list of strings (target types), got %s",
                        pf_vtype_name(v->type));
    st = target_strings(v, &names, &n, err);
    if (!st) st = targets_mask(names, n, mask, err);
  }
  if (!st && list && !(*list = targets_list(names, n, *mask)))
    st = pf_err_set(err, PF_ERR_NOMEM, "target_layers: out of memory");
  free(names);
  return st;
}

/* ---- layer selection ---- */

size_t pf_bias_select_layers(int64_t n, const pf_layer_sel *sel, int64_t *out) {
  if (n <= 0) return 0;
  size_t k = 0;
  switch (sel->kind) {
  case PF_SEL_ALL:
    for (int64_t i = 0; i < n; i++)
      out[k++] = i;
    break;
  case PF_SEL_FIRST_MIDDLE_LAST:
    if (n < 3) return pf_bias_select_layers(n, &(pf_layer_sel){PF_SEL_ALL, NULL, 0}, out);
    out[k++] = 0;
    out[k++] = n / 2;
    out[k++] = n - 1;
    break;
  case PF_SEL_LIST:
    for (size_t i = 0; i < sel->n; i++)
      if (sel->idx[i] >= 0 && sel->idx[i] < n) out[k++] = sel->idx[i];
    break;
  case PF_SEL_OTHER:
    out[k++] = 0;
    break;
  }
  return k;
}

static pf_status sel_list(const pf_value *v, pf_layer_sel *out, int64_t **idx, pf_err *err) {
  size_t n = v->type == PF_V_LIST ? v->u.list.len : 1;
  *idx = malloc(sizeof **idx * (n ? n : 1));
  if (!*idx) return pf_err_set(err, PF_ERR_NOMEM, "layers: out of memory");
  for (size_t i = 0; i < n; i++) {
    const pf_value *it = v->type == PF_V_LIST ? v->u.list.items[i] : v;
    if (it->type == PF_V_INT) {
      (*idx)[i] = it->u.i;
    } else if (it->type == PF_V_NUM && it->u.n == (double)(int64_t)it->u.n) {
      (*idx)[i] = (int64_t)it->u.n;
    } else {
      free(*idx);
      *idx = NULL;
      return pf_err_set(err, PF_ERR_INVALID,
                        "layers[%zu]: expected an integer (a position in the sorted list of "
                        "layers of each type), got %s",
                        i, pf_vtype_name(it->type));
    }
  }
  *out = (pf_layer_sel){PF_SEL_LIST, *idx, n};
  return PF_OK;
}

/* "0,2,5" (the text form of an integer list on the command line). */
static pf_status sel_text(const char *text, pf_layer_sel *out, int64_t **idx, pf_err *err) {
  size_t n = 1;
  for (const char *p = text; *p; p++)
    n += *p == ',';
  *idx = malloc(sizeof **idx * n);
  if (!*idx) return pf_err_set(err, PF_ERR_NOMEM, "layers: out of memory");
  const char *p = text;
  for (size_t i = 0; i < n; i++) {
    char *end;
    (*idx)[i] = strtoll(p, &end, 10);
    while (*end == ' ')
      end++;
    if (end == p || (*end != ',' && *end != '\0')) {
      free(*idx);
      *idx = NULL;
      return pf_err_set(err, PF_ERR_INVALID,
                        "layers: expected comma-separated integers, got \"%s\"", text);
    }
    p = end + (*end == ',');
  }
  *out = (pf_layer_sel){PF_SEL_LIST, *idx, n};
  return PF_OK;
}

pf_status pf_layer_sel_from_value(const pf_value *v, pf_layer_sel *out, int64_t **idx,
                                  pf_err *err) {
  *idx = NULL;
  *out = (pf_layer_sel){PF_SEL_FIRST_MIDDLE_LAST, NULL, 0};
  if (!v || v->type == PF_V_NULL) return PF_OK;
  if (v->type == PF_V_STR && v->u.s[0] && strspn(v->u.s, "0123456789-, ") == strlen(v->u.s))
    return sel_text(v->u.s, out, idx, err);
  if (v->type == PF_V_STR) {
    if (strcmp(v->u.s, "all") == 0)
      out->kind = PF_SEL_ALL;
    else if (strcmp(v->u.s, "first_middle_last") != 0)
      out->kind = PF_SEL_OTHER;
    return PF_OK;
  }
  if (v->type == PF_V_LIST || v->type == PF_V_INT || v->type == PF_V_NUM)
    return sel_list(v, out, idx, err);
  out->kind = PF_SEL_OTHER;
  return PF_OK;
}

/* ---- capture ---- */

/* The captured activations are views into shared blocks of heap storage rather
 * than one allocation each: a prompt of the Llama-3.2-1B shape yields 96 tensors
 * of 0.2-2 MB, and each fresh allocation of that size is filled at the cost of a
 * page fault per 4 KiB (~0.37 GB/s on Zen 5), where a block of PF_HEAP_HUGE_MIN or
 * more gets huge pages (bench/README.md "Fresh memory"). A block lives while any
 * of its views does. */
size_t pf_bias_capture_block = (size_t)32 << 20;
uint64_t pf_bias_spill_after = 0;
static uint64_t capture_heap_live; /* pf_storage_account: heap blocks alive */

uint64_t pf_bias_capture_heap_bytes(void) {
  return __atomic_load_n(&capture_heap_live, __ATOMIC_RELAXED);
}

void pf_bias_blocks_init(pf_bias_blocks *b, const pf_ctx *ctx) {
  const uint64_t budget = pf_ctx_work_budget(ctx);
  *b = (pf_bias_blocks){.spill_after = pf_bias_spill_after ? pf_bias_spill_after
                                       : budget            ? budget / 4
                                                           : UINT64_MAX};
}

void pf_bias_blocks_done(pf_bias_blocks *b) {
  pf_storage_release(b->block); /* the views keep what they use */
  b->block = NULL;
  b->used = 0;
}

pf_status pf_bias_blocks_tensor(void *ud, int dtype, int ndim, const int64_t *shape,
                                pf_tensor **out, pf_err *err) {
  pf_bias_blocks *s = ud;
  size_t bytes = pf_dtype_size((pf_dtype)dtype);
  for (int d = 0; d < ndim; d++)
    bytes *= (size_t)shape[d];
  const size_t need = (bytes + 63) & ~(size_t)63;
  if (!s->block || pf_storage_size(s->block) - s->used < need) {
    pf_storage_release(s->block);
    s->block = NULL;
    s->used = 0;
    /* at least 16 tensors of this size: at most ~1/16 of a block left unused */
    const size_t block = need * 16 > pf_bias_capture_block ? need * 16 : pf_bias_capture_block;
    /* the block that would cross the budget's quarter spills, the first one too (a
     * 32 MiB heap block under a 40 MB cap failed) */
    const int spill = pf_bias_capture_heap_bytes() + block > s->spill_after;
    pf_status st = spill ? pf_storage_new_spill(block, &s->block, err)
                         : pf_storage_new_heap(block, &s->block, err);
    if (st) return st;
    if (spill)
      s->spilled += block;
    else
      pf_storage_account(s->block, &capture_heap_live);
  }
  pf_status st = pf_tensor_view(s->block, s->used, (pf_dtype)dtype, ndim, shape, out, err);
  if (!st) s->used += need;
  return st;
}

typedef struct capture_state {
  uint32_t mask;
  const uint8_t *layers;
  const pf_bias_item *items; /* [count]: the pass's batches, by ev->index */
  pf_bias_blocks blocks;     /* where the tensors go */
  pf_tensor *const *states;  /* [count] or NULL (pf_bias_pass.states) */
  int64_t n_layers;
} capture_state;

static int tap_target(pf_tap_point p) {
  for (int t = 0; t < PF_BIAS_TARGET_COUNT; t++)
    if (target_taps[t] == p) return t;
  return -1;
}

/* Row b of the event: its first n[b] positions as a float32 [n[b], width] tensor. */
static pf_status capture_row(capture_state *s, const pf_bias_item *it, const pf_tap_event *ev,
                             int t, size_t b, pf_err *err) {
  int64_t shape[2] = {(int64_t)it->n[b], ev->width};
  pf_tensor *x = NULL;
  pf_status st = pf_bias_blocks_tensor(&s->blocks, PF_DTYPE_F32, 2, shape, &x, err);
  if (st) return st;
  memcpy(pf_tensor_mutable_data(x), ev->data + (int64_t)b * ev->seq * ev->width,
         sizeof(float) * it->n[b] * (size_t)ev->width);
  char name[96];
  snprintf(name, sizeof name, "%s_layer_%lld", target_prefixes[t], (long long)ev->layer);
  st = pf_map_set(it->acts[b], name, pf_value_tensor(x));
  pf_tensor_release(x);
  return st ? pf_err_set(err, PF_ERR_NOMEM, "activations: out of memory") : PF_OK;
}

static pf_status capture_tap(void *ud, const pf_tap_event *ev, pf_err *err) {
  capture_state *s = ud;
  if (ev->point == PF_TAP_LAYER_OUTPUT) { /* kept states: slice ev->layer */
    pf_tensor *x = s->states ? s->states[ev->index] : NULL;
    const size_t n = (size_t)(ev->batch * ev->seq * ev->width);
    if (!x || ev->layer >= s->n_layers - 1) return PF_OK;
    if (x->ndim != 3 || x->shape[0] != s->n_layers - 1 || (size_t)(x->shape[1] * x->shape[2]) != n)
      return pf_err_set(err, PF_ERR_INVALID,
                        "activations: the states tensor of batch %lld has the wrong shape",
                        (long long)ev->index);
    memcpy((float *)pf_tensor_mutable_data(x) + (size_t)ev->layer * n, ev->data, sizeof(float) * n);
    return PF_OK;
  }
  int t = tap_target(ev->point);
  if (t < 0 || !(s->mask & (1u << t)) || (s->layers && !s->layers[ev->layer])) return PF_OK;
  const pf_bias_item *it = &s->items[ev->index];
  pf_status st = PF_OK;
  for (size_t b = 0; !st && b < it->batch; b++)
    st = capture_row(s, it, ev, t, b, err);
  return st;
}

/* ids of every prompt of an item as one right-padded [batch, S] block with its mask. */
static pf_status pad_batch(const pf_bias_item *it, int32_t **out, int32_t **mask, size_t *seq,
                           pf_err *err) {
  size_t S = 0;
  for (size_t b = 0; b < it->batch; b++)
    S = it->n[b] > S ? it->n[b] : S;
  size_t cells = it->batch * S > 0 ? it->batch * S : 1;
  *out = calloc(cells, sizeof **out);
  *mask = calloc(cells, sizeof **mask);
  if (!*out || !*mask) {
    free(*out);
    free(*mask);
    *out = *mask = NULL;
    return pf_err_set(err, PF_ERR_NOMEM, "activations: out of memory");
  }
  for (size_t b = 0; b < it->batch; b++)
    for (size_t i = 0; i < it->n[b]; i++) {
      (*out)[b * S + i] = it->ids[b][i];
      (*mask)[b * S + i] = 1;
    }
  *seq = S;
  return PF_OK;
}

/* The layers the taps want: the captured ones and, with kept states, every one but
 * the last; none before the pass's start. NULL (every layer) without options. */
static pf_status tap_layers(const uint8_t *layers, const pf_bias_pass *opt, uint8_t **out,
                            pf_err *err) {
  *out = NULL;
  if (!opt) return PF_OK;
  const int64_t L = opt->n_layers;
  if (!(*out = calloc((size_t)(L ? L : 1), 1)))
    return pf_err_set(err, PF_ERR_NOMEM, "activations: out of memory");
  for (int64_t l = opt->start; l < L; l++)
    (*out)[l] = (!layers || layers[l]) || (opt->states && l < L - 1);
  return PF_OK;
}

static pf_status capture(pf_forward *f, const pf_bias_item *items, size_t count, uint32_t mask,
                         const uint8_t *layers, const char *what, int split,
                         const pf_bias_pass *opt, const pf_ctx *ctx, pf_err *err) {
  capture_state s = {.mask = mask,
                     .layers = layers,
                     .items = items,
                     .states = opt ? opt->states : NULL,
                     .n_layers = opt ? opt->n_layers : 0};
  pf_bias_blocks_init(&s.blocks, ctx);
  pf_batch *bt = calloc(count ? count : 1, sizeof *bt);
  uint8_t *tl = NULL;
  pf_status st =
      bt ? tap_layers(layers, opt, &tl, err) : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (size_t i = 0; !opt && i < count; i++)
    for (size_t b = 0; b < items[i].batch; b++)
      items[i].acts[b] = NULL;
  for (size_t i = 0; !st && i < count; i++) {
    size_t S = 0;
    int32_t *flat = NULL, *pad = NULL;
    st = pad_batch(&items[i], &flat, &pad, &S, err);
    bt[i] = (pf_batch){.batch = (int64_t)items[i].batch, .seq = (int64_t)S, .ids = flat,
                       .mask = pad};
    for (size_t b = 0; !st && b < items[i].batch; b++)
      if (!items[i].acts[b] && !(items[i].acts[b] = pf_value_map()))
        st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  pf_taps taps = {.layers = opt ? tl : layers, .fn = capture_tap, .user_data = &s};
  for (int t = 0; t < PF_BIAS_TARGET_COUNT; t++)
    if (mask & (1u << t)) taps.points |= 1u << target_taps[t];
  if (s.states) taps.points |= 1u << PF_TAP_LAYER_OUTPUT;
  const pf_pass pass = {.batches = bt,
                        .n = (int64_t)count,
                        .taps = &taps,
                        .what = what ? what : "activations",
                        .split = split,
                        .group_taps = 1,
                        .start = opt ? opt->start : 0,
                        .start_fn = opt ? opt->start_fn : NULL,
                        .start_ud = opt ? opt->start_ud : NULL,
                        .log_plan = count > 1};
  pf_pass_info info;
  if (!st) st = pf_forward_pass(f, &pass, &info, ctx, err);
  free(tl);
  pf_bias_blocks_done(&s.blocks);
  if (!st && s.blocks.spilled)
    pf_ctx_log(ctx,
               "%s: %.2f GB of activations past %.2f GB in memory (a quarter of the memory "
               "budget, counting earlier steps' activations still held) are kept in page-cache "
               "files under %s",
               what ? what : "activations", (double)s.blocks.spilled / 1e9,
               (double)s.blocks.spill_after / 1e9, pf_scratch_dir());
  for (size_t i = 0; bt && i < count; i++) {
    free((void *)bt[i].ids);
    free((void *)bt[i].mask);
  }
  free(bt);
  for (size_t i = 0; st && i < count; i++)
    for (size_t b = 0; b < items[i].batch; b++) {
      pf_value_release(items[i].acts[b]);
      items[i].acts[b] = NULL;
    }
  return st;
}

pf_status pf_bias_capture_items(pf_forward *f, const pf_bias_item *items, size_t count,
                                uint32_t mask, const uint8_t *layers, const char *what,
                                const pf_ctx *ctx, pf_err *err) {
  return capture(f, items, count, mask, layers, what, 0, NULL, ctx, err);
}

pf_status pf_bias_capture_share(pf_forward *f, const pf_bias_item *items, size_t count,
                                uint32_t mask, const uint8_t *layers, const char *what,
                                const pf_ctx *ctx, pf_err *err) {
  return capture(f, items, count, mask, layers, what, 1, NULL, ctx, err);
}

pf_status pf_bias_capture_from(pf_forward *f, const pf_bias_item *items, size_t count,
                               uint32_t mask, const uint8_t *layers, const char *what,
                               const pf_bias_pass *opt, const pf_ctx *ctx, pf_err *err) {
  if (!opt || opt->n_layers < 1 || opt->start < 0 || opt->start > opt->n_layers)
    return pf_err_set(err, PF_ERR_INVALID,
                      "activations: a pass needs its layer count and a start "
                      "within it");
  return capture(f, items, count, mask, layers, what, 1, opt, ctx, err);
}

pf_status pf_bias_capture_batch(pf_forward *f, const int32_t *const *ids, const size_t *n,
                                size_t batch, uint32_t mask, const uint8_t *layers, pf_value **acts,
                                const pf_ctx *ctx, pf_err *err) {
  const pf_bias_item it = {.ids = ids, .n = n, .batch = batch, .acts = acts};
  return pf_bias_capture_items(f, &it, 1, mask, layers, NULL, ctx, err);
}

pf_status pf_bias_capture(pf_forward *f, const int32_t *ids, size_t n, uint32_t mask,
                          const uint8_t *layers, pf_value **acts, const pf_ctx *ctx, pf_err *err) {
  return pf_bias_capture_batch(f, &ids, &n, 1, mask, layers, acts, ctx, err);
}

int64_t pf_bias_target_width(const pf_model *m, int64_t l, pf_bias_target t) {
  const pf_layer *w = &m->layers[l];
  if (t == PF_BIAS_GATE_PROJ || t == PF_BIAS_UP_PROJ) return w->gate_proj ? pf_layer_width(w) : 0;
  return t == PF_BIAS_DOWN_PROJ_INPUT ? pf_layer_width(w) : m->config.hidden_size;
}

pf_status pf_bias_plan(const pf_model *m, size_t n, uint32_t mask, const uint8_t *layers,
                       pf_value **acts, pf_err *err) {
  pf_value *a = pf_value_map();
  pf_status st = a ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "activations: out of memory");
  for (int64_t l = 0; !st && l < m->n_layers; l++) {
    if (layers && !layers[l]) continue;
    for (int p = 0; !st && p < PF_TAP_COUNT; p++) {
      int t = tap_target((pf_tap_point)p);
      if (t < 0 || !(mask & (1u << t))) continue;
      int64_t shape[2] = {(int64_t)n, pf_bias_target_width(m, l, (pf_bias_target)t)};
      if (shape[1] == 0) continue; /* plain MLPs have no gate/up taps */
      pf_tensor *x = NULL;
      char name[96];
      snprintf(name, sizeof name, "%s_layer_%lld", target_prefixes[t], (long long)l);
      st = pf_tensor_new_planned(PF_DTYPE_F32, 2, shape, &x, err);
      if (!st && pf_map_set(a, name, pf_value_tensor(x)) != PF_OK)
        st = pf_err_set(err, PF_ERR_NOMEM, "activations: out of memory");
      pf_tensor_release(x);
    }
  }
  if (st) pf_value_release(a);
  *acts = st ? NULL : a;
  return st;
}

/* Remove every occurrence of pat from s in place. */
static void strip_all(char *s, const char *pat) {
  size_t pl = strlen(pat);
  char *w = s;
  for (const char *r = s; *r;) {
    if (strncmp(r, pat, pl) == 0) {
      r += pl;
      continue;
    }
    *w++ = *r++;
  }
  *w = '\0';
}

pf_status pf_bias_token_labels(const pf_tokenizer *tok, const int32_t *ids, size_t n,
                               pf_value **out, pf_err *err) {
  pf_value *l = pf_value_list();
  pf_status st = l ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "tokens: out of memory");
  for (size_t i = 0; !st && i < n; i++) {
    char *text = NULL;
    st = pf_tokenizer_decode(tok, &ids[i], 1, 0, &text, NULL, err);
    if (st) break;
    strip_all(text, "\xe2\x96\x81"); /* ▁ */
    strip_all(text, "\xc4\xa0");     /* Ġ */
    if (pf_list_push(l, pf_value_str(text)) != PF_OK)
      st = pf_err_set(err, PF_ERR_NOMEM, "tokens: out of memory");
    free(text);
  }
  if (st) {
    pf_value_release(l);
    return st;
  }
  *out = l;
  return PF_OK;
}

int pf_bias_key_target(const char *key) {
  const char *u = key ? strrchr(key, '_') : NULL;
  if (!u || u - key < 6 || strncmp(u - 6, "_layer", 6) != 0) return -1;
  const size_t len = (size_t)(u - 6 - key);
  for (int t = 0; t < PF_BIAS_TARGET_COUNT; t++)
    if (strlen(target_prefixes[t]) == len && strncmp(key, target_prefixes[t], len) == 0) return t;
  return -1;
}

int64_t pf_bias_key_layer(const char *key) {
  const char *p = key ? strrchr(key, '_') : NULL;
  p = p ? p + 1 : key;
  if (!p || !*p) return -1;
  int64_t v = 0;
  for (; *p; p++) {
    if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10) return -1;
    v = v * 10 + (*p - '0');
  }
  return v;
}
