// `iipsrv status`: reads the counters of a running server, over FastCGI straight from its
// `--bind` address (a tiny FastCGI client on the shared record codec) or over HTTP through a
// web server, and prints them per worker with totals, in the spirit of esa_jpip_server's
// `status` (memory, connections, restarts). With `--workers`, any worker answers for all of
// them: it asks the master, which collects every worker's counters over IPC.

import net from 'node:net';
import { encodeNameValuePairs, encodeRecords, encodeStream, RecordParser, RecordType, Role } from './frontends/fastcgi/records.js';
import { parsePrometheus, sumOf, type ParsedSample } from './metrics.js';

export interface FastCgiTarget {
  readonly host?: string;
  readonly port?: number;
  readonly path?: string;
}

export interface FastCgiAnswer {
  readonly status: number;
  readonly headers: Array<[string, string]>;
  readonly body: Buffer;
}

/** `host:port`, `[v6]:port` or `:port`/`port` (then `defaultHost`); undefined for anything else. */
export function parseHostPort(spec: string, defaultHost: string | undefined): { host: string | undefined; port: number } | undefined {
  const m = /^(?:\[?([^\]]*?)\]?:)?(\d+)$/.exec(spec);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port > 65535) return undefined;
  return { host: m[1] || defaultHost, port };
}

/** `host:port`, `:port` or a UNIX socket path, as `--bind` takes them. */
export function parseTarget(spec: string): FastCgiTarget {
  const hp = parseHostPort(spec, '127.0.0.1');
  return hp ? { host: hp.host!, port: hp.port } : { path: spec };
}

/** One FastCGI request (GET, given params), answered as status, headers and body. */
export function fastcgiRequest(target: FastCgiTarget, params: Record<string, string>, timeoutMs = 5000): Promise<FastCgiAnswer> {
  return new Promise((resolve, reject) => {
    const socket = target.path ? net.connect(target.path) : net.connect(target.port!, target.host ?? '127.0.0.1');
    const parser = new RecordParser();
    const stdout: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no FastCGI answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.on('error', fail);
    socket.on('connect', () => {
      const begin = Buffer.alloc(8);
      begin.writeUInt16BE(Role.RESPONDER, 0);
      // flags 0 (no FCGI_KEEP_CONN): one request, then the server closes the connection
      const all: Record<string, string> = { REQUEST_METHOD: 'GET', SERVER_PROTOCOL: 'HTTP/1.1', GATEWAY_INTERFACE: 'CGI/1.1', ...params };
      socket.write(
        Buffer.concat([
          encodeRecords([{ type: RecordType.BEGIN_REQUEST, requestId: 1, content: begin }]),
          encodeStream(RecordType.PARAMS, 1, encodeNameValuePairs(Object.entries(all))),
          encodeStream(RecordType.STDIN, 1, Buffer.alloc(0)),
        ]),
      );
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const r of parser.push(chunk)) {
          if (r.type === RecordType.STDOUT) stdout.push(Buffer.from(r.content));
          else if (r.type === RecordType.END_REQUEST) {
            clearTimeout(timer);
            socket.end();
            resolve(parseCgiOutput(Buffer.concat(stdout)));
            return;
          }
        }
      } catch (err) {
        fail(err as Error);
      }
    });
    socket.on('close', () => fail(new Error('connection closed before the end of the response')));
  });
}

/** `Status: 200 OK\r\nName: value\r\n\r\nbody` → parts. */
export function parseCgiOutput(raw: Buffer): FastCgiAnswer {
  const end = raw.indexOf('\r\n\r\n');
  const head = raw.toString('latin1', 0, end < 0 ? raw.length : end);
  const headers: Array<[string, string]> = [];
  let status = 200;
  for (const line of head.split('\r\n')) {
    const c = line.indexOf(':');
    if (c < 0) continue;
    const name = line.slice(0, c).trim();
    const value = line.slice(c + 1).trim();
    if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
    else headers.push([name, value]);
  }
  return { status, headers, body: end < 0 ? Buffer.alloc(0) : raw.subarray(end + 4) };
}

/** The `?METRICS` request to a server's FastCGI socket, answered as it comes. */
export function metricsRequest(target: FastCgiTarget, timeoutMs = 5000): Promise<FastCgiAnswer> {
  return fastcgiRequest(
    target,
    { QUERY_STRING: 'METRICS', REQUEST_URI: '/fcgi-bin/iipsrv.fcgi?METRICS', SCRIPT_NAME: '/fcgi-bin/iipsrv.fcgi' },
    timeoutMs,
  );
}

