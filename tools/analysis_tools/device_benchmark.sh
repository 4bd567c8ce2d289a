#!/usr/bin/env bash
# The speed benchmarks of issues 7 and 15 on one GPU, in one go.
#
# Here (a machine with the project's .venv), once:
#   bash tools/analysis_tools/device_benchmark.sh prepare
# copies the pure-Python packages a bare GPU image lacks (mmengine,
# mmcv-lite, mmpretrain, open_clip and their small dependencies) from .venv
# into .whl/site, which .gitignore ignores; the registries need not be
# reachable. tools/analysis_tools/copy_pure_packages.py copies each one
# only if its WHEEL says Root-Is-Purelib: true with py3-none-any tags, no
# file of it is a compiled module and every file matches its RECORD sha256
# (wcwidth, whose C extension is optional, travels without it). The list
# in .whl/site/MANIFEST.txt. VENV_PYTHON (default .venv/bin/python) is the
# Python to copy from, WHL_SITE (default .whl/site) the folder.
#
# There (torch with CUDA, none of those packages), with .whl carried:
#   bash tools/analysis_tools/device_benchmark.sh
# runs tools/analysis_tools/benchmark.py on the ViT-B/16 MARS config
# (random weights, synthetic clips; the CLIP-Memory build also end to end
# from a synthetic MARS-layout JPEG set written first) and writes every
# JSON result, one per line, to $OUT/results.jsonl and the logs to
# $OUT/log.txt. Runs go in order of importance and no new one starts after
# BUDGET_S seconds (default 480), so the whole script ends inside a
# 10-minute command.
#
# Anywhere, on the CPU, before the card:
#   bash tools/analysis_tools/device_benchmark.sh dry-run
# runs every benchmark of the real run the same way (same script, same
# tools, same JSON lines, the synthetic JPEG set written by
# tools/misc/make_synthetic_dataset.py) on configs/tfclip_demo.py shrunk to
# a 2-block 64-wide ViT (T = 4, 64 x 32 frames), 8 sequences, 1 warm-up and
# 2 timed steps, --device cpu. There --amp is bf16 torch.autocast('cpu')
# and --fused-optimizer the CPU's fused Adam, both run; --compile is left
# out and each line that asked for it says so in "dry_run_skipped" (on the
# CPU it would build C++ kernels with inductor for minutes, which tells
# nothing of the card's Triton kernels). Each line has "dry_run": true.
set -uo pipefail
cd "$(dirname "$0")/../.."

WHL_SITE=${WHL_SITE:-$PWD/.whl/site}
# Distribution names (pip's, not the import names).
PURE='mmengine mmcv-lite mmpretrain open_clip_torch addict ftfy
importlib_metadata modelindex model-index ordered-set termcolor yapf
platformdirs mat4py lazy_importer'
# Wheels with an optional compiled module and a Python fallback.
OPTIONAL_EXTENSION='wcwidth'

if [ "${1:-}" = prepare ]; then
    # shellcheck disable=SC2086
    "${VENV_PYTHON:-.venv/bin/python}" tools/analysis_tools/copy_pure_packages.py \
        "$WHL_SITE" $PURE --optional-extension $OPTIONAL_EXTENSION || exit 1
    du -sh "$WHL_SITE"
    exit 0
fi

DRY_RUN=0
if [ "${1:-}" = dry-run ]; then
    DRY_RUN=1
elif [ -n "${1:-}" ]; then
    echo "usage: $0 [prepare|dry-run]" >&2
    exit 2
fi

OUT=${OUT:-work_dirs/device_benchmark}
PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-480}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONPATH="$WHL_SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
LOG="$OUT/log.txt"
RESULTS="$OUT/results.jsonl"
: >"$LOG"
: >"$RESULTS"
START=$SECONDS

if ((DRY_RUN)); then
    CONFIG=${CONFIG:-configs/tfclip_demo.py}
    DATA=${DATA:-$OUT/synthetic_mars}
    # The 2-block 64-wide ViT of the tests; 8 sequences (2 identities of
    # 4), 1 warm-up and 2 timed steps.
    SIZE=(--cfg-options model.backbone.arch.width=64
        model.neck.embed_dims=64 model.head.in_channels=64)
    S=8 L=8 SN=2 LN=2 WARM=(--warmup 1) DEVICE=(--device cpu)
    # The tiny set: 12 identities (4 for test), 2 cameras, 4-6 frames.
    SET=(--num-ids 12 --num-test-ids 4 --num-cams 2 --tracklets-per-id 1
        --min-frames 4 --max-frames 6)
    TRAIN_IDS=8 WORKERS=1 E2E_ITERS=(--iters 1 --warmup 0)
