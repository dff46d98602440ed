/* synthetic.c — seeded synthetic LLaMA-family checkpoints (see synthetic.h).
 *
 * How a checkpoint is made: the preset becomes a config.json text, parsed like
 * any other; pf_model_plan turns it into a model of planned tensors; the
 * weights are generated tensor by tensor into a scratch file (mapped read-only
 * and unlinked) and set into the model; pf_model_save writes the folder. So a
 * synthetic checkpoint goes through exactly the code paths of a real save,
 * including the re-load check, and llama-1b (2.5 GB) never sits in memory.
 *
 * Determinism: every value is a pure function of (seed, tensor index in save
 * order, element index). Elements are generated in fixed chunks, each with its
 * own xorshift64* stream seeded by splitmix64(seed, tensor, chunk), so the
 * result does not depend on the number of OpenMP threads. A normal-like value is
 * the centred sum of four 16-bit uniforms (Irwin-Hall, n = 4), scaled to a
 * standard deviation of 0.02 with one float multiplication: integer maths plus
 * one IEEE rounding, so no libm or FMA contraction can change a byte.
 */
#include "synthetic.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "hfconfig.h"
#include "model.h"
#include "synthetic_internal.h"

#define SYNTH_CHUNK ((size_t)1 << 18) /* elements per PRNG stream */
#define SYNTH_BLOCK 32                /* chunks generated per write */
#define SYNTH_DEFAULT_SEED 1234u
/* sd of a sum of four U{0..65535}: 65536 * sqrt(4/12) (up to 1e-9). */
#define SYNTH_SCALE (0.02f / 37837.2268f)

/* Family presets. Soft-caps, windows and rotary fractions are set so that they
 * change the numbers of these tiny models (a cap of 30 would never bite at the
 * synthetic weights' scale), which the golden tests rely on. */
#define GEMMA_COMMON                                                                             \
  "\"attention_bias\": false, \"attention_dropout\": 0.0, \"bos_token_id\": 1, "                   \
  "\"eos_token_id\": 2, \"head_dim\": 32, \"hidden_size\": 64, \"initializer_range\": 0.02, "     \
  "\"intermediate_size\": 176, \"max_position_embeddings\": 2048, \"num_attention_heads\": 4, "  \
  "\"num_hidden_layers\": 4, \"num_key_value_heads\": 2, \"pad_token_id\": 0, "                   \
  "\"rms_norm_eps\": 1e-06, \"use_cache\": true, \"vocab_size\": 320"
static const char gemma_json[] =
    "{\"architectures\": [\"GemmaForCausalLM\"], " GEMMA_COMMON
    ", \"hidden_act\": \"gelu_pytorch_tanh\", \"hidden_activation\": \"gelu_pytorch_tanh\", "
    "\"model_type\": \"gemma\", \"rope_theta\": 10000.0}";
static const char gemma2_json[] =
    "{\"architectures\": [\"Gemma2ForCausalLM\"], " GEMMA_COMMON
    ", \"attn_logit_softcapping\": 0.1, \"cache_implementation\": \"hybrid\", "
    "\"final_logit_softcapping\": 0.3, \"hidden_activation\": \"gelu_pytorch_tanh\", "
    "\"model_type\": \"gemma2\", \"query_pre_attn_scalar\": 24, \"rope_theta\": 10000.0, "
    "\"sliding_window\": 4}";
static const char gemma3_json[] =
    "{\"architectures\": [\"Gemma3ForCausalLM\"], " GEMMA_COMMON
    ", \"attn_logit_softcapping\": null, \"final_logit_softcapping\": 0.3, "
    "\"hidden_activation\": \"gelu_pytorch_tanh\", \"model_type\": \"gemma3_text\", "
    "\"query_pre_attn_scalar\": 32, \"rope_local_base_freq\": 10000.0, "
    "\"rope_scaling\": {\"factor\": 8.0, \"rope_type\": \"linear\"}, \"rope_theta\": 1000000.0, "
    "\"sliding_window\": 4, \"sliding_window_pattern\": 2}";
