/* value.c — pf_value: ref-counted tagged tree (see value.h).
 *
 * JSON: pf_value_to_json builds a cJSON tree (numbers are doubles there, so
 * int64 values above 2^53 lose precision — parameter counts are far below).
 * pf_value_to_json_text has its own printer so that numbers look like Python's
 * json.dumps: ints as ints, floats in the shortest repr that round-trips with a
 * ".0" when integral (25.0, 13.029622571156315, 1e-05), non-finite as null.
 * pf_value_from_json cannot see how cJSON's input spelled a number, so any
 * integral number with |x| <= 2^53 becomes an int (5.0 reads back as int 5).
 */
#include "value.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pf_value *value_new(pf_vtype t) {
  pf_value *v = calloc(1, sizeof *v);
  if (!v) return NULL;
  v->refcount = 1;
  v->type = t;
  return v;
}

pf_value *pf_value_null(void) {
  return value_new(PF_V_NULL);
}

pf_value *pf_value_bool(int b) {
  pf_value *v = value_new(PF_V_BOOL);
  if (v) v->u.b = b ? 1 : 0;
  return v;
}

pf_value *pf_value_int(int64_t i) {
  pf_value *v = value_new(PF_V_INT);
  if (v) v->u.i = i;
  return v;
}

pf_value *pf_value_num(double n) {
  pf_value *v = value_new(PF_V_NUM);
  if (v) v->u.n = n;
  return v;
}

pf_value *pf_value_str(const char *s) {
  pf_value *v = value_new(PF_V_STR);
  if (!v) return NULL;
  v->u.s = strdup(s ? s : "");
  if (!v->u.s) {
    free(v);
    return NULL;
  }
  return v;
}

pf_value *pf_value_list(void) {
  return value_new(PF_V_LIST);
}
pf_value *pf_value_map(void) {
  return value_new(PF_V_MAP);
}

pf_value *pf_value_model(pf_model *m) {
  if (!m) return NULL;
  pf_value *v = value_new(PF_V_MODEL);
  if (!v) return NULL;
  pf_model_retain(m);
  v->u.model = m;
  return v;
}

pf_value *pf_value_tensor(pf_tensor *t) {
  if (!t) return NULL;
  pf_value *v = value_new(PF_V_TENSOR);
  if (!v) return NULL;
  pf_tensor_retain(t);
  v->u.tensor = t;
  return v;
}

void pf_value_retain(pf_value *v) {
  if (v) v->refcount++;
}

void pf_value_release(pf_value *v) {
  if (!v || --v->refcount > 0) return;
  switch (v->type) {
  case PF_V_STR:
    free(v->u.s);
    break;
  case PF_V_LIST:
    for (size_t i = 0; i < v->u.list.len; i++)
      pf_value_release(v->u.list.items[i]);
    free(v->u.list.items);
    break;
  case PF_V_MAP:
    for (size_t i = 0; i < v->u.map.len; i++) {
      free(v->u.map.keys[i]);
      pf_value_release(v->u.map.vals[i]);
    }
    free(v->u.map.keys);
    free(v->u.map.vals);
    break;
  case PF_V_MODEL:
    pf_model_release(v->u.model);
    break;
  case PF_V_TENSOR:
    pf_tensor_release(v->u.tensor);
    break;
  default:
    break;
  }
  free(v);
}

const char *pf_vtype_name(pf_vtype t) {
  switch (t) {
  case PF_V_NULL:
    return "null";
  case PF_V_BOOL:
    return "bool";
  case PF_V_INT:
    return "int";
  case PF_V_NUM:
    return "number";
  case PF_V_STR:
    return "string";
  case PF_V_LIST:
    return "list";
  case PF_V_MAP:
    return "map";
  case PF_V_MODEL:
    return "model";
  case PF_V_TENSOR:
    return "tensor";
  }
  return "unknown";
}

