/* bias.h — prompt pairs, OptiPFair's target types and layer selection, and the
 * capture of activations for the bias ops (reference §8, §11).
 *
 * Activations are PF_V_TENSOR values (float32 [S, D], the batch dimension of
 * OptiPFair's [1, S, D] dropped) in a map keyed by OptiPFair's names
 * ("attention_output_layer_3", ...) in hook-firing order: per layer input_norm,
 * attention_output, gate_proj, up_proj, down_proj_input, down_proj, mlp_output.
 * The result formats are in ops/bias_format.md. Internal to ops/.
 */
#ifndef PF_BIAS_H
#define PF_BIAS_H

#include "forward.h"
#include "tokenizer.h"
#include "value.h"

/* ---- prompt pairs (§11) ---- */

typedef struct pf_prompt_pair {
  char *prompt1, *prompt2; /* owned */
} pf_prompt_pair;

typedef struct pf_prompt_pairs {
  pf_prompt_pair *items; /* [n], owned */
  size_t n;
} pf_prompt_pairs;

void pf_prompt_pairs_free(pf_prompt_pairs *p); /* members; NULL ok */

/* DEFAULT_PROMPT_PAIRS: the 7 pairs of §11, exact text. */
pf_status pf_prompt_pairs_default(pf_prompt_pairs *out, pf_err *err);

/* ATTRIBUTES[category] in list order (NULL-terminated, static), or NULL when
 * the category is unknown. Categories: race, gender, religion, nationality,
 * age, socioeconomic. */
const char *const *pf_bias_attributes(const char *category);
/* PROMPT_TEMPLATES[name] (static text) or NULL: simple_subject, profession,
 * patient, neighborhood. */
const char *pf_bias_template(const char *name);

/* generate_prompt_pairs(template, attribute_category, attribute_pairs):
 * "Unknown attribute category: <c>" first; then every pair (attribute_pairs,
 * [n_attr_pairs][2], or when NULL every unordered pair of the category's
 * attributes in itertools.combinations order) formatted with str.format and
 * only `attribute` filled: "{{"/"}}" are literal braces, any other field is
 * Python's KeyError ("KeyError: 'subject'"; "{}"/"{0}" an IndexError). */
pf_status pf_generate_prompt_pairs(const char *template_text, const char *category,
                                   const char *const (*attr_pairs)[2], size_t n_attr_pairs,
                                   pf_prompt_pairs *out, pf_err *err);

/* The prompt_pairs parameter of the bias ops, any of:
 *   "default"                       DEFAULT_PROMPT_PAIRS
 *   [[p1, p2], ...]                 a list of two-string lists
 *   [{prompt1, prompt2}, ...]       a list of maps
 *   "<path>.jsonl"                  one JSON object {"prompt1", "prompt2"} per line
 *                                   (blank lines skipped; errors name file:line)
 *   {template, attribute_category, attribute_pairs?}
 *                                   generate_prompt_pairs; template may also be a
 *                                   PROMPT_TEMPLATES name ("patient")
 * An empty list gives n == 0 (the ops decide whether that is an error). */
pf_status pf_prompt_pairs_from_value(const pf_value *v, pf_prompt_pairs *out, pf_err *err);

/* ---- target types (§8.1) ---- */

typedef enum pf_bias_target {
  PF_BIAS_ATTENTION = 0,   /* attention_output_layer_N */
  PF_BIAS_MLP_OUTPUT,      /* mlp_output_layer_N */
  PF_BIAS_GATE_PROJ,       /* gate_proj_layer_N */
  PF_BIAS_UP_PROJ,         /* up_proj_layer_N */
  PF_BIAS_DOWN_PROJ,       /* down_proj_layer_N */
  PF_BIAS_DOWN_PROJ_INPUT, /* down_proj_input_layer_N (opt-in), width I */
  PF_BIAS_INPUT_NORM,      /* input_norm_layer_N */
  PF_BIAS_TARGET_COUNT
} pf_bias_target;

/* "attention", "mlp_output", ... (the OptiPFair target_layers names). */
const char *pf_bias_target_name(pf_bias_target t);
/* The activation-name prefix: "attention_output", "mlp_output", ... */
const char *pf_bias_target_prefix(pf_bias_target t);
/* Bit (1u << t) per target: every target but down_proj_input (register_hooks' None). */
uint32_t pf_bias_targets_default(void);
/* A target_layers value: null -> *mask = def; a string or a list of strings;
 * anything else PF_ERR_INVALID naming the type. Unknown names:
 * "Invalid target_layers: ['x', 'y']. Valid options are: ['attention',
 * 'down_proj', 'down_proj_input', 'gate_proj', 'input_norm', 'mlp_output',
 * 'up_proj']" (both sorted, Python list repr). *list (may be NULL) receives a
 * list of the names as given, duplicates removed (the default: OptiPFair's
 * registration order). */
pf_status pf_bias_targets_from_value(const pf_value *v, uint32_t def, uint32_t *mask,
                                     pf_value **list, pf_err *err);

