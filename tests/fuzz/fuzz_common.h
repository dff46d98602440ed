/* fuzz_common.h — shared helpers of the libFuzzer harnesses in tests/fuzz/.
 *
 * Every harness works inside one private temporary folder per process
 * (fz_dir(): $PF_FUZZ_TMP, else $TMPDIR, else /dev/shm, else /tmp, then
 * "pfrun-fuzz-XXXXXX"), removed when the process exits normally. Inputs are
 * written there as files because the parsers under test take paths.
 *
 * A harness reports a broken invariant with FZ_CHECK, which prints the
 * condition and aborts: libFuzzer then saves the input as a crash.
 */
#ifndef PF_FUZZ_COMMON_H
#define PF_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FZ_CHECK(cond, ...)                                                                        \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "FUZZ INVARIANT FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond);             \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

/* The private folder of this process (created on first use; aborts if it cannot be). */
const char *fz_dir(void);
/* fz_dir()/name, malloc'd (caller frees). */
char *fz_path(const char *name);
/* Write `n` bytes to fz_dir()/name (replacing it); returns the path (malloc'd). */
char *fz_write(const char *name, const void *data, size_t n);
/* Remove fz_dir()/name (file or folder tree) if present. */
void fz_remove(const char *name);
/* Offset of the first invalid UTF-8 sequence in s[0..n), or SIZE_MAX: an
 * implementation independent of the tokenizer's (RFC 3629 table). */
size_t fz_utf8_invalid_at(const void *s, size_t n);
/* Split data on NUL and '\n' into at most `max` NUL-terminated strings in one
 * malloc'd block; *argv (malloc'd, caller frees both) gets argc + 1 entries. */
int fz_split_args(const uint8_t *data, size_t n, int max, char ***argv, char **block);

struct pf_st_reader;
/* Read every tensor of an opened reader and check the reader's invariants:
 * names sorted and unique, pf_st_has agrees, every view's byte count is numel
 * * dtype size and total_bytes their sum; the first and last byte of each view
 * are read (a view outside the mapping would fault). */
void fz_check_st_reader(const struct pf_st_reader *r);

#endif
