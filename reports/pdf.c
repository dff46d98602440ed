/* pdf.c — the document, fonts, text flow, images and saving (see pdf.h).
 *
 * libharu calls our error handler and then returns an error code from the
 * failing function; the handler only records the first code in the document,
 * and pdf_check turns it into a pf_err after each group of calls. Fonts are
 * loaded with HPDF_UseUTFEncodings + the "UTF-8" encoder, which makes them
 * Type0/CIDFontType2 fonts: any UTF-8 text the TrueType font has glyphs for
 * can be drawn and measured.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "pdf_int.h"

/* ------------------------------------------------------------ errors */

static const char *hpdf_name(HPDF_STATUS code) {
  switch (code) {
  case HPDF_FAILD_TO_ALLOC_MEM:
    return "out of memory";
  case HPDF_FILE_IO_ERROR:
    return "file I/O error";
  case HPDF_FILE_OPEN_ERROR:
    return "cannot open the file";
  case HPDF_INVALID_IMAGE:
  case HPDF_INVALID_PNG_IMAGE:
  case HPDF_LIBPNG_ERROR:
    return "not a readable PNG image";
  case HPDF_TTF_CANNOT_EMBEDDING_FONT:
  case HPDF_TTF_INVALID_CMAP:
  case HPDF_TTF_INVALID_FOMAT:
  case HPDF_TTF_MISSING_TABLE:
  case HPDF_INVALID_FONT:
  case HPDF_INVALID_FONTDEF_DATA:
    return "unusable TrueType font";
  case HPDF_PAGE_INVALID_FONT_SIZE:
    return "invalid font size";
  case HPDF_STRING_OUT_OF_RANGE:
    return "text too long";
  default:
    return "libharu error";
  }
}

static void on_hpdf_error(HPDF_STATUS code, HPDF_STATUS detail, void *user) {
  pf_pdf *d = user;
  if (d && !d->hcode) {
    d->hcode = code;
    d->hdetail = detail;
  }
}

pf_status pdf_check(pf_pdf *d, const char *what, pf_err *err) {
  if (!d->hcode) return PF_OK;
  d->broken = 1;
  pf_status st = d->hcode == HPDF_FAILD_TO_ALLOC_MEM ? PF_ERR_NOMEM
                 : d->hcode == HPDF_FILE_IO_ERROR || d->hcode == HPDF_FILE_OPEN_ERROR
                     ? PF_ERR_IO
                     : PF_ERR_FORMAT;
  pf_err_set(err, st, "pdf: %s: %s (libharu error 0x%04X, detail %u)", what, hpdf_name(d->hcode),
             (unsigned)d->hcode, (unsigned)d->hdetail);
  return st;
}

static pf_status usable(pf_pdf *d, pf_err *err) {
  if (!d) return pf_err_set(err, PF_ERR_INVALID, "pdf: no document");
  if (d->broken)
    return pf_err_set(err, PF_ERR_INVALID, "pdf: the document %s and cannot be extended",
                      d->broken == 2 ? "was saved" : "had an error");
  return PF_OK;
}

/* ------------------------------------------------------------ fonts */

static const char *const font_dirs[] = {"/usr/share/fonts/truetype/dejavu",
                                        "/usr/share/fonts/dejavu", "/usr/share/fonts/TTF",
                                        "/usr/local/share/fonts"};

/* libharu 2.3 gives a UTF-8 TrueType font a ToUnicode entry that is an encoding
 * CMap ("begincidrange"), which text extractors reject (poppler: "Invalid
 * 'begincidrange' operator in ToUnicode CMap"). The text of such a font is
 * written as 2-byte codes equal to the Unicode code point (Identity-H), so
 * the right ToUnicode CMap is the identity over the Basic Multilingual
 * Plane: bfranges <XX00> <XXFF> -> <XX00>, surrogates left out. */
