// Packet indexes of served files, built once and reused: in memory (LRU bounded by bytes) and
// on disk in a caching folder (JPIP_CACHE), so that a restart does not parse every packet
// header again. A persisted index names the file it describes (real path, size, mtime) and is
// rebuilt when any of those differ. Files are written to a temporary name and renamed, so a
// reader never sees half an index, and a broken or foreign index file counts as a miss.
// Each target also carries its box structure and metadata bins, which are cheap to re-read.

import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { readBoxStructure, type BoxStructure } from './boxes.js';
import { Codestream, type MainHeader } from './codestream.js';
import { corrupt, unsupported } from './errors.js';
import { sniffJpeg2000 } from './index.js';
import { metadataBins, type MetadataBin } from './metadata-bins.js';
import { buildPacketIndex, PACKET_INDEX_VERSION, PacketIndex, type PacketIndexData } from './packet-index.js';
import { FileSource, type ByteSource } from './source.js';

export interface FileIdentity {
  /** Real path. */
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
}

export interface CodestreamEntry {
  readonly csn: number;
  readonly index: PacketIndex;
  readonly header: MainHeader;
  /** Whether the index was loaded from the folder rather than built from the codestream. */
  readonly loaded: boolean;
}

/** What JPIP needs of one file: its kind, codestream locations and metadata bins. */
export interface Target {
  readonly file: FileIdentity;
  readonly kind: 'jp2' | 'j2k';
  readonly boxes?: BoxStructure;
  /** Where each codestream lies (one for JP2 and raw codestreams; several in a JPX). */
  readonly codestreams: ReadonlyArray<{ readonly offset: number; readonly length: number }>;
  readonly metadata: readonly MetadataBin[];
}

export interface IndexStoreOptions {
  /** Folder for persisted indexes; empty = memory only. */
  readonly dir: string;
  /** Memory for indexes kept in RAM. */
  readonly maxBytes?: number;
  /** Reports a persistence problem (once per kind); indexing goes on without it. */
  readonly log?: (message: string) => void;
}

const MAGIC = Buffer.from('IIPJPIX\n', 'latin1');
const TARGETS_MAX = 512;

/** A stable identity of the file version: the JPIP target id, and the index file's key. */
export function fileKey(f: FileIdentity): string {
  return createHash('sha1').update(`${f.path}\0${f.size}\0${f.mtimeMs}`).digest('hex');
}

interface Stored {
  readonly version: number;
  readonly file: FileIdentity;
  readonly csn: number;
  readonly data: Omit<PacketIndexData, 'offsets' | 'lengths'>;
  readonly slots: number;
}

/** index file layout: MAGIC | u32 JSON length | JSON | pad to 8 | f64 offsets | u32 lengths. */
export function serializeIndex(file: FileIdentity, csn: number, data: PacketIndexData): Buffer {
  const { offsets, lengths, ...rest } = data;
  const stored: Stored = { version: PACKET_INDEX_VERSION, file, csn, data: rest, slots: offsets.length };
  const json = Buffer.from(JSON.stringify(stored));
  const head = MAGIC.length + 4 + json.length;
  const pad = (8 - (head % 8)) % 8;
  const out = Buffer.alloc(head + pad + offsets.byteLength + lengths.byteLength);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(json.length, MAGIC.length);
  json.copy(out, MAGIC.length + 4);
  Buffer.from(offsets.buffer, offsets.byteOffset, offsets.byteLength).copy(out, head + pad);
  Buffer.from(lengths.buffer, lengths.byteOffset, lengths.byteLength).copy(out, head + pad + offsets.byteLength);
  return out;
}

/** The index in `buf` if it is a current-version index of exactly this file version and codestream. */
export function deserializeIndex(buf: Buffer, file: FileIdentity, csn: number): PacketIndexData | undefined {
  if (buf.length < MAGIC.length + 4 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const n = buf.readUInt32LE(MAGIC.length);
  const head = MAGIC.length + 4 + n;
  if (head > buf.length) return undefined;
  let stored: Stored;
  try {
    stored = JSON.parse(buf.toString('utf8', MAGIC.length + 4, head)) as Stored;
  } catch {
    return undefined;
  }
  if (stored.version !== PACKET_INDEX_VERSION || stored.csn !== csn) return undefined;
  if (stored.file?.path !== file.path || stored.file.size !== file.size || stored.file.mtimeMs !== file.mtimeMs) return undefined;
  const start = head + ((8 - (head % 8)) % 8);
  if (buf.length !== start + stored.slots * 12) return undefined;
  // Copy into fresh, aligned arrays (the file buffer may be a slice of a pool).
  const offsets = new Float64Array(stored.slots);
  const lengths = new Uint32Array(stored.slots);
  Buffer.from(offsets.buffer).set(buf.subarray(start, start + stored.slots * 8));
  Buffer.from(lengths.buffer).set(buf.subarray(start + stored.slots * 8));
  return { ...stored.data, offsets, lengths };
}

/** Writes `data` to `file` atomically: a unique temporary name in the same folder, then rename. */
export async function writeAtomically(file: string, data: Buffer): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}

