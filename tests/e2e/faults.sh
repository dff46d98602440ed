#!/usr/bin/env bash
# End-to-end fault injection (docs/reliability.md "Faults"): the real binary under a
# file-size limit, on a full / read-only file system, with an unwritable output
# path, with a shard missing or deleted / truncated mid-run, interrupted by
# SIGINT / SIGTERM during a save, and under --max-memory. Every failure must exit
# non-zero with one clear line, leave no output folder and no "*.tmp-*", and
# leave the input folder byte-identical.
source "$(dirname "$0")/lib.bash" || exit 1 # no helpers, no $WORK: stop before touching anything
D="$SRC/recipes/data"
MOUNTS=()
cleanup_mounts() { for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null; done; rm -rf "$WORK"; }
trap cleanup_mounts EXIT

# sha256 of every file of a folder (names + contents)
tree_sum() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum; }
# no_trace DESC OUT: nothing at OUT, no OUT.tmp-* / OUT.old-* beside it
no_trace() {
  local d=$1 out=$2
  if [ -e "$out" ] || compgen -G "$out.tmp-*" >/dev/null || compgen -G "$out.old-*" >/dev/null; then
    bad "$d: left output behind: $(ls -d "$out" "$out".tmp-* "$out".old-* 2>/dev/null | tr '\n' ' ')"
  else ok; fi
}
# one_line DESC: the last run printed exactly one line, starting "pfrun: error:"
one_line() {
  if [ "$(printf '%s\n' "$OUT" | wc -l)" -eq 1 ] && [[ $OUT == "pfrun: error: "* ]]; then ok
  else bad "$1: expected one 'pfrun: error:' line, got: $OUT"; fi
}
# fault DESC NEEDLE OUTDIR ARGS...: fails with NEEDLE on one line, leaves nothing
fault() {
  local d=$1 needle=$2 out=$3; shift 3
  expect_fail "$d" "$needle" "$@"
  [ -n "${FAULTS_VERBOSE:-}" ] && echo "  $d: exit $RC: $OUT"
  one_line "$d"
  no_trace "$d" "$out"
}
# Background jobs of a non-interactive shell start with SIGINT ignored, and pfrun
# keeps an ignored signal ignored (as `nohup` needs): the runs that get signals
# start through `env --default-signal` (env execs pfrun: $! is pfrun's pid).
# wait_for_glob PID GLOB: until GLOB exists (returns 0) or PID exited (1). The globs
# name the pid (temp folders are "<target>.tmp-<host>_p<ns>-<pid>-XXXXXX"): a folder
# left by an earlier run must not set off the signal before this run has even
# started pfrun -- bash's forked child, not yet exec'd, would run the script's EXIT
# trap on SIGHUP and remove $WORK (seen once in CI).
wait_for_glob() {
  local pid=$1 glob=$2
  while ! compgen -G "$glob" >/dev/null; do
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.005
  done
  return 0
}

# ---- inputs: a real folder (so it can be hashed) and a sharded copy ----
expect_ok "make input" analyze --model-path synthetic:llama-small --quiet
IN="$WORK/in"
cp -r "$(ls -d "$PFRUN_CACHE"/synthetic/llama-small-* | head -1)" "$IN"
expect_ok "sharded input" prune --model-path "$IN" --output-path "$WORK/insh" --pruning-type DEPTH --num-layers-to-remove 1 --max-shard-size 1MB --quiet
check "input is sharded" test -f "$WORK/insh/model.safetensors.index.json"
SUM_IN=$(tree_sum "$IN")
SUM_SH=$(tree_sum "$WORK/insh")
prune_to() { local out=$1; shift; run prune --model-path "$IN" --output-path "$out" --quiet "$@"; }

# ---- file too large: RLIMIT_FSIZE (ulimit -f); SIGXFSZ is ignored, write -> EFBIG ----
O="$WORK/efbig"
OUT=$( (ulimit -f 1024; "$PFRUN" prune --model-path "$IN" --output-path "$O" --quiet) 2>&1); RC=$?
if [ "$RC" -eq 1 ] && grep -q "File too large" <<<"$OUT"; then ok; else bad "ulimit -f: exit $RC: $OUT"; fi
one_line "ulimit -f"
no_trace "ulimit -f" "$O"
O="$WORK/deep/er/efbig"
OUT=$( (ulimit -f 256; "$PFRUN" prune --model-path "$IN" --output-path "$O" --quiet --max-shard-size 500KB) 2>&1); RC=$?
if [ "$RC" -eq 1 ] && grep -q "File too large" <<<"$OUT"; then ok; else bad "ulimit -f sharded: exit $RC: $OUT"; fi
check "ulimit -f: parent folders the save created are removed" test ! -e "$WORK/deep"
check "ulimit -f: input untouched" test "$(tree_sum "$IN")" = "$SUM_IN"

# ---- unwritable output paths (root ignores permissions: use ENOTDIR and /proc) ----
touch "$WORK/afile"
fault "output below a regular file" "not a directory" "$WORK/afile/out" prune --model-path "$IN" --output-path "$WORK/afile/out" --quiet
fault "output in /proc" "cannot create temporary folder" "/proc/pfrun-fault-out" prune --model-path "$IN" --output-path /proc/pfrun-fault-out --quiet
fault "output path is a file" "exists and is not a folder" "$WORK/nothing" prune --model-path "$IN" --output-path "$WORK/afile" --quiet
check "afile untouched" test -f "$WORK/afile" -a ! -s "$WORK/afile"

