#!/usr/bin/env bash
# build-revision.sh REV DIR: builds REV's release xenstored from a clean export of its tree in DIR (kept while DIR holds the same revision); prints the binary's path.
set -euo pipefail
rev=$(git rev-parse "$1")
dir=$2
if [ "$(cat "$dir/.revision" 2>/dev/null)" != "$rev" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    git archive "$rev" | tar -x -C "$dir"
fi
(cd "$dir" && swift build -c release --product xenstored >/dev/null)
echo "$rev" > "$dir/.revision"
echo "$(cd "$dir" && swift build -c release --show-bin-path)/xenstored"
