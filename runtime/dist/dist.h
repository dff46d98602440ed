/* dist.h — data parallelism across processes with MPI (optional at build time).
 *
 * The same pfrun binary, started by `mpirun -np N pfrun …` (or Slurm's srun),
 * runs as N ranks. Every rank runs the whole command, recipe or script; the
 * data-parallel ops (calibrate, importance, evaluate's perplexity, bias
 * activations) split their batches by a fixed rule (pf_dist_range: contiguous
 * blocks, rank r takes [r*n/N, (r+1)*n/N)) and combine partial results with
 * the reductions below, which add the ranks' contributions in rank order on
 * rank 0 and send the result to every rank: results do not depend on timing.
 * Only rank 0 writes files (pf_dist_writer) and checks the paths it will
 * write (pf_dist_writer_outcome); the others run the ops that write as dry runs
 * without looking at those paths and wait for rank 0 (pf_dist_barrier), so
 * every rank holds the same values afterwards.
 *
 * Without MPI in the build, or when not started by an MPI launcher (no
 * OMPI_COMM_WORLD_SIZE / PMI_SIZE / PMIX_RANK in the environment), there is one
 * rank and every call below is a no-op.
 */
#ifndef PF_DIST_H
#define PF_DIST_H

#include "pf.h"

/* Start MPI when launched by mpirun/srun (call once, first thing in main; it
 * may consume MPI's own arguments). PF_ERR_IO when MPI fails to start. */
pf_status pf_dist_init(int *argc, char ***argv, pf_err *err);
/* 1 when started by an MPI launcher (its variables are in the environment), whether
 * or not MPI is built in. */
int pf_dist_launched(void);
/* Leave MPI (after the last collective call). */
void pf_dist_finish(void);
/* Stop every rank at once (after this rank printed its error). Returns only
 * when there is one rank. */
void pf_dist_abort(int code);

int pf_dist_rank(void);
int pf_dist_size(void);
/* 1 on the rank that writes outputs (rank 0). */
int pf_dist_writer(void);
/* 1 when compiled with MPI. */
int pf_dist_available(void);

/* This rank's share [lo, hi) of n items. */
void pf_dist_range(int64_t n, int64_t *lo, int64_t *hi);

/* Element-wise sums over ranks, in rank order (rank 0's + rank 1's + ...), the
 * result on every rank. PF_ERR_IO naming the MPI error on failure. */
pf_status pf_dist_sum_f32(float *buf, int64_t n, pf_err *err);
pf_status pf_dist_sum_f64(double *buf, int64_t n, pf_err *err);
pf_status pf_dist_sum_i64(int64_t *buf, int64_t n, pf_err *err);

/* root's len bytes at buf into every other rank's buf, in messages of
 * pf_dist_bcast_chunk() bytes. */
pf_status pf_dist_bcast(void *buf, size_t len, int root, pf_err *err);
size_t pf_dist_bcast_chunk(void);

/* The items of every rank's list `mine`, rank 0's first, as one new list on
 * every rank (values: null, bool, int, number, string, list, map, tensor;
 * not models). Each rank in turn broadcasts its list's structure, then each of
 * its tensors straight from the tensor's memory into one the receivers make
 * with `alloc` (NULL: pf_tensor_new), so nothing is packed into one buffer:
 * no copy of the whole, no size limit. A rank's own items are not copied.
 * One rank: mine's items. */
struct pf_value;
struct pf_tensor;
typedef pf_status (*pf_dist_tensor_fn)(void *ud, int dtype, int ndim, const int64_t *shape,
                                       struct pf_tensor **out, pf_err *err);
pf_status pf_dist_allgather_list(const struct pf_value *mine, pf_dist_tensor_fn alloc, void *ud,
                                 struct pf_value **all, pf_err *err);

/* 1 when v is nonzero on every rank (v itself with one rank). */
int pf_dist_all(int v);

/* Every rank holds the same digest (of its inputs, say): PF_OK, else on every
 * rank the same PF_ERR_INVALID "<what> differ between the ranks: rank 1 has
 * other ... than rank 0" (then pf_dist_error_shared says so). One rank: PF_OK. */
pf_status pf_dist_same(const uint8_t digest[32], const char *what, pf_err *err);
/* Checks that only the writer makes (of the paths it will write; other ranks
 * must not look: rank 0 may already be writing there): rank 0's outcome to every
 * rank. Every rank calls it at the same point with its own st (PF_OK on the
 * ranks that did not check). Rank 0's error becomes every rank's (code and
 * message; pf_dist_error_shared then says so, so that rank 0 alone prints it and
 * all end without stopping each other); when rank 0 found nothing, each rank
 * keeps its own st. One rank: st. */
pf_status pf_dist_writer_outcome(pf_status st, pf_err *err);
/* 1 when msg holds the error pf_dist_same or pf_dist_writer_outcome gave every
 * rank: one rank (0) need print it, and no rank need stop the others (they all
 * stop with it). */
int pf_dist_error_shared(const char *msg);

/* Wait for every rank. */
void pf_dist_barrier(void);
/* Wait until MPI has finished starting (it may start in a helper thread: see
 * dist.c), without talking to the other ranks; before a fork. No-op otherwise. */
void pf_dist_settle(void);

#endif
