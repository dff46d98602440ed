/* hash.h — SHA-256 (FIPS 180-4) through GNU Nettle (Debian nettle-dev): its
 * run-time dispatch uses the CPU's SHA extensions (SHA-NI) where there are any.
 *
 * Used for cache keys (dataset fingerprints) and checkpoint identity. The
 * streaming interface hashes arbitrarily large inputs in constant memory:
 *
 *   pf_sha256 s;
 *   pf_sha256_init(&s);
 *   pf_sha256_update(&s, buf, n);        // any number of times, any sizes
 *   uint8_t d[PF_SHA256_BYTES];
 *   pf_sha256_final(&s, d);              // s is spent; init again to reuse
 *
 * Hex digests are 64 lowercase hex digits + NUL (PF_SHA256_HEX bytes).
 * No global state; a pf_sha256 is a plain value owned by the caller.
 */
#ifndef PF_HASH_H
#define PF_HASH_H

#include <stddef.h>
#include <stdint.h>

#include <nettle/sha2.h>

#include "pf.h"

#define PF_SHA256_BYTES 32
#define PF_SHA256_HEX 65 /* 64 hex digits + NUL */

typedef struct pf_sha256 {
  struct sha256_ctx ctx; /* Nettle's state: a plain value, no allocation */
} pf_sha256;

void pf_sha256_init(pf_sha256 *s);
/* len may be 0 (data may then be NULL). */
void pf_sha256_update(pf_sha256 *s, const void *data, size_t len);
/* Pad, process the last block(s), write the 32-byte digest. */
void pf_sha256_final(pf_sha256 *s, uint8_t out[PF_SHA256_BYTES]);
/* pf_sha256_final + lowercase hex. */
void pf_sha256_final_hex(pf_sha256 *s, char hex[PF_SHA256_HEX]);
/* Lowercase hex of a 32-byte digest. */
void pf_sha256_to_hex(const uint8_t digest[PF_SHA256_BYTES], char hex[PF_SHA256_HEX]);
/* One-shot hex digest of a buffer. */
void pf_sha256_hex(const void *data, size_t len, char hex[PF_SHA256_HEX]);

/* Hex digest of a file's contents, read in chunks (any size).
 * Errors: PF_ERR_NOT_FOUND (no such file), PF_ERR_IO (unreadable, a folder,
 * read error), naming the path. On failure hex is the empty string. */
pf_status pf_sha256_file(const char *path, char hex[PF_SHA256_HEX], pf_err *err);

/* Hex digest of a checkpoint folder: the regular files directly inside `dir`
 * (symlinks followed; sub-folders and other entries ignored), in byte order
 * of their names, each contributing
 *   name bytes, one 0 byte, the content length as 8 bytes little-endian, the content
 * so that renaming, moving bytes between files or adding an empty file all
 * change the digest. Contents are streamed (large shards are fine).
 * Errors: PF_ERR_NOT_FOUND / PF_ERR_IO naming the folder or the file. */
pf_status pf_sha256_dir_files(const char *dir, char hex[PF_SHA256_HEX], pf_err *err);
/* The same, stopping with PF_ERR_INTERRUPTED (pf_ctx_check_interrupt) within a MiB read
 * once ctx's interrupt is set (ctx may be NULL). */
pf_status pf_sha256_dir_files_ctx(const char *dir, char hex[PF_SHA256_HEX], const pf_ctx *ctx,
                                  pf_err *err);

#endif
