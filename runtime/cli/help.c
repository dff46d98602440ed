/* help.c — help texts. Keep them true: every option listed here is parsed in cli.c. */
#include "help.h"

#include <stdio.h>
#include <string.h>

#include "tokenize.h"

static const char TOP[] =
    "pfrun — prune and analyse decoder language models (LLaMA, Mistral, Qwen, Gemma, Phi-3,\n"
    "GPT-2, GPT-NeoX families; an OptiPFair-compatible runner).\n"
    "\n"
    "usage:\n"
    "  pfrun RECIPE.yaml [--set KEY=VALUE]... [--dry-run] [--quiet]\n"
    "  pfrun [--quiet] SCRIPT.lua [ARGS...]\n"
    "  pfrun prune --model-path DIR --output-path DIR [options]   (pfrun prune --help)\n"
    "  pfrun analyze --model-path DIR [--json]\n"
    "  pfrun importance --model-path DIR --data FILE [data options] [--json FILE]\n"
    "  pfrun eval --model-path DIR [--compare DIR2] [--data FILE ...] [--prompt TEXT]\n"
    "  pfrun generate --model-path DIR --prompt TEXT [--max-new-tokens N]\n"
    "  pfrun bench --model-path DIR --tasks arc_easy,piqa [--data-dir DIR] [--limit N]\n"
    "              [--compare DIR2] [--log-samples] [--json FILE]\n"
    "  pfrun bias --model-path DIR [--prompt-pairs FILE|default] [--layers SPEC]\n"
    "             [--visualizations mean_diff,heatmap,pca] [--format png|svg|pdf]\n"
    "             [--output-dir DIR] [--json FILE]\n"
    "  pfrun ops [NAME]            list the ops (or one op's parameters)\n"
    "  pfrun tokenize --model-path DIR (TEXT | --input FILE.jsonl) [--no-special]   token ids\n"
    "  pfrun help TOPIC            TOPIC: prune, analyze, importance, eval, generate, bench,\n"
    "                              bias, tokenize, ops, recipe, lua\n"
    "  pfrun --version\n"
    "\n"
    "Models are Hugging Face folders (config.json + safetensors) or built-in synthetic\n"
    "models, written to the cache on first use (a dry run only plans them):\n"
    "synthetic:NAME[@SEED][:DTYPE], e.g. synthetic:llama-tiny@7:bf16, NAME one of\n"
    "llama-tiny, llama-small, qwen2-tiny, qwen3-tiny, mistral-tiny, gemma-tiny,\n"
    "gemma2-tiny, gemma3-tiny, phi3-tiny, gpt2-tiny, neox-tiny, llama-medium (300 MB\n"
    "F32), llama-1b (2.5 GB BF16), llama-7b (13.5 GB BF16), llama-13b (26 GB BF16).\n"
    "Progress bars are drawn on stderr when it is a terminal.\n"
    "\n"
    "--max-memory SIZE (any command, before a Lua script's name; or PFRUN_MAX_MEMORY)\n"
    "caps working memory, e.g. 4GB: past it pfrun stops with an out-of-memory error\n"
    "instead of being killed. Mapped weights do not count. The cap also bounds what\n"
    "the passes below hold (hidden states, captured activations, grouped products).\n"
    "\n"
    "--pass-order auto|batch|layer and --memory-budget SIZE (same places; or\n"
    "PFRUN_PASS_ORDER / PFRUN_MEMORY_BUDGET): how calibration, importance, perplexity\n"
    "and bias activations run their batches. batch: each batch through every layer;\n"
    "layer: every batch through layer i before layer i+1, so each weight is read once\n"
    "(models larger than RAM), the hidden states kept in RAM or, past a quarter of\n"
    "the budget, in a scratch file ($PFRUN_SCRATCH, $TMPDIR or /var/tmp). auto\n"
    "(default): layer when the weights exceed 3/4 of the budget (default: the\n"
    "MemAvailable of /proc/meminfo). Same results either way; an info line says which.\n"
    "Layer-major reads layer i+1 while layer i runs: when the weights do not fit, with\n"
    "O_DIRECT into two layer-sized buffers (if they fit a quarter of the budget), else\n"
    "through the page cache (PFRUN_PREFETCH=direct|map forces one, =0 reads on demand).\n"
    "The activations bias_activations keeps go, past a quarter of the budget, into\n"
    "spill files in the same folder (page cache the kernel can write out and drop).\n"
    "\n"
    "mpirun -np N pfrun ... (or srun): the same command, recipe or Lua script on N ranks;\n"
    "those passes split their batches across the ranks, rank 0 alone prints and writes\n"
    "files, an error on any rank stops all. `pfrun --version` says whether MPI is built in.\n"
    "\n"
    "PFRUN_MATMUL=f32|bf16 (environment): how BF16 checkpoints multiply many rows at once\n"
    "(prefill, calibration, importance, perplexity, bias). bf16 (default): activations\n"
    "rounded to BF16 and multiplied on AMX, or with AVX512-BF16 where AMX is missing,\n"
    "as PyTorch computes a BF16 model; f32: weights widened to float32 (slower, more\n"
    "exact). CPUs with neither always use f32. `pfrun --version` says which is in use.\n"
    "\n"
    "PFRUN_PLOT_JOBS=N (environment): worker processes drawing charts (bias, plot op);\n"
    "default the OpenMP thread count, 1 = one after the other in the pfrun process.\n"
    "PFRUN_PLOT_TIMEOUT=S (environment): seconds one chart may take in a worker (default\n"
    "600, 0 = no limit); a chart still being drawn then is an error naming it.\n"
    "\n"
    "Threads: OMP_NUM_THREADS, else one per CPU of the affinity mask, capped at the\n"
    "cgroup CPU quota (a container's --cpus, a CPU limit) unless OMP_NUM_THREADS is set;\n"
    "more threads than CPUs make the matrix products slow (a warning says so).\n"
    "`pfrun --version` gives the count and why.\n";

