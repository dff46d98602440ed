/* reconstruct_width.c — `reconstruct: true` of prune_width and prune_heads
 * (reconstruct.h): after the neurons (heads) are chosen, every pruned layer's
 * down_proj (o_proj) is replaced by the least-squares W' computed from C of the
 * UNPRUNED model's down_proj (o_proj) inputs.
 *
 * Order of work, one layer at a time: for each pruned layer, C comes from the
 * cache (<cache>/cov-<key>-<layer>.bin) when present, else from one
 * layer-major pass over the calibration batches that collects the missing
 * layers; as soon as a layer's C is final it is written to the cache (rank 0),
 * solved and freed. Peak extra memory: one C (8·I² bytes) + the solve's
 * 2·H·I + k² doubles + the pass's hidden states.
 *
 * "Before recovery" travels with the result: the returned model keeps the
 * unrecovered pruned model in pf_model.unrecovered, so evaluate can report
 * both (evaluate.c) whatever front end (CLI, recipe, Lua) made the model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist.h"
#include "opdata.h"
#include "pruning.h"
#include "pruning_heads.h"
#include "reconstruct.h"

typedef struct rec_state {
  const pf_model *base;
  pf_model *out;
  int64_t **kept; /* [n_layers] kept neuron indices of pruned layers, else NULL */
  int64_t *k;     /* [n_layers] */
  double damping;
  const char *cache;
  int cache_failed; /* a covariance could not be cached: the next ones are not tried */
  const char *key;
  int64_t tokens;
  double solve_s;
  const pf_ctx *ctx;
  pf_tap_point point; /* PF_TAP_DOWN_PROJ_INPUT or PF_TAP_O_PROJ_INPUT */
} rec_state;

