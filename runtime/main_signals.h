/* main_signals.h — the pfrun executable's signal handlers (main_signals.c). */
#ifndef PF_MAIN_SIGNALS_H
#define PF_MAIN_SIGNALS_H

/* The signal that interrupted the run (0: none); ops poll it through pf_ctx. */
extern volatile int g_interrupt;
/* MPI ranks of this run and what a rank says when the launcher stops it: set before
 * the handlers are installed. */
extern int g_ranks;
extern char g_stop_msg[128];
/* Said after "the process crashed (signal N)": by default that the temporary files
 * were removed; under a memory cap, the cap too (set before the work). */
extern char g_crash_note[256];

/* Start the OpenMP team with the interrupts blocked, then install the handlers. */
void pf_main_install_signals(void);

#endif
