/* check_tokenizer_features.c — runtime/tokenizer: the features the Gemma, Phi-3,
 * GPT-NeoX, OLMo-2 and o200k (GPT-4o / Phi-4-mini) tokenizer.json files need, on
 * tiny self-made files (no ../shared needed):
 *  - added tokens: the trie against a naive leftmost-longest search; HF's id
 *    assignment; many tokens matched in the raw text, longest first; rstrip/lstrip;
 *    an id outside the model vocabulary; normalized tokens matched after NFC;
 *  - a bare Replace normalizer, Split on a String with MergedWithPrevious;
 *  - Split Removed + invert with the OLMo-2 and o200k regexes;
 *  - vocabulary ids with gaps; a TemplateProcessing without special tokens;
 *  - older files: ByteLevel without use_regex, BPE without byte_fallback /
 *    ignore_merges.
 * Expected ids and pieces: every one was checked against the Hugging Face library
 * (`tokenizers` through its node binding, the one the vectors in ../shared come
 * from) on the same JSON; the comments say why each is what it is.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "testutil.h"
#include "tkutil.h"
#include "tokenizer.h"
#include "tokenizer_internal.h"

/* ---- helpers ---- */

/* The tests' JSON is written with ' for " (and \u0027 for an apostrophe); "@RE@"
 * stands for `re`, JSON-escaped. Written to root/tokenizer.json and loaded. */
static pf_tokenizer *load_q(const char *root, const char *json_q, const char *re) {
  size_t n = strlen(json_q) + (re ? 2 * strlen(re) : 0) + 1, o = 0;
  char *j = malloc(n);
  for (const char *p = json_q; *p; p++) {
    if (re && !strncmp(p, "@RE@", 4)) {
      for (const char *r = re; *r; r++) {
        if (*r == '\\' || *r == '"') j[o++] = '\\';
        j[o++] = *r;
      }
      p += 3;
    } else
      j[o++] = *p == '\'' ? '"' : *p;
  }
  j[o] = 0;
  char *path = pf_path_join(root, "tokenizer.json");
  pf_test_write(path, j);
  pf_err err = {0};
  pf_tokenizer *tok = NULL;
  ck_assert_msg(pf_tokenizer_load(root, &tok, &err) == PF_OK, "load: %s\n%s", err.msg, j);
  free(path);
  free(j);
  return tok;
}

static void expect_ids(pf_tokenizer *tok, const char *text, int add, const int32_t *want,
                       size_t nw) {
  pf_err err = {0};
  int32_t *got = NULL;
  size_t ng = 0;
  ck_assert_msg(pf_tokenizer_encode(tok, text, strlen(text), add, &got, &ng, &err) == PF_OK,
                "encode: %s", err.msg);
  int same = ng == nw;
  for (size_t i = 0; same && i < nw; i++)
    same = got[i] == want[i];
  char g[256] = "", w[256] = "";
  for (size_t i = 0, o = 0; i < ng && o < 200; i++)
    o += (size_t)snprintf(g + o, sizeof g - o, " %d", got[i]);
  for (size_t i = 0, o = 0; i < nw && o < 200; i++)
    o += (size_t)snprintf(w + o, sizeof w - o, " %d", want[i]);
  ck_assert_msg(same, "\"%s\" (add_special=%d): expected%s, got%s", text, add, w, g);
  free(got);
}

/* Both with and without special tokens: `pre` is what the template puts first (-1: none). */
#define EXPECT(tok, text, pre, ...)                                                                \
  do {                                                                                             \
    const int32_t w_[] = {pre, __VA_ARGS__};                                                       \
    size_t n_ = sizeof w_ / sizeof w_[0];                                                          \
    expect_ids(tok, text, 0, w_ + 1, n_ - 1);                                                      \
    if (pre >= 0)                                                                                  \
      expect_ids(tok, text, 1, w_, n_);                                                            \
    else                                                                                           \
      expect_ids(tok, text, 1, w_ + 1, n_ - 1);                                                    \
  } while (0)

static void expect_decode(pf_tokenizer *tok, const int32_t *ids, size_t n, int skip,
                          const char *want) {
  pf_err err = {0};
  char *s = NULL;
  ck_assert_msg(pf_tokenizer_decode(tok, ids, n, skip, &s, NULL, &err) == PF_OK, "decode: %s",
                err.msg);
  ck_assert_str_eq(s, want);
  free(s);
}

/* ---- the added-token trie against a naive search ---- */