/* The projection that reads the pruned channels, and its input width in base. */
static pf_tensor **target(pf_model *m, const rec_state *s, int64_t l) {
  return s->point == PF_TAP_O_PROJ_INPUT ? &m->layers[l].o_proj : &m->layers[l].down_proj;
}
static int64_t in_width(const rec_state *s, int64_t l) {
  const pf_layer *L = &s->base->layers[l];
  return s->point == PF_TAP_O_PROJ_INPUT ? L->o_proj->shape[1] : pf_layer_width(L);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static pf_status solve_layer(rec_state *s, int64_t l, const double *C, pf_err *err) {
  char what[64];
  const char *proj = s->point == PF_TAP_O_PROJ_INPUT ? "o_proj" : "down_proj";
  snprintf(what, sizeof what, "layer %lld %s", (long long)l, proj);
  double t0 = now_s();
  pf_tensor *w = NULL;
  pf_status st = pf_reconstruct_weight(*target((pf_model *)s->base, s, l), C, s->kept[l], s->k[l],
                                       s->damping, what, &w, err);
  double dt = now_s() - t0;
  s->solve_s += dt;
  if (st) return st;
  pf_ctx_log(s->ctx, "reconstruct: layer %lld: %s [%lld, %lld] -> [%lld, %lld], solved in %.3f s",
             (long long)l, proj, (long long)w->shape[0], (long long)in_width(s, l),
             (long long)w->shape[0], (long long)s->k[l], dt);
  pf_tensor **t = target(s->out, s, l);
  pf_tensor_release(*t);
  *t = w;
  return PF_OK;
}

/* pf_cov_fn: a layer's C is final: cache it (rank 0), solve. */
static pf_status on_cov(void *ud, int64_t l, const double *C, int64_t width, int64_t tokens,
                        pf_err *err) {
  rec_state *s = ud;
  s->tokens = tokens;
  pf_status st = PF_OK;
  if (s->cache && !s->cache_failed && pf_dist_writer()) {
    char *path = pf_cov_cache_path(s->cache, s->key, l);
    pf_err w = {0}; /* a cache that cannot be written costs the next run time, not this one */
    st = path ? pf_cov_cache_write(s->cache, path, l, C, width, tokens, &w)
              : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    if (path && st) {
      pf_ctx_log(s->ctx,
                 "warning: reconstruct: the covariance of layer %lld was not cached (nor will "
                 "the next layers' be in this run): %s",
                 (long long)l, w.msg);
      s->cache_failed = 1;
      st = PF_OK;
    }
    free(path);
  }
  return st ? st : solve_layer(s, l, C, err);
}

/* kept_indices of every pruned layer from prune_width's stats "layers". */
static pf_status kept_from_stats(const pf_value *stats, rec_state *s, int64_t L, pf_err *err) {
  const pf_value *layers = pf_map_get(stats, "layers");
  for (size_t i = 0; layers && layers->type == PF_V_LIST && i < layers->u.list.len; i++) {
    const pf_value *e = layers->u.list.items[i];
    int64_t l = pf_map_int(e, "index", -1);
    const pf_value *ki = pf_map_get(e, "kept_indices");
    if (l < 0 || l >= L || !ki || ki->type != PF_V_LIST)
      return pf_err_set(err, PF_ERR_INVALID,
                        "reconstruct: pruning statistics without kept_indices");
    s->k[l] = (int64_t)ki->u.list.len;
    if (!(s->kept[l] = malloc(sizeof(int64_t) * (size_t)(s->k[l] + 1))))
      return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    for (int64_t j = 0; j < s->k[l]; j++)
      s->kept[l][j] = ki->u.list.items[j]->u.i;
  }
  return PF_OK;
}

static pf_value *info_value(const rec_state *s, int64_t n_layers, int64_t cached, double collect_s,
                            uint64_t cov_bytes) {
  pf_value *v = pf_value_map();
  pf_status st = v ? PF_OK : PF_ERR_NOMEM;
  if (!st) st = pf_map_set_num(v, "damping", s->damping);
  if (!st) st = pf_map_set_int(v, "layers", n_layers);
  if (!st) st = pf_map_set_int(v, "cached_layers", cached);
  if (!st) st = pf_map_set_int(v, "tokens", s->tokens);
  if (!st) st = pf_map_set_num(v, "collect_seconds", collect_s);
  if (!st) st = pf_map_set_num(v, "solve_seconds", s->solve_s);
  if (!st) st = pf_map_set_int(v, "covariance_file_bytes", (int64_t)cov_bytes);
  if (st) {
    pf_value_release(v);
    return NULL;
  }
  return v;
}

/* kept o_proj input channels of every pruned layer from prune_heads' stats. */
static pf_status kept_from_heads(const pf_value *stats, rec_state *s, int64_t L, pf_err *err) {
  const pf_value *layers = pf_map_get(stats, "layers");
  for (size_t i = 0; layers && layers->type == PF_V_LIST && i < layers->u.list.len; i++) {
    const int64_t l = pf_map_int(layers->u.list.items[i], "index", -1);
    if (l < 0 || l >= L)
      return pf_err_set(err, PF_ERR_INVALID, "reconstruct: head statistics without an index");
    if (pf_map_int(layers->u.list.items[i], "heads_after", 0) ==
        pf_map_int(layers->u.list.items[i], "heads_before", 0))
      continue; /* nothing removed in this layer */
    pf_status st = pf_heads_kept_channels(stats, l, &s->kept[l], &s->k[l], err);
    if (st) return st;
  }
  return PF_OK;
}

static pf_status reconstruct(const pf_model *base, const pf_model *pruned, const pf_value *stats,
                             pf_tap_point point, const pf_dataset *ds, double damping,
                             const char *cache, const pf_ctx *ctx, pf_model **out, pf_value **info,
                             pf_err *err);

pf_status pf_width_reconstruct(const pf_model *base, const pf_model *pruned, const pf_value *stats,
                               const pf_dataset *ds, double damping, const char *cache,
                               const pf_ctx *ctx, pf_model **out, pf_value **info, pf_err *err) {
  return reconstruct(base, pruned, stats, PF_TAP_DOWN_PROJ_INPUT, ds, damping, cache, ctx, out,
                     info, err);
}

pf_status pf_heads_reconstruct(const pf_model *base, const pf_model *pruned, const pf_value *stats,
                               const pf_dataset *ds, double damping, const char *cache,
                               const pf_ctx *ctx, pf_model **out, pf_value **info, pf_err *err) {
  return reconstruct(base, pruned, stats, PF_TAP_O_PROJ_INPUT, ds, damping, cache, ctx, out, info,
                     err);
}

static pf_status reconstruct(const pf_model *base, const pf_model *pruned, const pf_value *stats,
                             pf_tap_point point, const pf_dataset *ds, double damping,
                             const char *cache, const pf_ctx *ctx, pf_model **out, pf_value **info,
                             pf_err *err) {
  *out = NULL;
  *info = NULL;
  const int64_t L = base->n_layers;
  char key[PF_SHA256_HEX] = "";
  rec_state s = {
      .base = base, .damping = damping, .cache = cache, .key = key, .ctx = ctx, .point = point};
  s.kept = calloc((size_t)L + 1, sizeof *s.kept);
  s.k = calloc((size_t)L + 1, sizeof *s.k);
  uint8_t *todo = calloc((size_t)L + 1, 1);
  double *C = NULL;
  pf_batch *batches = NULL;
  int64_t n_pruned = 0, cached = 0, n_todo = 0;
  uint64_t cov_bytes = 0;
  double collect_s = 0;
  pf_status st = s.kept && s.k && todo ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st)
    st = point == PF_TAP_O_PROJ_INPUT ? kept_from_heads(stats, &s, L, err)
                                      : kept_from_stats(stats, &s, L, err);
  if (!st) st = pf_model_derive(pruned, &s.out, err);
  if (!st && cache) st = pf_cov_cache_key(base, ds, point, key, err);
  for (int64_t l = 0; !st && l < L; l++) {
    if (!s.kept[l]) continue;
    const int64_t I = in_width(&s, l);
    n_pruned++;
    cov_bytes += 32 + 8 * (uint64_t)I * (uint64_t)(I + 1) / 2 + 32; /* header, C, SHA-256 */
    char *path = cache ? pf_cov_cache_path(cache, key, l) : NULL;
    int hit = 0;
    if (path) {
      free(C);
      C = malloc(sizeof(double) * (size_t)(I * I));
      if (!C) st = pf_err_set(err, PF_ERR_NOMEM, "layer %lld: out of memory for C", (long long)l);
      hit = !st && pf_cov_cache_read(path, I, C, &s.tokens);
      hit = pf_dist_all(hit); /* MPI: every rank reads the layer from its cache, or none */
      if (hit) st = solve_layer(&s, l, C, err);
    } else if (cache) {
      st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    }
    free(path);
    cached += hit;
    if (!hit) todo[l] = 1, n_todo++;
  }
  free(C);
  if (!st && n_todo) {
    double t0 = now_s(), solved = s.solve_s;
    st = pf_dataset_batches(ds, &batches, err);
    if (!st)
      st = pf_cov_collect(base, batches, pf_dataset_batch_count(ds), point, todo, on_cov, &s, ctx,
                          err);
    collect_s = now_s() - t0 - (s.solve_s - solved);
  }
  if (!st && !(*info = info_value(&s, n_pruned, cached, collect_s, cov_bytes)))
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st) {
    pf_model_retain((pf_model *)pruned);
    s.out->unrecovered = (pf_model *)pruned;
    *out = s.out;
    s.out = NULL;
  }
  if (st) pf_err_prefix(err, "reconstruct");
  for (int64_t l = 0; s.kept && l < L; l++)
    free(s.kept[l]);
  free(s.kept);
  free(s.k);
  free(todo);
  free(batches);
  pf_model_release(s.out);
  return st;
}