static const char PRUNE[] =
    "usage: pfrun prune --model-path DIR --output-path DIR [options]\n"
    "\n"
    "Prune MLP neurons (MLP_GLU) or whole layers (DEPTH) as OptiPFair does, the\n"
    "neurons of a plain non-GLU MLP (MLP: gpt2, gpt_neox), or whole attention heads\n"
    "(ATTENTION), and save a Hugging Face checkpoint (written to a temporary folder,\n"
    "verified, then renamed). MLP takes every option MLP_GLU takes, with the same rules.\n"
    "ATTENTION removes units (a key/value head with its query heads under GQA, else one\n"
    "head) scored by their o_proj column-block norms (x mean head output norm with\n"
    "--calibration-data); every layer keeps the same number of heads (pfrun refuses\n"
    "per-layer head counts). gpt2 / gpt_neox results load in pfrun only: transformers\n"
    "derives their head size from hidden_size / heads.\n"
    "\n"
    "  --model-path DIR              input checkpoint folder or synthetic:NAME (required)\n"
    "  --output-path DIR             output folder; must not exist or be empty (required)\n"
    "  --pruning-type MLP_GLU|MLP|DEPTH|ATTENTION  default MLP_GLU; MLP = plain MLP without\n"
    "                                gate (fc_in row + bias + fc_out column per neuron)\n"
    "  --method MAW|VOW|PON|L2       neuron importance (MLP_GLU, MLP), default MAW\n"
    "  --pruning-percentage P        MLP_GLU/MLP: % of neurons per layer (default 10);\n"
    "                                DEPTH: % of layers to remove; ATTENTION: % of units\n"
    "                                per layer (int(P/100*units) removed, >= 1 kept)\n"
    "  --num-kv-heads-to-keep N      ATTENTION: key/value heads (units) kept per layer\n"
    "  --head-indices \"0,3\"          ATTENTION: units removed from every layer\n"
    "  --expansion-rate R            MLP_GLU/MLP: target intermediate/hidden in % (e.g. 140)\n"
    "  --expansion-divisor 32|64|128|256  round widths down to a multiple (MLP_GLU, MLP)\n"
    "  --layer-indices \"0,2,5\"       MLP_GLU/MLP: layers to prune; DEPTH: layers to remove;\n"
    "                                ATTENTION: refused unless it names every layer\n"
    "  --num-layers-to-remove N      DEPTH only\n"
    "  --layer-selection-method last|first|custom   DEPTH only, default last\n"
    "  --dtype auto|float32|float16|bfloat16   dtype of the saved weights (auto = as stored);\n"
    "                                width / head pruning rank the weights rounded to it\n"
    "  --device auto|cpu             accepted for OptiPFair compatibility (pfrun runs on CPU)\n"
    "  --max-shard-size SIZE         e.g. 5GB (default), 500MB\n"
    "  --overwrite                   replace an existing output folder\n"
    "  --stats-json FILE             write the statistics as JSON\n"
    "  --calibration-data FILE       data-driven pruning: run this text (.jsonl/.txt) through\n"
    "                                the model first; MLP_GLU and MLP use hybrid MAW scores\n"
    "                                (method MAW only), DEPTH removes the least important\n"
    "                                layers (not with --layer-indices or\n"
    "                                --layer-selection-method), ATTENTION scores heads by\n"
    "                                their output norms\n"
    "  --calibration-samples N       first N usable samples (default: all)\n"
    "  --max-length N                tokens per sample (default 512)\n"
    "  --min-length N                skip shorter samples (default 0)\n"
    "  --batch-size N                samples per forward pass (default 8)\n"
    "  --text-field NAME             JSONL field with the text (default text)\n"
    "  --pack                        concatenate samples into max-length blocks\n"
    "  --calibration-cache DIR       reuse calibration results keyed by model, data, options\n"
    "  --reconstruct                 training-free recovery: refit each pruned layer's\n"
    "                                down_proj (MLP_GLU/MLP) or o_proj (ATTENTION) by least\n"
    "                                squares on the calibration text (needs\n"
    "                                --calibration-data; see README \"Recovery\")\n"
    "  --reconstruct-damping X       its damping lambda (default 0.01, x mean diag C[K,K])\n"
    "  --dry-run                     print the plan (shapes, parameters, config diff,\n"
    "                                the save's peak memory; not the calibration pass's)\n"
    "                                without reading or writing weights\n"
    "  --max-memory SIZE             cap working memory, e.g. 4GB (mapped weights not counted)\n"
    "  --pass-order auto|batch|layer\n"
    "                                batch- or layer-major passes (see pfrun --help)\n"
    "  --memory-budget SIZE          memory the auto pass order assumes (default MemAvailable)\n"
    "  --quiet / --verbose           no progress, info lines or summary (warnings stay) /\n"
    "                                the default\n";

