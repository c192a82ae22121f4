// Memcached tier (memjs, binary protocol), shared by every iipsrv process and host that lists
// the same MEMCACHED_SERVERS. Whatever goes wrong with it is a miss, never an error: each
// operation has a hard deadline, a circuit breaker stops asking a dead or hung server for a
// while, and writes are fire-and-forget so they never delay a response.
//
// Value layout (so that a value written by another version is recognised, not misread):
//   "IIPC" | format version (1 byte) | content-type length (1 byte) | content type | body

import memjs from 'memjs';
import { CircuitBreaker, type BreakerState } from './breaker.js';
import type { CacheEntry, CacheStore } from './store.js';

export const VALUE_MAGIC = Buffer.from('IIPC', 'latin1');
export const VALUE_FORMAT = 1;
const HEADER_FIXED = VALUE_MAGIC.length + 2;
/** Memcached's per-item bookkeeping (item header, CAS, suffix) counted against its item limit. */
const ITEM_OVERHEAD = 96;

export interface MemcachedServer {
  readonly host: string;
  readonly port: number;
}

/**
 * `host`, `host:port`, `[v6]:port` or a bare IPv6 address, comma separated; blanks ignored.
 * Returns the servers understood and one message per entry that is not.
 */
export function parseMemcachedServers(raw: string): { servers: MemcachedServer[]; errors: string[] } {
  const servers: MemcachedServer[] = [];
  const errors: string[] = [];
  for (const part of raw.split(',')) {
    const s = part.trim();
    if (s === '') continue;
    let host = s;
    let port = 11211;
    const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
    const v4 = /^([^:\s]+):(\d+)$/.exec(s);
    if (v6) {
      host = v6[1];
      if (v6[2] !== undefined) port = Number(v6[2]);
    } else if (v4) {
      host = v4[1];
      port = Number(v4[2]);
    } else if (/^[0-9a-fA-F:.]*:[0-9a-fA-F:.]*:[0-9a-fA-F:.]*$/.test(s)) {
      host = s; // a bare IPv6 address: no port can be told apart, so the default
    } else if (/\s|:/.test(s)) {
      errors.push(`expected host[:port] but received "${s}"`);
      continue;
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      errors.push(`port out of range in "${s}"`);
      continue;
    }
    servers.push({ host, port });
  }
  return { servers, errors };
}

export function encodeValue(entry: CacheEntry): Buffer {
  const ct = Buffer.from(entry.contentType, 'latin1');
  if (ct.length > 255) throw new RangeError('content type longer than 255 bytes');
  const head = Buffer.allocUnsafe(HEADER_FIXED + ct.length);
  VALUE_MAGIC.copy(head, 0);
  head[4] = VALUE_FORMAT;
  head[5] = ct.length;
  ct.copy(head, HEADER_FIXED);
  return Buffer.concat([head, entry.body]);
}

/** undefined for anything that is not a value this format wrote (treated as a miss). */
export function decodeValue(value: Buffer): CacheEntry | undefined {
  if (value.length < HEADER_FIXED || !value.subarray(0, 4).equals(VALUE_MAGIC) || value[4] !== VALUE_FORMAT) return undefined;
  const end = HEADER_FIXED + value[5];
  if (value.length < end) return undefined;
  // A copy: memjs hands out a view of its receive buffer, which may hold other answers too,
  // and a view kept in the RAM tier would pin all of it while being counted as its own size.
  return { contentType: value.toString('latin1', HEADER_FIXED, end), body: Buffer.from(value.subarray(end)) };
}

export interface MemcachedOptions {
  readonly servers: readonly MemcachedServer[];
  /** Item expiry in seconds (MEMCACHED_TIMEOUT); 0 = never. */
  readonly expirySeconds: number;
  /** Memcached's item size limit (`-I`, 1 MB by default); larger values are not written. */
  readonly maxItemBytes: number;
  /** Hard deadline of one lookup in ms; writes, which nobody waits for, get at least 1 s. */
  readonly deadlineMs: number;
  /** First circuit-breaker cool-down in seconds; it doubles up to 30 s while probes fail. */
  readonly retrySeconds: number;
  /** Consecutive failures that open the circuit (default 3). */
  readonly failureThreshold?: number;
  readonly log?: (message: string) => void;
  readonly now?: () => number;
}

export interface MemcachedStats {
  hits: number;
  misses: number;
  /** Failed gets and sets: refused connections, timeouts, server errors. */
  errors: number;
  /** Operations that ran into the deadline. */
  timeouts: number;
  /** Operations not attempted because the circuit was open. */
  bypassed: number;
  /** Values not written because they exceed the item limit. */
  tooLarge: number;
  /** Values found that this format did not write. */
  foreign: number;
  writes: number;
  /** Writes not finished yet (fire-and-forget). */
  pendingWrites: number;
}

class DeadlineError extends Error {}

