/* tokenizer.c — loading tokenizer.json and the encode pipeline (see tokenizer.h).
 *
 * encode(text) follows HF's TokenizerImpl::encode step by step:
 *   1. split out added tokens whose "normalized" is false, on the raw text;
 *   2. normalize each remaining segment, then split out the "normalized" added
 *      tokens (matched against their normalized content);
 *   3. pre-tokenize each remaining piece, run the BPE model on every pre-token;
 *   4. with add_special, wrap the ids in the post-processor's special tokens.
 * Added tokens are found leftmost-longest, as HF's Aho-Corasick does (the matcher
 * is in tokenizer_added.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "json.h"
#include "tokenizer_internal.h"

struct pf_tokenizer {
  pf_tk_bytemap bytemap;
  pf_tk_norm *norm; /* NULL: none */
  pf_tk_pre *pre;   /* NULL: none */
  pf_tk_dec *dec;   /* NULL: join tokens with " " */
  pf_tk_bpe *bpe;
  pf_tk_added *added;
  size_t n_added;
  pf_tk_trie *raw, *normed;  /* added tokens matched before / after normalization */
  int32_t *added_of_id;      /* [vocab_size] index into added or -1 */
  pf_tk_ids pp_pre, pp_post; /* ids the post-processor puts around $A */
  int32_t vocab_size, bos, eos;
  /* encode scratch */
  pf_tk_buf nbuf;
  pf_tk_pieces pa, pb;
  int refs; /* holders: pf_tokenizer_ref adds one, pf_tokenizer_free drops one */
};

static pf_status encode_segment(pf_tokenizer *t, const char *s, size_t n, int at_start,
                                pf_tk_ids *out, pf_err *err);
static pf_status encode_text(pf_tokenizer *t, const char *s, size_t n, int at_start, pf_tk_ids *out,
                             pf_err *err);

/* HF AddedVocabulary::split_with_indices: text between added tokens goes to the
 * next stage (normalization for the raw pass, pre-tokenization for the other). */
static pf_status split_added(pf_tokenizer *t, const pf_tk_trie *set, int normalized_pass,
                             const char *s, size_t n, int at_start, pf_tk_ids *out, pf_err *err) {
  size_t pos = 0, scan = 0, start, stop;
  long k;
  pf_status st;
  while ((k = pf_tk_added_next(set, t->added, s, n, pos, &scan, &start, &stop)) >= 0) {
    if (start > pos) {
      st = normalized_pass
               ? encode_text(t, s + pos, start - pos, at_start && pos == 0, out, err)
               : encode_segment(t, s + pos, start - pos, at_start && pos == 0, out, err);
      if (st) return st;
    }
    if (pf_tk_ids_push(out, t->added[k].id))
      return pf_err_set(err, PF_ERR_NOMEM, "encode: out of memory");
    pos = stop; /* as HF: may step back when this match began inside the last rstrip */
  }
  if (pos < n)
    return normalized_pass ? encode_text(t, s + pos, n - pos, at_start && pos == 0, out, err)
                           : encode_segment(t, s + pos, n - pos, at_start && pos == 0, out, err);
  return PF_OK;
}

/* ---- encode ---- */

static pf_status encode_text(pf_tokenizer *t, const char *s, size_t n, int at_start, pf_tk_ids *out,
                             pf_err *err) {
  pf_tk_pieces *pa = &t->pa;
  pf_tk_pieces_reset(pa);
  if (pf_tk_buf_put(&pa->text, s, n) || pf_tk_pieces_add(pa, 0, n, at_start))
    return pf_err_set(err, PF_ERR_NOMEM, "encode: out of memory");
  pf_status st;
  if (t->pre && (st = pf_tk_pretokenize(t->pre, pa, &t->pb, err))) return st;
  for (size_t k = 0; k < pa->n; k++)
    if ((st = pf_tk_bpe_encode(t->bpe, pa->text.p + pa->v[k].off, pa->v[k].len, out, err)))
      return st;
  return PF_OK;
}

