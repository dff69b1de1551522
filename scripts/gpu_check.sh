#!/usr/bin/env bash
# GPU readiness: the device-sensitive paths of difflab on CUDA, in a few minutes.
#
#   DIFFLAB_DATA=/path/to/fashion-mnist-folder bash scripts/gpu_check.sh [OUT_DIR]
#
# 1. a short bf16 training with checkpoints, stopped by SIGTERM after its first checkpoint and
#    resumed, against the same training uninterrupted (weights compared: bit-identical, or the
#    largest difference when CUDA kernels are not deterministic);
# 2. sampling on the GPU with every registered sampler; 3. evaluation (FID/KID) of a model;
# 4. fp16 autocast training (GradScaler); 5. 2-process DDP through `accelerate launch` when the
#    machine has 2 GPUs or more.
# It needs python3 with torch (CUDA), accelerate, safetensors, numpy, pillow and tqdm, and the
# Fashion-MNIST files in $DIFFLAB_DATA. GPU_CHECK_CPU=1 runs steps 1-3 on the CPU (to test this
# script where there is no GPU). Prints one line per check and "gpu_check: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
out=${1:-$(mktemp -d)}
mkdir -p "$out"
py=${PYTHON:-python3}
device=cuda
passed=0 failed=0

check() {  # check NAME COMMAND...: runs the command, logs to $out/NAME.log
  local name=$1; shift
  if "$@" >"$out/$name.log" 2>&1; then
    passed=$((passed + 1)); echo "PASS $name"
  else
    failed=$((failed + 1)); echo "FAIL $name (log: $out/$name.log)"; tail -n 5 "$out/$name.log"
  fi
}

if [ "${GPU_CHECK_CPU:-0}" = 1 ]; then
  device=cpu
elif ! $py -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: torch sees no CUDA device here; nothing was checked (GPU_CHECK_CPU=1 to try on CPU)"
  exit 2
fi
$py -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu', '| GPUs:', torch.cuda.device_count())"
n_gpus=$($py -c "import torch; print(torch.cuda.device_count())")

train=(-m difflab train --preset tiny --data.limit 512 --train.epochs 2 --train.batch-size 32
       --train.checkpoint-every 4 --train.sample-every 1 --train.mixed-precision bf16 --no-progress)

train_and_resume() {
  $py "${train[@]}" --runs-dir "$out/straight" || return 1
  $py "${train[@]}" --runs-dir "$out/resumed" &
  local pid=$!
  for _ in $(seq 600); do  # SIGTERM once the first checkpoint is complete (60 s at most)
    ls "$out"/resumed/*/checkpoints/*.complete >/dev/null 2>&1 && break
    sleep 0.1
  done
  kill -TERM "$pid"; wait "$pid"
  local run; run=$(ls -d "$out"/resumed/0*)
  $py -m difflab train --resume "$run" --no-progress || return 1
  $py - "$out" <<'EOF'
import glob, sys
from safetensors.torch import load_file
a, b = (load_file(glob.glob(f"{sys.argv[1]}/{d}/0*/model.safetensors")[0]) for d in ("straight", "resumed"))
worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
print(f"resumed vs uninterrupted weights: max |difference| {worst:.3g}",
      "(bit-identical)" if worst == 0 else "(CUDA kernels are not deterministic)")
assert worst < 1e-2, "a resumed run drifted from the uninterrupted one"
EOF
}

sample_every_sampler() {
  local run; run=$(ls -d "$out"/straight/0*)
  for s in $($py -c "from difflab.samplers import SAMPLERS; print(*SAMPLERS)"); do
    $py -m difflab sample "$run" --device "$device" --sampler "$s" --steps 6 --n 8 --json \
      --out "$out/samples-$s" || return 1
  done
}

evaluate() {
  $py -m difflab eval "$(ls -d "$out"/straight/0*)" --device "$device" --n 128 --steps 5 --json
}

check train_checkpoint_resume train_and_resume
check sample_every_sampler sample_every_sampler
check evaluate evaluate
if [ "$device" = cuda ]; then
  check fp16_training $py -m difflab train --preset tiny --data.limit 256 --train.epochs 1 \
    --train.mixed-precision fp16 --runs-dir "$out/fp16" --no-progress
  if [ "$n_gpus" -ge 2 ]; then
    check ddp_2_processes $py -m accelerate.commands.launch --num_processes 2 --multi_gpu \
      -m difflab train --preset tiny --data.limit 512 --train.epochs 1 --runs-dir "$out/ddp" --no-progress
  else
    echo "SKIP ddp_2_processes (1 GPU: DDP needs 2)"
  fi
fi
echo "gpu_check: $passed passed, $failed failed (logs in $out)"
[ "$failed" = 0 ]
