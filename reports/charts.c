/* charts.c — the PLplot session every chart runs in, and the layout helpers
 * shared by charts_*.c (see charts.h / charts_int.h).
 *
 * Why the session looks like this:
 *  - PLplot is a library of global state (the current stream, handlers, the
 *    LC_NUMERIC dance), so one mutex serialises every chart.
 *  - plexit() always ends the process once its handler returns; the only way
 *    to keep the process alive is to leave the handler with longjmp. The jump
 *    target is armed only while PLplot code runs under our setjmp.
 *  - plabort() prints to stderr unless the stream has an error buffer
 *    (plsError), so one is set on every stream before plinit.
 *  - The cairo driver clips text to the viewport unless told otherwise; tick
 *    labels and titles live outside it, so text clipping is turned off.
 *  - The file itself (its temporary sibling, the PNG encoder, the check that
 *    cairo wrote all of an SVG or PDF, stable SVG ids) is charts_file.c's.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <plplot.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "charts_int.h"
#include "fsutil.h"

/* ------------------------------------------------------------ formats */

static const char *const format_ext[] = {"png", "svg", "pdf"};
static const char *const format_dev[] = {"pngcairo", "svgcairo", "pdfcairo"};

pf_status pf_chart_format_parse(const char *name, pf_chart_format *out, pf_err *err) {
  for (int i = 0; i < 3; i++)
    if (name && strcmp(name, format_ext[i]) == 0) {
      *out = (pf_chart_format)i;
      return PF_OK;
    }
  return pf_err_set(err, PF_ERR_INVALID, "chart format: expected png, svg or pdf, got '%s'",
                    name ? name : "(null)");
}

const char *pf_chart_format_ext(pf_chart_format f) {
  return (unsigned)f < 3 ? format_ext[f] : "?";
}

/* ------------------------------------------------------------ session */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_font_once = PTHREAD_ONCE_INIT;
static jmp_buf g_jump;
static volatile int g_armed;  /* g_jump is a valid target */
static volatile int g_failed; /* PLplot reported an error */
static char g_msg[512];
static char g_errbuf[2048]; /* plsError buffer (plabort sprintf's into it) */

static void font_env(void) {
  setenv("PLPLOT_FREETYPE_SANS_FAMILY", "DejaVu Sans", 0);
}

static void note_failure(const char *msg) {
  if (!g_failed) {
    snprintf(g_msg, sizeof g_msg, "%s", msg && *msg ? msg : "unknown PLplot error");
    size_t n = strlen(g_msg);
    while (n && (g_msg[n - 1] == '\n' || g_msg[n - 1] == ' '))
      g_msg[--n] = '\0';
  }
  g_failed = 1;
}

static int on_plexit(const char *msg) {
  note_failure(msg);
  if (g_armed) {
    g_armed = 0;
    longjmp(g_jump, 1);
  }
  return 1;
}

static void on_plabort(const char *msg) {
  note_failure(msg);
}

static void set_palette(void) {
  static const int rgb[CC_NCOL][3] = {
      {255, 255, 255}, {0, 0, 0},       {222, 222, 222}, {31, 119, 180},
      {255, 127, 14},  {44, 160, 44},   {214, 39, 40},   {148, 103, 189},
      {140, 86, 75},   {227, 119, 194}, {127, 127, 127}, {200, 0, 0},
      {128, 128, 128}, {90, 90, 90},    {0, 0, 0},       {0, 0, 0}};
  plscmap0n(CC_NCOL);
  for (int i = 0; i < CC_NCOL; i++)
    plscol0(i, rgb[i][0], rgb[i][1], rgb[i][2]);
  plscol0a(CC_ARROW, 128, 128, 128, 0.3);
}

/* Run the PLplot part and, for PNG, write the file; returns 0 when all went
 * well, 1 when PLplot reported an error, 2 when the PNG could not be written
 * (g_msg says why). Called with g_lock held. */
