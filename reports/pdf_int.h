/* pdf_int.h — shared internals of pdf.c and pdf_table.c (not public). */
#ifndef PF_PDF_INT_H
#define PF_PDF_INT_H

#include <hpdf.h>

#include "pdf.h"

/* A4 portrait, 2 cm margins; the footer sits in the bottom margin. */
#define PDF_PAGE_W 595.276
#define PDF_PAGE_H 841.890
#define PDF_MARGIN 56.693
#define PDF_TOP (PDF_PAGE_H - PDF_MARGIN)
#define PDF_BOTTOM PDF_MARGIN
#define PDF_TEXT_W (PDF_PAGE_W - 2 * PDF_MARGIN)
#define PDF_LEFT PDF_MARGIN

struct pf_pdf {
  HPDF_Doc doc;
  HPDF_Font regular, bold, mono;
  HPDF_Page *pages;
  size_t npages, cap;
  double y; /* top of the free space on the current page (PDF y, from the bottom) */
  char *title;
  HPDF_STATUS hcode, hdetail; /* first libharu error */
  int broken;                 /* 1: an error happened, 2: saved; refuse further work */
  struct {
    char *text;
    int level;
  } pend[2]; /* headings waiting for the block they introduce */
  int npend;
};

/* One wrapped line: a slice of the source text. */
typedef struct pdf_line {
  const char *s;
  size_t n;
} pdf_line;

/* Status of the document after libharu calls ("<what>" names the operation). */
pf_status pdf_check(pf_pdf *d, const char *what, pf_err *err);
/* Start a new page when fewer than h points are left. */
pf_status pdf_need(pf_pdf *d, double h, pf_err *err);
pf_status pdf_new_page(pf_pdf *d, pf_err *err);
/* Draw the pending headings, first making sure they and `need` points of the
 * block that follows share a page (keep-with-next). Every block calls it. */
pf_status pdf_flush(pf_pdf *d, double need, pf_err *err);
/* Width in points of s[0..n) in font f at size. */
double pdf_text_w(HPDF_Font f, double size, const char *s, size_t n);
/* Greedy word wrap of text into lines no wider than width ('\n' breaks; words
 * longer than a line are split between characters). *lines is malloc'd. */
pf_status pdf_wrap(HPDF_Font f, double size, const char *text, double width, pdf_line **lines,
                   size_t *n, pf_err *err);
/* Draw s[0..n) with its left edge at x and baseline at y (control characters
 * and invalid UTF-8 are replaced). gray: 0 = black. */
void pdf_text(pf_pdf *d, HPDF_Font f, double size, double gray, double x, double y, const char *s,
              size_t n);
void pdf_fill_rect(pf_pdf *d, double x, double y, double w, double h, double gray);
void pdf_hline(pf_pdf *d, double x0, double x1, double y, double width, double gray);

#endif