static const char phi3_json[] =
    "{\"architectures\": [\"Phi3ForCausalLM\"], \"attention_dropout\": 0.0, "
    "\"bos_token_id\": 1, \"embd_pdrop\": 0.0, \"eos_token_id\": 2, \"hidden_act\": \"silu\", "
    "\"hidden_size\": 64, \"initializer_range\": 0.02, \"intermediate_size\": 176, "
    "\"max_position_embeddings\": 2048, \"model_type\": \"phi3\", \"num_attention_heads\": 4, "
    "\"num_hidden_layers\": 4, \"num_key_value_heads\": 2, "
    "\"original_max_position_embeddings\": 2048, \"pad_token_id\": 0, "
    "\"partial_rotary_factor\": 0.5, \"resid_pdrop\": 0.0, \"rms_norm_eps\": 1e-05, "
    "\"rope_scaling\": null, \"rope_theta\": 10000.0, \"sliding_window\": 5, "
    "\"tie_word_embeddings\": false, \"use_cache\": true, \"vocab_size\": 320}";
static const char gpt2_json[] =
    "{\"activation_function\": \"gelu_new\", \"architectures\": [\"GPT2LMHeadModel\"], "
    "\"attn_pdrop\": 0.1, \"bos_token_id\": 1, \"embd_pdrop\": 0.1, \"eos_token_id\": 2, "
    "\"initializer_range\": 0.02, \"layer_norm_epsilon\": 1e-05, \"model_type\": \"gpt2\", "
    "\"n_embd\": 64, \"n_head\": 4, \"n_inner\": null, \"n_layer\": 4, \"n_positions\": 128, "
    "\"reorder_and_upcast_attn\": false, \"resid_pdrop\": 0.1, \"scale_attn_by_inverse_layer_idx\": "
    "false, \"scale_attn_weights\": true, \"summary_activation\": null, \"summary_first_dropout\": "
    "0.1, \"summary_proj_to_labels\": true, \"summary_type\": \"cls_index\", \"summary_use_proj\": "
    "true, \"use_cache\": true, \"vocab_size\": 320}";
static const char neox_json[] =
    "{\"architectures\": [\"GPTNeoXForCausalLM\"], \"attention_bias\": true, "
    "\"attention_dropout\": 0.0, \"bos_token_id\": 0, \"classifier_dropout\": 0.1, "
    "\"eos_token_id\": 0, \"hidden_act\": \"gelu\", \"hidden_dropout\": 0.0, \"hidden_size\": 64, "
    "\"initializer_range\": 0.02, \"intermediate_size\": 256, \"layer_norm_eps\": 1e-05, "
    "\"max_position_embeddings\": 2048, \"model_type\": \"gpt_neox\", \"num_attention_heads\": 4, "
    "\"num_hidden_layers\": 4, \"rotary_emb_base\": 10000, \"rotary_pct\": 0.25, "
    "\"tie_word_embeddings\": false, \"use_cache\": true, \"use_parallel_residual\": true, "
    "\"vocab_size\": 320}";

