/* tokenize.c — `pfrun tokenize` (see tokenize.h). The file reader is the one
 * pf_dataset_load uses, so `pfrun tokenize --input` shows exactly the samples a
 * calibration would see (before min_length / truncation / packing). */
#include "tokenize.h"

#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "synthetic.h"
#include "tokenizer.h"

static const char HELP[] =
    "usage: pfrun tokenize --model-path DIR [--no-special] TEXT\n"
    "       pfrun tokenize --model-path DIR [--no-special] --input FILE.jsonl [--text-field NAME]\n"
    "\n"
    "Print the token ids of TEXT as a JSON array, e.g. [1, 450, 4996]. With --input,\n"
    "print one array per line for every sample of the file: the string field of each\n"
    "JSON line (.jsonl) or each paragraph (.txt, paragraphs separated by blank lines).\n"
    "\n"
    "  --model-path DIR    a model folder, a folder with tokenizer.json, or a built-in\n"
    "                      synthetic model (synthetic:NAME, see `pfrun help`; only its\n"
    "                      tokenizer files are written to the cache) (required)\n"
    "  --no-special        no special tokens (e.g. no BOS); the default adds them as\n"
    "                      Hugging Face does (add_special_tokens=True)\n"
    "  --input FILE        a .jsonl or .txt file instead of TEXT\n"
    "  --text-field NAME   the JSON field holding the text (default \"text\")\n"
    "  --                  end of options (for a TEXT that starts with '-')\n";

const char *pf_tokenize_help(void) {
  return HELP;
}

/* --name VALUE or --name=VALUE at argv[*i]; 0 if argv[*i] is another option. */
static int take(int argc, char **argv, int *i, const char *name, const char **val, pf_status *st,
                pf_err *err) {
  const char *a = argv[*i];
  size_t n = strlen(name);
  if (strncmp(a, name, n) != 0 || (a[n] != '\0' && a[n] != '=')) return 0;
  if (a[n] == '=')
    *val = a + n + 1;
  else if (*i + 1 < argc)
    *val = argv[++*i];
  else
    *st = pf_err_set(err, PF_ERR_INVALID, "Option '%s' requires an argument.", name);
  return 1;
}

static pf_status check_args(const pf_tokenize_args *o, int have_field, pf_err *err) {
  if (!o->model_path) return pf_err_set(err, PF_ERR_INVALID, "Missing option '--model-path'.");
  if (o->text && o->input)
    return pf_err_set(err, PF_ERR_INVALID, "give either TEXT or --input FILE, not both");
  if (!o->text && !o->input)
    return pf_err_set(err, PF_ERR_INVALID,
                      "expected TEXT or --input FILE (see pfrun tokenize --help)");
  if (have_field && !o->input)
    return pf_err_set(err, PF_ERR_INVALID, "--text-field is only valid with --input");
  return PF_OK;
}

pf_status pf_tokenize_parse(int argc, char **argv, pf_tokenize_args *o, pf_err *err) {
  memset(o, 0, sizeof *o);
  o->add_special = 1;
  o->text_field = "text";
  int have_field = 0, options_done = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    pf_status st = PF_OK;
    if (options_done || a[0] != '-' || a[1] == '\0') {
      if (o->text)
        return pf_err_set(err, PF_ERR_INVALID,
                          "expected one TEXT argument, got a second: '%s' (quote the text)", a);
      o->text = a;
      continue;
    }
    if (!strcmp(a, "--"))
      options_done = 1;
    else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      o->help = 1;
      return PF_OK;
    } else if (!strcmp(a, "--no-special"))
      o->add_special = 0;
    else if (take(argc, argv, &i, "--model-path", &o->model_path, &st, err) ||
             take(argc, argv, &i, "--input", &o->input, &st, err)) {
      if (st) return st;
    } else if (take(argc, argv, &i, "--text-field", &o->text_field, &st, err)) {
      if (st) return st;
      if (!*o->text_field) return pf_err_set(err, PF_ERR_INVALID, "--text-field: expected a name");
      have_field = 1;
    } else
      return pf_err_set(err, PF_ERR_INVALID, "No such option: %s", a);
  }
  return check_args(o, have_field, err);
}

/* One "[a, b, c]\n" line. */
static pf_status write_ids(FILE *out, const int32_t *ids, size_t n, pf_err *err) {
  fputc('[', out);
  for (size_t i = 0; i < n; i++)
    fprintf(out, i ? ", %d" : "%d", ids[i]);
  fputs("]\n", out);
  if (ferror(out)) return pf_err_set(err, PF_ERR_IO, "cannot write the output");
  return PF_OK;
}

typedef struct job {
  pf_tokenizer *tok;
  const pf_tokenize_args *a;
  FILE *out;
} job;

static pf_status on_sample(void *ud, const char *text, size_t len, int64_t line, int *stop,
                           pf_err *err) {
  job *j = ud;
  int32_t *ids = NULL;
  size_t n = 0;
  (void)stop;
  pf_status st = pf_tokenizer_encode(j->tok, text, len, j->a->add_special, &ids, &n, err);
  if (st)
    pf_err_prefix(err, "%s:%lld", j->a->input, (long long)line);
  else
    st = write_ids(j->out, ids, n, err);
  free(ids);
  return st;
}

pf_status pf_tokenize_run(const pf_tokenize_args *a, FILE *out, pf_err *err) {
  pf_tokenizer *tok = NULL;
  pf_status st;
  if (!a || !out || !a->model_path)
    return pf_err_set(err, PF_ERR_INVALID, "pf_tokenize_run: missing arguments");
  pf_model *m = NULL; /* a synthetic model: its tokenizer files, without writing its weights */
  if (pf_synth_is_spec(a->model_path) && (st = pf_synth_open_plan(a->model_path, &m, err)))
    return st;
  st = pf_tokenizer_load(m ? m->source_dir : a->model_path, &tok, err);
  pf_model_release(m);
  if (st) return st;
  if (a->input) {
    job j = {.tok = tok, .a = a, .out = out};
    st = pf_data_read_samples(a->input, a->text_field ? a->text_field : "text", on_sample, &j, NULL,
                              err);
  } else {
    int32_t *ids = NULL;
    size_t n = 0;
    const char *text = a->text ? a->text : "";
    if (!(st = pf_tokenizer_encode(tok, text, strlen(text), a->add_special, &ids, &n, err)))
      st = write_ids(out, ids, n, err);
    else
      pf_err_prefix(err, "TEXT");
    free(ids);
  }
  if (!st && fflush(out) != 0) st = pf_err_set(err, PF_ERR_IO, "cannot write the output");
  pf_tokenizer_free(tok);
  return st;
}
