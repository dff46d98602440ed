/* dist_value.c — a list of values from every rank, in rank order (dist.h).
 * A value's structure travels as bytes: a tag, then the payload (host order:
 * every rank runs the same binary on the same kind of machine); a tensor's
 * entry there holds its dtype and shape, and its numbers follow in their own
 * broadcasts, straight from and into tensor memory. Models do not travel. */
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "strbuf.h"
#include "tensor.h"
#include "value.h"

static void put(pf_strbuf *b, const void *p, size_t n) {
  pf_sb_put(b, p, n);
}
static void put_u64(pf_strbuf *b, uint64_t v) {
  put(b, &v, sizeof v);
}
static void put_str(pf_strbuf *b, const char *s) {
  uint64_t n = strlen(s);
  put_u64(b, n);
  put(b, s, n);
}

/* The bytes of a value's tensors, in the order pack and unpack meet them: what
 * the root sends from, what the receivers fill. */
typedef struct tensor_bytes {
  void *data;
  size_t nbytes;
} tensor_bytes;
typedef struct tensor_list {
  tensor_bytes *t;
  size_t n, cap;
} tensor_list;

static int tl_push(tensor_list *l, void *data, size_t nbytes) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    tensor_bytes *p = realloc(l->t, cap * sizeof *p);
    if (!p) return -1;
    l->t = p, l->cap = cap;
  }
  l->t[l->n].data = data;
  l->t[l->n++].nbytes = nbytes;
  return 0;
}

