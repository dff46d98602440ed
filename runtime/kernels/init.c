/* init.c — BLIS architecture choice, thread count, ISA level, describe().
 *
 * Why pfrun picks the BLIS arch itself: Debian's BLIS 0.9 chooses its kernels from
 * a cpuid table that predates recent CPUs. On AMD Zen 4/5 it falls back to the
 * `generic` C kernels (~75 GFLOP/s sgemm on 2 threads), and on Intel parts whose
 * model it does not know it refuses `skx` ("Number of FMA units unknown") and uses
 * `haswell` (~210). Selecting `skx` on any CPU with AVX-512 F/BW/DQ/VL gives ~310-340.
 *
 * How BLIS 0.9 takes the choice (checked against the library, see the notes in
 * bench/README.md): BLIS_ARCH_TYPE is read once, during BLIS initialisation, with
 * strtol, as an arch_t id (skx = 0, haswell = 3, zen3 = 6, generic = 25, ...). A
 * name parses as 0. An id whose config is not compiled in aborts the process.
 * Calling bli_arch_query_id() *before* BLIS is initialised with BLIS_ARCH_TYPE
 * set also aborts ("Accessed uninitialized context in gks"), so we call bli_init()
 * first and only then read back the selected arch.
 */
#include "kern_internal.h"

#include <blis.h>
#include <ctype.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <strings.h>
#endif

pf_isa pf_kern_isa_level = PF_KERN_ISA_BASE;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pf_status g_status = PF_OK;
static pf_err g_err;
static pf_matmul g_matmul = PF_MATMUL_BF16;
static pf_kernels_info g_info;
static char g_describe[PF_ERR_MSG_MAX + 512];
static pf_isa g_isa_max = PF_ISA_SCALAR;

/* ---- CPU identification ---- */

typedef struct cpu_desc {
  int amd, intel;
  unsigned family, model;
  int avx, avx2, fma, f16c, avx512f, avx512bw, avx512dq, avx512vl, avx512bf16;
  int avx512pf, avx512er, fma4, ssse3;
} cpu_desc;

static void cpu_query(cpu_desc *c) {
  memset(c, 0, sizeof *c);
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, cx, d;
  if (__get_cpuid(0, &a, &b, &cx, &d)) {
    c->intel = (b == 0x756e6547u); /* "GenuineIntel" */
    c->amd = (b == 0x68747541u);   /* "AuthenticAMD" */
  }
  if (__get_cpuid(1, &a, &b, &cx, &d)) {
    unsigned fam = (a >> 8) & 0xf, mod = (a >> 4) & 0xf;
    if (fam == 0xf) fam += (a >> 20) & 0xff;
    if (fam == 0x6 || fam >= 0xf) mod += ((a >> 16) & 0xf) << 4;
    c->family = fam;
    c->model = mod;
  }
  /* __builtin_cpu_supports also checks that the OS saves the wide registers. */
  __builtin_cpu_init();
  c->avx = __builtin_cpu_supports("avx");
  c->avx2 = __builtin_cpu_supports("avx2");
  c->fma = __builtin_cpu_supports("fma");
  /* F16C is CPUID.1:ECX[29]; GCC 12's __builtin_cpu_supports has no name for it */
  c->f16c = __get_cpuid(1, &a, &b, &cx, &d) && c->avx && ((cx >> 29) & 1);
  c->avx512f = __builtin_cpu_supports("avx512f");
  c->avx512bw = __builtin_cpu_supports("avx512bw");
  c->avx512dq = __builtin_cpu_supports("avx512dq");
  c->avx512vl = __builtin_cpu_supports("avx512vl");
  c->avx512bf16 = __builtin_cpu_supports("avx512bf16");
  c->avx512pf = __builtin_cpu_supports("avx512pf");
  c->avx512er = __builtin_cpu_supports("avx512er");
  c->fma4 = __builtin_cpu_supports("fma4");
  c->ssse3 = __builtin_cpu_supports("ssse3");
#endif
}