static pf_status encode_segment(pf_tokenizer *t, const char *s, size_t n, int at_start,
                                pf_tk_ids *out, pf_err *err) {
  if (t->norm) {
    pf_status st = pf_tk_normalize(t->norm, s, n, &t->nbuf, &at_start, err);
    if (st) return st;
    s = t->nbuf.p;
    n = t->nbuf.n;
  }
  if (n == 0) return PF_OK;
  return split_added(t, t->normed, 1, s, n, at_start, out, err);
}

pf_status pf_tokenizer_encode(pf_tokenizer *t, const char *text, size_t len, int add_special,
                              int32_t **ids, size_t *n, pf_err *err) {
  *ids = NULL;
  *n = 0;
  if (!t || (!text && len))
    return pf_err_set(err, PF_ERR_INVALID, "pf_tokenizer_encode: NULL tokenizer or text");
  size_t bad = pf_tk_utf8_invalid_at(text, len);
  if (bad != SIZE_MAX)
    return pf_err_set(err, PF_ERR_INVALID, "text is not valid UTF-8 at byte %zu", bad);
  pf_tk_ids out = {0};
  pf_status st = PF_OK;
  if (pf_tk_ids_append(&out, NULL, 0) ||
      (add_special && pf_tk_ids_append(&out, t->pp_pre.v, t->pp_pre.n)))
    st = pf_err_set(err, PF_ERR_NOMEM, "encode: out of memory");
  if (!st && len) st = split_added(t, t->raw, 0, text, len, 1, &out, err);
  if (!st && add_special && pf_tk_ids_append(&out, t->pp_post.v, t->pp_post.n))
    st = pf_err_set(err, PF_ERR_NOMEM, "encode: out of memory");
  if (!out.v && !st && !(out.v = malloc(sizeof *out.v)))
    st = pf_err_set(err, PF_ERR_NOMEM, "encode: out of memory");
  if (st) {
    free(out.v);
    return st;
  }
  *ids = out.v;
  *n = out.n;
  return PF_OK;
}

/* ---- decode ---- */

pf_status pf_tokenizer_decode(const pf_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                              char **text, size_t *len, pf_err *err) {
  *text = NULL;
  if (len) *len = 0;
  pf_tk_pieces a = {0}, b = {0};
  pf_status st = PF_OK;
  for (size_t i = 0; i < n && !st; i++) {
    const char *s = pf_tokenizer_token(t, ids[i]);
    if (!s) {
      st = pf_err_set(err, PF_ERR_INVALID,
                      "decode: token id %d at position %zu is not in the "
                      "vocabulary (size %d)",
                      (int)ids[i], i, (int)t->vocab_size);
      break;
    }
    long k = t->added_of_id[ids[i]];
    if (skip_special && k >= 0 && t->added[k].special) continue;
    if (pf_tk_strs_add(&a, s, strlen(s)))
      st = pf_err_set(err, PF_ERR_NOMEM, "decode: out of memory");
  }
  if (!st && t->dec) st = pf_tk_decode_chain(t->dec, &a, &b, err);
  pf_tk_buf res = {0};
  for (size_t k = 0; k < a.n && !st; k++)
    if ((!t->dec && k > 0 && pf_tk_buf_put(&res, " ", 1)) ||
        pf_tk_buf_put(&res, a.text.p + a.v[k].off, a.v[k].len))
      st = pf_err_set(err, PF_ERR_NOMEM, "decode: out of memory");
  if (!st && pf_tk_buf_reserve(&res, 1))
    st = pf_err_set(err, PF_ERR_NOMEM, "decode: out of memory");
  pf_tk_pieces_free(&a);
  pf_tk_pieces_free(&b);
  if (st) {
    pf_tk_buf_free(&res);
    return st;
  }
  res.p[res.n] = 0;
  *text = res.p;
  if (len) *len = res.n;
  return PF_OK;
}

/* ---- getters ---- */

