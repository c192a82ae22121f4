// JPIP sessions and channels (ISO/IEC 15444-9 Annex B, reference 8.4): a session is bound to
// one target and holds the cache model shared by its channels; a channel is an opaque random id
// (cid), independent of TCP connections. Requests of one session run one at a time, in arrival
// order, with a short queue (503 beyond it). Sessions idle longer than the timeout are dropped;
// their number is bounded (503 for a new one when full) and so is the memory of all cache models
// (least recently used sessions are dropped first; their clients get 404 and open a new channel).
//
// With `--workers N` a channel's requests reach any worker, so sessions can be shared through a
// folder: each request loads the session's file when another worker changed it and writes it
// back (atomically) when done. Memory pressure then only unloads a session; the file keeps it.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ImageServerError } from '../../core/errors.js';
import { writeAtomically } from '../../jpeg2000/index-store.js';
import type { StreamType } from './fields.js';
import { CacheModel } from './model.js';

export interface Session {
  readonly id: string;
  /** The target as the client named it (percent-decoded); resolved again on every request. */
  readonly target: string;
  /** Target id of the file version the model describes. */
  tid: string;
  readonly model: CacheModel;
  readonly channels: Set<string>;
  /** Stream type granted at cnew, the default for the session's requests. */
  readonly type: StreamType;
  lastUsed: number;
  /** Tail of the queue of this session's requests. */
  tail: Promise<unknown>;
  queued: number;
  /** Shared mode: size and mtime of the session file as this process last wrote or read it. */
  stamp?: string;
  /** Shared mode: channels opened here and not saved yet (a reload must keep them). */
  readonly added: Set<string>;
  closed?: boolean;
}

export interface SessionOptions {
  readonly timeoutMs: number;
  readonly maxSessions: number;
  /** Bound on the estimated memory of all cache models. */
  readonly maxModelBytes: number;
  /** Requests that may wait behind the running one, per session. */
  readonly maxQueue?: number;
  /** Folder through which worker processes share sessions; undefined = this process only. */
  readonly shared?: string;
  readonly now?: () => number;
}

/** Session ids are 22 base64url characters; a channel id is its session's id plus 8 more. */
const SESSION_ID = 22;

interface SessionFile {
  readonly v: 1;
  readonly id: string;
  readonly target: string;
  readonly tid: string;
  readonly type: StreamType;
  readonly lastUsed: number;
  readonly channels: readonly string[];
  /** [csn, class, id, bytes] per model entry. */
  readonly model: ReadonlyArray<readonly [number, number, number, number]>;
}

export class SessionStore {
  private readonly sessions = new Map<string, Session>();
  private readonly channels = new Map<string, Session>();
  private readonly now: () => number;
  private lastSweep = 0;
  private lastFileSweep = 0;
  readonly stats = { opened: 0, expired: 0, evicted: 0, refused: 0, loaded: 0 };

  constructor(private readonly options: SessionOptions) {
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.sessions.size;
  }

  get channelCount(): number {
    return this.channels.size;
  }

  /** Estimated bytes of every cache model. */
  get modelBytes(): number {
    let n = 0;
    for (const s of this.sessions.values()) n += s.model.approxBytes;
    return n;
  }

  private newSession(id: string, target: string, tid: string, type: StreamType): Session {
    return {
      id,
      target,
      tid,
      model: new CacheModel(),
      channels: new Set(),
      added: new Set(),
      type,
      lastUsed: this.now(),
      tail: Promise.resolve(),
      queued: 0,
    };
  }

  private file(id: string): string {
    return path.join(this.options.shared!, `${id}.json`);
  }

  /** Drops idle sessions (at most once a second); in shared mode, also stale session files. */
  sweep(force = false): void {
    const now = this.now();
    if (!force && now - this.lastSweep < 1000) return;
    this.lastSweep = now;
    for (const s of this.sessions.values()) {
      if (s.queued === 0 && now - s.lastUsed > this.options.timeoutMs) {
        this.unload(s);
        this.stats.expired++;
      }
    }
    if (this.options.shared && now - this.lastFileSweep > 60_000) {
      this.lastFileSweep = now;
      void this.sweepFiles();
    }
  }

