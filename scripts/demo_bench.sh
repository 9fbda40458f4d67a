#!/usr/bin/env bash
# Was fine-tuning worth it? The benchmark on the CPU, end to end, into OUT_DIR:
#   1. datasets: babis (the persona) and neutral (a government spokesperson), offline grammar
#   2. a tiny base trained from scratch on the neutral answers ("base": plain Czech)
#   3. a LoRA adapter on the Babiš data on top of it ("sft")
#   4. preference pairs (Babiš chosen, the spokesperson rejected) and DPO on top of the SFT
#      adapter ("dpo"; its reference is the SFT model)
#   5. a few-shot system prompt from the train split on the untouched base ("fewshot")
#   6. persona bench of the four sides on the held-out (test-split) Babiš questions, every
#      side compared with base -> OUT_DIR/bench/bench.xlsx
# Usage: scripts/demo_bench.sh OUT_DIR [COUNT]    (COUNT pairs per persona, default 3000)
set -euo pipefail
OUT=${1:?usage: scripts/demo_bench.sh OUT_DIR [COUNT]}
COUNT=${2:-3000}
PY=${PYTHON:-python}
# NEUTRAL_EPOCHS / PERSONA_EPOCHS (default 4 / 2) and NEUTRAL_LR / PERSONA_LR (default
# 3e-3 / 2e-3) set the two SFT trainings, DPO_STEPS / DPO_LR / DPO_BETA (60 / 5e-5 / 0.1)
# the DPO step, SHOTS (4) the few-shot prompt; BENCH_ARGS is passed on to `persona bench`.
# DPO at 5e-4 for 150 steps drove the loss to 0 and the margin to 13.7 and lost the topic
# (relevance 0.85 -> 0.11); 5e-5 for 60 steps keeps it (0.76) with the style up (0.985).
# Why these: at 1 epoch the from-scratch base never learned to name the asked topic again
# (relevance 0 %); 4 epochs (600 steps, eval loss 1.24 -> 0.53) give plain spokesperson
# sentences about the question's topic, and the adapter gets 2 epochs to keep it under Babiš's
# style. About 1,500 s of CPU in all, 16-18 min wall on 2 cores (see docs/benchmarks.md).
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
step() { printf '\n== %s  (%ss so far)\n' "$1" "$SECONDS"; }

step "1/7 datasets (offline)"
$PY -m persona run --persona babis --count "$COUNT" -w "$OUT/ws" --json >/dev/null
$PY -m persona run --persona neutral --count "$COUNT" -w "$OUT/ws" --json >/dev/null
echo "final/babis and final/neutral: $(wc -l <"$OUT/ws/final/babis/train.jsonl") + $(wc -l <"$OUT/ws/final/neutral/train.jsonl") train pairs"

step "2/7 untrained tiny base (tokenizer on both datasets)"
[ -f "$OUT/base-init/config.json" ] || \
$PY -m persona.bench.tinybase "$OUT/base-init" "$OUT/ws/final/neutral" "$OUT/ws/final/babis"

step "3/7 neutral base: trained from scratch on the spokesperson's answers, merged"
[ -f "$OUT/runs/neutral/merged/config.json" ] || \
$PY -m persona finetune --data "$OUT/ws/final/neutral" --base-model "$OUT/base-init" \
    --out "$OUT/runs/neutral" --train-embeddings --lr "${NEUTRAL_LR:-3e-3}" \
    --epochs "${NEUTRAL_EPOCHS:-4}" --merge --json >/dev/null

step "4/7 Babiš SFT: a LoRA adapter on the neutral base"
[ -f "$OUT/runs/babis/adapter_config.json" ] || \
$PY -m persona finetune --data "$OUT/ws/final/babis" --base-model "$OUT/runs/neutral/merged" \
    --out "$OUT/runs/babis" --train-embeddings --lr "${PERSONA_LR:-2e-3}" \
    --epochs "${PERSONA_EPOCHS:-2}" --json >/dev/null

step "5/7 preference pairs, DPO on top of the SFT adapter"
[ -f "$OUT/pairs/train.jsonl" ] || \
$PY -m persona pairs "$OUT/ws/final/babis" --rejected neutral --out "$OUT/pairs" --json >/dev/null
[ -f "$OUT/runs/babis-dpo/adapter_config.json" ] || \
$PY -m persona finetune --data "$OUT/pairs" --method dpo --base-model "$OUT/runs/babis" \
    --out "$OUT/runs/babis-dpo" --lr "${DPO_LR:-5e-5}" --beta "${DPO_BETA:-0.1}" \
    --max-steps "${DPO_STEPS:-60}" --json >/dev/null

step "6/7 few-shot prompt from the train split"
$PY -m persona prompt "$OUT/ws/final/babis" --shots "${SHOTS:-4}" --max-tokens 700 \
    --out "$OUT/fewshot.md" --json >/dev/null

step "7/7 bench of four sides on the held-out questions"
$PY -m persona bench "$OUT/ws/final/babis" \
    --model base="$OUT/runs/neutral/merged" \
    --model fewshot="$OUT/runs/neutral/merged+prompt:$OUT/fewshot.md" \
    --model sft="$OUT/runs/babis" --model dpo="$OUT/runs/babis-dpo" --reference base \
    --neutral "$OUT/ws/final/neutral" --out "$OUT/bench" ${BENCH_ARGS:-}
printf '\ndone in %ss: %s\n' "$SECONDS" "$OUT/bench/bench.xlsx"
