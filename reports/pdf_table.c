/* pdf_table.c — data tables, key/value tables and monospace blocks (see pdf.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdf_int.h"

#define T_SIZE 8.5  /* table text */
#define T_LEAD 10.6 /* table line height */
#define T_PADX 4.0
#define T_PADY 3.0
#define T_MAXCOLS 16

typedef struct tcell {
  pdf_line *lines;
  size_t n;
} tcell;

typedef struct tlayout {
  size_t ncols;
  double w[T_MAXCOLS]; /* column widths in points */
  double total;
  int bold_first; /* key/value tables: first column bold */
} tlayout;

static const char *cell_text(const pf_pdf_table_spec *t, size_t r, size_t c) {
  const char *s = t->cells[r * t->ncols + c];
  return s ? s : "";
}

/* Natural (unwrapped) width of the widest line in s. */
static double natural_w(HPDF_Font f, const char *s) {
  double w = 0;
  for (const char *p = s;;) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    w = fmax(w, pdf_text_w(f, T_SIZE, p, n));
    if (!nl) break;
    p = nl + 1;
  }
  return w;
}

/* Column widths: the given ratios, or the content's natural widths shrunk
 * fairly (narrow columns keep their width) when the table is too wide. */
static void layout(pf_pdf *d, const pf_pdf_table_spec *t, tlayout *L) {
  L->ncols = t->ncols;
  if (t->widths) {
    double sum = 0;
    for (size_t c = 0; c < t->ncols; c++)
      sum += t->widths[c] > 0 ? t->widths[c] : 0;
    for (size_t c = 0; c < t->ncols; c++)
      L->w[c] = sum > 0 ? PDF_TEXT_W * fmax(t->widths[c], 0) / sum : PDF_TEXT_W / t->ncols;
  } else {
    double nat[T_MAXCOLS];
    for (size_t c = 0; c < t->ncols; c++) {
      nat[c] = t->header ? natural_w(d->bold, t->header[c] ? t->header[c] : "") : 0;
      for (size_t r = 0; r < t->nrows; r++)
        nat[c] = fmax(
            nat[c], natural_w(c == 0 && L->bold_first ? d->bold : d->regular, cell_text(t, r, c)));
      nat[c] = fmin(nat[c] + 2 * T_PADX + 0.5, PDF_TEXT_W);
    }
    double sum = 0; /* room to spare: give every column some air */
    for (size_t c = 0; c < t->ncols; c++)
      sum += nat[c];
    double extra = fmin(18.0, (PDF_TEXT_W - sum) / (double)t->ncols);
    for (size_t c = 0; extra > 0 && c < t->ncols; c++)
      nat[c] += extra;
    int fixed[T_MAXCOLS] = {0};
    double left = PDF_TEXT_W;
    size_t open = t->ncols;
    for (int changed = 1; changed && open;) { /* water-filling */
      changed = 0;
      double share = left / (double)open;
      for (size_t c = 0; c < t->ncols; c++)
        if (!fixed[c] && nat[c] <= share) {
          fixed[c] = 1, L->w[c] = nat[c], left -= nat[c], open--, changed = 1;
        }
    }
    for (size_t c = 0; c < t->ncols; c++)
      if (!fixed[c]) L->w[c] = left / (double)open;
  }
  L->total = 0;
  for (size_t c = 0; c < t->ncols; c++)
    L->total += L->w[c];
}

static pf_status wrap_row(pf_pdf *d, const tlayout *L, const char *const *texts, int header,
                          tcell *cells, double *height, pf_err *err) {
  size_t maxn = 1;
  for (size_t c = 0; c < L->ncols; c++) {
    HPDF_Font f = header || (c == 0 && L->bold_first) ? d->bold : d->regular;
    pf_status st = pdf_wrap(f, T_SIZE, texts[c] ? texts[c] : "", fmax(L->w[c] - 2 * T_PADX, 8.0),
                            &cells[c].lines, &cells[c].n, err);
    if (st) return st;
    double max_lines = floor((PDF_TOP - PDF_BOTTOM - 60) / T_LEAD);
    if ((double)cells[c].n > max_lines)
      cells[c].n = (size_t)max_lines; /* a cell taller than a page */
    if (cells[c].n > maxn) maxn = cells[c].n;
  }
  *height = (double)maxn * T_LEAD + 2 * T_PADY;
  return PF_OK;
}

static void free_row(tcell *cells, size_t n) {
  for (size_t c = 0; c < n; c++) {
    free(cells[c].lines);
    cells[c].lines = NULL;
    cells[c].n = 0;
  }
}

