// The CacheStore contract for the stores that need no server: RAM and layered tiers.

import { describe } from 'vitest';
import { LayeredStore } from '../../../src/cache/layered.js';
import { RamLruStore } from '../../../src/cache/ram-lru.js';
import type { CacheEntry, CacheStore } from '../../../src/cache/store.js';
import { cacheStoreContract } from './contract.js';

/** An asynchronous in-memory store, standing in for Memcached. */
class AsyncMapStore implements CacheStore {
  readonly name = 'remote';
  readonly map = new Map<string, CacheEntry>();
  async get(key: string) {
    return this.map.get(key);
  }
  async set(key: string, e: CacheEntry) {
    this.map.set(key, e);
  }
  async delete(key: string) {
    this.map.delete(key);
  }
  async clear() {
    this.map.clear();
  }
}

describe('RamLruStore contract', () => cacheStoreContract(() => new RamLruStore(1 << 20)));
describe('LayeredStore (RAM + async) contract', () =>
  cacheStoreContract(() => new LayeredStore([new RamLruStore(1 << 20), new AsyncMapStore()]), {
    settle: () => new Promise((r) => setImmediate(r)),
  }));
describe('LayeredStore (async only) contract', () =>
  cacheStoreContract(() => new LayeredStore([new AsyncMapStore()]), { settle: () => new Promise((r) => setImmediate(r)) }));
