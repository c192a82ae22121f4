// The FastCGI listener: binds TCP, UNIX or inherited sockets, creates one FastCgiConnection per
// accepted socket and shuts down gracefully. Record handling lives in connection.ts/records.ts.

import fs from 'node:fs';
import net from 'node:net';
import type { RequestHandler } from '../../handler-types.js';
import { LOG } from '../../log.js';
import { FastCgiConnection, type Logger } from './connection.js';

export interface FastCgiServerOptions {
  logger?: Logger;
  /** Advertised as FCGI_MAX_CONNS. */
  maxConns?: number;
  /** Concurrent requests per connection (FCGI_MAX_REQS); more are refused as overloaded. */
  maxReqs?: number;
  /** Request bodies above this are answered 413. */
  maxBodyBytes?: number;
  /** How long close() waits for in-flight requests before cutting connections. */
  closeTimeoutMs?: number;
}

export interface FastCgiServer {
  readonly server: net.Server;
  listenTcp(host: string, port: number, backlog: number): Promise<net.AddressInfo>;
  /**
   * Listens on a UNIX socket, first removing a stale socket file left by a crash unless
   * `removeStale` is false (`--workers` processes share the master's live socket).
   */
  listenPath(path: string, backlog: number, removeStale?: boolean): Promise<void>;
  listenFd(fd: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Whether fd 0 is a socket (spawn-fcgi, `cgi-fcgi -start` pass a listening one). Node cannot tell
 * a listening socket from a connected one, so the caller should try listenFd(0) and report its
 * error clearly when it fails.
 */
export function isListeningSocketOnFd0(): boolean {
  try {
    return fs.fstatSync(0).isSocket();
  } catch {
    return false;
  }
}

export function createFastCgiServer(handler: RequestHandler, options: FastCgiServerOptions = {}): FastCgiServer {
  const connOptions = {
    logger: options.logger,
    maxConns: options.maxConns ?? 1024,
    maxReqs: options.maxReqs ?? 1024,
    maxBodyBytes: options.maxBodyBytes ?? 16 * 1024 * 1024,
    maxParamsBytes: 1024 * 1024,
  };
  const connections = new Set<FastCgiConnection>();
  // Half-open so a peer that shuts down its write side after the request still gets the answer.
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    const conn = new FastCgiConnection(socket, handler, connOptions);
    connections.add(conn);
    socket.on('close', () => connections.delete(conn));
  });
  server.on('error', (err) => {
    try {
      options.logger?.(LOG.ERROR, `fastcgi server error: ${err.message}`);
    } catch {
      // ignore logger failures
    }
  });

  const listen = (args: net.ListenOptions | { fd: number }): Promise<void> =>
    new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen(args, () => {
        server.off('error', onError);
        resolve();
      });
    });

  return {
    server,
    async listenTcp(host, port, backlog) {
      await listen({ host, port, backlog });
      return server.address() as net.AddressInfo;
    },
    async listenPath(path, backlog, removeStale = true) {
      if (removeStale) await removeStaleSocket(path);
      await listen({ path, backlog });
    },
    listenFd(fd) {
      return listen({ fd });
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const conn of connections) conn.shutdown();
      const timer = setTimeout(() => {
        for (const conn of connections) conn.destroy();
      }, options.closeTimeoutMs ?? 10_000);
      await closed;
      clearTimeout(timer);
    },
  };
}

/** Unlinks a leftover UNIX socket, but never a live one or a file that is not a socket. */
export async function removeStaleSocket(path: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(path);
  } catch {
    return;
  }
  if (!stat.isSocket()) return; // let listen fail with EADDRINUSE rather than delete a file
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live)
    throw Object.assign(new Error(`${path}: a server is already listening`), {
      code: 'EADDRINUSE',
    });
  fs.unlinkSync(path);
}
