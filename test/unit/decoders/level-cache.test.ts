// The decoded-level LRU shared by the JPEG 2000 and JPEG decoders: bounded in bytes, one load
// per key however many ask at once, and crops that never expose the cached samples.

import { describe, expect, it } from 'vitest';
import { cropLevel, LevelCache, type DecodedLevel } from '../../../decoders/level-cache.js';

const level = (w: number, h: number, fill = 0): DecodedLevel => ({
  data: Buffer.from(Array.from({ length: w * h * 3 }, (_, i) => (i + fill) % 256)),
  width: w,
  height: h,
  channels: 3,
  bits: 8,
});

describe('LevelCache', () => {
  it('loads a key once for concurrent callers and keeps it', async () => {
    const cache = new LevelCache(1 << 20);
    let loads = 0;
    const load = async (): Promise<DecodedLevel> => {
      loads++;
      return level(10, 10);
    };
    const [a, b] = await Promise.all([cache.getOrLoad('k', load), cache.getOrLoad('k', load)]);
    expect(a).toBe(b);
    await cache.getOrLoad('k', load);
    expect(loads).toBe(1);
  });

  it('stays within its byte budget and drops a closed image by prefix', async () => {
    const cache = new LevelCache(4 * 300);
    for (const k of ['a:0', 'a:1', 'b:0', 'b:1', 'c:0']) await cache.getOrLoad(k, async () => level(10, 10));
    expect(cache.size).toBeLessThanOrEqual(4);
    cache.clear('c:');
    let reloaded = 0;
    await cache.getOrLoad('c:0', async () => (reloaded++, level(10, 10)));
    expect(reloaded).toBe(1);
  });

  it('does not keep a failed load', async () => {
    const cache = new LevelCache(1 << 20);
    await expect(cache.getOrLoad('k', async () => Promise.reject(new Error('corrupt')))).rejects.toThrow('corrupt');
    expect(await cache.getOrLoad('k', async () => level(2, 2))).toMatchObject({ width: 2 });
  });
});

describe('cropLevel', () => {
  it('copies the requested rows and columns', () => {
    const l = level(4, 3);
    const out = cropLevel(l, 1, 1, 2, 2);
    expect([...out]).toEqual([...l.data.subarray(15, 21), ...l.data.subarray(27, 33)]);
  });

  it('never hands out the cached buffer, even for the whole level or full rows', () => {
    const l = level(4, 3);
    const before = Buffer.from(l.data);
    for (const [x, y, w, h] of [
      [0, 0, 4, 3],
      [0, 1, 4, 2],
      [1, 0, 3, 3],
    ]) {
      const out = cropLevel(l, x, y, w, h);
      out.fill(255);
    }
    expect(l.data.equals(before)).toBe(true);
  });
});

describe('LevelCache.admits', () => {
  it('says whether a level would be kept (a quarter of the budget at most), so decoders do not decode whole levels that cannot stay', async () => {
    const cache = new LevelCache(4 * 300);
    expect(cache.admits(300)).toBe(true);
    expect(cache.admits(301)).toBe(false);
    await cache.getOrLoad('big', async () => level(10, 11)); // 330 bytes: decoded, not kept
    expect(cache.size).toBe(0);
  });
});