static const char ANALYZE[] =
    "usage: pfrun analyze --model-path DIR [--json] [--quiet]\n"
    "\n"
    "Print the architecture, the parameter distribution of layer 0 and estimated\n"
    "reductions for 10-50% MLP neuron pruning (a GLU MLP: gate, up and down, 3*H per\n"
    "neuron, where OptiPFair counts 2*H; a plain MLP: 2*H+1). --json prints the same as\n"
    "JSON.\n"
    "--device auto|cpu is accepted for OptiPFair compatibility.\n";

#define COMMON_HELP                                                                                \
  "  --dry-run                     check the model and inputs; compute and write nothing\n"        \
  "  --verbose                     progress and info lines (the default)\n"                        \
  "  -h, --help                    this text\n"

#define DATA_HELP                                                                                  \
  "  --data FILE                   .jsonl (field --text-field, default text) or .txt\n"            \
  "  --samples N                   first N usable samples (default: all)\n"                        \
  "  --max-length N                tokens per sample, longer ones truncated (default 512)\n"       \
  "  --min-length N                skip samples with fewer tokens (default 0)\n"                   \
  "  --batch-size N                samples per forward pass\n"                                     \
  "  --text-field NAME             JSONL field holding the text\n"                                 \
  "  --pack                        concatenate samples and cut into max-length blocks\n"