# ---- an input that is not a regular file: refused at once, never blocks ----
# (a tarball can carry a FIFO named tokenizer.json; open() of a FIFO without a
# writer blocked for ever before). Each run gets 10 s; 124 is timeout's "timed out".
fifo_fault() { # DESC NEEDLE ARGS...
  local d=$1 needle=$2; shift 2
  OUT=$(timeout -k 2 10 "$PFRUN" "$@" 2>&1); RC=$?
  if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then bad "$d: blocked (still running after 10 s)"
  elif [ "$RC" -ne 0 ] && [ "$RC" -lt 128 ] && grep -qF -- "$needle" <<<"$OUT"; then ok
  else bad "$d: exit $RC, wanted failure containing '$needle', got: $OUT"; fi
  [ -n "${FAULTS_VERBOSE:-}" ] && echo "  $d: exit $RC: $OUT"
  one_line "$d"
}
FI="$WORK/fifo-model"
cp -r "$IN" "$FI"
rm "$FI/tokenizer.json" && mkfifo "$FI/tokenizer.json"
fifo_fault "FIFO tokenizer.json: eval" "$FI/tokenizer.json: expected a regular file, found a FIFO" eval --model-path "$FI" --data "$D/calib.txt" --quiet
fifo_fault "FIFO tokenizer.json: tokenize" "$FI/tokenizer.json: expected a regular file, found a FIFO" tokenize --model-path "$FI" "hello"
fifo_fault "FIFO tokenizer.json: prune (the save copies it)" "$FI/tokenizer.json: expected a regular file, found a FIFO" prune --model-path "$FI" --output-path "$WORK/fifo-out" --quiet
no_trace "FIFO tokenizer.json: prune" "$WORK/fifo-out"
FC="$WORK/fifo-config"
cp -r "$IN" "$FC"
rm "$FC/config.json" && mkfifo "$FC/config.json"
fifo_fault "FIFO config.json" "$FC/config.json: expected a regular file, found a FIFO" analyze --model-path "$FC"
FS="$WORK/fifo-weights"
cp -r "$IN" "$FS"
rm "$FS/model.safetensors" && mkfifo "$FS/model.safetensors"
fifo_fault "FIFO model.safetensors" "$FS/model.safetensors: expected a regular file, found a FIFO" analyze --model-path "$FS"
mkfifo "$WORK/fifo.txt" "$WORK/fifo.yaml" "$WORK/fifo.lua" "$WORK/fifo.jsonl"
fifo_fault "FIFO data file" "$WORK/fifo.txt: expected a data file, found a FIFO" eval --model-path "$IN" --data "$WORK/fifo.txt" --quiet
fifo_fault "FIFO recipe" "$WORK/fifo.yaml: expected a recipe file, found a FIFO" "$WORK/fifo.yaml" --dry-run
fifo_fault "FIFO Lua script" "$WORK/fifo.lua: expected a regular file, found a FIFO" "$WORK/fifo.lua"
fifo_fault "FIFO prompt pairs" "$WORK/fifo.jsonl: expected a regular file, found a FIFO" bias --model-path "$IN" --prompt-pairs "$WORK/fifo.jsonl" --output-dir "$WORK/fifo-bias" --quiet
mkdir -p "$WORK/dirtok/tokenizer.json"
fifo_fault "folder as tokenizer.json" "$WORK/dirtok/tokenizer.json: expected a regular file, found a folder" tokenize --model-path "$WORK/dirtok" "x"
check "FIFO inputs: input untouched" test "$(tree_sum "$IN")" = "$SUM_IN"

# ---- full / read-only file systems (tmpfs; needs mount, i.e. root) ----
MNT="$WORK/mnt"
mkdir -p "$MNT/full" "$MNT/ro" "$MNT/scratch"
if mount -t tmpfs -o size=2m pfrun-full "$MNT/full" 2>/dev/null; then
  MOUNTS+=("$MNT/full")
  fault "disk full (2 MB tmpfs)" "No space left on device" "$MNT/full/out" prune --model-path "$IN" --output-path "$MNT/full/out" --quiet
  fault "disk full, sharded output" "No space left on device" "$MNT/full/sh" prune --model-path "$IN" --output-path "$MNT/full/sh" --max-shard-size 500KB --quiet
  check "disk full: the file system is empty again" test -z "$(ls -A "$MNT/full")"
  # the recipe front end: step error, no checkpoint, results.json not half-written
  fault "disk full in a recipe" "No space left on device" "$MNT/full/rec/width-maw20" "$SRC/recipes/demo.yaml" --set output_dir="$MNT/full/rec" --quiet
  check "disk full recipe: no temp anywhere" test -z "$(find "$MNT/full" -name '*.tmp-*')"
  # a JSON output on a full disk: the old file keeps its contents, no temp file
  rm -rf "${MNT:?}/full/"*
  echo '{"old": true}' > "$MNT/full/stats.json"
  head -c $((2048 * 1024 - 16384)) /dev/zero > "$MNT/full/filler" 2>/dev/null
  OUT=$("$PFRUN" prune --model-path "$IN" --output-path "$WORK/st-ok" --quiet --stats-json "$MNT/full/stats.json" 2>&1); RC=$?
  if [ "$RC" -eq 1 ] && grep -q "stats.json: write failed: No space left on device" <<<"$OUT"; then ok; else bad "stats-json on a full disk: exit $RC: $OUT"; fi
  check "stats-json keeps its old contents" grep -q '"old"' "$MNT/full/stats.json"
  check "stats-json leaves no temp file" test -z "$(find "$MNT/full" -name '*.tmp-*')"
  # ... and the checkpoint it would describe is not saved either (before: saved, then exit 1,
  # and the same command then refused the output folder as not empty)
  no_trace "stats-json on a full disk: no checkpoint" "$WORK/st-ok"
  rm -rf "${MNT:?}/full/"* "$WORK/st-ok"
  mount -t tmpfs -o size=8m,ro pfrun-ro "$MNT/ro" && MOUNTS+=("$MNT/ro")
  fault "read-only file system" "Read-only file system" "$MNT/ro/out" prune --model-path "$IN" --output-path "$MNT/ro/out" --quiet
  check "full/ro: input untouched" test "$(tree_sum "$IN")" = "$SUM_IN"
  # a full scratch folder ($PFRUN_SCRATCH, pruned slices >= 16 MB) falls back to memory
  mount -t tmpfs -o size=1m pfrun-scratch "$MNT/scratch" && MOUNTS+=("$MNT/scratch")
  expect_ok "make llama-medium" analyze --model-path synthetic:llama-medium --quiet
  OUT=$(PFRUN_SCRATCH="$MNT/scratch" "$PFRUN" prune --model-path synthetic:llama-medium --output-path "$WORK/scr" --pruning-percentage 50 --quiet 2>&1); RC=$?
  if [ "$RC" -eq 0 ] && [ -f "$WORK/scr/model.safetensors" ]; then ok; else bad "full scratch folder: exit $RC: $OUT"; fi
  rm -rf "$WORK/scr"
else
  echo "SKIP faults.sh full/read-only file system part: cannot mount a tmpfs here (needs root)"
fi

