// The JPEG 2000 decoder module (JP2, JPX and raw J2K codestreams). Structure comes from our own
// parser (src/jpeg2000) at open; pixels come from libopenjp2 through the N-API addon
// (./native.ts), which decodes only the requested area at the needed resolution reduction and
// quality-layer count, off the event loop. Without the addon, a WebAssembly build of OpenJPEG
// (./wasm.ts) serves images whose needed level is small enough. Levels that the codestream lacks
// (too few DWT levels) are made by downsampling its smallest level with sharp (§13 #27).
// IIPSRV_J2K_BACKEND=native|wasm forces a backend (default: native when built, else wasm).

import { createRequire } from 'node:module';
import os from 'node:os';
import sharp from 'sharp';
import { rectInLevel, type DecoderModule, type ImageDecoder, type OpenOptions, type RawImage, type ReadOptions } from '../decoder.js';
import type { ImageInfo } from '../../src/core/image-info.js';
import type { Rect } from '../../src/core/view.js';
import { ImageServerError } from '../../src/core/errors.js';
import {
  openJpeg2000,
  sniffJpeg2000,
  tilesInArea,
  type GridRect,
  type Jpeg2000File,
  type ProgressionOrder,
  type Siz,
} from '../../src/jpeg2000/index.js';
import { loadNativeAddon, type NativeAddon, type NativeDecoded, type NativeDecodeOptions } from './native.js';
import type { IndexStore } from '../../src/jpeg2000/index-store.js';
import { describe, effectiveLayers, type DecodePlan } from './structure.js';
import { cropLevel, decodedCache as levelCache, type DecodedLevel } from '../level-cache.js';
import { decodeLevelWasm, wasmMaxPixels } from './wasm.js';
import { builtSparseCodestreams, clearSparseIndexes, versionKey, sparseCodestreamsFor, type SparseCodestreams } from './sparse.js';

export { effectiveLayers, pyramidLevels, VIRTUAL_TILE } from './structure.js';
export { WASM_MAX_PIXELS, wasmMaxPixels } from './wasm.js';

/** Empties the shared decoded-level cache and the remembered packet indexes (tests, SIGHUP). */
export function clearLevelCache(): void {
  levelCache.clear();
  clearSparseIndexes();
}

/** Largest area (pixels) decoded in one native call; bigger reads are refused with 413. */
export const NATIVE_MAX_PIXELS = 128 * 1024 * 1024;
/**
 * Levels up to this many pixels are decoded whole once and kept (./level-cache.ts); tiles of
 * them are crops. IIPSRV_J2K_CACHE_LEVEL_PIXELS overrides (0 turns it off for the native path).
 */
export function cacheLevelPixels(): number {
  const v = Number(process.env.IIPSRV_J2K_CACHE_LEVEL_PIXELS ?? NaN);
  return Number.isFinite(v) && v >= 0 ? v : 1024 * 1024;
}
/** OpenJPEG threads per decode: requests already run in parallel on the libuv pool. */
const THREADS = Math.max(1, Math.min(16, Number(process.env.IIPSRV_J2K_THREADS) || 1));
/** Native decodes running now (the band split below backs off while others run). */
let inFlight = 0;
/** Runs `decode`, counted as `n` native decodes while it runs. */
async function counted<T>(n: number, decode: () => Promise<T>): Promise<T> {
  inFlight += n;
  try {
    return await decode();
  } finally {
    inFlight -= n;
  }
}
/**
 * Cores one process may use for the bands of one decode: IIPSRV_J2K_DECODE_CORES (read on every
 * call; --workers sets it for each worker, ../../src/workers.ts), else the machine's, at most 4
 * (libuv's default pool, which the decodes run on).
 */
function decodeCores(): number {
  return Math.max(1, Math.min(4, Math.floor(Number(process.env.IIPSRV_J2K_DECODE_CORES)) || os.availableParallelism()));
}
/**
 * Smallest region (pixels) decoded in bands: at a reduced resolution, and at full resolution.
 * At full resolution precincts are large and neighbouring bands share them, so each band's
 * duplicated packet parsing and set-up weighs more against the halved entropy decoding.
 */
