/* help.h — the --help texts of pfrun (one place, so README and --help agree). */
#ifndef PF_HELP_H
#define PF_HELP_H

/* Text for topic NULL (top level), "prune", "analyze", "ops", "recipe", "lua";
 * NULL for an unknown topic. Static storage. */
const char *pf_help_text(const char *topic);

#endif
