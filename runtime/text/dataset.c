/* dataset.c — samples -> rows -> right-padded batches, and the fingerprint.
 *
 * Loading runs in three steps: the reader (dataset_read.c) hands over one
 * sample at a time and the loader keeps only its token ids (truncated rows, or
 * the packing stream); then the rows are laid out batch by batch in one
 * contiguous ids array and one mask array, so pf_dataset_batch can hand out
 * pointers without copying; last the fingerprint is hashed from what was built.
 *
 * Why the fingerprint hashes the ids and not just the options: the same file
 * and options give other ids under another tokenizer, and the ids are what a
 * cached calibration actually depends on. The file's hash is included too, so
 * editing lines after the ones used still invalidates a cache (conservative,
 * and the rule users expect: "a changed input never reuses a stale cache"). */
#include "dataset.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pf_dataset {
  int32_t *ids;  /* all batches back to back; batch i at off[i]: [rows[i], seq[i]] */
  int32_t *mask; /* same layout: 1 token, 0 padding */
  int64_t n_batches;
  int64_t *off;  /* [n_batches] first cell of each batch */
  int64_t *rows; /* [n_batches] */
  int64_t *seq;  /* [n_batches] */
  pf_data_stats stats;
  char file_hash[PF_SHA256_HEX];
  char fingerprint[PF_SHA256_HEX];
};

pf_data_opts pf_data_opts_default(void) {
  pf_data_opts o = {.data = NULL,
                    .text_field = "text",
                    .samples = 0,
                    .max_length = 512,
                    .min_length = 0,
                    .pack = 0,
                    .batch_size = 8,
                    .add_special = 1,
                    .pad_id = -1};
  return o;
}

/* ---- options ---- */

static pf_status check_opts(const pf_data_opts *o, const pf_tokenizer *tok, pf_err *err) {
  if (!o || !tok)
    return pf_err_set(err, PF_ERR_INVALID, "pf_dataset_load: NULL options or tokenizer");
  if (!o->data || !*o->data)
    return pf_err_set(err, PF_ERR_INVALID, "data: expected the path of a .jsonl or .txt file");
  if (o->text_field && !*o->text_field)
    return pf_err_set(err, PF_ERR_INVALID, "text_field: expected a field name, got \"\"");
  if (o->samples < 0)
    return pf_err_set(err, PF_ERR_INVALID,
                      "samples: expected 0 (all) or a positive count, got %lld",
                      (long long)o->samples);
  if (o->max_length < 1 || o->max_length > PF_DATA_MAX_LENGTH)
    return pf_err_set(err, PF_ERR_INVALID, "max_length: expected an integer in [1, %lld], got %lld",
                      (long long)PF_DATA_MAX_LENGTH, (long long)o->max_length);
  if (o->min_length < 0)
    return pf_err_set(err, PF_ERR_INVALID, "min_length: expected 0 or more, got %lld",
                      (long long)o->min_length);
  if (o->batch_size < 1 || o->batch_size > PF_DATA_MAX_SAMPLES)
    return pf_err_set(err, PF_ERR_INVALID, "batch_size: expected an integer in [1, %lld], got %lld",
                      (long long)PF_DATA_MAX_SAMPLES, (long long)o->batch_size);
  int32_t vocab = pf_tokenizer_vocab_size(tok);
  if (o->pad_id < -1 || o->pad_id >= vocab)
    return pf_err_set(
        err, PF_ERR_INVALID,
        "pad_id: expected -1 (automatic) or an id in [0, %d) of the tokenizer, got %d", vocab,
        o->pad_id);
  return PF_OK;
}

static int32_t resolve_pad(const pf_data_opts *o, const pf_tokenizer *tok) {
  if (o->pad_id >= 0) return o->pad_id;
  int32_t eos = pf_tokenizer_eos_id(tok);
  return eos >= 0 ? eos : 0;
}

/* ---- collecting rows ---- */

typedef struct loader {
  const pf_data_opts *o;
  pf_tokenizer *tok;
  int32_t *ids; /* not pack: the rows' kept ids back to back; pack: the stream */
  size_t n, cap;
  int64_t *lens; /* not pack: [n_rows] */
  size_t n_rows, rows_cap;
  pf_data_stats st;
} loader;