static const char IMPORTANCE[] =
    "usage: pfrun importance --model-path DIR --data FILE [data options] [--json FILE]\n"
    "\n"
    "Layer importance as OptiPFair's analyze_layer_importance: 1 - cosine similarity of\n"
    "each layer's input and output per sample (padding excluded), averaged per batch\n"
    "and over batches. --json writes {\"0\": score, ...}.\n\n" DATA_HELP
    "  --json FILE                   write the scores as JSON\n"
    "  --quiet                       no table, no progress\n" COMMON_HELP;

static const char EVAL[] =
    "usage: pfrun eval --model-path DIR [--compare DIR2] [--data FILE [data options]]\n"
    "                  [--prompt TEXT [--max-new-tokens N] [--num-runs N] [--warmup-runs N]]\n"
    "                  [--json FILE]\n"
    "\n"
    "Perplexity on --data (exp of the mean next-token negative log-likelihood over the\n"
    "real tokens); with --compare also the parent's perplexity, the mean KL divergence\n"
    "KL(parent || model) and the top-1 agreement. --prompt measures greedy generation\n"
    "speed as OptiPFair's time_inference / compare_models_inference (defaults: 100 new\n"
    "tokens, 5 runs after 2 warm-ups). --json writes every figure (a perplexity key per\n"
    "model).\n\n" DATA_HELP "  --prompt TEXT                 prompt for the speed measurement\n"
    "  --max-new-tokens N            tokens per timed run (default 100)\n"
    "  --num-runs N / --warmup-runs N\n"
    "  --compare DIR                 the parent model\n"
    "  --json FILE                   write the results as JSON\n"
    "  --quiet                       no table, no progress (the results: --json "
    "FILE)\n" COMMON_HELP;

static const char GENERATE[] =
    "usage: pfrun generate --model-path DIR --prompt TEXT [--max-new-tokens N]\n"
    "\n"
    "Greedy generation with a KV cache; prints the prompt and its continuation, and\n"
    "the decode speed on stderr (unless --quiet). Stops at the end-of-sequence token.\n\n"
    "  --quiet                       no speed line\n" COMMON_HELP;

static const char BENCH[] =
    "usage: pfrun bench --model-path DIR --tasks T1,T2 [--data-dir DIR] [--limit N]\n"
    "                   [--task-dir DIR] [--bos default|always|never] [--max-length N]\n"
    "                   [--no-context-cache] [--batch-size N] [--bootstrap-iters N]\n"
    "                   [--compare DIR2] [--log-samples] [--json FILE]\n"
    "\n"
    "Zero-shot accuracy scored as lm-evaluation-harness scores a Hugging Face causal LM:\n"
    "each choice's continuation log-likelihood summed, acc (argmax), acc_norm (divided by\n"
    "the choice's length in characters), LAMBADA's greedy acc and perplexity, and the\n"
    "harness's standard errors. A task is NAME (its data is DIR/NAME.jsonl) or a path to a\n"
    "JSONL file; its definition (which fields form context, choices and gold, the\n"
    "delimiter, the metrics) is NAME.yaml in --task-dir, beside the data, or built in for\n"
    "arc_easy, arc_challenge, boolq, copa, hellaswag, lambada_openai, openbookqa, piqa,\n"
    "winogrande (data format: ../shared/data/bench/README.md).\n"
    "\n"
    "  --tasks LIST             comma-separated task names or .jsonl paths (required)\n"
    "  --data-dir DIR           folder of NAME.jsonl files (default $PFRUN_BENCH_DATA)\n"
    "  --limit N                the first N documents of each task (default all)\n"
    "  --bos MODE               default: BOS as the tokenizer adds it (lm-eval >= 0.4.9.2);\n"
    "                           never: no special tokens (lm-eval 0.4.0 - 0.4.9.1);\n"
    "                           always: the tokenizer's BOS even when it adds none\n"
    "  --max-length N           tokens the model reads (default max_position_embeddings);\n"
    "                           longer requests lose their leftmost context tokens\n"
    "  --no-context-cache       run every request on its own in batched passes instead of\n"
    "                           computing each context once (the default, with a KV cache)\n"
    "  --batch-size N           requests per batch without the cache (default 8)\n"
    "  --bootstrap-iters N      resamples of LAMBADA's perplexity stderr (default 100000);\n"
    "                           0: no stderr for any metric (null), as lm-eval's N/A\n"
    "  --compare DIR            a parent model: its scores, the differences with their\n"
    "                           stderr, and the agreement of the predictions\n"
    "  --log-samples            per-document log-likelihoods and predictions in the JSON\n"
    "  --json FILE              write the results as JSON\n"
    "  --quiet                  no table, no progress (the results: --json FILE)\n" COMMON_HELP;

