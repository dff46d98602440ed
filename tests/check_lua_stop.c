/* check_lua_stop.c — Lua scripts that are stopped: by an interrupt (SIGINT /
 * SIGTERM through pf_lua_interrupt, whatever pcall, xpcall or a coroutine catches on
 * the way, from the script's thread or another) and by Lua's own memory running out
 * (pf_lua_fail_allocs_after). The rest of the Lua module: check_lua.c. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "luautil.h"
#include "pf_lua.h"
#include "testutil.h"

static char *g_cache; /* PFRUN_CACHE for the whole suite (synthetic models) */

static void suite_setup(void) {
  g_cache = pf_test_tmpdir("lua-stop-cache");
  setenv("PFRUN_CACHE", g_cache, 1);
}

static void suite_teardown(void) {
  pf_test_rmtree(g_cache);
  free(g_cache);
  g_cache = NULL;
}

static volatile int g_stop;
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static void on_alarm(int sig) {
  g_stop = sig;
  pf_lua_interrupt();
}

/* An interrupt stops the script even where a pcall catches the op's "interrupted by
 * signal" (before: the loop went on, 177095 caught errors in 4 s) and in a pure Lua
 * loop (before: only a second signal ended it). */
START_TEST(test_script_interrupt) {
  char *dir = pf_test_tmpdir("lua-interrupt");
  char *marker = pf_path_join(dir, "after");
  char text[8192];
  snprintf(text, sizeof text,
           "for i = 1, 200 do pcall(pf.load, { path = 'synthetic:llama-tiny' }) end\n"
           "io.open('%s', 'w'):close()\n",
           marker);
  char *script = lua_test_script(dir, text);
  pf_err err = {0};
  g_stop = 1; /* set before the script starts */
  pf_ctx ctx = {.interrupt = &g_stop};
  ck_assert_int_eq(pf_lua_run_file(script, 0, NULL, &ctx, &err), PF_ERR_INTERRUPTED);
  pf_assert_err(err, "interrupted by signal");
  ck_assert_msg(access(marker, F_OK) != 0, "the script went on after the interrupt");
  /* set by a signal while the script runs: a pure Lua loop, and a loop whose pcall
   * catches the interruption itself */
  const char *loops[] = {"local t = os.clock()\n"
                         "while os.clock() - t < 10 do end\n",
                         "local t = os.clock()\n"
                         "while os.clock() - t < 10 do pcall(function() for i = 1, 1e3 do end end) "
                         "end\n"};
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  ck_assert_int_eq(sigaction(SIGALRM, &sa, &old), 0);
  for (int i = 0; i < 2; i++) {
    snprintf(text, sizeof text, "%sio.open('%s', 'w'):close()\n", loops[i], marker);
    pf_test_write(script, text);
    g_stop = 0;
    struct itimerval it = {.it_value = {.tv_usec = 200000}};
    ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
    double t0 = now_s();
    ck_assert_int_eq(pf_lua_run_file(script, 0, NULL, &ctx, &err), PF_ERR_INTERRUPTED);
    ck_assert_msg(now_s() - t0 < 5, "loop %d ran on for %.1f s", i, now_s() - t0);
    pf_assert_err(err, "script.lua:2: interrupted by signal");
    ck_assert_msg(access(marker, F_OK) != 0, "loop %d went on after the interrupt", i);
  }
  sigaction(SIGALRM, &old, NULL);
  /* outside a script, pf_lua_interrupt does nothing; the next script runs normally */
  g_stop = 0;
  pf_lua_interrupt();
  pf_test_write(script, "local x = 0 for i = 1, 1e5 do x = x + i end\n");
  ck_assert_msg(pf_lua_run_file(script, 0, NULL, &ctx, &err) == PF_OK, "%s", err.msg);
  free(script);
  free(marker);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

/* Run `body` with arg[1] (a file the script's handlers write) and arg[2] (written
 * after body: must not exist) and a SIGALRM 200 ms in; the script must stop with
 * "interrupted by signal" within 5 s, and arg[1] exist iff `ran` says so. */
static void interrupted_by_alarm(const char *dir, const char *body, int ran) {
  char *script = pf_path_join(dir, "script.lua"), *handled = pf_path_join(dir, "handled");
  char *after = pf_path_join(dir, "after");
  char text[4096];
  snprintf(text, sizeof text, "%s\nio.open(arg[2], 'w'):close()\n", body);
  pf_test_write(script, text);
  unlink(handled);
  unlink(after);
  char *argv[] = {handled, after};
  pf_ctx ctx = {.interrupt = &g_stop};
  pf_err err = {0};
  g_stop = 0;
  struct itimerval it = {.it_value = {.tv_usec = 200000}};
  ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
  double t0 = now_s();
  pf_status st = pf_lua_run_file(script, 2, argv, &ctx, &err);
  ck_assert_msg(st == PF_ERR_INTERRUPTED, "%s\nended with status %d: %s", body, st, err.msg);
  ck_assert_msg(now_s() - t0 < 5, "%s\nran on for %.1f s", body, now_s() - t0);
  pf_assert_err(err, "interrupted by signal");
  ck_assert_msg(access(after, F_OK) != 0, "%s\nwent on after the interrupt", body);
  ck_assert_msg((access(handled, F_OK) == 0) == ran, "%s\nits handler %s", body,
                ran ? "did not run" : "ran");
  free(after);
  free(handled);
  free(script);
}

/* After an interrupt, __close handlers and xpcall message handlers run (before: the
 * interrupt hook raised again at each of their instructions, so none of them ran),
 * and the interruption still cannot be swallowed by pcall, xpcall or
 * coroutine.resume, around an op or around a pure Lua loop. */
START_TEST(test_script_interrupt_handlers) {
  char *dir = pf_test_tmpdir("lua-interrupt-handlers");
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  ck_assert_int_eq(sigaction(SIGALRM, &sa, &old), 0);
#define GUARD                                                                                      \
  "local guard <close> = setmetatable({}, { __close = function()\n"                                \
  "  local f = io.open(arg[1], 'w') f:write('closed') f:close() end })\n"
#define LOOP(x) "local t = os.clock() while os.clock() - t < 10 do " x " end"
#define LOAD "pf.load{ path = 'synthetic:llama-tiny' }"
  interrupted_by_alarm(dir, GUARD LOOP(""), 1);
  interrupted_by_alarm(dir, GUARD LOOP(LOAD), 1);
  interrupted_by_alarm(dir,
                       "local function h(e) io.open(arg[1], 'w'):close() return e end\n"
                       "xpcall(function() " LOOP("") " end, h)",
                       1);
  /* ops in a loop inside the xpcall (a loop of xpcalls would race: the signal may come
   * between two of them, where no handler is in place) */
  interrupted_by_alarm(dir,
                       "local function h(e) io.open(arg[1], 'w'):close() return e end\n"
                       "xpcall(function() " LOOP(LOAD) " end, h)",
                       1);
  interrupted_by_alarm(dir, "pcall(function() " LOOP("") " end)", 0);
  interrupted_by_alarm(dir, LOOP("pcall(pf.load, { path = 'synthetic:llama-tiny' })"), 0);
  interrupted_by_alarm(dir, LOOP("pcall(function() for i = 1, 1e3 do end end)"), 0);
  interrupted_by_alarm(dir, LOOP("coroutine.resume(coroutine.create(function() " LOAD " end))"), 0);
  interrupted_by_alarm(dir,
                       "local co = coroutine.wrap(function() while true do coroutine.yield() end "
                       "end)\n" LOOP("pcall(co)"),
                       0);
#undef GUARD
#undef LOOP
#undef LOAD
  sigaction(SIGALRM, &old, NULL);
  /* the wrappers keep pcall and xpcall yieldable and their results as they were */
  lua_test_script_ok(
      "lua-pcall-yield",
      "local co = coroutine.wrap(function(a)\n"
      "  local ok, b = pcall(coroutine.yield, a + 1)\n"
      "  local ok2, e = xpcall(function() error({ b }) end, function(x) return x[1] end)\n"
      "  return ok, b, ok2, e\n"
      "end)\n"
      "assert(co(1) == 2)\n"
      "local ok, b, ok2, e = co(5)\n"
      "assert(ok == true and b == 5 and ok2 == false and e == 5)\n"
      "assert(select('#', pcall(function() return 1, nil, 3 end)) == 4)\n"
      "local c = coroutine.create(function() error('x') end)\n"
      "local okc, ec = coroutine.resume(c)\n"
      "assert(not okc and ec:find('x'))\n"
      "local okr, er = pcall(coroutine.resume, 1)\n"
      "assert(not okr and er:find(\"bad argument #1 to 'coroutine.resume'\", 1, true), er)\n"
      "local okp, ep = pcall(pcall)\n"
      "assert(not okp and ep:find(\"bad argument #1 to 'pcall'\", 1, true), ep)\n");
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

static void *interrupt_from_thread(void *arg) {
  (void)arg;
  struct timespec ts = {.tv_nsec = 200000000};
  nanosleep(&ts, NULL);
  g_stop = SIGTERM;
  pf_lua_interrupt(); /* as a signal handler run on a worker thread would */
  return NULL;
}

/* pf_lua_interrupt on a thread other than the script's does nothing (before: it set
 * the hook on the running VM from that thread, a data race; the script stopped by
 * chance): the flag alone is set (ops would stop), and the pure Lua loop runs to its
 * end; the host sees the flag (pfrun exits 128 + signal "after the work finished"). */
START_TEST(test_script_interrupt_other_thread) {
  char *dir = pf_test_tmpdir("lua-interrupt-thread");
  char *after = pf_path_join(dir, "after");
  char *script = lua_test_script(dir, "local t = os.clock() while os.clock() - t < 1 do end\n"
                                      "io.open(arg[1], 'w'):close()\n");
  char *argv[] = {after};
  pf_ctx ctx = {.interrupt = &g_stop};
  pf_err err = {0};
  g_stop = 0;
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, interrupt_from_thread, NULL), 0);
  pf_status st = pf_lua_run_file(script, 1, argv, &ctx, &err);
  pthread_join(th, NULL);
  ck_assert_msg(st == PF_OK && access(after, F_OK) == 0, "the hook was set from another thread: %s",
                err.msg);
  g_stop = 0;
  free(script);
  free(after);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

/* An op's error keeps the op's status when it ends the script (before, every
 * op failure came back as PF_ERR_INVALID, "invalid argument"); errors of the
 * script itself stay PF_ERR_INVALID. */
/* Lua's memory running out anywhere in a script's run: in the libraries' setup, in
 * an op's results, in the error's traceback, at the end of the script with the
 * memory still full. Each run must end in a status (PF_ERR_NOMEM, or PF_OK once the
 * allocations suffice), never in Lua's "unprotected error" panic, an abort that
 * ends this test's process (before: setting the closing flag after the run, and
 * the message handler's closure before it, allocated outside any protected call:
 * 251 of 258 failure points of scripts/sweep_width.lua aborted under an injected
 * failure). Every allocation point up to the first run that succeeds. */
START_TEST(test_script_out_of_lua_memory) {
  char *dir = pf_test_tmpdir("lua-nomem");
  char *script = lua_test_script(
      dir, "local m <close> = pf.load{ path = 'synthetic:llama-tiny' }\n"
           "local t = {}\n"
           "for _, pct in ipairs{10, 20} do\n"
           "  local p <close>, stats = pf.prune_width{ model = m, pruning_percentage = pct }\n"
           "  t[#t + 1] = stats\n"
           "end\n"
           "assert(#t == 2)\n");
  int nomem = 0, ok = 0;
  long n = 0;
  for (; n < 100000 && !ok; n++) {
    pf_lua_fail_allocs_after = n;
    pf_err err = {0};
    pf_status st = pf_lua_run_file(script, 0, NULL, NULL, &err);
    pf_lua_fail_allocs_after = -1;
    ck_assert_msg(st == PF_OK || st == PF_ERR_NOMEM, "after %ld allocations: status %d: %s", n,
                  (int)st, err.msg);
    if (st == PF_OK)
      ok = 1;
    else
      nomem++;
  }
  ck_assert_msg(ok && nomem > 100, "%d runs out of memory before the first success (%ld)", nomem,
                n);
  free(script);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("lua_stop");
  TCase *tc = tcase_create("core");
  tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_script_interrupt);
  tcase_add_test(tc, test_script_interrupt_handlers);
  tcase_add_test(tc, test_script_interrupt_other_thread);
  tcase_add_test(tc, test_script_out_of_lua_memory);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