static pf_status fix_to_unicode(pf_pdf *d, HPDF_Font font, const char *what, pf_err *err) {
  HPDF_Dict cmap = HPDF_DictStream_New(d->doc->mmgr, d->doc->xref);
  if (!cmap) return pdf_check(d, what, err);
  cmap->filter = HPDF_STREAM_FILTER_FLATE_DECODE;
  HPDF_Stream s = cmap->stream;
  HPDF_STATUS rc = HPDF_Stream_WriteStr(
      s, "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
         "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
         "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
         "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n");
  int rows[256], n = 0;
  for (int hi = 0; hi < 256; hi++)
    if (hi < 0xD8 || hi > 0xDF) rows[n++] = hi;
  for (int i = 0; rc == HPDF_OK && i < n; i += 100) {
    const int m = n - i < 100 ? n - i : 100;
    char line[64];
    snprintf(line, sizeof line, "%d beginbfrange\n", m);
    rc = HPDF_Stream_WriteStr(s, line);
    for (int k = 0; rc == HPDF_OK && k < m; k++) {
      snprintf(line, sizeof line, "<%02X00> <%02XFF> <%02X00>\n", rows[i + k], rows[i + k],
               rows[i + k]);
      rc = HPDF_Stream_WriteStr(s, line);
    }
    if (rc == HPDF_OK) rc = HPDF_Stream_WriteStr(s, "endbfrange\n");
  }
  if (rc == HPDF_OK)
    rc = HPDF_Stream_WriteStr(s, "endcmap\nCMapName currentdict /CMap defineresource pop\n"
                                 "end\nend\n");
  if (rc == HPDF_OK) rc = HPDF_Dict_Add(font, "ToUnicode", cmap);
  return pdf_check(d, what, err);
}

static pf_status load_font(pf_pdf *d, const char *file, HPDF_Font *out, pf_err *err) {
  char path[512];
  for (size_t i = 0; i < sizeof font_dirs / sizeof font_dirs[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", font_dirs[i], file);
    if (access(path, R_OK) != 0) continue;
    const char *name = HPDF_LoadTTFontFromFile(d->doc, path, HPDF_TRUE);
    if (name) *out = HPDF_GetFont(d->doc, name, "UTF-8");
    pf_status st = pdf_check(d, path, err);
    if (!st && !*out) st = pf_err_set(err, PF_ERR_FORMAT, "pdf: %s: font not usable", path);
    if (!st) st = fix_to_unicode(d, *out, path, err);
    return st;
  }
  return pf_err_set(err, PF_ERR_NOT_FOUND,
                    "pdf: font %s not found in /usr/share/fonts/truetype/dejavu (Debian package "
                    "fonts-dejavu-core)",
                    file);
}

/* ------------------------------------------------------------ document */

pf_status pdf_new_page(pf_pdf *d, pf_err *err) {
  if (d->npages == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 16;
    HPDF_Page *p = realloc(d->pages, cap * sizeof *p);
    if (!p) return pf_err_set(err, PF_ERR_NOMEM, "pdf: out of memory");
    d->pages = p;
    d->cap = cap;
  }
  HPDF_Page page = HPDF_AddPage(d->doc);
  if (page) HPDF_Page_SetSize(page, HPDF_PAGE_SIZE_A4, HPDF_PAGE_PORTRAIT);
  pf_status st = pdf_check(d, "new page", err);
  if (st) return st;
  if (!page) return pf_err_set(err, PF_ERR_NOMEM, "pdf: cannot add a page");
  d->pages[d->npages++] = page;
  d->y = PDF_TOP;
  return PF_OK;
}

pf_status pdf_need(pf_pdf *d, double h, pf_err *err) {
  if (d->y - h >= PDF_BOTTOM || d->y >= PDF_TOP) return PF_OK;
  return pdf_new_page(d, err);
}

static int ascii_only(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s >= 0x80 || (unsigned char)*s < 0x20) return 0;
  return 1;
}