static const pf_synth_preset presets[] = {
    {"llama-tiny", "llama", "LlamaForCausalLM", 64, 176, 4, 4, 2, 320, 2048, PF_DTYPE_F32, 0, 0, 0,
     0, 10000.0, NULL},
    {"llama-small", "llama", "LlamaForCausalLM", 128, 352, 6, 4, 2, 320, 2048, PF_DTYPE_F32, 1, 0,
     0, 0, 10000.0, NULL},
    {"qwen2-tiny", "qwen2", "Qwen2ForCausalLM", 64, 176, 4, 4, 2, 320, 2048, PF_DTYPE_F32, 0, 1, 0,
     0, 10000.0, NULL},
    {"qwen3-tiny", "qwen3", "Qwen3ForCausalLM", 64, 176, 4, 4, 2, 320, 2048, PF_DTYPE_F32, 0, 0, 1,
     0, 10000.0, NULL},
    {"mistral-tiny", "mistral", "MistralForCausalLM", 64, 176, 4, 4, 2, 320, 2048, PF_DTYPE_F32, 0,
     0, 0, 0, 10000.0, NULL},
    {"llama-1b", "llama", "LlamaForCausalLM", 2048, 8192, 16, 32, 8, 128256, 131072, PF_DTYPE_BF16,
     1, 0, 0, 1, 500000.0, NULL},
    {"llama-medium", "llama", "LlamaForCausalLM", 768, 2048, 12, 12, 4, 320, 4096, PF_DTYPE_F32, 1,
     0, 0, 0, 10000.0, NULL},
    {"gemma-tiny", "gemma", "", 64, 176, 4, 4, 2, 320, 2048, PF_DTYPE_F32, 1, 0, 0, 0, 0,
     gemma_json},
    {"gemma2-tiny", "gemma2", "", 64, 176, 4, 4, 2, 320, 2048, PF_DTYPE_F32, 1, 0, 0, 0, 0,
     gemma2_json},
    {"gemma3-tiny", "gemma3_text", "", 64, 176, 4, 4, 2, 320, 2048, PF_DTYPE_F32, 1, 0, 1, 0, 0,
     gemma3_json},
    {"phi3-tiny", "phi3", "", 64, 176, 4, 4, 2, 320, 2048, PF_DTYPE_F32, 0, 0, 0, 0, 0, phi3_json},
    {"gpt2-tiny", "gpt2", "", 64, 256, 4, 4, 4, 320, 128, PF_DTYPE_F32, 1, 1, 0, 0, 0, gpt2_json},
    {"neox-tiny", "gpt_neox", "", 64, 256, 4, 4, 4, 320, 2048, PF_DTYPE_F32, 0, 1, 0, 0, 0,
     neox_json},
    {"llama-7b", "llama", "LlamaForCausalLM", 4096, 11008, 32, 32, 32, 32000, 4096, PF_DTYPE_BF16,
     0, 0, 0, 0, 10000.0, NULL},
    {"llama-13b", "llama", "LlamaForCausalLM", 5120, 13824, 40, 40, 40, 32000, 4096, PF_DTYPE_BF16,
     0, 0, 0, 0, 10000.0, NULL},
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

static const char *const preset_names[] = {
    "llama-tiny", "llama-small", "qwen2-tiny",  "qwen3-tiny", "mistral-tiny",
    "llama-1b",   "llama-medium", "gemma-tiny", "gemma2-tiny", "gemma3-tiny",
    "phi3-tiny",  "gpt2-tiny",   "neox-tiny",  "llama-7b",   "llama-13b", NULL};
_Static_assert(sizeof preset_names / sizeof preset_names[0] == N_PRESETS + 1, "one name per preset");

const char *const *pf_synth_presets(void) {
  return preset_names;
}

static const pf_synth_preset *find_preset(const char *name, size_t len) {
  for (size_t i = 0; i < N_PRESETS; i++)
    if (strlen(presets[i].name) == len && !strncmp(presets[i].name, name, len)) return &presets[i];
  return NULL;
}

static pf_status unknown_preset(const char *what, const char *name, size_t len, pf_err *err) {
  char list[512] = "";
  for (size_t i = 0; i < N_PRESETS; i++) {
    strncat(list, presets[i].name, sizeof list - strlen(list) - 1);
    if (i + 1 < N_PRESETS) strncat(list, ", ", sizeof list - strlen(list) - 1);
  }
  return pf_err_set(err, PF_ERR_INVALID,
                    "%s: unknown synthetic preset \"%.*s\" (expected one of %s)", what, (int)len,
                    name, list);
}

/* ---- random numbers ---- */

static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static inline uint64_t xorshift64s(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545f4914f6cdd1dull;
}

/* One chunk of `n` values of tensor `ti`, written as dtype dt into dst. */
static void gen_chunk(void *dst, pf_dtype dt, size_t n, uint64_t seed, uint64_t ti, uint64_t chunk,
                      int norm) {
  uint64_t st = splitmix64(seed ^ splitmix64(ti * 0x100000001b3ull ^ splitmix64(chunk)));
  if (!st) st = 0x853c49e6748fea9bull;
  float base = norm ? 1.0f : 0.0f;
  for (size_t i = 0; i < n; i++) {
    uint64_t r = xorshift64s(&st);
    int32_t sum = (int32_t)(r & 0xffff) + (int32_t)((r >> 16) & 0xffff) +
                  (int32_t)((r >> 32) & 0xffff) + (int32_t)(r >> 48) - 131070;
    float v = base + (float)sum * SYNTH_SCALE;
    if (dt == PF_DTYPE_F32)
      ((float *)dst)[i] = v;
    else if (dt == PF_DTYPE_BF16)
      ((uint16_t *)dst)[i] = pf_f32_to_bf16(v);
    else
      ((uint16_t *)dst)[i] = pf_f32_to_f16(v);
  }
}

/* ---- weights ---- */

typedef struct gen_list {
  char (*names)[128];
  const pf_tensor **plan; /* the planned tensors, in save order */
  size_t n, cap;
  int failed;
} gen_list;

static int gen_collect(void *ud, const char *name, const pf_tensor *t) {
  gen_list *g = ud;
  if (g->n == g->cap) {
    size_t cap = g->cap ? g->cap * 2 : 64;
    char(*nn)[128] = realloc(g->names, cap * sizeof *nn);
    if (nn) g->names = nn;
    const pf_tensor **pp = realloc(g->plan, cap * sizeof *pp);
    if (pp) g->plan = pp;
    if (!nn || !pp) return g->failed = 1;
    g->cap = cap;
  }
  pf_tensor_retain((pf_tensor *)t); /* a joined (fused) plan exists only through this list */
  g->plan[g->n] = t;
  snprintf(g->names[g->n++], sizeof g->names[0], "%s", name);
  return 0;
}

/* Norm weights start at 1 (+ noise), everything else at 0 (+ noise): LLaMA's
 * *norm.weight, GPT-2's ln_*.weight, GPT-NeoX's *layernorm.weight / *layer_norm.weight. */
static int is_norm(const char *name) {
  size_t n = strlen(name);
  if (n >= 11 && !strcmp(name + n - 11, "norm.weight")) return 1;
  const char *last = strrchr(name, '.'), *prev = last;
  while (prev > name && prev[-1] != '.')
    prev--;
  return last && !strcmp(last, ".weight") && !strncmp(prev, "ln_", 3);
}

typedef struct gen_out {
  int fd;
  const char *path;
  char *buf; /* SYNTH_BLOCK chunks */
  pf_dtype dtype;
  uint64_t seed;
  size_t total, done;
  const pf_ctx *ctx;
} gen_out;

/* Tensor `ti` (n values) into the scratch file at byte `off`, SYNTH_BLOCK chunks at a time. */
static pf_status gen_tensor(gen_out *o, size_t ti, size_t n, size_t off, int norm, pf_err *err) {
  size_t ds = pf_dtype_size(o->dtype);
  for (size_t c0 = 0; c0 * SYNTH_CHUNK < n; c0 += SYNTH_BLOCK) {
    size_t first = c0 * SYNTH_CHUNK, cnt = n - first;
    if (cnt > SYNTH_CHUNK * SYNTH_BLOCK) cnt = SYNTH_CHUNK * SYNTH_BLOCK;
    size_t nchunks = (cnt + SYNTH_CHUNK - 1) / SYNTH_CHUNK;
#pragma omp parallel for schedule(static) if (nchunks > 1)
    for (size_t k = 0; k < nchunks; k++) {
      size_t c = cnt - k * SYNTH_CHUNK < SYNTH_CHUNK ? cnt - k * SYNTH_CHUNK : SYNTH_CHUNK;
      gen_chunk(o->buf + k * SYNTH_CHUNK * ds, o->dtype, c, o->seed, ti, c0 + k, norm);
    }
    size_t bytes = cnt * ds;
    for (size_t w = 0; w < bytes;) {
      ssize_t r = pwrite(o->fd, o->buf + w, bytes - w, (off_t)(off + first * ds + w));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0)
        return pf_err_set(err, PF_ERR_IO, "%s: write failed: %s", o->path,
                          r < 0 ? strerror(errno) : "no progress");
      w += (size_t)r;
    }
    o->done += bytes;
    pf_ctx_progress(o->ctx, "synthetic", o->done, o->total);
    pf_status s = pf_ctx_check_interrupt(o->ctx, err);
    if (s != PF_OK) return s;
  }
  return PF_OK;
}