static pf_status push_ids(loader *L, const int32_t *ids, size_t n, pf_err *err) {
  if (L->n + n > L->cap) {
    size_t cap = L->cap ? L->cap : 4096;
    while (cap < L->n + n)
      cap *= 2;
    int32_t *grown = realloc(L->ids, cap * sizeof *grown);
    if (!grown) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    L->ids = grown, L->cap = cap;
  }
  memcpy(L->ids + L->n, ids, n * sizeof *ids);
  L->n += n;
  return PF_OK;
}

static pf_status push_row(loader *L, int64_t len, pf_err *err) {
  if (L->n_rows == L->rows_cap) {
    size_t cap = L->rows_cap ? 2 * L->rows_cap : 256;
    int64_t *grown = realloc(L->lens, cap * sizeof *grown);
    if (!grown) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    L->lens = grown, L->rows_cap = cap;
  }
  L->lens[L->n_rows++] = len;
  return PF_OK;
}

static pf_status on_sample(void *ud, const char *text, size_t len, int64_t line, int *stop,
                           pf_err *err) {
  loader *L = ud;
  const pf_data_opts *o = L->o;
  int32_t *ids = NULL;
  size_t n = 0;
  pf_status st = pf_tokenizer_encode(L->tok, text, len, o->add_special, &ids, &n, err);
  if (st) return pf_err_prefix(err, "%s:%lld", o->data, (long long)line);
  L->st.samples_read++;
  if (n == 0 || (int64_t)n < o->min_length) {
    L->st.samples_skipped++;
    free(ids);
    return PF_OK;
  }
  L->st.samples_used++;
  if (o->pack) {
    st = push_ids(L, ids, n, err);
    if (o->samples && (int64_t)(L->n / (size_t)o->max_length) >= o->samples) *stop = 1;
  } else {
    size_t keep = (int64_t)n > o->max_length ? (size_t)o->max_length : n, pre = 0, post = 0;
    L->st.samples_truncated += keep < n;
    if (o->add_special) pf_tokenizer_special_counts(L->tok, &pre, &post);
    /* truncation=True shortens the text and keeps the ids the template puts after it
     * (an EOS): move them to the end of what is kept */
    if (keep < n && post && pre + post < keep)
      memmove(ids + keep - post, ids + n - post, post * sizeof *ids);
    if (!(st = push_ids(L, ids, keep, err))) st = push_row(L, (int64_t)keep, err);
    if (o->samples && (int64_t)L->n_rows >= o->samples) *stop = 1;
  }
  free(ids);
  return st;
}

/* ---- batches ---- */

/* Row r's ids and length in the loader. */
static const int32_t *row_ids(const loader *L, const size_t *starts, size_t r, int64_t *len) {
  if (L->o->pack) {
    *len = L->o->max_length;
    return L->ids + r * (size_t)L->o->max_length;
  }
  *len = L->lens[r];
  return L->ids + starts[r];
}

