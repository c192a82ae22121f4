// The JPIP server (ISO/IEC 15444-9 over HTTP): after the handler recognises a JPIP request
// (`isJpipRequest`), this module takes its own road: target resolution (through the same path
// containment as every image), sessions and channels, the cache model, the view-window, and a
// JPP-stream (precinct bins) or JPT-stream (tile bins) body built from the packet index, ending
// with an EOR message. Unlike the pixel protocols it does I/O (index and codestream reads), so it
// lives beside them rather than behind the Protocol interface. Errors are ImageServerErrors; the
// handler turns them into responses.

import cluster from 'node:cluster';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../../config.js';
import { ImageServerError } from '../../core/errors.js';
import { isIipCommand } from '../iip-commands.js';
import type { ServerRequest } from '../../handler-types.js';
import { resolveWithFallback, type PathRules } from '../../image/resolve.js';
import { LOG, type Logger } from '../../log.js';
import { fileKey, IndexStore, type CodestreamEntry, type Target } from '../../jpeg2000/index-store.js';
import type { MetadataBin } from '../../jpeg2000/metadata-bins.js';
import { precinctOfBin } from '../../jpeg2000/precincts.js';
import { FileSource } from '../../jpeg2000/source.js';
import { precinctDataBinId } from '../../jpeg2000/geometry.js';
import { protocolByName } from '../index.js';
import { inRanges, parseJpipRequest, type JpipRequest, type Range, type StreamType } from './fields.js';
import { BIN_CLASS, EOR, MessageWriter, type BinClass } from './messages.js';
import { CacheModel, parseModel, WHOLE, type ModelItem } from './model.js';
import { Placements, rangePieces, slicePieces, type PieceSink } from './reads.js';
import { SessionStore, type Session } from './sessions.js';
import { resolveWindow, windowContent, type WindowContent } from './window.js';

export interface JpipSettings {
  /** URL path prefix routed to JPIP (`/jpip/<target>`); empty disables path routing. */
  readonly prefix: string;
  /** Folder for persisted packet indexes; empty = memory only. */
  readonly cacheDir: string;
  readonly sessionTimeoutMs: number;
  readonly maxSessions: number;
  readonly maxModelBytes: number;
  /** Largest response body; a response cut there ends with EOR 7 (response limit). */
  readonly maxResponseBytes: number;
  /** Folder through which worker processes share sessions (with --workers N); undefined = none. */
  readonly sharedSessions?: string;
}

/** The JPIP_* settings of the configuration. */
export function jpipSettings(config: Config): JpipSettings {
  return {
    prefix: config.jpipPrefix,
    cacheDir: config.jpipCache,
    sessionTimeoutMs: config.jpipSessionTimeout * 1000,
    maxSessions: config.jpipMaxSessions,
    maxModelBytes: Math.floor(config.jpipMaxModelMb * 1048576),
    maxResponseBytes: Math.floor(config.jpipMaxResponseMb * 1048576),
    // A channel's requests may reach any worker of `--workers N`: they share sessions on disk.
    ...(cluster.isWorker ? { sharedSessions: path.join(config.jpipCache || path.join(os.tmpdir(), 'iipsrv-jpip'), 'sessions') } : {}),
  };
}

export interface JpipResponse {
  readonly status: number;
  readonly headers: Array<[string, string]>;
  readonly body: Buffer;
  /** For the request log. */
  readonly note?: string;
}

/** Response headers a browser client must be able to read (CORS). */
export const JPIP_EXPOSED_HEADERS =
  'JPIP-cnew, JPIP-tid, JPIP-qid, JPIP-fsiz, JPIP-roff, JPIP-rsiz, JPIP-len, JPIP-layers, JPIP-comps, JPIP-quality, JPIP-stream, JPIP-type';

/** Fields that only JPIP uses; one of them (and no other protocol's command) makes a request JPIP. */
const JPIP_KEYS = new Set(['target', 'tid', 'cid', 'cnew', 'cclose']);

const pathOf = (req: ServerRequest): string => req.requestUri.split('?')[0];

/** The request's field string: the query, then a form-encoded POST body (clients POST `model`). */
export function jpipFieldString(req: ServerRequest): string {
  if (req.method !== 'POST' || req.body.length === 0) return req.query;
  const body = req.body.toString('latin1').trim();
  return req.query === '' ? body : `${req.query}&${body}`;
}

