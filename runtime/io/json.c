/* json.c — cJSON parsing that tells out-of-memory from malformed input (json.h).
 *
 * Why hooks and not a second look at the text: cJSON's failure position is the
 * same for both causes, and re-validating the text with another grammar would
 * have to agree with cJSON's on every input. The hook sees the failed malloc
 * itself. */
#include "json.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local int json_alloc_failed;

static void *json_malloc(size_t n) {
  void *p = malloc(n);
  if (!p) json_alloc_failed = 1;
  return p;
}

static void json_free(void *p) {
  free(p);
}

static pthread_once_t json_once = PTHREAD_ONCE_INIT;

static void install_hooks(void) {
  cJSON_Hooks hooks = {.malloc_fn = json_malloc, .free_fn = json_free};
  cJSON_InitHooks(&hooks);
}

void pf_json_init(void) {
  pthread_once(&json_once, install_hooks);
}

cJSON *pf_json_parse(const char *text, size_t len, const char **end, int require_null_terminated,
                     int *oom) {
  pf_json_init();
  json_alloc_failed = 0;
  const char *stop = NULL;
  cJSON *root = text ? cJSON_ParseWithLengthOpts(text, len, &stop, require_null_terminated) : NULL;
  int failed = json_alloc_failed;
  json_alloc_failed = 0;
  if (end) *end = stop;
  if (oom) *oom = !root && failed;
  return root;
}

int pf_json_set(cJSON *obj, const char *key, cJSON *v) {
  if (!obj || !key || !v) {
    cJSON_Delete(v);
    return 0;
  }
  cJSON *old = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!old) return cJSON_AddItemToObject(obj, key, v) ? 1 : (cJSON_Delete(v), 0);
  size_t n = strlen(key) + 1;
  char *name = cJSON_malloc(n); /* freed by cJSON_Delete with the same hooks */
  if (!name) {
    cJSON_Delete(v);
    return 0;
  }
  memcpy(name, key, n);
  if (v->string && !(v->type & cJSON_StringIsConst)) cJSON_free(v->string);
  v->string = name;
  v->type &= ~cJSON_StringIsConst;
  return cJSON_ReplaceItemViaPointer(obj, old, v) ? 1 : (cJSON_Delete(v), 0);
}

static size_t count_numbers(const cJSON *v) {
  size_t n = cJSON_IsNumber(v);
  for (const cJSON *c = v->child; c; c = c->next)
    n += count_numbers(c);
  return n;
}

static void list_numbers(cJSON *v, cJSON **out, size_t *n) {
  if (cJSON_IsNumber(v)) out[(*n)++] = v;
  for (cJSON *c = v->child; c; c = c->next)
    list_numbers(c, out, n);
}

int pf_json_mark_float_literals(cJSON *root, const char *text, size_t len) {
  if (!root || !text) return 0;
  const size_t total = count_numbers(root);
  if (!total) return 1;
  cJSON **nums = malloc(total * sizeof *nums);
  unsigned char *is_float = calloc(total, 1);
  size_t n = 0, seen = 0;
  if (nums && is_float) {
    list_numbers(root, nums, &n);
    /* the number tokens of the text, outside strings, in order (cJSON parses in order) */
    for (size_t i = 0; i < len && seen <= total;) {
      const char ch = text[i];
      if (ch == '"') {
        for (i++; i < len && text[i] != '"'; i++)
          if (text[i] == '\\') i++;
        i++;
      } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
        int fl = 0;
        for (; i < len && text[i] && strchr("0123456789+-.eE", text[i]); i++)
          fl |= text[i] == '.' || text[i] == 'e' || text[i] == 'E';
        if (seen < total) is_float[seen] = (unsigned char)fl;
        seen++;
      } else {
        i++;
      }
    }
  }
  const int ok = nums && is_float && seen == total;
  for (size_t i = 0; ok && i < total; i++)
    if (is_float[i]) nums[i]->type |= PF_JSON_FLOAT_LITERAL;
  free(nums);
  free(is_float);
  return ok;
}

typedef struct keyed_item {
  cJSON *item;
  size_t pos;
} keyed_item;

static const char *key_of(const cJSON *c) {
  return c->string ? c->string : "";
}

static int keyed_cmp(const void *a, const void *b) {
  const keyed_item *x = a, *y = b;
  const int c = strcmp(key_of(x->item), key_of(y->item));
  return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

int pf_json_keep_last(cJSON *v) {
  if (!v) return 1;
  size_t n = 0;
  for (cJSON *c = v->child; c; c = c->next, n++)
    if (!pf_json_keep_last(c)) return 0;
  if (!cJSON_IsObject(v) || n < 2) return 1;
  keyed_item *k = malloc(n * sizeof *k); /* sorted by key, then place: O(n log n) */
  if (!k) return 0;
  n = 0;
  for (cJSON *c = v->child; c; c = c->next, n++)
    k[n] = (keyed_item){c, n};
  qsort(k, n, sizeof *k, keyed_cmp);
  for (size_t i = 0, j; i < n; i = j) {
    for (j = i + 1; j < n && !strcmp(key_of(k[j].item), key_of(k[i].item));)
      j++;
    if (j - i < 2) continue;
    for (size_t m = i + 1; m + 1 < j; m++) /* the ones between: gone */
      cJSON_Delete(cJSON_DetachItemViaPointer(v, k[m].item));
    /* the last one's value in the first one's place */
    cJSON_ReplaceItemViaPointer(v, k[i].item, cJSON_DetachItemViaPointer(v, k[j - 1].item));
  }
  free(k);
  return 1;
}

pf_status pf_json_nomem(pf_err *err, const char *what) {
  return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory while parsing JSON",
                    what && *what ? what : "JSON");
}

