// JPIP through the handler, in process: routing, response headers (JPIP-tid, JPIP-cnew, qid,
// window changes, CORS exposure, no-cache), metadata bin 0 with its placeholder, channels
// sharing a model, cclose, tid changes, HEAD, len=0, metareq, and errors as clear 4xx/5xx bodies.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import type { ServerRequest } from '../../../src/handler-types.js';
import { silentLogger } from '../../../src/log.js';
import { createServerCore, type ServerCore } from '../../../src/server.js';
import { checkBodies, parseStream, type Reply } from '../../fixtures/jpip-battery.js';
import { makeJpipFixtures, tool, type FixtureName } from '../../fixtures/make-jpip.js';
import { req } from '../../support/requests.js';

let files: Record<FixtureName, string>;
let dir: string;
let core: ServerCore;

async function send(uri: string, init: Partial<ServerRequest> = {}): Promise<Reply> {
  const res = await core.handler(req(uri, init));
  return { status: res.status, headers: Object.fromEntries(res.headers.map(([k, v]) => [k.toLowerCase(), v])), body: res.body };
}

const cidOf = (r: Reply): string => /cid=([^,]+)/.exec(r.headers['jpip-cnew'] ?? '')![1];

beforeAll(async () => {
  files = await makeJpipFixtures();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iipsrv-jpip-proto-'));
  for (const name of ['rpclPlt', 'lrcpTiledPlt', 'pcrlTiledPlt'] as const)
    fs.copyFileSync(files[name], path.join(dir, path.basename(files[name])));
  fs.mkdirSync(path.join(dir, 'sub dir'));
  fs.copyFileSync(files.rpclPlt, path.join(dir, 'sub dir', 'a+b.jp2'));
  fs.writeFileSync(path.join(dir, 'text.jp2'), 'not a JPEG 2000 file at all');
  // Two codestreams in one file (as in a JPX): the JP2 plus a second jp2c box.
  const second = fs.readFileSync(files.lrcpTiledPlt);
  const box = Buffer.alloc(8);
  box.writeUInt32BE(8 + second.length, 0);
  box.write('jp2c', 4, 'latin1');
  fs.writeFileSync(path.join(dir, 'two.jpx'), Buffer.concat([fs.readFileSync(files.rpclPlt), box, second]));
  fs.writeFileSync(path.join(os.tmpdir(), 'iipsrv-jpip-outside.jp2'), fs.readFileSync(files.rpclPlt));
  fs.symlinkSync(path.join(os.tmpdir(), 'iipsrv-jpip-outside.jp2'), path.join(dir, 'escape.jp2'));
  const { config } = loadConfig({ FILESYSTEM_PREFIX: `${dir}/`, JPIP_CACHE: path.join(dir, '.cache'), CORS: '*', JPIP_MAX_SESSIONS: '50' });
  core = await createServerCore(config, silentLogger);
}, 120_000);

