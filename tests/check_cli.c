/* check_cli.c — argv parsing of the pfrun command line (no ops run here; the
 * end-to-end behaviour is in tests/e2e/cli.sh). Messages are OptiPFair's (§13.1). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "op.h"
#include "synthetic.h"
#include "testutil.h"

static pf_status parse(pf_cli *c, pf_err *err, int argc, ...) {
  char *argv[32];
  va_list ap;
  va_start(ap, argc);
  for (int i = 0; i < argc; i++) argv[i] = va_arg(ap, char *);
  va_end(ap);
  return pf_cli_parse(argc, argv, c, err);
}

#define BASE "pfrun", "prune", "--model-path", "m", "--output-path", "o"

START_TEST(test_default_percentage) {
  pf_cli c;
  pf_err err = {0};
  ck_assert_int_eq(parse(&c, &err, 6, BASE), PF_OK);
  ck_assert_int_eq(c.kind, PF_CLI_PRUNE);
  ck_assert_str_eq(c.prune_op, "prune_width");
  ck_assert(pf_map_num(c.prune_params, "pruning_percentage", -1) == 10.0);
  ck_assert_str_eq(pf_map_str(c.prune_params, "method", ""), "MAW");
  ck_assert(!pf_map_has(c.prune_params, "expansion_rate"));
  ck_assert_str_eq(pf_map_str(c.save_params, "path", ""), "o");
  pf_cli_free(&c);
}
END_TEST

START_TEST(test_rate_and_divisor) {
  pf_cli c;
  pf_err err = {0};
  ck_assert_int_eq(parse(&c, &err, 9, BASE, "--expansion-rate", "140", "--expansion-divisor=128"),
                   PF_OK);
  ck_assert(pf_map_num(c.prune_params, "expansion_rate", -1) == 140.0);
  ck_assert(!pf_map_has(c.prune_params, "pruning_percentage"));
  ck_assert_int_eq(pf_map_int(c.prune_params, "expansion_divisor", 0), 128);
  pf_cli_free(&c);
}
END_TEST

START_TEST(test_indices) {
  pf_cli c;
  pf_err err = {0};
  ck_assert_int_eq(parse(&c, &err, 8, BASE, "--layer-indices", "2, 5,8"), PF_OK);
  pf_value *l = pf_map_get(c.prune_params, "layer_indices");
  ck_assert_ptr_nonnull(l);
  ck_assert_int_eq((int)l->u.list.len, 3);
  ck_assert_int_eq(l->u.list.items[1]->u.i, 5);
  pf_cli_free(&c);
  ck_assert_int_eq(parse(&c, &err, 8, BASE, "--layer-indices", "2,x"), PF_ERR_INVALID);
  pf_assert_err(err, "--layer-indices must be comma-separated integers (e.g., '2,5,8').");
  pf_cli_free(&c);
}
END_TEST

START_TEST(test_glu_rules) {
  pf_cli c;
  pf_err err = {0};
  ck_assert_int_ne(parse(&c, &err, 10, BASE, "--pruning-percentage", "10", "--expansion-rate", "2"),
                   PF_OK);
  pf_assert_err(err, "--pruning-percentage and --expansion-rate are mutually exclusive.");
  pf_cli_free(&c);
  ck_assert_int_ne(parse(&c, &err, 8, BASE, "--num-layers-to-remove", "2"), PF_OK);
  pf_assert_err(err, "--num-layers-to-remove is only valid with --pruning-type DEPTH.");
  pf_cli_free(&c);
  ck_assert_int_ne(parse(&c, &err, 8, BASE, "--layer-selection-method", "first"), PF_OK);
  pf_assert_err(err, "--layer-selection-method is only valid with --pruning-type DEPTH.");
  pf_cli_free(&c);
  ck_assert_int_ne(parse(&c, &err, 8, BASE, "--method", "PPM"), PF_OK);
  pf_assert_err(err, "'PPM' is not one of 'MAW', 'VOW', 'PON', 'L2'");
  pf_cli_free(&c);
  ck_assert_int_ne(parse(&c, &err, 8, BASE, "--expansion-divisor", "16"), PF_OK);
  pf_assert_err(err, "is not one of '32', '64', '128', '256'");
  pf_cli_free(&c);
  ck_assert_int_ne(parse(&c, &err, 8, BASE, "--pruning-percentage", "ten"), PF_OK);
  pf_assert_err(err, "'ten' is not a valid float");
  pf_cli_free(&c);
  ck_assert_int_ne(parse(&c, &err, 7, BASE, "--bogus"), PF_OK);
  pf_assert_err(err, "No such option: --bogus");
  pf_cli_free(&c);
  ck_assert_int_ne(parse(&c, &err, 4, "pfrun", "prune", "--output-path", "o"), PF_OK);
  pf_assert_err(err, "Missing option '--model-path'");
  pf_cli_free(&c);
  ck_assert_int_ne(parse(&c, &err, 3, "pfrun", "prune", "--model-path"), PF_OK);
  pf_assert_err(err, "requires an argument");
  pf_cli_free(&c);
}
END_TEST

START_TEST(test_depth_rules) {
  pf_cli c;
  pf_err err = {0};
  ck_assert_int_eq(parse(&c, &err, 10, BASE, "--pruning-type", "DEPTH", "--num-layers-to-remove", "2"),
                   PF_OK);
  ck_assert_str_eq(c.prune_op, "prune_depth");
  ck_assert_int_eq(pf_map_int(c.prune_params, "num_layers_to_remove", 0), 2);
  ck_assert(!pf_map_has(c.prune_params, "layer_selection_method")); /* the op's "last" */
  pf_cli_free(&c);
  ck_assert_int_eq(parse(&c, &err, 10, BASE, "--pruning-type", "DEPTH", "--pruning-percentage", "25"),
                   PF_OK);
  ck_assert(pf_map_num(c.prune_params, "depth_pruning_percentage", 0) == 25.0);
  pf_cli_free(&c);
  ck_assert_int_ne(parse(&c, &err, 8, BASE, "--pruning-type", "DEPTH"), PF_OK);
  pf_assert_err(err, "For DEPTH pruning, specify one of: --num-layers-to-remove, --layer-indices, "
                     "or --pruning-percentage.");
  pf_cli_free(&c);
  ck_assert_int_ne(parse(&c, &err, 12, BASE, "--pruning-type", "DEPTH", "--num-layers-to-remove",
                         "1", "--layer-indices", "1"),
                   PF_OK);
  pf_assert_err(err, "mutually exclusive");
  pf_cli_free(&c);
  ck_assert_int_ne(parse(&c, &err, 12, BASE, "--pruning-type", "DEPTH", "--num-layers-to-remove",
                         "1", "--expansion-divisor", "32"),
                   PF_OK);
  pf_assert_err(err, "--expansion-divisor is only valid with --pruning-type MLP_GLU.");
  pf_cli_free(&c);
  ck_assert_int_ne(parse(&c, &err, 12, BASE, "--pruning-type", "DEPTH", "--num-layers-to-remove",
                         "1", "--expansion-rate", "150"),
                   PF_OK);
  pf_assert_err(err, "--expansion-rate is only valid with --pruning-type MLP_GLU.");
  pf_cli_free(&c);
  ck_assert_int_ne(parse(&c, &err, 12, BASE, "--pruning-type", "DEPTH", "--num-layers-to-remove",
                         "1", "--method", "VOW"),
                   PF_OK);
  pf_assert_err(err, "--method is only valid with --pruning-type MLP_GLU.");
  pf_cli_free(&c);
}
END_TEST