static pf_status build_batches(loader *L, size_t n_rows, pf_dataset *ds, pf_err *err) {
  const int64_t bs = L->o->batch_size;
  const int32_t pad = L->st.pad_id;
  size_t *starts = NULL, cells = 0;
  int64_t nb = ((int64_t)n_rows + bs - 1) / bs;
  pf_status st = PF_OK;
  if (!L->o->pack && !(starts = malloc((n_rows ? n_rows : 1) * sizeof *starts))) goto nomem;
  for (size_t r = 0, at = 0; starts && r < n_rows; r++)
    starts[r] = at, at += (size_t)L->lens[r];
  ds->n_batches = nb;
  if (!(ds->off = calloc((size_t)nb, sizeof *ds->off)) ||
      !(ds->rows = calloc((size_t)nb, sizeof *ds->rows)) ||
      !(ds->seq = calloc((size_t)nb, sizeof *ds->seq)))
    goto nomem;
  for (int64_t b = 0; b < nb; b++) {
    int64_t r0 = b * bs, r1 = r0 + bs < (int64_t)n_rows ? r0 + bs : (int64_t)n_rows, seq = 0, len;
    for (int64_t r = r0; r < r1; r++) {
      row_ids(L, starts, (size_t)r, &len);
      if (len > seq) seq = len;
    }
    ds->off[b] = (int64_t)cells, ds->rows[b] = r1 - r0, ds->seq[b] = seq;
    cells += (size_t)((r1 - r0) * seq);
  }
  if (!(ds->ids = malloc(cells * sizeof *ds->ids)) ||
      !(ds->mask = malloc(cells * sizeof *ds->mask)))
    goto nomem;
  for (int64_t b = 0; b < nb; b++) {
    int32_t *ids = ds->ids + ds->off[b], *mask = ds->mask + ds->off[b];
    for (int64_t i = 0; i < ds->rows[b]; i++) {
      int64_t len, seq = ds->seq[b];
      const int32_t *src = row_ids(L, starts, (size_t)(b * bs + i), &len);
      for (int64_t s = 0; s < seq; s++) {
        ids[i * seq + s] = s < len ? src[s] : pad;
        mask[i * seq + s] = s < len;
      }
      L->st.tokens_real += len;
      if (seq > L->st.max_seq) L->st.max_seq = seq;
    }
    L->st.tokens_total += ds->rows[b] * ds->seq[b];
  }
  L->st.rows = (int64_t)n_rows;
  L->st.batches = nb;
  goto done;
nomem:
  st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
done:
  free(starts);
  return st;
}

/* ---- fingerprint ---- */

static void hash_i64(pf_sha256 *s, int64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (uint8_t)((uint64_t)v >> (8 * i));
  pf_sha256_update(s, b, sizeof b);
}

/* int32 values as little-endian bytes, whatever the host order. */
static void hash_i32s(pf_sha256 *s, const int32_t *v, size_t n) {
  uint8_t buf[4096];
  size_t fill = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t u = (uint32_t)v[i];
    for (int k = 0; k < 4; k++)
      buf[fill++] = (uint8_t)(u >> (8 * k));
    if (fill == sizeof buf) pf_sha256_update(s, buf, fill), fill = 0;
  }
  pf_sha256_update(s, buf, fill);
}

/* The file kind as parsed: the lowercase extension. */
static void file_kind(const char *path, char out[8]) {
  const char *dot = strrchr(path, '.');
  size_t i = 0;
  for (; dot && dot[i + 1] && i < 7; i++)
    out[i] = (char)tolower((unsigned char)dot[i + 1]);
  out[i] = '\0';
}

static void fingerprint(const pf_data_opts *o, const char *field, pf_dataset *ds) {
  pf_sha256 s;
  char head[512], kind[8];
  file_kind(o->data, kind);
  pf_sha256_init(&s);
  int n = snprintf(head, sizeof head,
                   "pfrun-dataset-v1\nfile_sha256=%s\nkind=%s\nsamples=%lld\nmax_length=%lld\n"
                   "min_length=%lld\npack=%d\nbatch_size=%lld\nadd_special=%d\npad_id=%d\n"
                   "pad_id_used=%d\ntext_field=",
                   ds->file_hash, kind, (long long)o->samples, (long long)o->max_length,
                   (long long)o->min_length, o->pack ? 1 : 0, (long long)o->batch_size,
                   o->add_special ? 1 : 0, o->pad_id, ds->stats.pad_id);
  pf_sha256_update(&s, head, (size_t)n);
  pf_sha256_update(&s, field, strlen(field) + 1);
  hash_i64(&s, ds->n_batches);
  for (int64_t b = 0; b < ds->n_batches; b++) {
    size_t cells = (size_t)(ds->rows[b] * ds->seq[b]);
    hash_i64(&s, ds->rows[b]);
    hash_i64(&s, ds->seq[b]);
    hash_i32s(&s, ds->ids + ds->off[b], cells);
    hash_i32s(&s, ds->mask + ds->off[b], cells);
  }
  pf_sha256_final_hex(&s, ds->fingerprint);
}

/* ---- load ---- */