/* Generate every tensor of the plan `m` into `path`, then map it and set views. */
static pf_status fill_weights(pf_model *m, const char *path, uint64_t seed, const pf_ctx *ctx,
                              pf_err *err) {
  gen_list g = {0};
  pf_status s = PF_OK;
  pf_storage *st = NULL;
  size_t *offs = NULL, ds = pf_dtype_size(m->dtype), total = 0;
  char *buf = NULL;
  int fd = -1;
  if (pf_model_foreach_stored(m, gen_collect, &g, NULL) || g.failed ||
      !(offs = calloc(g.n + 1, sizeof *offs)) || !(buf = malloc(SYNTH_CHUNK * SYNTH_BLOCK * ds))) {
    s = pf_err_set(err, PF_ERR_NOMEM, "synthetic: out of memory");
    goto done;
  }
  for (size_t i = 0; i < g.n; i++) {
    offs[i] = total;
    total += ((size_t)pf_tensor_numel(g.plan[i]) * ds + 63) / 64 * 64;
  }
  if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
    s = pf_err_set(err, PF_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    goto done;
  }
  gen_out o = {fd, path, buf, m->dtype, seed, total, 0, ctx};
  for (size_t i = 0; i < g.n && s == PF_OK; i++)
    s = gen_tensor(&o, i, (size_t)pf_tensor_numel(g.plan[i]), offs[i], is_norm(g.names[i]), err);
  if (s == PF_OK && ftruncate(fd, (off_t)total) != 0)
    s = pf_err_set(err, PF_ERR_IO, "%s: cannot size: %s", path, strerror(errno));
  close(fd);
  if (s == PF_OK) s = pf_storage_map_file(path, &st, err);
  unlink(path); /* the mapping keeps the bytes */
  for (size_t i = 0; i < g.n && s == PF_OK; i++) {
    const pf_tensor *plan = g.plan[i];
    pf_tensor *v = NULL;
    s = pf_tensor_view(st, offs[i], plan->dtype, plan->ndim, plan->shape, &v, err);
    if (s == PF_OK) s = pf_model_set_tensor(m, g.names[i], v, err);
  }
done:
  pf_storage_release(st);
  free(buf);
  free(offs);
  for (size_t i = 0; i < g.n; i++)
    pf_tensor_release((pf_tensor *)g.plan[i]);
  free(g.names);
  free(g.plan);
  return s;
}

