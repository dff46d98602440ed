/* report.c — op "report": the PDF report of a run (or of a Lua sweep's table).
 *
 * Pages: a title page with the run's provenance (recipe and its SHA-256, the
 * models and the SHA-256 of every input and saved checkpoint folder, date,
 * pfrun version, machine and BLIS kernels) and the steps table; then one
 * section per kind of result present (pruning, layer importance, bias,
 * evaluation, the user's table); the recipe text as an appendix. Sections only
 * appear when their data exists. Charts are drawn by reports/charts into a
 * temporary folder next to the report and embedded as PNG; the PDF is written
 * through a temporary file and a rename (reports/pdf).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "hash.h"
#include "kernels/kernels.h"
#include "report_int.h"

static const pf_param_spec report_params[] = {
    {"path", PF_P_STR, 1, NULL, NULL, 0, 0, "the PDF file to write (.pdf); folders are created"},
    {"title", PF_P_STR, 0, "pfrun report", NULL, 0, 0, "title of the first page and the footers"},
    {"results", PF_P_ANY, 0, NULL, NULL, 0, 0,
     "a run's results {recipe, name, output_dir, vars, steps: [{index, id, op, params, result, "
     "seconds}]}; recipes pass the run so far automatically"},
    {"table", PF_P_ANY, 0, NULL, NULL, 0, 0,
     "a list of maps shown as one table (a Lua sweep's rows); keys become columns"},
    {"recipe", PF_P_STR, 0, NULL, NULL, 0, 0,
     "recipe file for the appendix and its SHA-256 (default: results.recipe)"},
};

/* ------------------------------------------------------------ helpers */

const char *rep_str(rep_strs *st, const char *fmt, ...) {
  if (st->n == st->cap) {
    size_t cap = st->cap ? st->cap * 2 : 64;
    char **s = realloc(st->s, cap * sizeof *s);
    if (!s) return NULL;
    st->s = s;
    st->cap = cap;
  }
  va_list ap;
  va_start(ap, fmt);
  char *out = NULL;
  int n = vasprintf(&out, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  st->s[st->n++] = out;
  return out;
}

void rep_strs_free(rep_strs *st) {
  for (size_t i = 0; i < st->n; i++)
    free(st->s[i]);
  free(st->s);
  st->s = NULL;
  st->n = st->cap = 0;
}

void rep_num(double v, char *buf, size_t n) {
  if (v != v)
    snprintf(buf, n, "nan");
  else if (v == 1.0 / 0.0 || v == -1.0 / 0.0)
    snprintf(buf, n, "%sinf", v < 0 ? "-" : "");
  else if (v != 0 && (v < 1e-3 && v > -1e-3))
    snprintf(buf, n, "%.3e", v);
  else if (v >= 1e6 || v <= -1e6)
    snprintf(buf, n, "%.4g", v);
  else
    snprintf(buf, n, "%.4f", v);
}

void rep_int(int64_t v, char *buf, size_t n) {
  char tmp[32];
  snprintf(tmp, sizeof tmp, "%lld", (long long)(v < 0 ? -v : v));
  size_t len = strlen(tmp), o = 0;
  char out[48];
  if (v < 0) out[o++] = '-';
  for (size_t i = 0; i < len; i++) {
    if (i && (len - i) % 3 == 0) out[o++] = ',';
    out[o++] = tmp[i];
  }
  out[o] = '\0';
  snprintf(buf, n, "%s", out);
}

void rep_map_num(const pf_value *m, const char *key, char *buf, size_t n) {
  const pf_value *v = m && m->type == PF_V_MAP ? pf_map_get(m, key) : NULL;
  if (!v || (v->type != PF_V_NUM && v->type != PF_V_INT))
    snprintf(buf, n, "\xE2\x80\x94");
  else if (v->type == PF_V_INT)
    rep_int(v->u.i, buf, n);
  else
    rep_num(v->u.n, buf, n);
}

void rep_value(const pf_value *v, char *buf, size_t n) {
  if (!n) return;
  buf[0] = '\0';
  if (!v || v->type == PF_V_NULL) {
    snprintf(buf, n, "null");
    return;
  }
  switch (v->type) {
  case PF_V_BOOL:
    snprintf(buf, n, "%s", v->u.b ? "true" : "false");
    break;
  case PF_V_INT:
    snprintf(buf, n, "%lld", (long long)v->u.i);
    break;
  case PF_V_NUM:
    snprintf(buf, n, "%g", v->u.n);
    break;
  case PF_V_STR: {
    /* a long text keeps its start and its end (a path's folder and file names), cut
     * between UTF-8 characters */
    const char *s = v->u.s;
    const size_t len = strlen(s);
    if (len <= 80) {
      snprintf(buf, n, "%s", s);
      break;
    }
    size_t head = 30, tail = len - 49;
    while (head > 0 && ((unsigned char)s[head] & 0xC0) == 0x80)
      head--;
    while (tail < len && ((unsigned char)s[tail] & 0xC0) == 0x80)
      tail++;
    snprintf(buf, n, "%.*s\xE2\x80\xA6%s", (int)head, s, s + tail);
    break;
  }
  case PF_V_LIST: {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (size_t i = 0; i < v->u.list.len && o < n; i++) {
      char item[96];
      if (i == 8) {
        o += (size_t)snprintf(buf + o, n - o, ", \xE2\x80\xA6 (%zu)", v->u.list.len);
        break;
      }
      rep_value(v->u.list.items[i], item, sizeof item);
      o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? ", " : "", item);
    }
    if (o < n) snprintf(buf + o, n - o, "]");
    break;
  }
  case PF_V_MAP:
    if (pf_map_str(v, "op", NULL))
      snprintf(buf, n, "(%s result)", pf_map_str(v, "op", ""));
    else
      snprintf(buf, n, "{\xE2\x80\xA6}");
    break;
  case PF_V_MODEL:
    snprintf(buf, n, "model %s", v->u.model && v->u.model->name ? v->u.model->name : "");
    break;
  default:
    snprintf(buf, n, "(%s)", pf_vtype_name(v->type));
    break;
  }
}

