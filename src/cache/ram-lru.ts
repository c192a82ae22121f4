// In-RAM LRU of encoded responses, bounded in bytes (MAX_IMAGE_CACHE_SIZE). A Map keeps
// insertion order, so re-inserting on a hit makes the first key the least recently used.

import type { CacheEntry, CacheStore } from './store.js';

/** Bookkeeping per entry besides its body: key, content type, Map slot. */
const ENTRY_OVERHEAD = 128;

export class RamLruStore implements CacheStore {
  readonly name = 'ram';
  private readonly map = new Map<string, CacheEntry>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get size(): number {
    return this.map.size;
  }

  get usedBytes(): number {
    return this.bytes;
  }

  private cost(key: string, e: CacheEntry): number {
    return e.body.length + key.length + e.contentType.length + ENTRY_OVERHEAD;
  }

  get(key: string): CacheEntry | undefined {
    const e = this.map.get(key);
    if (e) {
      this.map.delete(key);
      this.map.set(key, e);
    }
    return e;
  }

  set(key: string, entry: CacheEntry): void {
    const cost = this.cost(key, entry);
    // An entry larger than a quarter of the budget would flush everything else for one item.
    if (cost > this.maxBytes / 4) return;
    this.delete(key);
    this.map.set(key, entry);
    this.bytes += cost;
    for (const [k, e] of this.map) {
      if (this.bytes <= this.maxBytes) break;
      this.map.delete(k);
      this.bytes -= this.cost(k, e);
    }
  }

  delete(key: string): void {
    const e = this.map.get(key);
    if (e) {
      this.map.delete(key);
      this.bytes -= this.cost(key, e);
    }
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }
}