const SPLIT_MIN_PIXELS = 16 * 1024;
const SPLIT_MIN_PIXELS_FULL = 128 * 1024;
/**
 * How many bands to decode a region of level k in: OpenJPEG's entropy decoding is
 * single-threaded per call, and its own thread pool hands out one job per code-block, which is
 * slower than one thread for small code-blocks. So while no other decode runs, a large region is
 * decoded as horizontal bands on the spare cores. Every band gets the same codestream with its
 * own decode area: OpenJPEG then reads all packets and sets up all precincts in each, but
 * entropy-decodes only the code-blocks of its band. Measured (npm run bench:j2k, 2 cores, 20000²
 * RGB with 4×4 precincts at its lowest level), two bands against one piece: that 157² level
 * 7.4–9.3 against 10.7–12.2 ms, a 625² level 59–77 against 101–106 ms, 1024² at full resolution
 * 50–98 against 55–131 ms; a 256² tile at full resolution gains nothing, so it is not split.
 */
function bandCount(k: number, rect: Rect): number {
  const free = decodeCores() - inFlight;
  const pixels = rect.width * rect.height;
  if (free < 2 || pixels < (k > 0 ? SPLIT_MIN_PIXELS : SPLIT_MIN_PIXELS_FULL)) return 1;
  return Math.max(1, Math.min(free, Math.floor(rect.height / 32)));
}

/**
 * Decodes `area` (on the grid of `data` at `options.reduce`) in `bands` horizontal bands side
 * by side on the libuv pool. Each band starts on an output row, so the bands' full-width rows
 * one after the other are the region.
 */
async function decodeInBands(
  decode: (data: Buffer, options: NativeDecodeOptions) => Promise<NativeDecoded>,
  data: Buffer,
  options: Omit<NativeDecodeOptions, 'x0' | 'y0' | 'x1' | 'y1'>,
  area: GridRect,
  bands: number,
): Promise<NativeDecoded> {
  const s = 2 ** options.reduce;
  const top = Math.ceil(area.y0 / s);
  const rows = Math.ceil(area.y1 / s) - top;
  const edges = Array.from({ length: bands + 1 }, (_, i) =>
    i === 0 ? area.y0 : i === bands ? area.y1 : (top + Math.round((rows * i) / bands)) * s,
  );
  const parts = await counted(bands, () =>
    Promise.all(edges.slice(0, -1).map((y0, i) => decode(data, { ...options, ...area, y0, y1: edges[i + 1] }))),
  );
  if (parts.length === 1) return parts[0];
  return { ...parts[0], height: rows, data: Buffer.concat(parts.map((q) => q.data)) };
}

/**
 * Read buffer of the OpenJPEG file stream. OpenJPEG refills the whole buffer after every seek,
 * and a region decode seeks from tile-part to tile-part, so a small buffer reads less than the
 * default 1 MB (IIPSRV_J2K_STREAM_BUFFER overrides, in bytes).
 */
const STREAM_BUFFER = Math.max(4096, Number(process.env.IIPSRV_J2K_STREAM_BUFFER) || 16 * 1024);

/**
 * Region decodes go through a sparse codestream in memory (./sparse.ts) when OpenJPEG would
 * otherwise read far more than the region needs: tiles much larger than the region, or a reduced
 * resolution spread over many tiles (the sparse codestream then also leaves out the resolutions
 * above it, ./reduce.ts). IIPSRV_J2K_SPARSE=off|always overrides (read on every call). The packet
 * index is built once per version of a file; IIPSRV_J2K_INDEX_DIR (a folder) persists it.
 */
function sparseMode(): 'auto' | 'off' | 'always' {
  const v = (process.env.IIPSRV_J2K_SPARSE ?? '').trim().toLowerCase();
  return v === 'off' || v === 'always' ? v : 'auto';
}
/** Tiles at least this large (samples) are "huge": OpenJPEG reads a whole tile-part per decode. */
const HUGE_TILE = 2048 * 2048;
/** A reduced decode over at least this many small tiles goes sparse once the index is built. */
const SPARSE_MIN_TILES = 8;

