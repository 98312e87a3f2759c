#!/usr/bin/env bash
# Bash completion (data/gpuvirt.bash-completion) driven as bash drives it: COMP_LINE/COMP_POINT set, the
# function called, COMPREPLY read. Verbs, sub-verbs, options, the host's addresses and the profiles.
set -eu
GPUVIRT=$1
COMPLETION=$2
. "$(dirname "$0")/lib.sh"
. "$COMPLETION"
"$GPUVIRT" sim create "$TMP/ws" --profile workstation >/dev/null

# complete LINE: COMPREPLY for the cursor at the end of LINE (the program as the first word)
complete_line() {
        COMP_LINE="$GPUVIRT $1"
        COMP_POINT=${#COMP_LINE}
        COMPREPLY=()
        _gpuvirt
        REPLY_TEXT=" ${COMPREPLY[*]} "
}
has() { # line, word, what
        complete_line "$1"
        [[ $REPLY_TEXT == *" $2 "* ]] && ok || fail "$3: '$2' not offered for '$1' (got:$REPLY_TEXT)"
}
hasnt() {
        complete_line "$1"
        [[ $REPLY_TEXT != *" $2 "* ]] && ok || fail "$3: '$2' offered for '$1'"
}

has "" list "verbs"
has "" passthrough "verbs"
hasnt "" __complete "the hidden helper"
has "pa" passthrough "verb prefix"
hasnt "pa" list "verb prefix only"
has "mig st" status "sub-verb"
hasnt "mig st" enable "sub-verb prefix only"
has "vm " attach "sub-verbs"
has "fleet " request "fleet's sub-verbs (its table)"
has "fleet dr" drain "fleet sub-verb prefix"
hasnt "fleet dr" request "fleet sub-verb prefix only"
has "fleet request --sa" --same-host "a fleet sub-verb's options"
hasnt "fleet hosts --" --same-host "another fleet sub-verb's options"
has "--json mig " status "sub-verbs after a global option"
has "--" --root "global options"
has "list --j" --json "global options after the verb"
has "passthrough enable --f" --force "a sub-verb's options"
hasnt "passthrough enable --f" --vfio "another sub-verb's options"
has "sriov set --v" --vfio "sriov set options"
has "sim create $TMP/x --profile dgx" dgx-a100 "profile names"
# addresses of the host named by --root; bash replaces the part after the last ':' of the word
gpu=$("$GPUVIRT" --root "$TMP/ws" --json list | jq -r '.[0].address')
has "--root $TMP/ws passthrough enable " "$gpu" "device addresses"
has "--root $TMP/ws show ${gpu:0:6}" "${gpu#*:}" "an address after a colon (COMP_WORDBREAKS)"
has "--root=$TMP/ws --json show ${gpu:0:9}" "${gpu##*:}" "--root=DIR"
hasnt "--root $TMP/ws show 0000:ff" "$gpu" "addresses by prefix"
complete_line "--root $TMP/nonexistent show "
[ ${#COMPREPLY[@]} -eq 0 ] && ok || fail "a root that does not exist offers: ${COMPREPLY[*]}"
finish
