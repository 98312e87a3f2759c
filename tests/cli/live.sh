#!/usr/bin/env bash
# gpuvirt on the real /sys and /proc of the machine running the tests (read-only verbs). It must never
# crash, must print valid JSON with the documented keys, and check must exit 0 or 1.
set -eu
GPUVIRT=$1
. "$(dirname "$0")/lib.sh"

expect_rc 0 "$GPUVIRT" --root / --json list
echo "$OUT" | jq -e 'type == "array" and all(.[]; has("address") and has("vendor_id") and has("iommu_group"))' \
        >/dev/null && ok || fail "list --json on the live host"
set +e
"$GPUVIRT" --json check >"$TMP/check.json" 2>"$TMP/err"
rc=$?
set -e
[ "$rc" -eq 0 ] || [ "$rc" -eq 1 ] && ok || fail "check on the live host exited $rc: $(cat "$TMP/err")"
jq -e 'map(.id) as $ids | ["cpu-virt","kvm","iommu-firmware","iommu-kernel","interrupt-remapping","vfio-modules"]
       | all(. as $i | $ids | index($i))' "$TMP/check.json" >/dev/null && ok || fail "check ids on the live host"
jq -e 'all(.[]; .status | IN("pass","warn","fail","skip"))' "$TMP/check.json" >/dev/null && ok || fail "statuses"
# exit status agrees with the report
failed=$(jq '[.[] | select(.status == "fail")] | length' "$TMP/check.json")
{ [ "$failed" -gt 0 ] && [ "$rc" -eq 1 ]; } || { [ "$failed" -eq 0 ] && [ "$rc" -eq 0 ]; } && ok || fail "rc $rc vs $failed failures"
echo "live host check:"; jq -r '.[] | "  \(.status)\t\(.id)\t\(.message)"' "$TMP/check.json"
"$GPUVIRT" list >/dev/null && ok || fail "text list on the live host"
finish