static const char BIAS[] =
    "usage: pfrun bias --model-path DIR [--prompt-pairs FILE|default] [--layers SPEC]\n"
    "                  [--visualizations mean_diff,heatmap,pca] [--format png|svg|pdf]\n"
    "                  [--output-dir DIR] [--json FILE]\n"
    "\n"
    "How the model's internal activations differ between prompts that differ only in a\n"
    "demographic word (OptiPFair's visualize_bias). --prompt-pairs: 'default' (OptiPFair's 7\n"
    "pairs) or a .jsonl file of {\"prompt1\": ..., \"prompt2\": ...} lines. --layers:\n"
    "first_middle_last (default), all, or positions like '0,2'. Writes the charts and\n"
    "bias_metrics.json (OptiPFair's structure) to --output-dir; --json FILE writes the\n"
    "metrics too. --visualizations: default all three with --output-dir, none without\n"
    "(the metrics are printed); '' draws nothing. The charts are drawn by forked\n"
    "worker processes, one per OpenMP thread; PFRUN_PLOT_JOBS=N sets how many (1 = in\n"
    "the pfrun process). --quiet: no table, no progress (the metrics: --json FILE or\n"
    "bias_metrics.json).\n\n" COMMON_HELP;

static const char OPS[] = "usage: pfrun ops [NAME]\n"
                          "\n"
                          "List every op of the op table with its summary, or one op's parameters\n"
                          "(type, default, choices, range, help). Recipes, Lua scripts and the\n"
                          "subcommands all run ops through this one table.\n";

static const char RECIPE[] =
    "usage: pfrun RECIPE.yaml [--set KEY=VALUE]... [--dry-run] [--quiet]\n"
    "\n"
    "A recipe is a YAML mapping:\n"
    "  pfrun: 1\n"
    "  name: demo\n"
    "  vars: { model: synthetic:llama-tiny, output_dir: runs/demo }\n"
    "  steps:\n"
    "    - id: base\n"
    "      op: load\n"
    "      path: ${model}\n"
    "    - id: pruned\n"
    "      op: prune_width\n"
    "      model: base\n"
    "      pruning_percentage: 20\n"
    "    - op: save\n"
    "      model: pruned\n"
    "      path: ${output_dir}/pruned\n"
    "--set overrides vars (a KEY the recipe neither declares nor uses is an error);\n"
    "its VALUE is a YAML scalar (20 a number, '\"20\"' a string); an empty VALUE is an\n"
    "error (an empty string is --set 'KEY=\"\"').\n"
    "results go to <output_dir>/results.json.\n"
    "--dry-run validates every step and prints the plan without touching weights.\n";

static const char LUA[] =
    "usage: pfrun [--quiet] SCRIPT.lua [ARGS...]\n"
    "\n"
    "Runs a Lua 5.4 script with the module `pf`: one function per op taking one table,\n"
    "e.g. local m <close> = pf.load{ path = arg[1] or \"synthetic:llama-tiny\" }\n"
    "     local p, stats = pf.prune_width{ model = m, pruning_percentage = 20 }\n"
    "Models are closed by <close>, garbage collection, or m:close().\n"
    "--quiet before the script's name: no info lines or progress (options after the\n"
    "name are the script's, in arg).\n";