void pf_tokenizer_special_counts(const pf_tokenizer *tok, size_t *before, size_t *after) {
  *before = tok ? tok->pp_pre.n : 0;
  *after = tok ? tok->pp_post.n : 0;
}

int32_t pf_tokenizer_vocab_size(const pf_tokenizer *t) {
  return t ? t->vocab_size : 0;
}
int32_t pf_tokenizer_bos_id(const pf_tokenizer *t) {
  return t ? t->bos : -1;
}
int32_t pf_tokenizer_eos_id(const pf_tokenizer *t) {
  return t ? t->eos : -1;
}

const char *pf_tokenizer_token(const pf_tokenizer *t, int32_t id) {
  if (!t || id < 0 || id >= t->vocab_size) return NULL;
  if (t->added_of_id[id] >= 0) return t->added[t->added_of_id[id]].content;
  return pf_tk_bpe_token(t->bpe, id, NULL);
}

int32_t pf_tokenizer_token_id(const pf_tokenizer *t, const char *token) {
  if (!t || !token) return -1;
  size_t n = strlen(token);
  for (size_t i = 0; i < t->n_added; i++)
    if (t->added[i].len == n && !memcmp(t->added[i].content, token, n)) return t->added[i].id;
  return pf_tk_bpe_lookup(t->bpe, token, n);
}

/* ---- loading ---- */

pf_tokenizer *pf_tokenizer_ref(pf_tokenizer *t) {
  if (t) t->refs++;
  return t;
}

void pf_tokenizer_free(pf_tokenizer *t) {
  if (!t || --t->refs > 0) return;
  pf_tk_norm_free(t->norm);
  pf_tk_pre_free(t->pre);
  pf_tk_dec_free(t->dec);
  pf_tk_bpe_free(t->bpe);
  pf_tk_trie_free(t->raw);
  pf_tk_trie_free(t->normed);
  pf_tk_added_free(t->added, t->n_added);
  free(t->added_of_id);
  free(t->pp_pre.v);
  free(t->pp_post.v);
  pf_tk_buf_free(&t->nbuf);
  pf_tk_pieces_free(&t->pa);
  pf_tk_pieces_free(&t->pb);
  free(t);
}

static pf_status parse_model(pf_tokenizer *t, const cJSON *root, const pf_tk_fastjson *fj,
                             int32_t *max_id, pf_err *err) {
  const cJSON *model = pf_tk_jget(root, "model");
  if (!model) return pf_err_set(err, PF_ERR_FORMAT, "missing key \"model\"");
  if (!cJSON_IsObject(model)) return pf_err_set(err, PF_ERR_FORMAT, "model: expected an object");
  const char *type;
  pf_status s = pf_tk_jstr(model, "type", "model", 0, &type, err);
  if (s) return s;
  if (type && strcmp(type, "BPE"))
    return pf_err_set(err, PF_ERR_UNSUPPORTED,
                      "model.type \"%s\" is not supported (only \"BPE\" is)", type);
  if (!type && !pf_tk_jget(model, "merges")) /* HF infers the type when it is absent */
    return pf_err_set(err, PF_ERR_UNSUPPORTED,
                      "model: no \"type\" and no \"merges\"; only BPE models are supported");
  return pf_tk_bpe_parse(model, fj, &t->bpe, max_id, err);
}

/* Post-processor -> the ids before and after $A. Sequence wraps outward. */
static pf_status parse_post(pf_tokenizer *t, const cJSON *p, const char *w, pf_err *err);