pf_status pf_pdf_new(const char *title, pf_pdf **out, pf_err *err) {
  *out = NULL;
  pf_pdf *d = calloc(1, sizeof *d);
  if (!d) return pf_err_set(err, PF_ERR_NOMEM, "pdf: out of memory");
  pf_status st = (d->title = strdup(title ? title : ""))
                     ? PF_OK
                     : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st && !(d->doc = HPDF_New(on_hpdf_error, d)))
    st = pf_err_set(err, PF_ERR_NOMEM, "pdf: cannot create a libharu document");
  if (!st) {
    HPDF_SetCompressionMode(d->doc, HPDF_COMP_ALL);
    HPDF_UseUTFEncodings(d->doc);
    HPDF_SetCurrentEncoder(d->doc, "UTF-8");
    HPDF_SetInfoAttr(d->doc, HPDF_INFO_CREATOR, "pfrun " PF_VERSION);
    HPDF_SetInfoAttr(d->doc, HPDF_INFO_PRODUCER, "pfrun " PF_VERSION " (libharu)");
    if (ascii_only(d->title)) HPDF_SetInfoAttr(d->doc, HPDF_INFO_TITLE, d->title);
    st = pdf_check(d, "set-up", err);
  }
  if (!st) st = load_font(d, "DejaVuSans.ttf", &d->regular, err);
  if (!st) st = load_font(d, "DejaVuSans-Bold.ttf", &d->bold, err);
  if (!st) st = load_font(d, "DejaVuSansMono.ttf", &d->mono, err);
  if (!st) st = pdf_new_page(d, err);
  if (st) {
    pf_pdf_free(d);
    return st;
  }
  *out = d;
  return PF_OK;
}

void pf_pdf_free(pf_pdf *d) {
  if (!d) return;
  if (d->doc) HPDF_Free(d->doc);
  for (int i = 0; i < d->npend; i++)
    free(d->pend[i].text);
  free(d->pages);
  free(d->title);
  free(d);
}

size_t pf_pdf_pages(const pf_pdf *d) {
  return d ? d->npages : 0;
}

/* ------------------------------------------------------------ text */

double pdf_text_w(HPDF_Font f, double size, const char *s, size_t n) {
  if (!n) return 0;
  HPDF_TextWidth tw = HPDF_Font_TextWidth(f, (const HPDF_BYTE *)s, (HPDF_UINT)n);
  return tw.width * size / 1000.0;
}

/* Length of the UTF-8 sequence at s (1 for an invalid byte). */
static size_t u8len(const unsigned char *s, size_t left) {
  size_t n = s[0] < 0x80             ? 1
             : (s[0] & 0xE0) == 0xC0 ? 2
             : (s[0] & 0xF0) == 0xE0 ? 3
             : (s[0] & 0xF8) == 0xF0 ? 4
                                     : 0;
  if (n == 0 || n > left) return 1;
  for (size_t i = 1; i < n; i++)
    if ((s[i] & 0xC0) != 0x80) return 1;
  return n;
}

/* Copy of s[0..n) safe for libharu's UTF-8 encoder. */
static char *clean(const char *s, size_t n) {
  char *o = malloc(n + 1);
  if (!o) return NULL;
  size_t j = 0;
  for (size_t i = 0; i < n;) {
    const unsigned char *p = (const unsigned char *)s + i;
    size_t k = u8len(p, n - i);
    if (k == 1 && (p[0] >= 0x80 || p[0] < 0x20 || p[0] == 0x7F))
      o[j++] = p[0] >= 0x80 ? '?' : ' ';
    else {
      memcpy(o + j, p, k);
      j += k;
    }
    i += k;
  }
  o[j] = '\0';
  return o;
}

void pdf_text(pf_pdf *d, HPDF_Font f, double size, double gray, double x, double y, const char *s,
              size_t n) {
  char *t = clean(s, n);
  if (!t) {
    on_hpdf_error(HPDF_FAILD_TO_ALLOC_MEM, 0, d);
    return;
  }
  if (*t) {
    HPDF_Page p = d->pages[d->npages - 1];
    HPDF_Page_SetGrayFill(p, gray);
    HPDF_Page_BeginText(p);
    HPDF_Page_SetFontAndSize(p, f, size);
    HPDF_Page_TextOut(p, x, y, t);
    HPDF_Page_EndText(p);
  }
  free(t);
}