else
    CONFIG=${CONFIG:-configs/tfclip/tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py}
    DATA=${DATA:-/tmp/synthetic_mars}
    SIZE=() WARM=() DEVICE=()
    S=16 L=64 SN=20 LN=10
    # About 12,000 JPEG frames of 256 x 128 in the MARS layout; 50 of the
    # 100 identities train.
    SET=(--num-ids 100 --num-test-ids 50 --tracklets-per-id 2
        --min-frames 16 --max-frames 24)
    TRAIN_IDS=50 WORKERS=14 E2E_ITERS=(--iters 2 --warmup 1)
fi

{
    if ((DRY_RUN)); then
        echo "dry run on the CPU: $CONFIG"
    else
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    fi
    $PY -c 'import sys, torch, mmengine, mmcv, mmpretrain, open_clip; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "mmengine", mmengine.__version__, "mmcv", mmcv.__version__, "mmpretrain", mmpretrain.__version__, "open_clip", open_clip.__version__)'
} >>"$LOG" 2>&1 || { echo 'the environment is not usable; see log.txt'; exit 1; }

FAILED=0
bench() {
    local name=$1
    shift
    if ((SECONDS - START > BUDGET_S)); then
        echo "SKIPPED $name (time budget)" | tee -a "$LOG"
        return
    fi
    local args=() skipped='{}' a
    for a in "$@"; do
        if ((DRY_RUN)) && [ "$a" = --compile ]; then
            skipped='{"--compile": "not run on the CPU: inductor would build C++ kernels for minutes there, which says nothing of the Triton kernels of the card"}'
        else
            args+=("$a")
        fi
    done
    echo "=== $name: ${args[*]}" >>"$LOG"
    local json="$OUT/bench_$name.json"
    # benchmark.py writes its JSON alone to stdout, its logs to stderr.
    if timeout 170 $PY tools/analysis_tools/benchmark.py "$CONFIG" \
        ${DEVICE[@]+"${DEVICE[@]}"} ${WARM[@]+"${WARM[@]}"} "${args[@]}" ${SIZE[@]+"${SIZE[@]}"} \
        >"$json" 2>>"$LOG"; then
        $PY - "$json" "$name" "$DRY_RUN" "$skipped" >>"$RESULTS" 2>>"$LOG" <<'EOF' || { FAILED=1; echo "FAILED $name (its stdout is not one JSON object)" | tee -a "$LOG"; return; }
import json, sys
with open(sys.argv[1]) as f:
    r = json.load(f)
r['name'] = sys.argv[2]
if sys.argv[3] == '1':
    r['dry_run'] = True
    r['dry_run_skipped'] = json.loads(sys.argv[4])
print(json.dumps(r))
EOF
        $PY - "$json" "$name" <<'EOF' 2>&1 | tee -a "$LOG"
import json, sys
r = json.load(open(sys.argv[1]))
e2e = r.get('end_to_end')
print(sys.argv[2], '%.1f ms' % r['ms_per_step']['median'],
      '%.0f seq/s' % r['sequences_per_s'], '%.0f frames/s' % r['frames_per_s'],
      '%.2f GiB' % r['peak_memory']['gib'], 'MFU %.3f' % r['mfu_vs_bf16_peak'],
      'cos %s' % r.get('cosine_to_fp32_min'),
      'end to end %.0f frames/s' % e2e['frames_per_s'] if e2e else '')
EOF
    else
        local rc=$?
        FAILED=1
        echo "FAILED $name (exit $rc)" | tee -a "$LOG"
    fi
}

FAST='--amp --compile --fused-optimizer'
# shellcheck disable=SC2086
{
    bench train16_fast --task train --batch $S --iters $SN $FAST
    bench train64_fast --task train --batch $L --iters $LN $FAST
    bench test64_fp32 --task test --batch $L --iters $LN
    bench test64_bf16 --task test --batch $L --iters $LN --amp --compile
    bench memory64_bf16 --task memory --batch $L --iters $LN --amp
    bench train16_plain --task train --batch $S --iters $SN
    bench train64_plain --task train --batch $L --iters $LN
}
if ((SECONDS - START <= BUDGET_S - 120)); then
    echo "=== synthetic set: $DATA ${SET[*]}" >>"$LOG"
    rm -rf "$DATA"
    if $PY tools/misc/make_synthetic_dataset.py "$DATA" "${SET[@]}" \
        >>"$LOG" 2>&1; then
        bench memory_real --task memory --batch $L "${E2E_ITERS[@]}" \
            --data real --cfg-options train_dataloader.dataset.data_root="$DATA" \
            model.head.num_classes=$TRAIN_IDS custom_hooks.0.num_workers=$WORKERS
    else
        FAILED=1
        echo "FAILED memory_real (the synthetic set was not written)" | tee -a "$LOG"
    fi
else
    echo "SKIPPED memory_real (time budget)" | tee -a "$LOG"
fi
# shellcheck disable=SC2086
bench train64_fast_cp --task train --batch $L --iters $LN $FAST --checkpointing
echo "done in $((SECONDS - START)) s" | tee -a "$LOG"
exit $FAILED
