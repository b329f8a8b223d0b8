#!/usr/bin/env bash
# kdtrain's KD step against the PyTorch reference of the same step (scripts/torch_kd_ref.py,
# Debian's python3-torch), in the same run, at the same thread count, on configs/bench-cpu.yaml.
#  1. the sgemm peak of the BLAS kdtrain links (the MFU denominator), measured now;
#  2. kdtrain bench, kd, student-only, kd+qat and kd+prune;
#  3. PyTorch at its fastest setting found here (OMP_WAIT_POLICY=passive), the same four
#     (torch_kd_ref.py --qat, --prune 0.5).
# kd+qat is the kd step with the student under W8A8 quantization-aware training: kdtrain with
# --set quant.weight=int8:channel --set quant.activation=int8:tensor (the rest of the quant
# section at its defaults: head and embedding in float), PyTorch with eager-mode FakeQuantize
# modules set up to match (see scripts/torch_kd_ref.py). kd+prune is the kd step with the
# student's block linears 50% pruned by magnitude per tensor (kdtrain: prune.criterion
# magnitude_layer, one-shot at step 0, masks kept through every update; PyTorch:
# torch.nn.utils.prune.l1_unstructured, the weight = weight_orig * mask reparametrisation).
#  4. checkpoint: kdtrain bench --checkpoint (the student with AdamW state: the write; a
#     resume's read, which checks every byte against the manifest, from disk and from the page
#     cache; the stall a checkpoint written in the background causes to training) against
#     torch.save/torch.load of the same student's and optimizer's state_dicts (fsync'ed,
#     renamed), in the same run, at two sizes: the kd variant's student (89 MB) and the ~2 GB
#     state of configs/bench-ckpt2g.yaml (scripts/torch_ckpt_ref.py on the PyTorch side); and
#     both on 2 MPI ranks x 1 thread (one file, each rank writing its ZeRO share), PyTorch's
#     one process measured again right after each (this VM's disk drifts within minutes);
#  5. data parallel: the kd step as 1 rank × <threads> threads and as <threads> MPI ranks ×
#     1 thread (ZeRO-1, the same global batch), alternated twice, the mean of the two step medians.
# Last line (machine-readable, one line; wrapped here):
#   RESULT kd_speedup=<kdtrain/pytorch tokens/s> student_speedup=<...> mfu=<kdtrain kd MFU> rss_ratio=<kdtrain/pytorch peak RSS>
#          kdqat_speedup=<kdtrain/pytorch kd+qat tokens/s> kdprune_speedup=<... kd+prune ...>
#          dp_ratio=<ranks×1 thread / 1 rank×threads tokens/s> dp_comm_ms=<collectives per step>
#          ckpt_write_ratio=<kdtrain/pytorch write s> ckpt_read_ratio=<kdtrain resume read / torch.load s, from disk>
#          ckpt_stall_steps=<kdtrain stall per checkpoint in kd steps> ckpt_stall_frac=<stall / write s>
#          ckpt_block_frac=<the part of the stall spent waiting in the checkpoint's calls / write s>
#          ckpt_stall_floor_frac=<the stall a bare thread writing the same bytes (O_DIRECT, no CRC, no
#          HDF5) causes to the same training / kdtrain's write s: what the disk costs here whoever writes>
#          ckpt_stall_over_floor_frac=<each checkpoint's stall less the bare write's after it, median / write s:
#          what kdtrain adds to the disk's cost>
#          ckpt2g_write_ratio=.. ckpt2g_read_ratio=.. ckpt2g_stall_frac=.. ckpt2g_block_frac=..
#          ckpt2g_stall_floor_frac=.. ckpt2g_stall_over_floor_frac=.. (at ~2 GB)
#          ckpt2g_read_alt_ratio=<kdtrain inspect --verify / torch.load of the same 2 GB state from disk,
#          alternated read for read (each timed from its open on)>
#          ckpt2g_spare_stall_frac=<the stall / write s with the training on one thread fewer: a core
#          left to the writer> ckpt2g_writer_cpu_s=<the writer thread's CPU seconds per checkpoint>
#          ckpt2g_stall_host_frac=<the cores' time the host took during the write (steal, reported or
#          not: wall x cores less every /proc/stat field, beyond the plain steps'), over the cores,
#          / write s: the share of the stall no writer in this machine can avoid>
#          ckpt2g_floor_host_frac=<the same for the bare write>
#          ckpt2r_write_ratio=.. ckpt2r_read_ratio=.. ckpt2r_stall_frac=.. ckpt2r_block_frac=..
#          ckpt2r_stall_floor_frac=.. ckpt2r_stall_over_floor_frac=.. (2 ranks)
#          ckpt2g2r_write_ratio=.. ckpt2g2r_read_ratio=.. ckpt2g2r_stall_frac=.. ckpt2g2r_block_frac=..
#          ckpt2g2r_stall_floor_frac=.. ckpt2g2r_stall_over_floor_frac=.. (2 GB, 2 ranks)
# Usage: scripts/bench.sh [threads (default 2)] [peak seconds per size (default 3)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
threads=${1:-2}
peak_seconds=${2:-3}
"$root/scripts/deps.sh" python3-torch
"$root/scripts/build.sh"
cd "$root"
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
py=/usr/bin/python3   # Debian's interpreter: python3-torch lives there