static void cpu_name(const cpu_desc *c, char *buf, size_t n) {
  if (c->amd) {
    const char *zen = NULL;
    if (c->family == 0x17)
      zen = c->model >= 0x30 ? "Zen 2" : "Zen";
    else if (c->family == 0x19)
      zen = c->avx512f ? "Zen 4" : "Zen 3";
    else if (c->family == 0x1a)
      zen = "Zen 5";
    if (zen)
      snprintf(buf, n, "AMD %s", zen);
    else
      snprintf(buf, n, "AMD family 0x%x model 0x%x", c->family, c->model);
  } else {
    snprintf(buf, n, "%s family %u model 0x%x", c->intel ? "Intel" : "x86", c->family, c->model);
  }
}

static void cpu_features(const cpu_desc *c, char *buf, size_t n) {
  if (c->avx512f)
    snprintf(buf, n, "avx512f%s%s%s%s", c->avx512bw ? "/bw" : "", c->avx512dq ? "/dq" : "",
             c->avx512vl ? "/vl" : "", c->avx512bf16 ? "/bf16" : "");
  else if (c->avx2)
    snprintf(buf, n, "avx2%s%s", c->fma ? "/fma" : "", c->f16c ? "/f16c" : "");
  else if (c->avx)
    snprintf(buf, n, "avx");
  else
    snprintf(buf, n, "no avx");
}

/* ---- BLIS configs: which are compiled in and whether this CPU can run them ---- */

/* Configs compiled into this BLIS (blis.h defines BLIS_CONFIG_<NAME> for each). */
static const unsigned char g_compiled[BLIS_NUM_ARCHS] = {
#ifdef BLIS_CONFIG_SKX
    [BLIS_ARCH_SKX] = 1,
#endif
#ifdef BLIS_CONFIG_KNL
    [BLIS_ARCH_KNL] = 1,
#endif
#ifdef BLIS_CONFIG_HASWELL
    [BLIS_ARCH_HASWELL] = 1,
#endif
#ifdef BLIS_CONFIG_SANDYBRIDGE
    [BLIS_ARCH_SANDYBRIDGE] = 1,
#endif
#ifdef BLIS_CONFIG_PENRYN
    [BLIS_ARCH_PENRYN] = 1,
#endif
#ifdef BLIS_CONFIG_ZEN3
    [BLIS_ARCH_ZEN3] = 1,
#endif
#ifdef BLIS_CONFIG_ZEN2
    [BLIS_ARCH_ZEN2] = 1,
#endif
#ifdef BLIS_CONFIG_ZEN
    [BLIS_ARCH_ZEN] = 1,
#endif
#ifdef BLIS_CONFIG_EXCAVATOR
    [BLIS_ARCH_EXCAVATOR] = 1,
#endif
#ifdef BLIS_CONFIG_STEAMROLLER
    [BLIS_ARCH_STEAMROLLER] = 1,
#endif
#ifdef BLIS_CONFIG_PILEDRIVER
    [BLIS_ARCH_PILEDRIVER] = 1,
#endif
#ifdef BLIS_CONFIG_BULLDOZER
    [BLIS_ARCH_BULLDOZER] = 1,
#endif
    [BLIS_ARCH_GENERIC] = 1,
};

static int arch_compiled(int id) {
  return id >= 0 && id < BLIS_NUM_ARCHS && g_compiled[id];
}

static int arch_runs_here(int id, const cpu_desc *c) {
  switch (id) {
  case BLIS_ARCH_SKX:
    return c->avx512f && c->avx512bw && c->avx512dq && c->avx512vl;
  case BLIS_ARCH_KNL:
    return c->avx512f && c->avx512pf && c->avx512er;
  case BLIS_ARCH_HASWELL:
  case BLIS_ARCH_ZEN3:
  case BLIS_ARCH_ZEN2:
  case BLIS_ARCH_ZEN:
    return c->avx2 && c->fma;
  case BLIS_ARCH_SANDYBRIDGE:
    return c->avx;
  case BLIS_ARCH_PENRYN:
    return c->ssse3;
  case BLIS_ARCH_EXCAVATOR:
  case BLIS_ARCH_STEAMROLLER:
  case BLIS_ARCH_PILEDRIVER:
    return c->fma4 && c->fma;
  case BLIS_ARCH_BULLDOZER:
    return c->fma4;
  case BLIS_ARCH_GENERIC:
    return 1;
  default:
    return 0;
  }
}

