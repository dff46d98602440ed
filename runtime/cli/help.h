/* help.h — the --help texts of pfrun (one place, so README and --help agree). */
#ifndef PF_HELP_H
#define PF_HELP_H

#include <stddef.h>

/* Text for topic NULL (top level), "prune", "analyze", "ops", "recipe", "lua";
 * NULL for an unknown topic. Static storage. */
const char *pf_help_text(const char *topic);

/* For an unknown option `bad` ("--calibration-samples", maybe "=value") of the
 * command whose help topic is `topic`: the close options its help text lists
 * (and the options every command takes), as click words it: " Did you mean
 * --samples?" for one, " (Possible options: --a, --b)" for several (at most 3,
 * closest first); "" when none is close. Writes at most n bytes to out. */
void pf_help_suggest(const char *topic, const char *bad, char *out, size_t n);

#endif
