// A least-recently-used map bounded in bytes: the one eviction policy behind the encoded
// response cache (./ram-lru.ts) and the decoded-samples cache (decoders/level-cache.ts). A Map
// keeps insertion order, so re-inserting on a hit makes the first key the least recently used.
// An entry costing more than a quarter of the budget is not kept: one item must not flush
// everything else.

export class ByteLru<V> {
  private readonly map = new Map<string, V>();
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    /** What an entry costs against the budget. */
    private readonly cost: (key: string, value: V) => number,
  ) {}

  get size(): number {
    return this.map.size;
  }

  get usedBytes(): number {
    return this.bytes;
  }

  /** Whether an entry of this cost would be kept. */
  admits(cost: number): boolean {
    return cost <= this.maxBytes / 4;
  }

  /** The value of `key`, now the most recently used. */
  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  /** Whether `key` is held (without making it recently used). */
  has(key: string): boolean {
    return this.map.has(key);
  }

  set(key: string, value: V): void {
    const cost = this.cost(key, value);
    if (!this.admits(cost)) return;
    this.delete(key);
    this.map.set(key, value);
    this.bytes += cost;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.maxBytes) break;
      this.map.delete(k);
      this.bytes -= this.cost(k, v);
    }
  }

  delete(key: string): void {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.bytes -= this.cost(key, v);
    }
  }

  /** Drops every key starting with `prefix` (all by default). */
  clear(prefix = ''): void {
    if (prefix === '') {
      this.map.clear();
      this.bytes = 0;
      return;
    }
    for (const [k, v] of this.map) {
      if (!k.startsWith(prefix)) continue;
      this.map.delete(k);
      this.bytes -= this.cost(k, v);
    }
  }
}