static int arch_usable(int id, const cpu_desc *c) {
  return arch_compiled(id) && arch_runs_here(id, c);
}

static int choose_arch(const cpu_desc *c) {
  int want[4], nw = 0;
  if (c->avx512f && c->avx512bw && c->avx512dq && c->avx512vl) want[nw++] = BLIS_ARCH_SKX;
  if (c->avx2 && c->fma) {
    if (c->amd && c->family >= 0x19)
      want[nw++] = BLIS_ARCH_ZEN3;
    else if (c->amd && c->family == 0x17)
      want[nw++] = c->model >= 0x30 ? BLIS_ARCH_ZEN2 : BLIS_ARCH_ZEN;
    want[nw++] = BLIS_ARCH_HASWELL;
  }
  if (c->avx && nw == 0) want[nw++] = BLIS_ARCH_SANDYBRIDGE;
  for (int i = 0; i < nw; i++)
    if (arch_usable(want[i], c)) return want[i];
  return BLIS_ARCH_GENERIC;
}

static void list_usable(const cpu_desc *c, char *buf, size_t n) {
  size_t used = 0;
  buf[0] = '\0';
  for (int id = 0; id < BLIS_NUM_ARCHS && used < n; id++) {
    if (!arch_usable(id, c)) continue;
    int w = snprintf(buf + used, n - used, "%s%s=%d", used ? ", " : "", bli_arch_string((arch_t)id),
                     id);
    if (w < 0) break;
    used += (size_t)w;
  }
}

static pf_status parse_arch(const char *value, const cpu_desc *c, int *arch_id, pf_err *err) {
  char usable[256];
  *arch_id = -1;
  const char *s = value;
  while (isspace((unsigned char)*s))
    s++;
  char *end = NULL;
  long v = strtol(s, &end, 10);
  int is_num = end != s;
  while (is_num && isspace((unsigned char)*end))
    end++;
  if (is_num && *end == '\0') {
    if (v >= 0 && v < BLIS_NUM_ARCHS) *arch_id = (int)v;
  } else {
    for (int id = 0; id < BLIS_NUM_ARCHS; id++)
      if (strcasecmp(s, bli_arch_string((arch_t)id)) == 0) *arch_id = id;
  }
  if (*arch_id >= 0 && arch_usable(*arch_id, c)) return PF_OK;
  list_usable(c, usable, sizeof usable);
  const char *why = *arch_id < 0               ? "unknown arch"
                    : !arch_compiled(*arch_id) ? "config not built into this BLIS"
                                               : "this CPU lacks its instruction set";
  *arch_id = -1;
  return pf_err_set(err, PF_ERR_INVALID,
                    "BLIS_ARCH_TYPE: expected an arch id or name usable here (%s), got '%s' (%s)",
                    usable, value, why);
}

pf_status pf_kernels_parse_arch(const char *value, int *arch_id, pf_err *err) {
  cpu_desc c;
  cpu_query(&c);
  if (!value || !arch_id) {
    if (arch_id) *arch_id = -1;
    return pf_err_set(err, PF_ERR_INVALID, "BLIS_ARCH_TYPE: NULL value");
  }
  return parse_arch(value, &c, arch_id, err);
}

/* ---- init ---- */

static pf_isa isa_from_cpu(const cpu_desc *c) {
#if PF_KERN_HAVE_AVX2
  if (c->avx512f && c->avx512bw && c->avx512vl) return PF_ISA_AVX512;
  return PF_ISA_AVX2; /* the build's baseline (-march=x86-64-v3) */
#else
  (void)c;
  return PF_ISA_SCALAR;
#endif
}

static pf_status choose_and_set_arch(const cpu_desc *c, int *requested, pf_err *err) {
  const char *user = getenv("BLIS_ARCH_TYPE");
  char num[16];
  if (user && *user && strcmp(user, "-1") != 0) {
    pf_status st = parse_arch(user, c, requested, err);
    if (st != PF_OK) return st;
    snprintf(g_info.arch_source, sizeof g_info.arch_source, "BLIS_ARCH_TYPE=%.60s", user);
  } else {
    *requested = choose_arch(c);
    snprintf(g_info.arch_source, sizeof g_info.arch_source, "selected from cpuid: %s, %s",
             g_info.cpu, g_info.features);
  }
  snprintf(num, sizeof num, "%d", *requested);
  if (!user || strcmp(user, num) != 0) {
    if (setenv("BLIS_ARCH_TYPE", num, 1) != 0)
      return pf_err_set(err, PF_ERR_NOMEM, "kernels: setenv(BLIS_ARCH_TYPE=%s) failed", num);
  }
  return PF_OK;
}

