// JPEG 2000 through the whole server core (handler → protocol → plan → decoder registry →
// jpeg2000 decoder → render): IIIF info.json sizes and a tile's pixels, for a JP2 and a raw
// J2K codestream.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { loadConfig } from '../../../src/config.js';
import { silentLogger } from '../../../src/log.js';
import { createServerCore, type ServerCore } from '../../../src/server.js';
import { makeJ2kSource } from '../../fixtures/make-jp2.js';
import { setupJp2Fixtures, type Jp2FixtureSet } from './helpers.js';
import { req } from '../../support/requests.js';

let fx: Jp2FixtureSet;
let core: ServerCore;
let source: Buffer;

beforeAll(async () => {
  fx = await setupJp2Fixtures();
  source = await makeJ2kSource();
  const { config } = loadConfig({ FILESYSTEM_PREFIX: `${fx.dir}/`, URI_MAP: 'iiif=>IIIF' });
  core = await createServerCore(config, silentLogger);
}, 60_000);
afterAll(async () => {
  await core?.clearCaches();
  await fx?.cleanup();
});

describe('JPEG 2000 through the handler', () => {
  it('IIIF info.json of a JP2: size, tiles and scale factors from the codestream', async () => {
    const res = await core.handler(req('/iiif/rgb-lrcp.jp2/info.json'));
    expect(res.status).toBe(200);
    const info = JSON.parse(res.body.toString('utf8')) as {
      width: number;
      height: number;
      tiles: Array<{ width: number; scaleFactors: number[] }>;
    };
    expect([info.width, info.height]).toEqual([700, 500]);
    expect(info.tiles[0].width).toBe(256);
    expect(info.tiles[0].scaleFactors).toEqual([1, 2, 4]);
  });

  it('a full-resolution tile of a lossless J2K codestream has the source pixels', async () => {
    const res = await core.handler(req('/iiif/rgb-tiled-rlcp.j2k/256,256,256,244/256,/0/default.png'));
    expect(res.status).toBe(200);
    const { data, info } = await sharp(res.body).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([256, 244, 3]);
    const want = Buffer.alloc(256 * 244 * 3);
    for (let r = 0; r < 244; r++) source.copy(want, r * 768, ((256 + r) * 700 + 256) * 3, ((256 + r) * 700 + 512) * 3);
    expect(data.equals(want)).toBe(true);
  });

  it('a reduced-resolution tile and a JPEG region', async () => {
    const tile = await core.handler(req('/iiif/rgb-lrcp.jp2/0,0,512,512/256,/0/default.jpg'));
    expect(tile.status).toBe(200);
    expect((await sharp(tile.body).metadata()).width).toBe(256);
    const grey = await core.handler(req('/iiif/grey16.jp2/full/100,/0/default.png'));
    expect(grey.status).toBe(200);
    expect((await sharp(grey.body).metadata()).width).toBe(100);
  });

  it('a corrupt JP2 gives an error status, not a crash', async () => {
    const { writeFile } = await import('node:fs/promises');
    await writeFile(`${fx.dir}/broken.jp2`, Buffer.concat([Buffer.from('0000000c6a5020200d0a870a', 'hex'), Buffer.alloc(64, 7)]));
    const res = await core.handler(req('/iiif/broken.jp2/info.json'));
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.body.toString()).not.toContain(fx.dir);
  });
});