static uint32_t lcg(uint32_t *s) {
  *s = *s * 1664525u + 1013904223u;
  return *s >> 8;
}

/* Leftmost-longest, first in array order among equal strings, raw tokens only. */
static long naive_find(const pf_tk_added *a, size_t na, const char *s, size_t n, size_t from,
                       size_t *at, size_t *len) {
  for (size_t i = from; i < n; i++) {
    long best = -1;
    for (size_t k = 0; k < na; k++) {
      size_t l = a[k].match_len;
      if (a[k].normalized || !l || l > n - i || memcmp(s + i, a[k].match, l)) continue;
      if (best < 0 || l > a[best].match_len) best = (long)k;
    }
    if (best >= 0) {
      *at = i;
      *len = a[best].match_len;
      return best;
    }
  }
  return -1;
}

START_TEST(test_trie_random) {
  static const char ALPHA[] = "ab<>\n";
  uint32_t seed = 12345;
  for (int round = 0; round < 40; round++) {
    size_t na = 1 + lcg(&seed) % 60;
    pf_tk_added *a = calloc(na, sizeof *a);
    for (size_t k = 0; k < na; k++) {
      size_t l = lcg(&seed) % 7;   /* 0: an empty string, which never matches */
      a[k].content = calloc(8, 1); /* room for any string of 0..6 bytes (copies too) */
      for (size_t c = 0; c < l; c++)
        a[k].content[c] = ALPHA[lcg(&seed) % 5];
      if (k > 0 && lcg(&seed) % 8 == 0) strcpy(a[k].content, a[lcg(&seed) % k].content);
      a[k].len = a[k].match_len = strlen(a[k].content);
      a[k].match = a[k].content;
      a[k].normalized = lcg(&seed) % 6 == 0; /* not in the raw trie */
    }
    pf_tk_trie *t = NULL;
    pf_err err = {0};
    ck_assert_int_eq(pf_tk_trie_build(a, na, 0, &t, &err), PF_OK);
    for (int q = 0; q < 30; q++) {
      char s[64];
      size_t n = lcg(&seed) % sizeof s;
      for (size_t c = 0; c < n; c++)
        s[c] = ALPHA[lcg(&seed) % 5];
      for (size_t from = 0; from <= n; from++) {
        size_t at1 = 0, at2 = 0, l1 = 0, l2 = 0;
        long k1 = pf_tk_trie_find(t, s, n, from, &at1, &l1);
        long k2 = naive_find(a, na, s, n, from, &at2, &l2);
        ck_assert_msg(k1 == k2 && (k1 < 0 || (at1 == at2 && l1 == l2)),
                      "round %d: \"%.*s\" from %zu: trie %ld at %zu+%zu, naive %ld at %zu+%zu",
                      round, (int)n, s, from, k1, at1, l1, k2, at2, l2);
      }
    }
    pf_tk_trie_free(t);
    pf_tk_added_free(a, na);
  }
}
END_TEST

/* ---- Gemma: bare Replace, Split(" ") MergedWithPrevious, runs of \n / ▁ ---- */

/* vocab 0..10; the added tokens not in it get 11.. in file order (HF), so <img> = 16
 * is outside the model vocabulary, as Gemma 3's <image_soft_token>. */
static const char GEMMA[] =
    "{'version':'1.0','added_tokens':["
    "{'id':0,'content':'<pad>','special':true,'normalized':false},"
    "{'id':1,'content':'<eos>','special':true,'normalized':false},"
    "{'id':2,'content':'<bos>','special':true,'normalized':false},"
    "{'id':3,'content':'<unk>','special':true,'normalized':false},"
    "{'id':11,'content':'\\n\\n','special':false,'normalized':false},"
    "{'id':12,'content':'\\n\\n\\n','special':false,'normalized':false},"
    "{'id':13,'content':'\\u2581\\u2581','special':false,'normalized':false},"
    "{'id':14,'content':'<t>','special':false,'normalized':false},"
    "{'id':15,'content':'<t2>','special':false,'normalized':false},"
    "{'id':16,'content':'<img>','special':true,'normalized':false}],"
    "'normalizer':{'type':'Replace','pattern':{'String':' '},'content':'\\u2581'},"
    "'pre_tokenizer':{'type':'Split','pattern':{'String':' '},'behavior':'MergedWithPrevious',"
    "'invert':false},"
    "'post_processor':{'type':'TemplateProcessing','single':[{'SpecialToken':{'id':'<bos>',"
    "'type_id':0}},{'Sequence':{'id':'A','type_id':0}}],'pair':[],'special_tokens':{'<bos>':"
    "{'id':'<bos>','ids':[2],'tokens':['<bos>']}}},"
    "'decoder':{'type':'Sequence','decoders':[{'type':'Replace','pattern':{'String':'\\u2581'},"
    "'content':' '},{'type':'ByteFallback'},{'type':'Fuse'}]},"
    "'model':{'type':'BPE','unk_token':'<unk>','fuse_unk':true,'byte_fallback':true,"
    "'ignore_merges':false,'vocab':{'<pad>':0,'<eos>':1,'<bos>':2,'<unk>':3,'<0x0A>':4,'a':5,"
    "'b':6,'\\u2581':7,'\\u2581b':8,'ab':9,'\\n':10},'merges':[['\\u2581','b'],['a','b']]}}";