static int plot_session(const char *tmp, pf_chart_format format, const chart_ctx *c,
                        chart_draw_fn draw, const void *data) {
  static PLINT code;
  g_failed = 0;
  g_msg[0] = '\0';
  g_errbuf[0] = '\0';
  code = 0;
  plsexit(on_plexit);
  plsabort(on_plabort);
  PLINT w = (PLINT)lround(c->w_pt * c->s), h = (PLINT)lround(c->h_pt * c->s);
  /* one pixel buffer for every PNG of the process (g_lock held): a fresh one per
   * chart costs its page faults each time */
  static unsigned char *buf;
  static size_t buf_size;
  unsigned char *pixels = NULL;
  if (format == PF_CHART_PNG) {
    const size_t need = (size_t)w * (size_t)h * 4;
    if (need > buf_size) {
      free(buf);
      buf_size = (buf = malloc(need)) ? need : 0;
    }
    if (!buf) {
      snprintf(g_msg, sizeof g_msg, "out of memory for a %d x %d chart", (int)w, (int)h);
      return 1;
    }
    pixels = buf;
    memset(pixels, 255, need);
  }
  if (setjmp(g_jump) == 0) {
    g_armed = 1;
    plsError(&code, g_errbuf);
    if (pixels) {
      plsdev("memcairo");
      plsmema(w, h, pixels);
    } else {
      plsdev(format_dev[format]);
      plsfnam(tmp);
    }
    plspage(0.0, 0.0, w, h, 0, 0);
    plsetopt("drvopt", "text_clipping=0");
    plscolbg(255, 255, 255);
    plinit();
    set_palette();
    pladv(0);
    draw(c, data);
  }
  g_armed = 0;
  if (code && !g_failed) note_failure(g_errbuf);
  /* always end the stream; a second plexit from here skips the rest */
  if (setjmp(g_jump) == 0) {
    g_armed = 1;
    plend1();
  }
  g_armed = 0;
  plsexit(NULL);
  plsabort(NULL);
  if (g_failed) return 1;
  return pixels && chart_write_png(tmp, pixels, w, h, g_msg, sizeof g_msg) ? 2 : 0;
}

pf_status chart_run(const char *path, pf_chart_format format, double w_in, double h_in,
                    chart_draw_fn draw, const void *data, pf_err *err) {
  if (!path || !*path) return pf_err_set(err, PF_ERR_INVALID, "chart: no output path given");
  if ((unsigned)format > PF_CHART_PDF)
    return pf_err_set(err, PF_ERR_INVALID, "%s: chart format %d is not png, svg or pdf", path,
                      (int)format);
  if (!(w_in > 0.5 && w_in <= 40 && h_in > 0.5 && h_in <= 40))
    return pf_err_set(err, PF_ERR_INVALID, "%s: figure size %g x %g in is outside 0.5..40 in", path,
                      w_in, h_in);
  char *tmp = NULL;
  pf_status st = chart_make_temp(path, &tmp, err);
  if (st) return st;
  pf_temp_register(tmp); /* removed by an interrupt or a crash inside the renderer */
  chart_ctx c = {.w_pt = w_in * 72.0, .h_pt = h_in * 72.0, .format = format};
  c.s = format == PF_CHART_PNG ? PF_CHART_DPI / 72.0 : 1.0;
  pthread_once(&g_font_once, font_env);
  pthread_mutex_lock(&g_lock);
  int failed = plot_session(tmp, format, &c, draw, data);
  char msg[sizeof g_msg];
  memcpy(msg, g_msg, sizeof msg);
  pthread_mutex_unlock(&g_lock);
  if (failed == 1) {
    st = pf_err_set(err, PF_ERR_UNSUPPORTED, "%s: PLplot (%s): %s", path, format_dev[format], msg);
  } else if (failed) {
    st = pf_err_set(err, PF_ERR_IO, "%s: %s", path, msg);
  } else if (format != PF_CHART_PNG &&
             (st = chart_finish_vector(tmp, path, format, format_dev[format], err))) {
    /* err set: cut short, or the fsync failed */
  } else if (rename(tmp, path) != 0) {
    int e = errno;
    st = pf_err_set(err, PF_ERR_IO, "%s: cannot move the chart into place: %s", path, strerror(e));
  }
  if (st) unlink(tmp);
  pf_temp_unregister(tmp);
  free(tmp);
  return st;
}

void chart_fork_prepare(void) {
  pthread_once(&g_font_once, font_env); /* never half-done in a child */
  pthread_mutex_lock(&g_lock);
}

void chart_fork_parent(void) {
  pthread_mutex_unlock(&g_lock);
}

void chart_fork_child(void) {
  pthread_mutex_unlock(&g_lock); /* the child's copy, held by this (its only) thread */
  pf_temp_forget_inherited();    /* an interrupted or crashed worker leaves the parent's temps */
}