START_TEST(test_other_commands) {
  pf_cli c;
  pf_err err = {0};
  ck_assert_int_eq(parse(&c, &err, 1, "pfrun"), PF_OK);
  ck_assert_int_eq(c.kind, PF_CLI_HELP);
  pf_cli_free(&c);
  ck_assert_int_eq(parse(&c, &err, 2, "pfrun", "--version"), PF_OK);
  ck_assert_int_eq(c.kind, PF_CLI_VERSION);
  pf_cli_free(&c);
  ck_assert_int_eq(parse(&c, &err, 5, "pfrun", "r.yaml", "--set", "a=1", "--dry-run"), PF_OK);
  ck_assert_int_eq(c.kind, PF_CLI_RECIPE);
  ck_assert_int_eq((int)c.n_sets, 1);
  ck_assert_str_eq(c.sets[0], "a=1");
  ck_assert_int_eq(c.dry_run, 1);
  pf_cli_free(&c);
  ck_assert_int_ne(parse(&c, &err, 4, "pfrun", "r.yaml", "--set", "novalue"), PF_OK);
  pf_assert_err(err, "--set expects key=value");
  pf_cli_free(&c);
  ck_assert_int_eq(parse(&c, &err, 4, "pfrun", "s.lua", "a", "b"), PF_OK);
  ck_assert_int_eq(c.kind, PF_CLI_LUA);
  ck_assert_int_eq(c.script_argc, 2);
  ck_assert_int_eq(c.quiet, 0);
  pf_cli_free(&c);
  /* --quiet before a script's name is pfrun's; after it, the script's */
  ck_assert_int_eq(parse(&c, &err, 4, "pfrun", "--quiet", "s.lua", "--quiet"), PF_OK);
  ck_assert_int_eq(c.kind, PF_CLI_LUA);
  ck_assert_int_eq(c.quiet, 1);
  ck_assert_int_eq(c.script_argc, 1);
  ck_assert_str_eq(c.script_argv[0], "--quiet");
  pf_cli_free(&c);
  ck_assert_int_eq(parse(&c, &err, 3, "pfrun", "analyze", "--model-path=x"), PF_OK);
  ck_assert_str_eq(pf_map_str(c.load_params, "path", ""), "x");
  pf_cli_free(&c);
  ck_assert_int_ne(parse(&c, &err, 2, "pfrun", "frob"), PF_OK);
  pf_assert_err(err, "unknown command 'frob'");
  pf_cli_free(&c);
  ck_assert_int_ne(parse(&c, &err, 3, "pfrun", "help", "nosuch"), PF_OK);
  pf_cli_free(&c);
  ck_assert_ptr_nonnull(pf_cli_help("prune"));
  ck_assert_ptr_null(pf_cli_help("nosuch"));
}
END_TEST