START_TEST(test_gemma_style) {
  char *root = pf_test_tmpdir("tok-gemma");
  pf_tokenizer *tok = load_q(root, GEMMA, NULL);
  ck_assert_int_eq(pf_tokenizer_vocab_size(tok), 17);
  ck_assert_str_eq(pf_tokenizer_token(tok, 16), "<img>");
  ck_assert_int_eq(pf_tokenizer_token_id(tok, "<img>"), 16);
  ck_assert_int_eq(pf_tokenizer_bos_id(tok), 2);
  /* no dummy prefix: "ab" then "▁b" ("▁ b" ranks before "a b") */
  EXPECT(tok, "ab b", 2, 9, 8);
  /* added tokens in the raw text, longest first: \n\n\n (12), then \n (10, the vocab) */
  EXPECT(tok, "a\n\n\nb", 2, 5, 12, 6);
  EXPECT(tok, "a\n\n\n\nb", 2, 5, 12, 10, 6);
  EXPECT(tok, "a\n\n\n\n\n\n\nb", 2, 5, 12, 12, 10, 6);
  /* "▁▁" is matched before normalization only: two spaces become ▁ + ▁b by BPE */
  EXPECT(tok, "a  b", 2, 5, 7, 8);
  EXPECT(tok,
         "a\xE2\x96\x81\xE2\x96\x81"
         "b",
         2, 5, 13, 6);
  /* x is unknown with no <0x78>: <unk> (3); <img> outside the model vocabulary */
  EXPECT(tok, "x<img>", 2, 3, 16);
  EXPECT(tok, "ab<t2>b", 2, 9, 15, 6);
  EXPECT(tok, "a<t>", 2, 5, 14);
  EXPECT(tok, " ", 2, 7);
  EXPECT(tok, "", 2);
  const int32_t ids[] = {2, 5, 12, 6, 16};
  expect_decode(tok, ids, 5, 0, "<bos>a\n\n\nb<img>");
  expect_decode(tok, ids, 5, 1, "a\n\n\nb");
  pf_tokenizer_free(tok);
  /* the Split itself (it never fires in Gemma, where no " " survives the normalizer) */
  pf_test_check_pre("{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},\"behavior\":"
                    "\"MergedWithPrevious\",\"invert\":false}",
                    "a b  c ", 1, "a |b | |c ");
  pf_test_rmtree(root);
  free(root);
}
END_TEST

/* ---- Phi-3: rstrip / lstrip, Prepend per segment, a template without specials ---- */

static const char PHI3[] =
    "{'version':'1.0','added_tokens':["
    "{'id':0,'content':'<unk>','special':true,'normalized':false},"
    "{'id':1,'content':'<s>','special':true,'normalized':false},"
    "{'id':2,'content':'</s>','special':false,'rstrip':true,'normalized':false},"
    "{'id':10,'content':'<|user|>','special':true,'rstrip':true,'normalized':false},"
    "{'id':11,'content':'<|l|>','special':true,'lstrip':true,'normalized':false}],"
    "'normalizer':{'type':'Sequence','normalizers':[{'type':'Prepend','prepend':'\\u2581'},"
    "{'type':'Replace','pattern':{'String':' '},'content':'\\u2581'}]},"
    "'pre_tokenizer':null,"
    "'post_processor':{'type':'TemplateProcessing','single':[{'Sequence':{'id':'A','type_id':0}}],"
    "'pair':[{'Sequence':{'id':'A','type_id':0}},{'Sequence':{'id':'B','type_id':1}}],"
    "'special_tokens':{}},"
    "'decoder':null,"
    "'model':{'type':'BPE','unk_token':'<unk>','fuse_unk':true,'byte_fallback':true,"
    "'vocab':{'<unk>':0,'<s>':1,'</s>':2,'\\u2581':3,'h':4,'i':5,'\\u2581h':6,'\\u2581hi':7,"
    "'hi':8,'x':9},'merges':['\\u2581 h','\\u2581h i','h i']}}";

