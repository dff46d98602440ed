/* hash.c — SHA-256 from FIPS 180-4 (sections 4.1.2, 4.2.2, 5.1.1, 5.3.3, 6.2).
 *
 * Plain C, one block at a time: hashing is never on a hot path in pfrun (cache
 * keys, checkpoint identity), so clarity beats speed here. Words are read and
 * written big-endian byte by byte, which is independent of the host's order. */
#include "hash.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"

/* §4.2.2: the first 32 bits of the fractional parts of the cube roots of the
 * first 64 primes. */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

/* §4.1.2 functions; ROTR^n(x) = (x >> n) | (x << (32 - n)), 0 < n < 32. */
static uint32_t rotr(uint32_t x, unsigned n) {
  return (x >> n) | (x << (32 - n));
}
static uint32_t ch(uint32_t x, uint32_t y, uint32_t z) {
  return (x & y) ^ (~x & z);
}
static uint32_t maj(uint32_t x, uint32_t y, uint32_t z) {
  return (x & y) ^ (x & z) ^ (y & z);
}
static uint32_t big_sigma0(uint32_t x) {
  return rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22);
}
static uint32_t big_sigma1(uint32_t x) {
  return rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25);
}
static uint32_t small_sigma0(uint32_t x) {
  return rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3);
}
static uint32_t small_sigma1(uint32_t x) {
  return rotr(x, 17) ^ rotr(x, 19) ^ (x >> 10);
}

/* §6.2.2: process one 512-bit block M(i). */
static void compress(uint32_t h[8], const uint8_t m[64]) {
  uint32_t w[64];
  for (int t = 0; t < 16; t++)
    w[t] = (uint32_t)m[4 * t] << 24 | (uint32_t)m[4 * t + 1] << 16 | (uint32_t)m[4 * t + 2] << 8 |
           (uint32_t)m[4 * t + 3];
  for (int t = 16; t < 64; t++)
    w[t] = small_sigma1(w[t - 2]) + w[t - 7] + small_sigma0(w[t - 15]) + w[t - 16];
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int t = 0; t < 64; t++) {
    uint32_t t1 = hh + big_sigma1(e) + ch(e, f, g) + K[t] + w[t];
    uint32_t t2 = big_sigma0(a) + maj(a, b, c);
    hh = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

void pf_sha256_init(pf_sha256 *s) {
  /* §5.3.3: the fractional parts of the square roots of the first 8 primes. */
  static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, H0, sizeof H0);
  s->bytes = 0;
  s->fill = 0;
}

void pf_sha256_update(pf_sha256 *s, const void *data, size_t len) {
  const uint8_t *p = data;
  if (len == 0) return; /* data may be NULL then; memcpy must not see it */
  s->bytes += len;
  if (s->fill) {
    size_t take = 64 - s->fill < len ? 64 - s->fill : len;
    memcpy(s->block + s->fill, p, take);
    s->fill += take, p += take, len -= take;
    if (s->fill < 64) return;
    compress(s->h, s->block);
    s->fill = 0;
  }
  for (; len >= 64; p += 64, len -= 64)
    compress(s->h, p);
  if (len) memcpy(s->block, p, len);
  s->fill = len;
}

void pf_sha256_final(pf_sha256 *s, uint8_t out[PF_SHA256_BYTES]) {
  /* §5.1.1: append bit 1, zeros up to 448 mod 512 bits, then the length in
   * bits as a 64-bit big-endian integer. */
  uint64_t bits = s->bytes * 8;
  s->block[s->fill++] = 0x80;
  if (s->fill > 56) {
    memset(s->block + s->fill, 0, 64 - s->fill);
    compress(s->h, s->block);
    s->fill = 0;
  }
  memset(s->block + s->fill, 0, 56 - s->fill);
  for (int i = 0; i < 8; i++)
    s->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
  compress(s->h, s->block);
  for (int i = 0; i < 8; i++)
    for (int j = 0; j < 4; j++)
      out[4 * i + j] = (uint8_t)(s->h[i] >> (24 - 8 * j));
  memset(s->block, 0, sizeof s->block);
  s->fill = 0;
}

void pf_sha256_to_hex(const uint8_t d[PF_SHA256_BYTES], char hex[PF_SHA256_HEX]) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < PF_SHA256_BYTES; i++) {
    hex[2 * i] = digits[d[i] >> 4];
    hex[2 * i + 1] = digits[d[i] & 15];
  }
  hex[2 * PF_SHA256_BYTES] = '\0';
}

void pf_sha256_final_hex(pf_sha256 *s, char hex[PF_SHA256_HEX]) {
  uint8_t d[PF_SHA256_BYTES];
  pf_sha256_final(s, d);
  pf_sha256_to_hex(d, hex);
}

