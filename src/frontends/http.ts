// Standalone HTTP front end (node:http). It turns HTTP requests into ServerRequests for the
// handler, and offers a hook for a few static routes (the demo viewer). It knows nothing
// about images.

import { LOG } from '../log.js';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { STATUS_TEXT, type RequestHandler, type ServerRequest } from '../handler-types.js';

export interface StaticAnswer {
  readonly contentType: string;
  readonly body: Buffer;
  readonly cacheControl?: string;
}

export interface HttpOptions {
  /** Answers paths that are not image requests (viewer page, its scripts); undefined passes on. */
  readonly staticRoute?: (pathname: string) => Promise<StaticAnswer | undefined>;
  readonly logger?: (level: number, message: string) => void;
  /** Largest request body accepted (POST carries IIP commands only). */
  readonly maxBodyBytes?: number;
}

export interface HttpFrontEnd {
  readonly server: http.Server;
  listen(host: string | undefined, port: number): Promise<AddressInfo>;
  close(): Promise<void>;
}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    req.on('data', (c: Buffer) => {
      total += c.length;
      if (total > limit) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function createHttpFrontEnd(handler: RequestHandler, options: HttpOptions = {}): HttpFrontEnd {
  const limit = options.maxBodyBytes ?? 1 << 20;
  const server = http.createServer(async (req, res) => {
    try {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const pathname = q < 0 ? url : url.slice(0, q);
      const method = (req.method ?? 'GET').toUpperCase();
      if ((method === 'GET' || method === 'HEAD') && q < 0 && options.staticRoute) {
        const answer = await options.staticRoute(pathname);
        if (answer) {
          res.writeHead(200, {
            'Content-Type': answer.contentType,
            'Content-Length': answer.body.length,
            'Cache-Control': answer.cacheControl ?? 'no-cache',
          });
          res.end(method === 'HEAD' ? undefined : answer.body);
          return;
        }
      }
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
      }
      const request: ServerRequest = {
        method,
        query: q < 0 ? '' : url.slice(q + 1),
        requestUri: url,
        headers,
        https: false,
        body: method === 'POST' ? await readBody(req, limit) : Buffer.alloc(0),
        remoteAddress: req.socket.remoteAddress,
      };
      const response = await handler(request);
      res.statusCode = response.status;
      res.statusMessage = STATUS_TEXT[response.status] ?? 'Unknown';
      // Repeated names (two Link headers) must all be sent; setHeader alone keeps the last.
      const grouped = new Map<string, string[]>();
      for (const [k, v] of response.headers) {
        const list = grouped.get(k);
        if (list) list.push(v);
        else grouped.set(k, [v]);
      }
      for (const [k, v] of grouped) res.setHeader(k, v.length === 1 ? v[0] : v);
      res.end(response.body.length > 0 ? response.body : undefined);
    } catch (err) {
      options.logger?.(LOG.ERROR, `http front end: ${(err as Error).message}`);
      if (!res.headersSent) {
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': 21 });
        res.end('Internal server error');
      } else {
        res.destroy();
      }
    }
  });
  server.keepAliveTimeout = 30_000;
  return {
    server,
    listen(host, port) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host, port }, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
  };
}
