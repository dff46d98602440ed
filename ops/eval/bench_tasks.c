/* bench_tasks.c — benchmark task definitions (YAML) and their documents (JSONL).
 *
 * Definition keys: task, data (file name, default TASK.jsonl), output_type
 * (multiple_choice | partial | loglikelihood), the JSON keys of a line (context,
 * choices, gold; contexts, continuation, gold; context, continuation), the
 * target_delimiter (default " "; none for loglikelihood) and metrics (acc,
 * acc_norm, perplexity). Lines may carry their own "target_delimiter" and "id".
 */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "json.h"
#include "fsutil.h"
#include "recipe.h"
#include "strbuf.h"

typedef struct pf_builtin_task {
  const char *name, *text;
  size_t len;
} pf_builtin_task;
extern const pf_builtin_task pf_builtin_tasks[]; /* tasks_builtin.c, from tasks/ */

#define BENCH_MAX_FILE ((size_t)1 << 30)

const char *pf_bench_builtin_name(size_t i) {
  for (size_t k = 0; k <= i; k++)
    if (!pf_builtin_tasks[k].name) return NULL;
  return pf_builtin_tasks[i].name;
}

void pf_bench_task_free(pf_bench_task *t) {
  if (!t) return;
  char **s[] = {&t->name, &t->definition, &t->data,         &t->context,   &t->choices,
                &t->gold, &t->contexts,   &t->continuation, &t->delimiter, &t->description};
  for (size_t i = 0; i < sizeof s / sizeof *s; i++) {
    free(*s[i]);
    *s[i] = NULL;
  }
}

static pf_status need_key(const pf_value *v, const char *name, const char *key, char **out,
                          pf_err *err) {
  const char *s = pf_map_str(v, key, NULL);
  if (!s)
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: expected a string '%s' (the JSON key that holds it)", name, key);
  return (*out = strdup(s)) ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", name);
}

static pf_status parse_metrics(const char *name, const pf_value *list, pf_bench_task *t,
                               pf_err *err) {
  if (!list) { /* defaults by type */
    t->metrics = t->type == PF_BENCH_CLOZE ? PF_BENCH_ACC | PF_BENCH_PERPLEXITY
                 : t->type == PF_BENCH_MC  ? PF_BENCH_ACC | PF_BENCH_ACC_NORM
                                           : PF_BENCH_ACC;
    return PF_OK;
  }
  if (list->type != PF_V_LIST)
    return pf_err_set(err, PF_ERR_INVALID, "%s: metrics: expected a list such as [acc, acc_norm]",
                      name);
  if (list->u.list.len == 0)
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: metrics: expected at least one of acc, acc_norm, perplexity (leave "
                      "the key out for the task type's defaults)",
                      name);
  for (size_t i = 0; i < list->u.list.len; i++) {
    const pf_value *e = list->u.list.items[i];
    const char *m = e->type == PF_V_STR ? e->u.s : NULL;
    unsigned bit = !m                         ? 0
                   : !strcmp(m, "acc")        ? PF_BENCH_ACC
                   : !strcmp(m, "acc_norm")   ? PF_BENCH_ACC_NORM
                   : !strcmp(m, "perplexity") ? PF_BENCH_PERPLEXITY
                                              : 0;
    if (!bit || (bit == PF_BENCH_ACC_NORM && t->type != PF_BENCH_MC) ||
        (bit == PF_BENCH_PERPLEXITY && t->type != PF_BENCH_CLOZE))
      return pf_err_set(err, PF_ERR_INVALID,
                        "%s: metrics: expected acc, acc_norm (multiple_choice) or perplexity "
                        "(loglikelihood), got '%s'",
                        name, m ? m : "(not a string)");
    t->metrics |= bit;
  }
  return PF_OK;
}

