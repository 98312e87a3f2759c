#!/usr/bin/env bash
# The layers' include rule (src/meson.build): basic includes only basic; core basic and core; sim those and
# sim; programs (cli) anything. The build already fails on a wrong-way include (each layer's include root
# reaches only the layers below); this is the second guard, and it also catches a path written relative to
# the source tree ("../sim/sim.h", "src/sim/sim.h").
set -eu
SRC=$1
fail=0
check() { # layer, allowed layers...
        local layer=$1; shift
        local allowed=" $* "
        while IFS= read -r line; do
                local file=${line%%:*} rest=${line#*:}
                rest=${rest#*:}
                local inc
                inc=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]*)".*/\1/' <<<"$rest")
                case $inc in
                */*) ;;
                *) continue ;; # a header beside the file (sim-internal.h), or config.h
                esac
                local top=${inc%%/*}
                if [[ $inc == *..* || $allowed != *" $top "* ]]; then
                        echo "wrong-way include: $file: \"$inc\" (a $layer file may include: $*)"
                        fail=1
                fi
        done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$SRC/$layer" || true)
}
check basic basic
check core basic core
check sim basic core sim
# the programs: cli may use every library layer, and none of them may reach into a program
check cli basic core sim cli
[ $fail -eq 0 ] && echo "layers: every include goes down (or sideways)"
exit $fail