void pf_sha256_hex(const void *data, size_t len, char hex[PF_SHA256_HEX]) {
  pf_sha256 s;
  pf_sha256_init(&s);
  pf_sha256_update(&s, data, len);
  pf_sha256_final_hex(&s, hex);
}

/* ---- files ---- */

#define CHUNK ((size_t)1 << 20)

/* Stream the rest of f into s; *n gets the byte count. */
static pf_status hash_stream(pf_sha256 *s, FILE *f, const char *path, uint8_t *buf, uint64_t *n,
                             pf_err *err) {
  size_t r;
  *n = 0;
  while ((r = fread(buf, 1, CHUNK, f)) > 0) {
    pf_sha256_update(s, buf, r);
    *n += r;
  }
  if (ferror(f)) return pf_err_set(err, PF_ERR_IO, "%s: read error", path);
  return PF_OK;
}

pf_status pf_sha256_file(const char *path, char hex[PF_SHA256_HEX], pf_err *err) {
  FILE *f = NULL;
  uint8_t *buf = NULL;
  uint64_t n = 0;
  pf_sha256 s;
  pf_status st;
  hex[0] = '\0';
  if ((st = pf_fopen_input(path, &f, NULL, err))) return st;
  if (!(buf = malloc(CHUNK))) {
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    goto done;
  }
  pf_sha256_init(&s);
  if ((st = hash_stream(&s, f, path, buf, &n, err))) goto done;
  pf_sha256_final_hex(&s, hex);
done:
  free(buf);
  fclose(f);
  return st;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the regular files directly in dir, sorted (malloc'd array of malloc'd strings). */
static pf_status list_files(const char *dir, char ***out, size_t *count, pf_err *err) {
  DIR *d = opendir(dir);
  char **names = NULL, *path = NULL;
  size_t n = 0, cap = 0;
  pf_status st = PF_OK;
  *out = NULL;
  *count = 0;
  if (!d)
    return pf_err_set(err, errno == ENOENT ? PF_ERR_NOT_FOUND : PF_ERR_IO, "%s: %s", dir,
                      strerror(errno));
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    struct stat sb;
    size_t need = strlen(dir) + strlen(e->d_name) + 2;
    if (!(path = malloc(need))) goto nomem;
    snprintf(path, need, "%s/%s", dir, e->d_name);
    int regular = stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
    free(path);
    path = NULL;
    if (!regular) continue;
    if (n == cap) {
      char **grown = realloc(names, (cap = cap ? 2 * cap : 16) * sizeof *names);
      if (!grown) goto nomem;
      names = grown;
    }
    if (!(names[n] = strdup(e->d_name))) goto nomem;
    n++;
  }
  closedir(d);
  qsort(names, n, sizeof *names, cmp_names);
  *out = names;
  *count = n;
  return PF_OK;
nomem:
  st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  closedir(d);
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return st;
}

pf_status pf_sha256_dir_files(const char *dir, char hex[PF_SHA256_HEX], pf_err *err) {
  char **names = NULL, *path = NULL;
  size_t n = 0;
  uint8_t *buf = NULL;
  FILE *f = NULL;
  pf_sha256 s;
  pf_status st;
  hex[0] = '\0';
  if ((st = list_files(dir, &names, &n, err))) return st;
  if (!(buf = malloc(CHUNK))) {
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    goto done;
  }
  pf_sha256_init(&s);
  for (size_t i = 0; i < n; i++) {
    uint64_t size = 0, got = 0;
    uint8_t le[8];
    size_t need = strlen(dir) + strlen(names[i]) + 2;
    if (!(path = malloc(need))) {
      st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
      goto done;
    }
    snprintf(path, need, "%s/%s", dir, names[i]);
    if ((st = pf_fopen_input(path, &f, &size, err))) goto done;
    pf_sha256_update(&s, names[i], strlen(names[i]) + 1); /* with its NUL */
    for (int b = 0; b < 8; b++)
      le[b] = (uint8_t)(size >> (8 * b));
    pf_sha256_update(&s, le, sizeof le);
    if ((st = hash_stream(&s, f, path, buf, &got, err))) goto done;
    if (got != size) {
      st = pf_err_set(err, PF_ERR_IO, "%s: expected %llu bytes, read %llu (file changed?)", path,
                      (unsigned long long)size, (unsigned long long)got);
      goto done;
    }
    fclose(f);
    f = NULL;
    free(path);
    path = NULL;
  }
  pf_sha256_final_hex(&s, hex);
done:
  if (f) fclose(f);
  free(path);
  free(buf);
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return st;
}