pf_status pf_bench_task_parse(const char *name, const char *text, size_t len, pf_bench_task *out,
                              pf_err *err) {
  memset(out, 0, sizeof *out);
  pf_value *v = NULL;
  pf_status st = pf_yaml_value(name, text, len, &v, err);
  if (st) return st;
  static const char *const keys[] = {
      "task",     "data",         "output_type",      "context", "choices",    "gold",
      "contexts", "continuation", "target_delimiter", "metrics", "description"};
  if (v->type != PF_V_MAP) {
    st = pf_err_set(err, PF_ERR_INVALID, "%s: expected a mapping of task keys", name);
    goto done;
  }
  for (size_t i = 0; v->type == PF_V_MAP && i < v->u.map.len && !st; i++) {
    const char *k = v->u.map.keys[i];
    size_t j = 0;
    while (j < sizeof keys / sizeof *keys && strcmp(k, keys[j]))
      j++;
    if (j == sizeof keys / sizeof *keys)
      st = pf_err_set(err, PF_ERR_INVALID,
                      "%s: unknown key '%s' (expected task, data, output_type, context, choices, "
                      "gold, contexts, continuation, target_delimiter, metrics, description)",
                      name, k);
  }
  if (st) goto done;
  const char *type = pf_map_str(v, "output_type", NULL);
  if (!type || (strcmp(type, "multiple_choice") && strcmp(type, "partial") &&
                strcmp(type, "loglikelihood"))) {
    st = pf_err_set(err, PF_ERR_INVALID,
                    "%s: output_type: expected multiple_choice, partial or loglikelihood, got %s",
                    name, type ? type : "nothing");
    goto done;
  }
  out->type = !strcmp(type, "multiple_choice") ? PF_BENCH_MC
              : !strcmp(type, "partial")       ? PF_BENCH_PARTIAL
                                               : PF_BENCH_CLOZE;
  if ((st = need_key(v, name, "task", &out->name, err))) goto done;
  if (out->type == PF_BENCH_MC)
    st = need_key(v, name, "context", &out->context, err) ||
         need_key(v, name, "choices", &out->choices, err) ||
         need_key(v, name, "gold", &out->gold, err);
  else if (out->type == PF_BENCH_PARTIAL)
    st = need_key(v, name, "contexts", &out->contexts, err) ||
         need_key(v, name, "continuation", &out->continuation, err) ||
         need_key(v, name, "gold", &out->gold, err);
  else
    st = need_key(v, name, "context", &out->context, err) ||
         need_key(v, name, "continuation", &out->continuation, err);
  if (st) {
    st = err && err->code ? err->code : PF_ERR_INVALID;
    goto done;
  }
  const pf_value *dl = pf_map_get(v, "target_delimiter");
  if (dl && dl->type != PF_V_STR) {
    st = pf_err_set(err, PF_ERR_INVALID, "%s: target_delimiter: expected a string", name);
    goto done;
  }
  out->delimiter = strdup(dl ? dl->u.s : out->type == PF_BENCH_CLOZE ? "" : " ");
  const pf_value *desc = pf_map_get(v, "description");
  if (desc && desc->type != PF_V_STR) {
    st = pf_err_set(err, PF_ERR_INVALID, "%s: description: expected a string", name);
    goto done;
  }
  out->description = strdup(desc ? desc->u.s : "");
  const char *data = pf_map_str(v, "data", NULL);
  if (data)
    out->data = strdup(data);
  else if ((out->data = malloc(strlen(out->name) + 7)))
    sprintf(out->data, "%s.jsonl", out->name);
  out->definition = strdup(name);
  if (!out->delimiter || !out->description || !out->data || !out->definition) {
    st = pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", name);
    goto done;
  }
  st = parse_metrics(name, pf_map_get(v, "metrics"), out, err);
done:
  pf_value_release(v);
  if (st) pf_bench_task_free(out);
  return st;
}

/* Load a definition from file `path` when it exists (1), else 0. */
static pf_status try_file(const char *path, pf_bench_task *out, int *found, pf_err *err) {
  *found = path && pf_path_exists(path);
  if (!*found) return PF_OK;
  char *text = NULL;
  size_t len = 0;
  pf_status st = pf_read_file(path, (size_t)1 << 20, &text, &len, err);
  if (st == PF_OK) st = pf_bench_task_parse(path, text, len, out, err);
  free(text);
  return st;
}

