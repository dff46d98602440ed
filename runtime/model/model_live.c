/* model_live.c — the models alive in this process, so that a save can refuse to
 * replace a folder another model still reads its weights from (a recipe that loads a
 * checkpoint, then saves another model over it with overwrite, would otherwise go
 * on reading the new files through the old model's paths). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "model.h"

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pf_model *live_head;

pf_model *pf_model_alloc(void) {
  pf_model *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->refcount = 1;
  pthread_mutex_lock(&live_lock);
  m->live_next = live_head;
  if (live_head) live_head->live_prev = m;
  live_head = m;
  pthread_mutex_unlock(&live_lock);
  return m;
}

void pf_model_unlink(pf_model *m) {
  pthread_mutex_lock(&live_lock);
  if (m->live_prev) m->live_prev->live_next = m->live_next;
  if (m->live_next) m->live_next->live_prev = m->live_prev;
  if (live_head == m) live_head = m->live_next;
  m->live_prev = m->live_next = NULL;
  pthread_mutex_unlock(&live_lock);
}

char *pf_model_dir_in_use(const char *dir, const pf_model *except) {
  char *found = NULL;
  pthread_mutex_lock(&live_lock);
  for (pf_model *m = live_head; m && !found; m = m->live_next)
    if (m != except && m->source_dir &&
        (pf_path_inside(dir, m->source_dir) || pf_path_inside(m->source_dir, dir)))
      found = strdup(m->source_dir);
  pthread_mutex_unlock(&live_lock);
  return found;
}
