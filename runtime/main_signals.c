/* main_signals.c — the pfrun executable's signal handlers: interrupts (SIGINT,
 * SIGTERM, SIGHUP), a mapped file lost under it (SIGBUS), and crashes or a library's
 * abort. Part of the executable, not of libpfcore: they write to stderr and exit. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "main_signals.h"
#include "pf_lua.h"

volatile int g_interrupt = 0;
int g_ranks = 1;
char g_stop_msg[128];

/* SIGINT / SIGTERM / SIGHUP. The first one only sets the flag: ops stop at their
 * next safe point, remove their temporary folders and return
 * PF_ERR_INTERRUPTED. A second one (the op is stuck, or the user insists)
 * removes every registered temporary folder here and leaves at once. Only
 * async-signal-safe calls: pf_cleanup_temps uses system calls and stack buffers.
 * The handler may run on any thread (OpenMP workers do not block signals), so
 * the counter is atomic. */
static void on_signal(int sig) {
  static volatile int seen = 0;
  g_interrupt = sig;
  /* Under MPI a signal is the launcher stopping the job (Ctrl-C on mpirun, or
   * another rank's MPI_Abort): Open MPI sends SIGTERM and SIGKILL one second
   * later, and the other ranks may be waiting in a collective step, so there is
   * no stopping at the next safe point: remove the temporary folders now. */
  if (g_ranks > 1) {
    pf_cleanup_temps();
    ssize_t w = write(2, g_stop_msg, strlen(g_stop_msg));
    (void)w;
    _exit(128 + sig);
  }
  if (__sync_fetch_and_add(&seen, 1) > 0) {
    static const char msg[] = "pfrun: interrupted again: temporary folders removed, exiting\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    pf_cleanup_temps();
    _exit(128 + sig);
  }
  /* a Lua script stops at its next instruction, even inside pcall or a pure Lua loop */
  pf_lua_interrupt();
}

/* SIGBUS: a mapped file (the input weights) lost the page being read, because
 * the file was truncated or rewritten in place while pfrun used it. There is
 * no safe way to continue: remove the temporary folders, say why, leave.
 * SIGBUS goes to the thread that faulted, so several threads reading the same
 * file (the writer's) may each get one: the first cleans up and exits, the
 * others wait for that. */
static void on_sigbus(int sig) {
  static int entered;
  if (__atomic_exchange_n(&entered, 1, __ATOMIC_ACQ_REL))
    for (;;)
      pause();
  static const char msg[] =
      "pfrun: error: bus error (SIGBUS) reading a mapped file: an input checkpoint was truncated "
      "or rewritten in place while pfrun was using it (replace checkpoint files by renaming "
      "new ones into place); no output was written\n";
  ssize_t w = write(2, msg, sizeof msg - 1);
  (void)w;
  (void)sig;
  pf_cleanup_temps();
  _exit(1);
}

/* A crash (SIGSEGV, SIGILL, SIGFPE) or an abort inside a library (GLib, under pango,
 * aborts with SIGTRAP when it cannot start a thread; libgomp and BLIS abort when they
 * cannot allocate): say so on one line, remove the temporary files and folders (a
 * half-drawn chart, a checkpoint being written), then end by the same signal, so the
 * exit status and any core dump stay what they were. Written before the work, under
 * a memory cap it names the cap, the usual cause. Sanitizer builds keep their own
 * handlers (their reports are the point there). */
