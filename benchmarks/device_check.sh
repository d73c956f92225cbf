#!/usr/bin/env bash
# Device check: throughput of paper-minatar Breakout-MinAtar at 1, 16 and 128 seeds on whatever accelerator JAX sees,
# in at most ~8 minutes (time guard), with MFU against bf16 / fp32 default (TF32) / fp32 HIGHEST matmul rates
# measured in the same processes. Run from the repository root:
#
#     bash benchmarks/device_check.sh              # GPU machine: writes to $OUT if set, else benchmarks/results/device_check
#     SMALL=1 bash benchmarks/device_check.sh      # this CPU: seeds 1,2,4, batch 32, short chunks (end-to-end test)
#
# On the project's GPU machine (no network; image lacks gymnax, flashbax, tyro) first download the wheels here with
# `bash benchmarks/fetch_wheels.sh`; benchmarks/wheels/ is git-ignored, so it must travel with the job explicitly:
#     run(command="bash benchmarks/device_check.sh", carry=["benchmarks/wheels"], timeout_s=540)
#
# Knobs (environment): SEEDS, BATCH (preset's batch size when empty), UPDATES, REPEATS, WARMUP, MATMUL_N,
# BUDGET (seconds for the whole script, default 450: the suite gets what is left minus a margin), ENV_ID, PRESET.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS=0
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}

ENV_ID=${ENV_ID:-Breakout-MinAtar}
PRESET=${PRESET:-paper-minatar}
if [ "${SMALL:-0}" = 1 ]; then
  SEEDS=${SEEDS:-4,1,2}; BATCH=${BATCH-32}; UPDATES=${UPDATES:-4}; REPEATS=${REPEATS:-2}; WARMUP=${WARMUP:-256}
  MATMUL_N=${MATMUL_N:-1024}; BUDGET=${BUDGET:-900}
else
  # the largest seed count first: it is the headline number and the one to keep if the time guard fires
  SEEDS=${SEEDS:-128,1,16}; BATCH=${BATCH-}; UPDATES=${UPDATES:-20}; REPEATS=${REPEATS:-3}; WARMUP=${WARMUP:-512}
  MATMUL_N=${MATMUL_N:-}; BUDGET=${BUDGET:-450}
fi
RESULTS=${OUT:-benchmarks/results/device_check}
[ "${SMALL:-0}" = 1 ] && [ -z "${OUT:-}" ] && RESULTS=benchmarks/results/device_check_small
mkdir -p "$RESULTS"
LOG="$RESULTS/device_check.log"
exec > >(tee "$LOG") 2>&1

echo "== device check $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- 2>/dev/null || echo ' (+ uncommitted changes)'), SMALL=${SMALL:-0}"
echo "== python: $($PY --version 2>&1) at $(command -v $PY)"

# 1. Missing packages from the wheels downloaded by fetch_wheels.sh (installed only where the distribution is absent).
if ! $PY -c "import gymnax, flashbax, tyro" >/dev/null 2>&1; then
  shopt -s nullglob
  wheels=(benchmarks/wheels/*.whl)
  if [ ${#wheels[@]} -eq 0 ]; then
    echo "ERROR: gymnax/flashbax/tyro missing and no benchmarks/wheels/*.whl (run benchmarks/fetch_wheels.sh here and carry benchmarks/wheels)" >&2
    exit 1
  fi
  missing=$($PY - "${wheels[@]}" <<'EOF'
import importlib.metadata as md, os, sys
for w in sys.argv[1:]:
    name = os.path.basename(w).split("-")[0]
    try:
        md.version(name)
    except md.PackageNotFoundError:
        print(w)
EOF
)
  if [ -z "$missing" ]; then
    echo "ERROR: every wheel's distribution is installed, yet this fails:" >&2
    $PY -c "import gymnax, flashbax, tyro" || true
    exit 1
  fi
  echo "== installing (no deps, offline):" $(for w in $missing; do basename "$w"; done)
  # shellcheck disable=SC2086
  $PY -m pip install --no-deps --no-index --disable-pip-version-check -q $missing
fi
$PY -c "import gymnax, flashbax, tyro, importlib.metadata as m; print('== gymnax', m.version('gymnax'), 'flashbax', m.version('flashbax'), 'tyro', m.version('tyro'))"
# The package itself is used from the working tree (PYTHONPATH): pyproject.toml pins Python <3.12 and jax 0.10.2,
# so `pip install -e .` would refuse the image's Python 3.12 / replace its jax.

# 2. Device and versions.
$PY -c 'import jax, jaxlib; print("== jax", jax.__version__, "jaxlib", jaxlib.__version__); print("== devices", jax.devices())'
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
fi

# 3. The plan of the full 128-seed paper run (flag added separately; tolerated when absent).
echo "== plan: python -m purejax_ad.train --env $ENV_ID --preset $PRESET --num-seeds 128 --dry-run"
if ! timeout 90 $PY -m purejax_ad.train --env "$ENV_ID" --preset "$PRESET" --num-seeds 128 --dry-run; then
  echo "== dry-run unavailable (flag missing, import error or timeout; see above); continuing"
fi

# 4. The throughput suite, each seed count in its own process, within what is left of the budget.
left=$((BUDGET - SECONDS - 15))
echo "== throughput suite: seeds $SEEDS, ${left} s left of ${BUDGET} s (elapsed ${SECONDS} s)"
args=(--env "$ENV_ID" --preset "$PRESET" --seeds "$SEEDS" --updates "$UPDATES" --repeats "$REPEATS"
      --warmup-steps "$WARMUP" --isolate --time-budget "$left" --out "$RESULTS")
[ -n "$BATCH" ] && args+=(--batch-size "$BATCH")
[ -n "$MATMUL_N" ] && args+=(--matmul-n "$MATMUL_N")
rc=0
$PY benchmarks/throughput.py "${args[@]}" || rc=$?
[ $rc -eq 2 ] && echo "== some seed counts did not finish (see the notes in throughput.md)"

# 5. Results: CSV + Markdown (+ PNG, per-seed-count subfolders, this log).
echo "== outputs in $RESULTS:"
ls -l "$RESULTS"
echo "== total ${SECONDS} s"
exit $(( rc == 2 ? 0 : rc ))
