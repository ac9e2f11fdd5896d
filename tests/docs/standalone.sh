#!/bin/sh
# The project's docs stand on their own: no README, docs/ page or test
# README may point at files outside the repository or at issue numbers.
cd "$(dirname "$0")/../.." || exit 1
files=$(find . -name '*.md' -not -path './build*' -not -path '*/node_modules/*' -not -path './.git/*')
[ -n "$files" ] || { echo "no Markdown files found"; exit 1; }
bad=$(echo "$files" | xargs grep -n -E 'PRODUCT\.md|\.\./shared|/work/shared|\b[Ii]ssue [0-9]+\b')
if [ -n "$bad" ]; then
  echo "these lines point outside the repository; say what the reader needs instead:"
  echo "$bad"
  exit 1
fi
echo "docs stand alone ($(echo "$files" | wc -l) files checked)"