void chart_remove_temps(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  char dir[4096], name[512];
  if (!slash)
    snprintf(dir, sizeof dir, ".");
  else if (slash == path)
    snprintf(dir, sizeof dir, "/");
  else if (snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path) >= (int)sizeof dir)
    return;
  if (snprintf(name, sizeof name, ".%s.", base) >= (int)sizeof name) return;
  size_t nl = strlen(name);
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strncmp(e->d_name, name, nl) == 0 && strlen(e->d_name) == nl + 6) /* mkstemp's XXXXXX */
      unlinkat(dirfd(d), e->d_name, 0);
  closedir(d);
}

/* ------------------------------------------------------------ text */

void cc_font(const chart_ctx *c, double pt, int bold) {
  /* pango renders "points" at 96 dpi on cairo surfaces: ask for 3/4 */
  plschr(0.75 * pt * c->s * 25.4 / 72.0, 1.0);
  plsfont(PL_FCI_SANS, PL_FCI_UPRIGHT, bold ? PL_FCI_BOLD : PL_FCI_MEDIUM);
}

void cc_width(const chart_ctx *c, double pt) {
  plwidth(pt * c->s);
}

void cc_escape(const char *in, char *out, size_t n) {
  size_t o = 0;
  if (!n) return;
  for (const unsigned char *p = (const unsigned char *)(in ? in : ""); *p; p++) {
    size_t need = *p == '#' ? 2 : 1;
    if (o + need + 1 > n) {
      while (o > 0 && ((unsigned char)out[o - 1] & 0xC0) == 0x80)
        o--;                                                        /* continuation */
      if (o > 0 && ((unsigned char)out[o - 1] & 0xC0) == 0xC0) o--; /* lead byte */
      break;
    }
    if (*p == '#') out[o++] = '#';
    out[o++] = (char)(*p < 0x20 ? ' ' : *p); /* control characters (\n, \t) become spaces */
  }
  out[o] = '\0';
}

double cc_text_pt(const char *s, double pt) {
  double w = 0;
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    unsigned ch = *p;
    if ((ch & 0xC0) == 0x80) continue; /* count code points */
    if (strchr(" .,:;'|!il()[]{}", (int)ch) && ch)
      w += 0.34;
    else if (ch >= 'A' && ch <= 'Z')
      w += ch == 'M' || ch == 'W' ? 0.86 : 0.70;
    else if (ch == 'm' || ch == 'w')
      w += 0.88;
    else if (ch >= 0x80)
      w += 0.75;
    else
      w += 0.60;
  }
  return w * pt;
}

void cc_page_text(const chart_ctx *c, double x, double y, double angle, double just, double pt,
                  int bold, int color, const char *text) {
  char buf[1024];
  cc_escape(text, buf, sizeof buf);
  if (!*buf) return;
  PLFLT vx0, vx1, vy0, vy1, wx0, wx1, wy0, wy1;
  plgvpd(&vx0, &vx1, &vy0, &vy1);
  plgvpw(&wx0, &wx1, &wy0, &wy1);
  plvpor(0.0, 1.0, 0.0, 1.0);
  plwind(0.0, 1.0, 0.0, 1.0);
  cc_font(c, pt, bold);
  plcol0(color);
  double a = angle * M_PI / 180.0;
  plptex(x, y, cos(a) / c->w_pt, sin(a) / c->h_pt, just, buf);
  plvpor(vx0, vx1, vy0, vy1);
  plwind(wx0, wx1, wy0, wy1);
}

void cc_page_line(const chart_ctx *c, double x0, double y0, double x1, double y1, int color,
                  double width_pt) {
  PLFLT vx0, vx1, vy0, vy1, wx0, wx1, wy0, wy1;
  plgvpd(&vx0, &vx1, &vy0, &vy1);
  plgvpw(&wx0, &wx1, &wy0, &wy1);
  plvpor(0.0, 1.0, 0.0, 1.0);
  plwind(0.0, 1.0, 0.0, 1.0);
  plcol0(color);
  cc_width(c, width_pt);
  double xs[2] = {x0, x1}, ys[2] = {y0, y1};
  plline(2, xs, ys);
  plvpor(vx0, vx1, vy0, vy1);
  plwind(wx0, wx1, wy0, wy1);
}

/* ------------------------------------------------------------ footer */

/* Split `s` into up to 3 lines of at most max_pt points at `pt`; returns the
 * count. lines[i] are slices written into buf. */