/* reconstruct: true needs data, and data is only read by reconstruct. */
pf_status pf_reconstruct_check(const pf_value *params, int rec, pf_err *err) {
  int data = pf_map_has(params, "data");
  if (rec && !data)
    return pf_err_set(err, PF_ERR_INVALID,
                      "reconstruct: true needs calibration text: give `data` (CLI: "
                      "--calibration-data FILE)");
  if (!rec && (data || pf_map_has(params, "cache")))
    return pf_err_set(err, PF_ERR_INVALID,
                      "`data` and `cache` are the calibration text of reconstruct: set "
                      "reconstruct: true (CLI: --reconstruct), or give the text to a calibrate "
                      "step and pass it as `calibration`");
  return PF_OK;
}

/* A dry run's stats.reconstruct: {peak_memory_bytes, tokens}. The peak is the
 * largest pruned layer's C (8·I² bytes) and solve (8·(2·H·I + k²)), plus the
 * pass's hidden states (tokens × hidden × 4), as the file comment says. */
static pf_status dry_run_estimate(const pf_model *m, const pf_model *nm, pf_tap_point point,
                                  const pf_dataset *ds, pf_value *stats, pf_err *err) {
  const int slot = point == PF_TAP_O_PROJ_INPUT ? PF_SLOT_O : PF_SLOT_DOWN;
  uint64_t peak = 0;
  for (int64_t l = 0; l < m->n_layers && l < nm->n_layers; l++) {
    const pf_tensor *a = m->layers[l].slot[slot], *b = nm->layers[l].slot[slot];
    if (!a || !b || a->ndim != 2 || b->ndim != 2 || a->shape[1] == b->shape[1]) continue;
    const uint64_t in = (uint64_t)a->shape[1], out = (uint64_t)a->shape[0],
                   k = (uint64_t)b->shape[1];
    const uint64_t bytes = 8 * (in * in + 2 * out * in + k * k);
    if (bytes > peak) peak = bytes;
  }
  const pf_data_stats ds_stats = pf_dataset_stats(ds);
  peak += (uint64_t)ds_stats.tokens_total * (uint64_t)m->config.hidden_size * sizeof(float);
  pf_value *r = pf_value_map();
  pf_status st = r ? PF_OK : PF_ERR_NOMEM;
  if (!st) st = pf_map_set_int(r, "peak_memory_bytes", (int64_t)peak);
  if (!st) st = pf_map_set_int(r, "tokens", ds_stats.tokens_total);
  if (!st) st = pf_map_set(stats, "reconstruct", r), r = NULL;
  pf_value_release(r);
  return st ? pf_err_set(err, PF_ERR_NOMEM, "out of memory") : PF_OK;
}

