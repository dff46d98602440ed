/* fuzz_cli.c — the input split on NUL and newline bytes is the argument list
 * after "pfrun" (at most 256 arguments): pf_cli_parse then pf_cli_free; the
 * same list after "pfrun tokenize" through pf_tokenize_parse; the first
 * argument as a help topic. Invariants: a failed parse has a message; parsed
 * strings point into argv (nothing is read past it). Nothing is run. */
#include <string.h>

#include "cli.h"
#include "fuzz_common.h"
#include "tokenize.h"

#define MAX_ARGS 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char **args = NULL, *block = NULL;
  int n = fz_split_args(data, size, MAX_ARGS, &args, &block);
  char **argv = malloc(((size_t)n + 2) * sizeof *argv);
  if (!argv) abort();
  argv[0] = "pfrun";
  memcpy(argv + 1, args, ((size_t)n + 1) * sizeof *argv);
  pf_cli c;
  pf_err err = {0};
  memset(&c, 0, sizeof c);
  pf_status s = pf_cli_parse(n + 1, argv, &c, &err);
  if (s != PF_OK) FZ_CHECK(err.msg[0], "failed parse without a message");
  if (s == PF_OK && c.file) FZ_CHECK(strlen(c.file) <= size, "file name longer than the input");
  pf_cli_free(&c);
  pf_tokenize_args ta;
  pf_err terr = {0};
  if (pf_tokenize_parse(n, args, &ta, &terr) != PF_OK)
    FZ_CHECK(terr.msg[0], "failed tokenize parse without a message");
  if (n > 0) (void)pf_cli_help(args[0]);
  free(argv);
  free(args);
  free(block);
  return 0;
}
