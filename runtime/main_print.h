/* main_print.h — tables printed by the pfrun command (runtime/main_print.c). */
#ifndef PF_MAIN_PRINT_H
#define PF_MAIN_PRINT_H

#include "value.h"

/* `pfrun bench`: one line per task and metric; with --compare the parent's
 * value, the difference and the agreement. */
void print_bench(const pf_value *r);

#endif
