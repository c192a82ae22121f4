// JPIP end to end: nginx (conf-examples/nginx-jpip.conf, keep-alive) in front of the built
// iipsrv on FastCGI, serving JPP- and JPT-streams and IIIF from the same files. The battery
// (full, reduced, regions, layers, continuation in a session, stateless with POSTed model) is
// checked byte for byte by shared/tools/jpip/jpp2j2k.py --ref and pixel for pixel against
// opj_decompress of the original. A restart reuses the persisted packet index.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIipsrv, startNginx, type Running } from '../../scripts/servers.js';
import { checkBodies, Client, frameAt, geometry, parseStream, type Transport } from '../fixtures/jpip-battery.js';
import { makeJpipFixtures, sharedFixtureDir, type FixtureName } from '../fixtures/make-jpip.js';

let files: Record<FixtureName, string>;
let work: string;
let backend: Running;
let nginx: Awaited<ReturnType<typeof startNginx>>;
let send: Transport;
let n = 0;
const workDir = (): string => path.join(work, String(n++));

const env = (): Record<string, string> => ({
  FILESYSTEM_PREFIX: `${sharedFixtureDir()}/`,
  JPIP_CACHE: path.join(work, 'index'),
  CORS: '*',
  URI_MAP: 'iiif=>IIIF',
});

beforeAll(async () => {
  files = await makeJpipFixtures();
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'iipsrv-jpip-it-'));
  backend = await startIipsrv(env());
  nginx = await startNginx([backend.port], 'nginx-jpip.conf');
  send = async (uri, init = {}) => {
    const res = await fetch(`http://127.0.0.1:${nginx.port}${uri}`, {
      method: init.method ?? 'GET',
      ...(init.body !== undefined ? { body: init.body, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } } : {}),
    });
    const headers: Record<string, string> = {};
    res.headers.forEach((v, k) => (headers[k] = v));
    return { status: res.status, headers, body: Buffer.from(await res.arrayBuffer()) };
  };
}, 180_000);