static pf_status pack(pf_strbuf *b, const pf_value *v, tensor_list *tl, pf_err *err) {
  uint8_t tag = (uint8_t)v->type;
  put(b, &tag, 1);
  switch (v->type) {
  case PF_V_NULL:
    return PF_OK;
  case PF_V_BOOL:
    put(b, &v->u.b, sizeof v->u.b);
    return PF_OK;
  case PF_V_INT:
    put(b, &v->u.i, sizeof v->u.i);
    return PF_OK;
  case PF_V_NUM:
    put(b, &v->u.n, sizeof v->u.n);
    return PF_OK;
  case PF_V_STR:
    put_str(b, v->u.s);
    return PF_OK;
  case PF_V_LIST:
    put_u64(b, v->u.list.len);
    for (size_t i = 0; i < v->u.list.len; i++)
      if (pack(b, v->u.list.items[i], tl, err)) return err->code;
    return PF_OK;
  case PF_V_MAP:
    put_u64(b, v->u.map.len);
    for (size_t i = 0; i < v->u.map.len; i++) {
      put_str(b, v->u.map.keys[i]);
      if (pack(b, v->u.map.vals[i], tl, err)) return err->code;
    }
    return PF_OK;
  case PF_V_TENSOR: {
    const pf_tensor *t = v->u.tensor;
    const void *data = pf_tensor_data(t, err);
    if (!data) return pf_err_prefix(err, "sending a tensor to the other ranks");
    uint8_t dt = (uint8_t)t->dtype, nd = (uint8_t)t->ndim;
    put(b, &dt, 1);
    put(b, &nd, 1);
    put(b, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    if (tl_push(tl, (void *)data, t->nbytes)) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    return PF_OK;
  }
  default:
    return pf_err_set(err, PF_ERR_UNSUPPORTED, "sending a %s to the other ranks",
                      pf_vtype_name(v->type));
  }
}

typedef struct reader {
  const char *p, *end;
  pf_dist_tensor_fn alloc; /* NULL: pf_tensor_new */
  void *ud;
  tensor_list made; /* the tensors made, in order (the values own them) */
  pf_err *err;      /* the allocator's error, if it failed */
} reader;

static int get(reader *r, void *out, size_t n) {
  if ((size_t)(r->end - r->p) < n) return -1;
  memcpy(out, r->p, n);
  r->p += n;
  return 0;
}

static char *get_str(reader *r) {
  uint64_t n = 0;
  if (get(r, &n, sizeof n) || (uint64_t)(r->end - r->p) < n) return NULL;
  char *s = malloc(n + 1);
  if (!s) return NULL;
  memcpy(s, r->p, n);
  s[n] = '\0';
  r->p += n;
  return s;
}

static pf_value *unpack(reader *r, int depth) {
  uint8_t tag = 0;
  if (depth > 64 || get(r, &tag, 1)) return NULL;
  pf_value *v = NULL;
  uint64_t n = 0;
  switch ((pf_vtype)tag) {
  case PF_V_NULL:
    return pf_value_null();
  case PF_V_BOOL: {
    int b = 0;
    return get(r, &b, sizeof b) ? NULL : pf_value_bool(b);
  }
  case PF_V_INT: {
    int64_t i = 0;
    return get(r, &i, sizeof i) ? NULL : pf_value_int(i);
  }
  case PF_V_NUM: {
    double d = 0;
    return get(r, &d, sizeof d) ? NULL : pf_value_num(d);
  }
  case PF_V_STR: {
    char *s = get_str(r);
    v = s ? pf_value_str(s) : NULL;
    free(s);
    return v;
  }
  case PF_V_LIST:
    if (get(r, &n, sizeof n) || !(v = pf_value_list())) return NULL;
    for (uint64_t i = 0; i < n; i++) {
      pf_value *x = unpack(r, depth + 1);
      if (!x || pf_list_push(v, x) != PF_OK) {
        pf_value_release(v);
        return NULL;
      }
    }
    return v;
  case PF_V_MAP:
    if (get(r, &n, sizeof n) || !(v = pf_value_map())) return NULL;
    for (uint64_t i = 0; i < n; i++) {
      char *k = get_str(r);
      pf_value *x = k ? unpack(r, depth + 1) : NULL;
      if (!x || pf_map_set(v, k, x) != PF_OK) {
        free(k);
        pf_value_release(v);
        return NULL;
      }
      free(k);
    }
    return v;
  case PF_V_TENSOR: {
    uint8_t dt = 0, nd = 0;
    int64_t shape[PF_MAX_DIMS] = {0};
    pf_tensor *t = NULL;
    if (get(r, &dt, 1) || get(r, &nd, 1) || nd > PF_MAX_DIMS || dt > PF_DTYPE_BF16 ||
        get(r, shape, sizeof(int64_t) * nd))
      return NULL;
    pf_status st = r->alloc ? r->alloc(r->ud, dt, nd, shape, &t, r->err)
                            : pf_tensor_new((pf_dtype)dt, nd, shape, &t, r->err);
    if (st != PF_OK) return NULL;
    v = pf_value_tensor(t);
    pf_tensor_release(t);
    if (v && tl_push(&r->made, pf_tensor_mutable_data(t), t->nbytes)) {
      pf_value_release(v);
      return NULL;
    }
    return v;
  }
  default:
    return NULL;
  }
}

/* Rank `root`'s list (mine on root) on every rank: its structure, then each
 * tensor's bytes. On root the result is mine itself (retained). */
static pf_status bcast_list(const pf_value *mine, int root, pf_dist_tensor_fn alloc, void *ud,
                            pf_value **out, pf_err *err) {
  const int me = pf_dist_rank() == root;
  tensor_list tl = {0};
  pf_strbuf b = {0};
  pf_status st = me ? pack(&b, mine, &tl, err) : PF_OK;
  if (!st && b.oom) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  /* a root that cannot send says so in the length, so that every rank stops here; a
   * receiver that fails later returns its error, and the front end stops every rank
   * (pf_dist_abort) */
  uint64_t len = st ? UINT64_MAX : (uint64_t)b.len;
  pf_status bst = pf_dist_bcast(&len, sizeof len, root, err);
  if (!st) st = bst;
  if (!st && len == UINT64_MAX)
    st = pf_err_set(err, PF_ERR_IO, "rank %d could not send its values", root);
  char *bytes = pf_sb_take(&b);
  if (!st && !me && !(bytes = malloc(len ? len : 1)))
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory for rank %d's values", root);
  if (!st) st = pf_dist_bcast(bytes, len, root, err);
  pf_value *v = NULL;
  reader rd = {.p = bytes, .end = bytes + (st ? 0 : len), .alloc = alloc, .ud = ud, .err = err};
  if (!st && me) {
    v = (pf_value *)mine;
    pf_value_retain(v);
  } else if (!st) {
    pf_err_clear(err);
    v = unpack(&rd, 0);
    if (!v || v->type != PF_V_LIST || rd.p != rd.end)
      st = err->code
               ? err->code
               : pf_err_set(err, PF_ERR_IO, "the values received from rank %d are malformed", root);
  }
  free(bytes);
  const tensor_list *ts = me ? &tl : &rd.made;
  for (size_t i = 0; !st && i < ts->n; i++)
    st = pf_dist_bcast(ts->t[i].data, ts->t[i].nbytes, root, err);
  free(tl.t);
  free(rd.made.t);
  if (st) {
    pf_value_release(v);
    return st;
  }
  *out = v;
  return PF_OK;
}

pf_status pf_dist_allgather_list(const pf_value *mine, pf_dist_tensor_fn alloc, void *ud,
                                 pf_value **all, pf_err *err) {
  *all = NULL;
  pf_value *out = pf_value_list();
  pf_status st = out ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (int r = 0; !st && r < pf_dist_size(); r++) {
    pf_value *l = NULL;
    st = bcast_list(mine, r, alloc, ud, &l, err);
    for (size_t i = 0; !st && i < l->u.list.len; i++) {
      pf_value_retain(l->u.list.items[i]);
      if (pf_list_push(out, l->u.list.items[i]) != PF_OK)
        st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    }
    pf_value_release(l);
  }
  if (st) {
    pf_value_release(out);
    return st;
  }
  *all = out;
  return PF_OK;
}
