// In-RAM LRU of encoded responses, bounded in bytes (MAX_IMAGE_CACHE_SIZE), over ./byte-lru.ts.

import { ByteLru } from './byte-lru.js';
import type { CacheEntry, CacheStore } from './store.js';

/** Bookkeeping per entry besides its body: key, content type, Map slot. */
const ENTRY_OVERHEAD = 128;

export class RamLruStore implements CacheStore {
  readonly name = 'ram';
  private readonly lru: ByteLru<CacheEntry>;

  constructor(maxBytes: number) {
    this.lru = new ByteLru(maxBytes, (key, e) => e.body.length + key.length + e.contentType.length + ENTRY_OVERHEAD);
  }

  get size(): number {
    return this.lru.size;
  }

  get usedBytes(): number {
    return this.lru.usedBytes;
  }

  get(key: string): CacheEntry | undefined {
    return this.lru.get(key);
  }

  set(key: string, entry: CacheEntry): void {
    this.lru.set(key, entry);
  }

  delete(key: string): void {
    this.lru.delete(key);
  }

  clear(): void {
    this.lru.clear();
  }
}
