/* modelutil.h — what the model suites (check_model.c, check_model_save.c) share:
 * loading with an assertion, tensor listings, folder and byte comparisons.
 * Header-only (static inline): each suite is its own executable. */
#ifndef PF_TEST_MODELUTIL_H
#define PF_TEST_MODELUTIL_H

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "model.h"
#include "testutil.h"

static inline pf_model *load_ok(const char *dir) {
  pf_model *m = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_model_load(dir, &m, &err) == PF_OK, "load %s: %s", dir, err.msg);
  return m;
}

static inline void rm_parent(char *dir) {
  char *slash = strrchr(dir, '/');
  *slash = '\0';
  pf_test_rmtree(dir);
  free(dir);
}

typedef struct names {
  char n[512][128];
  const pf_tensor *t[512];
  int count, stop_at;
} names;

static inline int collect(void *ud, const char *name, const pf_tensor *t) {
  names *l = ud;
  ck_assert_int_lt(l->count, 512);
  snprintf(l->n[l->count], 128, "%s", name);
  l->t[l->count++] = t;
  return l->count == l->stop_at ? 42 : 0;
}

static inline names *list_tensors(const pf_model *m) {
  names *l = calloc(1, sizeof *l);
  ck_assert_int_eq(pf_model_foreach_tensor(m, collect, l), 0);
  return l;
}

static inline int count_prefixed(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
  closedir(d);
  return n;
}

static inline void assert_same_bytes(const pf_model *a, const pf_model *b) {
  names *x = list_tensors(a), *y = list_tensors(b);
  ck_assert_int_eq(x->count, y->count);
  for (int i = 0; i < x->count; i++) {
    ck_assert_str_eq(x->n[i], y->n[i]);
    ck_assert_int_eq(x->t[i]->dtype, y->t[i]->dtype);
    ck_assert_uint_eq(x->t[i]->nbytes, y->t[i]->nbytes);
    ck_assert_msg(memcmp(x->t[i]->data, y->t[i]->data, x->t[i]->nbytes) == 0, "%s differs",
                  x->n[i]);
  }
  free(x);
  free(y);
}

static inline void assert_same_file(const char *d1, const char *d2, const char *file) {
  char *p1 = pf_path_join(d1, file), *p2 = pf_path_join(d2, file);
  size_t l1, l2;
  char *a = pf_test_read(p1, &l1), *b = pf_test_read(p2, &l2);
  ck_assert_msg(a && b, "%s missing", file);
  ck_assert_uint_eq(l1, l2);
  ck_assert_int_eq(memcmp(a, b, l1), 0);
  free(a);
  free(b);
  free(p1);
  free(p2);
}

static inline cJSON *read_config(const char *dir) {
  char *p = pf_path_join(dir, "config.json");
  char *s = pf_test_read(p, NULL);
  ck_assert_ptr_nonnull(s);
  cJSON *j = cJSON_Parse(s);
  ck_assert_ptr_nonnull(j);
  free(s);
  free(p);
  return j;
}

/* ---- loading ---- */

/* Layer 1 narrowed to 100 neurons (rows of gate/up, columns of down). */
static inline pf_model *narrow_layer1(const pf_model *m) {
  pf_model *d = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_model_derive(m, &d, &err), PF_OK);
  int64_t idx[100];
  for (int i = 0; i < 100; i++)
    idx[i] = i * 176 / 100;
  pf_tensor *g, *u, *w;
  ck_assert_int_eq(pf_tensor_select_rows(m->layers[1].gate_proj, idx, 100, &g, &err), PF_OK);
  ck_assert_int_eq(pf_tensor_select_rows(m->layers[1].up_proj, idx, 100, &u, &err), PF_OK);
  ck_assert_int_eq(pf_tensor_select_cols(m->layers[1].down_proj, idx, 100, &w, &err), PF_OK);
  ck_assert_int_eq(pf_model_set_tensor(d, "model.layers.1.mlp.gate_proj.weight", g, &err), PF_OK);
  ck_assert_int_eq(pf_model_set_tensor(d, "model.layers.1.mlp.up_proj.weight", u, &err), PF_OK);
  ck_assert_int_eq(pf_model_set_tensor(d, "model.layers.1.mlp.down_proj.weight", w, &err), PF_OK);
  return d;
}

#endif