static pf_status template_ids(pf_tokenizer *t, const cJSON *p, const char *w, pf_tk_ids *pre,
                              pf_tk_ids *post, pf_err *err) {
  const cJSON *single = pf_tk_jget(p, "single"), *specials = pf_tk_jget(p, "special_tokens");
  if (!cJSON_IsArray(single))
    return pf_err_set(err, PF_ERR_FORMAT, "%s.single: expected an array", w);
  int seen_a = 0;
  size_t i = 0;
  for (const cJSON *it = single->child; it; it = it->next, i++) {
    const cJSON *sp = pf_tk_jget(it, "SpecialToken"), *sq = pf_tk_jget(it, "Sequence");
    if (sq) {
      seen_a = 1;
      continue;
    }
    const char *name;
    char wi[128];
    snprintf(wi, sizeof wi, "%s.single[%zu]", w, i);
    if (!sp) return pf_err_set(err, PF_ERR_FORMAT, "%s: expected SpecialToken or Sequence", wi);
    pf_status s = pf_tk_jstr(sp, "id", wi, 1, &name, err);
    if (s) return s;
    const cJSON *def = specials ? pf_tk_jget(specials, name) : NULL;
    const cJSON *idl = def ? pf_tk_jget(def, "ids") : NULL;
    if (!cJSON_IsArray(idl))
      return pf_err_set(err, PF_ERR_FORMAT, "%s.special_tokens: no ids for \"%s\"", w, name);
    for (const cJSON *x = idl->child; x; x = x->next) {
      if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= t->vocab_size)
        return pf_err_set(err, PF_ERR_FORMAT, "%s.special_tokens[\"%s\"]: bad id", w, name);
      if (pf_tk_ids_push(seen_a ? post : pre, (int32_t)x->valuedouble))
        return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    }
  }
  return PF_OK;
}

static pf_status wrap_ids(pf_tokenizer *t, const pf_tk_ids *pre, const pf_tk_ids *post) {
  pf_tk_ids np = {0};
  if (pf_tk_ids_append(&np, pre->v, pre->n) || pf_tk_ids_append(&np, t->pp_pre.v, t->pp_pre.n) ||
      pf_tk_ids_append(&t->pp_post, post->v, post->n)) {
    free(np.v);
    return PF_ERR_NOMEM;
  }
  free(t->pp_pre.v);
  t->pp_pre = np;
  return PF_OK;
}

static pf_status parse_post(pf_tokenizer *t, const cJSON *p, const char *w, pf_err *err) {
  const char *type;
  pf_status s = pf_tk_jtype(p, w, &type, err);
  if (s) return s;
  pf_tk_ids pre = {0}, post = {0};
  if (!strcmp(type, "ByteLevel")) return PF_OK; /* offsets only */
  if (!strcmp(type, "Sequence")) {
    const cJSON *arr = pf_tk_jget(p, "processors");
    if (!cJSON_IsArray(arr))
      return pf_err_set(err, PF_ERR_FORMAT, "%s: missing array \"processors\"", w);
    size_t i = 0;
    for (const cJSON *c = arr->child; c; c = c->next, i++) {
      char wi[128];
      snprintf(wi, sizeof wi, "%s.processors[%zu]", w, i);
      if ((s = parse_post(t, c, wi, err))) return s;
    }
    return PF_OK;
  }
  if (!strcmp(type, "TemplateProcessing"))
    s = template_ids(t, p, w, &pre, &post, err);
  else if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
    const cJSON *cls = pf_tk_jget(p, "cls"), *sep = pf_tk_jget(p, "sep");
    const cJSON *ci = cJSON_GetArrayItem(cls, 1), *si = cJSON_GetArrayItem(sep, 1);
    if (!cJSON_IsNumber(ci) || !cJSON_IsNumber(si) || ci->valuedouble < 0 || si->valuedouble < 0 ||
        ci->valuedouble >= t->vocab_size || si->valuedouble >= t->vocab_size)
      s = pf_err_set(err, PF_ERR_FORMAT, "%s: expected \"cls\" and \"sep\" as [token, id]", w);
    else if (pf_tk_ids_push(&pre, (int32_t)ci->valuedouble) ||
             pf_tk_ids_push(&post, (int32_t)si->valuedouble))
      s = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  } else
    s = pf_err_set(err, PF_ERR_UNSUPPORTED, "%s: post-processor type \"%s\" is not supported", w,
                   type);
  if (!s && wrap_ids(t, &pre, &post)) s = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  free(pre.v);
  free(post.v);
  return s;
}

