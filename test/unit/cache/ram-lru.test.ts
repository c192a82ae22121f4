import { describe, expect, it } from 'vitest';
import { cacheKey } from '../../../src/cache/key.js';
import { RamLruStore } from '../../../src/cache/ram-lru.js';

const entry = (n: number, fill = 1) => ({ contentType: 'image/jpeg', body: Buffer.alloc(n, fill) });

describe('RAM LRU store', () => {
  it('stays within its byte budget, evicting the least recently used', () => {
    const s = new RamLruStore(10_000);
    s.set('a', entry(2000));
    s.set('b', entry(2000));
    s.set('c', entry(2000));
    expect(s.get('a')?.body.length).toBe(2000); // a is now most recent
    s.set('d', entry(2000));
    s.set('e', entry(2000));
    expect(s.usedBytes).toBeLessThanOrEqual(10_000);
    expect(s.get('b')).toBeUndefined();
    expect(s.get('a')).toBeDefined();
    expect(s.get('e')).toBeDefined();
  });

  it('skips entries larger than a quarter of the budget', () => {
    const s = new RamLruStore(10_000);
    s.set('big', entry(5000));
    expect(s.get('big')).toBeUndefined();
    expect(s.usedBytes).toBe(0);
  });

  it('replaces an entry without double counting, and clears', () => {
    const s = new RamLruStore(100_000);
    s.set('a', entry(1000));
    const used = s.usedBytes;
    s.set('a', entry(1000, 2));
    expect(s.usedBytes).toBe(used);
    expect(s.get('a')?.body[0]).toBe(2);
    s.delete('a');
    expect(s.usedBytes).toBe(0);
    s.set('b', entry(10));
    s.clear();
    expect(s.size).toBe(0);
  });

  it('a zero budget caches nothing', () => {
    const s = new RamLruStore(0);
    s.set('a', entry(1));
    expect(s.get('a')).toBeUndefined();
  });
});

describe('cache keys', () => {
  const file = { path: '/images/a.tif', size: 100, mtimeMs: 1000 };
  it('are short, versioned and depend on file identity and request', () => {
    const k = cacheKey(file, 'L0:0,0,256,256');
    expect(k.length).toBeLessThan(250);
    expect(k).toMatch(/^iipsrv:\d+:/);
    expect(cacheKey(file, 'L0:0,0,256,256')).toBe(k);
    expect(cacheKey({ ...file, mtimeMs: 2000 }, 'L0:0,0,256,256')).not.toBe(k);
    expect(cacheKey({ ...file, size: 101 }, 'L0:0,0,256,256')).not.toBe(k);
    expect(cacheKey(file, 'L1:0,0,256,256')).not.toBe(k);
    expect(cacheKey(file, 'x'.repeat(5000)).length).toBeLessThan(250);
  });
});