const char *pf_help_text(const char *topic) {
  if (!topic) return TOP;
  if (!strcmp(topic, "prune")) return PRUNE;
  if (!strcmp(topic, "analyze")) return ANALYZE;
  if (!strcmp(topic, "ops")) return OPS;
  if (!strcmp(topic, "recipe")) return RECIPE;
  if (!strcmp(topic, "lua")) return LUA;
  if (!strcmp(topic, "importance")) return IMPORTANCE;
  if (!strcmp(topic, "eval")) return EVAL;
  if (!strcmp(topic, "generate")) return GENERATE;
  if (!strcmp(topic, "bias")) return BIAS;
  if (!strcmp(topic, "bench")) return BENCH;
  if (!strcmp(topic, "tokenize")) return pf_tokenize_help();
  return NULL;
}

/* Edit distance (insert, delete, substitute) of two short strings; 99 past 63. */
static int edit_distance(const char *a, size_t na, const char *b, size_t nb) {
  if (na > 63 || nb > 63) return 99;
  int row[64];
  for (size_t j = 0; j <= nb; j++)
    row[j] = (int)j;
  for (size_t i = 1; i <= na; i++) {
    int diag = row[0];
    row[0] = (int)i;
    for (size_t j = 1; j <= nb; j++) {
      const int up = row[j], sub = diag + (a[i - 1] != b[j - 1]);
      int best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
      row[j] = sub < best ? sub : best;
      diag = up;
    }
  }
  return row[nb];
}

/* Whether a (n bytes) contains b (m bytes). */
static int has_part(const char *a, size_t n, const char *b, size_t m) {
  for (size_t i = 0; m && i + m <= n; i++)
    if (!memcmp(a + i, b, m)) return 1;
  return 0;
}

void pf_help_suggest(const char *topic, const char *bad, char *out, size_t n) {
  static const char GLOBAL[] =
      " --max-memory --memory-budget --pass-order --quiet --verbose --help";
  if (n) out[0] = 0;
  const char *text = topic ? pf_help_text(topic) : NULL;
  if (!text || !bad || strncmp(bad, "--", 2) != 0 || n == 0) return;
  const size_t nbad = strcspn(bad, "=");
  struct {
    const char *s;
    size_t len;
    int d;
  } best[3];
  int nbest = 0;
  for (int pass = 0; pass < 2; pass++)
    for (const char *p = pass ? GLOBAL : text; (p = strstr(p, "--")) != NULL;) {
      const char *o = p;
      p += 2;
      if (o > text && o[-1] != ' ' && o[-1] != '[' && o[-1] != '(' && o[-1] != '\n') continue;
      while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')
        p++;
      const size_t len = (size_t)(p - o);
      if (len < 4 || (len == nbad && !memcmp(o, bad, len))) continue;
      int dup = 0;
      for (int k = 0; k < nbest; k++)
        dup |= best[k].len == len && !memcmp(best[k].s, o, len);
      if (dup) continue;
      int d = edit_distance(bad, nbad, o, len);
      /* a typo, or one name inside the other ("--calibration-samples" / "--samples") */
      const int close = d <= 1 + (int)len / 4 ||
                        (len >= 6 && has_part(bad, nbad, o + 2, len - 2)) ||
                        (nbad >= 6 && has_part(o, len, bad + 2, nbad - 2));
      if (!close) continue;
      int at = nbest < 3 ? nbest++ : 3;
      while (at > 0 && best[at - 1].d > d) {
        if (at < 3) best[at] = best[at - 1];
        at--;
      }
      if (at < 3) best[at].s = o, best[at].len = len, best[at].d = d;
    }
  if (nbest == 1) {
    snprintf(out, n, " Did you mean %.*s?", (int)best[0].len, best[0].s);
    return;
  }
  size_t used = 0;
  for (int k = 0; k < nbest && used < n; k++)
    used += (size_t)snprintf(out + used, n - used, "%s%.*s%s",
                             k ? ", " : " (Possible options: ", (int)best[k].len, best[k].s,
                             k == nbest - 1 ? ")" : "");
}