/* bos_token / eos_token of tokenizer_config.json: a string or {"content": ...}. */
static const char *config_token(const cJSON *cfg, const char *key) {
  const cJSON *v = pf_tk_jget(cfg, key);
  if (cJSON_IsObject(v)) v = pf_tk_jget(v, "content");
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Parse JSON text (its UTF-8 checked by the caller). */
static pf_status parse_text(const char *path, const char *buf, size_t n, cJSON **out, pf_err *err) {
  const char *end = NULL;
  int oom = 0;
  *out = pf_json_parse(buf, n, &end, 0, &oom);
  if (*out) return PF_OK;
  if (oom) return pf_json_nomem(err, path);
  size_t off = end && end >= buf && end <= buf + n ? (size_t)(end - buf) : 0, line = 1, col = 1;
  for (size_t i = 0; i < off; i++) {
    if (buf[i] == '\n') {
      line++;
      col = 1;
    } else
      col++;
  }
  return pf_err_set(err, PF_ERR_FORMAT, "%s: malformed JSON at line %zu, column %zu", path, line,
                    col);
}

/* JSON text is UTF-8 (as Hugging Face's serde_json demands); cJSON copies raw bytes
 * into strings unchecked, and the tokenizer relies on every string being valid UTF-8
 * (regexes run with PCRE2_NO_UTF_CHECK, decoders walk code points), so a file that
 * is not UTF-8 is refused here. */
static pf_status check_utf8(const char *path, const char *buf, size_t n, pf_err *err) {
  size_t bad = pf_tk_utf8_invalid_at(buf, n);
  if (bad != SIZE_MAX)
    return pf_err_set(err, PF_ERR_FORMAT, "%s: not valid UTF-8 at byte %zu (JSON must be UTF-8)",
                      path, bad);
  return PF_OK;
}

static pf_status parse_json(const char *path, const char *buf, size_t n, cJSON **out, pf_err *err) {
  *out = NULL;
  pf_status s = check_utf8(path, buf, n, err);
  return s ? s : parse_text(path, buf, n, out, err);
}

/* The tree holds {} / [] where the fast path took model.vocab / model.merges. */
static int placeholders_ok(const cJSON *root, const pf_tk_fastjson *fj) {
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, "vocab");
  const cJSON *g = cJSON_GetObjectItemCaseSensitive(m, "merges");
  return cJSON_IsObject(m) && (!fj->vocab || (cJSON_IsObject(v) && !v->child)) &&
         (!fj->merges || (cJSON_IsArray(g) && !g->child));
}

/* tokenizer.json: cJSON parses all of it but model.vocab and model.merges when
 * pf_tk_fastjson_make takes them (they stay in buf, read by the BPE loader). If
 * cJSON refuses the emptied copy, or the placeholders are not where they should be,
 * the whole file is parsed the plain way: same tree, same messages. */
static pf_status parse_tokenizer_json(const char *path, const char *buf, size_t n,
                                      pf_tk_fastjson *fj, cJSON **out, pf_err *err) {
  *out = NULL;
  pf_status s = check_utf8(path, buf, n, err);
  if (s) return s;
  if (pf_tk_fastjson_make(buf, n, fj) > 0) {
    int oom = 0;
    *out = pf_json_parse(fj->stripped, fj->stripped_n, NULL, 0, &oom);
    free(fj->stripped); /* cJSON made its own copies */
    fj->stripped = NULL;
    if (*out && placeholders_ok(*out, fj)) return PF_OK;
    cJSON_Delete(*out);
    *out = NULL;
  }
  pf_tk_fastjson_free(fj);
  return parse_text(path, buf, n, out, err);
}

