/* json.h — parsing JSON text with cJSON, telling "out of memory" from "malformed".
 *
 * cJSON returns NULL both for malformed text and when one of its allocations
 * fails, so a parser that only looked at the NULL reported an out-of-memory
 * condition (a --max-memory cap, a real shortage) as "malformed JSON". Every
 * JSON parse in pfrun goes through pf_json_parse: cJSON's allocator hooks are
 * set once (cJSON_InitHooks, on the first call) to a wrapper around malloc/free
 * that records a failed allocation in a thread-local flag, which pf_json_parse
 * clears before and reads after the parse. Thread-safe: the hooks are set once
 * (pthread_once) and the flag is per thread.
 */
#ifndef PF_JSON_H
#define PF_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "pf.h"

/* cJSON_ParseWithLengthOpts(text, len, end, require_null_terminated) that also
 * says why it failed: on NULL, *oom (may be NULL) is 1 when an allocation
 * failed during the parse, 0 when the text is malformed (then *end, when given,
 * points where cJSON stopped). The tree is the caller's (cJSON_Delete). */
cJSON *pf_json_parse(const char *text, size_t len, const char **end, int require_null_terminated,
                     int *oom);

/* The error for a parse that failed with *oom set: PF_ERR_NOMEM
 * "<what>: out of memory while parsing JSON". Returns PF_ERR_NOMEM. */
pf_status pf_json_nomem(pf_err *err, const char *what);

/* obj[key] = v, in place when key exists (its position in the object kept),
 * else appended. v is consumed: deleted when it cannot be attached. 1 on
 * success, 0 when out of memory. (cJSON 1.7.15's cJSON_ReplaceItemInObject
 * does not check the copy of the key it makes: out of memory, it silently
 * replaced the item by one without a name, and "num_hidden_layers" vanished
 * from a saved config.json.) */
int pf_json_set(cJSON *obj, const char *key, cJSON *v);

/* A flag in cJSON's type bits (above the ones cJSON uses) on a number written as a
 * float in the parsed text (with '.', 'e' or 'E': "32.0", "1e-05"): Python reads it as
 * a float, and a writer should keep it one ("32.0", not "32"; transformers' rope
 * validation warns when a factor is an int). cJSON's own functions look at the low
 * eight type bits only; cJSON_Duplicate keeps the flag. */
#define PF_JSON_FLOAT_LITERAL (1 << 14)
/* Sets PF_JSON_FLOAT_LITERAL on the numbers of root that text[0, len) (the text root
 * was parsed from, up to where the parse ended) writes as floats. Numbers are matched
 * in document order; 0 (and nothing marked) when the counts disagree or out of memory. */
int pf_json_mark_float_literals(cJSON *root, const char *text, size_t len);

/* Repeated keys of every object in v (nested ones too) collapsed as Python's json.loads
 * does: one entry, at the place of the first, holding the value of the last (so a
 * reader that takes the first entry and a writer that replaces it agree with
 * transformers). 0 when out of memory (v then has some objects collapsed). Call it
 * on a tree whose depth is bounded (pf_json_depth). */
int pf_json_keep_last(cJSON *v);

/* Nesting depth of v (a scalar is 1), counting no further than limit + 1: bounds
 * a file's nesting before anything recurses over it. */
int pf_json_depth(const cJSON *v, int limit);

/* Byte offset of the first invalid UTF-8 sequence of text[0, n), or n if it is
 * valid (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). JSON
 * text must be UTF-8; cJSON copies bytes into strings unchecked. */
size_t pf_utf8_invalid_at(const char *text, size_t n);
/* 1 if the JSON text holds a "\u0000" escape inside a string: cJSON keeps the
 * NUL, and C strings end there, so the rest of that string would be lost. */
int pf_json_has_nul_escape(const char *text, size_t n);

/* What kind of value v is, for messages: "a string", "a number", "a boolean",
 * "null", "an array", "an object"; "no such field" for NULL. */
const char *pf_json_kind(const cJSON *v);

/* One line of a JSONL file (line[0, len), no newline), read as Python's json.loads
 * reads it or refused: *out gets the object (the caller's, cJSON_Delete), or NULL and
 * a bare message (the caller adds "file:line: "), PF_ERR_FORMAT unless noted:
 *   malformed JSON: a NUL byte at column C      | not valid UTF-8 at column C
 *   a "\u0000" escape (NUL character) is not supported (C strings would end there)
 *   malformed JSON at column C (NaN / Infinity named: Python writes them, JSON has not)
 *   text after the JSON object at column C      | expected a JSON object, found KIND
 *   duplicate key 'K' (json.loads keeps the last value; refused rather than guessed)
 *   out of memory while parsing JSON (PF_ERR_NOMEM)
 * Columns count bytes from 1. Only the object's own keys are checked for duplicates
 * (the readers read top-level fields). */
pf_status pf_jsonl_object(const char *line, size_t len, cJSON **out, pf_err *err);

/* Make cJSON allocate through the recording hooks now (pf_json_parse does it on
 * first use; a front end may call it at start-up, before anything uses cJSON). */
void pf_json_init(void);

#endif
