// `npm run bench:jpip`: JPIP throughput and bytes through nginx → iipsrv (FastCGI), for a
// sequence of pan and zoom windows in one session (what a viewer does), with 1 and several
// concurrent sessions, and stateless for contrast. The image is a 4096×4096 RGB JPEG 2000 (RPCL,
// 128×128 precincts, 6 resolutions, 4 layers, PLT) made once with opj_compress in .bench-data/.
// Then tries Debian's opj_server (libopenjpip-server) on the same windows: it needs a `cidx`
// index that OpenJPEG 2.x no longer writes, so it is probed with a timeout and reported as it is.
// Options: BENCH_ROUNDS (default 5), BENCH_SESSIONS (default 8).

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, ROOT, requireTool, startIipsrv, startNginx, waitForPort, type Running } from '../scripts/servers.js';

const SIDE = 4096;
const VIEW = 512;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 8);
const DATA = path.join(ROOT, '.bench-data');
const IMAGE = 'bench-jpip.jp2';

function makeImage(): void {
  const file = path.join(DATA, IMAGE);
  if (fs.existsSync(file)) return;
  fs.mkdirSync(DATA, { recursive: true });
  const ppm = path.join(DATA, 'bench-jpip.ppm');
  const px = Buffer.alloc(SIDE * SIDE * 3);
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) {
      const i = (y * SIDE + x) * 3;
      px[i] = (x * 255) / SIDE;
      px[i + 1] = 128 + 100 * Math.sin(x / 41) * Math.cos(y / 29);
      px[i + 2] = ((x ^ y) & 0xff) / 2 + ((x >> 6) % 2) * 100;
    }
  }
  fs.writeFileSync(ppm, Buffer.concat([Buffer.from(`P6\n${SIDE} ${SIDE}\n255\n`), px]));
  // Recorded command:
  const args = ['-i', ppm, '-o', file, '-p', 'RPCL', '-n', '6', '-c', '[128,128]', '-r', '80,40,20,8', '-PLT', '-TP', 'R'];
  console.log(`making ${IMAGE}: opj_compress ${args.join(' ')}`);
  const r = spawnSync('opj_compress', args, { stdio: 'ignore' });
  fs.rmSync(ppm, { force: true });
  if (r.status !== 0) throw new Error('opj_compress failed');
}

/** A viewer session: overview, zoom in step by step with pans, then back out. */
function windows(): string[] {
  const out: string[] = [];
  const view = (frame: number, x: number, y: number): void => {
    const cx = Math.max(0, Math.min(frame - VIEW, Math.round(x)));
    const cy = Math.max(0, Math.min(frame - VIEW, Math.round(y)));
    out.push(`fsiz=${frame},${frame}&roff=${cx},${cy}&rsiz=${VIEW},${VIEW}`);
  };
  view(512, 0, 0);
  for (const frame of [1024, 2048, 4096]) {
    const c = frame / 2 - VIEW / 2;
    view(frame, c, c);
    for (let i = 1; i <= 4; i++) view(frame, c + i * 160, c); // pan right
    for (let i = 1; i <= 4; i++) view(frame, c + 640, c + i * 160); // pan down
  }
  for (const frame of [2048, 1024, 512]) view(frame, frame / 2 - VIEW / 2, frame / 2 - VIEW / 2);
  return out;
}

interface Outcome {
  requests: number;
  seconds: number;
  bytes: number;
  perWindow: number[];
}

function lastEor(body: Buffer): number {
  return body.length >= 3 && body[body.length - 3] === 0 ? body[body.length - 2] : -1;
}

async function session(base: string, stateless: boolean): Promise<Outcome> {
  const list = windows();
  const perWindow: number[] = [];
  let path0 = `jpip/${IMAGE}`;
  let cid = '';
  const t0 = process.hrtime.bigint();
  let requests = 0;
  for (const [i, w] of list.entries()) {
    const q = stateless ? w : i === 0 ? `cnew=http&type=jpp-stream&${w}` : `cid=${cid}&${w}`;
    const res = await fetch(`${base}/${path0}?${q}`);
    const body = Buffer.from(await res.arrayBuffer());
    requests++;
    if (res.status !== 200 || ![1, 2].includes(lastEor(body))) throw new Error(`${q}: ${res.status} EOR ${lastEor(body)}`);
    const cnew = res.headers.get('jpip-cnew');
    if (cnew) {
      cid = /cid=([^,]+)/.exec(cnew)![1];
      path0 = /path=([^,]+)/.exec(cnew)![1];
    }
    perWindow.push(body.length);
  }
  if (!stateless) await fetch(`${base}/${path0}?cid=${cid}&cclose=*`).then((r) => r.arrayBuffer());
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { requests, seconds, bytes: perWindow.reduce((a, b) => a + b, 0), perWindow };
}

