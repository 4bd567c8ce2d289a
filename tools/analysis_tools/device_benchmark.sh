#!/usr/bin/env bash
# The speed benchmarks of issue 7 on one GPU, in one go.
#
# Here (a machine with the project's .venv), once:
#   bash tools/analysis_tools/device_benchmark.sh prepare
# copies the pure-Python packages a bare GPU image lacks (mmengine,
# mmcv-lite, mmpretrain, open_clip and their small dependencies) from .venv
# into .whl/site, which .gitignore ignores; the registries need not be
# reachable. There (torch with CUDA, none of those packages), with .whl
# carried:
#   bash tools/analysis_tools/device_benchmark.sh
# runs tools/analysis_tools/benchmark.py on the ViT-B/16 MARS config
# (random weights, synthetic clips; the CLIP-Memory build also end to end
# from a synthetic MARS-layout JPEG set written first) and writes every
# JSON result, one per line, to $OUT/results.jsonl and the logs to
# $OUT/log.txt. Runs go in order of importance and no new one starts after
# BUDGET_S seconds (default 480), so the whole script ends inside a
# 10-minute command.
set -uo pipefail
cd "$(dirname "$0")/../.."

PACKAGES='mmengine mmcv mmpretrain open_clip addict ftfy wcwidth
importlib_metadata modelindex ordered_set termcolor yapf yapf_third_party
platformdirs turbojpeg.py'

if [ "${1:-}" = prepare ]; then
    site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    rm -rf .whl/site && mkdir -p .whl/site
    for name in $PACKAGES; do
        cp -r "$site/$name" .whl/site/ || exit 1
    done
    find .whl/site -name __pycache__ -prune -exec rm -rf {} +
    du -sh .whl/site
    exit 0
fi

OUT=${OUT:-work_dirs/device_benchmark}
PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-480}
CONFIG=${CONFIG:-configs/tfclip/tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py}
DATA=/tmp/synthetic_mars
mkdir -p "$OUT"
export PYTHONPATH="$PWD/.whl/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
LOG="$OUT/log.txt"
RESULTS="$OUT/results.jsonl"
: >"$LOG"
: >"$RESULTS"
START=$SECONDS

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    $PY -c 'import torch, mmengine, mmpretrain, open_clip; print("torch", torch.__version__, "cuda", torch.version.cuda, "mmengine", mmengine.__version__, "mmpretrain", mmpretrain.__version__, "open_clip", open_clip.__version__)'
} >>"$LOG" 2>&1 || { echo 'the environment is not usable; see log.txt'; exit 1; }

bench() {
    local name=$1
    shift
    if ((SECONDS - START > BUDGET_S)); then
        echo "SKIPPED $name (time budget)" | tee -a "$LOG"
        return
    fi
    echo "=== $name: $*" >>"$LOG"
    local json="/tmp/bench_$name.json"
    if timeout 170 $PY tools/analysis_tools/benchmark.py "$CONFIG" \
        --out "$json" "$@" >>"$LOG" 2>&1; then
        $PY -c 'import json, sys; r = json.load(open(sys.argv[1])); r["name"] = sys.argv[2]; print(json.dumps(r))' \
            "$json" "$name" >>"$RESULTS"
        $PY -c 'import json, sys; r = json.load(open(sys.argv[1])); print(sys.argv[2], "%.1f ms" % r["ms_per_step"]["median"], "%.0f seq/s" % r["sequences_per_s"], "%.0f frames/s" % r["frames_per_s"], "%.2f GiB" % r["peak_memory"]["gib"], "MFU %.3f" % r["mfu_vs_bf16_peak"], "cos %s" % r.get("cosine_to_fp32_min"))' \
            "$json" "$name" | tee -a "$LOG"
    else
        echo "FAILED $name (exit $?)" | tee -a "$LOG"
    fi
}

FAST='--amp --compile --fused-optimizer'
bench train16_fast --task train --batch 16 --iters 20 $FAST
bench train64_fast --task train --batch 64 --iters 10 $FAST
bench test64_fp32 --task test --batch 64 --iters 10
bench test64_bf16 --task test --batch 64 --iters 10 --amp --compile
bench memory64_bf16 --task memory --batch 64 --iters 10 --amp
bench train16_plain --task train --batch 16 --iters 20
bench train64_plain --task train --batch 64 --iters 10
if ((SECONDS - START <= BUDGET_S - 120)); then
    # About 12,000 JPEG frames of 256 x 128 in the MARS layout; 50 of the
    # 100 identities train (num_test_ids=50), hence num_classes=50.
    $PY -c "from mmtfclip.utils.synthetic import make_synthetic_mars as m; print(m('$DATA', num_ids=100, num_test_ids=50, tracklets_per_id=2, min_frames=16, max_frames=24))" >>"$LOG" 2>&1
    bench memory_real --task memory --batch 64 --iters 2 --warmup 1 \
        --data real --cfg-options train_dataloader.dataset.data_root=$DATA \
        model.head.num_classes=50 custom_hooks.0.num_workers=14
fi
bench train64_fast_cp --task train --batch 64 --iters 10 $FAST --checkpointing
echo "done in $((SECONDS - START)) s" | tee -a "$LOG"
