#!/bin/bash
# Keeps the documentation in step with the binary: every long option that
# `tcp-multiplexer server --help` prints is in the man page and in README,
# with the same default; the top-level help's options are there too; and the
# bash completion offers every command, option and protocol.
# Run by `make check` from the build directory; by hand:
#   srcdir=. tests/check-docs.sh      (TCPMUX_BIN=path overrides the binary)
set -u

srcdir=${srcdir:-.}
bin=${TCPMUX_BIN:-./src/tcp-multiplexer}
man_in=$srcdir/man/tcp-multiplexer.8.in
readme=$srcdir/README
completion=$srcdir/contrib/tcp-multiplexer.bash-completion

failures=0
fail()
{
	echo "FAIL: $*"
	failures=$((failures + 1))
}

for f in "$man_in" "$readme" "$completion"; do
	[ -r "$f" ] || { echo "ERROR: $f is missing"; exit 99; }
done
help=$("$bin" server --help) || { echo "ERROR: '$bin server --help' failed"; exit 99; }
protocols=$("$bin" list | awk 'NF { print $1 }') || { echo "ERROR: '$bin list' failed"; exit 99; }
# Every --name in the help: the options and, from its last lines, the aliases.
options=$(printf '%s\n' "$help" | grep -o -e '--[A-Za-z][A-Za-z0-9-]*' | sort -u)
if [ -z "$options" ] || [ -z "$protocols" ]; then
	echo "ERROR: no options or no protocols found"
	exit 99
fi
echo "options: ${options//$'\n'/ }"
echo "protocols: ${protocols//$'\n'/ }"

# The page as a reader sees the words: roff's \- is a plain dash.
man_text=$(sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$man_in")
mentions()
{
	# $1 text, $2 word: the word, not merely a longer word that starts with it
	printf '%s\n' "$1" | grep -q -E -e "(^|[^A-Za-z0-9-])$2([^A-Za-z0-9-]|\$)"
}

for o in $options; do
	mentions "$man_text" "$o" || fail "$o is not in the man page ($man_in)"
	mentions "$(cat "$readme")" "$o" || fail "$o is not in README"
done
# The top-level help's own options (--version, -V's long form, --help).
top_help=$("$bin" --help) || { echo "ERROR: '$bin --help' failed"; exit 99; }
for o in $(printf '%s\n' "$top_help" | grep -o -e '--[A-Za-z][A-Za-z0-9-]*' | sort -u); do
	mentions "$man_text" "$o" || fail "$o (top-level help) is not in the man page"
	mentions "$(cat "$readme")" "$o" || fail "$o (top-level help) is not in README"
done
printf '%s\n' "$top_help" | grep -q -e '-V' || fail "the top-level help does not name -V"

# Defaults: "(default X)" in --help is "[X]" at the end of README's entry and
# "Default: X" in the man page's, written the same way (60s, not 60).
help_defaults=$(printf '%s\n' "$help" | awk '
	/^  -., --|^      --/ { for (i = 1; i <= NF; i++) if ($i ~ /^--/) { name = $i; break }; next }
	name != "" { text[name] = text[name] " " $0 }
	END { for (n in text) if (match(text[n], /\(default [^)]+\)/))
		print n, substr(text[n], RSTART + 9, RLENGTH - 10) }')
readme_default()
{
	# The last [X] of the entry that starts with option $1 in README.
	awk -v o="$1" '
		/^    (-., |    )--/ { on = 0; for (i = 1; i <= 2; i++) if ($i == o) on = 1 }
		/^$/ { on = 0 }
		on { entry = entry " " $0 }
		END { n = split(entry, w, "["); if (n > 1) { sub(/\].*/, "", w[n]); print w[n] } }' "$readme"
}
man_default()
{
	# The word after "Default:" in the entry (.TP, then a line naming $1).
	printf '%s\n' "$man_text" | awk -v o="$1" '
		/^\.(TP|SH|PP)/ { on = 0; head = ($0 == ".TP"); next }
		head { head = 0; on = 0; for (i = 1; i <= NF; i++) { w = $i; gsub(/[",]/, "", w); if (w == o) on = 1 } next }
		on { line = $0; sub(/^\.[A-Z]+ /, "", line); entry = entry " " line }
		END { if (match(entry, /Default: *[^ ]+/)) { d = substr(entry, RSTART, RLENGTH); sub(/Default: */, "", d); sub(/\.$/, "", d); print d } }'
}
while read -r o d; do
	[ -n "$o" ] || continue
	r=$(readme_default "$o")
	[ "$r" = "$d" ] || fail "$o: --help says the default is '$d', README says '[$r]'"
	m=$(man_default "$o")
	[ "$m" = "$d" ] || fail "$o: --help says the default is '$d', the man page says '$m'"
done <<<"$help_defaults"
echo "defaults checked: $(printf '%s\n' "$help_defaults" | wc -l)"

for p in $protocols; do
	mentions "$man_text" "$p" || fail "protocol $p is not in the man page"
	mentions "$(cat "$readme")" "$p" || fail "protocol $p is not in README"
done

# The completion, sourced into a bash of its own. Prints COMPREPLY, one word
# a line, for the command line given as arguments (the last one is the word
# being completed).
complete_words()
{
	bash -c '
		. "$1" || exit 1
		shift
		func=$(complete -p tcp-multiplexer 2>/dev/null | sed -n "s/.*-F \([^ ]*\) .*/\1/p")
		[ -n "$func" ] || { echo "no completion function for tcp-multiplexer" >&2; exit 1; }
		COMP_WORDS=("$@")
		COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		COMPREPLY=()
		prev=""
		[ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD - 1]}
		"$func" "$1" "${COMP_WORDS[COMP_CWORD]}" "$prev"
		printf "%s\n" "${COMPREPLY[@]}"
	' complete-words "$completion" "$@"
}

offers()
{
	# $1: what is being completed, $2: the words expected, $3...: the line
	local what=$1 want=$2
	shift 2
	local got
	got=$(complete_words "$@") || { fail "the completion failed for: $*"; return; }
	for w in $want; do
		printf '%s\n' "$got" | grep -q -x -F -e "$w" || fail "completion of $what does not offer $w"
	done
}

# Once asking the binary, once with no binary to ask: the completion's own
# lists must be complete too.
for prog in "$bin" /nonexistent/tcp-multiplexer; do
	offers "a command" "server list version help" "$prog" ""
	offers "an option of server ($prog)" "$options" "$prog" server --
	for opt in -p --applicationProtocol --protocol; do
		offers "$opt ($prog)" "$protocols" "$prog" server "$opt" ""
	done
	offers "--protocol= ($prog)" "$protocols" "$prog" server --protocol = ""
	# Options with a fixed set of values, written "--name a|b" in the help.
	printf '%s\n' "$help" | awk '$1 ~ /^--/ && $2 ~ /^[a-z0-9]+(\|[a-z0-9]+)+$/ { print $1, $2 }' |
		while read -r opt values; do
			offers "$opt ($prog)" "${values//|/ }" "$prog" server "$opt" ""
		done
done

if [ "$failures" -gt 0 ]; then
	echo "$failures problem(s): update the man page, README or completion"
	exit 1
fi
echo "documentation and completion match the binary"
exit 0