/* Replace *nm by its recovered variant; the recovery's figures go to stats. */
pf_status pf_reconstruct_step(const pf_model *m, const pf_value *params, pf_tap_point point,
                              pf_model **nm, pf_value *stats, const pf_ctx *ctx, pf_err *err) {
  pf_tokenizer *tok = NULL;
  pf_dataset *ds = NULL;
  pf_value *info = NULL;
  pf_model *rec = NULL;
  pf_status st = pf_params_dataset(m, params, &tok, &ds, err);
  if (!st && ctx && ctx->dry_run) { /* checked, not computed: the plan keeps its shapes */
    st = dry_run_estimate(m, *nm, point, ds, stats, err);
    pf_dataset_free(ds);
    pf_tokenizer_free(tok);
    return st;
  }
  if (!st)
    st = reconstruct(m, *nm, stats, point, ds, pf_map_num(params, "reconstruct_damping", 1e-2),
                     pf_map_str(params, "cache", NULL), ctx, &rec, &info, err);
  if (!st) {
    pf_value *sv = pf_data_stats_value(ds);
    st = sv ? pf_map_set(info, "data", sv) : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  if (!st) st = pf_map_set(stats, "reconstruct", info), info = NULL;
  if (!st) {
    pf_model_release(*nm);
    *nm = rec;
    rec = NULL;
  }
  pf_value_release(info);
  pf_model_release(rec);
  pf_dataset_free(ds);
  pf_tokenizer_free(tok);
  return st;
}
