/* tkutil.c — tokenizer helpers shared by check_tokenizer and check_tokenizer_features. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "tkutil.h"
#include "tokenizer_internal.h"

/* Pre-tokenize text with the pre-tokenizer in json; pieces joined with "|". */
void pf_test_check_pre(const char *json, const char *text, int at_start, const char *want) {
  pf_err err = {0};
  pf_tk_bytemap bm;
  pf_tk_bytemap_init(&bm);
  cJSON *j = cJSON_Parse(json);
  ck_assert_msg(j != NULL, "bad test JSON %s", json);
  pf_tk_pre *pt = NULL;
  ck_assert_msg(pf_tk_pre_parse(j, "pre", &bm, &pt, &err) == PF_OK, "%s", err.msg);
  pf_tk_pieces io = {0}, tmp = {0};
  size_t n = strlen(text);
  ck_assert_int_eq(pf_tk_buf_put(&io.text, text, n), 0);
  ck_assert_int_eq(pf_tk_pieces_add(&io, 0, n, at_start), 0);
  ck_assert_msg(pf_tk_pretokenize(pt, &io, &tmp, &err) == PF_OK, "%s", err.msg);
  char got[1024] = "";
  size_t o = 0;
  for (size_t k = 0; k < io.n; k++)
    o += (size_t)snprintf(got + o, sizeof got - o, "%s%.*s", k ? "|" : "", (int)io.v[k].len,
                          io.text.p + io.v[k].off);
  ck_assert_msg(!strcmp(got, want), "%s on \"%s\": expected \"%s\", got \"%s\"", json, text, want,
                got);
  pf_tk_pieces_free(&io);
  pf_tk_pieces_free(&tmp);
  pf_tk_pre_free(pt);
  cJSON_Delete(j);
}