/* ---- write / resolve ---- */

/* The planned model of preset p: config.json text parsed like any checkpoint's. */
/* The preset's config.json in dtype dt, parsed as a checkpoint's would be. */
static pf_status preset_config(const pf_synth_preset *p, pf_dtype dt, pf_model_config *c,
                               pf_err *err) {
  cJSON *cj = pf_synth_config_json(p, dt);
  char *text = cj ? pf_json_print_pretty(cj) : NULL;
  cJSON_Delete(cj);
  if (!text) return pf_err_set(err, PF_ERR_NOMEM, "synthetic %s: out of memory", p->name);
  pf_status s = pf_config_parse(text, "synthetic config.json", c, err);
  free(text);
  return s;
}

static pf_status plan_model(const pf_synth_preset *p, pf_dtype dt, pf_model **out, pf_err *err) {
  *out = NULL;
  pf_model_config c;
  pf_status s = preset_config(p, dt, &c, err);
  if (s != PF_OK) return s;
  s = pf_model_plan(&c, dt, out, err);
  pf_config_free(&c);
  return s;
}

pf_status pf_synth_write(const pf_synth_opts *opts, const char *dir, const pf_ctx *ctx,
                         pf_err *err) {
  const char *pname = opts && opts->preset ? opts->preset : "";
  const pf_synth_preset *p = find_preset(pname, strlen(pname));
  if (!p) return unknown_preset("synthetic", pname, strlen(pname), err);
  pf_dtype dt = opts->have_dtype ? opts->dtype : p->dtype;
  uint64_t seed = opts->seed ? opts->seed : SYNTH_DEFAULT_SEED;
  int existed = pf_path_exists(dir);
  if (existed && !(pf_is_dir(dir) && pf_dir_is_empty(dir)))
    return pf_err_set(err, PF_ERR_INVALID, "synthetic %s: %s exists and is not empty", p->name,
                      dir);
  pf_model *m = NULL;
  char *stage = NULL, *wpath = NULL;
  pf_status s = pf_make_temp_sibling(dir, &stage, err);
  if (s != PF_OK) return s;
  if ((s = pf_synth_write_side_files(p, stage, err)) || (s = plan_model(p, dt, &m, err))) goto done;
  free(m->name);
  char name[96];
  snprintf(name, sizeof name, "synthetic:%s", p->name);
  m->name = strdup(name);
  m->source_dir = strdup(stage);
  wpath = pf_path_join(stage, ".weights");
  if (!m->name || !m->source_dir || !wpath) {
    s = pf_err_set(err, PF_ERR_NOMEM, "synthetic %s: out of memory", p->name);
    goto done;
  }
  if ((s = fill_weights(m, wpath, seed, ctx, err))) goto done;
  pf_save_opts so = {.synthetic_cache = 1};
  s = pf_model_save(m, dir, &so, existed, ctx, err);
done:
  if (s != PF_OK) pf_err_prefix(err, "synthetic %s", p->name);
  pf_model_release(m);
  pf_remove_tree(stage, NULL);
  pf_temp_unregister(stage);
  free(stage);
  free(wpath);
  return s;
}