afterAll(async () => {
  await core?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('JPIP responses', () => {
  it('answers with the JPIP headers, no-cache and CORS exposure', async () => {
    const r = await send('/jpip/rpcl_plt.jp2?cnew=http&type=jpp-stream&tid=0&qid=3&fsiz=100,90,round-up');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('image/jpp-stream');
    expect(r.headers['cache-control']).toBe('no-cache');
    expect(r.headers['jpip-tid']).toMatch(/^[0-9a-f]{24}$/);
    expect(r.headers['jpip-cnew']).toMatch(/^cid=[A-Za-z0-9_-]{30},path=jpip\/rpcl_plt\.jp2,transport=http$/);
    expect(r.headers['jpip-qid']).toBe('3');
    expect(r.headers['jpip-fsiz']).toBe('128,96');
    expect(r.headers['access-control-allow-origin']).toBe('*');
    expect(r.headers['access-control-expose-headers']).toMatch(/JPIP-cnew.*JPIP-tid/);
    expect(r.headers['content-length']).toBe(String(r.body.length));
    // The same file keeps its target id; a stateless request gets no channel.
    const again = await send('/fcgi-bin/iipsrv.fcgi?target=rpcl_plt.jp2&fsiz=10,10');
    expect(again.headers['jpip-tid']).toBe(r.headers['jpip-tid']);
    expect(again.headers['jpip-cnew']).toBeUndefined();
  });

  it('sends metadata bin 0 first: the JP2 boxes with a codestream placeholder for jp2c', async () => {
    const r = await send('/jpip/rpcl_plt.jp2?metareq=[*]!!');
    const p = parseStream(r.body);
    expect(p.messages.map((m) => m.cls)).toEqual([8]); // metadata only
    expect(p.eor).toEqual([2]);
    const m = p.messages[0];
    expect(m).toMatchObject({ id: 0, offset: 0, last: true });
    const bin = r.body.subarray(r.body.length - 3 - m.length, r.body.length - 3);
    const types: string[] = [];
    for (let q = 0; q < bin.length; q += bin.readUInt32BE(q)) types.push(bin.toString('latin1', q + 4, q + 8));
    expect(types).toEqual(['jP  ', 'ftyp', 'jp2h', 'phld']);
    const phld = bin.subarray(bin.length - bin.readUInt32BE(bin.length - 52), bin.length);
    expect(phld.readUInt32BE(8)).toBe(4); // Flags: codestream
    expect(phld.toString('latin1', 24, 28)).toBe('jp2c'); // OrigBH
    expect(phld.readBigUInt64BE(44)).toBe(0n); // CSID
    // A raw codestream has an empty, complete metadata bin 0.
    const raw = parseStream((await send('/jpip/lrcp_tiled_plt.j2k')).body);
    expect(raw.messages[0]).toMatchObject({ cls: 8, id: 0, length: 0, last: true });
    expect(raw.messages[1]).toMatchObject({ cls: 6, id: 0, last: true });
  });

  it('shares one cache model between the channels of a session', async () => {
    const a = await send('/jpip/lrcp_tiled_plt.j2k?cnew=http&fsiz=128,96');
    const cid = cidOf(a);
    const b = await send(`/jpip/lrcp_tiled_plt.j2k?cid=${cid}&cnew=http&fsiz=128,96`);
    const cid2 = cidOf(b);
    expect(cid2).not.toBe(cid);
    expect(parseStream(b.body).messages).toEqual([]); // nothing new for the same window
    const c = await send(`/fcgi-bin/iipsrv.fcgi?cid=${cid2}&fsiz=256,192`);
    expect(parseStream(c.body).messages.every((m) => m.cls === 0)).toBe(true);
    // cclose of one channel keeps the other; `*` closes all.
    await send(`/jpip?cid=${cid}&cclose=${cid}`);
    expect((await send(`/jpip?cid=${cid}&fsiz=10,10`)).status).toBe(404);
    expect((await send(`/jpip?cid=${cid2}&fsiz=10,10`)).status).toBe(200);
    await send(`/jpip?cid=${cid2}&cclose=*`);
    const gone = await send(`/jpip?cid=${cid2}&fsiz=10,10`);
    expect(gone.status).toBe(404);
    expect(gone.body.toString()).toMatch(/Unknown JPIP channel/);
  });

  it('resends everything when the client names another target version (tid)', async () => {
    const a = await send('/jpip/pcrl_tiled_plt.j2k?cnew=http&fsiz=64,48');
    const cid = cidOf(a);
    expect(parseStream((await send(`/jpip?cid=${cid}&fsiz=64,48`)).body).messages).toEqual([]);
    const stale = await send(`/jpip?cid=${cid}&fsiz=64,48&tid=somethingelse`);
    expect(stale.headers['jpip-tid']).toBe(a.headers['jpip-tid']);
    expect(parseStream(stale.body).messages.length).toBe(parseStream(a.body).messages.length);
  });

  it('grants http for http-tcp and answers statelessly when only other transports are offered', async () => {
    expect((await send('/jpip/rpcl_plt.jp2?cnew=http-tcp&fsiz=10,10')).headers['jpip-cnew']).toMatch(/transport=http$/);
    expect((await send('/jpip/rpcl_plt.jp2?cnew=http-udp&fsiz=10,10')).headers['jpip-cnew']).toBeUndefined();
  });

  it('HEAD has the headers and no body, and leaves the model alone', async () => {
    const a = await send('/jpip/rpcl_plt.jp2?cnew=http&fsiz=10,10');
    const cid = cidOf(a);
    const head = await send(`/jpip?cid=${cid}&fsiz=512,384`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect(Number(head.headers['content-length'])).toBeGreaterThan(1000);
    const get = await send(`/jpip?cid=${cid}&fsiz=512,384`);
    expect(get.body.length).toBe(Number(head.headers['content-length']));
  });

  it('len=0 sends only an EOR, small len budgets are raised and reported', async () => {
    const zero = await send('/jpip/rpcl_plt.jp2?fsiz=512,384&len=0');
    expect(zero.body.toString('hex')).toBe('000400');
    const tiny = await send('/jpip/rpcl_plt.jp2?fsiz=512,384&len=5');
    expect(tiny.headers['jpip-len']).toBe('64');
    expect(tiny.body.length).toBe(64 + 3);
  });

  it('reports clipped regions, layer and component limits', async () => {
    const r = await send('/jpip/rpcl_plt.jp2?fsiz=512,384&roff=500,380&rsiz=100,100&layers=9&comps=0-7');
    expect(r.headers['jpip-rsiz']).toBe('12,4');
    expect(r.headers['jpip-roff']).toBeUndefined();
    expect(r.headers['jpip-layers']).toBe('3');
    expect(r.headers['jpip-comps']).toBe('0-2');
  });

  it('serves targets with encoded characters, from the path or target=', async () => {
    expect((await send('/jpip/sub%20dir%2Fa+b.jp2?fsiz=10,10')).status).toBe(200);
    expect((await send('/fcgi-bin/iipsrv.fcgi?target=sub%20dir/a%2Bb.jp2&fsiz=10,10')).status).toBe(200);
  });

  it('takes POSTed request fields', async () => {
    const r = await send('/jpip/rpcl_plt.jp2', { method: 'POST', body: Buffer.from('cnew=http&fsiz=64,48&model=Hm,M0') });
    expect(r.status).toBe(200);
    expect(parseStream(r.body).messages.some((m) => m.cls === 6 || m.cls === 8)).toBe(false);
    expect(r.headers['jpip-cnew']).toBeDefined();
  });

  it('serves several codestreams of one file (stream=0-1), each byte-exact', async () => {
    const r = await send('/jpip/two.jpx?stream=0-1&fsiz=512,384');
    expect(r.status).toBe(200);
    const p = parseStream(r.body);
    expect(p.eor).toEqual([1]);
    expect(new Set(p.messages.filter((m) => m.cls === 6).map((m) => m.csn))).toEqual(new Set([0, 1]));
    expect(p.messages.filter((m) => m.csn === 1 && m.cls === 0).length).toBeGreaterThan(100);
    const work = path.join(dir, 'two');
    await checkBodies([r.body], files.rpclPlt, work);
    const second = await tool('jpp2j2k.py', [
      path.join(work, 'body0.jpp'),
      '-c',
      '1',
      '-o',
      path.join(work, 'cs1.j2k'),
      '--ref',
      files.lrcpTiledPlt,
    ]);
    expect(second.out).toMatch(/byte-exact check vs --ref: OK/);
    // Two codestream placeholders in metadata bin 0, with CSID 0 and 1.
    const meta = p.messages[0];
    const bin = r.body.subarray(r.body.indexOf(Buffer.from('jP  ')) - 4, r.body.indexOf(Buffer.from('jP  ')) - 4 + meta.length);
    const csids: bigint[] = [];
    for (let q = 0; q < bin.length; q += bin.readUInt32BE(q))
      if (bin.toString('latin1', q + 4, q + 8) === 'phld') csids.push(bin.readBigUInt64BE(q + 44));
    expect(csids).toEqual([0n, 1n]);
    // stream=1 only: the other codestream's bins stay out; a missing one is reported.
    const one = parseStream((await send('/jpip/two.jpx?stream=1-5&fsiz=64,48')).body);
    expect(new Set(one.messages.filter((m) => m.cls !== 8).map((m) => m.csn))).toEqual(new Set([1]));
    expect((await send('/jpip/two.jpx?stream=1-5&fsiz=64,48')).headers['jpip-stream']).toBe('1');
  });

  it('persists the packet index in JPIP_CACHE', () => {
    const stored = fs.readdirSync(path.join(dir, '.cache'));
    expect(stored.some((f) => f.endsWith('-0.jpix'))).toBe(true);
  });

  it.each([
    ['/jpip/missing.jp2?fsiz=10,10', 404, /not found/i],
    ['/jpip/escape.jp2?fsiz=10,10', 403, /outside the image root/],
    ['/jpip/..%2F..%2Fetc%2Fpasswd?fsiz=10,10', 403, /\.\./],
    ['/fcgi-bin/iipsrv.fcgi?target=../../etc/passwd&fsiz=10,10', 403, /\.\./],
    ['/jpip/text.jp2?fsiz=10,10', 415, /not a JP2, JPX or J2K file/],
    ['/jpip?cid=doesnotexist&fsiz=10,10', 404, /Unknown JPIP channel/],
    ['/jpip/rpcl_plt.jp2?subtarget=0-100', 501, /subtarget/],
    ['/jpip/rpcl_plt.jp2?fsiz=10', 400, /Expected .* for fsiz/],
    ['/jpip/rpcl_plt.jp2?type=raw', 501, /jpp-stream and jpt-stream/],
    ['/jpip/rpcl_plt.jp2?model=X1', 400, /cache-model/],
    ['/jpip/rpcl_plt.jp2?stream=4', 400, /codestream/],
    ['/jpip/?fsiz=10,10', 400, /needs a target/],
  ])('%s → %i with a clear message', async (uri, status, message) => {
    const r = await send(uri);
    expect(r.status).toBe(status);
    const body = r.body.toString();
    expect(body).toMatch(message);
    expect(body).not.toContain(dir);
    expect(body).not.toMatch(/at .*\.[jt]s:\d+/);
  });

  it('leaves IIP and IIIF requests alone', async () => {
    const r = await send('/fcgi-bin/iipsrv.fcgi?IIIF=rpcl_plt.jp2/info.json');
    expect(r.headers['content-type']).not.toMatch(/jpp/);
  });
});
