// Starts and stops the real servers that integration tests and the benchmark talk to: our iipsrv (FastCGI on
// TCP or under spawn-fcgi), nginx, Apache and lighttpd built from the files in conf-examples/
// (only ports and paths substituted), Memcached, and a fake hung server. Every server
// listens on 127.0.0.1 and a free port, and is stopped by the test that started it. A
// missing tool is an error, not a skip: CI installs them all.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root, from scripts/ or dist/scripts/. */
export const ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'conf-examples'))) dir = path.dirname(dir);
  return dir;
})();
export const CLI = path.join(ROOT, 'dist/src/cli.js');

export function requireTool(name: string, candidates: string[] = [name]): string {
  for (const c of candidates) {
    if (c.includes('/') ? fs.existsSync(c) : spawnSync('sh', ['-c', `command -v ${c}`]).status === 0) return c;
  }
  throw new Error(`${name} is not installed (apt-get install it; .ci/run does)`);
}

/**
 * The environment for a child server: ours without the variables vitest/vite inject
 * (BASE_URL=/ among them, which is also an iipsrv setting), plus the given settings.
 */
export function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(BASE_URL|MODE|DEV|PROD|SSR|VITEST.*|TEST|NODE_ENV)$/.test(k)) continue;
    clean[k] = v;
  }
  return { ...clean, VERBOSITY: '0', ...env };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** Polls `cond` every 50 ms until it holds or `ms` pass; the last answer is returned. */
export async function until(cond: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

export interface Running {
  readonly port: number;
  readonly proc: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

function track(proc: ChildProcess, port: number): Running {
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return {
    port,
    proc,
    output: () => out,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        proc.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        proc.kill('SIGTERM');
      }),
  };
}

