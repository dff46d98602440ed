/* forward_stream.c — layer-major passes read the next layer while this one
 * computes (see forward_int.h, "reading ahead").
 *
 * Stream: a helper thread reads layer l + 1's weights with O_DIRECT into the
 * second of two reused buffers while the pass computes layer l from the first.
 * Reading through the page cache instead (mmap, MADV_POPULATE_READ) costs CPU
 * for every page of a model that does not fit (measured on the 13B pass:
 * the compute ran ~1.7x slower while pages were filled; O_DIRECT reads beside
 * the same compute slowed it ~1.15x; bench/README.md). The shadow layer handed
 * to the forward is the model's layer with each tensor read whole pointing into
 * the buffer: the same bytes as the mapping (the file's identity is checked when
 * it is opened), so results do not change. A tensor that is not a range of a
 * mapped checkpoint file (heap, lazy), a file O_DIRECT cannot open, or a read
 * error leaves that tensor (or layer) on the mapping.
 * Stream only when the weights do not fit 3/4 of the memory budget (the page
 * cache could not keep them: every pass reads the disk anyway) and two layers
 * fit a quarter of it.
 * Map: otherwise the thread faults layer l + 1's pages in instead (from the
 * page cache when the model is there).
 * PFRUN_PREFETCH=0 turns both off, =map forces the mapping, =direct the stream
 * whatever the sizes (for measurements and tests).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "forward_int.h"

#define ALIGN 4096
#define CHUNK ((size_t)64 << 20) /* bytes per read call */
#define MAX_FILES 64

typedef struct file_fd {
  const char *path;
  uint64_t dev, ino;
  int fd; /* -1: cannot be read with O_DIRECT */
} file_fd;

typedef struct slot {
  int64_t layer; /* the layer in the buffer, -1 none */
  int ok;        /* read without error */
  char *buf;
  pf_layer shadow;
  pf_tensor t[PF_SLOT_COUNT];
} slot;

struct pf_stream {
  const pf_model *m;
  int direct; /* 1 stream (O_DIRECT), 0 map */
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int64_t want; /* layer to read next, -1 none */
  int stop;
  slot s[2];
  size_t buf_bytes;
  file_fd files[MAX_FILES];
  int n_files;
};

/* The O_DIRECT descriptor for a region's file, or -1. */
static int file_for(pf_stream *st, const pf_file_region *r) {
  for (int i = 0; i < st->n_files; i++)
    if (!strcmp(st->files[i].path, r->path))
      return st->files[i].dev == r->dev && st->files[i].ino == r->ino ? st->files[i].fd : -1;
  if (st->n_files == MAX_FILES) return -1;
  file_fd *f = &st->files[st->n_files++];
  *f = (file_fd){.path = r->path, .dev = r->dev, .ino = r->ino, .fd = -1};
  int fd = open(r->path, O_RDONLY | O_DIRECT | O_CLOEXEC);
  struct stat sb;
  if (fd >= 0 && fstat(fd, &sb) == 0 && (uint64_t)sb.st_dev == r->dev &&
      (uint64_t)sb.st_ino == r->ino)
    f->fd = fd;
  else if (fd >= 0)
    close(fd);
  return f->fd;
}

