// The JPIP validation battery through the real handler, in process (createServerCore): for each
// test codestream, full and reduced windows, regions at every resolution, layers, components,
// len-limited continuation in one session, stateless requests with `model` (GET and POST) and
// JPT-streams. Every response set is rebuilt by shared/tools/jpip/jpp2j2k.py --ref (each byte
// checked against the original) and decoded by opj_decompress, whose pixels must equal a decode
// of the original for that window. Region responses must also stay within the precincts the
// window needs plus the filter margin, computed independently by j2kcs.py.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import type { ServerRequest } from '../../../src/handler-types.js';
import { silentLogger } from '../../../src/log.js';
import { createServerCore, type ServerCore } from '../../../src/server.js';
import {
  checkBodies,
  Client,
  frameAt,
  geometry,
  independentBins,
  parseStream,
  type Parsed,
  type Transport,
} from '../../fixtures/jpip-battery.js';
import { FIXTURES, makeJpipFixtures, sharedFixtureDir, TOOLS, type FixtureName } from '../../fixtures/make-jpip.js';

let files: Record<FixtureName, string>;
let core: ServerCore;
let work: string;
let send: Transport;
let n = 0;
const workDir = (): string => path.join(work, String(n++));

beforeAll(async () => {
  files = await makeJpipFixtures();
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'iipsrv-jpip-battery-'));
  const { config } = loadConfig({ FILESYSTEM_PREFIX: `${sharedFixtureDir()}/`, JPIP_CACHE: path.join(work, 'cache'), CORS: '*' });
  core = await createServerCore(config, silentLogger);
  send = async (uri, init = {}) => {
    const q = uri.indexOf('?');
    const req: ServerRequest = {
      method: init.method ?? 'GET',
      query: q < 0 ? '' : uri.slice(q + 1),
      requestUri: uri,
      headers: { host: 'example.org' },
      https: false,
      body: Buffer.from(init.body ?? ''),
    };
    const res = await core.handler(req);
    return { status: res.status, headers: Object.fromEntries(res.headers.map(([k, v]) => [k.toLowerCase(), v])), body: res.body };
  };
}, 180_000);