pf_status pf_bench_task_resolve(const char *spec, const char *data_dir, const char *task_dir,
                                pf_bench_task *out, pf_err *err) {
  memset(out, 0, sizeof *out);
  if (!spec || !*spec) return pf_err_set(err, PF_ERR_INVALID, "benchmark: empty task name");
  const int is_path = strchr(spec, '/') || pf_str_ends_with(spec, ".jsonl");
  char *name = NULL, *data = NULL, *yaml_task = NULL, *yaml_beside = NULL;
  pf_status st = PF_OK;
  if (is_path) {
    const char *base = strrchr(spec, '/') ? strrchr(spec, '/') + 1 : spec;
    name = strndup(base, pf_str_ends_with(base, ".jsonl") ? strlen(base) - 6 : strlen(base));
    data = strdup(spec);
  } else {
    name = strdup(spec);
  }
  if (!name || (is_path && !data)) {
    st = pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
    goto done;
  }
  char file[4096];
  snprintf(file, sizeof file, "%s.yaml", name);
  if (task_dir) yaml_task = pf_path_join(task_dir, file);
  if (is_path) {
    char *dir = strdup(spec);
    char *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash) {
      *slash = 0;
      yaml_beside = pf_path_join(dir, file);
    }
    free(dir);
  } else if (data_dir) {
    yaml_beside = pf_path_join(data_dir, file);
  }
  int found = 0;
  if ((st = try_file(yaml_task, out, &found, err)) || found) goto data;
  if ((st = try_file(yaml_beside, out, &found, err)) || found) goto data;
  for (size_t i = 0; pf_builtin_tasks[i].name; i++)
    if (!strcmp(pf_builtin_tasks[i].name, name)) {
      char label[128];
      snprintf(label, sizeof label, "built-in %s.yaml", name);
      st = pf_bench_task_parse(label, pf_builtin_tasks[i].text, pf_builtin_tasks[i].len, out, err);
      found = 1;
      break;
    }
  if (st || found) goto data;
  char builtins[256] = "";
  for (size_t i = 0; pf_builtin_tasks[i].name; i++)
    snprintf(builtins + strlen(builtins), sizeof builtins - strlen(builtins), "%s%s", i ? ", " : "",
             pf_builtin_tasks[i].name);
  if (yaml_task || yaml_beside)
    st = pf_err_set(err, PF_ERR_NOT_FOUND,
                    "benchmark: task '%s': no definition: not a built-in task (%s), and no %s%s%s",
                    name, builtins, yaml_task ? yaml_task : "",
                    yaml_task && yaml_beside ? " or " : "", yaml_beside ? yaml_beside : "");
  else
    st = pf_err_set(err, PF_ERR_NOT_FOUND,
                    "benchmark: task '%s': no definition: not a built-in task (%s); a task of "
                    "your own is defined by %s.yaml in task_dir / --task-dir or beside its data",
                    name, builtins, name);
  goto done;
data:
  if (st) goto done;
  if (!data) {
    if (!data_dir) {
      st = pf_err_set(err, PF_ERR_INVALID,
                      "benchmark: task '%s': no data folder (give data_dir / --data-dir, or a "
                      "path to the .jsonl file)",
                      name);
      goto done;
    }
    data = pf_path_join(data_dir, out->data);
  }
  free(out->data);
  out->data = data;
  data = NULL;
  if (!out->data)
    st = pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
  else if (!pf_path_exists(out->data))
    st = pf_err_set(err, PF_ERR_NOT_FOUND, "benchmark: task '%s': data file %s does not exist",
                    name, out->data);
  if (!st && strcmp(out->name, name)) { /* the file name is the task's name */
    free(out->name);
    if (!(out->name = strdup(name))) st = pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
  }
done:
  if (st) pf_bench_task_free(out);
  free(name), free(data), free(yaml_task), free(yaml_beside);
  return st;
}

/* ---- documents ---- */

void pf_bench_docs_free(pf_bench_docs *d) {
  if (!d || !d->doc) return;
  for (int64_t i = 0; i < d->n; i++) {
    pf_bench_doc *x = &d->doc[i];
    for (int c = 0; x->ctx && x->cont && c < x->n; c++) {
      free(x->cont[c]);
      if (!c || x->ctx[c] != x->ctx[0]) free(x->ctx[c]);
    }
    free(x->id), free(x->ctx), free(x->cont), free(x->norm_len);
  }
  free(d->doc);
  memset(d, 0, sizeof *d);
}

static double code_points(const char *s) {
  double n = 0;
  for (; *s; s++)
    n += ((unsigned char)*s & 0xC0) != 0x80;
  return n;
}

static char *concat(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *s = malloc(la + lb + 1);
  if (s) memcpy(s, a, la), memcpy(s + la, b, lb + 1);
  return s;
}

static const cJSON *str_list(const cJSON *o, const char *key) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) < 1) return NULL;
  for (const cJSON *e = a->child; e; e = e->next)
    if (!cJSON_IsString(e)) return NULL;
  return a;
}