/**
 * The routing rule: a request is JPIP when its path is `/<prefix>` or under `/<prefix>/`, or when
 * its fields (query or POST body) hold target, tid, cid, cnew or cclose and no command of another
 * protocol (IIP FIF/OBJ/CVT/..., IIIF, Zoomify, DeepZoom).
 */
export function isJpipRequest(req: ServerRequest, prefix: string): boolean {
  const p = pathOf(req);
  if (prefix !== '' && (p === `/${prefix}` || p.startsWith(`/${prefix}/`))) return true;
  let jpip = false;
  for (const token of jpipFieldString(req).split('&')) {
    const eq = token.indexOf('=');
    const name = eq < 0 ? token : token.slice(0, eq);
    if (JPIP_KEYS.has(name)) jpip = true;
    // A command of another protocol (IIP and the ones it delegates to) wins.
    else if (isIipCommand(name) || protocolByName(name)) return false;
  }
  return jpip;
}

/** Expands ranges over [0, count). */
function expand(ranges: readonly Range[] | undefined, count: number): number[] {
  const out: number[] = [];
  for (let n = 0; n < count; n++) if (!ranges || inRanges(ranges, n)) out.push(n);
  return out;
}

function formatRanges(list: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < list.length;) {
    let j = i;
    while (j + 1 < list.length && list[j + 1] === list[j] + 1) j++;
    parts.push(j > i ? `${list[i]}-${list[j]}` : `${list[i]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** Why the writer stopped. */
class Stop extends Error {}

/**
 * One response being assembled: the model as the client will see it, the writer, and where
 * each message body's bytes lie in the file (read together, straight into place, at the end).
 */
class Emitter implements PieceSink {
  /** What this response sends (WHOLE once complete), applied to the model at the end. */
  readonly sent = new CacheModel();
  private readonly placements = new Placements();
  /** Where the next piece of the current body goes in the writer's buffer. */
  private at = 0;

  constructor(
    readonly writer: MessageWriter,
    private readonly model: CacheModel,
  ) {}

  held(cls: BinClass, csn: number, id: number): number {
    return Math.max(this.model.held(csn, cls, id), this.sent.held(csn, cls, id));
  }

  file(offset: number, length: number): void {
    this.placements.push(offset, length, this.at);
    this.at += length;
  }

  bytes(b: Buffer): void {
    b.copy(this.writer.buffer, this.at);
    this.at += b.length;
  }

  /**
   * Sends what the client lacks of bytes [0, upTo) of a bin of `total` bytes (with the
   * completeness bit when upTo reaches the end). `locate` feeds the pieces holding bytes
   * [from, to) of the bin to the sink. Throws Stop when the budget is used up.
   */
  send(
    cls: BinClass,
    csn: number,
    id: number,
    total: number,
    upTo: number,
    locate: (from: number, to: number, sink: PieceSink) => void,
  ): void {
    const held = this.held(cls, csn, id);
    if (held >= WHOLE) return;
    const from = Math.min(held, total);
    const complete = upTo >= total;
    if (from >= upTo && !complete) return;
    const length = Math.max(0, upTo - from);
    const room = this.writer.room(cls, csn, id, from, length);
    if (room < 0) throw new Stop();
    const last = room === length && complete;
    this.at = this.writer.add(cls, csn, id, from, room, last);
    const end = this.at + room;
    if (room > 0) locate(from, from + room, this);
    if (this.at !== end)
      throw new ImageServerError('INTERNAL', undefined, `data-bin ${cls}/${id}: pieces cover ${this.at - end + room} of ${room} bytes`);
    this.sent.add(csn, cls, id, last ? WHOLE : from + room);
    if (room < length) throw new Stop();
  }

  /** Reads every body from the file into the writer's buffer. */
  async readBodies(src: FileSource): Promise<void> {
    if (!(await this.placements.readInto(src, this.writer.buffer))) {
      throw new ImageServerError('CORRUPT_IMAGE', 'Corrupt JPEG 2000 file: it ends before a data-bin does');
    }
  }

  commit(): void {
    for (const [csn, cls, id, bytes] of this.sent.entries()) this.model.add(csn, cls, id, bytes);
  }
}

export class JpipService {
  readonly sessions: SessionStore;
  readonly indexes: IndexStore;
  readonly stats = { requests: 0, bytes: 0 };
  private readonly rules: PathRules;

  constructor(
    private readonly config: Config,
    logger: Logger,
    private readonly settings: JpipSettings = jpipSettings(config),
    /** The packet indexes, shared with the JPEG 2000 decoder (a new store when not given). */
    indexes?: IndexStore,
  ) {
    this.rules = { prefix: config.filesystemPrefix, suffix: config.filesystemSuffix };
    this.sessions = new SessionStore({
      timeoutMs: settings.sessionTimeoutMs,
      maxSessions: settings.maxSessions,
      maxModelBytes: settings.maxModelBytes,
      ...(settings.sharedSessions ? { shared: settings.sharedSessions } : {}),
    });
    this.indexes = indexes ?? new IndexStore({ dir: settings.cacheDir, log: (m) => logger.log(LOG.ERROR, m) });
  }

  matches(req: ServerRequest): boolean {
    return isJpipRequest(req, this.settings.prefix);
  }

  /** The target named by the URL path: after `/<prefix>/`, or the whole path. */
  private targetFromPath(req: ServerRequest): string | undefined {
    const p = pathOf(req);
    const { prefix } = this.settings;
    let rest: string;
    if (prefix !== '' && (p === `/${prefix}` || p.startsWith(`/${prefix}/`))) rest = p.slice(prefix.length + 2);
    else rest = p.replace(/^\/+/, '');
    if (rest === '') return undefined;
    try {
      return decodeURIComponent(rest);
    } catch {
      throw new ImageServerError('BAD_REQUEST', `Expected a percent-encoded target in the path but received "${rest}"`);
    }
  }

  /** `path=` of JPIP-cnew: where the client sends the channel's later requests. */
  private channelPath(req: ServerRequest): string {
    const p = pathOf(req).replace(/^\/+/, '');
    return (p === '' ? this.settings.prefix || 'jpip' : p).replace(/,/g, '%2C');
  }

  async handle(req: ServerRequest, head: boolean): Promise<JpipResponse> {
    this.stats.requests++;
    const q = parseJpipRequest(jpipFieldString(req));
    if (q.subtarget !== undefined) throw new ImageServerError('NOT_IMPLEMENTED', 'JPIP subtarget is not supported');
    const headers: Array<[string, string]> = [];
    let session: Session | undefined;
    if (q.cid !== undefined) {
      session = await this.sessions.channel(q.cid);
      if (!session) throw new ImageServerError('NOT_FOUND', `Unknown JPIP channel: ${q.cid.slice(0, 64)}`);
      if (q.target !== undefined && q.target !== session.target) {
        throw new ImageServerError(
          'BAD_REQUEST',
          `Channel ${q.cid} belongs to another target; open a new channel (cnew) for "${q.target}"`,
        );
      }
    }
    const identifier = session?.target ?? q.target ?? this.targetFromPath(req);
    if (identifier === undefined) {
      if (q.cclose) {
        // Closing channels needs no target.
        await this.sessions.close(q.cclose);
        return this.reply(headers, q.type ?? 'jpp-stream', Buffer.from([0, EOR.WINDOW_DONE, 0]), head);
      }
      throw new ImageServerError('BAD_REQUEST', 'A JPIP request needs a target (target= or the URL path) or a channel (cid=)');
    }
    const file = await resolveWithFallback(identifier, this.rules);
    const tid = fileKey(file).slice(0, 24);
    const target = await this.indexes.target(file);
    // `http-tcp` is answered with an `http` channel; a list with neither gets a stateless answer.
    const grant = q.cnew?.some((t) => t === 'http' || t === 'http-tcp') ?? false;
    if (grant) {
      let cid: string;
      if (session) cid = this.sessions.addChannel(session);
      else ({ session, cid } = this.sessions.open(identifier, tid, q.type ?? 'jpp-stream'));
      headers.push(['JPIP-cnew', `cid=${cid},path=${this.channelPath(req)},transport=http`]);
    }
    headers.push(['JPIP-tid', tid]);
    if (q.qid !== undefined) headers.push(['JPIP-qid', q.qid]);
    const type = q.type ?? session?.type ?? 'jpp-stream';
    const work = async (): Promise<JpipResponse> => {
      const body = await this.respond(q, target, tid, session, type, headers, head);
      if (q.cclose) await this.sessions.close(q.cclose, session);
      return this.reply(headers, type, body, head);
    };
    return session ? this.sessions.run(session, work) : work();
  }

  private reply(headers: Array<[string, string]>, type: StreamType, body: Buffer, head: boolean): JpipResponse {
    this.stats.bytes += head ? 0 : body.length;
    const all: Array<[string, string]> = [['Content-Type', `image/${type}`], ['Cache-Control', 'no-cache'], ...headers];
    if (this.config.cors) all.push(['Access-Control-Expose-Headers', JPIP_EXPOSED_HEADERS]);
    return { status: 200, headers: all, body };
  }

  /** Builds the response body for a request whose target is known. */
  private async respond(
    q: JpipRequest,
    target: Target,
    tid: string,
    session: Session | undefined,
    type: StreamType,
    headers: Array<[string, string]>,
    head: boolean,
  ): Promise<Buffer> {
    const model = session?.model ?? new CacheModel();
    // The file changed since the session's model was made: the client's cache is stale.
    if (session && session.tid !== tid) {
      session.model.clear();
      session.tid = tid;
    }
    // The client's cache (and its `model`) describes another version of the target.
    const staleClient = q.tid !== undefined && q.tid !== '0' && q.tid !== tid;
    if (staleClient) model.clear();

    const count = target.codestreams.length;
    const streams = expand(q.stream, count);
    if (streams.length === 0)
      throw new ImageServerError('BAD_REQUEST', `The target has ${count} codestream${count === 1 ? '' : 's'}; none matches stream`);
    if (q.stream && q.stream.some((r) => r.to >= count)) headers.push(['JPIP-stream', formatRanges(streams)]);
    const entries = await Promise.all(streams.map((csn) => this.indexes.codestream(target, csn)));

    if (!staleClient) {
      if (q.model) await this.applyModel(parseModel('model', q.model), model, target, entries, false);
      if (q.need) await this.applyModel(parseModel('need', q.need), model, target, entries, true);
    }

    let len = q.len;
    if (len !== undefined && len > 0 && len < 64) {
      // Too small to carry a message header and some data: progress would stall.
      len = 64;
      headers.push(['JPIP-len', String(len)]);
    }
    const cap = this.settings.maxResponseBytes;
    const writer = new MessageWriter(Math.min(len ?? Infinity, cap));
    const emit = new Emitter(writer, model);
    let reason: number = EOR.WINDOW_DONE;
    try {
      const closeOnly = q.cclose !== undefined && !q.fsiz && !q.metareq;
      if (!closeOnly) reason = this.emitAll(q, target, entries, type, emit, headers);
    } catch (err) {
      if (!(err instanceof Stop)) throw err;
      reason = len !== undefined && len <= cap ? EOR.BYTE_LIMIT : EOR.RESPONSE_LIMIT;
    }
    if (!head) {
      const src = await FileSource.open(target.file.path);
      try {
        await emit.readBodies(src);
      } finally {
        await src.close();
      }
    }
    if (!head) emit.commit();
    // HEAD: the same headers and length; the body (not read from the file) is dropped.
    return writer.finish(reason);
  }

  /**
   * Emits, in order: metadata bin 0 (and requested metadata bins), the main headers, then per
   * codestream the tile headers and precinct bins of the window from the lowest resolution up,
   * layer by layer within a resolution (or the tile bins, for JPT). Returns the EOR reason:
   * image done when every bin of every codestream has been delivered, quality limit when
   * `quality` held layers back, else window done.
   */
  private emitAll(
    q: JpipRequest,
    target: Target,
    entries: readonly CodestreamEntry[],
    type: StreamType,
    emit: Emitter,
    headers: Array<[string, string]>,
  ): number {
    const meta = (bin: MetadataBin): void =>
      emit.send(BIN_CLASS.METADATA, 0, bin.id, bin.length, bin.length, (a, b, sink) => slicePieces(bin.pieces, a, b, sink));
    meta(target.metadata[0]);
    const types = q.metareq?.types ?? [];
    for (const bin of target.metadata.slice(1)) if (types.includes('*') || (bin.boxType && types.includes(bin.boxType))) meta(bin);
    if (q.metareq?.only) return EOR.WINDOW_DONE;
    for (const e of entries) {
      const mh = e.index.data.mainHeader;
      emit.send(BIN_CLASS.MAIN_HEADER, e.csn, 0, mh.length, mh.length, (a, b, sink) => sink.file(mh.offset + a, b - a));
    }
    if (!q.fsiz) return EOR.WINDOW_DONE;

    const maxLayers = Math.max(...entries.map((e) => e.index.maxLayers));
    if (q.layers !== undefined && q.layers > maxLayers) headers.push(['JPIP-layers', String(maxLayers)]);
    // quality=q (1–99) as the first ceil(q% of the layers); it ends the window with EOR 5 when
    // it, rather than `layers`, held layers back. −1 and 100 set no limit.
    const byQuality =
      q.quality !== undefined && q.quality >= 0 && q.quality < 100 ? Math.max(1, Math.ceil((maxLayers * q.quality) / 100)) : undefined;
    const layers = byQuality !== undefined && byQuality < (q.layers ?? Infinity) ? byQuality : q.layers;
    const qualityLimited = byQuality !== undefined && layers === byQuality && byQuality < maxLayers;
    if (byQuality !== undefined) headers.push(['JPIP-quality', String(q.quality)]);
    const ncomp = entries[0].index.components;
    const comps = q.comps ? expand(q.comps, ncomp) : undefined;
    if (q.comps && comps && q.comps.some((r) => r.to >= ncomp)) headers.push(['JPIP-comps', formatRanges(comps)]);
    const compRanges: Range[] | undefined = comps?.map((c) => ({ from: c, to: c }));
    let whole = q.stream === undefined ? target.codestreams.length === 1 : entries.length === target.codestreams.length;
    whole &&= (layers === undefined || layers >= maxLayers) && (comps === undefined || comps.length === ncomp);
    let first = true;
    for (const e of entries) {
      const index = e.index;
      const win = resolveWindow(index.siz, index.minLevels, q.fsiz, q.roff, q.rsiz);
      if (first) headers.push(...win.headers);
      first = false;
      whole &&= win.frame.discard === 0 && win.region.w === win.frame.width && win.region.h === win.frame.height;
      const content = windowContent(index, win.frame, win.region, compRanges);
      if (type === 'jpt-stream') this.emitTiles(e, content, layers, emit);
      else this.emitPrecincts(e, content, layers, emit);
    }
    return whole ? EOR.IMAGE_DONE : qualityLimited ? EOR.QUALITY_LIMIT : EOR.WINDOW_DONE;
  }

  private emitPrecincts(e: CodestreamEntry, content: WindowContent, layers: number | undefined, emit: Emitter): void {
    const index = e.index;
    for (const t of content.tiles) {
      const pairs = index.data.tiles[t].header;
      const n = index.tileHeaderBytes(t);
      emit.send(BIN_CLASS.TILE_HEADER, e.csn, t, n, n, (a, b, sink) => rangePieces(pairs, a, b, sink));
    }
    // Lowest resolution first, and within a resolution layer by layer, so that a response cut
    // by `len` still improves the whole window as much as it can.
    const list = content.precincts;
    for (let i = 0; i < list.length;) {
      let j = i;
      while (j < list.length && list[j].resolution === list[i].resolution) j++;
      let top = 0;
      for (let k = i; k < j; k++) top = Math.max(top, index.layout(list[k].tile).coding.layers);
      for (let l = 0; l < Math.min(top, layers ?? Infinity); l++) {
        for (let k = i; k < j; k++) {
          const p = list[k];
          const L = index.layout(p.tile).coding.layers;
          if (l >= L) continue;
          const total = index.binBytes(p.tile, p.component, p.sequence);
          const upTo = l === L - 1 ? total : index.binBytes(p.tile, p.component, p.sequence, l + 1);
          emit.send(BIN_CLASS.PRECINCT, e.csn, p.id, total, upTo, (a, b, sink) =>
            index.forEachBinRange(p.tile, p.component, p.sequence, a, b, (o, n) => sink.file(o, n)),
          );
        }
      }
      i = j;
    }
  }

  /**
   * JPT: each tile of the window up to the end of the last tile-part holding a packet the window
   * needs (resolutions up to the top one, selected components and layers).
   */
  private emitTiles(e: CodestreamEntry, content: WindowContent, layers: number | undefined, emit: Emitter): void {
    const index = e.index;
    for (const t of content.tiles) {
      const parts = index.data.tiles[t].parts;
      const ends: number[] = [];
      let acc = 0;
      for (let i = 1; i < parts.length; i += 2) ends.push((acc += parts[i]));
      const layout = index.layout(t);
      const tops = content.topResolution.get(t) ?? [];
      const L = Math.min(layout.coding.layers, layers ?? Infinity);
      let need = 0;
      for (const tcl of layout.components) {
        const top = tops[tcl.component] ?? -1;
        for (let r = 0; r <= top; r++) {
          const res = tcl.resolutions[r];
          for (let p = 0; p < res.across * res.down; p++) {
            for (let l = 0; l < L; l++) {
              const off = index.data.offsets[index.slot(t, tcl.component, res.first + p, l)];
              let k = 0;
              while (k + 1 < ends.length && off >= parts[2 * k] + parts[2 * k + 1]) k++;
              need = Math.max(need, ends[k]);
            }
          }
        }
      }
      const total = index.tileBytes(t);
      if (L > 0 && need > 0) emit.send(BIN_CLASS.TILE, e.csn, t, total, need, (a, b, sink) => rangePieces(parts, a, b, sink));
    }
  }

  /** Applies `model` (or, with `need`, its complement: the client lacks these bins). */
  private async applyModel(
    items: readonly ModelItem[],
    model: CacheModel,
    target: Target,
    entries: readonly CodestreamEntry[],
    need: boolean,
  ): Promise<void> {
    const byCsn = new Map(entries.map((e) => [e.csn, e]));
    for (const item of items) {
      const csns = item.streams ? expand(item.streams, target.codestreams.length) : entries.map((e) => e.csn);
      const set = (csn: number, cls: BinClass, id: number, total: number, layerBytes?: number): void => {
        let bytes = item.layers !== undefined ? (layerBytes ?? total) : (item.bytes ?? WHOLE);
        if (bytes >= total) bytes = WHOLE;
        if (need || item.subtract) model.remove(csn, cls, id, item.bytes ?? 0);
        else model.add(csn, cls, id, bytes);
      };
      if (item.bin.kind === 'meta') {
        for (const bin of target.metadata)
          if (item.bin.id === '*' || item.bin.id === bin.id) set(0, BIN_CLASS.METADATA, bin.id, bin.length);
        continue;
      }
      for (const csn of csns) {
        let e = byCsn.get(csn);
        if (!e) byCsn.set(csn, (e = await this.indexes.codestream(target, csn)));
        const index = e.index;
        const tiles = index.tileCount;
        const tileIds = (id: number | '*'): number[] => (id === '*' ? expand(undefined, tiles) : id < tiles ? [id] : []);
        const bin = item.bin;
        switch (bin.kind) {
          case 'main':
            set(csn, BIN_CLASS.MAIN_HEADER, 0, index.data.mainHeader.length);
            break;
          case 'tileHeader':
            for (const t of tileIds(bin.id)) set(csn, BIN_CLASS.TILE_HEADER, t, index.tileHeaderBytes(t));
            break;
          case 'tile':
            for (const t of tileIds(bin.id)) set(csn, BIN_CLASS.TILE, t, index.tileBytes(t));
            break;
          case 'precinct': {
            const one = (id: number): void => {
              const a = precinctOfBin(id, tiles, (t) => index.layout(t));
              if (!a) return;
              set(
                csn,
                BIN_CLASS.PRECINCT,
                id,
                index.binBytes(a.tile, a.component, a.sequence),
                index.binBytes(a.tile, a.component, a.sequence, item.layers),
              );
            };
            if (bin.id !== '*') one(bin.id);
            else
              for (let t = 0; t < tiles; t++)
                for (const tcl of index.layout(t).components)
                  for (let s = 0; s < tcl.precincts; s++) one(precinctDataBinId(t, tcl.component, s, index.components, tiles));
            break;
          }
          case 'implicit': {
            for (const t of expand(bin.t, tiles)) {
              for (const tcl of index.layout(t).components) {
                if (bin.c && !inRanges(bin.c, tcl.component)) continue;
                for (let r = 0; r < tcl.resolutions.length; r++) {
                  if (bin.r && !inRanges(bin.r, r)) continue;
                  const res = tcl.resolutions[r];
                  for (const p of expand(bin.p, res.across * res.down)) {
                    const s = res.first + p;
                    set(
                      csn,
                      BIN_CLASS.PRECINCT,
                      precinctDataBinId(t, tcl.component, s, index.components, tiles),
                      index.binBytes(t, tcl.component, s),
                      index.binBytes(t, tcl.component, s, item.layers),
                    );
                  }
                }
              }
            }
            break;
          }
        }
      }
    }
  }

  close(): void {
    this.sessions.clear();
    this.indexes.clear();
  }
}
