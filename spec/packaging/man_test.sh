#!/bin/sh
# man_test.sh PAGE: the built man page PAGE (e.g. build/man/p0f-query.1)
# renders without a single warning, in the C and UTF-8 locales, and has
# the parts every page needs.
set -u
page=$1
name=$(basename "$page")           # p0f-query.1
title=${name%.*}                   # p0f-query
fail=0
for locale in C C.UTF-8; do
  warnings=$(LC_ALL=$locale MANWIDTH=80 man -l --warnings "$page" 2>&1 >/dev/null)
  if [ -n "$warnings" ]; then
    printf 'man -l (%s) warns on %s:\n%s\n' "$locale" "$name" "$warnings"
    fail=1
  fi
done
warnings=$(groff -man -ww -z -Tutf8 "$page" 2>&1)
if [ -n "$warnings" ]; then
  printf 'groff -ww warns on %s:\n%s\n' "$name" "$warnings"
  fail=1
fi
text=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" 2>/dev/null)
for part in NAME SYNOPSIS DESCRIPTION "SEE ALSO"; do
  if ! printf '%s\n' "$text" | grep -q "^$part\$"; then
    echo "$name: no $part section"
    fail=1
  fi
done
# The header names the page as its file does: TITLE(SECTION).
upper=$(printf '%s' "$title" | tr '[:lower:]' '[:upper:]')
if ! printf '%s\n' "$text" | head -1 | grep -q "^$upper(${name##*.})"; then
  echo "$name: header is not $upper(${name##*.}): $(printf '%s\n' "$text" | head -1)"
  fail=1
fi
[ "$fail" = 0 ] && echo "$name: renders cleanly"
exit "$fail"