field() { grep '^RESULT' "$1" | grep -v checkpoint_mb | tr ' ' '\n' | sed -n "s/^$2=//p"; }

echo "== sgemm peak (kdtrain bench-peak, ${threads} threads)"
./build/kdtrain bench-peak --threads "$threads" --seconds "$peak_seconds" | tee "$log/peak"
peak=$(sed -n 's/^PEAK gflops=\([0-9.]*\).*/\1/p' "$log/peak")

for variant in kd student-only kd+qat kd+prune; do
  kflag=""; tflag=""
  case "$variant" in
    kd) kflag="--checkpoint"; tflag="--checkpoint" ;;
    student-only) kflag="--student-only"; tflag="--student-only" ;;
    kd+qat) kflag="--set quant.weight=int8:channel --set quant.activation=int8:tensor"; tflag="--qat" ;;
    kd+prune) kflag="--set prune.criterion=magnitude_layer --set prune.sparsity=0.5"; tflag="--prune 0.5" ;;
  esac
  echo "== kdtrain $variant"
  ./build/kdtrain bench --config configs/bench-cpu.yaml --threads "$threads" --peak-gflops "$peak" $kflag \
    | tee "$log/kdtrain-$variant"
  echo "== pytorch $variant (OMP_WAIT_POLICY=passive)"
  OMP_WAIT_POLICY=passive OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" \
    "$py" scripts/torch_kd_ref.py --threads "$threads" --peak-gflops "$peak" $tflag | tee "$log/torch-$variant"
done

echo "== checkpoint at ~2 GB: kdtrain (configs/bench-ckpt2g.yaml, student-only) and PyTorch (scripts/torch_ckpt_ref.py)"
./build/kdtrain bench --config configs/bench-ckpt2g.yaml --student-only --checkpoint --threads "$threads" \
  --peak-gflops "$peak" | tee "$log/kdtrain-ckpt2g" | grep -i -E '^(RESULT|checkpoint)'
# the same state as a run's checkpoint (one step of kdtrain train), for reads from disk
# alternated with PyTorch's, read for read (the disk's speed drifts between processes)
./build/kdtrain train --config configs/bench-ckpt2g.yaml --set train.steps=1 --set run.dir="$log/runs" \
  --set run.name=ckpt2g --set train.threads="$threads" >"$log/train-ckpt2g" 2>&1
OMP_NUM_THREADS="$threads" "$py" scripts/torch_ckpt_ref.py --config configs/bench-ckpt2g.yaml --threads "$threads" \
  --alternate-with "$log/runs/ckpt2g/checkpoints/step-00000001.h5" | tee "$log/torch-ckpt2g"
rm -rf "$log/runs"

echo "== data parallel: 1 rank x ${threads} threads against ${threads} ranks x 1 thread"
# as root OpenMPI needs both variables; one rank per core, bound
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for round in 1 2; do
  ./build/kdtrain bench --config configs/bench-cpu.yaml --threads "$threads" --peak-gflops "$peak" \
    | tee "$log/dp-1x$threads-$round" | grep -E '^(RESULT|median)'
  OMP_NUM_THREADS=1 mpirun -np "$threads" --bind-to core ./build/kdtrain bench --config configs/bench-cpu.yaml \
    --threads 1 --peak-gflops "$peak" | tee "$log/dp-${threads}x1-$round" | grep -E '^(RESULT|median|communication)'
