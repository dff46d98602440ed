/* save.c — op "save": write a Hugging Face checkpoint folder (pf_model_save).
 *
 * In a dry run nothing is written and no weight is read; the result is the
 * plan instead, computed against the checkpoint the model was loaded from
 * (its headers and config only):
 *   output_shapes      {name: shape} of the tensors whose shape differs from
 *                      the source tensor of the same source layer (or that are new);
 *                      when the source cannot be read, the tensors pruning made
 *                      (planned or in memory rather than views of a file)
 *   parameters_before  the source checkpoint's parameter count (null if unknown)
 *   parameters_after   this model's
 *   config_diff        {key: [old, new]} for every config.json key that changes
 *   peak_memory_bytes  an estimate of the extra memory save needs: the writer's
 *                      gather and conversion buffers (a few MB per writer thread,
 *                      whatever the model's size) plus the safetensors header and
 *                      index
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "op.h"
#include "safetensors.h"

static const pf_param_spec save_params[] = {
    {"model", PF_P_MODEL, 1, NULL, NULL, 0, 0, "the model to write"},
    {"path", PF_P_STR, 1, NULL, NULL, 0, 0,
     "output folder; written to a temporary sibling and renamed into place"},
    {"max_shard_size", PF_P_STR, 0, "5GB", NULL, 0, 0,
     "largest safetensors shard (\"5GB\" = 5e9 bytes, \"2GiB\", \"500MB\", or bytes)"},
    {"dtype", PF_P_STR, 0, "auto", "auto|float32|float16|bfloat16", 0, 0,
     "weight dtype of the output; auto keeps the model's dtype"},
    {"overwrite", PF_P_BOOL, 0, "false", NULL, 0, 0,
     "replace an existing non-empty folder at path"},
};

/* ---- the dry-run plan ---- */

typedef struct shape_rec {
  char *name;
  int ndim;
  int64_t shape[PF_MAX_DIMS];
  uint64_t numel;
  size_t elsize; /* stored dtype size */
  pf_dtype dtype;
  int derived;   /* planned or heap-backed: made by pruning, not a view of a file */
} shape_rec;

typedef struct shape_set {
  shape_rec *v;
  size_t n, cap;
  int oom;
} shape_set;

static int collect_cb(void *ud, const char *name, const pf_tensor *t) {
  shape_set *s = ud;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    shape_rec *v = realloc(s->v, cap * sizeof *v);
    if (!v) return s->oom = 1;
    s->v = v;
    s->cap = cap;
  }
  shape_rec *r = &s->v[s->n];
  r->name = strdup(name);
  if (!r->name) return s->oom = 1;
  r->ndim = t->ndim;
  memcpy(r->shape, t->shape, sizeof r->shape);
  r->numel = (uint64_t)pf_tensor_numel(t);
  r->elsize = pf_dtype_size(t->dtype);
  r->dtype = t->dtype;
  r->derived = !t->data || !t->storage || !pf_storage_path(t->storage);
  s->n++;
  return 0;
}

static void shape_set_free(shape_set *s) {
  for (size_t i = 0; i < s->n; i++)
    free(s->v[i].name);
  free(s->v);
}

static const shape_rec *shape_find(const shape_set *s, const char *name) {
  for (size_t i = 0; s && i < s->n; i++)
    if (strcmp(s->v[i].name, name) == 0) return &s->v[i];
  return NULL;
}

/* The name tensor `name` of model m had in its source checkpoint. */
static void source_name(const pf_model *m, const char *name, char *out, size_t n) {
  long long li;
  int off = 0;
  if (sscanf(name, "model.layers.%lld.%n", &li, &off) == 1 && off > 0 && li >= 0 &&
      li < m->n_layers)
    snprintf(out, n, "model.layers.%lld.%s", (long long)m->layers[li].source_index, name + off);
  else
    snprintf(out, n, "%s", name);
}

static pf_value *shape_value(const shape_rec *r) {
  pf_value *l = pf_value_list();
  for (int d = 0; l && d < r->ndim; d++)
    if (pf_list_push(l, pf_value_int(r->shape[d])) != PF_OK) {
      pf_value_release(l);
      return NULL;
    }
  return l;
}

static pf_status changed_shapes(const pf_model *m, const shape_set *now, const shape_set *src,
                                pf_value *out) {
  for (size_t i = 0; i < now->n; i++) {
    char sname[512];
    source_name(m, now->v[i].name, sname, sizeof sname);
    const shape_rec *o = shape_find(src, sname);
    if (src && o && o->ndim == now->v[i].ndim &&
        memcmp(o->shape, now->v[i].shape, sizeof(int64_t) * (size_t)o->ndim) == 0)
      continue;
    if (!src && !now->v[i].derived) continue; /* no source: list what pruning made */
    if (pf_map_set(out, now->v[i].name, shape_value(&now->v[i])) != PF_OK) return PF_ERR_NOMEM;
  }
  return PF_OK;
}

