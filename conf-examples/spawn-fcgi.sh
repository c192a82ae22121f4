#!/bin/sh
# Start iipsrv under spawn-fcgi: spawn-fcgi opens the listening socket and hands it to
# iipsrv as file descriptor 0 (iipsrv is started without --bind). Use --workers in iipsrv,
# or -F in spawn-fcgi, for several processes.
export FILESYSTEM_PREFIX=/var/www/images/
export LOGFILE=/var/log/iipsrv.log
export VERBOSITY=1
exec spawn-fcgi -n -a 127.0.0.1 -p 9000 -- /usr/bin/env iipsrv
