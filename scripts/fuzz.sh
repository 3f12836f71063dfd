#!/usr/bin/env bash
# Runs the fuzz targets (issue 13) for a total time, optimised, on stable Rust:
#   - ingest: the request parser, through the handler (functions/ingest/tests/fuzz.rs);
#   - detect: the reader of Kinesis records, through the handler (functions/detect/tests/fuzz.rs).
# Each replays its seed corpus (functions/<target>/fuzz-corpus/), then runs proptest-
# generated inputs (mutated seeds, random bytes, random JSON) for its share of the time
# (shared/testkit/src/fuzz.rs). Prints the cases run and the crashes; exits non-zero on a
# crash, printing the shrunk input (add it to the corpus with the fix).
#
# Usage: scripts/fuzz.sh [TOTAL_SECONDS]   (default 60: 30 s per target)
# Env:   FUZZ_PROFILE (default ci: Cargo.toml's [profile.ci], optimised, quick to build;
#        `release` works too), CARGO_BUILD_JOBS as usual.
set -euo pipefail
cd "$(dirname "$0")/.."

total=${1:-60}
profile=${FUZZ_PROFILE:-ci}
targets=(ingest detect)
if ! [[ "$total" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  echo "usage: $0 [TOTAL_SECONDS]" >&2
  exit 2
fi
per_target=$(awk -v t="$total" -v n="${#targets[@]}" 'BEGIN { printf "%.1f", t / n }')

packages=()
for t in "${targets[@]}"; do packages+=(-p "$t"); done
echo "==> building the fuzz targets (profile $profile)"
cargo test --locked --profile "$profile" "${packages[@]}" --test fuzz --no-run

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
for t in "${targets[@]}"; do
  echo "==> fuzz $t for ${per_target} s"
  set +e
  FUZZ_SECONDS=$per_target cargo test --locked --profile "$profile" -p "$t" --test fuzz \
    -- --nocapture --test-threads 1 2>&1 | tee -a "$log" | grep -E 'fuzz [a-z]+: |panicked|^test result'
  code=${PIPESTATUS[0]}
  set -e
  if (( code != 0 )); then status=1; fi
done

# libtest may print the summary line after its own "test ... " prefix: match it anywhere.
summaries=$(grep -oE 'fuzz [a-z]+: [0-9]+ cases in [0-9.]+ s, [0-9]+ crashes' "$log" || true)
cases=$(awk '{ s += $3 } END { print s + 0 }' <<<"$summaries")
crashes=$(awk '{ s += $(NF-1) } END { print s + 0 }' <<<"$summaries")
runs=$(grep -c . <<<"$summaries" || true)
if (( runs != ${#targets[@]} )); then
  echo "fuzz: only $runs of ${#targets[@]} targets reported (see the output above)" >&2
  status=1
fi
echo "fuzz total: $cases cases, $crashes crashes (${total} s over ${#targets[@]} targets, profile $profile)"
if (( status != 0 || crashes != 0 )); then exit 1; fi
