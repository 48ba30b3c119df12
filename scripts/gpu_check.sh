#!/usr/bin/env bash
# One short GPU check (a few minutes on a fresh machine): set up the repo's .venv (the Makefile's), then run the
# tests marked `gpu`, the primitive benchmark's GPU rows (100 triangles on astronaut_256, CPU against CUDA), a
# style run at 512 px on CUDA and style's speed rows (fp32 and bf16 at 512 and 1024 px: it/s, peak memory), and
# print one table. Nothing here is needed by the tests or CI.
#
#     bash scripts/gpu_check.sh            # from anywhere; OUT=dir keeps the logs and pictures there
#     GPU_CHECK_NO_SETUP=1 bash scripts/gpu_check.sh    # use .venv as it is
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
PY=.venv/bin/python
SUMMARY="$OUT/summary.tsv"
: > "$SUMMARY"
row() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$SUMMARY"; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

# 1. the venv, as `make test` builds it (skipped when it is already there and up to date)
t=$(now)
if [ -n "${GPU_CHECK_NO_SETUP:-}" ]; then row "setup (.venv)" "skipped (GPU_CHECK_NO_SETUP)" "-"
elif make -q .venv/.artfx-installed 2>/dev/null; then row "setup (.venv)" "up to date" "$(since "$t")"
elif timeout 240 make .venv/.artfx-installed > "$OUT/setup.log" 2>&1; then row "setup (.venv)" "installed" "$(since "$t")"
else row "setup (.venv)" "FAILED (see $OUT/setup.log)" "$(since "$t")"; fi
if [ ! -x "$PY" ]; then PY=python3; fi

GPU=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none', \
torch.__version__)" 2>&1 | tail -1)
row "device" "$GPU" "-"

# 2. the tests marked gpu (they skip without CUDA)
t=$(now)
timeout 120 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests > "$OUT/pytest.log" 2>&1
row "pytest -m gpu" "$(tail -1 "$OUT/pytest.log")" "$(since "$t")"

# 3. primitive: 100 triangles, CPU (greedy and refined, 2 threads) against CUDA, one seed
t=$(now)
if PYTHONPATH=. timeout 150 "$PY" scripts/bench_primitive.py --quick --gpu --no-curve --seeds 1 --threads 2 \
        > "$OUT/primitive.log" 2>&1; then
    "$PY" - "$OUT/primitive.log" >> "$SUMMARY" <<'PYEOF'
import sys
lines = [l for l in open(sys.argv[1]) if l.startswith("| ")]
head = [c.strip() for c in lines[0].strip().strip("|").split("|")]
for line in lines[1:]:
    v = dict(zip(head, (c.strip() for c in line.strip().strip("|").split("|"))))
    what = f"primitive {v['n']} {v['shape']}s {v['image']}"
    print(f"{what}, CPU greedy (2 thr)\tRMSE {v['greedy RMSE']}\t{v['greedy s (2 thr)']}")
    print(f"{what}, CPU refined (2 thr)\tRMSE {v['refined RMSE']}\t{v['refined s (2 thr)']}")
    print(f"{what}, CUDA greedy\t-\t{v['GPU greedy s']}")
    print(f"{what}, CUDA refined\tRMSE {v['GPU refined RMSE']}\t{v['GPU s']}")
PYEOF
else row "primitive benchmark --gpu" "FAILED (see $OUT/primitive.log)" "$(since "$t")"; fi

# 4. style: 512 px on CUDA (50 iterations per scale), through the command line
t=$(now)
if timeout 120 "$PY" -m artfx style samples/tubingen.jpg --size 512 --iterations 50 --device cuda \
        -o "$OUT/style.png" --force > "$OUT/style.log" 2>&1; then
    row "style 512 px, cuda, 50 iterations/scale" "ok ($OUT/style.png)" "$(since "$t")"
else row "style 512 px, cuda" "FAILED (see $OUT/style.log)" "$(since "$t")"; fi

# 5. style speed on CUDA: one scale, 20 iterations after 3 of warm-up, fp32 and bf16 at 512 and 1024 px
#    (iterations per second from the first to the last reported iteration; peak memory from the allocator)
t=$(now)
if timeout 240 "$PY" - >> "$SUMMARY" 2> "$OUT/style-speed.log" <<'PYEOF'
import time
import numpy as np
import torch
from artfx.io import read_image
from artfx.stages.style import optimize, styles
content = read_image("samples/tubingen.jpg").rgb
style = read_image(styles.resolve("starry-night")).rgb
for size in (512, 1024):
    for precision in ("fp32", "bf16"):
        setup = optimize.Setup(size=size, scales=1, iterations=23, precision=precision, tol=0.0)
        stamps = []
        torch.cuda.reset_peak_memory_stats()
        optimize.transfer(content, [style], setup, device="cuda",
                          report=lambda *a, **k: (torch.cuda.synchronize(), stamps.append(time.perf_counter())))
        rate = (len(stamps) - 4) / (stamps[-1] - stamps[3])
        peak = torch.cuda.max_memory_allocated() / 2**30
        print(f"style {size} px, cuda, {precision}\t{rate:.1f} it/s, peak {peak:.2f} GiB\t-")
PYEOF
then row "style speed rows" "ok" "$(since "$t")"
else row "style speed rows" "FAILED (see $OUT/style-speed.log)" "$(since "$t")"; fi

echo
echo "| check | result | seconds |"
echo "|---|---|---|"
awk -F'\t' '{printf "| %s | %s | %s |\n", $1, $2, $3}' "$SUMMARY"
echo "(logs in $OUT)"
