#!/bin/sh
# Test program for exec handlers: what it does depends on the job type.
# OUT_DIR (from the test) receives files the test checks.
case "$RETRACED_JOB_TYPE" in
  ok)        cat >/dev/null; exit 0 ;;
  tempfail)  echo "smtp server busy" >&2; exit 75 ;;
  dataerr)   echo "bad record" >&2; exit 65 ;;
  exit1)     exit 1 ;;
  json)      echo "working..."
             echo '{"class":"permanent","code":"INVALID_EMAIL","message":"no such mailbox"}'
             exit 1 ;;
  segv)      kill -SEGV $$ ;;
  noisy)     i=0; while [ $i -lt 200 ]; do echo "line $i of a long traceback, padded to be long enough" >&2; i=$((i+1)); done
             echo "THE LAST LINE" >&2; exit 75 ;;
  copy)      cat > "$OUT_DIR/$RETRACED_JOB_ID.payload"; exit 0 ;;
  env)       env | grep '^RETRACED_' | sort > "$OUT_DIR/$RETRACED_JOB_ID.env"
             for a in "$@"; do printf '%s\n' "$a"; done > "$OUT_DIR/$RETRACED_JOB_ID.args"; exit 0 ;;
  hang)      sleep 30; exit 0 ;;  # never reads its stdin either
  daemon)    sleep 30 & exit 0 ;;  # leaves a process holding stdout and stderr
  ignore)    exit 0 ;;  # never reads its stdin
  *)         echo "unknown type $RETRACED_JOB_TYPE" >&2; exit 64 ;;
esac