START_TEST(test_phi3_style) {
  char *root = pf_test_tmpdir("tok-phi3");
  /* add_bos_token is ignored: the file has a post-processor (HF does not read the config) */
  char *cfg = pf_path_join(root, "tokenizer_config.json");
  pf_test_write(cfg, "{\"add_bos_token\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}");
  pf_tokenizer *tok = load_q(root, PHI3, NULL);
  ck_assert_int_eq(pf_tokenizer_bos_id(tok), 1);
  ck_assert_int_eq(pf_tokenizer_eos_id(tok), 2);
  /* each text segment gets its own ▁; rstrip takes the whitespace after the token */
  EXPECT(tok, "<|user|>hi", -1, 10, 7);
  EXPECT(tok, "<|user|>   hi", -1, 10, 7);
  EXPECT(tok, "hi</s> \n x", -1, 7, 2, 3, 9);
  /* lstrip takes the whitespace before it; "x" is "▁" + "x" (no "▁x") */
  EXPECT(tok, "hi   <|l|>x", -1, 7, 11, 3, 9);
  EXPECT(tok, "<s>hi", -1, 1, 7);
  EXPECT(tok, "", -1);
  pf_tokenizer_free(tok);
  /* but transformers' Llama and Gemma fast tokenizers (AutoTokenizer for these classes)
   * rebuild the post-processor from add_bos_token (default true) and add_eos_token
   * (default false); other classes keep the file's (before: the flags were ignored) */
  static const struct {
    const char *cfg;
    int32_t ids[3];
    size_t n;
  } rb[] = {
      {"{\"tokenizer_class\": \"LlamaTokenizer\", \"add_eos_token\": true, \"bos_token\": "
       "\"<s>\", \"eos_token\": \"</s>\"}",
       {1, 7, 2},
       3},
      {"{\"tokenizer_class\": \"GemmaTokenizerFast\", \"add_bos_token\": false, \"bos_token\": "
       "\"<s>\"}",
       {7, 0, 0},
       1},
      {"{\"tokenizer_class\": \"LlamaTokenizerFast\", \"bos_token\": \"<s>\"}", {1, 7, 0}, 2},
      {"{\"tokenizer_class\": \"PreTrainedTokenizerFast\", \"add_bos_token\": true, "
       "\"add_eos_token\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}",
       {7, 0, 0},
       1},
  };
  for (size_t i = 0; i < sizeof rb / sizeof rb[0]; i++) {
    pf_test_write(cfg, rb[i].cfg);
    tok = load_q(root, PHI3, NULL);
    expect_ids(tok, "hi", 1, rb[i].ids, rb[i].n);
    expect_ids(tok, "hi", 0, (const int32_t[]){7}, 1);
    pf_tokenizer_free(tok);
  }
  free(cfg);
  pf_test_rmtree(root);
  free(root);
}
END_TEST

/* ---- GPT-NeoX: normalized added tokens after NFC, older serialization ---- */

/* ByteLevel without use_regex (default true); BPE without byte_fallback /
 * ignore_merges (default false). The merge "d Ġ" ranks first: it would fire in
 * "leadĠlead" if the GPT-2 regex did not split before the space. */
static const char NEOX[] =
    "{'version':'1.0','added_tokens':["
    "{'id':10,'content':'  ','special':false,'normalized':true},"
    "{'id':11,'content':'   ','special':false,'normalized':true},"
    "{'id':12,'content':'\\u00e9','special':false,'normalized':true}],"
    "'normalizer':{'type':'NFC'},"
    "'pre_tokenizer':{'type':'ByteLevel','add_prefix_space':false,'trim_offsets':true},"
    "'post_processor':{'type':'ByteLevel','add_prefix_space':false,'trim_offsets':true},"
    "'decoder':{'type':'ByteLevel','add_prefix_space':false,'trim_offsets':true},"
    "'model':{'type':'BPE','dropout':null,'unk_token':null,'fuse_unk':false,"
    "'vocab':{'\\u0120':0,'l':1,'e':2,'a':3,'d':4,'le':5,'lea':6,'lead':7,'\\u0120lead':8,"
    "'d\\u0120':9},'merges':['d \\u0120','l e','le a','lea d','\\u0120 lead']}}";