/* {key: [old, new]} over the union of keys of two config.json texts. */
static pf_status config_diff(const char *old_text, const char *new_text, pf_value *out) {
  cJSON *a = old_text ? cJSON_Parse(old_text) : cJSON_CreateObject();
  cJSON *b = new_text ? cJSON_Parse(new_text) : NULL;
  pf_status st = a && b ? PF_OK : PF_ERR_NOMEM;
  const cJSON *pass[2] = {a, b};
  for (int p = 0; !st && p < 2; p++) {
    const cJSON *it;
    cJSON_ArrayForEach(it, pass[p]) {
      const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, it->string);
      const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, it->string);
      if ((p == 1 && x) || (x && y && cJSON_Compare(x, y, 1))) continue;
      pf_value *pair = pf_value_list();
      if (!pair || pf_list_push(pair, pf_value_from_json(x)) ||
          pf_list_push(pair, pf_value_from_json(y)) || pf_map_set(out, it->string, pair)) {
        st = PF_ERR_NOMEM;
        break;
      }
    }
  }
  cJSON_Delete(a);
  cJSON_Delete(b);
  return st;
}

static uint64_t peak_estimate(const shape_set *now, const pf_save_opts *so, uint64_t shard) {
  uint64_t header = 64, total = 0, largest = 0;
  int gather = 0, convert = 0;
  for (size_t i = 0; i < now->n; i++) {
    header +=
        strlen(now->v[i].name) + 96; /* "name":{"dtype":..,"shape":[..],"data_offsets":[..]} */
    const uint64_t osz = so->have_dtype ? pf_dtype_size(so->dtype) : now->v[i].elsize;
    total += now->v[i].numel * osz;
    const int g = now->v[i].derived; /* pruned: gathered from its parent when written */
    const int c = so->have_dtype && so->dtype != now->v[i].dtype;
    const uint64_t b = now->v[i].numel * (osz > now->v[i].elsize ? osz : now->v[i].elsize);
    if ((g || c) && b > largest) largest = b;
    gather |= g;
    convert |= c;
  }
  uint64_t index = total > shard ? header : 0; /* weight_map repeats every name */
  return pf_st_write_buffer_bytes(gather, convert, largest) + header + index;
}

static pf_status config_texts(const pf_model *m, const pf_model *src, const pf_save_opts *so,
                              char **old_text, char **new_text, pf_err *err) {
  pf_model_config c;
  pf_status st = pf_config_copy(&c, &m->config, err);
  if (st) return st;
  if (so->have_dtype)
    snprintf(c.torch_dtype, sizeof c.torch_dtype, "%s", pf_dtype_torch_name(so->dtype));
  *new_text = pf_config_to_json(&c);
  pf_config_free(&c);
  *old_text = src ? pf_config_to_json(&src->config) : NULL;
  if (!*new_text || (src && !*old_text)) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  return PF_OK;
}

/* A model planned from a folder without weights: its planned tensors stand for
 * stored ones, so those a dry-run step left as they were (shape and dtype of the
 * folder's) count as the loaded checkpoint's would: views of the file unless the
 * layout gathers them (transposed, head-interleaved), not as pruning's work. */
static void unchanged_as_stored(const pf_model *m, shape_set *now, const shape_set *src) {
  for (size_t i = 0; i < now->n; i++) {
    char sname[512];
    source_name(m, now->v[i].name, sname, sizeof sname);
    const shape_rec *o = shape_find(src, sname), *r = &now->v[i];
    if (o && o->ndim == r->ndim && o->dtype == r->dtype &&
        memcmp(o->shape, r->shape, sizeof(int64_t) * (size_t)o->ndim) == 0)
      now->v[i].derived = !pf_model_stored_is_view(m, r->name, r->ndim);
  }
}

