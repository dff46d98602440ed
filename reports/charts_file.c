/* charts_file.c — the file of a chart (see charts_int.h): its hidden temporary
 * sibling, the PNG encoder, and the check of what PLplot's cairo devices wrote.
 *
 * Why it looks like this:
 *  - plOpenFile() retries and prints "Can't open" when the output cannot be
 *    created, so the file is created (mkstemp) before PLplot sees it.
 *  - cairo's write errors never reach pfrun: PLplot's cairo driver ignores the
 *    status of the surface and fcloses the file without looking. On a full
 *    disk an SVG or PDF chart came out cut short (not valid XML, no %%EOF)
 *    and was renamed into place. So the file is checked after PLplot: cairo
 *    ends every SVG with "</svg>\n" and every PDF with "%%EOF\n"; a file
 *    without that ending is an error, with the file system's free space
 *    (statvfs) naming the likely cause, and is never moved into place.
 *  - libpng prints "libpng error: ..." to stderr with its default handlers and
 *    its default writer forgets errno: our handlers record the message and
 *    the writer keeps the errno of a failed write, flush, fsync or close.
 *  - Every chart is fsync'd before the rename, as pf_write_file does.
 *  - cairo numbers the surfaces it creates with one process-wide counter and
 *    writes that number into SVG files (<g id="surface561">), so the same
 *    chart would come out with other bytes after other charts, or from another
 *    worker process (charts_jobs.c): the ids are renumbered from 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "charts_int.h"
#include "strbuf.h"

pf_status chart_make_temp(const char *path, char **out, pf_err *err) {
  const char *slash = strrchr(path, '/');
  size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
  const char *base = slash ? slash + 1 : path;
  if (!*base)
    return pf_err_set(err, PF_ERR_INVALID, "%s: expected a file name, got a folder", path);
  size_t n = dlen + strlen(base) + 10;
  char *t = malloc(n);
  if (!t) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  snprintf(t, n, "%.*s.%s.XXXXXX", (int)dlen, path, base);
  if (strstr(t, "%n")) {
    free(t);
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: a chart path must not contain '%%n' (PLplot's family-file marker)",
                      path);
  }
  int fd = mkstemp(t);
  if (fd < 0) {
    int e = errno;
    pf_err_set(err, PF_ERR_IO, "%s: cannot create the chart file in '%.*s': %s", path,
               dlen ? (int)dlen : 1, dlen ? path : ".", strerror(e));
    free(t);
    return PF_ERR_IO;
  }
  fchmod(fd, 0644); /* like every other output file (mkstemp makes 0600) */
  close(fd);
  *out = t;
  return PF_OK;
}

/* ------------------------------------------------------------ PNG */

typedef struct png_out {
  FILE *f;
  int err;       /* errno of the failed write, flush, fsync or close; 0 = none */
  char msg[160]; /* libpng's message */
} png_out;

static void png_on_error(png_structp png, png_const_charp msg) {
  png_out *o = png_get_error_ptr(png);
  snprintf(o->msg, sizeof o->msg, "%s", msg ? msg : "libpng error");
  png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
  (void)png; /* nothing pfrun writes gets one; never printed */
  (void)msg;
}

static void png_write_cb(png_structp png, png_bytep data, size_t len) {
  png_out *o = png_get_io_ptr(png);
  errno = 0;
  if (fwrite(data, 1, len, o->f) != len) {
    o->err = errno ? errno : EIO;
    png_error(png, "write failed");
  }
}

static void png_flush_cb(png_structp png) {
  png_out *o = png_get_io_ptr(png);
  if (fflush(o->f) != 0) {
    o->err = errno;
    png_error(png, "write failed");
  }
}

/* PNG: PLplot's memcairo driver draws into pixels[h][w] RGBA (white before),
 * and this encodes them: cairo's own PNG writer (the pngcairo driver) took
 * ~80 % of a chart's time in libpng's adaptive filters and zlib level 6. */
int chart_write_png(const char *tmp, const unsigned char *rgba, int w, int h, char *msg, size_t n) {
  png_out o = {.f = fopen(tmp, "wb")};
  if (!o.f) {
    snprintf(msg, n, "cannot write the chart file: %s", strerror(errno));
    return 1;
  }
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, &o, png_on_error, png_on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  unsigned char *row = malloc((size_t)w * 3);
  int bad = !png || !info || !row;
  if (bad) snprintf(o.msg, sizeof o.msg, "out of memory");
  if (!bad && setjmp(png_jmpbuf(png)) == 0) {
    png_set_write_fn(png, &o, png_write_cb, png_flush_cb);
    /* charts are flat colours: the Up filter and zlib level 1 give files ~1.25x the
     * size of cairo's at a fraction of the time (bench/README.md "Charts") */
    png_set_compression_level(png, 1);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_UP);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) {
      const unsigned char *src = rgba + (size_t)y * (size_t)w * 4;
      for (int x = 0; x < w; x++) /* the background is opaque: alpha is 255 everywhere */
        memcpy(row + 3 * x, src + 4 * x, 3);
      png_write_row(png, row);
    }
    png_write_end(png, NULL);
  } else {
    bad = 1;
  }
  png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
  free(row);
  if (!bad && fflush(o.f) != 0) o.err = errno; /* the last buffer: ENOSPC shows here */
  if (!bad && !o.err && fsync(fileno(o.f)) != 0) o.err = errno;
  if (fclose(o.f) != 0 && !bad && !o.err) o.err = errno;
  if (o.err)
    snprintf(msg, n, "cannot write the PNG file: %s", strerror(o.err));
  else if (bad)
    snprintf(msg, n, "cannot encode the PNG file: %s", o.msg);
  return bad || o.err;
}

