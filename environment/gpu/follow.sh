#!/usr/bin/env bash
# Follow a run started in the background (setsid) on a GPU machine whose calls have a time limit.
#
#   bash environment/gpu/follow.sh DONE_FILE SECONDS LOG
#
# Prints LOG's new lines as they come, until DONE_FILE exists or SECONDS have passed; then the last lines of LOG.
# Exit status 0 when DONE_FILE exists, 3 when the time ran out first (call it again to keep following).
set -uo pipefail
done_file=$1; seconds=$2; log=$3
end=$(( $(date +%s) + seconds ))
shown=0
while [ ! -e "$done_file" ] && [ "$(date +%s)" -lt "$end" ]; do
  if [ -f "$log" ]; then
    lines=$(wc -l < "$log")
    if [ "$lines" -gt "$shown" ]; then
      sed -n "$((shown + 1)),${lines}p" "$log" | grep -E "run_series_gpu|Error|error" | cut -c1-300
      shown=$lines
    fi
  fi
  sleep 5
done
echo "---- last lines of $log"
tail -n 15 "$log" 2>/dev/null | cut -c1-300
[ -e "$done_file" ] && exit 0
echo "follow: $done_file not there yet after $seconds s"
exit 3