export type Jpeg2000Backend = 'native' | 'wasm';

/** Which backend serves decodes now, and why (IIPSRV_J2K_BACKEND is read on every call). */
export function jpeg2000Backend(): { backend: Jpeg2000Backend | null; reason?: string } {
  const forced = (process.env.IIPSRV_J2K_BACKEND ?? '').trim().toLowerCase();
  const native = loadNativeAddon();
  if (forced === 'wasm')
    return wasmInstalled()
      ? { backend: 'wasm', reason: 'IIPSRV_J2K_BACKEND=wasm' }
      : { backend: null, reason: 'WebAssembly decoder not installed' };
  if (forced === 'native') return native.addon ? { backend: 'native' } : { backend: null, reason: native.reason };
  if (native.addon) return { backend: 'native' };
  return wasmInstalled()
    ? { backend: 'wasm', reason: native.reason }
    : { backend: null, reason: `${native.reason}; WebAssembly decoder not installed` };
}

let wasmInstalledMemo: boolean | undefined;
function wasmInstalled(): boolean {
  if (wasmInstalledMemo === undefined) {
    try {
      createRequire(import.meta.url).resolve('@cornerstonejs/codec-openjpeg/decodewasmjs');
      wasmInstalledMemo = true;
    } catch {
      wasmInstalledMemo = false;
    }
  }
  return wasmInstalledMemo;
}

/** Codestream facts beyond ImageInfo, for diagnostics and IIP/JPIP answers. */
export interface Jpeg2000Summary {
  readonly kind: 'jp2' | 'jpx' | 'j2k';
  readonly layers: number;
  readonly progression: ProgressionOrder;
  /** DWT levels (smallest over components). */
  readonly dwtLevels: number;
  readonly tileWidth: number;
  readonly tileHeight: number;
  readonly tiles: number;
  readonly codeBlockWidth: number;
  readonly codeBlockHeight: number;
  readonly reversible: boolean;
  readonly backend: Jpeg2000Backend;
}

function withPath(err: unknown, path: string): unknown {
  if (err instanceof ImageServerError) return new ImageServerError(err.code, err.message, `${path}: ${err.detail ?? err.message}`);
  return err;
}

let nextId = 0;

export class Jpeg2000Decoder implements ImageDecoder {
  /** Prefix of this image's keys in the shared level cache. */
  private readonly cacheId = `j2k${++nextId}:`;
  /** The packet index for sparse decodes, built on first use (null: cannot be indexed). */
  private sparse?: Promise<SparseCodestreams | null>;
  /** The same once built. */
  private sparseReady?: SparseCodestreams | null;

  constructor(
    readonly info: ImageInfo,
    readonly jpeg2000: Jpeg2000Summary,
    private readonly plan: DecodePlan,
    private readonly path: string,
    private readonly maxLayers: number,
    private readonly addon: NativeAddon | null,
    /** The codestream's image and tile geometry. */
    private readonly siz: Siz,
    /** This version of the file (./sparse.ts versionKey), for the shared packet index. */
    private readonly versionKey: string,
    /** Packet indexes: the server's store, else a folder (IIPSRV_J2K_INDEX_DIR overrides both). */
    private readonly indexes: IndexStore | string | undefined,
    /** Whether sparse decodes may serve this image (no palette or channel mapping, POC, PPM). */
    private readonly sparseOk = false,
  ) {}

