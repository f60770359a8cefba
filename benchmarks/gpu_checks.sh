#!/usr/bin/env bash
# The GPU checks of the fast path, unattended: correctness on the GPU, then the training-step benchmark.
#
#     bash benchmarks/gpu_checks.sh OUT_DIR
#
# Needs one CUDA GPU and the package's dependencies already installed (it installs nothing, reads no dataset,
# uses no network). Python: $PYTHON, else .venv/bin/python, else python3. Label the tables with a commit when
# the copy has no .git: LDRLD_COMMIT=<sha> bash benchmarks/gpu_checks.sh OUT_DIR.
# Every phase runs under `timeout`, inside a total budget of 7 min 40 s (the whole script stays under
# 8 minutes on one H200); a phase that would not fit is skipped and says so in OUT_DIR/status.txt.
# Writes to OUT_DIR: env.txt, status.txt, one <phase>.log per phase, bench_train_step*.md / .json, and
# summary.md (everything to copy into benchmarks/RESULTS.md).
set -u -o pipefail

OUT=${1:?usage: bash benchmarks/gpu_checks.sh OUT_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" LDRLD_QUIET=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if [ -z "${LDRLD_COMMIT:-}" ] && git rev-parse --short HEAD >/dev/null 2>&1; then
    LDRLD_COMMIT=$(git rev-parse --short HEAD)
    [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && LDRLD_COMMIT="$LDRLD_COMMIT (with uncommitted changes)"
fi
export LDRLD_COMMIT=${LDRLD_COMMIT:-unknown}

BUDGET=${LDRLD_GPU_BUDGET:-460}  # seconds for all phases together (LDRLD_GPU_BUDGET lowers it to fit a lease)
START=$(date +%s)
: > "$OUT/status.txt"

phase() {  # phase NAME LIMIT_S COMMAND...: run with min(LIMIT_S, time left), log to OUT/NAME.log
    local name=$1 limit=$2; shift 2
    local left=$(( BUDGET - ($(date +%s) - START) ))
    if [ "$left" -lt 30 ]; then
        echo "$name: SKIPPED (only ${left}s of the budget left)" | tee -a "$OUT/status.txt"
        return 0
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    local t0=$(date +%s)
    timeout --signal=TERM --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    local verdict="ok"
    [ "$rc" -eq 124 ] && verdict="TIMED OUT after ${limit}s"
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && verdict="FAILED (exit $rc)"
    echo "$name: $verdict in $(( $(date +%s) - t0 ))s" | tee -a "$OUT/status.txt"
}

# 0. where and what
{
    echo "commit: $LDRLD_COMMIT"
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
    else
        echo "nvidia-smi not available"
    fi
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version()); print('gpu', torch.cuda.get_device_name() if torch.cuda.is_available() else 'NONE')" 2>&1
    echo "cpu cores: $(nproc)"
} > "$OUT/env.txt"
cat "$OUT/env.txt"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA GPU visible to $PY: nothing to check" | tee -a "$OUT/status.txt"
    exit 1
fi

# 1. correctness on the GPU: graph vs eager, fast vs standard (bf16 tolerance), no host sync, streams
if "$PY" -c "import pytest" 2>/dev/null; then
    phase correctness 150 "$PY" -m pytest tests/test_fast_path.py -k cuda -v -p no:nbval -p no:cacheprovider -o addopts=
else  # no pytest on the machine: a stand-in for the few pytest names the CUDA tests use
    phase correctness 150 "$PY" - <<'PYEOF'
import math, sys, time, traceback, types
stub = types.ModuleType("pytest")
stub.mark = type("Mark", (), {"__getattr__": lambda self, name: lambda *a, **k: (lambda f: f)})()
stub.approx = lambda expected, rel=1e-6, abs=0.0: type("Approx", (), {
    "__eq__": lambda self, got: math.isclose(got, expected, rel_tol=rel, abs_tol=abs)})()
sys.modules["pytest"] = stub
sys.path.insert(0, "tests")
import test_fast_path as tests
failed = 0
for name in [n for n in dir(tests) if n.startswith("test_cuda_")]:
    start = time.perf_counter()
    try:
        getattr(tests, name)()
        print(f"PASSED {name} ({time.perf_counter() - start:.1f}s)")
    except Exception:
        failed += 1
        print(f"FAILED {name}")
        traceback.print_exc()
print(f"{failed} failed")
sys.exit(1 if failed else 0)
PYEOF
fi

# 2. the benchmark: baseline / standard / fast x KD / LDRLD, ResNet32x4 -> ResNet8x4, batch 64
phase bench 170 "$PY" benchmarks/bench_train_step.py --device cuda --out "$OUT"

# 3. several runs on one GPU: 1, 2, 4 fast LDRLD runs as CUDA streams and as processes
phase parallel 110 "$PY" benchmarks/bench_train_step.py --device cuda --paths fast --methods ldrld \
    --parallel 1 2 4 --steps 150 --out "$OUT" --tag _parallel

# 4. torch.compile of the loss inside the captured step (does fusing the LDRLD loss pay?)
phase compile_loss 120 "$PY" benchmarks/bench_train_step.py --device cuda --paths fast --compile loss \
    --out "$OUT" --tag _compile_loss

# 5. with the time left: torch.compile of models and loss
phase compile_all 200 "$PY" benchmarks/bench_train_step.py --device cuda --paths fast --methods ldrld \
    --compile all --out "$OUT" --tag _compile_all

{
    echo "# GPU checks of the fast path"
    echo
    echo '```'
    cat "$OUT/env.txt"
    echo '```'
    echo
    echo "## Phases"
    echo
    sed 's/^/- /' "$OUT/status.txt"
    echo
    echo "## Correctness (tail of correctness.log)"
    echo
    echo '```'
    tail -n 15 "$OUT/correctness.log" 2>/dev/null
    echo '```'
    for f in "$OUT"/bench_train_step*.md; do
        [ -e "$f" ] || continue
        echo
        echo "## $(basename "$f" .md)"
        echo
        cat "$f"
    done
} > "$OUT/summary.md"
echo "wrote $OUT/summary.md ($(( $(date +%s) - START ))s)"
grep -q -E "FAILED|TIMED OUT" "$OUT/status.txt" && exit 1
exit 0
