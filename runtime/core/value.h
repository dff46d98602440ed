/* value.h — pf_value: the data that flows between front ends and ops.
 *
 * A small ref-counted tagged tree: null, bool, int, number, string, list, map
 * (insertion-ordered string keys), model and tensor (a retained pf_tensor,
 * e.g. float32 activations [S, D] of bias_activations). Op parameters arrive as a map;
 * op results are a map. Lua tables, YAML nodes and CLI options all convert to
 * and from this one type, and results.json is its JSON form.
 *
 * Ownership: constructors return a new reference (refcount 1), or NULL when
 * allocation fails. Containers take ownership of the values added to them
 * (pf_map_set / pf_list_push "steal" the reference). Getters return borrowed
 * pointers valid while the container lives.
 */
#ifndef PF_VALUE_H
#define PF_VALUE_H

#include "model.h"

struct cJSON;

typedef enum pf_vtype {
  PF_V_NULL,
  PF_V_BOOL,
  PF_V_INT,
  PF_V_NUM,
  PF_V_STR,
  PF_V_LIST,
  PF_V_MAP,
  PF_V_MODEL,
  PF_V_TENSOR
} pf_vtype;

typedef struct pf_value pf_value;
struct pf_value {
  int refcount;
  pf_vtype type;
  union {
    int b;
    int64_t i;
    double n;
    char *s;
    struct {
      pf_value **items;
      size_t len, cap;
    } list;
    struct {
      char **keys;
      pf_value **vals;
      size_t len, cap;
    } map;
    pf_model *model;   /* owned reference */
    pf_tensor *tensor; /* owned reference (PF_V_TENSOR) */
  } u;
};

pf_value *pf_value_null(void);
pf_value *pf_value_bool(int b);
pf_value *pf_value_int(int64_t i);
pf_value *pf_value_num(double n);
pf_value *pf_value_str(const char *s); /* copies s */
pf_value *pf_value_list(void);
pf_value *pf_value_map(void);
pf_value *pf_value_model(pf_model *m); /* retains m */
/* A tensor value; retains t (NULL t gives NULL). Copies share the tensor; the
 * JSON form is the summary {"tensor": [shape...], "dtype": "float32"}, never
 * the numbers. */
pf_value *pf_value_tensor(pf_tensor *t);
void pf_value_retain(pf_value *v);
void pf_value_release(pf_value *v); /* NULL ok */
const char *pf_vtype_name(pf_vtype t);

/* List: steals `item`. Returns PF_ERR_NOMEM (and releases item) on failure. */
pf_status pf_list_push(pf_value *list, pf_value *item);
/* Map: steals `val`; replaces an existing key in place (keeping order). */
pf_status pf_map_set(pf_value *map, const char *key, pf_value *val);
pf_value *pf_map_get(const pf_value *map, const char *key); /* borrowed or NULL */
int pf_map_del(pf_value *map, const char *key); /* 1 if removed */

/* Convenience getters on a map; return the fallback when absent or null. */
int64_t pf_map_int(const pf_value *map, const char *key, int64_t fallback);
double pf_map_num(const pf_value *map, const char *key, double fallback); /* int or num */
const char *pf_map_str(const pf_value *map, const char *key, const char *fallback);
int pf_map_bool(const pf_value *map, const char *key, int fallback);
pf_model *pf_map_model(const pf_value *map, const char *key); /* borrowed or NULL */
pf_tensor *pf_map_tensor(const pf_value *map, const char *key); /* borrowed or NULL */
/* 1 if the key is present and not null. */
int pf_map_has(const pf_value *map, const char *key);
/* 1 if the value at key is an int (not a float, even a whole one): 300 and 300.0 apart. */
int pf_map_is_int(const pf_value *map, const char *key);

/* Deep copy (models are shared, retained). */
pf_value *pf_value_copy(const pf_value *v);
/* The same copy with every tensor replaced by its summary map (its JSON form,
 * {"tensor": [shape...], "dtype": ...}): the numbers are not kept, so a result
 * no longer needed lets its tensors go while its JSON stays the same. */
pf_value *pf_value_hollow(const pf_value *v);
/* 1 if v holds a tensor anywhere. */
int pf_value_has_tensor(const pf_value *v);
/* JSON form. Models become {"model": name, "num_hidden_layers": L, "parameters": N, ...}.
 * Non-finite numbers become null. */
struct cJSON *pf_value_to_json(const pf_value *v);
/* From JSON (numbers without fraction/exponent that fit int64 become ints). */
pf_value *pf_value_from_json(const struct cJSON *j);
/* Pretty JSON text, malloc'd. */
char *pf_value_to_json_text(const pf_value *v);

/* ---- additions ---- */
/* Convenience setters: pf_map_set with a freshly built scalar. */
pf_status pf_map_set_int(pf_value *map, const char *key, int64_t i);
pf_status pf_map_set_num(pf_value *map, const char *key, double n);
pf_status pf_map_set_str(pf_value *map, const char *key, const char *s);
pf_status pf_map_set_bool(pf_value *map, const char *key, int b);
/* The map a model is shown as in JSON: {"model": name, "num_hidden_layers",
 * "parameters", "dtype", "hidden_size", "intermediate_size"}. NULL on NOMEM. */
pf_value *pf_value_model_summary(const pf_model *m);
/* Python repr() of a float ("25.0", "0.1", "1e-05", "inf", "nan") into out[n]. */
void pf_format_pyfloat(double d, char *out, size_t n);
/* JSON text as Python's json.dumps(v, indent=indent, ensure_ascii=ensure_ascii)
 * writes it (separators ", " / ": ", floats in repr form), except that
 * non-finite numbers become null. indent 2 without ensure_ascii is
 * pf_value_to_json_text. malloc'd, NULL on NOMEM. */
char *pf_value_to_json_text_indent(const pf_value *v, int indent, int ensure_ascii);

#endif