/* Aligned bytes tensor t takes in a buffer when streamed (0: it stays on the mapping). */
static size_t span_of(pf_stream *st, const pf_tensor *t, pf_file_region *r, int *fd) {
  if (!t || t->nbytes == 0 || !pf_tensor_file_region(t, r)) return 0;
  if ((*fd = file_for(st, r)) < 0) return 0;
  const uint64_t a0 = r->offset & ~(uint64_t)(ALIGN - 1);
  const uint64_t a1 = (r->offset + t->nbytes + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
  return (size_t)(a1 - a0);
}

/* Read [a0, a0 + need) of fd into buf (O_DIRECT: aligned lengths; the file may end
 * inside the last block). */
static int read_span(int fd, char *buf, uint64_t a0, size_t span, size_t need) {
  size_t got = 0;
  while (got < need) {
    const size_t n = span - got < CHUNK ? span - got : CHUNK;
    ssize_t r = pread(fd, buf + got, n, (off_t)(a0 + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;
    got += (size_t)r;
    if ((size_t)r < n && got < need) return 0; /* short read before the bytes needed */
  }
  return 1;
}

static void read_layer(pf_stream *st, slot *sl, int64_t l) {
  const pf_layer *w = &st->m->layers[l];
  sl->shadow = *w;
  sl->ok = 1;
  size_t pos = 0;
  for (int k = 0; k < PF_SLOT_COUNT; k++) {
    pf_file_region r;
    int fd = -1;
    const size_t span = span_of(st, w->slot[k], &r, &fd);
    if (!span) continue;
    const uint64_t a0 = r.offset & ~(uint64_t)(ALIGN - 1);
    if (pos + span > st->buf_bytes ||
        !read_span(fd, sl->buf + pos, a0, span, (size_t)(r.offset - a0) + w->slot[k]->nbytes)) {
      sl->ok = 0; /* the whole layer stays on the mapping */
      return;
    }
    sl->t[k] = *w->slot[k];
    sl->t[k].data = sl->buf + pos + (r.offset - a0);
    sl->t[k].storage = NULL; /* not the mapping's bytes: nothing may release its pages */
    sl->shadow.slot[k] = &sl->t[k];
    pos += span;
  }
}

static void *stream_main(void *arg) {
  pf_stream *st = arg;
  pthread_mutex_lock(&st->mu);
  for (;;) {
    while (st->want < 0 && !st->stop)
      pthread_cond_wait(&st->cv, &st->mu);
    if (st->stop) break;
    const int64_t l = st->want;
    slot *sl = &st->s[l % 2];
    pthread_mutex_unlock(&st->mu);
    if (st->direct)
      read_layer(st, sl, l);
    else
      for (int k = 0; k < PF_SLOT_COUNT; k++)
        pf_tensor_prefetch(st->m->layers[l].slot[k]);
    pthread_mutex_lock(&st->mu);
    sl->layer = l;
    if (st->want == l) st->want = -1;
    pthread_cond_broadcast(&st->cv);
  }
  pthread_mutex_unlock(&st->mu);
  return NULL;
}

/* Everything but the thread: the lock, the descriptors, the buffers, st. */
static void stream_release(pf_stream *st) {
  pthread_mutex_destroy(&st->mu);
  pthread_cond_destroy(&st->cv);
  for (int i = 0; i < st->n_files; i++)
    if (st->files[i].fd >= 0) close(st->files[i].fd);
  free(st->s[0].buf);
  free(st->s[1].buf);
  free(st);
}

void pf_stream_free(pf_stream *st) {
  if (!st) return;
  pthread_mutex_lock(&st->mu);
  st->stop = 1;
  pthread_cond_broadcast(&st->cv);
  pthread_mutex_unlock(&st->mu);
  pthread_join(st->th, NULL);
  stream_release(st);
}

pf_stream *pf_stream_new(const pf_model *m, int64_t n_run, uint64_t budget) {
  const char *env = getenv("PFRUN_PREFETCH");
  if (env && !strcmp(env, "0")) return NULL;
  const int forced = env && !strcmp(env, "direct");
  pf_stream *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->m = m;
  st->want = -1;
  st->s[0].layer = st->s[1].layer = -1;
  /* O_DIRECT reads the disk on every pass: worth it only when the page cache cannot
   * hold the model anyway (the weights exceed 3/4 of the budget, as for AUTO) */
  st->direct = forced || (!(env && !strcmp(env, "map")) &&
                          (!budget || pf_model_weight_bytes(m) > budget / 4 * 3));
  for (int64_t l = 0; st->direct && l < n_run; l++) {
    size_t bytes = 0;
    for (int k = 0; k < PF_SLOT_COUNT; k++) {
      pf_file_region r;
      int fd;
      bytes += span_of(st, m->layers[l].slot[k], &r, &fd);
    }
    if (bytes > st->buf_bytes) st->buf_bytes = bytes;
  }
  void *b0 = NULL, *b1 = NULL;
  if (!forced && budget && 2 * (uint64_t)st->buf_bytes > budget / 4)
    st->buf_bytes = 0; /* two layers would take more than a quarter of the budget: the page
                          cache (which the kernel can take back) holds the read-ahead instead */
  if (st->buf_bytes &&
      (posix_memalign(&b0, ALIGN, st->buf_bytes) || posix_memalign(&b1, ALIGN, st->buf_bytes))) {
    free(b0); /* no room for two layers: fault the pages in instead */
    b0 = NULL;
    st->buf_bytes = 0;
  }
  st->s[0].buf = b0;
  st->s[1].buf = b1;
  st->direct = st->buf_bytes > 0;
  pthread_mutex_init(&st->mu, NULL);
  pthread_cond_init(&st->cv, NULL);
  if (pthread_create(&st->th, NULL, stream_main, st) != 0) {
    stream_release(st);
    return NULL;
  }
  return st;
}

int pf_stream_direct(const pf_stream *st) {
  return st && st->direct;
}

void pf_stream_post(pf_stream *st, int64_t l) {
  if (!st || l < 0 || l >= st->m->n_layers) return;
  pthread_mutex_lock(&st->mu);
  /* the thread reads one layer at a time: wait until it took the previous request */
  while (st->want >= 0 && !st->stop)
    pthread_cond_wait(&st->cv, &st->mu);
  st->s[l % 2].layer = -1;
  st->want = l;
  pthread_cond_broadcast(&st->cv);
  pthread_mutex_unlock(&st->mu);
}

const pf_layer *pf_stream_wait(pf_stream *st, int64_t l) {
  const pf_layer *own = &st->m->layers[l];
  slot *sl = &st->s[l % 2];
  pthread_mutex_lock(&st->mu);
  while (sl->layer != l && st->want == l)
    pthread_cond_wait(&st->cv, &st->mu);
  const int ready = sl->layer == l;
  pthread_mutex_unlock(&st->mu);
  return ready && st->direct && sl->ok ? &sl->shadow : own;
}
