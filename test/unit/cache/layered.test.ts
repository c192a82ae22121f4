import { describe, expect, it } from 'vitest';
import { LayeredStore } from '../../../src/cache/layered.js';
import { RamLruStore } from '../../../src/cache/ram-lru.js';
import type { CacheEntry, CacheStore } from '../../../src/cache/store.js';

const e = (s: string): CacheEntry => ({ contentType: 'image/jpeg', body: Buffer.from(s) });

class Remote implements CacheStore {
  readonly name = 'memcached';
  readonly map = new Map<string, CacheEntry>();
  gets = 0;
  sets = 0;
  fail = false;
  hang = false;
  async get(key: string) {
    this.gets++;
    if (this.fail) throw new Error('down');
    return this.map.get(key);
  }
  set(key: string, v: CacheEntry): Promise<void> {
    this.sets++;
    if (this.hang) return new Promise(() => {});
    if (this.fail) return Promise.reject(new Error('down'));
    this.map.set(key, v);
    return Promise.resolve();
  }
  async delete(key: string) {
    this.map.delete(key);
  }
  async clear() {
    this.map.clear();
  }
}

describe('LayeredStore', () => {
  it('answers a RAM hit synchronously without asking the remote tier', () => {
    const ram = new RamLruStore(1 << 20);
    const remote = new Remote();
    const s = new LayeredStore([ram, remote]);
    ram.set('k', e('a'));
    const got = s.get('k');
    expect(got).not.toBeInstanceOf(Promise);
    expect((got as CacheEntry).body.toString()).toBe('a');
    expect(remote.gets).toBe(0);
    expect(s.stats.hits).toEqual({ ram: 1, memcached: 0 });
  });

  it('copies a remote hit into RAM, so the next lookup stays local', async () => {
    const ram = new RamLruStore(1 << 20);
    const remote = new Remote();
    remote.map.set('k', e('b'));
    const s = new LayeredStore([ram, remote]);
    expect((await s.get('k'))?.body.toString()).toBe('b');
    expect(ram.get('k')?.body.toString()).toBe('b');
    expect(s.stats.hits).toEqual({ ram: 0, memcached: 1 });
    expect(s.get('k')).not.toBeInstanceOf(Promise);
    expect(s.stats.hits.ram).toBe(1);
  });

  it('counts a miss in every tier once', async () => {
    const s = new LayeredStore([new RamLruStore(1 << 20), new Remote()]);
    expect(await s.get('nope')).toBeUndefined();
    expect(s.stats.misses).toBe(1);
  });

  it('treats a failing tier as a miss, never an error', async () => {
    const remote = new Remote();
    remote.fail = true;
    const s = new LayeredStore([new RamLruStore(1 << 20), remote]);
    expect(await s.get('k')).toBeUndefined();
    expect(s.stats).toMatchObject({ misses: 1, errors: 1 });
    expect(() => s.set('k', e('x'))).not.toThrow();
    await new Promise((r) => setImmediate(r));
    expect(s.stats.errors).toBe(2);
    // RAM still got the write.
    expect(s.get('k')).toBeDefined();
  });

  it('does not wait for a remote write that never finishes', () => {
    const remote = new Remote();
    remote.hang = true;
    const s = new LayeredStore([new RamLruStore(1 << 20), remote]);
    const r = s.set('k', e('x'));
    expect(r).toBeUndefined();
    expect(remote.sets).toBe(1);
  });

  it('survives a tier that throws synchronously', () => {
    const bad: CacheStore = {
      name: 'bad',
      get() {
        throw new Error('boom');
      },
      set() {
        throw new Error('boom');
      },
      delete() {},
      clear() {},
    };
    const s = new LayeredStore([bad]);
    expect(s.get('k')).toBeUndefined();
    expect(() => s.set('k', e('x'))).not.toThrow();
    expect(s.stats.errors).toBe(2);
  });
});