afterAll(async () => {
  await core?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

/** Precinct bins (class 0) of some bodies, as `csn/id`. */
function precinctIds(parsed: readonly Parsed[]): Set<number> {
  const out = new Set<number>();
  for (const p of parsed) for (const m of p.messages) if (m.cls === 0) out.add(m.id);
  return out;
}

/** A `model=` value describing everything some bodies delivered (complete bins, or byte prefixes). */
function modelOf(bodies: readonly Buffer[]): string {
  const held = new Map<string, { bytes: number; complete: boolean }>();
  for (const b of bodies) {
    for (const m of parseStream(b).messages) {
      const key = m.cls === 6 ? 'Hm' : m.cls === 8 ? `M${m.id}` : m.cls === 2 ? `H${m.id}` : m.cls === 4 ? `T${m.id}` : `P${m.id}`;
      const h = held.get(key) ?? { bytes: 0, complete: false };
      if (m.offset <= h.bytes) h.bytes = Math.max(h.bytes, m.offset + m.length);
      h.complete ||= m.last;
      held.set(key, h);
    }
  }
  return [...held].map(([k, h]) => (h.complete ? k : `${k}:${h.bytes}`)).join(',');
}

/** The tests of a file run concurrently and call external tools; loaded CI machines are slow. */
const TIMEOUT = 180_000;

const FULL: FixtureName[] = ['rpclPlt', 'lrcpTiledPlt', 'pcrlTiledPlt', 'rpclNoPlt', 'lrcp97Tiled', 'pcrlOrigin'];
const LIGHT: FixtureName[] = ['rlcpTiledNoPlt', 'cprlTilePartsNoPlt', 'cprlSopEph', 'rpcl97', 'greyLrcp'];

describe.concurrent.each(FULL.map((f) => [f]))('battery on %s', (name) => {
  const target = (): string => FIXTURES[name].file;
  const base = (): string => `/fcgi-bin/iipsrv.fcgi?target=${target()}&`;

  it(
    'full window, stateless: every bin, EOR 1, identical decode',
    async () => {
      const g = await geometry(files[name]);
      const c = new Client(send, base());
      const r = await c.get(`fsiz=${g.width},${g.height}`);
      expect(r.headers['content-type']).toBe('image/jpp-stream');
      expect(r.headers['jpip-cnew']).toBeUndefined();
      const p = parseStream(r.body);
      expect(p.eor).toEqual([1]);
      expect(p.messages[0]).toMatchObject({ cls: 8, id: 0, indicator: 3 });
      expect(p.messages[1]).toMatchObject({ cls: 6, id: 0 });
      const all = await independentBins(TOOLS, files[name]);
      expect(precinctIds([p]).size).toBe(all.size);
      await checkBodies(c.bodies, files[name], workDir());
    },
    TIMEOUT,
  );

  it(
    'reduced window (fsiz a quarter, round-down)',
    async () => {
      const g = await geometry(files[name]);
      const c = new Client(send, base());
      const f = frameAt(g, 2);
      const r = await c.get(`fsiz=${f.w + 1},${f.h + 1}`);
      expect(r.headers['jpip-fsiz']).toBe(`${f.w},${f.h}`);
      expect(parseStream(r.body).eor).toEqual([2]);
      await checkBodies(c.bodies, files[name], workDir(), { reduce: 2 });
    },
    TIMEOUT,
  );

  it(
    'regions at every resolution, within the needed precincts plus margin',
    async () => {
      const g = await geometry(files[name]);
      const bins = await independentBins(TOOLS, files[name]);
      for (let d = 0; d <= g.levels; d++) {
        const f = frameAt(g, d);
        const region = {
          x: Math.floor(f.w * 0.3),
          y: Math.floor(f.h * 0.25),
          w: Math.max(1, Math.floor(f.w * 0.4)),
          h: Math.max(1, Math.floor(f.h * 0.35)),
        };
        const c = new Client(send, base());
        const r = await c.get(`fsiz=${f.w},${f.h}&roff=${region.x},${region.y}&rsiz=${region.w},${region.h}`);
        expect(r.headers['jpip-roff']).toBeUndefined();
        await checkBodies(c.bodies, files[name], workDir(), { reduce: d, region });
        // Independent bound: precincts of resolutions up to the window's, meeting the region
        // scaled to their resolution and widened by 16 samples (the filter margins summed).
        const M = 16;
        const top = g.levels - d;
        const X0 = Math.ceil(g.x0 / 2 ** d) + region.x;
        const Y0 = Math.ceil(g.y0 / 2 ** d) + region.y;
        const allowed = new Set<number>();
        let allowedBytes = 0;
        for (const [id, b] of bins) {
          if (b.r > top) continue;
          const s = 2 ** (top - b.r);
          const [x0, y0, x1, y1] = b.rect;
          if (
            x1 > Math.floor(X0 / s) - M &&
            x0 < Math.ceil((X0 + region.w) / s) + M &&
            y1 > Math.floor(Y0 / s) - M &&
            y0 < Math.ceil((Y0 + region.h) / s) + M
          ) {
            allowed.add(id);
            allowedBytes += b.bytes;
          }
        }
        const p = parseStream(r.body);
        const sent = precinctIds([p]);
        expect([...sent].filter((id) => !allowed.has(id))).toEqual([]);
        const payload = p.messages.filter((m) => m.cls === 0).reduce((a, m) => a + m.length, 0);
        expect(payload).toBeLessThanOrEqual(allowedBytes);
        // Where the allowance excludes something, the server must too (files without precinct
        // partitions and few tiles legitimately need every bin).
        if (allowed.size < bins.size) expect(sent.size).toBeLessThan(bins.size);
      }
    },
    TIMEOUT,
  );

  it(
    'layers=1 and layers=2: decodes like the original with -l',
    async () => {
      const g = await geometry(files[name]);
      for (const layers of [1, 2]) {
        const c = new Client(send, base());
        const r = await c.get(`fsiz=${g.width},${g.height}&layers=${layers}`);
        const p = parseStream(r.body);
        expect(p.eor).toEqual([2]);
        // Layer-limited bins stay incomplete: the completeness bit marks the real end only.
        expect(p.messages.filter((m) => m.cls === 0 && m.last)).toEqual([]);
        await checkBodies(c.bodies, files[name], workDir(), { layers });
      }
    },
    TIMEOUT,
  );

  it(
    'quality=q: the first ceil(q% of the layers), ending with EOR 5; quality=100 and -1 set no limit',
    async () => {
      const g = await geometry(files[name]);
      // 34% of 3 layers is 2 layers (of 5, 2); an explicit smaller layers= still wins (EOR 2).
      expect(g.layers).toBeGreaterThanOrEqual(3);
      for (const [query, layers, eor] of [
        ['quality=34', Math.ceil((g.layers * 34) / 100), 5],
        ['quality=34&layers=1', 1, 2],
      ] as const) {
        const c = new Client(send, base());
        const r = await c.get(`fsiz=${g.width},${g.height}&${query}`);
        expect(parseStream(r.body).eor, query).toEqual([eor]);
        await checkBodies(c.bodies, files[name], workDir(), { layers });
      }
      for (const query of ['quality=100', 'quality=-1']) {
        const r = await new Client(send, base()).get(`fsiz=${g.width},${g.height}&${query}`);
        expect(parseStream(r.body).eor, query).toEqual([1]);
      }
    },
    TIMEOUT,
  );

  it(
    'comps=0: only component 0, which decodes like the original',
    async () => {
      const g = await geometry(files[name]);
      const c = new Client(send, base());
      const r = await c.get(`fsiz=${g.width},${g.height}&comps=0`);
      const bins = await independentBins(TOOLS, files[name]);
      for (const id of precinctIds([parseStream(r.body)])) expect(bins.get(id)?.c).toBe(0);
      await checkBodies(c.bodies, files[name], workDir(), { components: [0] });
    },
    TIMEOUT,
  );

  it(
    'len-limited continuation in one session until EOR says the window is done',
    async () => {
      const g = await geometry(files[name]);
      const c = new Client(send, base());
      const q = frameAt(g, 2);
      const first = await c.get(`cnew=http&type=jpp-stream&fsiz=${q.w},${q.h}`);
      expect(first.headers['jpip-cnew']).toMatch(/^cid=[A-Za-z0-9_-]+,path=fcgi-bin\/iipsrv\.fcgi,transport=http$/);
      // A budget of a quarter of the file (at most 20000 bytes) needs several requests.
      const len = Math.min(20000, Math.floor(fs.statSync(files[name]).size / 4));
      const reasons = await c.untilDone(`fsiz=${g.width},${g.height}&len=${len}`);
      expect(reasons.length).toBeGreaterThan(1);
      expect(reasons.slice(0, -1).every((x) => x === 4)).toBe(true);
      expect([1, 2]).toContain(reasons[reasons.length - 1]);
      for (const b of c.bodies.slice(1, -1)) expect(b.length).toBe(len + 3); // budget filled exactly, plus EOR
      // Nothing is sent twice in a session.
      const seen = new Map<string, number>();
      for (const b of c.bodies) {
        for (const m of parseStream(b).messages) {
          const key = `${m.cls}/${m.id}`;
          expect(m.offset).toBe(seen.get(key) ?? 0);
          seen.set(key, m.offset + m.length);
        }
      }
      await checkBodies(c.bodies, files[name], workDir());
      // The window is complete now: the same request gets only an EOR.
      const again = await c.get(`fsiz=${g.width},${g.height}`);
      expect(parseStream(again.body).messages).toEqual([]);
      await c.get('cclose=*');
    },
    TIMEOUT,
  );

  it(
    'stateless with model (GET and POST): sends only what the model lacks',
    async () => {
      const g = await geometry(files[name]);
      const q = frameAt(g, 1);
      const a = new Client(send, base());
      await a.get(`fsiz=${q.w},${q.h}&len=15000`);
      const model = modelOf(a.bodies);
      const get = await a.get(`fsiz=${g.width},${g.height}&model=${encodeURIComponent(model)}`);
      const held = new Set(model.split(',').filter((x) => !x.includes(':')));
      for (const m of parseStream(get.body).messages) {
        const key = m.cls === 6 ? 'Hm' : m.cls === 8 ? `M${m.id}` : m.cls === 2 ? `H${m.id}` : `P${m.id}`;
        expect(held.has(key)).toBe(false);
      }
      await checkBodies([a.bodies[0], get.body], files[name], workDir());
      const post = await send(`/fcgi-bin/iipsrv.fcgi?target=${target()}`, {
        method: 'POST',
        body: `fsiz=${g.width},${g.height}&model=${encodeURIComponent(model)}`,
      });
      expect(post.status).toBe(200);
      expect(post.body.equals(get.body)).toBe(true);
    },
    TIMEOUT,
  );

  it(
    'jpt-stream: full and reduced windows',
    async () => {
      const g = await geometry(files[name]);
      const c = new Client(send, base());
      const r = await c.get(`type=jpt-stream&fsiz=${g.width},${g.height}`);
      expect(r.headers['content-type']).toBe('image/jpt-stream');
      const p = parseStream(r.body);
      expect(new Set(p.messages.map((m) => m.cls))).toEqual(new Set([8, 6, 4]));
      await checkBodies(c.bodies, files[name], workDir());
      const q = frameAt(g, 1);
      const small = new Client(send, base());
      await small.get(`type=jpt-stream&fsiz=${q.w},${q.h}`);
      await checkBodies(small.bodies, files[name], workDir(), { reduce: 1 });
    },
    TIMEOUT,
  );
});

describe.concurrent.each(LIGHT.map((f) => [f]))('battery on %s (full, reduced, regions, continuation)', (name) => {
  it(
    'serves byte-exact, pixel-identical windows',
    async () => {
      const g = await geometry(files[name]);
      const base = `/jpip/${FIXTURES[name].file}?`;
      const full = new Client(send, base);
      await full.get(`fsiz=${g.width},${g.height}`);
      await checkBodies(full.bodies, files[name], workDir());
      for (const d of [1, Math.min(2, g.levels)]) {
        const f = frameAt(g, d);
        const reduced = new Client(send, base);
        await reduced.get(`fsiz=${f.w},${f.h}`);
        await checkBodies(reduced.bodies, files[name], workDir(), { reduce: d });
      }
      for (const d of [0, 1]) {
        const f = frameAt(g, d);
        const region = { x: Math.floor(f.w / 3), y: Math.floor(f.h / 5), w: Math.floor(f.w / 4), h: Math.floor(f.h / 3) };
        const c = new Client(send, base);
        await c.get(`fsiz=${f.w},${f.h}&roff=${region.x},${region.y}&rsiz=${region.w},${region.h}`);
        await checkBodies(c.bodies, files[name], workDir(), { reduce: d, region });
      }
      const s = new Client(send, base);
      await s.get(`cnew=http-tcp,http&fsiz=64,64`);
      expect(s.path).toBe(`jpip/${FIXTURES[name].file}`);
      const reasons = await s.untilDone(`fsiz=${g.width},${g.height}&len=9000`);
      expect(reasons[reasons.length - 1]).not.toBe(4);
      await checkBodies(s.bodies, files[name], workDir());
    },
    TIMEOUT,
  );
});