pf_status pf_list_push(pf_value *list, pf_value *item) {
  if (!list || list->type != PF_V_LIST || !item) {
    pf_value_release(item);
    return list && list->type == PF_V_LIST ? PF_ERR_NOMEM : PF_ERR_INVALID;
  }
  if (list->u.list.len == list->u.list.cap) {
    size_t cap = list->u.list.cap ? list->u.list.cap * 2 : 8;
    pf_value **items = realloc(list->u.list.items, cap * sizeof *items);
    if (!items) {
      pf_value_release(item);
      return PF_ERR_NOMEM;
    }
    list->u.list.items = items;
    list->u.list.cap = cap;
  }
  list->u.list.items[list->u.list.len++] = item;
  return PF_OK;
}

static ptrdiff_t map_find(const pf_value *map, const char *key) {
  if (!map || map->type != PF_V_MAP || !key) return -1;
  for (size_t i = 0; i < map->u.map.len; i++)
    if (strcmp(map->u.map.keys[i], key) == 0) return (ptrdiff_t)i;
  return -1;
}

static int map_grow(pf_value *map) {
  if (map->u.map.len < map->u.map.cap) return 1;
  size_t cap = map->u.map.cap ? map->u.map.cap * 2 : 8;
  char **keys = realloc(map->u.map.keys, cap * sizeof *keys);
  if (!keys) return 0;
  map->u.map.keys = keys;
  pf_value **vals = realloc(map->u.map.vals, cap * sizeof *vals);
  if (!vals) return 0;
  map->u.map.vals = vals;
  map->u.map.cap = cap;
  return 1;
}

pf_status pf_map_set(pf_value *map, const char *key, pf_value *val) {
  if (!map || map->type != PF_V_MAP || !key) {
    pf_value_release(val);
    return PF_ERR_INVALID;
  }
  if (!val) return PF_ERR_NOMEM; /* a failed constructor passed straight in */
  ptrdiff_t at = map_find(map, key);
  if (at >= 0) {
    pf_value_release(map->u.map.vals[at]);
    map->u.map.vals[at] = val;
    return PF_OK;
  }
  char *k = strdup(key);
  if (!k || !map_grow(map)) {
    free(k);
    pf_value_release(val);
    return PF_ERR_NOMEM;
  }
  map->u.map.keys[map->u.map.len] = k;
  map->u.map.vals[map->u.map.len] = val;
  map->u.map.len++;
  return PF_OK;
}

pf_value *pf_map_get(const pf_value *map, const char *key) {
  ptrdiff_t at = map_find(map, key);
  return at >= 0 ? map->u.map.vals[at] : NULL;
}

int pf_map_del(pf_value *map, const char *key) {
  ptrdiff_t at = map_find(map, key);
  if (at < 0) return 0;
  free(map->u.map.keys[at]);
  pf_value_release(map->u.map.vals[at]);
  size_t rest = map->u.map.len - (size_t)at - 1;
  memmove(map->u.map.keys + at, map->u.map.keys + at + 1, rest * sizeof(char *));
  memmove(map->u.map.vals + at, map->u.map.vals + at + 1, rest * sizeof(pf_value *));
  map->u.map.len--;
  return 1;
}

pf_status pf_map_set_int(pf_value *map, const char *key, int64_t i) {
  return pf_map_set(map, key, pf_value_int(i));
}
pf_status pf_map_set_num(pf_value *map, const char *key, double n) {
  return pf_map_set(map, key, pf_value_num(n));
}
pf_status pf_map_set_str(pf_value *map, const char *key, const char *s) {
  return pf_map_set(map, key, pf_value_str(s));
}
pf_status pf_map_set_bool(pf_value *map, const char *key, int b) {
  return pf_map_set(map, key, pf_value_bool(b));
}

int64_t pf_map_int(const pf_value *map, const char *key, int64_t fallback) {
  const pf_value *v = pf_map_get(map, key);
  if (!v) return fallback;
  if (v->type == PF_V_INT) return v->u.i;
  if (v->type == PF_V_NUM && isfinite(v->u.n)) return (int64_t)v->u.n;
  if (v->type == PF_V_BOOL) return v->u.b;
  return fallback;
}