/* Every option named in `pfrun prune --help` is accepted by the parser. */
START_TEST(test_help_tells_truth) {
  const char *h = pf_cli_help("prune");
  const char *p = h;
  int n = 0;
  while ((p = strstr(p, "\n  --")) != NULL) {
    char opt[64];
    sscanf(p + 3, "%63[a-z-]", opt);
    p += 3;
    pf_cli c;
    pf_err err = {0};
    char *argv[] = {"pfrun", "prune", "--model-path", "m", "--output-path", "o", opt, "1", NULL};
    pf_cli_parse(8, argv, &c, &err);
    char needle[96];
    snprintf(needle, sizeof needle, "No such option: %s", opt);
    ck_assert_msg(strstr(err.msg, needle) == NULL, "help lists %s but parser rejects it", opt);
    pf_cli_free(&c);
    n++;
  }
  ck_assert_int_ge(n, 15);
}
END_TEST

/* Every option the help of each command lists is accepted by that command. */
START_TEST(test_help_tells_truth_all) {
  static const char *const cmds[] = {"analyze", "importance", "eval", "generate", "bench", "bias"};
  for (size_t k = 0; k < sizeof cmds / sizeof *cmds; k++) {
    const char *h = pf_cli_help(cmds[k]), *p = h;
    int n = 0;
    while ((p = strstr(p, "--")) != NULL) { /* every option the help names (usage lines too) */
      char opt[64];
      const int starts = p == h || strchr(" [(\n", p[-1]);
      sscanf(p, "%63[a-z0-9-]", opt);
      p += 2;
      if (!starts || strlen(opt) < 4) continue;
      pf_cli c;
      pf_err err = {0};
      char *argv[] = {"pfrun", (char *)cmds[k], "--model-path", "m", opt, "1", NULL};
      pf_cli_parse(6, argv, &c, &err);
      char needle[96];
      snprintf(needle, sizeof needle, "No such option: %s", opt);
      ck_assert_msg(strstr(err.msg, needle) == NULL, "%s help lists %s but the parser rejects it",
                    cmds[k], opt);
      pf_cli_free(&c);
      n++;
    }
    ck_assert_msg(n >= 2, "%s: no option in its help", cmds[k]);
  }
}
END_TEST