  private async sweepFiles(): Promise<void> {
    const dir = this.options.shared!;
    const names = await fs.readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      const st = await fs.stat(path.join(dir, name)).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > this.options.timeoutMs) await fs.rm(path.join(dir, name), { force: true });
    }
  }

  /** Forgets a session in this process (its file, if shared, stays). */
  private unload(s: Session): void {
    this.sessions.delete(s.id);
    for (const cid of s.channels) if (this.channels.get(cid) === s) this.channels.delete(cid);
  }

  /** Ends a session everywhere. */
  private async end(s: Session): Promise<void> {
    s.closed = true;
    this.unload(s);
    s.channels.clear();
    s.model.clear();
    if (this.options.shared) await fs.rm(this.file(s.id), { force: true });
  }

  /** A new session with its first channel. Throws UNAVAILABLE (503) when the limit is reached. */
  open(target: string, tid: string, type: StreamType): { session: Session; cid: string } {
    this.sweep(true);
    if (this.sessions.size >= this.options.maxSessions) {
      this.stats.refused++;
      throw new ImageServerError('UNAVAILABLE', `Too many JPIP sessions (${this.options.maxSessions}); try again later`);
    }
    const session = this.newSession(randomBytes(16).toString('base64url'), target, tid, type);
    this.sessions.set(session.id, session);
    this.stats.opened++;
    return { session, cid: this.addChannel(session) };
  }

  /** Another channel sharing the session's cache model. */
  addChannel(session: Session): string {
    const cid = session.id + randomBytes(6).toString('base64url');
    session.channels.add(cid);
    if (this.options.shared) session.added.add(cid);
    this.channels.set(cid, session);
    return cid;
  }

  /** The session of a channel, or undefined when the channel is unknown, closed or expired. */
  async channel(cid: string): Promise<Session | undefined> {
    this.sweep();
    let s = this.channels.get(cid);
    if (this.options.shared && cid.length > SESSION_ID) s = await this.refresh(cid.slice(0, SESSION_ID));
    if (!s || !s.channels.has(cid)) return undefined;
    if (s.queued === 0 && this.now() - s.lastUsed > this.options.timeoutMs) {
      await this.end(s);
      this.stats.expired++;
      return undefined;
    }
    return s;
  }

  /**
   * Shared mode: the session as its file has it, when another process changed the file since
   * this one last saw it; the local copy when not; undefined when the session has ended.
   */
  private async refresh(id: string): Promise<Session | undefined> {
    if (!/^[A-Za-z0-9_-]+$/.test(id)) return undefined;
    const local = this.sessions.get(id);
    const file = this.file(id);
    const st = await fs.stat(file).catch(() => undefined);
    if (!st) {
      // Ended elsewhere, or not written yet by this process (a request still running).
      if (local && local.queued === 0 && local.stamp !== undefined) this.unload(local);
      return local && local.stamp === undefined ? local : undefined;
    }
    const stamp = `${st.size}:${st.mtimeMs}`;
    if (local && local.stamp === stamp) return local;
    let data: SessionFile;
    try {
      data = JSON.parse(await fs.readFile(file, 'utf8')) as SessionFile;
    } catch {
      return local;
    }
    if (data.v !== 1 || data.id !== id) return local;
    const s = local ?? this.newSession(id, data.target, data.tid, data.type);
    s.tid = data.tid;
    s.lastUsed = Math.max(s.lastUsed, data.lastUsed);
    s.model.clear();
    for (const [csn, cls, bin, bytes] of data.model) s.model.add(csn, cls as 0, bin, bytes);
    for (const cid of s.channels) if (!data.channels.includes(cid)) this.channels.delete(cid);
    s.channels.clear();
    for (const cid of [...data.channels, ...s.added]) {
      s.channels.add(cid);
      this.channels.set(cid, s);
    }
    s.stamp = stamp;
    this.sessions.set(id, s);
    this.stats.loaded++;
    return s;
  }

  private async save(s: Session): Promise<void> {
    if (!this.options.shared || s.closed) return;
    const data: SessionFile = {
      v: 1,
      id: s.id,
      target: s.target,
      tid: s.tid,
      type: s.type,
      lastUsed: s.lastUsed,
      channels: [...s.channels],
      model: [...s.model.entries()],
    };
    const file = this.file(s.id);
    await fs.mkdir(this.options.shared, { recursive: true });
    await writeAtomically(file, Buffer.from(JSON.stringify(data)));
    const st = await fs.stat(file);
    s.stamp = `${st.size}:${st.mtimeMs}`;
    s.added.clear();
  }

  /** Closes channels (`*` = all channels of `session`); a session without channels ends. */
  async close(cids: readonly string[], session?: Session): Promise<void> {
    const list = cids.includes('*') ? [...(session?.channels ?? [])] : cids;
    for (const cid of list) {
      const s =
        this.channels.get(cid) ??
        (this.options.shared && cid.length > SESSION_ID ? await this.refresh(cid.slice(0, SESSION_ID)) : undefined);
      if (!s || !s.channels.has(cid)) continue;
      this.channels.delete(cid);
      s.channels.delete(cid);
      if (s.channels.size === 0) await this.end(s);
      else if (s.queued === 0) await this.save(s);
    }
  }

  /**
   * Runs `fn` when the session's earlier requests are done (with the session's latest state in
   * shared mode, saved afterwards). Throws UNAVAILABLE (503) when too many requests wait.
   */
  async run<T>(session: Session, fn: () => Promise<T>): Promise<T> {
    if (session.queued > (this.options.maxQueue ?? 4))
      throw new ImageServerError('UNAVAILABLE', 'JPIP channel busy: too many requests queued');
    session.queued++;
    const result = session.tail.then(async () => {
      if (this.options.shared && session.stamp !== undefined) await this.refresh(session.id);
      try {
        return await fn();
      } finally {
        session.lastUsed = this.now();
        await this.save(session);
      }
    });
    session.tail = result.catch(() => undefined);
    try {
      return await result;
    } finally {
      session.queued--;
      this.limitMemory(session);
    }
  }

  /** Unloads least recently used sessions (never `keep`) while the models use too much memory. */
  private limitMemory(keep: Session): void {
    let total = this.modelBytes;
    if (total <= this.options.maxModelBytes) return;
    const idle = [...this.sessions.values()].filter((s) => s !== keep && s.queued === 0).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const s of idle) {
      if (total <= this.options.maxModelBytes) break;
      total -= s.model.approxBytes;
      // Shared: the file keeps the session. Otherwise this ends it (its client gets 404).
      this.unload(s);
      if (!this.options.shared) {
        s.channels.clear();
        s.model.clear();
      }
      this.stats.evicted++;
    }
  }

  clear(): void {
    for (const s of [...this.sessions.values()]) this.unload(s);
  }
}