/** Spawns a server that will listen on `port` and resolves once it accepts connections. */
export async function spawnListening(command: string, args: string[], env: Record<string, string>, port: number): Promise<Running> {
  const proc = spawn(command, args, { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const running = track(proc, port);
  await waitForPort(port).catch((err: Error) => {
    throw new Error(`${err.message}\n${running.output()}`);
  });
  return running;
}

export async function startIipsrv(env: Record<string, string>, extraArgs: string[] = []): Promise<Running> {
  const port = await freePort();
  return spawnListening(process.execPath, [CLI, '--bind', `127.0.0.1:${port}`, ...extraArgs], env, port);
}

/** Our iipsrv on its own HTTP front end (`--http`) on a free port; `base` is its URL. */
export async function startIipsrvHttp(env: Record<string, string>): Promise<Running & { base: string }> {
  const port = await freePort();
  const running = await spawnListening(process.execPath, [CLI, '--http', `127.0.0.1:${port}`], env, port);
  return { ...running, base: `http://127.0.0.1:${port}` };
}

/**
 * A FastCGI program started the way spawn-fcgi starts it: the listening socket is its fd 0.
 * By default our iipsrv; the benchmark passes Debian's iipsrv.fcgi.
 */
export async function startUnderSpawnFcgi(env: Record<string, string>, command: string[] = [process.execPath, CLI]): Promise<Running> {
  const spawnFcgi = requireTool('spawn-fcgi');
  const port = await freePort();
  return spawnListening(spawnFcgi, ['-n', '-a', '127.0.0.1', '-p', String(port), '--', ...command], env, port);
}

/**
 * nginx running conf-examples/nginx.conf with its ports replaced, wrapped in the main-context
 * directives a private instance needs (pid, logs and temp paths in a temporary folder).
 */
export async function startNginx(
  backendPorts: number[],
  exampleFile = 'nginx.conf',
  options: { keepAlive?: boolean } = {},
): Promise<Running & { dir: string }> {
  const nginx = requireTool('nginx', ['nginx', '/usr/sbin/nginx']);
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iipsrv-nginx-'));
  let site = fs.readFileSync(path.join(ROOT, 'conf-examples', exampleFile), 'utf8');
  site = site.replace(/listen 127\.0\.0\.1:8080;/, `listen 127.0.0.1:${port};`);
  let i = 0;
  site = site.replace(/server 127\.0\.0\.1:900\d;/g, () => `server 127.0.0.1:${backendPorts[Math.min(i++, backendPorts.length - 1)]};`);
  site = site.replace(/include fastcgi_params;/g, 'include /etc/nginx/fastcgi_params;');
  if (options.keepAlive === false) {
    // For backends without FCGI_KEEP_CONN support (iipsrv's libfcgi closes after each request).
    site = site.replace(/fastcgi_keep_conn on;/g, 'fastcgi_keep_conn off;').replace(/\s*keepalive \d+;/g, '');
  }
  // As root, workers would drop to an unprivileged user that cannot write the private temp dir.
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  const conf = `${user}daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  fastcgi_temp_path ${dir}/fastcgi;
  proxy_temp_path ${dir}/proxy;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${site}
}
`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const proc = spawn(nginx, ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  const running = track(proc, port);
  await waitForPort(port).catch((err: Error) => {
    throw new Error(`${err.message}\n${running.output()}\n${fs.readFileSync(path.join(dir, 'error.log'), 'utf8')}`);
  });
  return {
    ...running,
    dir,
    stop: async () => {
      await running.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A temporary folder that servers dropping privileges (Apache's www-data) can read. */
export function readableTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755);
  return dir;
}

/**
 * An executable `iipsrv` that runs our CLI, for web servers that start the program themselves
 * (Apache mod_fcgid, lighttpd bin-path, systemd's ExecStart, spawn-fcgi.sh).
 */
export function writeIipsrvWrapper(dir: string, name = 'iipsrv'): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`, { mode: 0o755 });
  return file;
}

/** Memcached on 127.0.0.1 (TCP only); the given port, or a free one. */
export async function startMemcached(port?: number): Promise<Running> {
  const memcached = requireTool('memcached', ['memcached', '/usr/bin/memcached']);
  const p = port ?? (await freePort());
  // memcached refuses to run as root unless told which user to be.
  const user = process.getuid?.() === 0 ? ['-u', 'root'] : [];
  return spawnListening(memcached, ['-l', '127.0.0.1', '-p', String(p), '-U', '0', '-m', '64', ...user], {}, p);
}

/** A TCP server that accepts connections and never answers: a hung Memcached. */
export async function startHungServer(): Promise<{ port: number; accepted(): number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export type Replacements = ReadonlyArray<readonly [string | RegExp, string]>;

/** An example file's text with ports and paths replaced; a pattern that is absent is an error. */
export function exampleWith(exampleFile: string, replacements: Replacements): string {
  let text = fs.readFileSync(path.join(ROOT, 'conf-examples', exampleFile), 'utf8');
  for (const [from, to] of replacements) {
    const found = typeof from === 'string' ? text.includes(from) : from.test(text);
    if (!found) throw new Error(`conf-examples/${exampleFile} no longer contains ${String(from)}`);
    text =
      typeof from === 'string'
        ? text.split(from).join(to)
        : text.replace(new RegExp(from.source, from.flags.includes('g') ? from.flags : `${from.flags}g`), to);
  }
  return text;
}

function withLogs(running: Running, dir: string, cleanup: () => void): Running & { dir: string } {
  return {
    ...running,
    dir,
    output: () => {
      let logs = running.output();
      for (const f of ['error.log']) {
        const file = path.join(dir, f);
        if (fs.existsSync(file)) logs += `\n--- ${f}\n${fs.readFileSync(file, 'utf8')}`;
      }
      return logs;
    },
    stop: async () => {
      await running.stop();
      cleanup();
    },
  };
}

const APACHE_MODULES = '/usr/lib/apache2/modules';

/**
 * Apache 2.4 in the foreground with a private ServerRoot: the core modules a site needs, the
 * given extra modules, and the example (after replacements) included as the site.
 */
export async function startApache(
  exampleFile: string,
  replacements: Replacements,
  options: { modules: string[]; globalConfig?: (dir: string) => string },
): Promise<Running & { dir: string; config: string }> {
  const apache = requireTool('apache2', ['apache2', '/usr/sbin/apache2']);
  const port = await freePort();
  const dir = readableTempDir('iipsrv-apache-');
  fs.mkdirSync(path.join(dir, 'htdocs'));
  fs.mkdirSync(path.join(dir, 'run'));
  const site = exampleWith(exampleFile, replacements);
  fs.writeFileSync(path.join(dir, 'site.conf'), site);
  const load = (m: string): string => `LoadModule ${m}_module ${APACHE_MODULES}/mod_${m}.so`;
  // As root, Apache's children must become an ordinary user; Debian's is www-data.
  const user = process.getuid?.() === 0 ? 'User www-data\nGroup www-data\n' : '';
  const conf = `ServerRoot "${dir}"
ServerName 127.0.0.1
Listen 127.0.0.1:${port}
PidFile ${dir}/run/httpd.pid
DefaultRuntimeDir ${dir}/run
ErrorLog ${dir}/error.log
LogLevel warn
${user}${['mpm_event', 'authz_core', 'mime', 'alias', ...options.modules].map(load).join('\n')}
TypesConfig /etc/mime.types
DocumentRoot ${dir}/htdocs
${options.globalConfig?.(dir) ?? ''}
Include ${dir}/site.conf
`;
  fs.writeFileSync(path.join(dir, 'httpd.conf'), conf);
  const check = spawnSync(apache, ['-t', '-f', path.join(dir, 'httpd.conf')], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`apache2 -t: ${check.stderr}${check.stdout}\n${conf}\n${site}`);
  const running = await spawnListening(apache, ['-DFOREGROUND', '-f', path.join(dir, 'httpd.conf')], {}, port).catch((err: Error) => {
    const log = path.join(dir, 'error.log');
    throw new Error(`${err.message}\n${fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''}`);
  });
  return { ...withLogs(running, dir, () => fs.rmSync(dir, { recursive: true, force: true })), config: site };
}

/** lighttpd in the foreground running the example (after replacements) with its own log. */
export async function startLighttpd(
  exampleFile: string,
  replacements: (port: number, dir: string) => Replacements,
): Promise<Running & { dir: string; config: string }> {
  const lighttpd = requireTool('lighttpd', ['lighttpd', '/usr/sbin/lighttpd']);
  const port = await freePort();
  const dir = readableTempDir('iipsrv-lighttpd-');
  fs.mkdirSync(path.join(dir, 'htdocs'));
  const site = exampleWith(exampleFile, replacements(port, dir));
  const conf = `server.document-root = "${dir}/htdocs"
server.errorlog = "${dir}/error.log"
${site}
`;
  fs.writeFileSync(path.join(dir, 'lighttpd.conf'), conf);
  const check = spawnSync(lighttpd, ['-tt', '-f', path.join(dir, 'lighttpd.conf')], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`lighttpd -tt: ${check.stderr}${check.stdout}\n${conf}`);
  const running = await spawnListening(lighttpd, ['-D', '-f', path.join(dir, 'lighttpd.conf')], {}, port).catch((err: Error) => {
    const log = path.join(dir, 'error.log');
    throw new Error(`${err.message}\n${fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''}`);
  });
  return { ...withLogs(running, dir, () => fs.rmSync(dir, { recursive: true, force: true })), config: site };
}