static pf_status read_config(pf_tokenizer *t, const char *dir, int have_post, pf_err *err) {
  char *path = pf_path_join(dir, "tokenizer_config.json"), *buf = NULL;
  size_t n;
  cJSON *cfg = NULL;
  pf_status s = PF_OK;
  if (!path) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!pf_path_exists(path)) goto done;
  if ((s = pf_read_file(path, (size_t)16 << 20, &buf, &n, err)) ||
      (s = parse_json(path, buf, n, &cfg, err)))
    goto done;
  const char *bos = config_token(cfg, "bos_token"), *eos = config_token(cfg, "eos_token");
  if (bos) t->bos = pf_tokenizer_token_id(t, bos);
  if (eos) t->eos = pf_tokenizer_token_id(t, eos);
  /* transformers' Llama and Gemma fast tokenizers (what AutoTokenizer builds for these
   * classes) rebuild the post-processor from add_bos_token (default true) and
   * add_eos_token (default false) whatever tokenizer.json holds; other classes keep it */
  static const char *const rebuilders[] = {"LlamaTokenizer",     "LlamaTokenizerFast",
                                           "CodeLlamaTokenizer", "CodeLlamaTokenizerFast",
                                           "GemmaTokenizer",     "GemmaTokenizerFast"};
  const cJSON *cls = cJSON_GetObjectItemCaseSensitive(cfg, "tokenizer_class");
  int rebuild = 0;
  for (size_t i = 0; cJSON_IsString(cls) && i < sizeof rebuilders / sizeof *rebuilders; i++)
    rebuild |= !strcmp(cls->valuestring, rebuilders[i]);
  int add_bos = 0, add_eos = 0;
  if ((!have_post || rebuild) &&
      !(s = pf_tk_jbool(cfg, "add_bos_token", "tokenizer_config", rebuild, &add_bos, err)) &&
      !(s = pf_tk_jbool(cfg, "add_eos_token", "tokenizer_config", 0, &add_eos, err))) {
    t->pp_pre.n = t->pp_post.n = 0;
    if ((add_bos && t->bos >= 0 && pf_tk_ids_push(&t->pp_pre, t->bos)) ||
        (add_eos && t->eos >= 0 && pf_tk_ids_push(&t->pp_post, t->eos)))
      s = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  if (s) pf_err_prefix(err, "%s", path);
done:
  cJSON_Delete(cfg);
  free(buf);
  free(path);
  return s;
}

/* Objects with a "type" member under v: the components a pipeline will build. */
static size_t count_components(const cJSON *v, size_t limit) {
  size_t n = cJSON_IsObject(v) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(v, "type"));
  for (const cJSON *c = (cJSON_IsArray(v) || cJSON_IsObject(v)) ? v->child : NULL; c && n <= limit;
       c = c->next)
    n += count_components(c, limit - n);
  return n;
}

/* The bounds that keep the recursive component parsers and the encode pipeline
 * small: JSON nesting (Sequence inside Sequence ...) and the number of components
 * (each may compile and JIT a regex). */
static pf_status check_shape(const cJSON *root, pf_err *err) {
  int depth = pf_json_depth(root, PF_TOKENIZER_MAX_DEPTH);
  if (depth > PF_TOKENIZER_MAX_DEPTH)
    return pf_err_set(err, PF_ERR_INVALID, "JSON nested deeper than %d levels",
                      PF_TOKENIZER_MAX_DEPTH);
  static const char *const keys[] = {"normalizer", "pre_tokenizer", "decoder", "post_processor"};
  size_t n = 0;
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    n += count_components(pf_tk_jget(root, keys[i]), PF_TOKENIZER_MAX_COMPONENTS);
  if (n > PF_TOKENIZER_MAX_COMPONENTS)
    return pf_err_set(err, PF_ERR_INVALID,
                      "more than %d normalizer/pre-tokenizer/decoder/post-processor components",
                      PF_TOKENIZER_MAX_COMPONENTS);
  return PF_OK;
}

