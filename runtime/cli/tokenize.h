/* tokenize.h — `pfrun tokenize`: text -> token ids as JSON arrays.
 *
 *   pfrun tokenize --model-path DIR [--no-special] TEXT
 *   pfrun tokenize --model-path DIR [--no-special] --input FILE.jsonl [--text-field NAME]
 *
 * DIR is a model folder, or any folder holding tokenizer.json (and optionally
 * tokenizer_config.json), or a tokenizer.json file. Output: one line "[1, 2, 3]"
 * for TEXT; with --input one such line per sample of the file, in order (a
 * .jsonl record's text field, or a .txt paragraph: the reader of dataset.h).
 * --no-special encodes without the tokenizer's special tokens (HF
 * add_special_tokens=False). `--` ends the options (for a TEXT starting with "-").
 *
 * Parsing never prints; running writes only to the FILE* it is given (main.c
 * passes stdout).
 */
#ifndef PF_CLI_TOKENIZE_H
#define PF_CLI_TOKENIZE_H

#include <stdio.h>

#include "pf.h"

typedef struct pf_tokenize_args {
  int help;               /* --help / -h given: print pf_tokenize_help(), nothing else */
  const char *model_path; /* --model-path (required) */
  const char *text;       /* the TEXT argument, or NULL */
  const char *input;      /* --input FILE, or NULL */
  const char *text_field; /* --text-field, default "text" (only with --input) */
  int add_special;        /* 1 unless --no-special */
} pf_tokenize_args;

/* Parse the arguments after "tokenize" (argv[0] is the first option; strings
 * are borrowed from argv). Errors are usage errors (PF_ERR_INVALID, exit 2):
 * missing --model-path, no TEXT and no --input, both, two TEXTs, --text-field
 * without --input, unknown option, an option without its value. */
pf_status pf_tokenize_parse(int argc, char **argv, pf_tokenize_args *out, pf_err *err);

/* Load the tokenizer, encode, and write the JSON array line(s) to `out`.
 * Errors: the tokenizer's load errors, the reader's (file:line) errors, encode
 * errors (a TEXT that is not UTF-8), PF_ERR_IO when writing fails. Lines
 * written before an error stay written. */
pf_status pf_tokenize_run(const pf_tokenize_args *a, FILE *out, pf_err *err);

/* The help text of `pfrun tokenize --help` / `pfrun help tokenize`. */
const char *pf_tokenize_help(void);

#endif