/* One JSONL line into doc. Bare message on error (the caller adds file:line). */
static pf_status read_doc(const pf_bench_task *t, const cJSON *o, int64_t index, pf_bench_doc *doc,
                          pf_err *err) {
  const cJSON *jd = cJSON_GetObjectItemCaseSensitive(o, "target_delimiter");
  if (jd && !cJSON_IsString(jd))
    return pf_err_set(err, PF_ERR_FORMAT, "expected 'target_delimiter': a string");
  const char *delim = jd ? jd->valuestring : t->delimiter;
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
  char fallback[64];
  snprintf(fallback, sizeof fallback, "%lld", (long long)index);
  doc->id = strdup(cJSON_IsString(id) ? id->valuestring : fallback);
  const cJSON *list = NULL, *one = NULL;
  const char *list_key = t->type == PF_BENCH_MC ? t->choices : t->contexts;
  const char *one_key = t->type == PF_BENCH_MC        ? t->context
                        : t->type == PF_BENCH_PARTIAL ? t->continuation
                                                      : t->context;
  if (t->type != PF_BENCH_CLOZE && !(list = str_list(o, list_key)))
    return pf_err_set(err, PF_ERR_FORMAT, "expected '%s': a non-empty list of strings", list_key);
  one = cJSON_GetObjectItemCaseSensitive(o, one_key);
  if (!cJSON_IsString(one))
    return pf_err_set(err, PF_ERR_FORMAT, "expected '%s': a string", one_key);
  doc->n = list ? cJSON_GetArraySize(list) : 1;
  doc->gold = -1;
  if (t->type != PF_BENCH_CLOZE) {
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(o, t->gold);
    if (!cJSON_IsNumber(g) || g->valuedouble != (double)(int)g->valuedouble || g->valueint < 0 ||
        g->valueint >= doc->n)
      return pf_err_set(err, PF_ERR_FORMAT, "expected '%s': an index in [0, %d)", t->gold, doc->n);
    doc->gold = g->valueint;
  }
  doc->ctx = calloc((size_t)doc->n, sizeof *doc->ctx);
  doc->cont = calloc((size_t)doc->n, sizeof *doc->cont);
  doc->norm_len = calloc((size_t)doc->n, sizeof *doc->norm_len);
  if (!doc->id || !doc->ctx || !doc->cont || !doc->norm_len)
    return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (t->type == PF_BENCH_CLOZE) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, t->continuation);
    if (!cJSON_IsString(c))
      return pf_err_set(err, PF_ERR_FORMAT, "expected '%s': a string", t->continuation);
    doc->ctx[0] = concat(t->description, one->valuestring);
    doc->cont[0] = concat(delim, c->valuestring);
    doc->norm_len[0] = code_points(c->valuestring);
    return doc->ctx[0] && doc->cont[0] ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  int c = 0;
  for (const cJSON *e = list->child; e; e = e->next, c++) {
    if (t->type == PF_BENCH_MC) {
      doc->ctx[c] = c ? doc->ctx[0] : concat(t->description, one->valuestring);
      doc->cont[c] = concat(delim, e->valuestring);
      doc->norm_len[c] = code_points(e->valuestring);
    } else {
      doc->ctx[c] = concat(t->description, e->valuestring);
      doc->cont[c] = concat(delim, one->valuestring);
      doc->norm_len[c] = code_points(one->valuestring);
    }
    if (!doc->ctx[c] || !doc->cont[c]) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  return PF_OK;
}

pf_status pf_bench_docs_read(const pf_bench_task *t, int64_t limit, pf_bench_docs *out,
                             pf_err *err) {
  memset(out, 0, sizeof *out);
  char *text = NULL;
  size_t len = 0;
  pf_status st = pf_read_file(t->data, BENCH_MAX_FILE, &text, &len, err);
  if (st) return st;
  int64_t cap = 0, line_no = 0;
  for (char *p = text, *end = text + len; p < end && !st && (!limit || out->n < limit);) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *stop = nl ? nl : end;
    line_no++;
    const char *q = p;
    while (q < stop && (*q == ' ' || *q == '\t' || *q == '\r'))
      q++;
    if (q == stop) { /* blank line */
      p = stop + 1;
      continue;
    }
    cJSON *o = NULL; /* as json.loads reads the line, or refused */
    if ((st = pf_jsonl_object(p, (size_t)(stop - p), &o, err)) != PF_OK) {
      pf_err_prefix(err, "%s:%lld", t->data, (long long)line_no);
      break;
    }
    if (out->n == cap) {
      cap = cap ? 2 * cap : 256;
      pf_bench_doc *g = realloc(out->doc, (size_t)cap * sizeof *g);
      if (!g) {
        cJSON_Delete(o);
        st = pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
        break;
      }
      out->doc = g;
    }
    pf_bench_doc *doc = &out->doc[out->n++];
    memset(doc, 0, sizeof *doc);
    if ((st = read_doc(t, o, out->n - 1, doc, err)) != PF_OK)
      pf_err_prefix(err, "%s:%lld", t->data, (long long)line_no);
    else
      out->requests += doc->n;
    cJSON_Delete(o);
    p = stop + 1;
  }
  free(text);
  if (!st && out->n == 0) st = pf_err_set(err, PF_ERR_FORMAT, "%s: no documents", t->data);
  if (st) pf_bench_docs_free(out);
  return st;
}