START_TEST(test_neox_style) {
  char *root = pf_test_tmpdir("tok-neox");
  pf_tokenizer *tok = load_q(root, NEOX, NULL);
  ck_assert_int_eq(pf_tokenizer_vocab_size(tok), 13);
  ck_assert_int_eq(pf_tokenizer_bos_id(tok), -1);
  /* runs of spaces are added tokens and win over BPE: "lead" keeps no Ġ */
  EXPECT(tok, "  lead", -1, 10, 7);
  EXPECT(tok, "     lead", -1, 11, 10, 7);
  EXPECT(tok, "a  lead", -1, 3, 10, 7);
  EXPECT(tok, " lead", -1, 8);
  EXPECT(tok, "lead lead", -1, 7, 8); /* split by the default regex, "d Ġ" never applies */
  EXPECT(tok, "zlead", -1, 7);        /* z: not in the vocabulary, no unk: dropped */
  /* é as e + U+0301 is NFC-normalized before the normalized tokens are matched */
  EXPECT(tok, "e\xCC\x81", -1, 12);
  EXPECT(tok, "\xC3\xA9", -1, 12);
  const int32_t ids[] = {3, 10, 7, 12};
  /* as HF: ByteLevel maps the added "é" to the lone byte 0xE9, which is U+FFFD */
  expect_decode(tok, ids, 4, 1, "a  lead\xEF\xBF\xBD");
  pf_tokenizer_free(tok);
  pf_test_rmtree(root);
  free(root);
}
END_TEST

/* ---- OLMo-2 / o200k: Split Removed + invert, vocabulary ids with gaps ---- */