static pf_status no_rows(const loader *L, pf_err *err) {
  const pf_data_opts *o = L->o;
  if (L->st.samples_used == 0 && o->min_length > 1)
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: no usable samples: all %lld samples have fewer than %lld tokens",
                      o->data, (long long)L->st.samples_read, (long long)o->min_length);
  if (L->st.samples_used == 0)
    return pf_err_set(err, PF_ERR_INVALID, "%s: no usable samples: all %lld samples have no tokens",
                      o->data, (long long)L->st.samples_read);
  return pf_err_set(err, PF_ERR_INVALID,
                    "%s: nothing to pack: %zu tokens from %lld samples make no full block of "
                    "max_length %lld",
                    o->data, L->n, (long long)L->st.samples_used, (long long)o->max_length);
}

pf_status pf_dataset_load(const pf_data_opts *o, pf_tokenizer *tok, pf_dataset **out, pf_err *err) {
  loader L = {.o = o, .tok = tok};
  pf_dataset *ds = NULL;
  pf_status st;
  if (out) *out = NULL;
  if (!out) return pf_err_set(err, PF_ERR_INVALID, "pf_dataset_load: NULL out");
  if ((st = check_opts(o, tok, err))) return st;
  const char *field = o->text_field ? o->text_field : "text";
  if (!(ds = calloc(1, sizeof *ds))) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  L.st.pad_id = resolve_pad(o, tok);
  if ((st = pf_data_read_samples(o->data, field, on_sample, &L, ds->file_hash, err))) goto fail;
  size_t n_rows = o->pack ? L.n / (size_t)o->max_length : L.n_rows;
  if (o->samples && n_rows > (size_t)o->samples) n_rows = (size_t)o->samples;
  if (n_rows == 0) {
    st = no_rows(&L, err);
    goto fail;
  }
  if ((st = build_batches(&L, n_rows, ds, err))) goto fail;
  ds->stats = L.st;
  fingerprint(o, field, ds);
  free(L.ids);
  free(L.lens);
  *out = ds;
  return PF_OK;
fail:
  free(L.ids);
  free(L.lens);
  pf_dataset_free(ds);
  return st;
}

void pf_dataset_free(pf_dataset *ds) {
  if (!ds) return;
  free(ds->ids);
  free(ds->mask);
  free(ds->off);
  free(ds->rows);
  free(ds->seq);
  free(ds);
}

int64_t pf_dataset_batch_count(const pf_dataset *ds) {
  return ds ? ds->n_batches : 0;
}

pf_status pf_dataset_batch(const pf_dataset *ds, int64_t i, pf_batch *out, pf_err *err) {
  if (!ds || !out) return pf_err_set(err, PF_ERR_INVALID, "pf_dataset_batch: NULL argument");
  if (i < 0 || i >= ds->n_batches)
    return pf_err_set(err, PF_ERR_INVALID, "dataset batch %lld: expected an index in [0, %lld)",
                      (long long)i, (long long)ds->n_batches);
  out->batch = ds->rows[i];
  out->seq = ds->seq[i];
  out->ids = ds->ids + ds->off[i];
  out->mask = ds->mask + ds->off[i];
  return PF_OK;
}

pf_data_stats pf_dataset_stats(const pf_dataset *ds) {
  pf_data_stats none = {.pad_id = -1};
  return ds ? ds->stats : none;
}

const char *pf_dataset_fingerprint(const pf_dataset *ds) {
  return ds ? ds->fingerprint : "";
}

const char *pf_dataset_file_hash(const pf_dataset *ds) {
  return ds ? ds->file_hash : "";
}

pf_status pf_dataset_batches(const pf_dataset *ds, pf_batch **out, pf_err *err) {
  const int64_t n = pf_dataset_batch_count(ds);
  pf_batch *b = calloc((size_t)(n > 0 ? n : 1), sizeof *b);
  *out = NULL;
  if (!b) return pf_err_set(err, PF_ERR_NOMEM, "dataset: out of memory");
  for (int64_t i = 0; i < n; i++) {
    pf_status st = pf_dataset_batch(ds, i, &b[i], err);
    if (st) {
      free(b);
      return st;
    }
  }
  *out = b;
  return PF_OK;
}