double pf_map_num(const pf_value *map, const char *key, double fallback) {
  const pf_value *v = pf_map_get(map, key);
  if (!v) return fallback;
  if (v->type == PF_V_NUM) return v->u.n;
  if (v->type == PF_V_INT) return (double)v->u.i;
  return fallback;
}

const char *pf_map_str(const pf_value *map, const char *key, const char *fallback) {
  const pf_value *v = pf_map_get(map, key);
  return v && v->type == PF_V_STR ? v->u.s : fallback;
}

int pf_map_bool(const pf_value *map, const char *key, int fallback) {
  const pf_value *v = pf_map_get(map, key);
  return v && v->type == PF_V_BOOL ? v->u.b : fallback;
}

pf_model *pf_map_model(const pf_value *map, const char *key) {
  const pf_value *v = pf_map_get(map, key);
  return v && v->type == PF_V_MODEL ? v->u.model : NULL;
}

pf_tensor *pf_map_tensor(const pf_value *map, const char *key) {
  const pf_value *v = pf_map_get(map, key);
  return v && v->type == PF_V_TENSOR ? v->u.tensor : NULL;
}

int pf_map_has(const pf_value *map, const char *key) {
  const pf_value *v = pf_map_get(map, key);
  return v && v->type != PF_V_NULL;
}

int pf_map_is_int(const pf_value *map, const char *key) {
  const pf_value *v = pf_map_get(map, key);
  return v && v->type == PF_V_INT;
}

static pf_value *tensor_summary(const pf_tensor *t);

/* Deep copy; hollow: tensors become their summary maps. */
static pf_value *copy_value(const pf_value *v, int hollow) {
  if (!v) return NULL;
  switch (v->type) {
  case PF_V_NULL:
    return pf_value_null();
  case PF_V_BOOL:
    return pf_value_bool(v->u.b);
  case PF_V_INT:
    return pf_value_int(v->u.i);
  case PF_V_NUM:
    return pf_value_num(v->u.n);
  case PF_V_STR:
    return pf_value_str(v->u.s);
  case PF_V_MODEL:
    return pf_value_model(v->u.model);
  case PF_V_TENSOR:
    return hollow ? tensor_summary(v->u.tensor) : pf_value_tensor(v->u.tensor);
  case PF_V_LIST: {
    pf_value *out = pf_value_list();
    for (size_t i = 0; out && i < v->u.list.len; i++) {
      pf_value *c = copy_value(v->u.list.items[i], hollow);
      if (!c || pf_list_push(out, c) != PF_OK) {
        pf_value_release(out);
        return NULL;
      }
    }
    return out;
  }
  case PF_V_MAP: {
    pf_value *out = pf_value_map();
    for (size_t i = 0; out && i < v->u.map.len; i++) {
      pf_value *c = copy_value(v->u.map.vals[i], hollow);
      if (!c || pf_map_set(out, v->u.map.keys[i], c) != PF_OK) {
        pf_value_release(out);
        return NULL;
      }
    }
    return out;
  }
  }
  return NULL;
}

pf_value *pf_value_copy(const pf_value *v) {
  return copy_value(v, 0);
}

pf_value *pf_value_hollow(const pf_value *v) {
  return copy_value(v, 1);
}

int pf_value_has_tensor(const pf_value *v) {
  if (!v) return 0;
  if (v->type == PF_V_TENSOR) return 1;
  const size_t n = v->type == PF_V_LIST ? v->u.list.len : v->type == PF_V_MAP ? v->u.map.len : 0;
  for (size_t i = 0; i < n; i++)
    if (pf_value_has_tensor(v->type == PF_V_LIST ? v->u.list.items[i] : v->u.map.vals[i])) return 1;
  return 0;
}

/* ---- JSON (cJSON tree) ---- */