int pf_synth_is_spec(const char *path) {
  return path && !strncmp(path, "synthetic:", 10);
}

/* "synthetic:NAME[@SEED][:DTYPE]" */
static pf_status parse_spec(const char *spec, const pf_synth_preset **p, uint64_t *seed,
                            pf_dtype *dt, pf_err *err) {
  if (!pf_synth_is_spec(spec))
    return pf_err_set(err, PF_ERR_INVALID, "%s: expected \"synthetic:NAME[@SEED][:DTYPE]\"",
                      spec ? spec : "(null)");
  const char *name = spec + 10, *q = name;
  while (*q && *q != '@' && *q != ':')
    q++;
  if (!(*p = find_preset(name, (size_t)(q - name))))
    return unknown_preset(spec, name, (size_t)(q - name), err);
  *seed = SYNTH_DEFAULT_SEED;
  *dt = (*p)->dtype;
  if (*q == '@') {
    const char *d = ++q;
    uint64_t v = 0;
    while (*q >= '0' && *q <= '9') {
      if (v > (UINT64_MAX - 9) / 10) break;
      v = v * 10 + (uint64_t)(*q++ - '0');
    }
    if (q == d || (*q && *q != ':'))
      return pf_err_set(err, PF_ERR_INVALID, "%s: expected a decimal seed after '@', got \"%s\"",
                        spec, d);
    *seed = v ? v : SYNTH_DEFAULT_SEED;
  }
  if (*q == ':') {
    pf_status s = pf_dtype_parse(q + 1, dt, err);
    if (s != PF_OK) return pf_err_prefix(err, "%s", spec);
  }
  return PF_OK;
}