/* An unknown option names the close ones from the command's help (click's words),
 * and the command's help topic; nothing when none is close. */
/* `pfrun help` and the load op's path parameter name every synthetic preset. */
START_TEST(test_help_lists_presets) {
  const pf_op *load = pf_op_find("load");
  ck_assert_ptr_nonnull(load);
  ck_assert_str_eq(load->params[0].name, "path");
  for (const char *const *p = pf_synth_presets(); *p; p++) {
    ck_assert_msg(strstr(pf_cli_help(NULL), *p), "pfrun help does not list synthetic:%s", *p);
    ck_assert_msg(strstr(load->params[0].help, *p), "load's path does not list %s", *p);
  }
}
END_TEST

START_TEST(test_unknown_option_suggests) {
  static const struct {
    const char *cmd, *bad, *want;
  } cases[] = {
      {"eval", "--calibration-samples",
       "No such option: --calibration-samples Did you mean --samples?"},
      {"prune", "--pruning-percent", "Did you mean --pruning-percentage?"},
      {"prune", "--model", "Did you mean --model-path?"},
      {"bias", "--outputdir", "Did you mean --output-dir?"},
      {"eval", "--sample=3", "No such option: --sample=3 Did you mean --samples?"},
      {"importance", "--quite", "Did you mean --quiet?"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    pf_cli c;
    pf_err err = {0};
    char *argv[] = {"pfrun", (char *)cases[k].cmd, (char *)cases[k].bad, NULL};
    ck_assert_int_ne(pf_cli_parse(3, argv, &c, &err), PF_OK);
    ck_assert_msg(strstr(err.msg, cases[k].want), "%s %s: got '%s'", cases[k].cmd, cases[k].bad,
                  err.msg);
    ck_assert_str_eq(c.usage_topic, cases[k].cmd);
    pf_cli_free(&c);
  }
  pf_cli c;
  pf_err err = {0};
  char *far[] = {"pfrun", "analyze", "--zzzzzz", NULL};
  ck_assert_int_ne(pf_cli_parse(3, far, &c, &err), PF_OK);
  ck_assert_str_eq(err.msg, "No such option: --zzzzzz");
  pf_cli_free(&c);
  char *several[] = {"pfrun", "eval", "--memory", NULL};
  ck_assert_int_ne(pf_cli_parse(3, several, &c, &err), PF_OK);
  ck_assert_msg(strstr(err.msg, "(Possible options: --max-memory, --memory-budget)") != NULL,
                "got '%s'", err.msg);
  pf_cli_free(&c);
  char *recipe[] = {"pfrun", "r.yaml", "--dryrun", NULL};
  ck_assert_int_ne(pf_cli_parse(3, recipe, &c, &err), PF_OK);
  ck_assert_msg(strstr(err.msg, "Did you mean --dry-run?") != NULL, "got '%s'", err.msg);
  ck_assert_str_eq(c.usage_topic, "recipe");
  pf_cli_free(&c);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("cli");
  TCase *tc = tcase_create("parse");
  tcase_add_test(tc, test_default_percentage);
  tcase_add_test(tc, test_rate_and_divisor);
  tcase_add_test(tc, test_indices);
  tcase_add_test(tc, test_glu_rules);
  tcase_add_test(tc, test_depth_rules);
  tcase_add_test(tc, test_other_commands);
  tcase_add_test(tc, test_help_tells_truth);
  tcase_add_test(tc, test_help_tells_truth_all);
  tcase_add_test(tc, test_help_lists_presets);
  tcase_add_test(tc, test_unknown_option_suggests);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return pf_test_main(make_suite); }