static int wrap_lines(const char *s, double pt, double max_pt, char lines[3][512]) {
  int n = 0;
  const char *p = s;
  while (*p && n < 3) {
    while (*p == ' ')
      p++;
    if (!*p) break;
    size_t best = 0, i = 0;
    char tmp[512];
    while (p[i] && i < sizeof tmp - 1) {
      size_t j = i;
      while (p[j] && p[j] != ' ' && j < sizeof tmp - 1)
        j++;
      memcpy(tmp, p, j);
      tmp[j] = '\0';
      if (cc_text_pt(tmp, pt) > max_pt && best) break;
      best = j;
      if (!p[j] || p[j] != ' ') {
        i = j;
        break;
      }
      i = j + 1;
    }
    if (!best) best = i ? i : strlen(p) < sizeof tmp - 1 ? strlen(p) : sizeof tmp - 1;
    memcpy(lines[n], p, best);
    lines[n][best] = '\0';
    p += best;
    n++;
  }
  if (*p && n == 3) { /* more than fits: end the last line with an ellipsis */
    size_t len = strlen(lines[2]);
    while (len > 0 && cc_text_pt(lines[2], pt) + pt > max_pt) {
      lines[2][--len] = '\0';
      while (len > 0 && ((unsigned char)lines[2][len] & 0xC0) == 0x80)
        lines[2][--len] = '\0';
    }
    snprintf(lines[2] + len, 512 - len, "\xE2\x80\xA6"); /* … */
  }
  return n;
}

int cc_footer_lines(const chart_ctx *c, const char *footer) {
  char lines[3][512];
  if (!footer || !*footer) return 0;
  return wrap_lines(footer, CC_PT_FOOTER, c->w_pt - 48.0, lines);
}

double cc_footer_pt(const chart_ctx *c, const char *footer) {
  int n = cc_footer_lines(c, footer);
  return n ? 8.0 + n * CC_PT_FOOTER * 1.35 : 0.0;
}

/* ------------------------------------------------------------ axes */

void cc_ticks(double lo, double hi, int target, double *step, int *decimals) {
  double span = hi - lo;
  if (!(span > 0) || !isfinite(span)) span = fabs(hi) > 0 ? fabs(hi) : 1.0;
  double raw = span / (target > 1 ? target : 1);
  double mag = pow(10.0, floor(log10(raw)));
  double f = raw / mag, nice = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
  *step = nice * mag;
  double d = -floor(log10(*step) + 1e-9);
  *decimals = *step < 1e-4 || *step >= 1e7 ? -1 : d > 0 ? (int)d : 0;
}

void cc_tick_label(double v, int decimals, int log10_axis, char *buf, size_t n) {
  if (log10_axis) {
    double p = pow(10.0, v);
    if (fabs(v - lround(v)) > 1e-6) {
      buf[0] = '\0';
      return;
    }
    snprintf(buf, n, p >= 1e6 || p < 1e-3 ? "%.0e" : "%g", p);
    return;
  }
  if (decimals < 0)
    snprintf(buf, n, "%.1e", v);
  else
    snprintf(buf, n, "%.*f", decimals, fabs(v) < 1e-12 ? 0.0 : v);
}

static void label_fn(PLINT axis, PLFLT value, char *label, PLINT length, PLPointer data) {
  const cc_axes *a = data;
  if (axis == PL_Y_AXIS)
    cc_tick_label(value, a->ydec, a->ylog, label, (size_t)length);
  else
    cc_tick_label(value, a->xdec, 0, label, (size_t)length);
}

double cc_ytick_width(const cc_axes *a, double pt) {
  if (!a->ynum || !(a->ystep > 0)) return 0;
  double w = 0;
  char buf[64];
  for (double v = ceil(a->ymin / a->ystep) * a->ystep; v <= a->ymax + a->ystep * 1e-6;
       v += a->ystep) {
    cc_tick_label(v, a->ydec, a->ylog, buf, sizeof buf);
    double t = cc_text_pt(buf, pt);
    if (t > w) w = t;
  }
  return w;
}

