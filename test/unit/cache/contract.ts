// One suite for every CacheStore (RAM, Memcached, layered), as undici does for its cache
// stores: whatever answers synchronously or not, the observable behaviour is the same.

import { expect, it } from 'vitest';
import type { CacheEntry, CacheStore } from '../../../src/cache/store.js';

let n = 0;
/** Keys unique per run, so a shared Memcached never answers from an earlier run. */
export const uniqueKey = (): string => `iipsrv:test:${process.pid}:${Date.now()}:${++n}`;

export function cacheStoreContract(make: () => CacheStore, options: { settle?: () => Promise<void> } = {}): void {
  const settle = options.settle ?? (() => Promise.resolve());
  const entry = (body: string, contentType = 'image/jpeg'): CacheEntry => ({ contentType, body: Buffer.from(body) });

  it('answers a miss with undefined', async () => {
    expect(await make().get(uniqueKey())).toBeUndefined();
  });

  it('returns what was set: body bytes and content type', async () => {
    const s = make();
    const k = uniqueKey();
    const body = Buffer.from([0, 1, 2, 255, 254, 0x0d, 0x0a]);
    await s.set(k, { contentType: 'image/png', body });
    await settle();
    const got = await s.get(k);
    expect(got?.contentType).toBe('image/png');
    expect(Buffer.compare(got!.body, body)).toBe(0);
  });

  it('replaces an entry set twice', async () => {
    const s = make();
    const k = uniqueKey();
    await s.set(k, entry('one'));
    await settle();
    await s.set(k, entry('two', 'image/webp'));
    await settle();
    const got = await s.get(k);
    expect(got?.body.toString()).toBe('two');
    expect(got?.contentType).toBe('image/webp');
  });

  it('forgets a deleted entry', async () => {
    const s = make();
    const k = uniqueKey();
    await s.set(k, entry('x'));
    await settle();
    await s.delete(k);
    expect(await s.get(k)).toBeUndefined();
  });

  it('keeps an empty body', async () => {
    const s = make();
    const k = uniqueKey();
    await s.set(k, entry(''));
    await settle();
    expect((await s.get(k))?.body.length).toBe(0);
  });
}