void pdf_fill_rect(pf_pdf *d, double x, double y, double w, double h, double gray) {
  HPDF_Page p = d->pages[d->npages - 1];
  HPDF_Page_SetGrayFill(p, gray);
  HPDF_Page_Rectangle(p, x, y, w, h);
  HPDF_Page_Fill(p);
}

void pdf_hline(pf_pdf *d, double x0, double x1, double y, double width, double gray) {
  HPDF_Page p = d->pages[d->npages - 1];
  HPDF_Page_SetGrayStroke(p, gray);
  HPDF_Page_SetLineWidth(p, width);
  HPDF_Page_MoveTo(p, x0, y);
  HPDF_Page_LineTo(p, x1, y);
  HPDF_Page_Stroke(p);
}

static pf_status push_line(pdf_line **lines, size_t *n, size_t *cap, const char *s, size_t len,
                           pf_err *err) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 16;
    pdf_line *l = realloc(*lines, c * sizeof *l);
    if (!l) return pf_err_set(err, PF_ERR_NOMEM, "pdf: out of memory");
    *lines = l;
    *cap = c;
  }
  (*lines)[(*n)++] = (pdf_line){s, len};
  return PF_OK;
}

/* End of the longest prefix of s[0..n) (at a character boundary) that fits. */
static size_t fit_chars(HPDF_Font f, double size, const char *s, size_t n, double width) {
  size_t best = 0;
  for (size_t i = 0; i < n;) {
    size_t k = u8len((const unsigned char *)s + i, n - i);
    if (pdf_text_w(f, size, s, i + k) > width) break;
    i += k;
    best = i;
  }
  return best ? best : u8len((const unsigned char *)s, n);
}

/* Wrap one paragraph (no '\n'). */
static pf_status wrap_para(HPDF_Font f, double size, const char *s, size_t n, double width,
                           pdf_line **lines, size_t *count, size_t *cap, pf_err *err) {
  if (n == 0) return push_line(lines, count, cap, s, 0, err);
  size_t pos = 0;
  while (pos < n) {
    size_t end = pos, best = 0;
    while (end < n) { /* extend word by word */
      size_t w = end;
      while (w < n && s[w] == ' ')
        w++;
      while (w < n && s[w] != ' ')
        w++;
      if (pdf_text_w(f, size, s + pos, w - pos) > width) break;
      end = best = w;
    }
    if (!best) best = pos + fit_chars(f, size, s + pos, n - pos, width); /* a long word */
    pf_status st = push_line(lines, count, cap, s + pos, best - pos, err);
    if (st) return st;
    pos = best;
    while (pos < n && s[pos] == ' ')
      pos++;
  }
  return PF_OK;
}

pf_status pdf_wrap(HPDF_Font f, double size, const char *text, double width, pdf_line **lines,
                   size_t *n, pf_err *err) {
  *lines = NULL;
  *n = 0;
  size_t cap = 0;
  const char *p = text ? text : "";
  pf_status st = PF_OK;
  do {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    st = wrap_para(f, size, p, len, width, lines, n, &cap, err);
    p = nl ? nl + 1 : p + len;
    if (!nl) break;
  } while (!st);
  if (st) {
    free(*lines);
    *lines = NULL;
    *n = 0;
  }
  return st;
}