/* The summary map a model is shown as in results.json. NULL on NOMEM. */
pf_value *pf_value_model_summary(const pf_model *m) {
  pf_value *s = pf_value_map();
  if (!s || !m) return s;
  int64_t inter = m->config.intermediate_size;
  pf_status st = pf_map_set_str(s, "model", m->name ? m->name : "");
  if (!st) st = pf_map_set_int(s, "num_hidden_layers", m->n_layers);
  if (!st) st = pf_map_set_int(s, "parameters", pf_model_param_count(m));
  if (!st) st = pf_map_set_str(s, "dtype", pf_dtype_torch_name(m->dtype));
  if (!st) st = pf_map_set_int(s, "hidden_size", m->config.hidden_size);
  if (!st) st = pf_map_set_int(s, "intermediate_size", inter);
  if (st) {
    pf_value_release(s);
    return NULL;
  }
  return s;
}

/* {"tensor": [shape...], "dtype": "float32"}. NULL on NOMEM. */
static pf_value *tensor_summary(const pf_tensor *t) {
  pf_value *s = pf_value_map(), *shape = pf_value_list();
  pf_status st = s && shape ? PF_OK : PF_ERR_NOMEM;
  for (int i = 0; !st && t && i < t->ndim; i++)
    st = pf_list_push(shape, pf_value_int(t->shape[i]));
  if (!st) {
    st = pf_map_set(s, "tensor", shape);
    shape = NULL;
  }
  if (!st) st = pf_map_set_str(s, "dtype", t ? pf_dtype_torch_name(t->dtype) : "float32");
  pf_value_release(shape);
  if (st) {
    pf_value_release(s);
    return NULL;
  }
  return s;
}

cJSON *pf_value_to_json(const pf_value *v) {
  if (!v) return cJSON_CreateNull();
  switch (v->type) {
  case PF_V_NULL:
    return cJSON_CreateNull();
  case PF_V_BOOL:
    return cJSON_CreateBool(v->u.b);
  case PF_V_INT:
    return cJSON_CreateNumber((double)v->u.i);
  case PF_V_NUM:
    return isfinite(v->u.n) ? cJSON_CreateNumber(v->u.n) : cJSON_CreateNull();
  case PF_V_STR:
    return cJSON_CreateString(v->u.s);
  case PF_V_MODEL:
  case PF_V_TENSOR: {
    pf_value *s =
        v->type == PF_V_MODEL ? pf_value_model_summary(v->u.model) : tensor_summary(v->u.tensor);
    cJSON *j = s ? pf_value_to_json(s) : NULL;
    pf_value_release(s);
    return j;
  }
  case PF_V_LIST: {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < v->u.list.len; i++) {
      cJSON *c = pf_value_to_json(v->u.list.items[i]);
      if (!c || !cJSON_AddItemToArray(a, c)) {
        cJSON_Delete(c);
        cJSON_Delete(a);
        return NULL;
      }
    }
    return a;
  }
  case PF_V_MAP: {
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o && i < v->u.map.len; i++) {
      cJSON *c = pf_value_to_json(v->u.map.vals[i]);
      if (!c || !cJSON_AddItemToObject(o, v->u.map.keys[i], c)) {
        cJSON_Delete(c);
        cJSON_Delete(o);
        return NULL;
      }
    }
    return o;
  }
  }
  return NULL;
}

static pf_value *number_from_json(double d) {
  if (d == floor(d) && fabs(d) <= 9007199254740992.0) return pf_value_int((int64_t)d);
  return pf_value_num(d);
}

