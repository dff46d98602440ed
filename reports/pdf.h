/* pdf.h — a small flowing-document writer on libharu, for pfrun's report.
 *
 * A pf_pdf is an A4 portrait document with 2 cm margins that content flows
 * into from top to bottom; a new page starts whenever the next block does not
 * fit. Text is UTF-8, set in DejaVu Sans (regular and bold) and DejaVu Sans
 * Mono, embedded as TrueType subsets (libharu's UTF-8 encoder). Every page gets
 * a footer with the document title and "Page i of N" when the file is saved.
 *
 *   pf_pdf *d;
 *   pf_pdf_new("pfrun report", &d, &err);          // fonts loaded, page 1 open
 *   pf_pdf_title(d, "Run llama_depth_bias", "2025-06-01 12:00 UTC", &err);
 *   pf_pdf_heading(d, 1, "Pruning", &err);
 *   pf_pdf_paragraph(d, "Two layers were removed ...", &err);
 *   pf_pdf_table(d, &spec, &err);
 *   pf_pdf_image(d, "chart.png", "Figure 1: ...", &err);
 *   pf_pdf_save(d, "report.pdf", &err);            // temp file + rename
 *   pf_pdf_free(d);
 *
 * Errors: libharu reports through an error handler that records the code in
 * the document (nothing is printed, nothing exits); the failing call returns
 * PF_ERR_FORMAT / PF_ERR_IO / PF_ERR_NOMEM with the libharu code in the
 * message. After an error the document may be freed; further calls fail.
 * Fonts are looked up in /usr/share/fonts/truetype/dejavu (Debian's
 * fonts-dejavu-core) and a few other usual folders (PF_ERR_NOT_FOUND otherwise).
 * A pf_pdf is not thread-safe; separate documents are independent.
 */
#ifndef PF_PDF_H
#define PF_PDF_H

#include <stddef.h>

#include "pf.h"

typedef struct pf_pdf pf_pdf;

typedef enum pf_pdf_align { PF_PDF_LEFT = 0, PF_PDF_RIGHT = 1, PF_PDF_CENTER = 2 } pf_pdf_align;

/* A data table. cells are row-major [nrows * ncols]; a NULL cell is empty.
 * widths are relative column widths (NULL = from the content). Cells wrap
 * within their column; rows never split across pages and the header row is
 * repeated on every page the table spans. header NULL = no header row. */
typedef struct pf_pdf_table_spec {
  size_t ncols;              /* 1..16 */
  const char *const *header; /* [ncols] or NULL */
  const pf_pdf_align *align; /* [ncols] or NULL = all left */
  const double *widths;      /* [ncols] or NULL */
  size_t nrows;
  const char *const *cells; /* [nrows * ncols] */
  int zebra;                /* shade every other row lightly */
} pf_pdf_table_spec;

/* New document whose footer and metadata carry `title`. */
pf_status pf_pdf_new(const char *title, pf_pdf **out, pf_err *err);
void pf_pdf_free(pf_pdf *d); /* NULL ok */

/* A large title with an optional subtitle line and a rule under them. */
pf_status pf_pdf_title(pf_pdf *d, const char *title, const char *subtitle, pf_err *err);
/* Section heading: level 1 (large) or 2. A heading never ends a page: it moves
 * to the next page unless a few lines of content fit under it. */
pf_status pf_pdf_heading(pf_pdf *d, int level, const char *text, pf_err *err);
/* Wrapped paragraph of body text ('\n' starts a new line). */
pf_status pf_pdf_paragraph(pf_pdf *d, const char *text, pf_err *err);
/* The same in a smaller gray font (notes, captions). */
pf_status pf_pdf_note(pf_pdf *d, const char *text, pf_err *err);
/* Two-column key/value table (keys bold). */
pf_status pf_pdf_kv(pf_pdf *d, size_t n, const char *const *keys, const char *const *values,
                    pf_err *err);
pf_status pf_pdf_table(pf_pdf *d, const pf_pdf_table_spec *t, pf_err *err);
/* Preformatted monospace text on a light background; long lines are wrapped
 * at the margin (continuation lines start with "  "), tabs become 4 spaces. */
pf_status pf_pdf_mono(pf_pdf *d, const char *text, pf_err *err);
/* A PNG image scaled to the text width (and at most 60% of the page height),
 * with an optional caption under it. */
pf_status pf_pdf_image(pf_pdf *d, const char *png_path, const char *caption, pf_err *err);
/* Vertical space (points); start a new page. */
pf_status pf_pdf_space(pf_pdf *d, double pt, pf_err *err);
pf_status pf_pdf_page_break(pf_pdf *d, pf_err *err);
size_t pf_pdf_pages(const pf_pdf *d);

/* Add the page footers and write the file: libharu renders the document in
 * memory, pf_write_file writes it to a temporary sibling, fsyncs it and renames
 * it over `path`, so the report is complete or not there (no half-written file
 * on a full disk). Errors name the path and the cause: PF_ERR_IO "<path>:
 * cannot create: <strerror>" / "<path>: write failed: No space left on device".
 * Call once; the document is finished afterwards. */
pf_status pf_pdf_save(pf_pdf *d, const char *path, pf_err *err);

#endif