/* ---- layer selection (§8.6) ---- */

typedef enum pf_layer_sel_kind {
  PF_SEL_FIRST_MIDDLE_LAST = 0,
  PF_SEL_ALL,
  PF_SEL_LIST,
  PF_SEL_OTHER /* any other value: OptiPFair returns the first name only */
} pf_layer_sel_kind;

typedef struct pf_layer_sel {
  pf_layer_sel_kind kind;
  const int64_t *idx; /* PF_SEL_LIST: [n] positions, as given */
  size_t n;
} pf_layer_sel;

/* select_layers over n sorted names, as positions into them: out receives at
 * most max(3, sel->n, n) positions; returns how many. [] for n == 0; "all" ->
 * 0..n-1; first_middle_last -> 0, n/2, n-1 (all when n < 3); a list keeps
 * 0 <= i < n in the given order, duplicates kept; other -> [0]. */
size_t pf_bias_select_layers(int64_t n, const pf_layer_sel *sel, int64_t *out);

/* The layers parameter: null/"first_middle_last", "all", a list of integers (or
 * one integer, or the text "0,2,5"), any other value PF_SEL_OTHER. *idx is
 * malloc'd for lists. A list item that is not an integer is an error. */
pf_status pf_layer_sel_from_value(const pf_value *v, pf_layer_sel *out, int64_t **idx, pf_err *err);

/* ---- capture (§8.1-8.3) ---- */

/* The captured tensors are views into blocks of heap storage of at least this
 * many bytes (default 32 MiB; tests make it small to cross blocks). */
extern size_t pf_bias_capture_block;
/* Once the captured activations alive in this process (every capture whose
 * results are still held) take this many bytes of heap blocks, further blocks
 * are spill storage (pf_storage_new_spill: page cache, evictable), so that
 * captures larger than memory do not fail. 0 (the default): a quarter of the
 * memory budget (pf_ctx.memory_budget, else MemAvailable). */
extern uint64_t pf_bias_spill_after;
/* Bytes of heap blocks of captured activations alive now. */
uint64_t pf_bias_capture_heap_bytes(void);

/* Tensors in shared blocks of capture memory, as the captures make theirs:
 * heap blocks, and past spill_after (pf_bias_spill_after, else a quarter of
 * the memory budget) spill blocks. pf_bias_blocks_tensor has the shape of
 * pf_dist_tensor_fn (MPI: the other ranks' activations land there too). */
typedef struct pf_bias_blocks {
  struct pf_storage *block; /* the block being filled (one reference), or NULL */
  size_t used;              /* bytes of it handed out */
  uint64_t spill_after;     /* heap blocks alive (all captures) beyond it: spill blocks */
  uint64_t spilled;         /* spill block bytes taken */
} pf_bias_blocks;
void pf_bias_blocks_init(pf_bias_blocks *b, const pf_ctx *ctx);
pf_status pf_bias_blocks_tensor(void *b, int dtype, int ndim, const int64_t *shape, pf_tensor **out,
                                pf_err *err);
void pf_bias_blocks_done(pf_bias_blocks *b);

/* One forward pass of ids[n] (one row, no padding) through f with taps on the
 * targets in `mask` and the layers flagged in layers[n_layers] (NULL = all).
 * *acts receives a new map name -> PF_V_TENSOR float32 [n, width], in
 * hook-firing order. */
pf_status pf_bias_capture(pf_forward *f, const int32_t *ids, size_t n, uint32_t mask,
                          const uint8_t *layers, pf_value **acts, const pf_ctx *ctx, pf_err *err);
/* Several prompts in one forward pass: ids[b][n[b]] as a right-padded batch
 * (padded keys masked; causal attention means a row's real positions never see
 * the padding, so each map equals the prompt's own pf_bias_capture up to float
 * rounding, while the weights are read once). acts[b] receives prompt b's map. */
pf_status pf_bias_capture_batch(pf_forward *f, const int32_t *const *ids, const size_t *n,
                                size_t batch, uint32_t mask, const uint8_t *layers, pf_value **acts,
                                const pf_ctx *ctx, pf_err *err);

/* Many batches in one pass (pf_forward_pass: layer-major when the model does
 * not fit in memory): item i is a pf_bias_capture_batch of its own, and each
 * map is exactly what that call gives. `what` labels the progress. On error
 * every acts[b] is NULL. */
typedef struct pf_bias_item {
  const int32_t *const *ids; /* [batch] prompts */
  const size_t *n;           /* [batch] their lengths */
  size_t batch;
  pf_value **acts;           /* [batch] receive the maps */
} pf_bias_item;
pf_status pf_bias_capture_items(pf_forward *f, const pf_bias_item *items, size_t count,
                                uint32_t mask, const uint8_t *layers, const char *what,
                                const pf_ctx *ctx, pf_err *err);
/* The same with MPI: only this rank's share of the items (pf_dist_range) is
 * captured; the maps of the other items stay empty. */