  /**
   * How a decode of `area` at reduction k uses the packet index: 'wait' for it (building it
   * costs less than one ordinary decode of a huge tile: ~120 ms for a 20000² untiled file
   * against 200–400 ms), 'ready' (use it once built, meanwhile decode the ordinary way), or none.
   */
  private sparseRoute(k: number, rect: Rect, area: GridRect): 'wait' | 'ready' | null {
    const mode = sparseMode();
    if (mode === 'off' || !this.sparseOk || !this.addon?.decodeBuffer) return null;
    if (mode === 'always') return 'wait';
    const { tileWidth, tileHeight } = this.jpeg2000;
    if (tileWidth * tileHeight >= HUGE_TILE) {
      // At full resolution only for regions much smaller than the tile.
      return k > 0 || tileWidth * tileHeight >= 16 * rect.width * rect.height ? 'wait' : null;
    }
    return k > 0 && tilesInArea(this.siz, area).length >= SPARSE_MIN_TILES ? 'ready' : null;
  }

  /** The image's packet index (built once; null when the codestream cannot be indexed). */
  sparseIndex(): Promise<SparseCodestreams | null> {
    this.sparse ??= sparseCodestreamsFor(this.path, this.versionKey, process.env.IIPSRV_J2K_INDEX_DIR || this.indexes)
      .catch(() => null)
      .then((s) => (this.sparseReady = s));
    return this.sparse;
  }

  async readRegion(level: number, rect: Rect, options?: ReadOptions): Promise<RawImage> {
    const l = this.info.levels[level];
    if (!Number.isInteger(level) || !l) {
      throw new ImageServerError('BAD_TILE', undefined, `${this.path}: level ${level} of ${this.info.levels.length}`);
    }
    if (!rectInLevel(rect, l.width, l.height)) {
      throw new ImageServerError('BAD_REGION', undefined, `${this.path}: level ${level} rect ${JSON.stringify(rect)}`);
    }
    const layers = effectiveLayers(this.plan.layers, this.maxLayers, options?.layers);
    if (level <= this.plan.dwtLevels) return this.decodeReal(level, rect, layers);
    return this.decodeVirtual(level, rect, layers);
  }

  /** Level `level` below the codestream's smallest: downsample that one by 2^n (§13 #27). */
  private async decodeVirtual(level: number, rect: Rect, layers: number): Promise<RawImage> {
    const k = this.plan.dwtLevels;
    const base = this.info.levels[k];
    const f = 2 ** (level - k);
    const sx = rect.x * f;
    const sy = rect.y * f;
    const src: Rect = {
      x: sx,
      y: sy,
      width: Math.min((rect.x + rect.width) * f, base.width) - sx,
      height: Math.min((rect.y + rect.height) * f, base.height) - sy,
    };
    const raw = await this.decodeReal(k, src, layers);
    const input = raw.bitsPerSample === 16 ? new Uint16Array(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength / 2) : raw.data;
    const channels = raw.channels as 1 | 2 | 3 | 4;
    let out: Buffer;
    try {
      out = await sharp(input, { raw: { width: raw.width, height: raw.height, channels } })
        .resize(rect.width, rect.height, { fit: 'fill', kernel: 'lanczos3' })
        .raw({ depth: raw.bitsPerSample === 16 ? 'ushort' : 'uchar' })
        .toBuffer();
    } catch (err) {
      throw new ImageServerError('INTERNAL', undefined, `${this.path}: virtual level ${level}: ${String(err)}`);
    }
    if (out.length !== rect.width * rect.height * raw.channels * (raw.bitsPerSample / 8)) {
      throw new ImageServerError('INTERNAL', undefined, `${this.path}: virtual level ${level}: resize gave ${out.length} bytes`);
    }
    return { ...raw, data: out, width: rect.width, height: rect.height };
  }

  private async decodeReal(k: number, rect: Rect, layers: number): Promise<RawImage> {
    const p = this.plan;
    const lvl = this.info.levels[k];
    // The WebAssembly build can only decode whole levels; natively, a whole level is decoded
    // only when it will stay for the following tiles.
    const bytes = lvl.width * lvl.height * p.components * (p.bits / 8);
    const whole = this.addon === null || (lvl.width * lvl.height <= cacheLevelPixels() && levelCache.admits(bytes));
    if (!whole) return this.nativeRegion(k, rect, layers);
    if (!this.addon) this.checkWasm();
    const level = await levelCache.getOrLoad(`${this.cacheId}${k}:${layers}`, async (): Promise<DecodedLevel> => {
      if (!this.addon)
        return decodeLevelWasm(this.path, k, layers, { width: lvl.width, height: lvl.height, channels: p.components, bits: p.bits });
      const raw = await this.nativeRegion(k, { x: 0, y: 0, width: lvl.width, height: lvl.height }, layers);
      return { data: raw.data, width: raw.width, height: raw.height, channels: raw.channels, bits: raw.bitsPerSample === 16 ? 16 : 8 };
    });
    const data = cropLevel(level, rect.x, rect.y, rect.width, rect.height);
    return { data, width: rect.width, height: rect.height, channels: level.channels, bitsPerSample: level.bits, sampleFormat: 'uint' };
  }

