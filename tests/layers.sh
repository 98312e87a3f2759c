#!/usr/bin/env bash
# The layers' include rule (src/meson.build): basic includes only basic; core basic and core; sim those and
# sim; the programs (cli, daemon, agent, k8s) the library layers and their own folder, never another program's.
# The build already fails on a wrong-way include (each layer's include root reaches only the layers below);
# this is the second guard, and it also catches a path written relative to the source tree ("../sim/sim.h",
# "src/sim/sim.h").
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
# the programs: each may use every library layer, and none of them may reach into another program
check cli basic core sim cli
check k8s basic core sim k8s
check daemon basic core sim daemon
check agent basic core sim agent
[ $fail -eq 0 ] && echo "layers: every include goes down (or sideways)"

# Core says what failed, never what to type: a string literal under src/core that names a command-line
# option (--force, --include BDF, ...) is the CLI's text in the wrong layer; core sets a hint (GvError.hint)
# and the CLI's error_text() adds the option. Only gpuvirt's own options count (those of the CLI's option
# tables): a fix that names another program's (systemctl enable --now) is that program's text.
opts_fail=0
# gpuvirt's options: the long names of every option table under src/cli, and the global ones
opts=$({ grep -rhoE '\{"[a-z][a-z-]*", *(no|required|optional)_argument' "$SRC/cli" | sed -E 's/^\{"([a-z-]+)".*/\1/'
         sed -n 's/^#define GLOBAL_OPTIONS "\(.*\)"/\1/p' "$SRC/cli/gpuvirt.c" | tr ' ' '\n' | sed 's/^--//'; } |
       sort -u | paste -sd'|')
if [ -z "$opts" ] || ! [[ "|$opts|" == *"|force|"* && "|$opts|" == *"|json|"* ]]; then
        echo "layers: cannot read gpuvirt's options from $SRC/cli (got '$opts')"
        fail=1
fi
while IFS= read -r hit; do
        echo "core names a CLI option: $hit (set a GvError hint; the CLI adds the option)"
        opts_fail=1
done < <(grep -rnE '"([^"\\]|\\.)*--('"$opts"')([^a-z-]|$)' "$SRC/core" --include='*.c' --include='*.h' |
         grep -vE '^[^:]*:[0-9]+:[[:space:]]*(\*( |$)|/\*|//)' || true)
[ $opts_fail -eq 0 ] && echo "layers: no core string names a CLI option"
[ $opts_fail -eq 0 ] || fail=1

# One errno formatter: errno_message()/errno_describe() (basic/errname.c) are the only callers of strerror()
while IFS= read -r hit; do
        echo "strerror() outside basic/errname.c: $hit (use errno_message())"
        fail=1
done < <(grep -rnE '(^|[^_a-z])strerror\(' "$SRC" --include='*.c' --include='*.h' | grep -v "^$SRC/basic/errname.c:" |
         grep -vE '^[^:]*:[0-9]+:[[:space:]]*(\*( |$)|/\*|//)' || true)
exit $fail