export class IndexStore {
  private readonly targets = new Map<string, Promise<Target>>();
  private readonly entries = new Map<string, { entry: Promise<CodestreamEntry>; bytes: number }>();
  private bytes = 0;
  private readonly maxBytes: number;
  private readonly reported = new Set<string>();
  /** Counters for tests and metrics. */
  readonly stats = { built: 0, loaded: 0, persisted: 0 };

  constructor(private readonly options: IndexStoreOptions) {
    this.maxBytes = options.maxBytes ?? 256 << 20;
  }

  private report(kind: string, message: string): void {
    if (this.reported.has(kind)) return;
    this.reported.add(kind);
    this.options.log?.(message);
  }

  /** The target's structure (boxes, codestream locations, metadata bins); memoised by file version. */
  target(file: FileIdentity): Promise<Target> {
    const key = fileKey(file);
    let t = this.targets.get(key);
    if (t) {
      // LRU: move to the end.
      this.targets.delete(key);
      this.targets.set(key, t);
      return t;
    }
    t = this.readTarget(file);
    t.catch(() => this.targets.delete(key));
    if (this.targets.size >= TARGETS_MAX) this.targets.delete(this.targets.keys().next().value!);
    this.targets.set(key, t);
    return t;
  }

  private async readTarget(file: FileIdentity): Promise<Target> {
    const src = await FileSource.open(file.path);
    try {
      const sniffed = sniffJpeg2000(await src.read(0, 12));
      if (sniffed === null) throw unsupported('not a JP2, JPX or J2K file');
      if (sniffed === 'j2k') {
        return { file, kind: 'j2k', codestreams: [{ offset: 0, length: src.size }], metadata: await metadataBins(src, undefined) };
      }
      const boxes = await readBoxStructure(src);
      const codestreams = boxes.codestreams.map((b) => ({ offset: b.offset + b.headerLength, length: b.length - b.headerLength }));
      if (codestreams.length === 0) throw corrupt('no contiguous codestream box (jp2c)');
      return { file, kind: 'jp2', boxes, codestreams, metadata: await metadataBins(src, boxes) };
    } finally {
      await src.close();
    }
  }

  /** The packet index and main header of codestream `csn` of the file. */
  codestream(target: Target, csn: number): Promise<CodestreamEntry> {
    const key = `${fileKey(target.file)}:${csn}`;
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit.entry;
    }
    // Memory is counted when the index is known; a placeholder amount until then.
    const slot = { entry: this.loadOrBuild(target, csn), bytes: 4096 };
    this.entries.set(key, slot);
    this.bytes += slot.bytes;
    slot.entry.then(
      (e) => {
        if (this.entries.get(key) !== slot) return;
        const extra = e.index.data.offsets.byteLength + e.index.data.lengths.byteLength;
        slot.bytes += extra;
        this.bytes += extra;
        this.evict();
      },
      () => {
        if (this.entries.get(key) !== slot) return;
        this.entries.delete(key);
        this.bytes -= slot.bytes;
      },
    );
    return slot.entry;
  }

  private evict(): void {
    for (const [key, v] of this.entries) {
      if (this.bytes <= this.maxBytes || this.entries.size <= 1) break;
      this.entries.delete(key);
      this.bytes -= v.bytes;
    }
  }

  private indexFile(target: Target, csn: number): string | undefined {
    if (!this.options.dir) return undefined;
    const name = createHash('sha1').update(target.file.path).digest('hex');
    return path.join(this.options.dir, `${name}-${csn}.jpix`);
  }

  private async loadOrBuild(target: Target, csn: number): Promise<CodestreamEntry> {
    const where = target.codestreams[csn];
    if (!where) throw new RangeError(`codestream ${csn} of ${target.codestreams.length}`);
    const file = this.indexFile(target, csn);
    const src: ByteSource = await FileSource.open(target.file.path);
    try {
      const cs = await Codestream.read(src, where.offset, where.length);
      if (file) {
        const buf = await fs.readFile(file).catch(() => undefined);
        const data = buf && deserializeIndex(buf, target.file, csn);
        if (data) {
          this.stats.loaded++;
          return { csn, index: new PacketIndex(data, cs.siz), header: cs.header, loaded: true };
        }
      }
      const data = await buildPacketIndex(cs);
      this.stats.built++;
      if (file) {
        try {
          await fs.mkdir(path.dirname(file), { recursive: true });
          await writeAtomically(file, serializeIndex(target.file, csn, data));
          this.stats.persisted++;
        } catch (err) {
          this.report(
            'write',
            `JPIP_CACHE: cannot write packet indexes to ${this.options.dir} (${(err as Error).message}); indexes stay in memory`,
          );
        }
      }
      return { csn, index: new PacketIndex(data, cs.siz), header: cs.header, loaded: false };
    } finally {
      await src.close();
    }
  }

  /** Forgets everything held in memory (persisted indexes stay). */
  clear(): void {
    this.targets.clear();
    this.entries.clear();
    this.bytes = 0;
  }
}