size_t rep_nsteps(const rep *r) {
  return r->steps && r->steps->type == PF_V_LIST ? r->steps->u.list.len : 0;
}

const pf_value *rep_step(const rep *r, size_t i) {
  const pf_value *s = i < rep_nsteps(r) ? r->steps->u.list.items[i] : NULL;
  return s && s->type == PF_V_MAP ? s : NULL;
}

const char *rep_op(const pf_value *step) {
  return step ? pf_map_str(step, "op", "") : "";
}

const pf_value *rep_result(const pf_value *step) {
  const pf_value *r = step ? pf_map_get(step, "result") : NULL;
  return r && r->type == PF_V_MAP ? r : NULL;
}

void rep_step_name(const pf_value *step, char *buf, size_t n) {
  const char *id = pf_map_str(step, "id", NULL);
  snprintf(buf, n, "step %lld (%s%s%s)", (long long)pf_map_int(step, "index", 0), rep_op(step),
           id ? ", id " : "", id ? id : "");
}

char *rep_chart_path(rep *r, const char *name) {
  size_t n = strlen(r->chart_dir) + strlen(name) + 8;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s.png", r->chart_dir, name);
  return p;
}

pf_status rep_figure(rep *r, const char *png, const char *caption, pf_err *err) {
  char cap[600];
  snprintf(cap, sizeof cap, "Figure %d: %s", ++r->figures, caption);
  return pf_pdf_image(r->pdf, png, cap, err);
}

/* ------------------------------------------------------------ title page */

static void cpu_model(char *buf, size_t n) {
  snprintf(buf, n, "unknown CPU");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "model name", 10) != 0) continue;
    const char *c = strchr(line, ':');
    if (!c) continue;
    c++;
    while (*c == ' ' || *c == '\t')
      c++;
    size_t len = strcspn(c, "\n");
    snprintf(buf, n, "%.*s", (int)len, c);
    break;
  }
  fclose(f);
}

/* The SHA-256 of each checkpoint folder the run read or wrote, computed together: one
 * folder per thread (a hash is one sequential stream; two folders on two cores take the
 * time of the larger one). */