static void init_threads(void) {
  pf_cpu_budget b;
  pf_cpu_budget_get(&b);
  const char *omp_user = getenv("OMP_NUM_THREADS");
  const int omp = omp_get_max_threads();
  const int nt_omp = pf_threads_choose(omp, omp_user && *omp_user, &b, g_info.threads_note,
                                       sizeof g_info.threads_note);
  if (nt_omp != omp) omp_set_num_threads(nt_omp);
  g_info.omp_threads = nt_omp;
  g_info.cpus = b.cpus;
  const char *user = getenv("BLIS_NUM_THREADS");
  if (!user || atoi(user) <= 0) bli_thread_set_num_threads(omp_get_max_threads());
  long nt = (long)bli_thread_get_num_threads();
  g_info.threads = nt > 0 ? (int)nt : 1;
}

static void init_once(void) {
  cpu_desc c;
  int requested = -1;
  pf_err_clear(&g_err);
  memset(&g_info, 0, sizeof g_info);
  g_info.blis_arch_id = -1;
  cpu_query(&c);
  cpu_name(&c, g_info.cpu, sizeof g_info.cpu);
  cpu_features(&c, g_info.features, sizeof g_info.features);
  g_isa_max = isa_from_cpu(&c);
  pf_kern_isa_level = g_isa_max;
  g_info.isa = g_isa_max;

  g_status = choose_and_set_arch(&c, &requested, &g_err);
  if (g_status != PF_OK) {
    snprintf(g_describe, sizeof g_describe, "kernels not initialised: %s", g_err.msg);
    return;
  }
  bli_init(); /* reads BLIS_ARCH_TYPE; a no-op if something already initialised BLIS */
  g_info.blis_arch_id = (int)bli_arch_query_id();
  snprintf(g_info.blis_arch, sizeof g_info.blis_arch, "%s",
           bli_arch_string((arch_t)g_info.blis_arch_id));
  snprintf(g_info.blis_version, sizeof g_info.blis_version, "%s", bli_info_get_version_str());
  if (g_info.blis_arch_id != requested) {
    /* BLIS was initialised before us (another caller); report what really runs. */
    char note[96];
    snprintf(note, sizeof note, "; wanted %s but BLIS was already initialised",
             bli_arch_string((arch_t)requested));
    strncat(g_info.arch_source, note, sizeof g_info.arch_source - strlen(g_info.arch_source) - 1);
  }
  init_threads();
  pf_kern_amx = pf_kern_amx_setup();
  pf_kern_dpbf16 = g_isa_max == PF_ISA_AVX512 && c.avx512bf16 && pf_kern_dpbf16_setup();
  const char *mm = getenv("PFRUN_MATMUL");
  if (mm && *mm) {
    g_status = pf_matmul_parse(mm, &g_matmul, &g_err);
    if (g_status != PF_OK) {
      pf_err_set(&g_err, PF_ERR_INVALID, "PFRUN_MATMUL: expected f32 or bf16, got '%.40s'", mm);
      snprintf(g_describe, sizeof g_describe, "kernels not initialised: %s", g_err.msg);
      return;
    }
  }
  snprintf(g_describe, sizeof g_describe, "BLIS %s, arch %s (%s), %d thread%s%s%s%s, gemv %s",
           g_info.blis_version, g_info.blis_arch, g_info.arch_source, g_info.threads,
           g_info.threads == 1 ? "" : "s", g_info.threads_note[0] ? " (" : "", g_info.threads_note,
           g_info.threads_note[0] ? ")" : "", pf_isa_name(pf_kern_isa_level));
}

pf_status pf_kernels_init(pf_err *err) {
  pthread_once(&g_once, init_once);
  if (g_status != PF_OK && err) *err = g_err;
  return g_status;
}

