#!/usr/bin/env bash
# Benchmark (not a test): calibration (norms) and importance on 64 samples of
# synthetic:llama-small (default: 512-token samples, Brown text packed into
# blocks; PACK=false MAXLEN=128 for the short sentences as they come), one
# process with one thread against `mpirun -np N` with one thread per rank.
# Alternates the two REPS times, keeps the fastest of each, and checks the
# outputs agree.
#   bash bench/mpi_scaling.sh [build/pfrun] [N]
set -euo pipefail
PFRUN=$(realpath "${1:-build/pfrun}")
N=${2:-2}
SRC=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$SRC/../shared/data/brown-calib.jsonl}
[ -f "$DATA" ] || DATA=$SRC/recipes/data/calib.txt
MODEL=${MODEL:-synthetic:llama-small}
SAMPLES=${SAMPLES:-64}
BATCH=${BATCH:-4}
PACK=${PACK:-true}
# one machine: shared memory only (skips probing network transports at start-up)
MPI_OPTS=${MPI_OPTS:---mca pml ob1 --mca btl self,vader}
MAXLEN=${MAXLEN:-512}
REPS=${REPS:-3}
CPUS=$(nproc)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pfmpi-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
cat >calib.lua <<LUA
local m <close> = pf.load{ path = "$MODEL" }
local c = pf.calibrate{ model = m, data = "$DATA", samples = $SAMPLES, batch_size = $BATCH,
                        max_length = $MAXLEN, pack = $PACK }
local i = pf.importance{ model = m, data = "$DATA", samples = $SAMPLES, batch_size = $BATCH,
                         max_length = $MAXLEN, pack = $PACK }
for l, s in pairs(i.importance) do print(string.format("imp %s %.17g", l, s)) end
for l, norms in pairs(c.norms) do
  for k, x in ipairs(norms) do print(string.format("norm %s %d %.9e", l, k, x)) end
end
LUA
echo "mpirun -np $N $MPI_OPTS"
echo "$MODEL, $SAMPLES samples (max_length $MAXLEN, pack $PACK), batch size $BATCH"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $CPUS CPUs"
"$PFRUN" analyze --model-path "$MODEL" --quiet >/dev/null # the synthetic checkpoint, once
# wall: the whole command (process start, MPI start, load, tokenizing, the two
# ops); ops: the two ops' own time on rank 0 ("done in" lines: they end after
# the last rank's sums arrive)
ops_time() { grep -E '^(calibrate|importance): done in' "$1" | awk '{ s += $4 } END { printf "%.3f", s }'; }
best1=999999; bestn=999999; op1=999999; opn=999999
for r in $(seq "$REPS"); do
  s=$(date +%s.%N); "$PFRUN" calib.lua >one.txt 2>one.err; e=$(date +%s.%N)
  t1=$(echo "$e - $s" | bc); o1=$(ops_time one.err)
  s=$(date +%s.%N); mpirun -np "$N" $MPI_OPTS "$PFRUN" calib.lua >two.txt 2>two.err; e=$(date +%s.%N)
  tn=$(echo "$e - $s" | bc); on=$(ops_time two.err)
  echo "  run $r: 1 process wall ${t1} s (ops $o1 s), $N ranks wall ${tn} s (ops $on s); load average $(cut -d' ' -f1-3 /proc/loadavg)"
  best1=$(echo "if ($t1 < $best1) $t1 else $best1" | bc); bestn=$(echo "if ($tn < $bestn) $tn else $bestn" | bc)
  op1=$(echo "if ($o1 < $op1) $o1 else $op1" | bc); opn=$(echo "if ($on < $opn) $on else $opn" | bc)
done
echo "fastest of $REPS, 1 thread per process:"
echo "  wall: 1 process ${best1} s, mpirun -np $N ${bestn} s: speed-up $(echo "scale=2; $best1 / $bestn" | bc)x (target >= 1.7x for N=2)"
echo "  ops:  1 process ${op1} s, mpirun -np $N ${opn} s: speed-up $(echo "scale=2; $op1 / $opn" | bc)x"
same_imp=$(diff <(grep '^imp' one.txt | sort) <(grep '^imp' two.txt | sort) >/dev/null && echo identical || echo DIFFERENT)
worst=$(awk 'NR == FNR { if ($1 == "norm") a[$2" "$3] = $4; next } $1 == "norm" { d = $4 - a[$2" "$3]; if (d < 0) d = -d; r = a[$2" "$3] ? d / a[$2" "$3] : d; if (r > w) w = r } END { printf "%.2e", w }' one.txt two.txt)
echo "importance scores: $same_imp; calibration norms: largest relative difference $worst"
