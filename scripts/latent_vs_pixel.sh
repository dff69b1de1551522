#!/usr/bin/env bash
# Latent vs pixel-space diffusion at equal wall clock (issue #20), on Fashion-MNIST.
#
#   scripts/latent_vs_pixel.sh [TOTAL_MIN [AE_MIN [OUT [N]]]]      # defaults: 30 5 runs/latent-vs-pixel 2048
#
# Runs, one after the other (run it on an idle machine; each step's JSON lands in OUT/):
#   1. `difflab autoencoder train` for AE_MIN minutes (its card: reconstruction MSE, the
#      reconstruction FID at n=N that bounds any latent model's FID, and the scale factor);
#   2. latent diffusion for TOTAL_MIN - AE_MIN minutes: equal total wall clock, AE included;
#   3. latent diffusion for TOTAL_MIN minutes: the autoencoder amortised (trained once, reused);
#   4. pixel-space diffusion for TOTAL_MIN minutes (the headline recipe), unless PIXEL_RUN=DIR
#      names a finished one to reuse;
#   5. `difflab eval` of each at n=N (FMNIST-FID, floor, sampling seconds);
# then prints a markdown table: FID, floor, reconstruction FID, train and sampling images/s.
#
# Every diffusion run is `--preset headline` (fmnist-cpu UNet, DDIM-25); extra flags for the
# training runs in TRAIN_FLAGS, for the autoencoder in AE_FLAGS, for eval in EVAL_FLAGS.
# Smoke test (a minute, proves the plumbing, numbers meaningless):
#   TRAIN_FLAGS="--model.preset tiny --data.limit 512" AE_FLAGS="--limit 512 --width 8" \
#     EVAL_FLAGS="--steps 3" scripts/latent_vs_pixel.sh 0.4 0.2 /tmp/lvp-smoke 64
set -euo pipefail

TOTAL=${1:-30}
AE_MIN=${2:-5}
OUT=${3:-runs/latent-vs-pixel}
N=${4:-2048}
TRAIN_FLAGS=${TRAIN_FLAGS:-}
AE_FLAGS=${AE_FLAGS:-}
EVAL_FLAGS=${EVAL_FLAGS:-}
LATENT_MIN=$(python -c "import sys; t, a = map(float, sys.argv[1:]); assert t > a > 0, 'need TOTAL_MIN > AE_MIN > 0'; print(t - a)" "$TOTAL" "$AE_MIN")
RUNS="$OUT/runs"
mkdir -p "$OUT"

echo "== 1. autoencoder, $AE_MIN min" >&2
# shellcheck disable=SC2086
difflab autoencoder train --dataset fashion_mnist --minutes "$AE_MIN" --epochs 1000 \
  --recon-n "$N" --out "$OUT/ae" --runs-dir "$RUNS" --no-progress $AE_FLAGS >"$OUT/ae.json"

train() {  # NAME MINUTES [flags...]
  local name=$1 minutes=$2
  shift 2
  echo "== $name, $minutes min" >&2
  # shellcheck disable=SC2086
  difflab train --preset headline --train.minutes "$minutes" --runs-dir "$RUNS" --name "$name" \
    --train.sample-every 0 --json --no-progress "$@" $TRAIN_FLAGS >"$OUT/$name.train.json"
}
train latent-total "$LATENT_MIN" --latent "$OUT/ae"
train latent-amortised "$TOTAL" --latent "$OUT/ae"
if [ -z "${PIXEL_RUN:-}" ]; then
  train pixel "$TOTAL"
  PIXEL_RUN=$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['run_dir'])" "$OUT/pixel.train.json")
fi

evaluate() {  # NAME RUN_DIR
  echo "== eval $1 at n=$N" >&2
  # shellcheck disable=SC2086
  difflab eval "$2" --n "$N" --no-kid --json $EVAL_FLAGS >"$OUT/$1.eval.json"
}
evaluate pixel "$PIXEL_RUN"
for name in latent-total latent-amortised; do
  evaluate "$name" "$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['run_dir'])" "$OUT/$name.train.json")"
done

python - "$OUT" "$TOTAL" "$AE_MIN" <<'PY'
import json
import sys
from pathlib import Path

out, total, ae_min = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
ae = json.loads((out / "ae.json").read_text())
print(f"autoencoder ({ae_min} min, {ae['steps']} steps): recon MSE {ae['recon_mse']:.5f}, "
      f"recon FID {ae['recon_fid']} (floor {ae['recon_fid_floor']}), scale {ae['scale_factor']:.4f}")
print()
print("| run | diffusion min | steps | train img/s | FID | floor | sampling img/s |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name in ("pixel", "latent-total", "latent-amortised"):
    ev = json.loads((out / f"{name}.eval.json").read_text())
    path = out / f"{name}.train.json"
    tr = json.loads(path.read_text()) if path.is_file() else {}
    sampling = ev["n"] / ev["sampling_seconds"] if ev.get("sampling_seconds") else float("nan")
    print(f"| {name} | {tr.get('seconds', float('nan')) / 60:.1f} | {tr.get('steps', '?')} | "
          f"{tr.get('images_per_s_overall', float('nan'))} | {ev['fid']:.3f} | "
          f"{ev['fid_floor']:.3f} | {sampling:.1f} |")
PY