done
echo "== checkpoint on 2 ranks x 1 thread (the kd variant's student, one file)"
OMP_NUM_THREADS=1 mpirun -np 2 --bind-to core ./build/kdtrain bench --config configs/bench-cpu.yaml --checkpoint \
  --threads 1 --peak-gflops "$peak" | tee "$log/kdtrain-ckpt2r" | grep -i -E '^(RESULT|checkpoint)'
OMP_NUM_THREADS="$threads" "$py" scripts/torch_ckpt_ref.py --config configs/bench-cpu.yaml --threads "$threads" \
  | tee "$log/torch-ckpt2r"
echo "== checkpoint at ~2 GB on 2 ranks x 1 thread"
OMP_NUM_THREADS=1 mpirun -np 2 --bind-to core ./build/kdtrain bench --config configs/bench-ckpt2g.yaml --student-only \
  --checkpoint --set train.batch_size=2 --threads 1 --peak-gflops "$peak" | tee "$log/kdtrain-ckpt2g2r" | grep -i -E '^(RESULT|checkpoint)'
OMP_NUM_THREADS="$threads" "$py" scripts/torch_ckpt_ref.py --config configs/bench-ckpt2g.yaml --threads "$threads" \
  | tee "$log/torch-ckpt2g2r"
mean2() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (a + b) / 2 }'; }
one=$(mean2 "$(field "$log/dp-1x$threads-1" tokens_per_s)" "$(field "$log/dp-1x$threads-2" tokens_per_s)")
many=$(mean2 "$(field "$log/dp-${threads}x1-1" tokens_per_s)" "$(field "$log/dp-${threads}x1-2" tokens_per_s)")
dp_comm=$(mean2 "$(field "$log/dp-${threads}x1-1" comm_ms)" "$(field "$log/dp-${threads}x1-2" comm_ms)")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
kd_k=$(field "$log/kdtrain-kd" tokens_per_s); kd_t=$(field "$log/torch-kd" tokens_per_s)
so_k=$(field "$log/kdtrain-student-only" tokens_per_s); so_t=$(field "$log/torch-student-only" tokens_per_s)
qat_k=$(field "$log/kdtrain-kd+qat" tokens_per_s); qat_t=$(field "$log/torch-kd+qat" tokens_per_s)
pr_k=$(field "$log/kdtrain-kd+prune" tokens_per_s); pr_t=$(field "$log/torch-kd+prune" tokens_per_s)
rss_k=$(field "$log/kdtrain-kd" peak_rss_kib); rss_t=$(field "$log/torch-kd" peak_rss_kib)
mfu=$(field "$log/kdtrain-kd" mfu)
ckfield() { grep '^RESULT.*checkpoint_mb' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
ck_wk=$(ckfield "$log/kdtrain-kd" write_s); ck_wt=$(ckfield "$log/torch-kd" write_s)
ck_rk=$(ckfield "$log/kdtrain-kd" read_disk_s)  # what --resume reads (one pass, checked as read), from disk
ck_rt=$(ckfield "$log/torch-kd" read_disk_s)
ck_stall=$(ckfield "$log/kdtrain-kd" stall_steps)
ck_frac=$(ckfield "$log/kdtrain-kd" stall_frac); ck_block=$(ckfield "$log/kdtrain-kd" block_frac)
ck_floor=$(ckfield "$log/kdtrain-kd" stall_floor_frac); ck_over=$(ckfield "$log/kdtrain-kd" stall_over_floor_frac)
g_wk=$(ckfield "$log/kdtrain-ckpt2g" write_s); g_wt=$(ckfield "$log/torch-ckpt2g" write_s)
g_rk=$(ckfield "$log/kdtrain-ckpt2g" read_disk_s); g_rt=$(ckfield "$log/torch-ckpt2g" read_disk_s)
g_ck=$(ckfield "$log/kdtrain-ckpt2g" read_s); g_ct=$(ckfield "$log/torch-ckpt2g" read_s)
g_frac=$(ckfield "$log/kdtrain-ckpt2g" stall_frac); g_block=$(ckfield "$log/kdtrain-ckpt2g" block_frac)
g_spare=$(ckfield "$log/kdtrain-ckpt2g" spare_stall_frac); g_cpu=$(ckfield "$log/kdtrain-ckpt2g" writer_cpu_s)
g_alt=$(ckfield "$log/torch-ckpt2g" kdtrain_verify_disk_s)
g_floor=$(ckfield "$log/kdtrain-ckpt2g" stall_floor_frac); g_over=$(ckfield "$log/kdtrain-ckpt2g" stall_over_floor_frac)
g_host=$(ckfield "$log/kdtrain-ckpt2g" stall_host_frac); g_fhost=$(ckfield "$log/kdtrain-ckpt2g" floor_host_frac)
r_wk=$(ckfield "$log/kdtrain-ckpt2r" write_s); r_rk=$(ckfield "$log/kdtrain-ckpt2r" read_disk_s)
r_wt=$(ckfield "$log/torch-ckpt2r" write_s); r_rt=$(ckfield "$log/torch-ckpt2r" read_disk_s)
r_frac=$(ckfield "$log/kdtrain-ckpt2r" stall_frac); r_block=$(ckfield "$log/kdtrain-ckpt2r" block_frac)
r_floor=$(ckfield "$log/kdtrain-ckpt2r" stall_floor_frac); r_over=$(ckfield "$log/kdtrain-ckpt2r" stall_over_floor_frac)
gr_wk=$(ckfield "$log/kdtrain-ckpt2g2r" write_s); gr_rk=$(ckfield "$log/kdtrain-ckpt2g2r" read_disk_s)
gr_frac=$(ckfield "$log/kdtrain-ckpt2g2r" stall_frac); gr_block=$(ckfield "$log/kdtrain-ckpt2g2r" block_frac)
gr_floor=$(ckfield "$log/kdtrain-ckpt2g2r" stall_floor_frac); gr_over=$(ckfield "$log/kdtrain-ckpt2g2r" stall_over_floor_frac)
gr_wt=$(ckfield "$log/torch-ckpt2g2r" write_s); gr_rt=$(ckfield "$log/torch-ckpt2g2r" read_disk_s)

echo
echo "== summary (${threads} threads, sgemm peak ${peak} GFLOP/s)"
printf '%-22s %14s %14s %9s\n' "" kdtrain pytorch ratio
printf '%-22s %14s %14s %9s\n' "kd tokens/s" "$kd_k" "$kd_t" "$(ratio "$kd_k" "$kd_t")"
printf '%-22s %14s %14s %9s\n' "student-only tokens/s" "$so_k" "$so_t" "$(ratio "$so_k" "$so_t")"
printf '%-22s %14s %14s %9s\n' "kd+qat tokens/s" "$qat_k" "$qat_t" "$(ratio "$qat_k" "$qat_t")"
printf '%-22s %14s %14s %9s\n' "kd+prune tokens/s" "$pr_k" "$pr_t" "$(ratio "$pr_k" "$pr_t")"
printf '%-22s %14s %14s %9s\n' "kd MFU" "$mfu" "$(field "$log/torch-kd" mfu)" ""
printf '%-22s %14s %14s %9s\n' "kd peak RSS KiB" "$rss_k" "$rss_t" "$(ratio "$rss_k" "$rss_t")"
printf '%-22s %14s %14s %9s\n' "checkpoint write s" "$ck_wk" "$ck_wt" "$(ratio "$ck_wk" "$ck_wt")"
printf '%-22s %14s %14s %9s\n' "checkpoint read s" "$ck_rk" "$ck_rt" "$(ratio "$ck_rk" "$ck_rt")"
printf '%-22s %14s\n' "checkpoint stall steps" "$ck_stall"
printf '%-22s %14s\n' "checkpoint stall/write" "$ck_frac (waiting in its calls: $ck_block; a bare writer of the same bytes: $ck_floor; kdtrain's excess over it: $ck_over)"
printf '%-22s %14s %14s %9s\n' "2 GB write s" "$g_wk" "$g_wt" "$(ratio "$g_wk" "$g_wt")"
printf '%-22s %14s %14s %9s\n' "2 GB read s (disk)" "$g_rk" "$g_rt" "$(ratio "$g_rk" "$g_rt")"
printf '%-22s %14s %14s %9s\n' "2 GB read s (cached)" "$g_ck" "$g_ct" "$(ratio "$g_ck" "$g_ct")"
printf '%-22s %14s %14s %9s\n' "2 GB disk, alternated" "$g_alt" "$g_rt" "$(ratio "$g_alt" "$g_rt")"
printf '%-22s %14s\n' "2 GB stall/write" "$g_frac (waiting in its calls: $g_block; a core left to the writer: $g_spare; its CPU: $g_cpu s; a bare writer of the same bytes: $g_floor; kdtrain's excess over it: $g_over)"
printf '%-22s %14s
' "2 GB host's take/write" "$g_host (the cores' time the host took, over the cores; for the bare writer: $g_fhost)"
printf '%-22s %14s %14s %9s\n' "2 ranks write s" "$r_wk" "$r_wt" "$(ratio "$r_wk" "$r_wt")"
printf '%-22s %14s %14s %9s\n' "2 ranks read s (disk)" "$r_rk" "$r_rt" "$(ratio "$r_rk" "$r_rt")"
printf '%-22s %14s\n' "2 ranks stall/write" "$r_frac (waiting in its calls: $r_block; a bare writer: $r_floor; excess: $r_over)"
printf '%-22s %14s %14s %9s\n' "2 GB 2 ranks write s" "$gr_wk" "$gr_wt" "$(ratio "$gr_wk" "$gr_wt")"
printf '%-22s %14s %14s %9s\n' "2 GB 2 ranks read s" "$gr_rk" "$gr_rt" "$(ratio "$gr_rk" "$gr_rt")"
printf '%-22s %14s\n' "2 GB 2 ranks stall/w" "$gr_frac (waiting in its calls: $gr_block; a bare writer: $gr_floor; excess: $gr_over)"
printf '%-22s %14s %14s %9s\n' "" "1 rank" "$threads ranks" ratio
printf '%-22s %14s %14s %9s\n' "kd tokens/s (DP)" "$one" "$many" "$(ratio "$many" "$one")"
echo "RESULT kd_speedup=$(ratio "$kd_k" "$kd_t") student_speedup=$(ratio "$so_k" "$so_t") mfu=$mfu rss_ratio=$(ratio "$rss_k" "$rss_t") kdqat_speedup=$(ratio "$qat_k" "$qat_t") kdprune_speedup=$(ratio "$pr_k" "$pr_t") dp_ratio=$(ratio "$many" "$one") dp_comm_ms=$dp_comm ckpt_write_ratio=$(ratio "$ck_wk" "$ck_wt") ckpt_read_ratio=$(ratio "$ck_rk" "$ck_rt") ckpt_stall_steps=$ck_stall ckpt_stall_frac=$ck_frac ckpt_block_frac=$ck_block ckpt_stall_floor_frac=$ck_floor ckpt_stall_over_floor_frac=$ck_over ckpt2g_write_ratio=$(ratio "$g_wk" "$g_wt") ckpt2g_read_ratio=$(ratio "$g_rk" "$g_rt") ckpt2g_read_alt_ratio=$(ratio "$g_alt" "$g_rt") ckpt2g_stall_frac=$g_frac ckpt2g_block_frac=$g_block ckpt2g_spare_stall_frac=$g_spare ckpt2g_writer_cpu_s=$g_cpu ckpt2g_stall_floor_frac=$g_floor ckpt2g_stall_over_floor_frac=$g_over ckpt2g_stall_host_frac=$g_host ckpt2g_floor_host_frac=$g_fhost ckpt2r_write_ratio=$(ratio "$r_wk" "$r_wt") ckpt2r_read_ratio=$(ratio "$r_rk" "$r_rt") ckpt2r_stall_frac=$r_frac ckpt2r_block_frac=$r_block ckpt2r_stall_floor_frac=$r_floor ckpt2r_stall_over_floor_frac=$r_over ckpt2g2r_write_ratio=$(ratio "$gr_wk" "$gr_wt") ckpt2g2r_read_ratio=$(ratio "$gr_rk" "$gr_rt") ckpt2g2r_stall_frac=$gr_frac ckpt2g2r_block_frac=$gr_block ckpt2g2r_stall_floor_frac=$gr_floor ckpt2g2r_stall_over_floor_frac=$gr_over"