/* Flow wrapped text: lines move to the next page as needed. */
static pf_status flow(pf_pdf *d, HPDF_Font f, double size, double lead, double gray, double indent,
                      const char *text, double after, pf_err *err) {
  pf_status st = usable(d, err);
  pdf_line *lines = NULL;
  size_t n = 0;
  if (!st) st = pdf_wrap(f, size, text, PDF_TEXT_W - indent, &lines, &n, err);
  if (!st) st = pdf_flush(d, lead * (double)(n < 3 ? n : 3), err);
  for (size_t i = 0; !st && i < n; i++) {
    if (!(st = pdf_need(d, lead, err))) {
      pdf_text(d, f, size, gray, PDF_LEFT + indent, d->y - size * 0.93, lines[i].s, lines[i].n);
      d->y -= lead;
    }
  }
  free(lines);
  if (!st) d->y -= after;
  return st ? st : pdf_check(d, "text", err);
}

pf_status pf_pdf_title(pf_pdf *d, const char *title, const char *subtitle, pf_err *err) {
  pf_status st = pdf_flush(d, 60, err);
  if (!st) st = flow(d, d->bold, 22, 28, 0, 0, title, 4, err);
  if (!st && subtitle && *subtitle) st = flow(d, d->regular, 11, 15, 0.3, 0, subtitle, 0, err);
  if (!st) st = pdf_need(d, 14, err);
  if (!st) {
    d->y -= 6;
    pdf_hline(d, PDF_LEFT, PDF_LEFT + PDF_TEXT_W, d->y, 1.0, 0);
    d->y -= 14;
    st = pdf_check(d, "title", err);
  }
  return st;
}

static double heading_size(int level) {
  return level == 1 ? 15 : 11.5;
}

/* Height a heading takes (one line). */
static double heading_h(int level) {
  return (level == 1 ? 14 + 2 + 8 : 8 + 3) + heading_size(level) * 1.3;
}

static pf_status draw_heading(pf_pdf *d, int level, const char *text, pf_err *err) {
  double size = heading_size(level);
  if (d->y < PDF_TOP) d->y -= level == 1 ? 14 : 8;
  pf_status st = flow(d, d->bold, size, size * 1.3, 0, 0, text, level == 1 ? 2 : 3, err);
  if (!st && level == 1) {
    pdf_hline(d, PDF_LEFT, PDF_LEFT + PDF_TEXT_W, d->y, 0.6, 0.35);
    d->y -= 8;
    st = pdf_check(d, "heading", err);
  }
  return st;
}

pf_status pdf_flush(pf_pdf *d, double need, pf_err *err) {
  int n = d->npend;
  if (!n) return PF_OK;
  d->npend = 0; /* drawing a heading flows text, which flushes again */
  double h = need;
  for (int i = 0; i < n; i++)
    h += heading_h(d->pend[i].level);
  if (h > 0.6 * (PDF_TOP - PDF_BOTTOM)) h = 0.6 * (PDF_TOP - PDF_BOTTOM);
  pf_status st = pdf_need(d, h, err);
  for (int i = 0; i < n; i++) {
    if (!st) st = draw_heading(d, d->pend[i].level, d->pend[i].text, err);
    free(d->pend[i].text);
    d->pend[i].text = NULL;
  }
  return st;
}

pf_status pf_pdf_heading(pf_pdf *d, int level, const char *text, pf_err *err) {
  pf_status st = usable(d, err);
  if (st) return st;
  if (level != 1 && level != 2)
    return pf_err_set(err, PF_ERR_INVALID, "pdf: heading level: expected 1 or 2, got %d", level);
  if (d->npend == 2 && (st = pdf_flush(d, 40, err))) return st;
  char *t = strdup(text ? text : "");
  if (!t) return pf_err_set(err, PF_ERR_NOMEM, "pdf: out of memory");
  d->pend[d->npend].text = t;
  d->pend[d->npend++].level = level;
  return PF_OK;
}

pf_status pf_pdf_paragraph(pf_pdf *d, const char *text, pf_err *err) {
  pf_status st = usable(d, err);
  return st ? st : flow(d, d->regular, 10, 13.5, 0, 0, text, 6, err);
}

pf_status pf_pdf_note(pf_pdf *d, const char *text, pf_err *err) {
  pf_status st = usable(d, err);
  return st ? st : flow(d, d->regular, 8.5, 11, 0.3, 0, text, 5, err);
}

