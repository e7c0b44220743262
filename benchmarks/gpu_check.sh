#!/usr/bin/env bash
# GPU check, for a lent GPU machine (under 5 minutes there): train the zoo cnn on the GPU and on the CPU,
# diagnose the GPU-trained model with the GPU visible and with it hidden, then compare held-out
# accuracy, verdicts and findings, and report the training and diagnosis speed-ups.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]      (run from the repository root, in its venv)
#
# Exit 0 when the accuracies agree within 1 point and both diagnoses give the same finding codes.
set -euo pipefail
OUT=${1:-/tmp/diagnostics-gpu-check}
PY=${PYTHON:-python}
DIAGNOSE=${DIAGNOSE:-diagnose}
ENTRY=cnn
ONLY=(--only weights --only health.gradients --only health.units --only explain.gradients)
rm -rf "$OUT" && mkdir -p "$OUT"/{gpu,cpu}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "nvidia-smi not found: no GPU visible?"

secs() { local t0=$(date +%s.%N); "$@" > "$OUT/last.log" 2>&1 || { cat "$OUT/last.log"; exit 2; }; awk -v a="$(date +%s.%N)" -v b="$t0" "BEGIN{print a - b}"; }

# The zoo reads its artifacts from the package folder for the GAN judge only; cnn trains alone.
t_train_gpu=$(secs $PY -m diagnostics_zoo.train $ENTRY --out "$OUT/gpu")
t_train_cpu=$(secs env CUDA_VISIBLE_DEVICES= $PY -m diagnostics_zoo.train $ENTRY --out "$OUT/cpu")
t_diag_gpu=$(secs $DIAGNOSE "$OUT/gpu/$ENTRY.keras" "${ONLY[@]}" --out "$OUT/report_gpu")
t_diag_cpu=$(secs env CUDA_VISIBLE_DEVICES= $DIAGNOSE "$OUT/gpu/$ENTRY.keras" "${ONLY[@]}" --out "$OUT/report_cpu")

$PY - "$OUT" "$t_train_gpu" "$t_train_cpu" "$t_diag_gpu" "$t_diag_cpu" <<'PYEOF'
import json, sys
out, tg, tc, dg, dc = sys.argv[1], *map(float, sys.argv[2:])
meta = {d: json.load(open(f"{out}/{d}/cnn.meta.json")) for d in ("gpu", "cpu")}
rep = {d: json.load(open(f"{out}/report_{d}/report.json")) for d in ("gpu", "cpu")}
acc = {d: meta[d]["final_metrics"]["val_accuracy"] for d in meta}
codes = {d: sorted({f["code"] for a in rep[d]["analyzers"] for f in a["findings"]}) for d in rep}
status = {d: {a["name"]: a["status"] for a in rep[d]["analyzers"]} for d in rep}
print(f"trained on: gpu run {meta['gpu'].get('device')}, cpu run {meta['cpu'].get('device')}")
print(f"diagnosed on: {rep['gpu']['environment'].get('devices')} vs {rep['cpu']['environment'].get('devices')}")
print(f"held-out accuracy: GPU-trained {acc['gpu']:.4f}, CPU-trained {acc['cpu']:.4f}")
print(f"training: GPU {tg:.1f} s, CPU {tc:.1f} s, speed-up {tc / tg:.2f}x")
print(f"diagnosis: GPU {dg:.1f} s, CPU {dc:.1f} s, speed-up {dc / dg:.2f}x")
print(f"statuses GPU {status['gpu']}")
print(f"statuses CPU {status['cpu']}")
print(f"finding codes GPU {codes['gpu']}")
print(f"finding codes CPU {codes['cpu']}")
ok = abs(acc["gpu"] - acc["cpu"]) <= 0.01 and codes["gpu"] == codes["cpu"] and status["gpu"] == status["cpu"]
print("GPU CHECK:", "PASS" if ok else "DIFFERENT")
sys.exit(0 if ok else 1)
PYEOF