static pf_status save_plan(const pf_model *m, const pf_save_opts *so, pf_value *plan, pf_err *err) {
  pf_model *src = NULL;
  pf_err ignore = {0};
  /* the model as its folder holds it; a folder without weights yet (a synthetic
   * model's plan in a dry run) as its config.json describes it */
  int planned_src = 0;
  if (m->source_dir && pf_model_load(m->source_dir, &src, &ignore) != PF_OK)
    planned_src = pf_model_plan_dir(m->source_dir, &src, &ignore) == PF_OK;
  shape_set now = {0}, before = {0};
  pf_model_foreach_tensor(m, collect_cb, &now);
  if (src) pf_model_foreach_tensor(src, collect_cb, &before);
  if (planned_src) unchanged_as_stored(m, &now, &before);
  char *old_text = NULL, *new_text = NULL;
  pf_value *shapes = pf_value_map(), *diff = pf_value_map();
  pf_status st = now.oom || before.oom || !shapes || !diff ? PF_ERR_NOMEM : PF_OK;
  if (st) pf_err_set(err, st, "out of memory");
  if (!st) st = config_texts(m, src, so, &old_text, &new_text, err);
  if (!st && (changed_shapes(m, &now, src ? &before : NULL, shapes) ||
              config_diff(old_text, new_text, diff)))
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st) {
    st = pf_map_set(plan, "output_shapes", shapes);
    shapes = NULL;
    if (!st)
      st = pf_map_set(plan, "parameters_before",
                      src ? pf_value_int(pf_model_param_count(src)) : pf_value_null());
    if (!st) st = pf_map_set_int(plan, "parameters_after", pf_model_param_count(m));
    if (!st) st = pf_map_set(plan, "config_diff", diff);
    diff = NULL;
    if (!st)
      st = pf_map_set_int(plan, "peak_memory_bytes",
                          (int64_t)peak_estimate(&now, so, so->max_shard_bytes));
    if (st) pf_err_set(err, st, "out of memory");
  }
  pf_value_release(shapes);
  pf_value_release(diff);
  free(old_text);
  free(new_text);
  shape_set_free(&now);
  shape_set_free(&before);
  pf_model_release(src);
  return st;
}

/* What pf_model_save would refuse, checked without writing (dry run). */
static pf_status check_target(const pf_model *m, const char *path, int overwrite, pf_err *err) {
  if (m->source_dir && pf_path_inside(path, m->source_dir))
    return pf_err_set(err, PF_ERR_INVALID, "path '%s': is inside the model's source folder '%s'",
                      path, m->source_dir);
  return pf_save_target_check(path, overwrite, err);
}

static pf_status save_options(const pf_value *params, const pf_model *m, pf_save_opts *so,
                              pf_err *err) {
  memset(so, 0, sizeof *so);
  pf_status st =
      pf_parse_size(pf_map_str(params, "max_shard_size", "5GB"), &so->max_shard_bytes, err);
  if (st) {
    pf_err_prefix(err, "max_shard_size");
    return st;
  }
  const char *dt = pf_map_str(params, "dtype", "auto");
  if (strcmp(dt, "auto") != 0) {
    st = pf_dtype_parse(dt, &so->dtype, err);
    so->have_dtype = !st && so->dtype != m->dtype;
  }
  return st;
}

static pf_status save_run(const pf_op *op, const pf_value *params, pf_value **out,
                          const pf_ctx *ctx, pf_err *err) {
  const pf_model *m = pf_map_model(params, "model");
  const char *path = pf_map_str(params, "path", "");
  int overwrite = pf_map_bool(params, "overwrite", 0);
  pf_save_opts so = {0};
  pf_value *r = pf_value_map(), *plan = NULL;
  pf_status st =
      r ? save_options(params, m, &so, err) : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  int dry = ctx && ctx->dry_run;
  if (!st && dry && !(ctx && ctx->follower)) st = check_target(m, path, overwrite, err);
  if (!st && dry && !(plan = pf_value_map())) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st && dry) st = save_plan(m, &so, plan, err);
  if (!st && !dry) st = pf_model_save(m, path, &so, overwrite, ctx, err);
  pf_dtype dt = so.have_dtype ? so.dtype : m->dtype;
  if (!st &&
      (pf_map_set_str(r, "path", path) || pf_map_set_str(r, "dtype", pf_dtype_torch_name(dt)) ||
       pf_map_set_int(r, "num_hidden_layers", m->n_layers) ||
       pf_map_set_int(r, "parameters", pf_model_param_count(m))))
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st && dry) {
    st = pf_map_set(r, "plan", plan);
    plan = NULL;
    if (st) pf_err_set(err, st, "out of memory");
  }
  pf_value_release(plan);
  if (st) {
    pf_value_release(r);
    return st;
  }
  *out = r;
  return PF_OK;
}

const pf_op pf_op_save = {
    .name = "save",
    .alias = NULL,
    .summary = "write a Hugging Face checkpoint folder",
    .params = save_params,
    .n_params = sizeof save_params / sizeof save_params[0],
    .returns = "{path, dtype, num_hidden_layers, parameters}; in a dry run nothing is written and "
               "\"plan\" holds {output_shapes (changed tensors only), parameters_before, "
               "parameters_after, config_diff {key: [old, new]}, peak_memory_bytes}",
    .run = save_run,
    .writes = 1,
};
