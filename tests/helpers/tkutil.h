/* tkutil.h — tokenizer test helpers (see tkutil.c). */
#ifndef PF_TKUTIL_H
#define PF_TKUTIL_H

/* Pre-tokenize `text` (a first segment when at_start) with the pre-tokenizer in
 * `json` and ck_assert that the pieces, joined with "|", equal `want`. */
void pf_test_check_pre(const char *json, const char *text, int at_start, const char *want);

#endif