static char *cache_root(void) {
  const char *c = getenv("PFRUN_CACHE");
  if (c && *c) return strdup(c);
  char buf[4096];
  const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
  if (x && *x)
    snprintf(buf, sizeof buf, "%s/pfrun", x);
  else if (h && *h)
    snprintf(buf, sizeof buf, "%s/.cache/pfrun", h);
  else
    return NULL;
  return strdup(buf);
}

int pf_synth_in_cache(const char *dir) {
  char *root = cache_root(), *syn = root ? pf_path_join(root, "synthetic") : NULL;
  const int in = syn && pf_path_inside(dir, syn);
  free(syn);
  free(root);
  return in;
}

/* A spec's preset, seed and dtype, and its folder in the cache (malloc'd). */
static pf_status locate(const char *spec, const pf_synth_preset **p, uint64_t *seed, pf_dtype *dt,
                        char **dir, pf_err *err) {
  *dir = NULL;
  *seed = SYNTH_DEFAULT_SEED;
  *dt = PF_DTYPE_F32;
  pf_status s = parse_spec(spec, p, seed, dt, err);
  if (s != PF_OK) return s;
  char *root = cache_root();
  if (!root)
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: no cache folder (set PFRUN_CACHE, XDG_CACHE_HOME or HOME)", spec);
  char leaf[160], dts[8];
  const char *stn = pf_dtype_st_name(*dt);
  size_t i = 0;
  for (; stn[i] && i + 1 < sizeof dts; i++)
    dts[i] = (char)(stn[i] | 0x20); /* lowercase */
  dts[i] = 0;
  snprintf(leaf, sizeof leaf, "synthetic/%s-s%llu-%s", (*p)->name, (unsigned long long)*seed, dts);
  *dir = pf_path_join(root, leaf);
  free(root);
  return *dir ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", spec);
}

/* 1 when the checkpoint in `dir` is complete (its config.json is written last, by the rename). */
static int cached(const char *dir) {
  char *cfg = pf_path_join(dir, "config.json");
  int r = cfg && pf_path_exists(cfg);
  free(cfg);
  return r;
}

/* A cached folder holds the preset's model: its config.json says the preset's family,
 * shape and dtype (a folder overwritten by another tool, e.g. a prune saved there,
 * would otherwise load silently as the preset). */
static pf_status check_cached(const pf_synth_preset *p, pf_dtype dt, const char *spec,
                              const char *dir, pf_err *err) {
  pf_model_config want, got;
  pf_status s = preset_config(p, dt, &want, err);
  if (s != PF_OK) return s;
  s = pf_config_load(dir, &got, err);
  if (s == PF_OK) {
    const int same =
        !strcmp(want.model_type, got.model_type) && want.hidden_size == got.hidden_size &&
        want.num_hidden_layers == got.num_hidden_layers &&
        want.intermediate_size == got.intermediate_size && want.vocab_size == got.vocab_size &&
        !strcmp(want.torch_dtype, got.torch_dtype);
    if (!same)
      s = pf_err_set(err, PF_ERR_FORMAT,
                     "%s: the cache folder %s holds another model (%s, %lld layers, hidden %lld, "
                     "width %lld, %s; expected %s, %lld, %lld, %lld, %s): remove the folder and "
                     "pfrun writes the synthetic model again",
                     spec, dir, got.model_type, (long long)got.num_hidden_layers,
                     (long long)got.hidden_size, (long long)got.intermediate_size, got.torch_dtype,
                     want.model_type, (long long)want.num_hidden_layers,
                     (long long)want.hidden_size, (long long)want.intermediate_size,
                     want.torch_dtype);
    pf_config_free(&got);
  }
  pf_config_free(&want);
  return s;
}