static void draw_row(pf_pdf *d, const tlayout *L, const pf_pdf_table_spec *t, const tcell *cells,
                     double h, int header, double shade) {
  if (shade < 1.0) pdf_fill_rect(d, PDF_LEFT, d->y - h, L->total, h, shade);
  double x = PDF_LEFT;
  for (size_t c = 0; c < L->ncols; c++) {
    HPDF_Font f = header || (c == 0 && L->bold_first) ? d->bold : d->regular;
    pf_pdf_align al = t->align ? t->align[c] : PF_PDF_LEFT;
    for (size_t i = 0; i < cells[c].n; i++) {
      const pdf_line *ln = &cells[c].lines[i];
      double lw = pdf_text_w(f, T_SIZE, ln->s, ln->n), inner = L->w[c] - 2 * T_PADX;
      double tx = x + T_PADX +
                  (al == PF_PDF_RIGHT    ? inner - lw
                   : al == PF_PDF_CENTER ? (inner - lw) / 2
                                         : 0);
      pdf_text(d, f, T_SIZE, 0, tx, d->y - T_PADY - T_SIZE * 0.93 - (double)i * T_LEAD, ln->s,
               ln->n);
    }
    x += L->w[c];
  }
  d->y -= h;
}

static pf_status draw_header(pf_pdf *d, const tlayout *L, const pf_pdf_table_spec *t, pf_err *err) {
  tcell cells[T_MAXCOLS] = {{0}};
  double h = 0;
  pf_status st = wrap_row(d, L, t->header, 1, cells, &h, err);
  if (!st) {
    pdf_hline(d, PDF_LEFT, PDF_LEFT + L->total, d->y, 0.8, 0);
    draw_row(d, L, t, cells, h, 1, 0.88);
    pdf_hline(d, PDF_LEFT, PDF_LEFT + L->total, d->y, 0.6, 0);
  }
  free_row(cells, L->ncols);
  return st;
}

static double header_height(pf_pdf *d, const tlayout *L, const pf_pdf_table_spec *t) {
  tcell cells[T_MAXCOLS] = {{0}};
  double h = 0;
  if (wrap_row(d, L, t->header, 1, cells, &h, NULL) != PF_OK) h = T_LEAD + 2 * T_PADY;
  free_row(cells, L->ncols);
  return h;
}

static pf_status table_draw(pf_pdf *d, const pf_pdf_table_spec *t, int bold_first, pf_err *err) {
  if (!d) return pf_err_set(err, PF_ERR_INVALID, "pdf: no document");
  if (d->broken) return pf_err_set(err, PF_ERR_INVALID, "pdf: the document cannot be extended");
  if (!t || t->ncols == 0 || t->ncols > T_MAXCOLS)
    return pf_err_set(err, PF_ERR_INVALID, "pdf table: expected 1..%d columns, got %zu", T_MAXCOLS,
                      t ? t->ncols : 0);
  if (t->nrows && !t->cells) return pf_err_set(err, PF_ERR_INVALID, "pdf table: no cells given");
  tlayout L = {.bold_first = bold_first};
  layout(d, t, &L);
  double hh = t->header ? header_height(d, &L, t) : 0, first = 0, total = hh + 12;
  pf_status st = PF_OK;
  for (size_t r = 0; !st && r < t->nrows && r < 24; r++) { /* a short table stays whole */
    tcell cells[T_MAXCOLS] = {{0}};
    double h = 0;
    st = wrap_row(d, &L, &t->cells[r * t->ncols], 0, cells, &h, err);
    total += h;
    if (r == 0) first = h;
    free_row(cells, L.ncols);
  }
  double keep = t->nrows <= 24 && total < 0.35 * (PDF_TOP - PDF_BOTTOM) ? total : hh + first;
  if (!st) st = pdf_flush(d, keep, err);
  if (!st) st = pdf_need(d, keep, err);
  if (!st && t->header)
    st = draw_header(d, &L, t, err);
  else if (!st)
    pdf_hline(d, PDF_LEFT, PDF_LEFT + L.total, d->y, 0.6, 0);
  for (size_t r = 0; !st && r < t->nrows; r++) {
    tcell cells[T_MAXCOLS] = {{0}};
    double h = 0;
    st = wrap_row(d, &L, &t->cells[r * t->ncols], 0, cells, &h, err);
    if (!st && d->y - h < PDF_BOTTOM) {
      pdf_hline(d, PDF_LEFT, PDF_LEFT + L.total, d->y, 0.6, 0);
      st = pdf_new_page(d, err);
      if (!st && t->header)
        st = draw_header(d, &L, t, err);
      else if (!st)
        pdf_hline(d, PDF_LEFT, PDF_LEFT + L.total, d->y, 0.6, 0);
    }
    if (!st) {
      double shade = t->zebra && r % 2 == 1 ? 0.95 : 1.0;
      draw_row(d, &L, t, cells, h, 0, shade);
      if (r + 1 < t->nrows) pdf_hline(d, PDF_LEFT, PDF_LEFT + L.total, d->y, 0.3, 0.8);
    }
    free_row(cells, L.ncols);
  }
  if (!st) {
    pdf_hline(d, PDF_LEFT, PDF_LEFT + L.total, d->y, 0.8, 0);
    d->y -= 12;
    st = pdf_check(d, "table", err);
  }
  return st;
}

pf_status pf_pdf_table(pf_pdf *d, const pf_pdf_table_spec *t, pf_err *err) {
  return table_draw(d, t, 0, err);
}

