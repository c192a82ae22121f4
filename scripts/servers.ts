// Starts and stops the real servers that integration tests and the benchmark talk to: our iipsrv (FastCGI on
// TCP or under spawn-fcgi) and nginx built from conf-examples/nginx.conf. Every server
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
async function spawnListening(command: string, args: string[], env: Record<string, string>, port: number): Promise<Running> {
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