typedef struct dir_hashes {
  const char *dir[48]; /* NULL: the results do not record the folder */
  char hex[48][PF_SHA256_HEX];
  pf_err err[48];
  pf_status st[48];
  size_t n;
} dir_hashes;

static void hashes_add(dir_hashes *h, const char *dir) {
  if (h->n < 48) h->dir[h->n++] = dir;
}

static void hashes_run(dir_hashes *h, const pf_ctx *ctx) {
#pragma omp parallel for schedule(dynamic, 1) if (h->n > 1)
  for (size_t i = 0; i < h->n; i++)
    if (h->dir[i] && *h->dir[i])
      h->st[i] = pf_sha256_dir_files_ctx(h->dir[i], h->hex[i], ctx, &h->err[i]);
}

/* Folder i (NULL past the table: the title page's 48 rows are full long before). */
static const char *hashed_dir(const dir_hashes *h, size_t i) {
  return i < h->n ? h->dir[i] : NULL;
}

/* Hash i as text ("unavailable: ..." on error). */
static const char *dir_hash(rep_strs *st, const dir_hashes *h, size_t i) {
  if (!hashed_dir(h, i) || !*h->dir[i])
    return rep_str(st, "unavailable (the results do not record the folder)");
  if (h->st[i] != PF_OK) return rep_str(st, "unavailable: %s", h->err[i].msg);
  return rep_str(st, "%s", h->hex[i]);
}

typedef struct kv {
  const char *k[48], *v[48];
  size_t n;
} kv;

static void kv_add(kv *t, const char *k, const char *v) {
  if (t->n < 48 && k && v) {
    t->k[t->n] = k;
    t->v[t->n++] = v;
  }
}

/* The folder a load step read (NULL when the results do not record it). */
static const char *load_dir(const pf_value *s, const pf_value *res) {
  const pf_model *m = pf_map_model(res, "model");
  const pf_value *pp = pf_map_get(s, "params");
  const char *given = pp && pp->type == PF_V_MAP ? pf_map_str(pp, "path", "") : "";
  return m && m->source_dir ? m->source_dir : (pf_is_dir(given) ? given : NULL);
}

/* Models read and checkpoints written by the run; 1 when a folder hash is listed. */
static int run_models(const rep *r, rep_strs *st, kv *t) {
  dir_hashes *h = calloc(1, sizeof *h);
  if (!h) return 0;
  for (size_t i = 0; i < rep_nsteps(r); i++) { /* the folders, in the order they are listed */
    const pf_value *s = rep_step(r, i), *res = rep_result(s);
    if (strcmp(rep_op(s), "load") == 0 && res)
      hashes_add(h, load_dir(s, res));
    else if (strcmp(rep_op(s), "save") == 0 && res && pf_map_str(res, "path", NULL))
      hashes_add(h, pf_is_dir(pf_map_str(res, "path", "")) ? pf_map_str(res, "path", "") : NULL);
  }
  hashes_run(h, r->ctx);
  size_t k = 0;
  for (size_t i = 0; i < rep_nsteps(r); i++) {
    const pf_value *s = rep_step(r, i), *res = rep_result(s);
    if (strcmp(rep_op(s), "load") == 0 && res) {
      const pf_model *m = pf_map_model(res, "model");
      const pf_value *pp = pf_map_get(s, "params");
      const char *given = pp && pp->type == PF_V_MAP ? pf_map_str(pp, "path", "") : "";
      const char *dir = hashed_dir(h, k); /* load_dir's, from the loop above */
      const char *shown = m && m->name ? m->name : pf_map_str(res, "name", given);
      const char *where = dir ? dir : given;
      kv_add(t, rep_str(st, "Model (step %lld)", (long long)pf_map_int(s, "index", (int64_t)i + 1)),
             strcmp(shown, where) == 0 ? rep_str(st, "%s", shown)
                                       : rep_str(st, "%s\n%s", shown, where));
      kv_add(t, "Input checkpoint SHA-256", dir_hash(st, h, k++));
    } else if (strcmp(rep_op(s), "save") == 0 && res && pf_map_str(res, "path", NULL)) {
      const char *p = pf_map_str(res, "path", "");
      kv_add(t,
             rep_str(st, "Output checkpoint (step %lld)",
                     (long long)pf_map_int(s, "index", (int64_t)i + 1)),
             rep_str(st, "%s\nSHA-256 %s", p,
                     hashed_dir(h, k) ? dir_hash(st, h, k) : "not written (dry run)"));
      k++;
    }
  }
  const int any = h->n > 0;
  free(h);
  return any;
}