# ---- shards: missing at load; deleted / truncated while mapped ----
cp -r "$WORK/insh" "$WORK/miss"
rm "$WORK/miss"/model-00002-of-*.safetensors
fault "shard missing at load" "model-00002-of-" "$WORK/miss-out" prune --model-path "$WORK/miss" --output-path "$WORK/miss-out" --quiet
expect_in "shard missing: says why" "No such file or directory"
check "sharded input untouched" test "$(tree_sum "$WORK/insh")" = "$SUM_SH"

# llama-medium (300 MB F32), sharded, so that a save takes long enough to hit
expect_ok "make llama-medium" analyze --model-path synthetic:llama-medium --quiet
MED="$WORK/med"
expect_ok "sharded llama-medium" prune --model-path synthetic:llama-medium --output-path "$MED" --pruning-type DEPTH --num-layers-to-remove 1 --max-shard-size 50MB --quiet
SUM_MED=$(tree_sum "$MED")
expect_ok "reference save" prune --model-path "$MED" --output-path "$WORK/ref" --dtype bfloat16 --quiet
# deleted mid-run: the mapping keeps the unlinked file readable; the output is whole
cp -r "$MED" "$WORK/meddel"
env --default-signal "$PFRUN" prune --model-path "$WORK/meddel" --output-path "$WORK/del" --dtype bfloat16 --quiet > "$WORK/del.log" 2>&1 &
pid=$!
wait_for_glob $pid "$WORK/del.tmp-*-$pid-*" && rm "$WORK/meddel"/model-00005-of-*.safetensors
wait $pid; RC=$?
check "shard deleted mid-run: exit 0 ($(cat "$WORK/del.log"))" test "$RC" -eq 0
check "shard deleted mid-run: output identical to the reference" cmp -s <(cat "$WORK/ref"/*.safetensors) <(cat "$WORK/del"/*.safetensors)
rm -rf "$WORK/meddel" "$WORK/del"
# truncated in place mid-run: SIGBUS on the mapped pages -> one line, exit 1, no output
cp -r "$MED" "$WORK/medtr"
env --default-signal "$PFRUN" prune --model-path "$WORK/medtr" --output-path "$WORK/tr" --dtype bfloat16 --quiet > "$WORK/tr.log" 2>&1 &
pid=$!
wait_for_glob $pid "$WORK/tr.tmp-*-$pid-*" && truncate -s 0 "$WORK/medtr"/model-00006-of-*.safetensors
wait $pid; RC=$?; OUT=$(cat "$WORK/tr.log")
if [ "$RC" -eq 1 ] && grep -q "truncated or rewritten in place" <<<"$OUT"; then ok; else bad "shard truncated mid-run: exit $RC: $OUT"; fi
one_line "shard truncated mid-run"
no_trace "shard truncated mid-run" "$WORK/tr"
rm -rf "$WORK/medtr"

# ---- SIGINT / SIGTERM during a save (the temp folder exists) ----
# interrupt SIG EXPECTED_RC [SECOND_SIG]: retried when the save finished first
interrupt() {
  local sig=$1 want=$2 second=${3:-} o="$WORK/sig" try
  for try in 1 2 3; do
    rm -rf "$o"
    env --default-signal "$PFRUN" prune --model-path "$MED" --output-path "$o" --dtype bfloat16 --quiet > "$WORK/sig.log" 2>&1 &
    local pid=$!
    if wait_for_glob $pid "$o.tmp-*-$pid-*"; then
      kill -"$sig" $pid
      [ -n "$second" ] && kill -"$second" $pid 2>/dev/null
    fi
    wait $pid; RC=$?; OUT=$(cat "$WORK/sig.log")
    [ "$RC" -ne 0 ] && break
    echo "faults.sh: SIG$sig: the save finished before the signal (try $try)"
  done
  local say="interrupted by signal"
  [ -n "$second" ] && say="interrupted again: temporary folders removed"
  [ -n "${FAULTS_VERBOSE:-}" ] && echo "  SIG$sig${second:+ + SIG$second}: exit $RC: $OUT"
  if [ "$RC" -eq "$want" ] && grep -q "$say" <<<"$OUT"; then ok
  else bad "SIG$sig${second:+ + SIG$second} during save: exit $RC (wanted $want): $OUT"; fi
  no_trace "SIG$sig${second:+ + SIG$second} during save" "$o"
}
interrupt INT 130
interrupt TERM 143
interrupt INT 143 TERM   # a second signal: temp removed by the handler, _exit at once
interrupt HUP 129

# a recipe interrupted in its save step: what the finished steps computed is kept in
# results.json, marked interrupted (before: no results.json at all)
RI="$WORK/rec-int"
cat > "$WORK/int.yaml" <<YAML
pfrun: 1
output_dir: $RI
steps:
  - {id: base, op: load, path: '$MED'}
  - {id: w, op: prune_width, model: base, pruning_percentage: 20}
  - {op: save, model: w, path: '$RI/ck', dtype: bfloat16}
YAML
for try in 1 2 3; do
  rm -rf "$RI"
  env --default-signal "$PFRUN" "$WORK/int.yaml" --quiet > "$WORK/ri.log" 2>&1 &
  pid=$!
  wait_for_glob $pid "$RI/ck.tmp-*-$pid-*" && kill -INT $pid
  wait $pid; RC=$?
  [ "$RC" -ne 0 ] && break
done
OUT=$(cat "$WORK/ri.log")
if [ "$RC" -eq 130 ] && grep -qF "[the results of the 2 finished steps: $RI/results.json]" <<<"$OUT"; then ok
else bad "recipe interrupted in its save: exit $RC: $OUT"; fi
check "recipe interrupted: results.json says so ($(head -c 300 "$RI/results.json" 2>&1))" \
  grep -q '"status": "interrupted"' "$RI/results.json"
check "recipe interrupted: results.json has the pruning statistics" grep -q '"percentage_reduction"' "$RI/results.json"
no_trace "recipe interrupted in its save" "$RI/ck"

# ---- a Lua script stops at the first signal, even where pcall catches errors ----
# (before: a pcall loop caught the op's "interrupted by signal" and went on; a pure
# Lua loop ignored the first signal, only a second one ended it)
cat > "$WORK/pcall-loop.lua" <<'LUA'
io.open(arg[1] .. ".started", "w"):close()
while true do
  pcall(pf.load, { path = "synthetic:llama-tiny" })
end
LUA
cat > "$WORK/pure-loop.lua" <<'LUA'
io.open(arg[1] .. ".started", "w"):close()
while true do end
LUA
lua_interrupt() {
  local script=$1 sig=$2 want=$3 m="$WORK/luasig"
  rm -f "$m".*
  env --default-signal "$PFRUN" --quiet "$WORK/$script.lua" "$m" > "$WORK/luasig.log" 2>&1 &
  local pid=$!
  while [ ! -e "$m.started" ] && kill -0 $pid 2>/dev/null; do sleep 0.01; done
  sleep 0.2
  kill -"$sig" $pid
  local waited=0
  while kill -0 $pid 2>/dev/null && [ $waited -lt 50 ]; do sleep 0.1; waited=$((waited + 1)); done
  kill -0 $pid 2>/dev/null && { kill -KILL $pid; bad "$script SIG$sig: still running 5 s after the signal"; }
  wait $pid; RC=$?; OUT=$(cat "$WORK/luasig.log")
  if [ "$RC" -eq "$want" ] && grep -q "interrupted by signal" <<<"$OUT" && ! grep -q "interrupted again" <<<"$OUT"; then ok
  else bad "$script SIG$sig: exit $RC (wanted $want after one signal): $OUT"; fi
}
lua_interrupt pcall-loop INT 130
lua_interrupt pcall-loop TERM 143
lua_interrupt pure-loop INT 130
lua_interrupt pure-loop TERM 143
# the interruption of a long op runs the script's __close handlers and xpcall message
# handler, and still ends it (before: the interrupt hook raised again at their first
# instruction: the __close handler never ran, the message handler ran on the hook's
# error)
T=$(tr -d '"\\' <"$D/calib.txt" | tr '\n' ' ' | cut -c1-600)
for i in $(seq 400); do printf '{"text": "%s %d"}\n' "$T" "$i"; done >"$WORK/long.jsonl"
cat > "$WORK/handlers.lua" <<'LUA'
local guard <close> = setmetatable({}, { __close = function()
  io.open(arg[1] .. ".closed", "w"):close()
end })
local m <close> = pf.load{ path = "synthetic:llama-small" }
io.open(arg[1] .. ".started", "w"):close()
xpcall(function()
  pf.calibrate{ model = m, data = arg[2], max_length = 128, batch_size = 1 }
end, function(e)
  local f = io.open(arg[1] .. ".handled", "a") f:write(tostring(e), "\n") f:close() return e
end)
io.open(arg[1] .. ".after", "w"):close()
LUA
m="$WORK/luah"
rm -f "$m".*
env --default-signal "$PFRUN" --quiet "$WORK/handlers.lua" "$m" "$WORK/long.jsonl" > "$WORK/luah.log" 2>&1 &
pid=$!
while [ ! -e "$m.started" ] && kill -0 $pid 2>/dev/null; do sleep 0.01; done
sleep 0.2
kill -TERM $pid
wait $pid; RC=$?; OUT=$(cat "$WORK/luah.log")
if [ "$RC" -eq 143 ] && grep -q "interrupted by signal" <<<"$OUT"; then ok
else bad "SIGTERM during pf.calibrate: exit $RC (wanted 143): $OUT"; fi
check "SIGTERM during pf.calibrate: the __close handler ran" test -e "$m.closed"
# once, with the op's error (before: it ran again on the hook's own error)
check "SIGTERM during pf.calibrate: the xpcall message handler ran once, on the op's error ($(cat "$m.handled" 2>&1))" \
  test "$(grep -c . "$m.handled" 2>/dev/null)" = 1 -a "$(grep -c "pf.calibrate: .*interrupted by signal" "$m.handled" 2>/dev/null)" = 1
check "SIGTERM during pf.calibrate: nothing ran after xpcall" test ! -e "$m.after"
# SIGKILL (the OOM killer, an MPI launcher's second step) cannot be handled: the
# janitor process (its own session, a child of pfrun) removes the temp folder once pfrun
# is gone (before: left until the next save to the same output)
# wait_gone GLOB: until nothing matches (0) or 10 s passed (1)
wait_gone() { for _ in $(seq 200); do compgen -G "$1" >/dev/null || return 0; sleep 0.05; done; return 1; }
rm -rf "$WORK/kill"
"$PFRUN" prune --model-path "$MED" --output-path "$WORK/kill" --dtype bfloat16 --quiet > "$WORK/kill.log" 2>&1 &
pid=$!
if wait_for_glob $pid "$WORK/kill.tmp-*-$pid-*"; then
  kill -KILL $pid; wait $pid 2>/dev/null
  check "SIGKILL during save: the janitor removes the temp folder" wait_gone "$WORK/kill.tmp-*"
else
  wait $pid
  echo "faults.sh: SIGKILL: the save finished before the signal (skipped)"
fi
rm -rf "$WORK/kill" "$WORK"/kill.tmp-*
# ... also when pfrun started with stdin or stdout closed (before: the janitor's socket
# became fd 0 / 1, which it then replaced by /dev/null, and it died at start), and when
# the janitor got the job's SIGTERM first (Slurm signals every process of a job; before:
# it died of it)
kill_case() {
  local how=$1 pid jan
  rm -rf "$WORK/kill" "$WORK"/kill.tmp-*
  case $how in
  stdin) "$PFRUN" prune --model-path "$MED" --output-path "$WORK/kill" --dtype bfloat16 --quiet 0<&- > "$WORK/kill.log" 2>&1 & ;;
  stdout) "$PFRUN" prune --model-path "$MED" --output-path "$WORK/kill" --dtype bfloat16 --quiet >&- 2> "$WORK/kill.log" & ;;
  *) "$PFRUN" prune --model-path "$MED" --output-path "$WORK/kill" --dtype bfloat16 --quiet > "$WORK/kill.log" 2>&1 & ;;
  esac
  pid=$!
  if wait_for_glob $pid "$WORK/kill.tmp-*-$pid-*"; then
    jan=$(pgrep -P $pid)
    [ "$how" = term ] && [ -n "$jan" ] && kill -TERM $jan && sleep 0.1
    kill -KILL $pid; wait $pid 2>/dev/null
    check "SIGKILL during save ($how): the janitor removes the temp folder" wait_gone "$WORK/kill.tmp-*"
  else
    wait $pid
    echo "faults.sh: SIGKILL ($how): the save finished before the signal (skipped)"
  fi
}
kill_case stdin
kill_case stdout
kill_case term
rm -rf "$WORK/kill" "$WORK"/kill.tmp-*
# ... and with the janitor killed too (a machine's crash, a kill of the whole session):
# the temp folder stays; the next save to the same output removes it (its process is gone)
"$PFRUN" prune --model-path "$MED" --output-path "$WORK/kill" --dtype bfloat16 --quiet > "$WORK/kill.log" 2>&1 &
pid=$!
if wait_for_glob $pid "$WORK/kill.tmp-*-$pid-*"; then
  jan=$(pgrep -P $pid)
  [ -n "$jan" ] && kill -KILL $jan
  kill -KILL $pid; wait $pid 2>/dev/null
  sleep 0.2
  check "SIGKILL of pfrun and its janitor ($jan): the temp folder is left" test -n "$(compgen -G "$WORK/kill.tmp-*")"
  expect_ok "save again after SIGKILL" prune --model-path "$MED" --output-path "$WORK/kill" --dtype bfloat16 --quiet
  check "save again after SIGKILL: the stale temp folder is gone" test -z "$(compgen -G "$WORK/kill.tmp-*")"
  check "save again after SIGKILL: the checkpoint is there" test -f "$WORK/kill/config.json"
else
  wait $pid
  echo "faults.sh: SIGKILL + janitor: the save finished before the signal (skipped)"
fi
rm -rf "$WORK/kill" "$WORK"/kill.tmp-*
# a crash (here a SIGSEGV sent during the save; a library's abort ends the same way):
# one line, the temporary folder removed, the same signal ends the process (139).
# Sanitizer builds keep their own handlers.
if ! ldd "$PFRUN" 2>/dev/null | grep -q libasan; then
  rm -rf "$WORK/segv"
  env --default-signal "$PFRUN" prune --model-path "$MED" --output-path "$WORK/segv" --dtype bfloat16 --quiet > "$WORK/segv.log" 2>&1 &
  pid=$!
  if wait_for_glob $pid "$WORK/segv.tmp-*-$pid-*"; then
    kill -SEGV $pid
    wait $pid; RC=$?
    OUT=$(cat "$WORK/segv.log")
    check "SIGSEGV during save: exit 139 (got $RC: $OUT)" test "$RC" -eq 139
    expect_in "SIGSEGV during save: said" "pfrun: error: the process crashed (signal 11); its temporary files were removed"
    no_trace "SIGSEGV during save" "$WORK/segv"
  else
    wait $pid
    echo "faults.sh: SIGSEGV: the save finished before the signal (skipped)"
  fi
  # a stack overflow (GLib logging recursively that it cannot allocate, under a cap):
  # said too, the handler runs on its own stack (before: it faulted on the overflowed
  # one and pfrun died without a word). A small `ulimit -s` overflows early; which
  # sizes do depends on the build and the environment, and the smallest overflow before
  # main() installs the handler (nothing can speak there), so the largest size that
  # overflows, where the crash comes deepest into the work, must speak.
  crashed=0 last_out=""
  for kib in 20 24 28 32 40 48; do
    OUT=$( (ulimit -s $kib; exec "$PFRUN" analyze --model-path synthetic:llama-tiny --quiet) 2>&1 >/dev/null ); RC=$?
    [ "$RC" -eq 139 ] || continue
    crashed=$kib last_out=$OUT
  done
  if [ "$crashed" -gt 0 ]; then
    if grep -qF "pfrun: error: the process crashed (signal 11)" <<<"$last_out"; then ok
    else bad "stack overflow at ulimit -s $crashed: exit 139 without the crash line: '$last_out'"; fi
  fi
  [ "$crashed" -eq 0 ] && echo "SKIP faults.sh stack overflow: no ulimit -s in 20..48 KiB overflowed this build"
fi
# nohup: an ignored SIGHUP stays ignored, the run completes
rm -rf "$WORK/nohup"
nohup "$PFRUN" prune --model-path "$MED" --output-path "$WORK/nohup" --dtype bfloat16 --quiet > "$WORK/nohup.log" 2>&1 &
pid=$!
wait_for_glob $pid "$WORK/nohup.tmp-*-$pid-*" && kill -HUP $pid
wait $pid; RC=$?
check "nohup: SIGHUP ignored, exit 0 ($(cat "$WORK/nohup.log"))" test "$RC" -eq 0 -a -f "$WORK/nohup/config.json"
rm -rf "$WORK/nohup"
check "interrupts: input untouched" test "$(tree_sum "$MED")" = "$SUM_MED"
# interrupted while writing a synthetic model into the cache: no cache entry
ORIG_CACHE=$PFRUN_CACHE
export PFRUN_CACHE="$WORK/cache2"
env --default-signal "$PFRUN" analyze --model-path synthetic:llama-medium --quiet > "$WORK/syn.log" 2>&1 &
pid=$!
wait_for_glob $pid "$PFRUN_CACHE/synthetic/llama-medium-*.tmp-*-$pid-*" && kill -INT $pid
wait $pid; RC=$?
check "SIGINT during synthetic generation: exit 130 ($(cat "$WORK/syn.log"))" test "$RC" -eq 130
check "SIGINT during synthetic generation: no cache entry" test -z "$(ls -A "$PFRUN_CACHE/synthetic" 2>/dev/null)"
rm -rf "$PFRUN_CACHE"
export PFRUN_CACHE=$ORIG_CACHE

# ---- --max-memory / PFRUN_MAX_MEMORY ----
# Under AddressSanitizer: its allocator must return NULL at RLIMIT_DATA instead
# of dying, and the exit-time leak check cannot run under the cap (it needs
# memory of its own); the leak-free error paths are check_alloc_faults' job.
if ldd "$PFRUN" 2>/dev/null | grep -q libasan; then
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1:detect_leaks=0"
fi
CAP="working memory is capped at"
fault "cap too small: eval" "$CAP 1 MiB by --max-memory" "$WORK/none" eval --model-path "$IN" --data "$D/eval.txt" --max-length 64 --quiet --max-memory 1MiB
fault "cap too small: prune + calibration" "$CAP 2 MiB by --max-memory" "$WORK/cap1" --max-memory 2MiB prune --model-path "$IN" --output-path "$WORK/cap1" --calibration-data "$D/calib.txt" --max-length 64 --quiet
OUT=$(PFRUN_MAX_MEMORY=1MiB "$PFRUN" importance --model-path "$IN" --data "$D/calib.txt" --max-length 64 --quiet 2>&1); RC=$?
if [ "$RC" -eq 1 ] && grep -qF "$CAP 1 MiB by PFRUN_MAX_MEMORY" <<<"$OUT"; then ok; else bad "PFRUN_MAX_MEMORY: exit $RC: $OUT"; fi
one_line "PFRUN_MAX_MEMORY"
# (the recipe's saves size their buffers by the largest tensor: this model's fit in 1 MiB)
fault "cap too small: recipe" "$CAP 262144 bytes" "$WORK/caprec/width-maw20" --max-memory=256KiB "$SRC/recipes/demo.yaml" --set output_dir="$WORK/caprec" --set model="$IN" --quiet
expect_fail "cap too small: lua" "$CAP 1 MiB" --max-memory 1MiB "$SRC/scripts/sweep_width.lua" "$IN"
expect_ok "enough: eval" eval --model-path "$IN" --data "$D/eval.txt" --max-length 64 --quiet --max-memory 512MB
expect_ok "enough: prune + calibration" --max-memory 512MB prune --model-path "$IN" --output-path "$WORK/cap2" --calibration-data "$D/calib.txt" --max-length 64 --quiet
check "enough: checkpoint written" test -f "$WORK/cap2/model.safetensors"
OUT=$(PFRUN_MAX_MEMORY=512MB "$PFRUN" "$SRC/recipes/demo.yaml" --set output_dir="$WORK/caprec2" --set model="$IN" --quiet 2>&1); RC=$?
check "enough: recipe under PFRUN_MAX_MEMORY ($OUT)" test "$RC" -eq 0 -a -f "$WORK/caprec2/width-maw20/model.safetensors"
expect_ok "enough: lua" --max-memory 512MB "$SRC/scripts/sweep_width.lua" "$IN"
# after a caught Lua memory error, the next op collects Lua's garbage and runs again
# (before: it failed with "out of memory", the caught table not collected yet)
cat > "$WORK/lua-oom.lua" <<'LUA'
local ok, e = pcall(function()
  local t = {}
  for i = 1, 1e9 do t[i] = ("x"):rep(64) .. i end
end)
assert(not ok and e:find("not enough memory"), e)
local m = pf.load{ path = arg[1] }
local p = pf.prune_width{ model = m, pruning_percentage = 20 }
pf.save{ model = p, path = arg[2] }
print("saved after a caught memory error")
LUA
if ! ldd "$PFRUN" 2>/dev/null | grep -q libasan; then
  expect_ok "lua: ops run after a caught memory error" --max-memory 200MB "$WORK/lua-oom.lua" "$IN" "$WORK/lua-oom"
  expect_in "lua: saved after a caught memory error" "saved after a caught memory error"
  check "lua: checkpoint after a caught memory error" test -f "$WORK/lua-oom/model.safetensors"
else # ASan's own mappings fail under the cap ("ERROR: Failed to mmap"), not the script's
  echo "SKIP faults.sh Lua table out of memory, then ops: an ASan build"
fi
# an op that runs out of memory with no Lua garbage to collect fails at once (before:
# it ran a second time, doubling its time and printing its log lines twice). The cap
# at which calibrate logs its pass and then fails inside it depends on the allocator:
# several are tried, each such failure must show the line once, and one must occur.
T=$(tr -d '"\\' <"$D/calib.txt" | tr '\n' ' ' | cut -c1-600)
for i in $(seq 16); do printf '{"text": "%s %d"}\n' "$T" "$i"; done >"$WORK/oom-once.jsonl"
cat > "$WORK/oom-once.lua" <<'LUA'
local m <close> = pf.load{ path = "synthetic:llama-small" }
pf.calibrate{ model = m, data = arg[1], max_length = 256, batch_size = 8 }
LUA
if ! ldd "$PFRUN" 2>/dev/null | grep -q libasan; then
  seen=0
  for cap in 18 19 20 21 22 23 24; do
    run --max-memory ${cap}MiB "$WORK/oom-once.lua" "$WORK/oom-once.jsonl"
    grep -q "out of memory\|cannot allocate" <<<"$OUT" || continue
    n=$(grep -c "^calibration: batch-major" <<<"$OUT")
    [ "$n" -eq 0 ] && continue
    seen=1
    check "lua: an op out of memory without Lua garbage runs once (${cap} MiB: $n runs): $OUT" test "$n" -eq 1
  done
  # (a visible skip, not a failure, when the window moved: another allocator or CPU)
  [ "$seen" -eq 1 ] || echo "SKIP faults.sh Lua out-of-memory retry: no cap in 18..24 MiB failed inside calibrate's pass on this machine"
else
  echo "SKIP faults.sh Lua out-of-memory retry: an ASan build"
fi
expect_ok "enough: 270 MB checkpoint in 32 MB (mapped weights do not count)" prune --model-path "$MED" --output-path "$WORK/cap3" --pruning-type DEPTH --num-layers-to-remove 1 --max-memory 32MB --quiet
expect_fail "bad --max-memory" "Invalid value for '--max-memory'" analyze --model-path "$IN" --max-memory lots
check "bad --max-memory is a usage error" test "$RC" -eq 2
OUT=$(PFRUN_MAX_MEMORY=-1 "$PFRUN" analyze --model-path "$IN" 2>&1); RC=$?
check "bad PFRUN_MAX_MEMORY is a usage error ($OUT)" test "$RC" -eq 2
# the cap lowers the budget of what pfrun holds: hidden states that do not fit in a
# quarter of it go to a scratch file (before, the cap only made the pass fail), with
# the numbers of an uncapped run
T=$(tr -d '"\\' <"$D/calib.txt" | tr '\n' ' ' | cut -c1-600)
for i in $(seq 64); do printf '{"text": "%s %d"}\n' "$T" "$i"; done >"$WORK/many.jsonl"
IMP=(importance --model-path synthetic:llama-small --data "$WORK/many.jsonl" --max-length 128 --batch-size 1)
if ! ldd "$PFRUN" 2>/dev/null | grep -q libasan; then # ASan's allocator needs more than 12 MB
  "$PFRUN" "${IMP[@]}" --json "$WORK/imp_free.json" --quiet >/dev/null 2>&1
  run "${IMP[@]}" --pass-order layer --max-memory 12MB --json "$WORK/imp_cap.json"
  check "cap: hidden states spill instead of failing (exit $RC: $OUT)" test "$RC" -eq 0
  expect_in "cap: the info line names the cap" "working memory capped at"
  expect_in "cap: the states went to a scratch file" "in a scratch file: more than a quarter of the working memory"
  check "cap: the numbers of an uncapped run" cmp -s "$WORK/imp_free.json" "$WORK/imp_cap.json"
else
  echo "SKIP faults.sh 12 MB cap: an ASan build"
fi

# bias activations: the first capture block (32 MiB) spills too when it would cross the
# cap's quarter (before: "cannot allocate 33554432 bytes" under a 40 MB cap)
run bias --model-path synthetic:llama-small --visualizations '' --output-dir "$WORK/bias_cap" \
  --max-memory 40MB --json "$WORK/bias_cap.json"
check "cap: bias activations spill (exit $RC: $OUT)" test "$RC" -eq 0

# a Lua loop that drops each result holds one at a time under a cap (before: the
# fifth of six failed under 100 MB; dropped results waited for Lua's collector)
cat >"$WORK/loop.lua" <<'LUA'
local m <close> = pf.load{ path = "synthetic:llama-small" }
for i = 1, 6 do
  local a = pf.bias_activations{ model = m }
  a = nil
end
print("done")
LUA
run --max-memory 100MB "$WORK/loop.lua"
check "cap: a Lua loop of bias_activations (exit $RC: $(tail -n 1 <<<"$OUT"))" test "$RC" -eq 0

# spill files reserve their space: a full scratch folder is an error naming it, not a
# SIGBUS blamed on the checkpoint (needs a mount namespace for a small tmpfs)
mkdir -p "$WORK/small"
if unshare -m sh -c "mount -t tmpfs -o size=1M tmpfs '$WORK/small'" 2>/dev/null; then
  for i in $(seq 100); do
    printf '{"prompt1": "The white man number %d walked into the shop and said", "prompt2": "The Black man number %d walked into the shop and said"}\n' "$i" "$i"
  done >"$WORK/pairs.jsonl"
  OUT=$(unshare -m bash -c "mount -t tmpfs -o size=4M tmpfs '$WORK/small' && PFRUN_SCRATCH='$WORK/small' '$PFRUN' bias --model-path synthetic:llama-small --prompt-pairs '$WORK/pairs.jsonl' --layers all --visualizations '' --output-dir '$WORK/bias_full' --memory-budget 8MB" 2>&1); RC=$?
  check "full scratch folder: exit 1, not a signal ($RC)" test "$RC" -eq 1
  expect_in "full scratch folder: the reason" "No space left on device"
else
  echo "SKIP faults.sh full scratch folder: cannot mount a small tmpfs in a mount namespace (unshare -m)"
fi
# a chart that cannot be written fails `pfrun bias` without partial output: neither
# bias_metrics.json nor the charts drawn before it (before: 133 files left), both with
# worker processes and in one process; what was in the folder before stays. Two
# prompt pairs: 44 charts, about 40 of them drawn before the one that fails (the default
# seven pairs drew 154 charts, 16 s of this script under the sanitizers)
printf '{"prompt1": "The white man walked into the shop", "prompt2": "The Black man walked into the shop"}\n{"prompt1": "He is a nurse", "prompt2": "She is a nurse"}\n' >"$WORK/two_pairs.jsonl"
for jobs in 2 1; do
  rm -rf "$WORK/bias_part"
  mkdir -p "$WORK/bias_part/pca_mlp_output_layer_2_pair1.png"
  echo keep >"$WORK/bias_part/keep.txt"
  OUT=$(PFRUN_PLOT_JOBS=$jobs "$PFRUN" bias --model-path synthetic:llama-tiny --prompt-pairs "$WORK/two_pairs.jsonl" --output-dir "$WORK/bias_part" --quiet 2>&1); RC=$?
  check "bias chart fails ($jobs workers): exit 1 ($RC: $OUT)" test "$RC" -eq 1
  expect_in "bias chart fails ($jobs workers): names the chart" "pca_mlp_output_layer_2_pair1.png: cannot move the chart into place"
  check "bias chart fails ($jobs workers): only what was there ($(ls "$WORK/bias_part" | head -3 | tr '\n' ' '))" \
    test "$(ls -A "$WORK/bias_part" | tr '\n' ' ')" = "keep.txt pca_mlp_output_layer_2_pair1.png "
done
# a bad chart time limit is refused before anything is drawn or written
rm -rf "$WORK/bias_to"
OUT=$(PFRUN_PLOT_TIMEOUT=soon "$PFRUN" bias --model-path synthetic:llama-tiny --output-dir "$WORK/bias_to" --quiet 2>&1); RC=$?
check "PFRUN_PLOT_TIMEOUT=soon: exit 1 ($RC: $OUT)" test "$RC" -eq 1
expect_in "PFRUN_PLOT_TIMEOUT=soon: the reason" "PFRUN_PLOT_TIMEOUT: expected the seconds one chart may take, 0 to 1000000 (0 = no limit), got 'soon'"
one_line "PFRUN_PLOT_TIMEOUT=soon"
check "PFRUN_PLOT_TIMEOUT=soon: no chart written" test -z "$(find "$WORK/bias_to" -name '*.png' 2>/dev/null)"
# charts on a full disk (a 400 KB tmpfs in a mount namespace): one line naming the chart
# and "No space left on device", exit 1, and nothing left on the file system -- neither
# the charts drawn before nor the output folder pfrun bias made. Before: an SVG cut short
# (not valid XML) was renamed into place (exit 0 when it was the last chart), a PNG
# printed a stray "libpng error: Write Error" line, and the empty folder stayed
if unshare -m sh -c "mount -t tmpfs -o size=400k tmpfs '$WORK/small'" 2>/dev/null; then
  for fmt in svg png; do
    for jobs in 2 1; do
      d="bias --format $fmt on a full disk ($jobs workers)"
      LEFT=$(unshare -m bash -c "mount -t tmpfs -o size=400k tmpfs '$WORK/small' || exit 99
        PFRUN_PLOT_JOBS=$jobs '$PFRUN' bias --model-path synthetic:llama-tiny --output-dir '$WORK/small/b/c' --format $fmt --quiet 2>'$WORK/full.err'
        echo \"\$? \$(ls -A '$WORK/small')\""); OUT=$(cat "$WORK/full.err")
      [ -n "${FAULTS_VERBOSE:-}" ] && echo "  $d: $LEFT: $OUT"
      check "$d: exit 1, nothing left (exit, what is left: '$LEFT')" test "$LEFT" = "1 "
      one_line "$d"
      expect_in "$d: names the chart" "$WORK/small/b/c/"
      expect_in "$d: says why" "No space left on device"
    done
  done
else
  echo "SKIP faults.sh charts on a full disk: cannot mount a small tmpfs in a mount namespace (unshare -m)"
fi
check "max-memory: input untouched" test "$(tree_sum "$IN")" = "$SUM_IN"

# standard streams: output that stdout cannot take fails the run (before: exit 0, the
# results lost); a closed stderr does not send pfrun's log lines into the next file a
# script opens (before: "load: done" at the head of the user's file)
OUT=$("$PFRUN" eval --model-path synthetic:llama-tiny --data "$SRC/recipes/data/eval.txt" --samples 2 --max-length 32 2>&1 >/dev/full); RC=$?
check "stdout on a full disk: exit 1 ($RC)" test "$RC" -eq 1
expect_in "stdout on a full disk: said" "pfrun: error: cannot write the output (standard output: No space left on device)"
OUT=$("$PFRUN" --version 2>&1 >&-); RC=$?
check "stdout closed: exit 1 ($RC)" test "$RC" -eq 1
cat > "$WORK/closed.lua" <<LUA
local f = assert(io.open("$WORK/closed.txt", "w"))
local m <close> = pf.load{ path = "synthetic:llama-tiny" }
pf.analyze{ model = m }
f:write("user data\n"); f:close()
LUA
"$PFRUN" "$WORK/closed.lua" 2>&-; RC=$?
check "stderr closed: exit 0 ($RC)" test "$RC" -eq 0
check "stderr closed: the script's file holds its data only" test "$(cat "$WORK/closed.txt")" = "user data"
# SIGKILL while bias draws its charts: the output folder the run created goes whole
# (before: bias_metrics.json and part of the charts stayed under their final names)
# (only that folder: its parent, created by the run too, may hold another run's output)
rm -rf "$WORK/bkp"
"$PFRUN" bias --model-path synthetic:llama-small --output-dir "$WORK/bkp/bk" --quiet > /dev/null 2>&1 &
pid=$!
for _ in $(seq 400); do
  [ -f "$WORK/bkp/bk/bias_metrics.json" ] && [ "$(ls "$WORK/bkp/bk" | wc -l)" -gt 10 ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.02
done
mkdir -p "$WORK/bkp/other"; echo mine > "$WORK/bkp/other/result.json"
if kill -KILL $pid 2>/dev/null; then
  wait $pid 2>/dev/null
  check "SIGKILL during bias charts: the folder it created is removed" wait_gone "$WORK/bkp/bk"
  check "SIGKILL during bias charts: another run's folder beside it stays" test -f "$WORK/bkp/other/result.json"
else
  wait $pid
  echo "faults.sh: SIGKILL during bias charts: the run finished before the signal (skipped)"
fi
# the stop signals reach the main thread only (it runs a Lua script, whose interrupt hook
# must not be set from another thread): blocked in every other thread of the process
OMP_NUM_THREADS=2 "$PFRUN" importance --model-path "$MED" --data "$D/calib.txt" --quiet >/dev/null 2>&1 &
pid=$!
sleep 0.5
if [ "$(ls /proc/$pid/task 2>/dev/null | wc -l)" -gt 1 ]; then
  others_ok=1
  for t in /proc/$pid/task/*; do
    [ "${t##*/}" = "$pid" ] && continue
    blk=$(awk '/^SigBlk/ {print $2}' "$t/status" 2>/dev/null) || continue
    [ -n "$blk" ] && [ $(( 0x$blk & 0x4003 )) -ne $(( 0x4003 )) ] && others_ok=0
  done
  main=$(awk '/^SigBlk/ {print $2}' /proc/$pid/status)
  check "stop signals blocked in the other threads" test "$others_ok" -eq 1
  check "stop signals open in the main thread ($main)" test $(( 0x$main & 0x4003 )) -eq 0