pf_status pf_pdf_kv(pf_pdf *d, size_t n, const char *const *keys, const char *const *values,
                    pf_err *err) {
  if (n == 0) return PF_OK;
  if (!keys || !values) return pf_err_set(err, PF_ERR_INVALID, "pdf key/value table: no entries");
  const char **cells = malloc(sizeof(char *) * n * 2);
  if (!cells) return pf_err_set(err, PF_ERR_NOMEM, "pdf: out of memory");
  for (size_t i = 0; i < n; i++) {
    cells[2 * i] = keys[i];
    cells[2 * i + 1] = values[i];
  }
  double widths[2] = {0.25, 0.75};
  pf_pdf_table_spec t = {.ncols = 2, .nrows = n, .cells = cells, .widths = widths};
  pf_status st = table_draw(d, &t, 1, err);
  free(cells);
  return st;
}

/* ------------------------------------------------------------ monospace */

#define M_SIZE 7.5
#define M_LEAD 9.2
#define M_PAD 5.0

/* Expand tabs and split into display lines of at most `cols` code points;
 * continuation lines get a two-space indent. Returns a malloc'd buffer of
 * '\n'-separated lines. */
static char *mono_lines(const char *text, size_t cols, size_t *count) {
  size_t cap = strlen(text) * 4 + 64, o = 0, col = 0;
  char *out = malloc(cap + 1);
  if (!out) return NULL;
  *count = 1;
  for (const unsigned char *p = (const unsigned char *)text; *p;) {
    if (o + 16 > cap) {
      char *n = realloc(out, cap * 2 + 1);
      if (!n) {
        free(out);
        return NULL;
      }
      out = n;
      cap *= 2;
    }
    if (*p == '\r') {
      p++;
      continue;
    }
    if (*p == '\n') {
      out[o++] = '\n', col = 0, (*count)++, p++;
      continue;
    }
    if (col >= cols) { /* wrap */
      out[o++] = '\n', out[o++] = ' ', out[o++] = ' ', col = 2, (*count)++;
    }
    if (*p == '\t') {
      size_t sp = 4 - col % 4;
      for (size_t i = 0; i < sp && col < cols; i++)
        out[o++] = ' ', col++;
      p++;
      continue;
    }
    size_t k = 1;
    if (*p >= 0x80) /* copy a whole UTF-8 sequence */
      while (k < 4 && (p[k] & 0xC0) == 0x80)
        k++;
    memcpy(out + o, p, k);
    o += k, p += k, col++;
  }
  out[o] = '\0';
  return out;
}

pf_status pf_pdf_mono(pf_pdf *d, const char *text, pf_err *err) {
  if (!d) return pf_err_set(err, PF_ERR_INVALID, "pdf: no document");
  if (d->broken) return pf_err_set(err, PF_ERR_INVALID, "pdf: the document cannot be extended");
  double cw = pdf_text_w(d->mono, M_SIZE, "M", 1);
  size_t cols = (size_t)floor((PDF_TEXT_W - 2 * M_PAD) / (cw > 0 ? cw : M_SIZE * 0.6));
  size_t count = 0, tl = strlen(text ? text : "");
  while (tl > 0 && (text[tl - 1] == '\n' || text[tl - 1] == '\r'))
    tl--; /* no blank tail */
  char *trimmed = strndup(text ? text : "", tl);
  char *buf = trimmed ? mono_lines(trimmed, cols ? cols : 1, &count) : NULL;
  free(trimmed);
  if (!buf) return pf_err_set(err, PF_ERR_NOMEM, "pdf: out of memory");
  pf_status st = pdf_flush(d, M_LEAD * 3 + 2 * M_PAD, err);
  char *p = buf;
  while (!st && p) {
    if ((st = pdf_need(d, M_LEAD * 2 + 2 * M_PAD, err))) break;
    size_t fit = (size_t)floor((d->y - PDF_BOTTOM - 2 * M_PAD) / M_LEAD); /* lines on this page */
    char *q = p;
    size_t k = 0;
    while (q && k < fit) {
      char *nl = strchr(q, '\n');
      k++;
      q = nl ? nl + 1 : NULL;
    }
    pdf_fill_rect(d, PDF_LEFT, d->y - (double)k * M_LEAD - 2 * M_PAD, PDF_TEXT_W,
                  (double)k * M_LEAD + 2 * M_PAD, 0.95);
    double y = d->y - M_PAD - M_SIZE * 0.93;
    for (size_t i = 0; i < k; i++) {
      char *nl = strchr(p, '\n');
      size_t n = nl ? (size_t)(nl - p) : strlen(p);
      pdf_text(d, d->mono, M_SIZE, 0, PDF_LEFT + M_PAD, y, p, n);
      y -= M_LEAD;
      p = nl ? nl + 1 : NULL;
    }
    d->y -= (double)k * M_LEAD + 2 * M_PAD;
    if (p) st = pdf_new_page(d, err);
  }
  free(buf);
  if (!st) {
    d->y -= 10;
    st = pdf_check(d, "monospace block", err);
  }
  return st;
}