pf_status pf_synth_resolve(const char *spec, char **out_dir, const pf_ctx *ctx, pf_err *err) {
  *out_dir = NULL;
  const pf_synth_preset *p = NULL;
  uint64_t seed;
  pf_dtype dt;
  char *dir = NULL;
  pf_status s = locate(spec, &p, &seed, &dt, &dir, err);
  if (s != PF_OK) return s;
  if (cached(dir)) {
    s = check_cached(p, dt, spec, dir, err);
  } else {
    pf_synth_opts o = {.preset = p->name, .seed = seed, .have_dtype = 1, .dtype = dt};
    s = pf_synth_write(&o, dir, ctx, err);
    /* Lost a race with another writer: its complete folder is as good as ours. */
    if (s != PF_OK && cached(dir)) {
      pf_err_clear(err);
      s = PF_OK;
    }
  }
  if (s != PF_OK) {
    free(dir);
    return s;
  }
  *out_dir = dir;
  return PF_OK;
}

/* The plan folder of preset p in dtype dt: config.json (as the checkpoint's) and the
 * tokenizer and side files, written once, atomically. */
static pf_status write_plan_dir(const pf_synth_preset *p, pf_dtype dt, const char *dir,
                                pf_err *err) {
  char *cfg = pf_path_join(dir, "config.json"), *stage = NULL;
  pf_status s = cfg ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", dir);
  if (s == PF_OK && !pf_path_exists(cfg) && (s = pf_make_temp_sibling(dir, &stage, err)) == PF_OK) {
    s = pf_synth_write_side_files(p, stage, err);
    pf_model *m = NULL;
    if (s == PF_OK && (s = plan_model(p, dt, &m, err)) == PF_OK)
      s = pf_model_write_config(m, stage, dt, err);
    pf_model_release(m);
    if (s == PF_OK && pf_commit_dir(stage, dir, PF_COMMIT_NEW, NULL, err) != PF_OK) {
      if (pf_path_exists(cfg)) /* another process wrote the same files first */
        pf_err_clear(err);
      else
        s = err ? err->code : PF_ERR_IO;
    }
    pf_remove_tree(stage, NULL); /* nothing left there after a commit */
    pf_temp_unregister(stage);
  }
  free(stage);
  free(cfg);
  return s;
}

pf_status pf_synth_open_plan(const char *spec, pf_model **out, pf_err *err) {
  *out = NULL;
  const pf_synth_preset *p = NULL;
  uint64_t seed;
  pf_dtype dt;
  char *dir = NULL, *plan_dir = NULL, *name = NULL;
  pf_status s = locate(spec, &p, &seed, &dt, &dir, err);
  if (s != PF_OK) return s;
  pf_model *m = NULL;
  if (cached(dir)) {
    s = pf_model_load(dir, &m, err);
  } else {
    size_t n = strlen(dir) + sizeof ".plan";
    if (!(plan_dir = malloc(n)))
      s = pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", spec);
    else
      snprintf(plan_dir, n, "%s.plan", dir);
    if (s == PF_OK && (s = write_plan_dir(p, dt, plan_dir, err)) != PF_OK)
      pf_err_prefix(err, "%s: writing its config and tokenizer to the cache", spec);
    else if (s == PF_OK)
      s = pf_model_plan_dir(plan_dir, &m, err);
  }
  if (s == PF_OK && !(name = strdup(spec)))
    s = pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", spec);
  if (s == PF_OK) {
    free(m->name);
    m->name = name;
    *out = m;
  } else {
    pf_model_release(m);
  }
  free(dir);
  free(plan_dir);
  return s;
}
