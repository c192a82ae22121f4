// Child process for the listenFd test: serves FastCGI on the listening socket inherited as fd 0,
// the way spawn-fcgi and `cgi-fcgi -start` start an application.

import { createFastCgiServer, isListeningSocketOnFd0 } from '../../../src/frontends/fastcgi/server.js';

if (!isListeningSocketOnFd0()) {
  process.stderr.write('fd 0 is not a socket\n');
  process.exit(3);
}
const server = createFastCgiServer(async (req) => {
  const body = Buffer.from(`child says ${req.query}`);
  return { status: 200, headers: [['Content-Length', String(body.length)]], body };
});
await server.listenFd(0);
process.stdout.write('ready\n');