afterAll(async () => {
  await nginx?.stop();
  await backend?.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

describe('JPIP through nginx and FastCGI', () => {
  it('serves the battery on the RPCL + PLT profile through /jpip/<target>', async () => {
    const f = files.rpclPlt;
    const g = await geometry(f);
    const base = '/jpip/rpcl_plt.jp2?';
    const full = new Client(send, base);
    const r = await full.get(`fsiz=${g.width},${g.height}`);
    expect(r.headers['access-control-expose-headers']).toMatch(/JPIP-cnew/);
    expect(r.headers['cache-control']).toBe('no-cache');
    await checkBodies(full.bodies, f, workDir());
    for (let d = 0; d <= g.levels; d++) {
      const fr = frameAt(g, d);
      const region = { x: Math.floor(fr.w / 4), y: Math.floor(fr.h / 3), w: Math.ceil(fr.w / 3), h: Math.ceil(fr.h / 4) };
      const c = new Client(send, base);
      await c.get(`fsiz=${fr.w},${fr.h}&roff=${region.x},${region.y}&rsiz=${region.w},${region.h}`);
      await checkBodies(c.bodies, f, workDir(), { reduce: d, region });
    }
    const layers = new Client(send, base);
    await layers.get(`fsiz=${g.width},${g.height}&layers=1`);
    await checkBodies(layers.bodies, f, workDir(), { layers: 1 });
    // quality=34 of 3 layers: the first 2, ending with EOR 5 (quality limit).
    const quality = new Client(send, base);
    const qr = await quality.get(`fsiz=${g.width},${g.height}&quality=34`);
    expect(parseStream(qr.body).eor).toEqual([5]);
    expect(qr.headers['jpip-quality']).toBe('34');
    await checkBodies(quality.bodies, f, workDir(), { layers: 2 });
  });

  it('continues a len-limited window across requests of one channel (target= on the IIP path)', async () => {
    const f = files.lrcpTiledPlt;
    const g = await geometry(f);
    const c = new Client(send, '/fcgi-bin/iipsrv.fcgi?target=lrcp_tiled_plt.j2k&');
    const q = frameAt(g, 2);
    const first = await c.get(`cnew=http&type=jpp-stream&tid=0&fsiz=${q.w},${q.h}`);
    expect(first.headers['jpip-cnew']).toMatch(/^cid=[^,]+,path=fcgi-bin\/iipsrv\.fcgi,transport=http$/);
    const reasons = await c.untilDone(`fsiz=${g.width},${g.height}&len=20000`);
    expect(reasons.slice(0, -1).every((x) => x === 4)).toBe(true);
    expect(reasons.length).toBeGreaterThan(2);
    await checkBodies(c.bodies, f, workDir());
    const close = await c.get('cclose=*');
    expect(parseStream(close.body).eor).toEqual([2]);
    expect((await send(`/${c.path}?cid=${c.cid}&fsiz=10,10`)).status).toBe(404);
  });

  it('answers stateless requests with a POSTed model, without PLT, and JPT-streams', async () => {
    const f = files.rpclNoPlt;
    const g = await geometry(f);
    const a = new Client(send, '/jpip/rpcl_noplt.jp2?');
    await a.get(`fsiz=${frameAt(g, 1).w},${frameAt(g, 1).h}`);
    const held = parseStream(a.bodies[0])
      .messages.filter((m) => m.last)
      .map((m) => (m.cls === 6 ? 'Hm' : m.cls === 8 ? `M${m.id}` : m.cls === 2 ? `H${m.id}` : `P${m.id}`));
    const b = await send('/jpip/rpcl_noplt.jp2', { method: 'POST', body: `fsiz=${g.width},${g.height}&model=${held.join(',')}` });
    expect(b.status).toBe(200);
    await checkBodies([a.bodies[0], b.body], f, workDir());
    const jpt = new Client(send, '/jpip/pcrl_tiled_plt.j2k?');
    await jpt.get(`type=jpt-stream&fsiz=${g.width},${g.height}`);
    expect(jpt.replies[0].headers['content-type']).toBe('image/jpt-stream');
    await checkBodies(jpt.bodies, files.pcrlTiledPlt, workDir());
  });

  it('serves IIIF from the same deployment', async () => {
    const r = await send('/iiif/rpcl_plt.jp2/info.json');
    // The JPEG 2000 decoder may not be loaded in every build; JPIP must not take the route.
    expect(r.headers['content-type'] ?? '').not.toMatch(/jpp-stream/);
  });

  it('refuses bad requests with clear statuses', async () => {
    expect((await send('/jpip?cid=nope&fsiz=10,10')).status).toBe(404);
    expect((await send('/fcgi-bin/iipsrv.fcgi?target=../../etc/passwd&fsiz=1,1')).status).toBe(403);
    expect((await send('/jpip/missing.jp2?fsiz=1,1')).status).toBe(404);
  });

  it('reuses the persisted packet index after a restart', async () => {
    const dir = path.join(work, 'index');
    const before = new Map(fs.readdirSync(dir).map((x) => [x, fs.statSync(path.join(dir, x)).mtimeMs]));
    expect(before.size).toBeGreaterThanOrEqual(3);
    await backend.stop();
    backend = await startIipsrv(env());
    await nginx.stop();
    nginx = await startNginx([backend.port], 'nginx-jpip.conf');
    const c = new Client(send, '/jpip/rpcl_noplt.jp2?');
    await c.get('fsiz=128,96');
    await checkBodies(c.bodies, files.rpclNoPlt, workDir(), { reduce: 2 });
    for (const [name, mtime] of before) expect(fs.statSync(path.join(dir, name)).mtimeMs).toBe(mtime);
  });
});

describe('JPIP with --workers 2 (sessions shared between worker processes)', () => {
  let pool: Running;
  let front: Awaited<ReturnType<typeof startNginx>>;
  let via: Transport;

  beforeAll(async () => {
    pool = await startIipsrv({ ...env(), JPIP_CACHE: path.join(work, 'workers') }, ['--workers', '2']);
    // A new backend connection per request: the master hands them to the workers in turn.
    front = await startNginx([pool.port], 'nginx-jpip.conf', { keepAlive: false });
    via = async (uri) => {
      const res = await fetch(`http://127.0.0.1:${front.port}${uri}`);
      const headers: Record<string, string> = {};
      res.headers.forEach((v, k) => (headers[k] = v));
      return { status: res.status, headers, body: Buffer.from(await res.arrayBuffer()) };
    };
  }, 60_000);

  afterAll(async () => {
    await front?.stop();
    await pool?.stop();
  });

  it('continues a channel whichever worker gets each request', async () => {
    const f = files.pcrlTiledPlt;
    const g = await geometry(f);
    const c = new Client(via, '/jpip/pcrl_tiled_plt.j2k?');
    await c.get('cnew=http&fsiz=64,48');
    const reasons = await c.untilDone(`fsiz=${g.width},${g.height}&len=8000`);
    expect(reasons.length).toBeGreaterThan(4);
    await checkBodies(c.bodies, f, workDir());
    // Nothing was sent twice although the model moved between processes.
    const seen = new Map<string, number>();
    for (const b of c.bodies) {
      for (const m of parseStream(b).messages) {
        expect(m.offset).toBe(seen.get(`${m.cls}/${m.id}`) ?? 0);
        seen.set(`${m.cls}/${m.id}`, m.offset + m.length);
      }
    }
    expect(fs.readdirSync(path.join(work, 'workers', 'sessions'))).toHaveLength(1);
    await c.get('cclose=*');
    expect(fs.readdirSync(path.join(work, 'workers', 'sessions'))).toHaveLength(0);
  });
});
