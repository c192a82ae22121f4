#!/bin/sh
# Start iipsrv under spawn-fcgi: spawn-fcgi opens the listening socket and hands it to iipsrv
# as file descriptor 0 (iipsrv is started without --bind). WORKERS > 1 makes iipsrv fork that
# many processes sharing the socket ("auto" = one per core); spawn-fcgi's -F does the same
# with unsupervised processes. Every setting below can be overridden from the environment.
export FILESYSTEM_PREFIX="${FILESYSTEM_PREFIX:-/var/www/images/}"
export LOGFILE="${LOGFILE:-/var/log/iipsrv.log}"
export VERBOSITY="${VERBOSITY:-1}"
# export MEMCACHED_SERVERS="${MEMCACHED_SERVERS:-127.0.0.1:11211}"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-9000}"
WORKERS="${WORKERS:-1}"
IIPSRV="${IIPSRV:-iipsrv}"
exec spawn-fcgi -n -a "$HOST" -p "$PORT" -- /usr/bin/env "$IIPSRV" --workers "$WORKERS"