pf_status pf_pdf_space(pf_pdf *d, double pt, pf_err *err) {
  pf_status st = usable(d, err);
  if (!st && d->y < PDF_TOP) d->y -= pt;
  return st;
}

pf_status pf_pdf_page_break(pf_pdf *d, pf_err *err) {
  pf_status st = usable(d, err);
  if (!st) st = pdf_flush(d, 0, err);
  return st ? st : d->y < PDF_TOP ? pdf_new_page(d, err) : PF_OK;
}

/* ------------------------------------------------------------ images */

pf_status pf_pdf_image(pf_pdf *d, const char *png_path, const char *caption, pf_err *err) {
  pf_status st = usable(d, err);
  if (st) return st;
  if (!png_path || access(png_path, R_OK) != 0)
    return pf_err_set(err, PF_ERR_NOT_FOUND, "pdf: image %s: %s", png_path ? png_path : "(null)",
                      strerror(errno ? errno : ENOENT));
  HPDF_Image img = HPDF_LoadPngImageFromFile(d->doc, png_path);
  char what[600];
  snprintf(what, sizeof what, "image %s", png_path);
  if ((st = pdf_check(d, what, err))) return st;
  if (!img) return pf_err_set(err, PF_ERR_FORMAT, "pdf: image %s: not a readable PNG", png_path);
  double iw = HPDF_Image_GetWidth(img), ih = HPDF_Image_GetHeight(img);
  if (!(iw > 0 && ih > 0)) return pf_err_set(err, PF_ERR_FORMAT, "pdf: image %s: empty", png_path);
  double w = PDF_TEXT_W, h = w * ih / iw, hmax = 0.6 * (PDF_TOP - PDF_BOTTOM);
  if (h > hmax) {
    h = hmax;
    w = h * iw / ih;
  }
  double cap_h = 0;
  pdf_line *lines = NULL;
  size_t n = 0;
  if (caption && *caption) {
    if ((st = pdf_wrap(d->regular, 8.5, caption, PDF_TEXT_W, &lines, &n, err))) return st;
    cap_h = 4 + n * 11.0;
  }
  st = pdf_flush(d, 0.7 * h + cap_h + 4, err);
  double room = d->y - PDF_BOTTOM - cap_h - 5;
  if (!st && h > room && room >= 0.7 * h) { /* shrink a little rather than leave a gap */
    w *= room / h;
    h = room;
  }
  if (!st && !(st = pdf_need(d, h + cap_h + 4, err))) {
    HPDF_Page_DrawImage(d->pages[d->npages - 1], img, PDF_LEFT + (PDF_TEXT_W - w) / 2, d->y - h, w,
                        h);
    d->y -= h + 4;
    for (size_t i = 0; i < n; i++) {
      double lw = pdf_text_w(d->regular, 8.5, lines[i].s, lines[i].n);
      pdf_text(d, d->regular, 8.5, 0.3, PDF_LEFT + (PDF_TEXT_W - lw) / 2, d->y - 8.5, lines[i].s,
               lines[i].n);
      d->y -= 11.0;
    }
    d->y -= 10;
    st = pdf_check(d, what, err);
  }
  free(lines);
  return st;
}

/* ------------------------------------------------------------ saving */

