#!/usr/bin/env bash
# Opens `tell view`'s page of a run in headless Chromium (Debian's `chromium`): the page must load
# without script errors and show the expected number of coloured tokens; a screenshot is written
# beside the page for a person to look at.
#
#   scripts/check-view.sh TELL RUN EXPECTED_TOKENS
#
# Prints "ok N tokens" and exits 0, or says what is wrong and exits 1. Needs `chromium`.
set -euo pipefail
tell=${1:?usage: scripts/check-view.sh TELL RUN EXPECTED_TOKENS}
run=${2:?}; want=${3:?}
page="$run/view.html"
"$tell" view "$run" --out "$page"
url="file://$(cd "$(dirname "$page")" && pwd)/$(basename "$page")"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags=(--headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$profile"
  --virtual-time-budget=10000)
dom=$(chromium "${flags[@]}" --dump-dom "$url" 2>"$profile/stderr.log")
chromium "${flags[@]}" --window-size=1280,1600 --screenshot="$run/view.png" "$url" \
  >/dev/null 2>>"$profile/stderr.log"
body=$(printf '%s' "$dom" | { grep -o '<body[^>]*>' || true; } | head -1)
ready=$(printf '%s' "$body" | sed -n 's/.*data-ready="\([0-9]*\)".*/\1/p')
errors=$(printf '%s' "$body" | sed -n 's/.*data-errors="\([0-9]*\)".*/\1/p')
spans=$(printf '%s' "$dom" | { grep -o 'class="tok"' || true; } | wc -l)
if [ -n "$errors" ]; then
  echo "check-view: $errors script error(s) in $page" >&2; exit 1
fi
if [ "$ready" != "$want" ] || [ "$spans" != "$want" ]; then
  echo "check-view: $page shows ${ready:-no} rendered / $spans coloured tokens, expected $want" >&2
  tail -5 "$profile/stderr.log" >&2
  exit 1
fi
[ -s "$run/view.png" ] || { echo "check-view: no screenshot written" >&2; exit 1; }
echo "ok $want tokens; screenshot $run/view.png"