static pf_status title_page(rep *r, const pf_value *results, const char *title, const char *recipe,
                            pf_err *err) {
  rep_strs st = {0};
  kv t = {0};
  char date[64], cpu[256], host[300];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", &tm);
  const char *name = results ? pf_map_str(results, "name", NULL) : NULL;
  if (name)
    kv_add(&t, "Recipe",
           rep_str(&st, "%s%s%s%s", name, recipe ? " (" : "", recipe ? recipe : "",
                   recipe ? ")" : ""));
  else if (recipe)
    kv_add(&t, "Recipe", recipe);
  if (recipe) {
    char hex[PF_SHA256_HEX];
    pf_err e = {0};
    kv_add(&t, "Recipe SHA-256",
           pf_sha256_file(recipe, hex, &e) ? rep_str(&st, "unavailable: %s", e.msg)
                                           : rep_str(&st, "%s", hex));
  }
  const pf_value *vars = results ? pf_map_get(results, "vars") : NULL;
  if (vars && vars->type == PF_V_MAP && vars->u.map.len) {
    char buf[2048] = "";
    size_t o = 0;
    for (size_t i = 0; i < vars->u.map.len && o < sizeof buf; i++) {
      char v[256];
      rep_value(vars->u.map.vals[i], v, sizeof v);
      o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s = %s", i ? "\n" : "",
                            vars->u.map.keys[i], v);
    }
    kv_add(&t, "Variables", rep_str(&st, "%s", buf));
  }
  if (results && pf_map_str(results, "output_dir", NULL))
    kv_add(&t, "Output folder", pf_map_str(results, "output_dir", ""));
  const int hashed = run_models(r, &st, &t);
  kv_add(&t, "Date", date);
  kv_add(&t, "pfrun version", PF_VERSION);
  struct utsname u;
  if (uname(&u) == 0) {
    snprintf(host, sizeof host, "%s %s %s", u.sysname, u.release, u.machine);
    kv_add(&t, "Machine", host);
  }
  cpu_model(cpu, sizeof cpu);
  kv_add(&t, "CPU", rep_str(&st, "%s, %ld cores online", cpu, sysconf(_SC_NPROCESSORS_ONLN)));
  kv_add(&t, "Kernels", pf_kernels_describe());
  pf_status s =
      pf_pdf_title(r->pdf, title, rep_str(&st, "Generated %s by pfrun %s", date, PF_VERSION), err);
  if (!s) s = pf_pdf_heading(r->pdf, 1, "Run", err);
  if (!s) {
    for (size_t i = 0; i < t.n; i++)
      if (!t.k[i] || !t.v[i]) s = pf_err_set(err, PF_ERR_NOMEM, "report: out of memory");
  }
  if (!s) s = pf_pdf_kv(r->pdf, t.n, t.k, t.v, err);
  if (!s && hashed)
    s = pf_pdf_note(r->pdf,
                    "A checkpoint's SHA-256 is of its folder: of its files in name order, each "
                    "as its name, a NUL byte, its size (8 bytes, little-endian) and its bytes; "
                    "it is not the sha256sum of one file.",
                    err);
  rep_strs_free(&st);
  return s;
}

/* ------------------------------------------------------------ steps */