static void footers(pf_pdf *d) {
  for (size_t i = 0; i < d->npages; i++) {
    HPDF_Page p = d->pages[i];
    char num[64];
    snprintf(num, sizeof num, "Page %zu of %zu", i + 1, d->npages);
    HPDF_Page_SetGrayStroke(p, 0.6);
    HPDF_Page_SetLineWidth(p, 0.4);
    HPDF_Page_MoveTo(p, PDF_LEFT, PDF_BOTTOM - 14);
    HPDF_Page_LineTo(p, PDF_LEFT + PDF_TEXT_W, PDF_BOTTOM - 14);
    HPDF_Page_Stroke(p);
    size_t tl = strlen(d->title);
    double nw = pdf_text_w(d->regular, 8, num, strlen(num));
    static const char dots[] = "\xE2\x80\xA6"; /* a cut title ends in an ellipsis */
    const double room = PDF_TEXT_W - nw - 20;
    const int cut = pdf_text_w(d->regular, 8, d->title, tl) > room;
    const double dw = cut ? pdf_text_w(d->regular, 8, dots, sizeof dots - 1) : 0;
    while (tl > 0 && pdf_text_w(d->regular, 8, d->title, tl) > room - dw)
      tl--;
    while (tl > 0 && ((unsigned char)d->title[tl] & 0xC0) == 0x80)
      tl--;
    while (cut && tl > 0 && d->title[tl - 1] == ' ')
      tl--;
    char shown[1024];
    if (cut && tl < sizeof shown - sizeof dots) {
      memcpy(shown, d->title, tl);
      memcpy(shown + tl, dots, sizeof dots);
    }
    const char *title = cut && tl < sizeof shown - sizeof dots ? shown : d->title;
    const size_t tlen = title == shown ? tl + sizeof dots - 1 : tl;
    HPDF_Page saved = d->pages[d->npages - 1];
    d->pages[d->npages - 1] = p; /* pdf_text draws on the last page */
    pdf_text(d, d->regular, 8, 0.3, PDF_LEFT, PDF_BOTTOM - 26, title, tlen);
    pdf_text(d, d->regular, 8, 0.3, PDF_LEFT + PDF_TEXT_W - nw, PDF_BOTTOM - 26, num, strlen(num));
    d->pages[d->npages - 1] = saved;
  }
}

/* The finished document's bytes, from libharu's memory stream (malloc'd).
 * Not HPDF_SaveToFile: libharu 2.3 ignores a failed final flush and fclose of
 * the file, so a full disk gave a report cut short and no error; pfrun's own
 * writer (pf_write_file) reports every failed write, fsync or rename. */
static pf_status pdf_bytes(pf_pdf *d, const char *path, unsigned char **out, size_t *len,
                           pf_err *err) {
  *out = NULL;
  *len = 0;
  HPDF_SaveToStream(d->doc);
  pf_status st = pdf_check(d, path, err);
  if (st) return st;
  const HPDF_UINT32 size = HPDF_GetStreamSize(d->doc);
  if (size == 0) return pf_err_set(err, PF_ERR_FORMAT, "pdf: %s: libharu produced no data", path);
  unsigned char *buf = malloc(size);
  if (!buf) return pf_err_set(err, PF_ERR_NOMEM, "pdf: %s: out of memory (%u bytes)", path, size);
  HPDF_UINT32 got = 0;
  while (!st && got < size) {
    HPDF_UINT32 n = size - got;
    HPDF_ReadFromStream(d->doc, buf + got, &n);
    st = pdf_check(d, path, err);
    if (!st && n == 0)
      st = pf_err_set(err, PF_ERR_FORMAT, "pdf: %s: libharu's stream ended at %u of %u bytes", path,
                      got, size);
    got += n;
  }
  if (st) {
    free(buf);
    return st;
  }
  *out = buf;
  *len = size;
  return PF_OK;
}

pf_status pf_pdf_save(pf_pdf *d, const char *path, pf_err *err) {
  pf_status st = usable(d, err);
  if (st) return st;
  if (!path || !*path) return pf_err_set(err, PF_ERR_INVALID, "pdf: no output path given");
  st = pdf_flush(d, 0, err);
  if (!st) footers(d);
  if (!st) st = pdf_check(d, "page footers", err);
  unsigned char *bytes = NULL;
  size_t len = 0;
  if (!st) st = pdf_bytes(d, path, &bytes, &len, err);
  /* temp file beside the report + fsync + rename: complete or not there */
  if (!st) st = pf_write_file(path, bytes, len, err);
  free(bytes);
  d->broken = 2; /* finished */
  return st;
}