async function parallel(base: string, n: number, stateless: boolean): Promise<{ rps: number; bytesPerSession: number; seconds: number }> {
  const t0 = process.hrtime.bigint();
  let requests = 0;
  let bytes = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const outs = await Promise.all(Array.from({ length: n }, () => session(base, stateless)));
    for (const o of outs) {
      requests += o.requests;
      bytes += o.bytes;
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { rps: requests / seconds, bytesPerSession: bytes / (ROUNDS * n), seconds };
}

/** opj_server under spawn-fcgi behind its own nginx, asked once with a deadline. */
async function probeOpjServer(): Promise<string> {
  const opj = '/usr/bin/opj_server';
  if (!fs.existsSync(opj)) return 'opj_server not installed (apt-get install libopenjpip-server to try it)';
  const dir = fs.mkdtempSync(path.join(DATA, 'opj-'));
  const file = path.join(dir, 'jpip.jp2');
  // OpenJPEG 2.x `-jpip` writes only empty 24-byte iptr/cidx/fidx stubs (RPCL only).
  const ppm = path.join(dir, 'source.ppm');
  spawnSync('opj_decompress', ['-i', path.join(DATA, IMAGE), '-r', '1', '-o', ppm], { stdio: 'ignore' });
  spawnSync('opj_compress', ['-i', ppm, '-o', file, '-p', 'RPCL', '-n', '6', '-c', '[128,128]', '-r', '80,40,20,8', '-jpip'], {
    stdio: 'ignore',
  });
  const results: string[] = [];
  for (const target of [path.basename(file), IMAGE]) {
    if (target === IMAGE) fs.copyFileSync(path.join(DATA, IMAGE), path.join(dir, IMAGE));
    const port = await freePort();
    const proc = spawn(requireTool('spawn-fcgi'), ['-n', '-a', '127.0.0.1', '-p', String(port), '--', opj], { cwd: dir, stdio: 'ignore' });
    let nginx: Running | undefined;
    try {
      await waitForPort(port);
      nginx = await startNginx([port], 'nginx-jpip.conf');
      const url = `http://127.0.0.1:${nginx.port}/fcgi-bin/iipsrv.fcgi?target=${target}&fsiz=512,512&cnew=http&type=jpp-stream`;
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), 8000);
      const t0 = Date.now();
      try {
        const res = await fetch(url, { signal: ac.signal });
        const body = Buffer.from(await res.arrayBuffer());
        results.push(
          `${target}: HTTP ${res.status}, ${body.length} bytes in ${Date.now() - t0} ms${res.status === 502 || res.status === 504 ? ' (opj_server died or hung)' : ''}`,
        );
      } catch {
        results.push(`${target}: no answer within 8 s (opj_server busy-loops on it)`);
      } finally {
        clearTimeout(timer);
      }
    } finally {
      await nginx?.stop();
      // opj_server ignores SIGTERM while it loops.
      proc.kill('SIGKILL');
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return results.join('\n  ');
}

async function main(): Promise<void> {
  requireTool('opj_compress');
  makeImage();
  const size = fs.statSync(path.join(DATA, IMAGE)).size;
  const backend = await startIipsrv({ FILESYSTEM_PREFIX: `${DATA}/`, JPIP_CACHE: path.join(DATA, 'jpip-index'), VERBOSITY: '0' });
  const nginx = await startNginx([backend.port], 'nginx-jpip.conf');
  const base = `http://127.0.0.1:${nginx.port}`;
  try {
    // Warm-up: builds (or loads) the packet index.
    const t0 = Date.now();
    await fetch(`${base}/jpip/${IMAGE}?fsiz=64,64`).then((r) => r.arrayBuffer());
    console.log(`image ${SIDE}×${SIDE} RGB, ${(size / 1e6).toFixed(2)} MB; first request (index) ${Date.now() - t0} ms`);
    const list = windows();
    const one = await session(base, false);
    const fresh = await session(base, true);
    console.log(`\n${list.length} windows of ${VIEW}×${VIEW} (overview, zoom ×2 three times with 8 pans each, zoom out):`);
    console.log('window                                      session bytes   stateless bytes');
    list.forEach((w, i) =>
      console.log(`${w.padEnd(44)}${String(one.perWindow[i]).padStart(13)}${String(fresh.perWindow[i]).padStart(18)}`),
    );
    console.log(
      `total: session ${one.bytes} bytes (${((100 * one.bytes) / size).toFixed(1)}% of the file), stateless ${fresh.bytes} bytes`,
    );
    for (const n of [1, SESSIONS]) {
      const s = await parallel(base, n, false);
      console.log(`${n} concurrent session(s): ${s.rps.toFixed(0)} req/s, ${(s.bytesPerSession / 1e3).toFixed(0)} kB per session`);
    }
    const st = await parallel(base, SESSIONS, true);
    console.log(
      `${SESSIONS} concurrent stateless clients: ${st.rps.toFixed(0)} req/s, ${(st.bytesPerSession / 1e3).toFixed(0)} kB per sequence`,
    );
  } finally {
    await nginx.stop();
    await backend.stop();
  }
  console.log(`\nDebian opj_server on the same image:\n  ${await probeOpjServer()}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
