// The decoder registry (decoders/registry.ts): choosing a module by magic bytes, error mapping
// without path leaks, and DECODER_MODULES loading.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecoderModule, ImageDecoder } from '../../../decoders/decoder.js';
import { DecoderRegistry } from '../../../decoders/registry.js';
import { ImageServerError } from '../../../src/core/errors.js';
import { setupFixtures, type FixtureSet } from './helpers.js';

let fx: FixtureSet;
beforeAll(async () => {
  fx = await setupFixtures();
}, 60_000);
afterAll(async () => {
  await fx?.cleanup();
});

async function openError(reg: DecoderRegistry, path: string): Promise<ImageServerError> {
  const err = await reg.open(path).then(
    async (d) => {
      await d.close();
      return null;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ImageServerError);
  const e = err as ImageServerError;
  expect(e.message).not.toContain(fx.dir);
  expect(e.message).not.toContain('/');
  return e;
}

describe('DecoderRegistry.open', () => {
  it('opens a TIFF with the built-in tiff module', async () => {
    const reg = new DecoderRegistry();
    expect(reg.modules.map((m) => m.name)).toEqual(['tiff', 'jpeg2000', 'jpeg']);
    const d = await reg.open(fx.files.bigtiff);
    expect(d.info.format).toBe('tiff');
    expect(d.info.levels).toHaveLength(4);
    await d.close();
  });

  it('a PNG is UNSUPPORTED_IMAGE (415)', async () => {
    const e = await openError(new DecoderRegistry(), fx.files.source);
    expect([e.code, e.status, e.message]).toEqual(['UNSUPPORTED_IMAGE', 415, 'Unsupported image type']);
    expect(e.detail).toContain(fx.files.source);
  });

  it('an empty file is UNSUPPORTED_IMAGE', async () => {
    const path = join(fx.dir, 'empty.tif');
    await writeFile(path, Buffer.alloc(0));
    expect((await openError(new DecoderRegistry(), path)).code).toBe('UNSUPPORTED_IMAGE');
  });

  it.each(['truncated', 'badOffset', 'loop'])('a corrupt TIFF (%s) is CORRUPT_IMAGE, not a crash', async (name) => {
    const e = await openError(new DecoderRegistry(), fx.files[name]);
    expect([e.code, e.status]).toEqual(['CORRUPT_IMAGE', 500]);
    expect(e.detail).toContain(fx.files[name]);
  });

  it('a missing file is NOT_FOUND', async () => {
    const e = await openError(new DecoderRegistry(), join(fx.dir, 'nope.tif'));
    expect(e.code).toBe('NOT_FOUND');
  });

  it('an unsupported TIFF layout is UNSUPPORTED_IMAGE', async () => {
    // deflate-pyramid.tif with IFD0's Compression patched to old-style JPEG (6).
    const { readFile } = await import('node:fs/promises');
    const b = await readFile(fx.files.deflatePyramid);
    const ifd0 = b.readUInt32LE(4);
    const n = b.readUInt16LE(ifd0);
    for (let i = 0; i < n; i++) {
      const o = ifd0 + 2 + i * 12;
      if (b.readUInt16LE(o) === 259) b.writeUInt16LE(6, o + 8);
    }
    const path = join(fx.dir, 'ojpeg.tif');
    await writeFile(path, b);
    const e = await openError(new DecoderRegistry(), path);
    expect([e.code, e.status]).toEqual(['UNSUPPORTED_IMAGE', 415]);
    expect(e.message).toMatch(/old-style JPEG/);
  });

  it('a decoder that throws a plain Error is mapped to CORRUPT_IMAGE', async () => {
    const broken: DecoderModule = {
      name: 'broken',
      sniff: (h) => h[0] === 0x89,
      open: () => Promise.reject(new Error(`cannot read ${fx.files.source}`)),
    };
    const e = await openError(new DecoderRegistry([broken]), fx.files.source);
    expect(e.code).toBe('CORRUPT_IMAGE');
    expect(e.detail).toContain('cannot read');
  });
});

describe('DecoderRegistry modules', () => {
  const fake = (name: string, magic: number): DecoderModule => ({
    name,
    sniff: (h) => h[0] === magic,
    open: async () => ({ info: { format: name } }) as unknown as ImageDecoder,
  });

  it('registered modules are tried in order, by magic bytes', async () => {
    const reg = new DecoderRegistry();
    reg.register(fake('png', 0x89));
    expect((await reg.open(fx.files.source)).info.format).toBe('png');
    const tiff = await reg.open(fx.files.jpegPyramid);
    expect(tiff.info.format).toBe('tiff');
    await tiff.close();
    expect(reg.find(Buffer.from('GIF89a'))).toBeUndefined();
  });

  it('a module with the same name replaces the built-in one', async () => {
    const reg = new DecoderRegistry();
    reg.register(fake('tiff', 0x49));
    expect(reg.modules.map((m) => m.name)).toEqual(['tiff', 'jpeg2000', 'jpeg']);
    expect((await reg.open(fx.files.jpegPyramid)).info.format).toBe('tiff');
    expect((await reg.open(fx.files.jpegPyramid)).readRegion).toBeUndefined();
  });

  it('a sniff that throws does not hide other modules', () => {
    const reg = new DecoderRegistry();
    reg.register(
      {
        name: 'bad',
        sniff: () => {
          throw new Error('boom');
        },
        open: () => Promise.reject(new Error('never')),
      },
      { first: true },
    );
    expect(reg.find(Buffer.from('II*\0xxxxxxxxxxxx', 'latin1'))?.name).toBe('tiff');
  });

  it('loadModules registers default and `decoder` exports and returns errors instead of throwing', async () => {
    const a = join(fx.dir, 'mod-a.mjs');
    const b = join(fx.dir, 'mod-b.mjs');
    const c = join(fx.dir, 'mod-c.mjs');
    await writeFile(a, `export default { name: 'a', sniff: (h) => h[0] === 0x41, open: async () => ({}) };\n`);
    await writeFile(b, `export const decoder = { name: 'b', sniff: (h) => h[0] === 0x42, open: async () => ({}) };\n`);
    await writeFile(c, `export const somethingElse = 1;\n`);
    const reg = new DecoderRegistry();
    const errors = await reg.loadModules(` ${a}, ${b},${c}, ${join(fx.dir, 'missing.mjs')}, no-such-package-xyz ,`);
    expect(reg.modules.map((m) => m.name)).toEqual(['tiff', 'jpeg2000', 'jpeg', 'a', 'b']);
    expect(errors).toHaveLength(3);
    expect(errors[0]).toMatch(/mod-c\.mjs: exports no decoder module/);
    expect(errors[1]).toMatch(/missing\.mjs/);
    expect(errors[2]).toMatch(/^no-such-package-xyz: /);
    expect(await reg.loadModules('')).toEqual([]);
  });
});