static const char O200K_RE[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char OLMO2_RE[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* ids 0..14 with 1, 4, 8 and 11 unused; <|end|> gets 10 (the vocabulary has 10 entries) */
static const char O200K[] =
    "{'version':'1.0','added_tokens':[{'id':10,'content':'<|end|>','special':true,"
    "'normalized':false}],'normalizer':null,"
    "'pre_tokenizer':{'type':'Sequence','pretokenizers':[{'type':'Split','pattern':{'Regex':"
    "'@RE@'},'behavior':'Removed','invert':true},{'type':'ByteLevel','add_prefix_space':false,"
    "'trim_offsets':true,'use_regex':false}]},'post_processor':null,"
    "'decoder':{'type':'ByteLevel','add_prefix_space':true,'trim_offsets':true,'use_regex':true},"
    "'model':{'type':'BPE','unk_token':null,'continuing_subword_prefix':'','end_of_word_suffix':'',"
    "'fuse_unk':false,'byte_fallback':false,'vocab':{'a':0,'b':2,'B':3,'\\u0120':5,'\\u0027':6,"
    "'s':7,'\\u0120b':9,'ab':12,'Ab':13,'A':14},'merges':['a b','\\u0120 b']}}";

static void check_split(const char *re, const char *text, const char *want) {
  cJSON *j = cJSON_CreateObject(), *p = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "type", "Split");
  cJSON_AddStringToObject(p, "Regex", re);
  cJSON_AddItemToObject(j, "pattern", p);
  cJSON_AddStringToObject(j, "behavior", "Removed");
  cJSON_AddBoolToObject(j, "invert", 1);
  char *s = cJSON_PrintUnformatted(j);
  pf_test_check_pre(s, text, 1, want);
  free(s);
  cJSON_Delete(j);
}

START_TEST(test_o200k_style) {
  /* camelCase splits, contractions stay on letter runs (any case), punctuation runs end
   * with [\r\n/]*, digits by three, titlecase (ǅ) and modifier letters (ʰ), a combining
   * mark after e; HF gives the same pieces */
  const char *t = "HelloWorld's CAPSLock don'T x/\n\ny  1234567 \xC7\x85ungla \xCA\xB0x "
                  "e\xCC\x81!?\n";
  check_split(O200K_RE, t,
              "Hello|World's| CAPSLock| don'T| x|/\n\n|y| | |123|456|7| \xC7\x85ungla| \xCA\xB0x| "
              "e\xCC\x81|!?\n");
  check_split(OLMO2_RE, t,
              "HelloWorld|'s| CAPSLock| don|'T| x|/\n\n|y| | |123|456|7| \xC7\x85ungla| \xCA\xB0x| "
              "e|\xCC\x81!?\n");
  /* Removed + invert drops what the regex does not match */
  check_split("\\p{N}+", "ab12cd3", "12|3");
  char *root = pf_test_tmpdir("tok-o200k");
  pf_tokenizer *tok = load_q(root, O200K, O200K_RE);
  ck_assert_int_eq(pf_tokenizer_vocab_size(tok), 15);
  ck_assert_ptr_null(pf_tokenizer_token(tok, 1));
  ck_assert_ptr_null(pf_tokenizer_token(tok, 11));
  ck_assert_str_eq(pf_tokenizer_token(tok, 14), "A");
  ck_assert_str_eq(pf_tokenizer_token(tok, 10), "<|end|>");
  EXPECT(tok, "ab ab", -1, 12, 5, 12);
  EXPECT(tok, "AbAb", -1, 14, 2, 14, 2);
  EXPECT(tok, "B'S ab", -1, 3, 6, 5, 12); /* S is not in the vocabulary */
  EXPECT(tok, "ab<|end|>b", -1, 12, 10, 2);
  EXPECT(tok, "ab\n\n b", -1, 12, 9); /* Ċ is not in the vocabulary */
  const int32_t ids[] = {12, 5, 12, 10};
  expect_decode(tok, ids, 4, 0, "ab ab<|end|>");
  pf_err err = {0};
  char *s = NULL;
  const int32_t gap[] = {12, 1};
  ck_assert_int_eq(pf_tokenizer_decode(tok, gap, 2, 0, &s, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "token id 1 at position 1 is not in the vocabulary");
  ck_assert_ptr_null(s);
  pf_tokenizer_free(tok);
  pf_test_rmtree(root);
  free(root);
}
END_TEST

/* ---- added-token ids: HF's, not the file's ---- */

#define TINY(vocab, added)                                                                         \
  "{'added_tokens':[" added "],'pre_tokenizer':{'type':'WhitespaceSplit'},"                        \
  "'model':{'type':'BPE','vocab':{" vocab "},'merges':[]}}"
#define AT(id, content, extra) "{'id':" #id ",'content':'" content "'" extra "}"

START_TEST(test_added_ids) {
  char *root = pf_test_tmpdir("tok-ids");
  /* the vocabulary has 2 entries: <x> gets 2 (the id of "b" too: lookups see <x>
   * first, as HF's), <y> 3 */
  pf_tokenizer *tok =
      load_q(root, TINY("'a':0,'b':2", AT(7, "<x>", "") "," AT(3, "<y>", ",'special':true")), NULL);
  EXPECT(tok, "<x> a", -1, 2, 0);
  EXPECT(tok, "a b c", -1, 0, 2);
  EXPECT(tok, "<x>  <y>", -1, 2, 3);
  ck_assert_int_eq(pf_tokenizer_vocab_size(tok), 4);
  ck_assert_str_eq(pf_tokenizer_token(tok, 2), "<x>");
  const int32_t ids[] = {2, 0, 3};
  expect_decode(tok, ids, 3, 0, "<x> a <y>");
  expect_decode(tok, ids, 3, 1, "<x> a");
  pf_tokenizer_free(tok);
  /* a repeated content keeps the first id and takes the later flags (rstrip) */
  tok = load_q(
      root,
      TINY("'a':0,'b':1", AT(5, "<x>", "") "," AT(6, "<x>", ",'rstrip':true") "," AT(9, "<z>", "")),
      NULL);
  EXPECT(tok, "<x> a", -1, 2, 0);
  EXPECT(tok, "a<z>", -1, 0, 3);
  ck_assert_int_eq(pf_tokenizer_vocab_size(tok), 4);
  pf_tokenizer_free(tok);
  /* a content in the vocabulary takes its id; the others count from the size, in
   * file order whatever their written ids; an empty content is ignored */
  tok = load_q(root,
               TINY("'a':0,'b':1,'c':2", AT(3, "", "") "," AT(10, "<y>", "") "," AT(
                                             9, "<x>", "") "," AT(7, "b", ",'special':true")),
               NULL);
  EXPECT(tok, "<y> <x>  b", -1, 3, 4, 1);
  ck_assert_int_eq(pf_tokenizer_vocab_size(tok), 5);
  ck_assert_str_eq(pf_tokenizer_token(tok, 3), "<y>");
  const int32_t skip[] = {0, 1, 4};
  expect_decode(tok, skip, 3, 1, "a <x>"); /* "b" is special now */
  pf_tokenizer_free(tok);
  /* an empty vocabulary: ids from 0 */
  tok = load_q(root, TINY("", AT(5, "<x>", "") "," AT(6, "<y>", "")), NULL);
  EXPECT(tok, "<x>  <y>", -1, 0, 1);
  pf_tokenizer_free(tok);
  pf_test_rmtree(root);
  free(root);
}
END_TEST

/* ---- model.vocab / model.merges read from the text == read through cJSON ---- */

/* Load json_q with its "@M@" key spelled "model" (the fast path may take vocab and
 * merges) and "mod\u0065l" (the same key to cJSON; the fast path refuses escaped
 * keys, so all goes through cJSON); both must give the same result or message. The
 * two spellings have the same length, so line and column numbers agree. `taken`:
 * what the fast path must take from the first (1 vocab, 2 merges, 3 both). */
static void same_both_ways(const char *json_q, int want_ok, int taken) {
  static const char *texts[] = {"ab", "abc ab", "\xC3\xA9 \xF0\x9F\x98\x80", "a\"b\\c/d\n", "q"};
  const char *keys[2] = {"\"model\"     ", "\"mod\\u0065l\""};
  pf_tokenizer *tok[2] = {NULL, NULL};
  pf_status st[2];
  char msg[2][PF_ERR_MSG_MAX];
  for (int v = 0; v < 2; v++) {
    size_t n = strlen(json_q) + 64, o = 0;
    char *j = malloc(n);
    for (const char *p = json_q; *p; p++) {
      if (!strncmp(p, "@M@", 3)) {
        o += (size_t)sprintf(j + o, "%s", keys[v]);
        p += 2;
      } else
        j[o++] = *p == '\'' ? '"' : *p;
    }
    j[o] = 0;
    pf_tk_fastjson fj;
    int r = pf_tk_fastjson_make(j, o, &fj);
    int got = r > 0 ? (fj.vocab ? 1 : 0) | (fj.merges ? 2 : 0) : 0;
    pf_tk_fastjson_free(&fj);
    ck_assert_msg(got == (v == 0 ? taken : 0), "%s (%s): fast path took %d", json_q, keys[v], got);
    char *root = pf_test_tmpdir("tok-fast"), *path = pf_path_join(root, "tokenizer.json");
    pf_test_write(path, j);
    pf_err err = {0};
    st[v] = pf_tokenizer_load(path, &tok[v], &err);
    const char *m = strstr(err.msg, "tokenizer.json");
    snprintf(msg[v], sizeof msg[v], "%s", st[v] ? (m ? m : err.msg) : "");
    pf_test_rmtree(root);
    free(root);
    free(path);
    free(j);
  }
  ck_assert_msg(st[0] == st[1] && !strcmp(msg[0], msg[1]), "%s\n  fast: %d %s\n  cJSON: %d %s",
                json_q, st[0], msg[0], st[1], msg[1]);
  ck_assert_msg((st[0] == PF_OK) == want_ok, "%s: status %d %s", json_q, st[0], msg[0]);
  if (st[0] != PF_OK) return;
  int32_t n = pf_tokenizer_vocab_size(tok[0]);
  ck_assert_int_eq(n, pf_tokenizer_vocab_size(tok[1]));
  for (int32_t i = 0; i < n; i++) {
    const char *a = pf_tokenizer_token(tok[0], i), *b = pf_tokenizer_token(tok[1], i);
    ck_assert_msg((!a && !b) || (a && b && !strcmp(a, b)), "%s: token %d", json_q, i);
  }
  for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
    int32_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    pf_err err = {0};
    ck_assert_int_eq(pf_tokenizer_encode(tok[0], texts[k], strlen(texts[k]), 1, &x, &nx, &err),
                     PF_OK);
    ck_assert_int_eq(pf_tokenizer_encode(tok[1], texts[k], strlen(texts[k]), 1, &y, &ny, &err),
                     PF_OK);
    ck_assert_msg(nx == ny && !memcmp(x, y, nx * sizeof *x), "%s: encodings of \"%s\" differ",
                  json_q, texts[k]);
    free(x);
    free(y);
  }
  pf_tokenizer_free(tok[0]);
  pf_tokenizer_free(tok[1]);
}

#define DOC(model) "{'pre_tokenizer':{'type':'WhitespaceSplit'},@M@:" model "}"
#define VOC "'a':0,'b':1,'c':2,'ab':3,'abc':4"

START_TEST(test_fast_json) {
  /* the shapes the fast path takes: merges as strings or pairs, any whitespace cJSON
   * skips (bytes <= 32), keys with every escape cJSON decodes */
  same_both_ways(DOC("{'type':'BPE','vocab':{" VOC "},'merges':['a b','ab c']}"), 1, 3);
  same_both_ways(DOC("{ 'merges' :\n[ [ 'a' , 'b' ] ,\t['ab','c'] ] ,\x01'vocab':{ " VOC " } }"), 1,
                 3);
  same_both_ways(DOC("{'vocab':{" VOC ",'\\u00e9':5,'\\ud83d\\ude00':6,'a\\'b\\\\c\\/d':7,"
                     "'\\n':8,'\\t\\b\\f\\r':9,'\\u00E9\\u0041':10},'merges':[['a','b']]}"),
                 1, 3);
  same_both_ways("\xEF\xBB\xBF" DOC("{'vocab':{" VOC "},'merges':['#version: 0.2','a b']}"), 1, 3);
  /* repeated keys: cJSON's lookups take the first "model", "vocab", "merges"; a
   * repeated vocabulary string keeps the later id */
  same_both_ways(DOC("{'vocab':{" VOC ",'a':7},'vocab':{'z':0},'merges':['a b'],'merges':[]}"), 1,
                 3);
  same_both_ways("{@M@:{'type':'BPE','vocab':{" VOC "}},'model':{'vocab':{'z':0}}}", 1, 1);
  /* left to cJSON: numbers that are not plain integers, \u0000, escaped keys */
  same_both_ways(DOC("{'vocab':{'a':0,'b':1.0,'c':2e0,'ab':03},'merges':['a b']}"), 1, 2);
  same_both_ways(DOC("{'vocab':{" VOC ",'x\\u0000y':5},'merges':['a b']}"), 1, 2);
  same_both_ways(DOC("{'voc\\u0061b':{" VOC "},'merges':['a b']}"), 1, 0);
  /* errors: the messages must be the same */
  same_both_ways(DOC("{'vocab':{'a':-1}}"), 0, 0);
  same_both_ways(DOC("{'vocab':{'a':1e300}}"), 0, 0);
  same_both_ways(DOC("{'vocab':{'a':'1'}}"), 0, 0);
  same_both_ways(DOC("{'vocab':[],'merges':[]}"), 0, 2);
  same_both_ways(DOC("{'vocab':{" VOC "},'merges':{}}"), 0, 1);
  same_both_ways(DOC("{'vocab':{" VOC "},'merges':['a b c']}"), 0, 3);
  same_both_ways(DOC("{'vocab':{" VOC "},'merges':[['a','b','c']]}"), 0, 1);
  same_both_ways(DOC("{'vocab':{" VOC "},'merges':['a q']}"), 0, 3);
  same_both_ways(DOC("{'vocab':{" VOC "},'merges':[5]}"), 0, 1);
  same_both_ways(DOC("{'vocab':{'\\ud83d':0}}"), 0, 0);  /* lone surrogate */
  same_both_ways(DOC("{'vocab':{'\\ude00x':0}}"), 0, 0); /* lone low surrogate */
  same_both_ways(DOC("{'vocab':{'\\x':0}}"), 0, 0);      /* unknown escape */
  same_both_ways(DOC("{'vocab':{'a':0,,'b':1}}"), 0, 0); /* malformed inside vocab */
  same_both_ways(DOC("{'vocab':{'a':0},'merges':['a b',]}"), 0, 1);
  same_both_ways(DOC("{'vocab':{'a':0},\n'merges':[]}, 'x':[}"), 0, 3);  /* malformed after */
  same_both_ways(DOC("{'vocab':{'a':0}"), 0, 1);                         /* truncated */
  same_both_ways(DOC("{'vocab':{'a':0,'b':1},'merges':['a b']}"), 0, 3); /* "ab" missing */
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("tokenizer_features");
  TCase *tc = tcase_create("features");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_trie_random);
  tcase_add_test(tc, test_gemma_style);
  tcase_add_test(tc, test_phi3_style);
  tcase_add_test(tc, test_neox_style);
  tcase_add_test(tc, test_o200k_style);
  tcase_add_test(tc, test_added_ids);
  tcase_add_test(tc, test_fast_json);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
