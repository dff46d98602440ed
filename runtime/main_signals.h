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

/* Block SIGINT, SIGTERM and SIGHUP in this thread, so that the threads started next
 * (MPI's) keep them blocked: first thing in main(). */
void pf_main_block_interrupts(void);
/* Start the OpenMP team with the interrupts blocked, unblock them in this thread alone,
 * then install the handlers. */
void pf_main_install_signals(void);

/* Descriptors 0-2 that are closed are taken by /dev/null (read-only): first in main(). */
void pf_main_open_standard_fds(void);
/* SIGPIPE caught (not ignored: programs a Lua script starts keep the default): a write
 * to a closed pipe fails with EPIPE, and the run goes on to its end. */
void pf_main_catch_sigpipe(void);
/* rc, or 1 with a message when stdout could not take what was printed (rc 0 only), or
 * 128 + SIGPIPE (quietly) when its reader closed the pipe. */
int pf_main_check_stdout(int rc);

#endif