pf_value *pf_value_from_json(const cJSON *j) {
  if (!j || cJSON_IsNull(j)) return pf_value_null();
  if (cJSON_IsBool(j)) return pf_value_bool(cJSON_IsTrue(j));
  if (cJSON_IsNumber(j)) return number_from_json(j->valuedouble);
  if (cJSON_IsString(j)) return pf_value_str(j->valuestring);
  int is_arr = cJSON_IsArray(j);
  if (!is_arr && !cJSON_IsObject(j)) return pf_value_null(); /* raw / invalid */
  pf_value *out = is_arr ? pf_value_list() : pf_value_map();
  const cJSON *c;
  cJSON_ArrayForEach(c, j) {
    if (!out) break;
    pf_value *cv = pf_value_from_json(c);
    pf_status st = is_arr ? pf_list_push(out, cv) : pf_map_set(out, c->string, cv);
    if (st != PF_OK) {
      pf_value_release(out);
      return NULL;
    }
  }
  return out;
}

/* ---- JSON text (own printer, Python json.dumps-style numbers) ---- */

typedef struct jbuf {
  char *s;
  size_t len, cap;
  int oom;
  int indent;       /* spaces per level */
  int ensure_ascii; /* escape non-ASCII (and DEL) as \uXXXX, as Python's default */
} jbuf;

static void jb_put(jbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (b->len + n + 1 > cap)
      cap *= 2;
    char *ns = realloc(b->s, cap);
    if (!ns) {
      b->oom = 1;
      return;
    }
    b->s = ns;
    b->cap = cap;
  }
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = '\0';
}

static void jb_str(jbuf *b, const char *s) {
  jb_put(b, s, strlen(s));
}

static void jb_indent(jbuf *b, int depth) {
  jb_put(b, "\n", 1);
  for (int i = 0; i < depth * b->indent; i++)
    jb_put(b, " ", 1);
}

/* Length of the UTF-8 sequence at p and its code point; 0 when invalid. */
static int utf8_decode(const unsigned char *p, unsigned *cp) {
  int n = 0;
  if (p[0] >= 0xC2 && p[0] < 0xE0)
    n = 2;
  else if (p[0] >= 0xE0 && p[0] < 0xF0)
    n = 3;
  else if (p[0] >= 0xF0 && p[0] < 0xF5)
    n = 4;
  if (!n) return 0;
  unsigned c = p[0] & (0x3F >> (n - 1));
  for (int i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    c = (c << 6) | (p[i] & 0x3F);
  }
  if (n == 3 && (c < 0x800 || (c >= 0xD800 && c < 0xE000))) return 0;
  if (n == 4 && (c < 0x10000 || c > 0x10FFFF)) return 0;
  *cp = c;
  return n;
}

/* Python's ensure_ascii escape of the non-ASCII sequence at *p (advanced);
 * an invalid byte becomes U+FFFD. */
static void jb_escape_utf8(jbuf *b, const unsigned char **p) {
  unsigned cp = 0xFFFD;
  int n = utf8_decode(*p, &cp);
  *p += n ? n - 1 : 0;
  char esc[32];
  if (cp >= 0x10000) {
    unsigned v = cp - 0x10000;
    snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
  } else {
    snprintf(esc, sizeof esc, "\\u%04x", cp);
  }
  jb_str(b, esc);
}

static void jb_quoted(jbuf *b, const char *s) {
  jb_put(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char esc[8];
    switch (*p) {
    case '"':
      jb_str(b, "\\\"");
      break;
    case '\\':
      jb_str(b, "\\\\");
      break;
    case '\n':
      jb_str(b, "\\n");
      break;
    case '\r':
      jb_str(b, "\\r");
      break;
    case '\t':
      jb_str(b, "\\t");
      break;
    case '\b':
      jb_str(b, "\\b");
      break;
    case '\f':
      jb_str(b, "\\f");
      break;
    default:
      if (*p < 0x20 || (b->ensure_ascii && *p == 0x7F)) {
        snprintf(esc, sizeof esc, "\\u%04x", *p);
        jb_str(b, esc);
      } else if (b->ensure_ascii && *p >= 0x80) {
        jb_escape_utf8(b, &p);
      } else {
        jb_put(b, (const char *)p, 1);
      }
    }
  }
  jb_put(b, "\"", 1);
}