static pf_status steps_table(rep *r, pf_err *err) {
  size_t n = rep_nsteps(r);
  if (!n) return PF_OK;
  rep_strs st = {0};
  const char **cells = calloc(n * 5, sizeof *cells);
  if (!cells) return pf_err_set(err, PF_ERR_NOMEM, "report: out of memory");
  double total = 0;
  size_t skipped = 0;
  for (size_t i = 0; i < n; i++) {
    const pf_value *s = rep_step(r, i), *p = s ? pf_map_get(s, "params") : NULL;
    char params[1600] = "";
    size_t o = 0;
    for (size_t k = 0; p && p->type == PF_V_MAP && k < p->u.map.len && o < sizeof params; k++) {
      if (strcmp(p->u.map.keys[k], "results") == 0 || strcmp(p->u.map.keys[k], "table") == 0)
        continue;
      char v[300];
      rep_value(p->u.map.vals[k], v, sizeof v);
      o += (size_t)snprintf(params + o, sizeof params - o, "%s%s=%s", o ? ", " : "",
                            p->u.map.keys[k], v);
    }
    double sec = s ? pf_map_num(s, "seconds", 0) : 0;
    total += sec;
    cells[i * 5] = rep_str(
        &st, "%lld", (long long)(s ? pf_map_int(s, "index", (int64_t)i + 1) : (int64_t)i + 1));
    cells[i * 5 + 1] = rep_str(&st, "%s", rep_op(s));
    cells[i * 5 + 2] = rep_str(&st, "%s", s ? pf_map_str(s, "id", "") : "");
    cells[i * 5 + 3] = rep_str(&st, "%s", params);
    const int skip = s && pf_map_bool(s, "skipped", 0);
    skipped += skip;
    cells[i * 5 + 4] = skip ? rep_str(&st, "skipped") : rep_str(&st, "%.3f", sec);
  }
  static const char *const head[5] = {"#", "Op", "Id", "Parameters", "Seconds"};
  static const pf_pdf_align al[5] = {PF_PDF_RIGHT, PF_PDF_LEFT, PF_PDF_LEFT, PF_PDF_LEFT,
                                     PF_PDF_RIGHT};
  static const double w[5] = {0.05, 0.15, 0.17, 0.50, 0.13};
  pf_pdf_table_spec t = {
      .ncols = 5, .header = head, .align = al, .widths = w, .nrows = n, .cells = cells, .zebra = 1};
  pf_status s = pf_pdf_heading(r->pdf, 1, "Steps", err);
  if (!s) s = pf_pdf_table(r->pdf, &t, err);
  if (!s) {
    char note[160];
    snprintf(note, sizeof note, "%zu steps, %.3f s in total.%s", n, total,
             skipped ? " A skipped step did not run: its `when` was false." : "");
    s = pf_pdf_note(r->pdf, note, err);
  }
  free(cells);
  rep_strs_free(&st);
  return s;
}

/* ------------------------------------------------------------ appendix */

static pf_status appendix(rep *r, const char *recipe, pf_err *err) {
  char *text = NULL;
  size_t len = 0;
  pf_err e = {0};
  if (!recipe) return PF_OK;
  pf_status s = pf_pdf_page_break(r->pdf, err);
  if (!s) s = pf_pdf_heading(r->pdf, 1, "Appendix: recipe", err);
  if (s) return s;
  if (pf_read_file(recipe, (size_t)4 << 20, &text, &len, &e) != PF_OK) {
    char note[1200];
    snprintf(note, sizeof note, "The recipe could not be read: %s", e.msg);
    return pf_pdf_note(r->pdf, note, err);
  }
  s = pf_pdf_note(r->pdf, recipe, err);
  if (!s) s = pf_pdf_mono(r->pdf, text, err);
  free(text);
  return s;
}

/* ------------------------------------------------------------ the op */