static const char *matmul_words(void);

const char *pf_kernels_describe(void) {
  static char line[sizeof g_describe + 96];
  if (pf_kernels_init(NULL) != PF_OK) return g_describe;
  snprintf(line, sizeof line, "%s, BF16 weights: %s", g_describe, matmul_words());
  return line;
}

/* The BF16-weight part of the describe line. */
static const char *matmul_words(void) {
  if (pf_kern_amx_active()) return "bf16 matmul on AMX";
  if (pf_kern_dpbf16_active()) return "bf16 matmul on AVX512-BF16";
  if (g_matmul == PF_MATMUL_F32)
    return pf_kern_amx      ? "f32 matmul (AMX not used)"
           : pf_kern_dpbf16 ? "f32 matmul (AVX512-BF16 not used)"
                            : "f32 matmul";
  return pf_kern_dpbf16 ? "f32 matmul (AVX512-BF16 off: ISA capped below avx512)"
                        : "f32 matmul (no AMX or AVX512-BF16)";
}

int pf_kern_amx_active(void) {
  return pf_kern_amx && g_matmul == PF_MATMUL_BF16;
}

int pf_kern_dpbf16_active(void) {
  return pf_kern_dpbf16 && !pf_kern_amx && g_matmul == PF_MATMUL_BF16 &&
         pf_kern_isa_level == PF_ISA_AVX512;
}

pf_matmul pf_kernels_set_matmul(pf_matmul want) {
  pthread_once(&g_once, init_once);
  pf_matmul prev = g_matmul;
  g_matmul = want == PF_MATMUL_F32 ? PF_MATMUL_F32 : PF_MATMUL_BF16;
  return prev;
}

pf_matmul pf_kernels_matmul(void) {
  pthread_once(&g_once, init_once);
  return g_matmul;
}

int pf_kernels_have_amx(void) {
  pthread_once(&g_once, init_once);
  return pf_kern_amx;
}

int pf_kernels_have_bf16_matmul(void) {
  pthread_once(&g_once, init_once);
  return pf_kern_amx || (pf_kern_dpbf16 && pf_kern_isa_level == PF_ISA_AVX512);
}

pf_matmul pf_kernels_matmul_effective(void) {
  pthread_once(&g_once, init_once);
  return pf_kern_amx_active() || pf_kern_dpbf16_active() ? PF_MATMUL_BF16 : PF_MATMUL_F32;
}

const char *pf_kernels_matmul_path(void) {
  pthread_once(&g_once, init_once);
  return pf_kern_amx_active() ? "bf16 amx" : pf_kern_dpbf16_active() ? "bf16 avx512-bf16" : "f32";
}

const char *pf_matmul_name(pf_matmul m) {
  return m == PF_MATMUL_F32 ? "f32" : "bf16";
}

pf_status pf_matmul_parse(const char *s, pf_matmul *out, pf_err *err) {
  if (s && strcasecmp(s, "f32") == 0) {
    *out = PF_MATMUL_F32;
    return PF_OK;
  }
  if (s && strcasecmp(s, "bf16") == 0) {
    *out = PF_MATMUL_BF16;
    return PF_OK;
  }
  return pf_err_set(err, PF_ERR_INVALID, "matmul precision: expected f32 or bf16, got '%.40s'",
                    s ? s : "(null)");
}

const pf_kernels_info *pf_kernels_info_get(void) {
  return pf_kernels_init(NULL) == PF_OK ? &g_info : NULL;
}

pf_isa pf_kernels_isa(void) {
  pthread_once(&g_once, init_once);
  return pf_kern_isa_level;
}

pf_isa pf_kernels_set_isa(pf_isa want) {
  pthread_once(&g_once, init_once);
  pf_isa prev = pf_kern_isa_level;
  pf_kern_isa_level = want < g_isa_max ? want : g_isa_max;
  return prev;
}

const char *pf_isa_name(pf_isa isa) {
  switch (isa) {
  case PF_ISA_SCALAR:
    return "scalar";
  case PF_ISA_AVX2:
    return "avx2";
  case PF_ISA_AVX512:
    return "avx512";
  }
  return "?";
}