/* ------------------------------------------------------------ SVG, PDF */

/* The error for a file without its closing bytes. */
static pf_status cut_short(const char *tmp, const char *path, const char *dev, long long size,
                           const char *end, pf_err *err) {
  char dir[4096];
  const char *slash = strrchr(tmp, '/');
  if (!slash)
    snprintf(dir, sizeof dir, ".");
  else
    snprintf(dir, sizeof dir, "%.*s", slash == tmp ? 1 : (int)(slash - tmp), tmp);
  char got[64];
  if (size > 0)
    snprintf(got, sizeof got, "the file was cut short at %lld bytes", size);
  else
    snprintf(got, sizeof got, "PLplot (%s) wrote no data", dev);
  struct statvfs v;
  if (statvfs(dir, &v) == 0 && (geteuid() == 0 ? v.f_bfree : v.f_bavail) == 0)
    return pf_err_set(err, PF_ERR_IO,
                      "%s: cannot write the chart: the file system is full (%s); %s", path,
                      strerror(ENOSPC), got);
  if (size == 0) return pf_err_set(err, PF_ERR_IO, "%s: %s", path, got);
  return pf_err_set(err, PF_ERR_IO,
                    "%s: the chart file was cut short (%lld bytes, no closing %.*s)", path, size,
                    (int)strlen(end) - 1, end);
}

/* Renumber cairo's "surface<N>" ids (id="..." and "#..." references) of the
 * SVG text in order of first appearance; *changed = 0 when there are none. */
static pf_status svg_stable_ids(const char *text, size_t len, pf_strbuf *b, int *changed,
                                pf_err *err) {
  unsigned long long seen[32];
  size_t ns = 0, from = 0;
  for (const char *p = text; (p = memmem(p, len - (size_t)(p - text), "surface", 7)); p += 7) {
    size_t at = (size_t)(p - text), d = at + 7, e = d;
    while (e < len && e - d < 18 && text[e] >= '0' && text[e] <= '9')
      e++;
    if (at == 0 || (text[at - 1] != '"' && text[at - 1] != '#') || e == d) continue;
    unsigned long long v = strtoull(text + d, NULL, 10);
    size_t k = 0;
    while (k < ns && seen[k] != v)
      k++;
    if (k == ns) {
      if (ns == sizeof seen / sizeof seen[0]) continue; /* cairo writes one */
      seen[ns++] = v;
    }
    pf_sb_put(b, text + from, d - from);
    pf_sb_printf(b, "%zu", k + 1);
    from = e;
  }
  if (from) pf_sb_put(b, text + from, len - from);
  *changed = from != 0;
  return b->oom ? pf_err_set(err, PF_ERR_NOMEM, "out of memory") : PF_OK;
}

static int pwrite_all(int fd, const char *p, size_t n) {
  for (size_t off = 0; off < n;) {
    ssize_t w = pwrite(fd, p + off, n - off, (off_t)off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? errno : EIO;
    off += (size_t)w;
  }
  return 0;
}

/* Read the file at fd (size bytes) into a malloc'd buffer. */
static int read_all(int fd, size_t size, char **out) {
  char *t = malloc(size + 1);
  if (!t) return ENOMEM;
  for (size_t off = 0; off < size;) {
    ssize_t r = pread(fd, t + off, size - off, (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      free(t);
      return r < 0 ? errno : EIO;
    }
    off += (size_t)r;
  }
  *out = t;
  return 0;
}

pf_status chart_finish_vector(const char *tmp, const char *path, pf_chart_format format,
                              const char *dev, pf_err *err) {
  const char *end = format == PF_CHART_SVG ? "</svg>\n" : "%%EOF\n";
  const size_t elen = strlen(end);
  int fd = open(tmp, O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return pf_err_set(err, PF_ERR_IO, "%s: cannot reopen the chart file: %s", path,
                      strerror(errno));
  struct stat sb;
  char *text = NULL;
  pf_strbuf b = {0};
  int e = fstat(fd, &sb) != 0 ? errno : 0;
  const size_t size = e ? 0 : (size_t)sb.st_size;
  pf_status st = PF_OK;
  if (!e) e = read_all(fd, size, &text);
  if (e == ENOMEM) {
    st = pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, size);
  } else if (!e && (size < elen || memcmp(text + size - elen, end, elen) != 0)) {
    st = cut_short(tmp, path, dev, (long long)size, end, err);
  } else if (!e && format == PF_CHART_SVG) {
    int changed = 0;
    st = svg_stable_ids(text, size, &b, &changed, err);
    /* no longer than before (cairo writes one surface id): overwriting in place
     * needs no more room on the disk */
    if (!st && changed && !(e = pwrite_all(fd, b.p, b.len)) && ftruncate(fd, (off_t)b.len) != 0)
      e = errno;
  }
  if (!st && !e && fsync(fd) != 0) e = errno;
  if (close(fd) != 0 && !st && !e) e = errno;
  free(text);
  pf_sb_free(&b);
  if (!st && e)
    st = pf_err_set(err, PF_ERR_IO, "%s: cannot write the chart file: %s", path, strerror(e));
  return st;
}