static pf_status build(pf_tokenizer *t, const cJSON *root, const pf_tk_fastjson *fj, pf_err *err) {
  const cJSON *j;
  int32_t max_id = -1;
  pf_status s;
  if ((s = check_shape(root, err))) return s;
  pf_tk_bytemap_init(&t->bytemap);
  if ((s = parse_model(t, root, fj, &max_id, err))) return s;
  if ((j = pf_tk_jget(root, "normalizer")) &&
      (s = pf_tk_norm_parse(j, "normalizer", &t->norm, err)))
    return s;
  if ((j = pf_tk_jget(root, "pre_tokenizer")) &&
      (s = pf_tk_pre_parse(j, "pre_tokenizer", &t->bytemap, &t->pre, err)))
    return s;
  if ((j = pf_tk_jget(root, "decoder")) &&
      (s = pf_tk_dec_parse(j, "decoder", &t->bytemap, &t->dec, err)))
    return s;
  if ((s = pf_tk_added_parse(pf_tk_jget(root, "added_tokens"), t->norm, t->bpe, &t->added,
                             &t->n_added, &max_id, err)))
    return s;
  t->vocab_size = max_id + 1;
  if (!(t->added_of_id = malloc((t->vocab_size ? (size_t)t->vocab_size : 1) * sizeof(int32_t))))
    return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (int32_t i = 0; i < t->vocab_size; i++)
    t->added_of_id[i] = -1;
  for (size_t i = 0; i < t->n_added; i++)
    t->added_of_id[t->added[i].id] = (int32_t)i;
  if ((s = pf_tk_trie_build(t->added, t->n_added, 0, &t->raw, err)) ||
      (s = pf_tk_trie_build(t->added, t->n_added, 1, &t->normed, err)))
    return s;
  if ((j = pf_tk_jget(root, "post_processor")) && (s = parse_post(t, j, "post_processor", err)))
    return s;
  return PF_OK;
}

/* With no tokenizer_config.json: the special tokens around $A. */
static void default_bos_eos(pf_tokenizer *t) {
  if (t->bos < 0 && t->pp_pre.n) t->bos = t->pp_pre.v[t->pp_pre.n - 1];
  if (t->eos < 0 && t->pp_post.n) t->eos = t->pp_post.v[0];
}

pf_status pf_tokenizer_load(const char *path, pf_tokenizer **out, pf_err *err) {
  *out = NULL;
  if (!path) return pf_err_set(err, PF_ERR_INVALID, "pf_tokenizer_load: NULL path");
  char *file = pf_is_dir(path) ? pf_path_join(path, "tokenizer.json") : strdup(path);
  char *dir = NULL, *buf = NULL;
  size_t n = 0;
  cJSON *root = NULL;
  pf_tokenizer *t = NULL;
  pf_tk_fastjson fj = {0};
  pf_status s;
  if (!file || !(dir = strdup(file)) || !(t = calloc(1, sizeof *t))) {
    s = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    goto fail;
  }
  t->refs = 1;
  char *slash = strrchr(dir, '/');
  if (slash) {
    *slash = 0;
  } else { /* no folder part: the current one ("" would not fit ".") */
    free(dir);
    if (!(dir = strdup("."))) {
      s = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
      goto fail;
    }
  }
  t->bos = t->eos = -1;
  if ((s = pf_read_file(file, PF_TOKENIZER_MAX_FILE_BYTES, &buf, &n, err)) ||
      (s = parse_tokenizer_json(file, buf, n, &fj, &root, err)))
    goto fail;
  if (!cJSON_IsObject(root)) {
    s = pf_err_set(err, PF_ERR_FORMAT, "%s: expected a JSON object at the top level", file);
    goto fail;
  }
  if ((s = build(t, root, &fj, err))) {
    pf_err_prefix(err, "%s", file);
    goto fail;
  }
  if ((s = read_config(t, dir, pf_tk_jget(root, "post_processor") != NULL, err))) goto fail;
  default_bos_eos(t);
  pf_tk_fastjson_free(&fj);
  cJSON_Delete(root);
  free(buf);
  free(file);
  free(dir);
  *out = t;
  return PF_OK;
fail:
  pf_tk_fastjson_free(&fj);
  cJSON_Delete(root);
  free(buf);
  free(file);
  free(dir);
  pf_tokenizer_free(t);
  return s;
}
