// Sequences (src/image/sequence.ts, §11.5): views found from the file names, member selection,
// containment checks on member paths, and the views carried into ImageInfo by the registry.

import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecoderRegistry } from '../../../decoders/registry.js';
import { ImageServerError } from '../../../src/core/errors.js';
import { ImageRegistry } from '../../../src/image/registry.js';
import { findSequence, resolveImage, type SequenceRules } from '../../../src/image/sequence.js';

let dir: string;
let rules: SequenceRules;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sequence-'));
  await mkdir(join(dir, 'obj'));
  // sharp({ create: 64×48 }).tiff({ tile, 64×64 }) copied to every member name
  const member = join(dir, 'member.tif');
  await sharp({ create: { width: 64, height: 48, channels: 3, background: '#808080' } })
    .tiff({ tile: true, tileWidth: 64, tileHeight: 64 })
    .toFile(member);
  for (const name of [
    'vase_pyr_000_090.tif',
    'vase_pyr_010_090.tif',
    'vase_pyr_350_090.tif',
    'vase_pyr_000_100.tif',
    'vase_pyr_000_080.tif',
    'vase_pyr_020_100.tif',
  ]) {
    await copyFile(member, join(dir, 'obj', name));
  }
  // a second extension for another view does not join the sequence
  await writeFile(join(dir, 'obj', 'vase_pyr_030_090.jp2'), 'not this one');
  // two default views with different extensions: ambiguous, so no sequence
  await copyFile(member, join(dir, 'obj', 'twice_pyr_000_090.tif'));
  await copyFile(member, join(dir, 'obj', 'twice_pyr_000_090.tiff'));
  await copyFile(member, join(dir, 'plain.tif'));
  rules = { prefix: `${dir}/`, suffix: '', pattern: '_pyr_' };
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('findSequence', () => {
  it('lists the horizontal angles (…_090) and vertical angles (000_…) in order', async () => {
    expect(await findSequence('obj/vase', rules)).toEqual({ ext: 'tif', views: { horizontal: [0, 10, 350], vertical: [80, 90, 100] } });
  });

  it('is not a sequence without exactly one default view, or with the pattern off', async () => {
    expect(await findSequence('obj/twice', rules)).toBeNull();
    expect(await findSequence('obj/none', rules)).toBeNull();
    expect(await findSequence('obj/vase', { ...rules, pattern: '' })).toBeNull();
  });
});

describe('resolveImage', () => {
  it('serves (0, 90) by default and the requested member otherwise', async () => {
    const def = await resolveImage('obj/vase', undefined, rules);
    expect(def.file.path).toMatch(/vase_pyr_000_090\.tif$/);
    expect(def.views).toEqual({ horizontal: [0, 10, 350], vertical: [80, 90, 100] });
    expect((await resolveImage('obj/vase', { horizontal: 350, vertical: 90 }, rules)).file.path).toMatch(/vase_pyr_350_090\.tif$/);
    expect((await resolveImage('obj/vase', { horizontal: 20, vertical: 100 }, rules)).file.path).toMatch(/vase_pyr_020_100\.tif$/);
  });

  it('a member that does not exist is a 404 naming the view', async () => {
    const err = await resolveImage('obj/vase', { horizontal: 30, vertical: 90 }, rules).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageServerError);
    expect((err as ImageServerError).status).toBe(404);
    expect((err as ImageServerError).message).toBe('Image not found: obj/vase (view 30,90)');
    await expect(resolveImage('obj/vase', { horizontal: -10, vertical: 90 }, rules)).rejects.toThrow(/view -10,90/);
  });

  it('plain files are served as they are; the member is ignored', async () => {
    const r = await resolveImage('plain.tif', { horizontal: 10, vertical: 90 }, rules);
    expect(r.file.path).toMatch(/plain\.tif$/);
    expect(r.views).toBeUndefined();
  });

  it('member paths go through the same containment checks', async () => {
    await expect(resolveImage('../obj/vase', undefined, rules)).rejects.toMatchObject({ code: 'FORBIDDEN_PATH' });
    await expect(resolveImage('obj/missing', undefined, rules)).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: 'Image not found: obj/missing',
    });
  });

  it('the registry puts the views into ImageInfo', async () => {
    const images = new ImageRegistry(new DecoderRegistry(), 10);
    const r = await resolveImage('obj/vase', undefined, rules);
    const src = await images.get(r.file, r.views);
    expect(src.info.views).toEqual({ horizontal: [0, 10, 350], vertical: [80, 90, 100] });
    expect((await images.get(r.file)).info.views).toBeUndefined();
    await images.clear();
  });
});