/** A promise that settles by the deadline at the latest; the late result is dropped. */
function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new DeadlineError(`no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/** memjs reports answers from a live server ("MemJS SET: Value too large") with this prefix. */
function serverAnswered(err: unknown): boolean {
  return err instanceof Error && /^MemJS (GET|SET):/.test(err.message);
}

const silent = { log() {} };

export class MemcachedStore implements CacheStore {
  readonly name = 'memcached';
  readonly stats: MemcachedStats = {
    hits: 0,
    misses: 0,
    errors: 0,
    timeouts: 0,
    bypassed: 0,
    tooLarge: 0,
    foreign: 0,
    writes: 0,
    pendingWrites: 0,
  };
  readonly breaker: CircuitBreaker;
  /** Lookups: a tight deadline, since a response waits for them. */
  private readonly reader: memjs.Client;
  /**
   * Writes and deletes on their own connections: nobody waits for them, so they get a longer
   * deadline (a 1 MB value on a busy host can take more than a lookup's), and a big value
   * being written never holds up the lookups queued behind it on one socket.
   */
  private readonly writer: memjs.Client;
  private readonly deadlineMs: number;
  private readonly writeDeadlineMs: number;

  constructor(private readonly o: MemcachedOptions) {
    if (o.servers.length === 0) throw new RangeError('Expected at least one memcached server but received none');
    this.deadlineMs = o.deadlineMs;
    this.writeDeadlineMs = Math.max(1000, o.deadlineMs);
    const client = (deadlineMs: number): memjs.Client => {
      const seconds = deadlineMs / 1000;
      // Its own timeouts are set to our deadline so that its socket is reset when ours fires.
      const serverOptions = { timeout: seconds, conntimeout: seconds * 2, keepAlive: true, keepAliveDelay: 30 };
      const servers = o.servers.map((s) => new memjs.Server(s.host, s.port, undefined, undefined, serverOptions));
      return new memjs.Client(servers, {
        // memjs reads `retries` with `||`, so 0 would become its default 2: 1 means one attempt.
        retries: 1,
        retry_delay: 0,
        expires: o.expirySeconds,
        // With several servers, skip a failed one for a while and use the next (keys move);
        // with one there is nothing to fail over to and the breaker below does the waiting.
        failover: o.servers.length > 1,
        failoverTime: Math.max(0.5, o.retrySeconds * 0.8),
        logger: silent,
      });
    };
    this.reader = client(this.deadlineMs);
    this.writer = client(this.writeDeadlineMs);
    this.breaker = new CircuitBreaker({
      threshold: o.failureThreshold ?? 3,
      baseMs: o.retrySeconds * 1000,
      maxMs: Math.max(o.retrySeconds * 1000, 30_000),
      now: o.now,
      onChange: (state, detail) => o.log?.(`memcached ${state === 'closed' ? 'is back' : 'unavailable'}: ${detail}`),
    });
  }

  get state(): BreakerState {
    return this.breaker.state;
  }

  private failed(err: unknown): void {
    this.stats.errors++;
    if (err instanceof DeadlineError) this.stats.timeouts++;
    // An error answer proves the server is there; only silence and broken sockets count.
    if (serverAnswered(err)) this.breaker.success();
    else this.breaker.failure(err instanceof Error ? err.message : String(err));
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    if (!this.breaker.allow()) {
      this.stats.bypassed++;
      return undefined;
    }
    try {
      const { value } = await withDeadline(this.reader.get(key), this.deadlineMs);
      this.breaker.success();
      if (!value) {
        this.stats.misses++;
        return undefined;
      }
      const entry = decodeValue(value);
      if (!entry) this.stats.foreign++;
      else this.stats.hits++;
      return entry;
    } catch (err) {
      this.failed(err);
      return undefined;
    }
  }

  /** Starts the write and returns at once; the outcome only feeds the counters and breaker. */
  set(key: string, entry: CacheEntry): void {
    void this.write(key, entry);
  }

  /** The write itself, for callers (tests) that want to know when it is done. */
  async write(key: string, entry: CacheEntry): Promise<boolean> {
    const value = encodeValue(entry);
    if (value.length + Buffer.byteLength(key) + ITEM_OVERHEAD > this.o.maxItemBytes) {
      this.stats.tooLarge++;
      return false;
    }
    if (!this.breaker.allow()) {
      this.stats.bypassed++;
      return false;
    }
    this.stats.pendingWrites++;
    try {
      await withDeadline(this.writer.set(key, value, { expires: this.o.expirySeconds }), this.writeDeadlineMs);
      this.breaker.success();
      this.stats.writes++;
      return true;
    } catch (err) {
      this.failed(err);
      return false;
    } finally {
      this.stats.pendingWrites--;
    }
  }

  async delete(key: string): Promise<void> {
    if (!this.breaker.allow()) return;
    try {
      await withDeadline(this.writer.delete(key), this.writeDeadlineMs);
      this.breaker.success();
    } catch (err) {
      this.failed(err);
    }
  }

  /**
   * Does nothing: the servers are shared with other iipsrv processes and hosts, and keys
   * carry the file's modification time, so a changed image is never served stale anyway.
   */
  clear(): void {}

  /** One round trip, for the start-up message: undefined when reachable, else the reason. */
  async probe(): Promise<string | undefined> {
    try {
      await withDeadline(this.reader.get('iipsrv:probe'), Math.max(this.deadlineMs, 500));
      return undefined;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  }

  close(): void {
    this.reader.close();
    this.writer.close();
  }
}