/** The Prometheus text of a running server, from `--bind` (FastCGI) or `--url` (HTTP). */
export async function fetchMetrics(opts: { bind?: string; url?: string }): Promise<string> {
  if (opts.url) {
    const u = new URL(opts.url);
    if (u.search === '' && !u.pathname.endsWith('/metrics')) u.search = '?METRICS';
    const res = await fetch(u, { signal: AbortSignal.timeout(5000) });
    if (res.status !== 200) throw new Error(`${u.href} answered ${res.status}`);
    return res.text();
  }
  const res = await metricsRequest(parseTarget(opts.bind ?? '127.0.0.1:9000'));
  if (res.status !== 200) throw new Error(`the server answered ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`);
  return res.body.toString('utf8');
}

function duration(s: number): string {
  if (s < 60) return `${s.toFixed(0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  const h = Math.floor(s / 3600);
  return h < 48 ? `${h} h ${Math.floor((s % 3600) / 60)} min` : `${Math.floor(h / 24)} days`;
}

function mb(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MB`;
}

/** A human summary: one row per worker, a total row, then Memcached and master facts. */
export function formatStatus(text: string): string {
  const s: ParsedSample[] = parsePrometheus(text);
  const workers = [
    ...new Set(s.filter((x) => x.labels.worker !== undefined && x.name !== 'iipsrv_worker_restarts_total').map((x) => x.labels.worker)),
  ].sort((a, b) => Number(a) - Number(b));
  const cols = [
    'worker',
    'pid',
    'uptime',
    'requests',
    'ram hits',
    'memcached hits',
    'misses',
    'renders',
    'passthrough',
    'errors',
    'conns',
    'memory',
  ];
  const row = (match: Record<string, string>, label: string): string[] => [
    label,
    match.worker !== undefined ? String(sumOf(s, 'iipsrv_process_id', match)) : '',
    match.worker !== undefined ? duration(sumOf(s, 'iipsrv_uptime_seconds', match)) : '',
    String(sumOf(s, 'iipsrv_requests_total', match)),
    String(sumOf(s, 'iipsrv_cache_hits_total', { ...match, tier: 'ram' })),
    String(sumOf(s, 'iipsrv_cache_hits_total', { ...match, tier: 'memcached' })),
    String(sumOf(s, 'iipsrv_cache_misses_total', match)),
    String(sumOf(s, 'iipsrv_renders_total', match)),
    String(sumOf(s, 'iipsrv_passthrough_total', match)),
    String(sumOf(s, 'iipsrv_errors_total', match)),
    String(sumOf(s, 'iipsrv_open_connections', match)),
    mb(sumOf(s, 'iipsrv_resident_memory_bytes', match)),
  ];
  const rows = [cols, ...workers.map((w) => row({ worker: w }, w))];
  if (workers.length > 1) rows.push(row({}, 'total'));
  const widths = cols.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  let out = '';
  const configured = s.find((x) => x.name === 'iipsrv_workers' && x.labels.state === 'configured');
  if (configured) {
    const running = sumOf(s, 'iipsrv_workers', { state: 'running' });
    const restarts = sumOf(s, 'iipsrv_worker_restarts_total');
    out += `master pid ${sumOf(s, 'iipsrv_master_process_id')}, up ${duration(sumOf(s, 'iipsrv_master_uptime_seconds'))}: ${running} of ${configured.value} workers running, ${restarts} restarts\n`;
  } else {
    out += 'single process (no --workers)\n';
  }
  for (const r of rows) out += `${r.map((c, i) => c.padEnd(widths[i])).join('  ')}\n`;
  const ok = sumOf(s, 'iipsrv_responses_total', { class: '2xx' }) + sumOf(s, 'iipsrv_responses_total', { class: '3xx' });
  const c4 = sumOf(s, 'iipsrv_responses_total', { class: '4xx' });
  const c5 = sumOf(s, 'iipsrv_responses_total', { class: '5xx' });
  out += `responses: ${ok} 2xx/3xx, ${c4} 4xx, ${c5} 5xx\n`;
  if (s.some((x) => x.name.startsWith('iipsrv_memcached_'))) {
    const open = sumOf(s, 'iipsrv_memcached_circuit_open');
    out +=
      `memcached: ${open > 0 ? `not asked now in ${open} worker(s) after failures` : 'in use'}; ` +
      `${sumOf(s, 'iipsrv_memcached_operations_total', { op: 'set', result: 'ok' })} stored, ` +
      `${sumOf(s, 'iipsrv_memcached_errors_total')} errors (${sumOf(s, 'iipsrv_memcached_timeouts_total')} timeouts), ` +
      `${sumOf(s, 'iipsrv_memcached_skipped_total', { reason: 'too_large' })} too large to store\n`;
  } else {
    out += 'memcached: off\n';
  }
  return out;
}
