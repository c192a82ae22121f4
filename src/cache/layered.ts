// Tiers in order (RAM, then Memcached): a lookup asks each until one answers, a hit in a
// lower tier is copied into the tiers above it, and a write goes to all of them. A tier that
// throws or rejects counts as a miss. Answers from the first tier stay synchronous, so a RAM
// hit costs no extra turn of the event loop.

import type { CacheEntry, CacheStore } from './store.js';

export interface LayeredStats {
  /** Hits by tier name, e.g. { ram: 10, memcached: 3 }. */
  readonly hits: Record<string, number>;
  misses: number;
  /** Tier failures swallowed as misses. */
  errors: number;
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | undefined)?.then === 'function';
}

export class LayeredStore implements CacheStore {
  readonly name: string;
  readonly stats: LayeredStats;

  constructor(readonly tiers: readonly CacheStore[]) {
    if (tiers.length === 0) throw new RangeError('Expected at least one cache tier but received none');
    this.name = tiers.map((t) => t.name).join('+');
    this.stats = { hits: Object.fromEntries(tiers.map((t) => [t.name, 0])), misses: 0, errors: 0 };
  }

  get(key: string): CacheEntry | undefined | Promise<CacheEntry | undefined> {
    return this.lookup(key, 0);
  }

  private lookup(key: string, from: number): CacheEntry | undefined | Promise<CacheEntry | undefined> {
    for (let i = from; i < this.tiers.length; i++) {
      let answer: CacheEntry | undefined | Promise<CacheEntry | undefined>;
      try {
        answer = this.tiers[i].get(key);
      } catch {
        this.stats.errors++;
        continue;
      }
      if (isPromise(answer)) {
        return answer.then(
          (e) => (e ? this.found(key, i, e) : this.lookup(key, i + 1)),
          () => {
            this.stats.errors++;
            return this.lookup(key, i + 1);
          },
        );
      }
      if (answer) return this.found(key, i, answer);
    }
    this.stats.misses++;
    return undefined;
  }

  private found(key: string, tier: number, entry: CacheEntry): CacheEntry {
    this.stats.hits[this.tiers[tier].name]++;
    for (let i = 0; i < tier; i++) this.write(this.tiers[i], key, entry);
    return entry;
  }

  /** Never waits for a slow tier: asynchronous writes are started and left to finish. */
  set(key: string, entry: CacheEntry): void {
    for (const t of this.tiers) this.write(t, key, entry);
  }

  private write(tier: CacheStore, key: string, entry: CacheEntry): void {
    try {
      const r = tier.set(key, entry);
      if (isPromise(r)) r.catch(() => this.stats.errors++);
    } catch {
      this.stats.errors++;
    }
  }

  async delete(key: string): Promise<void> {
    await Promise.all(this.tiers.map(async (t) => t.delete(key)));
  }

  async clear(): Promise<void> {
    await Promise.all(this.tiers.map(async (t) => t.clear()));
  }
}