static pf_status check_params(const char *path, const pf_value *results, const pf_value *table,
                              pf_err *err) {
  size_t n = strlen(path);
  if (n < 5 || strcmp(path + n - 4, ".pdf") != 0)
    return pf_err_set(err, PF_ERR_INVALID, "path: expected a file name ending in .pdf, got \"%s\"",
                      path);
  if (results && results->type != PF_V_NULL) {
    const pf_value *steps = results->type == PF_V_MAP ? pf_map_get(results, "steps") : NULL;
    if (results->type != PF_V_MAP || (steps && steps->type != PF_V_LIST))
      return pf_err_set(
          err, PF_ERR_INVALID,
          "results: expected a run's results map {recipe, name, steps: [...]}, got %s",
          results->type == PF_V_MAP ? "a map whose steps is not a list"
                                    : pf_vtype_name(results->type));
  }
  if (table && table->type != PF_V_NULL) {
    if (table->type != PF_V_LIST)
      return pf_err_set(err, PF_ERR_INVALID, "table: expected a list of maps (rows), got %s",
                        pf_vtype_name(table->type));
    for (size_t i = 0; i < table->u.list.len; i++)
      if (table->u.list.items[i]->type != PF_V_MAP)
        return pf_err_set(err, PF_ERR_INVALID, "table[%zu]: expected a map (one row), got %s",
                          i + 1, pf_vtype_name(table->u.list.items[i]->type));
  }
  if ((!results || results->type == PF_V_NULL) && (!table || table->type == PF_V_NULL))
    return pf_err_set(err, PF_ERR_INVALID,
                      "nothing to report: give `results` (a run) and/or `table` (rows)");
  return PF_OK;
}

static pf_status write_report(rep *r, const char *path, const char *title, const pf_value *results,
                              const pf_value *table, const char *recipe, pf_err *err) {
  pf_status s = pf_pdf_new(title, &r->pdf, err);
  if (!s) s = title_page(r, results, title, recipe, err);
  if (!s) s = steps_table(r, err);
  if (!s) s = rep_pruning(r, err);
  if (!s) s = rep_importance(r, err);
  if (!s) s = rep_bias(r, err);
  if (!s) s = rep_eval(r, err);
  if (!s) s = rep_bench(r, err);
  if (!s) s = rep_recovery(r, err);
  if (!s) s = rep_user_table(r, table, err);
  if (!s) s = appendix(r, recipe, err);
  /* a signal during the sections (the checkpoint hashes read every weight file): the
   * report is not written, and the run says it was interrupted */
  if (!s) s = pf_ctx_check_interrupt(r->ctx, err);
  if (!s) s = pf_pdf_save(r->pdf, path, err);
  return s;
}

static pf_status report_run(const pf_op *op, const pf_value *params, pf_value **out,
                            const pf_ctx *ctx, pf_err *err) {
  const char *path = pf_map_str(params, "path", "");
  const pf_value *results = pf_map_get(params, "results"), *table = pf_map_get(params, "table");
  pf_status s = check_params(path, results, table, err);
  if (s) return s;
  if (results && results->type == PF_V_NULL) results = NULL;
  if (table && table->type == PF_V_NULL) table = NULL;
  const char *recipe =
      pf_map_str(params, "recipe", results ? pf_map_str(results, "recipe", NULL) : NULL);
  pf_value *res = pf_value_map();
  if (!res || pf_map_set_str(res, "path", path)) {
    pf_value_release(res);
    return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  if (ctx && ctx->dry_run) {
    *out = res;
    return PF_OK;
  }
  rep r = {.steps = results ? pf_map_get(results, "steps") : NULL, .ctx = ctx};
  s = pf_make_temp_sibling(path, &r.chart_dir, err);
  if (s) pf_err_prefix(err, "path");
  if (!s) {
    s = write_report(&r, path, pf_map_str(params, "title", "pfrun report"), results, table, recipe,
                     err);
    if (!s && pf_map_set_int(res, "pages", (int64_t)pf_pdf_pages(r.pdf)))
      s = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    if (!s && pf_map_set_int(res, "figures", r.figures))
      s = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    pf_remove_tree(r.chart_dir, NULL);
    pf_temp_unregister(r.chart_dir);
  }
  pf_pdf_free(r.pdf);
  free(r.chart_dir);
  if (s) {
    pf_value_release(res);
    return s;
  }
  *out = res;
  return PF_OK;
}

const pf_op pf_op_report = {
    .name = "report",
    .alias = NULL,
    .summary = "the PDF report of a run: provenance, steps, pruning, importance, bias, evaluation, "
               "a table of rows, the recipe",
    .params = report_params,
    .n_params = sizeof report_params / sizeof report_params[0],
    .returns = "{path, pages, figures}",
    .run = report_run,
    .writes = 1,
};