void cc_axes_begin(const chart_ctx *c, cc_axes *a) {
  a->vx0 = a->left / c->w_pt;
  a->vx1 = 1.0 - a->right / c->w_pt;
  a->vy0 = a->bottom / c->h_pt;
  a->vy1 = 1.0 - a->top / c->h_pt;
  if (a->vx1 < a->vx0 + 0.1) a->vx1 = a->vx0 + 0.1;
  if (a->vy1 < a->vy0 + 0.1) a->vy1 = a->vy0 + 0.1;
  plvpor(a->vx0, a->vx1, a->vy0, a->vy1);
  plwind(a->xmin, a->xmax, a->ymin, a->ymax);
  if (a->grid && a->ystep > 0) {
    plcol0(CC_GRID);
    cc_width(c, 0.6);
    plbox("", 0.0, 0, "g", a->ystep, 0);
  }
}

void cc_axes_end(const chart_ctx *c, const cc_axes *a) {
  plcol0(CC_FG);
  cc_width(c, 0.8);
  cc_font(c, CC_PT_TICK, 0);
  plsmaj(3.5 * c->s * 25.4 / 72.0, 1.0);
  plsmin(2.0 * c->s * 25.4 / 72.0, 1.0);
  plslabelfunc(label_fn, (PLPointer)a);
  plbox("bc", 0.0, 0, "bc", 0.0, 0);
  char xo[16] = "bi", yo[16] = "biv";
  if (a->xstep > 0) strcat(xo, a->xnum ? "tno" : "t");
  if (a->ystep > 0) strcat(yo, a->ynum ? "tno" : "t");
  plbox(xo, a->xstep, a->xstep > 0 ? 2 : 0, yo, a->ystep, a->ylog ? 1 : a->ystep > 0 ? 2 : 0);
  plslabelfunc(NULL, NULL);
}

void cc_to_page(const cc_axes *a, double x, double y, double *px, double *py) {
  *px = a->vx0 + (x - a->xmin) / (a->xmax - a->xmin) * (a->vx1 - a->vx0);
  *py = a->vy0 + (y - a->ymin) / (a->ymax - a->ymin) * (a->vy1 - a->vy0);
}

double cc_pt_per_x(const chart_ctx *c, const cc_axes *a) {
  return (a->vx1 - a->vx0) * c->w_pt / (a->xmax - a->xmin);
}

double cc_pt_per_y(const chart_ctx *c, const cc_axes *a) {
  return (a->vy1 - a->vy0) * c->h_pt / (a->ymax - a->ymin);
}

void cc_decorate(const chart_ctx *c, const cc_axes *a, const pf_chart_text *t, double xtick_pt,
                 double ytick_pt) {
  double cx = (a->vx0 + a->vx1) / 2, cy = (a->vy0 + a->vy1) / 2;
  if (t->title && *t->title)
    cc_page_text(c, cx, a->vy1 + (10.0 + 0.5 * CC_PT_TITLE) / c->h_pt, 0, 0.5, CC_PT_TITLE, 0,
                 CC_FG, t->title);
  if (t->xlabel && *t->xlabel)
    cc_page_text(c, cx, a->vy0 - (xtick_pt + 10.0 + 0.5 * CC_PT_LABEL) / c->h_pt, 0, 0.5,
                 CC_PT_LABEL, 0, CC_FG, t->xlabel);
  if (t->ylabel && *t->ylabel)
    cc_page_text(c, a->vx0 - (ytick_pt + 12.0 + 0.5 * CC_PT_LABEL) / c->w_pt, cy, 90, 0.5,
                 CC_PT_LABEL, 0, CC_FG, t->ylabel);
  char lines[3][512];
  int n = t->footer && *t->footer ? wrap_lines(t->footer, CC_PT_FOOTER, c->w_pt - 48.0, lines) : 0;
  for (int i = 0; i < n; i++) {
    double y = 6.0 + CC_PT_FOOTER * 0.5 + (n - 1 - i) * CC_PT_FOOTER * 1.35;
    cc_page_text(c, 0.5, y / c->h_pt, 0, 0.5, CC_PT_FOOTER, 0, CC_FG, lines[i]);
  }
}

/* Every k-th label so that they do not overlap. */
static size_t label_stride(const chart_ctx *c, const cc_axes *a, size_t n,
                           const char *const *labels, int rotate) {
  double avail = cc_pt_per_x(c, a); /* points per category */
  double need = 0;
  for (size_t i = 0; i < n; i++) {
    char buf[32];
    const char *s = labels ? labels[i] : buf;
    if (!labels) snprintf(buf, sizeof buf, "%zu", i);
    double w = rotate ? CC_PT_TICK * 1.5 : cc_text_pt(s, CC_PT_TICK) + 6.0;
    if (w > need) need = w;
  }
  size_t k = avail > 0 ? (size_t)ceil(need / avail) : 1;
  return k ? k : 1;
}