pf_status pf_bias_capture_share(pf_forward *f, const pf_bias_item *items, size_t count,
                                uint32_t mask, const uint8_t *layers, const char *what,
                                const pf_ctx *ctx, pf_err *err);

/* A capture pass that starts past the embeddings (the layers before `start` were
 * taken from elsewhere) and/or keeps every item's hidden states. */
typedef struct pf_bias_pass {
  int64_t n_layers;     /* the model's layer count */
  int64_t start;        /* the first layer to run (pf_pass.start; 0: from the embeddings) */
  pf_start_fn start_fn; /* the states entering layer `start` of item i (pf_pass.start_fn) */
  void *start_ud;
  pf_tensor *const *states; /* NULL, or [count] float32 tensors [L - 1, batch * S, H] (S the
                               item's longest prompt): slice l receives the states leaving
                               layer l, for start <= l < L - 1 */
} pf_bias_pass;
/* pf_bias_capture_share with such a pass (opt required). Each acts[b] may already hold a map (the
 * entries of the layers before opt->start, in hook-firing order): the captured
 * entries follow them; a NULL acts[b] receives a new map. On error every acts[b]
 * is released and NULL. */
pf_status pf_bias_capture_from(pf_forward *f, const pf_bias_item *items, size_t count,
                               uint32_t mask, const uint8_t *layers, const char *what,
                               const pf_bias_pass *opt, const pf_ctx *ctx, pf_err *err);

/* ---- reuse: the activations of the layers two models share (bias_reuse.c) ----
 * A bias_activations result holds the model it ran on ("source") and, with
 * keep_states, each pair's hidden states leaving every layer but the last
 * ("states", [L - 1, 2 * S, H] for the pair's two-row batch). A step on a model
 * that computes its first layers as that model does (pf_forward_shared_layers: a
 * depth-pruned copy) takes those layers' activations from it and starts its pass
 * after them. */
typedef struct pf_bias_reuse {
  const pf_value *pairs; /* the reused result's pairs (borrowed) */
  int64_t shared;        /* layers the two models compute alike */
  int64_t start;         /* the first layer to run (the model's layer count: none) */
  int states;            /* the pass starts from the result's states */
  int64_t hidden;
} pf_bias_reuse;
/* The reuse value is such a result, with n_pairs pairs and every target in mask. */
pf_status pf_bias_reuse_check(const pf_value *reuse, uint32_t mask, size_t n_pairs, pf_err *err);
/* The start for model m (runner fm) capturing the layers flagged (NULL = all) of
 * items[n] (the pairs, as encoded for this step: they must be the result's ids):
 * the shared layers, moved back to the first one this step captures and the result
 * did not, and to 0 when layers are left to run (or need_states) but the result
 * kept no states. Logs what it takes. */
pf_status pf_bias_reuse_start(const pf_value *reuse, const pf_model *m, const pf_forward *fm,
                              const uint8_t *flags, int need_states, const pf_bias_item *items,
                              size_t n, pf_bias_reuse *out, const pf_ctx *ctx, pf_err *err);
/* items[i].acts[b] <- new maps holding the result's entries of the layers below
 * r->start that mask and flags select (the same tensors, in the result's order);
 * states[i] (when given) <- the result's states of those layers. */
pf_status pf_bias_reuse_fill(const pf_bias_reuse *r, uint32_t mask, const uint8_t *flags,
                             const pf_bias_item *items, size_t n, pf_tensor *const *states,
                             pf_err *err);
/* pf_start_fn over the result's states (user_data: the pf_bias_reuse). */
pf_status pf_bias_reuse_states(void *ud, int64_t index, const pf_batch *b, float *x, pf_err *err);

/* Width D of target t's activation in layer l ([tokens, D]): the layer's MLP
 * width for gate_proj, up_proj and down_proj_input, else hidden_size; 0 for
 * gate_proj / up_proj of a plain (non-GLU) MLP, which has no such tap. */
int64_t pf_bias_target_width(const pf_model *m, int64_t l, pf_bias_target t);

/* What pf_bias_capture would produce for a prompt of n tokens, without running
 * anything (dry runs): planned tensors (shape only, data NULL) in the same
 * order. */
pf_status pf_bias_plan(const pf_model *m, size_t n, uint32_t mask, const uint8_t *layers,
                       pf_value **acts, pf_err *err);

/* Token labels aligned with ids: each id decoded on its own (special tokens
 * kept) with "▁" and "Ġ" removed. A new list of n strings. */
pf_status pf_bias_token_labels(const pf_tokenizer *tok, const int32_t *ids, size_t n,
                               pf_value **out, pf_err *err);

/* The target of an activation name "<prefix>_layer_N" (pf_bias_target_prefix), or -1. */
int pf_bias_key_target(const char *key);

/* The layer number N of "<type>_layer_N" (the text after the last '_', as
 * OptiPFair parses it), or -1 when it is not an integer. */
int64_t pf_bias_key_layer(const char *key);

#endif