  /** One area of level k decoded by the addon (only the code-blocks the area needs). */
  private async nativeRegion(k: number, rect: Rect, layers: number): Promise<RawImage> {
    const p = this.plan;
    if (rect.width * rect.height > NATIVE_MAX_PIXELS) {
      throw new ImageServerError('TOO_LARGE', undefined, `${this.path}: decode ${rect.width}×${rect.height} at reduce ${k}`);
    }
    const addon = this.addon!;
    // Level-k pixel u is reference-grid sample (ceil(X0/2^k) + u)·2^k; OpenJPEG maps the area
    // back with ceil(·/2^k), which gives exactly the rectangle asked for.
    const s = 2 ** k;
    const ox = Math.ceil(p.x0 / s);
    const oy = Math.ceil(p.y0 / s);
    let area = {
      x0: Math.max(p.x0, (ox + rect.x) * s),
      y0: Math.max(p.y0, (oy + rect.y) * s),
      x1: Math.min(p.xsiz, (ox + rect.x + rect.width) * s),
      y1: Math.min(p.ysiz, (oy + rect.y + rect.height) * s),
    };
    // Subsampled components: start the area on a sample of every component, else OpenJPEG
    // leaves out the chroma sample that covers the first columns/rows; crop afterwards.
    let skip = { x: 0, y: 0 };
    if (p.subsampled) {
      const mx = p.maxDx * s;
      const my = p.maxDy * s;
      const ax = Math.max(p.x0, Math.floor(area.x0 / mx) * mx);
      const ay = Math.max(p.y0, Math.floor(area.y0 / my) * my);
      skip = { x: Math.ceil(area.x0 / s) - Math.ceil(ax / s), y: Math.ceil(area.y0 / s) - Math.ceil(ay / s) };
      area = { ...area, x0: ax, y0: ay };
    }
    let out;
    try {
      const options = {
        format: p.format,
        reduce: k,
        layers,
        ...area,
        components: p.components,
        bits: p.bits,
        ycc: p.ycc ? (1 as const) : (0 as const),
        threads: THREADS,
        bufferSize: STREAM_BUFFER,
      };
      let sparse: SparseCodestreams | null = null;
      const route = this.sparseRoute(k, rect, area);
      if (route === 'wait') sparse = await this.sparseIndex();
      else if (route === 'ready') {
        void this.sparseIndex();
        sparse = this.sparseReady ?? builtSparseCodestreams(this.versionKey) ?? null;
      }
      if (sparse && addon.decodeBuffer) {
        const cs = await sparse.build(area, k, layers);
        const bands = p.subsampled ? 1 : bandCount(k, rect);
        out = await decodeInBands(addon.decodeBuffer.bind(addon), cs.data, { ...options, format: 0, reduce: cs.reduce }, cs.area, bands);
      } else {
        out = await counted(1, () => addon.decode(this.path, options));
      }
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      throw new ImageServerError(
        'CORRUPT_IMAGE',
        msg === 'cannot open the file' ? 'Unable to read the JPEG 2000 file' : `Corrupt JPEG 2000 file: ${msg}`,
        `${this.path}: reduce ${k} layers ${layers} area ${JSON.stringify(area)}: ${msg}`,
      );
    }
    const want = { width: rect.width + skip.x, height: rect.height + skip.y };
    if (out.width !== want.width || out.height !== want.height || out.channels !== p.components) {
      throw new ImageServerError(
        'INTERNAL',
        undefined,
        `${this.path}: OpenJPEG returned ${out.width}×${out.height}×${out.channels} for ${want.width}×${want.height}×${p.components}`,
      );
    }
    const decoded = { data: out.data, width: out.width, height: out.height, channels: out.channels, bits: out.bits };
    const data = skip.x || skip.y ? cropLevel(decoded, skip.x, skip.y, rect.width, rect.height) : out.data;
    return { data, width: rect.width, height: rect.height, channels: out.channels, bitsPerSample: out.bits, sampleFormat: 'uint' };
  }

