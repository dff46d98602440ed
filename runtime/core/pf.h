/* pf.h — the public overview header of libpf (the pfrun engine).
 *
 * Conventions (see ../README.md "Architecture" and house style):
 *  - Every fallible function returns pf_status and fills the pf_err passed last
 *    (which may be NULL when the caller does not want the message).
 *  - Library code never prints or exits. Messages name the object, what was
 *    expected and what was found: "x.safetensors: tensor 'a.weight': expected
 *    12 bytes for F32 [3], got 8".
 *  - Every constructor has one destructor that accepts NULL. On failure the
 *    out-parameters are set to NULL and nothing leaks.
 *  - Shapes are in PyTorch order ([out, in] for a linear weight).
 */
#ifndef PF_H
#define PF_H

#include <stddef.h>
#include <stdint.h>

#define PF_VERSION "0.1.0"

typedef enum pf_status {
  PF_OK = 0,
  PF_ERR_INVALID = 1, /* bad argument / parameter / value */
  PF_ERR_IO = 2,      /* file system error */
  PF_ERR_FORMAT = 3,  /* malformed file (safetensors, json, yaml) */
  PF_ERR_NOMEM = 4,   /* allocation failure */
  PF_ERR_UNSUPPORTED = 5,
  PF_ERR_NOT_FOUND = 6,
  PF_ERR_INTERRUPTED = 7
} pf_status;

#define PF_ERR_MSG_MAX 1024

typedef struct pf_err {
  pf_status code;
  char msg[PF_ERR_MSG_MAX];
} pf_err;

/* Set err (if non-NULL) to code + printf-style message; returns code. */
pf_status pf_err_set(pf_err *err, pf_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix the existing message with printf-style context + ": ". Returns err->code. */
pf_status pf_err_prefix(pf_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reset to PF_OK / empty message. */
void pf_err_clear(pf_err *err);
/* Short name of a status ("invalid argument", ...). */
const char *pf_status_name(pf_status s);

/* Progress reporting: library code calls this, the front end draws it.
 * `what` names the task ("save", "score"), done/total in arbitrary units.
 * done == total means the task finished. */
typedef void (*pf_progress_fn)(void *user_data, const char *what, uint64_t done, uint64_t total);
/* Log line (info level) from library code; the front end decides whether to print. */
typedef void (*pf_log_fn)(void *user_data, const char *line);

/* Order of a data-parallel pass over many batches (runtime/forward/forward.h,
 * pf_forward_pass): batch-major runs each batch through every layer (the
 * weights are read once per batch: fine while they stay in the page cache);
 * layer-major runs every batch through layer i before layer i+1 (each weight
 * is read once per pass; the hidden states of all batches are kept). AUTO
 * picks layer-major when the model does not fit in the memory budget. */
typedef enum pf_pass_order { PF_PASS_AUTO = 0, PF_PASS_BATCH, PF_PASS_LAYER } pf_pass_order;

/* The run context passed to every op. Owned by the caller (front end). */
typedef struct pf_ctx {
  pf_progress_fn progress; /* may be NULL */
  pf_log_fn log;           /* may be NULL */
  void *user_data;
  int dry_run;             /* plan only: never read or write weight bytes */
  int follower;            /* MPI, ranks other than 0 planning an op that writes: the paths
                              are rank 0's to check (it may be writing there already) */
  volatile int *interrupt; /* may be NULL; non-zero means stop at the next safe point */
  pf_pass_order pass_order; /* data-parallel passes: AUTO (0), or forced */
  uint64_t memory_budget;   /* bytes the passes may assume; 0 = MemAvailable */
  uint64_t memory_cap;      /* working memory the process may hold (--max-memory); 0 = none */
} pf_ctx;

void pf_ctx_progress(const pf_ctx *ctx, const char *what, uint64_t done, uint64_t total);
void pf_ctx_log(const pf_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The memory budget: ctx->memory_budget, else MemAvailable of /proc/meminfo (0 when
 * unknown). Whether the weights fit in memory (the page cache) is judged on it. */
uint64_t pf_ctx_budget(const pf_ctx *ctx);
/* The budget for what pfrun itself holds (hidden states, captured activations,
 * products of many tokens): the budget, lowered to the working-memory cap
 * (memory_cap) when one is set, since mapped weights do not count in the cap. */
uint64_t pf_ctx_work_budget(const pf_ctx *ctx);
/* PF_ERR_INTERRUPTED (with message) if ctx->interrupt is set, else PF_OK. */
pf_status pf_ctx_check_interrupt(const pf_ctx *ctx, pf_err *err);

#endif