char g_crash_note[256] = "; its temporary files were removed\n";
static pid_t g_main_pid;

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
static void on_crash(int sig) {
  static int entered;
  /* a forked chart worker's crash is reported by pfrun, its parent, naming the chart */
  if (getpid() == g_main_pid && !__atomic_exchange_n(&entered, 1, __ATOMIC_ACQ_REL)) {
    static const char head[] = "pfrun: error: the process crashed (signal ";
    char num[4] = {(char)('0' + sig / 10 % 10), (char)('0' + sig % 10), ')', '\0'};
    ssize_t w = write(2, head, sizeof head - 1);
    w = write(2, sig >= 10 ? num : num + 1, sig >= 10 ? 3 : 2);
    w = write(2, g_crash_note, strlen(g_crash_note));
    (void)w;
    pf_cleanup_temps();
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

#endif

static void install_crash_handlers(void) {
  g_main_pid = getpid();
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  /* the handler runs on its own stack, so that a stack overflow (GLib logging that
   * it cannot allocate, recursively, under a memory cap) is said too: on the
   * overflowed stack the handler itself faulted and pfrun died without a word.
   * Static, not allocated: it is set up under the cap as well. The main thread's
   * only (an alternate stack is per thread). */
  static char alt_stack[1 << 16];
  stack_t ss = {.ss_sp = alt_stack, .ss_size = sizeof alt_stack};
  const int on_stack = sigaltstack(&ss, NULL) == 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_crash;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND | SA_NODEFER | (on_stack ? SA_ONSTACK : 0);
  const int sigs[] = {SIGSEGV, SIGILL, SIGFPE, SIGABRT, SIGTRAP};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    sigaction(sigs[i], &sa, NULL);
#endif
}

/* SIGINT, SIGTERM and SIGHUP: the interrupts. */
static void interrupt_set(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGHUP);
}

void pf_main_block_interrupts(void) {
  sigset_t set;
  interrupt_set(&set);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
}

void pf_main_install_signals(void) {
  /* Start the OpenMP worker threads now, with the signals blocked: threads
   * inherit the mask, so the handler always runs on the main thread, between
   * the steps it interrupts rather than beside them. main() blocked them already,
   * before MPI started its threads; they are unblocked in this thread alone. */
  sigset_t set;
  interrupt_set(&set);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
#pragma omp parallel
  { __asm__ volatile("" ::: "memory"); /* an empty region still starts the team */ }
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  interrupt_set(&sa.sa_mask);
  /* a signal the caller set to be ignored stays ignored: `nohup pfrun …` must
   * survive the terminal closing, `pfrun … &` in a script must ignore Ctrl-C */
  int sigs[] = {SIGINT, SIGTERM, SIGHUP}; /* SIGHUP: a closed terminal or ssh session */
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    struct sigaction old_sa;
    if (sigaction(sigs[i], NULL, &old_sa) == 0 && old_sa.sa_handler == SIG_IGN) continue;
    sigaction(sigs[i], &sa, NULL);
  }
  sa.sa_handler = on_sigbus;
  sigaction(SIGBUS, &sa, NULL);
  /* Over RLIMIT_FSIZE (ulimit -f) the kernel sends SIGXFSZ, which kills the
   * process with the temporary folder in place. Ignored, the write fails with
   * EFBIG and the normal error path reports it and cleans up. */
  signal(SIGXFSZ, SIG_IGN);
  install_crash_handlers();
}

/* ---- the standard streams ---- */

/* Descriptors 0-2 that the caller closed (a batch job's stdin, `2>&-`) are taken by
 * /dev/null opened read-only: otherwise the next file pfrun or a script opens becomes
 * "stdout" or "stderr" and receives its log lines, and the janitor's socket its stdin.
 * Read-only, so that output to a closed stdout still fails (pf_main_check_stdout), as it would. */
void pf_main_open_standard_fds(void) {
  for (int fd = 0; fd < 3; fd++)
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
      const int nul = open("/dev/null", O_RDONLY);
      if (nul >= 0 && nul != fd) { /* the lowest free descriptor: fd itself */
        dup2(nul, fd);
        close(nul);
      }
    }
}

/* A reader of our output that stopped (`| head`): SIGPIPE is caught, not ignored (an
 * ignored signal stays ignored in the programs a Lua script starts), and the write
 * fails with EPIPE instead of ending the run in the middle of its work. */
static volatile sig_atomic_t g_sigpipe;
static void on_sigpipe(int sig) {
  (void)sig;
  g_sigpipe = 1;
}

void pf_main_catch_sigpipe(void) {
  struct sigaction sa = {.sa_handler = on_sigpipe};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGPIPE, &sa, NULL);
}

/* stdout could not take what was printed (a full disk, a closed descriptor): the
 * results are lost, so the run fails (1) rather than report success. A reader that
 * closed the pipe ends it as it would have ended a plain command: 128 + SIGPIPE, quietly. */
int pf_main_check_stdout(int rc) {
  errno = 0;
  const int flushed = fflush(stdout) == 0;
  const int e = errno;
  if (flushed && !ferror(stdout)) return rc;
  if (g_sigpipe) return rc ? rc : 128 + SIGPIPE;
  if (rc == 0) {
    if (!flushed && e) /* the error of this flush; an earlier one left no errno */
      fprintf(stderr, "pfrun: error: cannot write the output (standard output: %s)\n", strerror(e));
    else
      fprintf(stderr, "pfrun: error: cannot write the output (standard output)\n");
    return 1;
  }
  return rc;
}