int pf_json_depth(const cJSON *v, int limit) {
  int d = 0;
  if (limit < 0) return 1;
  for (const cJSON *c = (cJSON_IsArray(v) || cJSON_IsObject(v)) ? v->child : NULL; c && d <= limit;
       c = c->next) {
    int k = pf_json_depth(c, limit - 1);
    if (k > d) d = k;
  }
  return d + 1;
}

/* Byte offset of the first invalid UTF-8 sequence, or n if valid (RFC 3629:
 * no overlongs, no surrogates, nothing above U+10FFFF). */
size_t pf_utf8_invalid_at(const char *text, size_t n) {
  const unsigned char *s = (const unsigned char *)text;
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t k;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF)
      k = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
      k = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      k = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else
      return i;
    if (i + k >= n) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t j = 2; j <= k; j++)
      if (s[i + j] < 0x80 || s[i + j] > 0xBF) return i;
    i += k + 1;
  }
  return n;
}

/* 1 if the JSON text holds a "\u0000" escape inside a string. */
int pf_json_has_nul_escape(const char *s, size_t n) {
  int in_str = 0;
  for (size_t i = 0; i < n; i++) {
    if (!in_str) {
      in_str = s[i] == '"';
    } else if (s[i] == '"') {
      in_str = 0;
    } else if (s[i] == '\\' && i + 1 < n) {
      if (s[i + 1] == 'u' && i + 5 < n && !memcmp(s + i + 2, "0000", 4)) return 1;
      i++; /* skip the escaped character */
    }
  }
  return 0;
}

const char *pf_json_kind(const cJSON *v) {
  if (!v) return "no such field";
  if (cJSON_IsString(v)) return "a string";
  if (cJSON_IsNumber(v)) return "a number";
  if (cJSON_IsBool(v)) return "a boolean";
  if (cJSON_IsNull(v)) return "null";
  if (cJSON_IsArray(v)) return "an array";
  if (cJSON_IsObject(v)) return "an object";
  return "an unknown value";
}

static int starts(const char *p, const char *stop, const char *word) {
  const size_t n = strlen(word);
  return (size_t)(stop - p) >= n && memcmp(p, word, n) == 0;
}

pf_status pf_jsonl_object(const char *line, size_t len, cJSON **out, pf_err *err) {
  *out = NULL;
  const char *nul = memchr(line, '\0', len);
  if (nul)
    return pf_err_set(err, PF_ERR_FORMAT, "malformed JSON: a NUL byte at column %zu",
                      (size_t)(nul - line) + 1);
  const size_t bad = pf_utf8_invalid_at(line, len);
  if (bad < len) return pf_err_set(err, PF_ERR_FORMAT, "not valid UTF-8 at column %zu", bad + 1);
  if (pf_json_has_nul_escape(line, len))
    return pf_err_set(err, PF_ERR_FORMAT, "a \"\\u0000\" escape (NUL character) is not supported");
  const char *end = NULL, *stop = line + len;
  int oom = 0;
  cJSON *o = pf_json_parse(line, len, &end, 0, &oom);
  if (!o && oom) return pf_err_set(err, PF_ERR_NOMEM, "out of memory while parsing JSON");
  if (!o) {
    const char *at = end && end >= line && end <= stop ? end : line;
    const int nan =
        starts(at, stop, "NaN") || starts(at, stop, "Infinity") || starts(at, stop, "-Infinity");
    return pf_err_set(err, PF_ERR_FORMAT, "malformed JSON at column %zu%s", (size_t)(at - line) + 1,
                      nan ? " (NaN and Infinity, which Python's json.dumps writes for float nan "
                            "and inf, are not JSON: write null)"
                          : "");
  }
  while (end && end < stop && (*end == ' ' || *end == '\t' || *end == '\r'))
    end++;
  pf_status st = PF_OK;
  if (end && end < stop)
    st = pf_err_set(err, PF_ERR_FORMAT, "text after the JSON object at column %zu",
                    (size_t)(end - line) + 1);
  else if (!cJSON_IsObject(o))
    st = pf_err_set(err, PF_ERR_FORMAT, "expected a JSON object, found %s", pf_json_kind(o));
  for (const cJSON *a = o->child; !st && a; a = a->next) /* json.loads keeps the last */
    for (const cJSON *b = a->next; !st && b; b = b->next)
      if (a->string && b->string && !strcmp(a->string, b->string))
        st = pf_err_set(err, PF_ERR_FORMAT,
                        "duplicate key '%s' (Python's json.loads would keep the last value)",
                        a->string);
  if (st) {
    cJSON_Delete(o);
    return st;
  }
  *out = o;
  return PF_OK;
}