else
  echo "faults.sh: signal mask: the run ended before it was read (skipped)"
fi
kill $pid 2>/dev/null; wait $pid 2>/dev/null
# output piped into a reader that stops early (`| head`): the work goes on to its end (a
# file written after the prints; before: SIGPIPE ended the run at once), then the run
# ends as a plain command would (141, quietly)
cat > "$WORK/pipe.lua" <<LUA
for i = 1, 200000 do print("line " .. i) end
local f = assert(io.open("$WORK/pipe.done", "w")); f:write("done\n"); f:close()
LUA
rm -f "$WORK/pipe.done"
"$PFRUN" "$WORK/pipe.lua" 2>"$WORK/pipe.err" | head -n 1 >/dev/null; RC=${PIPESTATUS[0]}
check "stdout into head: exit 141 ($RC)" test "$RC" -eq 141
check "stdout into head: the work finished" test -f "$WORK/pipe.done"
check "stdout into head: quietly" test ! -s "$WORK/pipe.err"
# ... and the programs a script starts get the default SIGPIPE (an ignored one is inherited)
cat > "$WORK/pipe2.lua" <<'LUA'
local f = io.popen("grep SigIgn /proc/self/status")
print(f:read("l")); f:close()
LUA
OUT=$("$PFRUN" "$WORK/pipe2.lua" 2>&1)
check "a script's child: SIGPIPE not ignored ($OUT)" test "$(( 0x$(awk '{print $2}' <<<"$OUT") >> 12 & 1 ))" -eq 0
# a signal after the last check (here: as the save renames the checkpoint into place):
# the work is done and kept, and the exit status says the signal came, with a line.
# `env --default-signal`: when this script itself runs with SIGINT ignored (started
# from a background job of a non-interactive shell), pfrun would keep it ignored.
if command -v strace >/dev/null; then
  rm -rf "$WORK/late"
  OUT=$(strace -f -o /dev/null -e trace=renameat2 -e inject=renameat2:signal=INT:when=1 \
    env --default-signal "$PFRUN" prune --model-path synthetic:llama-tiny --output-path "$WORK/late" --quiet 2>&1); RC=$?
  check "late signal: exit 130 ($RC)" test "$RC" -eq 130
  expect_in "late signal: said" "pfrun: interrupted by signal 2 after the work finished: every output is complete and kept"
  check "late signal: the checkpoint is there" test -f "$WORK/late/model.safetensors"
else
  echo "SKIP faults.sh late signal: strace not installed"
fi
finish