  /** What the WebAssembly build can decode correctly (see ./wasm.ts). */
  private checkWasm(): void {
    const p = this.plan;
    const why = p.subsampled
      ? 'subsampled components'
      : p.x0 !== 0 || p.y0 !== 0
        ? 'an image origin other than 0,0'
        : p.signed
          ? 'signed samples'
          : p.components === 2 || p.components === 4
            ? `${p.components} components`
            : p.components === 3 && p.bits === 16
              ? '16-bit colour'
              : undefined;
    if (why) {
      throw new ImageServerError(
        'NOT_IMPLEMENTED',
        `JPEG 2000 images with ${why} need the native decoder, which is not built on this server`,
        `${this.path}: wasm fallback`,
      );
    }
  }

  async close(): Promise<void> {
    // No file is held open (every decode opens it in the addon); drop this image's levels and
    // its packet index.
    levelCache.clear(this.cacheId);
    this.sparse = undefined;
    this.sparseReady = undefined;
  }
}

export const jpeg2000Decoder: DecoderModule = {
  name: 'jpeg2000',
  sniff(head: Buffer): boolean {
    return sniffJpeg2000(head) !== null;
  },
  notice(): string | undefined {
    const { backend, reason } = jpeg2000Backend();
    if (backend === 'native') return undefined;
    if (backend === 'wasm')
      return `JPEG 2000: using the WebAssembly fallback decoder (${reason}); regions are decoded from whole levels (limit ${(wasmMaxPixels() / 1e6).toFixed(0)} Mpixel per level)`;
    return `JPEG 2000: no decoder available (${reason}); JPEG 2000 images will be refused`;
  },
  async open(path: string, options?: OpenOptions): Promise<ImageDecoder> {
    let file: Jpeg2000File;
    try {
      file = await openJpeg2000(path);
    } catch (err) {
      throw withPath(err, path);
    }
    try {
      const { info, plan } = await describe(file, path);
      const { backend, reason } = jpeg2000Backend();
      if (!backend) throw new ImageServerError('NOT_IMPLEMENTED', 'No JPEG 2000 decoder is available on this server', `${path}: ${reason}`);
      const cs = file.codestream;
      const cod = cs.header.cod;
      const summary: Jpeg2000Summary = {
        kind: file.kind,
        layers: cod.layers,
        progression: cod.progression,
        dwtLevels: plan.dwtLevels,
        tileWidth: cs.siz.tileWidth,
        tileHeight: cs.siz.tileHeight,
        tiles: cs.tileCount,
        codeBlockWidth: cod.codeBlockWidth,
        codeBlockHeight: cod.codeBlockHeight,
        reversible: cod.transform === 1,
        backend,
      };
      const addon = backend === 'native' ? loadNativeAddon().addon : null;
      const hdr = file.boxes?.header;
      const sparseOk = !hdr?.palette && !hdr?.channels && cs.header.poc.length === 0 && cs.header.ppm.length === 0;
      const key = await versionKey(path);
      return new Jpeg2000Decoder(
        info,
        summary,
        plan,
        path,
        options?.maxLayers ?? 0,
        addon,
        cs.siz,
        key,
        options?.indexStore ?? options?.indexDir,
        sparseOk,
      );
    } catch (err) {
      throw withPath(err, path);
    } finally {
      await file.close().catch(() => undefined);
    }
  },
};

export default jpeg2000Decoder;