double cc_xcat_height(const chart_ctx *c, size_t n, const char *const *labels, int rotate) {
  (void)c;
  if (!rotate) return CC_PT_TICK + 8.0;
  double w = 0;
  for (size_t i = 0; i < n; i++) {
    char buf[32];
    const char *s = labels ? labels[i] : buf;
    if (!labels) snprintf(buf, sizeof buf, "%zu", i);
    double t = cc_text_pt(s, CC_PT_TICK);
    if (t > w) w = t;
  }
  if (w > 160) w = 160;
  return w * sin(M_PI / 4) + CC_PT_TICK + 8.0;
}

void cc_xcat_labels(const chart_ctx *c, const cc_axes *a, size_t n, const char *const *labels,
                    int rotate) {
  size_t k = label_stride(c, a, n, labels, rotate);
  plcol0(CC_FG);
  cc_width(c, 0.8);
  for (size_t i = 0; i < n; i += k) {
    char buf[64];
    const char *s = labels ? labels[i] : buf;
    if (!labels) snprintf(buf, sizeof buf, "%zu", i);
    double px, py;
    cc_to_page(a, (double)i, a->ymin, &px, &py);
    cc_page_line(c, px, py, px, py - 3.5 / c->h_pt, CC_FG, 0.8); /* tick mark, outward */
    if (rotate) {
      double d = (5.0 + CC_PT_TICK * 0.5) / c->h_pt;
      cc_page_text(c, px + 0.25 * CC_PT_TICK / c->w_pt, py - d, 45, 1.0, CC_PT_TICK, 0, CC_FG, s);
    } else {
      cc_page_text(c, px, py - (5.0 + CC_PT_TICK * 0.9) / c->h_pt, 0, 0.5, CC_PT_TICK, 0, CC_FG, s);
    }
  }
}

/* ------------------------------------------------------------ legend, shapes */

void cc_legend(const chart_ctx *c, size_t n, const char *const *names, const int *colors,
               int kind) {
  if (n == 0 || n > CC_MAX_SERIES) return;
  PLINT opt[CC_MAX_SERIES], col[CC_MAX_SERIES], pat[CC_MAX_SERIES], style[CC_MAX_SERIES];
  PLINT sym_n[CC_MAX_SERIES], tcol[CC_MAX_SERIES];
  PLFLT scale[CC_MAX_SERIES], lw[CC_MAX_SERIES], sym_scale[CC_MAX_SERIES];
  char text[CC_MAX_SERIES][256];
  const char *tp[CC_MAX_SERIES], *sym[CC_MAX_SERIES];
  for (size_t i = 0; i < n; i++) {
    opt[i] = kind == 0   ? PL_LEGEND_COLOR_BOX
             : kind == 1 ? PL_LEGEND_LINE | PL_LEGEND_SYMBOL
                         : PL_LEGEND_SYMBOL;
    col[i] = colors[i];
    tcol[i] = CC_FG;
    pat[i] = 0;
    style[i] = 1;
    sym_n[i] = kind == 1 ? 1 : 1;
    scale[i] = 0.9;
    lw[i] = 1.5 * c->s;
    sym_scale[i] = kind == 2 ? 1.2 : 0.9;
    cc_escape(names[i] ? names[i] : "", text[i], sizeof text[i]);
    tp[i] = text[i];
    sym[i] = "\xE2\x97\x8F"; /* ● */
  }
  cc_font(c, CC_PT_LEGEND, 0);
  PLFLT lwid, lht;
  pllegend(&lwid, &lht, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX,
           PL_POSITION_TOP | PL_POSITION_RIGHT | PL_POSITION_INSIDE, 0.02, 0.03,
           kind == 2 ? 0.015 : 0.06, CC_BG, CC_GRID, 1, 0, 0, (PLINT)n, opt, 0.8, 1.0, 2.0, 0.0,
           tcol, tp, col, pat, scale, lw, col, style, lw, col, sym_scale, sym_n, sym);
}

void cc_rect(double x0, double y0, double x1, double y1, int fill, int edge) {
  double x[5] = {x0, x0, x1, x1, x0}, y[5] = {y0, y1, y1, y0, y0};
  plcol0(fill);
  plfill(4, x, y);
  if (edge >= 0) {
    plcol0(edge);
    plline(5, x, y);
  }
}