/* Python float repr: shortest round-trip digits; fixed notation when the
 * decimal exponent is in [-4, 16), else d.ddde+XX; ".0" on integral values. */
void pf_format_pyfloat(double d, char *out, size_t n) {
  if (isnan(d)) {
    snprintf(out, n, "nan");
    return;
  }
  if (isinf(d)) {
    snprintf(out, n, d > 0 ? "inf" : "-inf");
    return;
  }
  char e[40];
  int prec = 1;
  for (; prec <= 17; prec++) {
    snprintf(e, sizeof e, "%.*e", prec - 1, d);
    if (strtod(e, NULL) == d) break;
  }
  char *ep = strchr(e, 'e');
  int exp10 = atoi(ep + 1);
  if (exp10 < -4 || exp10 >= 16) {
    /* mantissa digits, Python writes e-05 / e+16 (two-digit minimum) */
    *ep = '\0';
    snprintf(out, n, "%se%c%02d", e, exp10 < 0 ? '-' : '+', abs(exp10));
    return;
  }
  int decimals = prec - 1 - exp10;
  if (decimals < 0) decimals = 0;
  snprintf(out, n, "%.*f", decimals, d);
  if (!strchr(out, '.') && strlen(out) + 3 <= n) strcat(out, ".0");
}

static void jb_value(jbuf *b, const pf_value *v, int depth);

static void jb_number(jbuf *b, const pf_value *v) {
  char num[48];
  if (v->type == PF_V_INT)
    snprintf(num, sizeof num, "%lld", (long long)v->u.i);
  else if (!isfinite(v->u.n))
    snprintf(num, sizeof num, "null");
  else
    pf_format_pyfloat(v->u.n, num, sizeof num);
  jb_str(b, num);
}

static void jb_container(jbuf *b, const pf_value *v, int depth) {
  int is_map = v->type == PF_V_MAP;
  size_t len = is_map ? v->u.map.len : v->u.list.len;
  jb_str(b, is_map ? "{" : "[");
  for (size_t i = 0; i < len; i++) {
    if (i) jb_str(b, ",");
    jb_indent(b, depth + 1);
    if (is_map) {
      jb_quoted(b, v->u.map.keys[i]);
      jb_str(b, ": ");
    }
    jb_value(b, is_map ? v->u.map.vals[i] : v->u.list.items[i], depth + 1);
  }
  if (len) jb_indent(b, depth);
  jb_str(b, is_map ? "}" : "]");
}

static void jb_value(jbuf *b, const pf_value *v, int depth) {
  if (!v) {
    jb_str(b, "null");
    return;
  }
  switch (v->type) {
  case PF_V_NULL:
    jb_str(b, "null");
    break;
  case PF_V_BOOL:
    jb_str(b, v->u.b ? "true" : "false");
    break;
  case PF_V_INT:
  case PF_V_NUM:
    jb_number(b, v);
    break;
  case PF_V_STR:
    jb_quoted(b, v->u.s);
    break;
  case PF_V_MODEL:
  case PF_V_TENSOR: {
    pf_value *s =
        v->type == PF_V_MODEL ? pf_value_model_summary(v->u.model) : tensor_summary(v->u.tensor);
    if (!s)
      b->oom = 1;
    else
      jb_value(b, s, depth);
    pf_value_release(s);
    break;
  }
  case PF_V_LIST:
  case PF_V_MAP:
    jb_container(b, v, depth);
    break;
  }
}

char *pf_value_to_json_text(const pf_value *v) {
  return pf_value_to_json_text_indent(v, 2, 0);
}

char *pf_value_to_json_text_indent(const pf_value *v, int indent, int ensure_ascii) {
  jbuf b = {.indent = indent < 0 ? 0 : indent, .ensure_ascii = ensure_ascii};
  jb_value(&b, v, 0);
  jb_put(&b, "\n", 1);
  if (b.oom) {
    free(b.s);
    return NULL;
  }
  return b.s;
}
