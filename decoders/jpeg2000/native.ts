// Loads the JPEG 2000 N-API addon (native/openjpeg_addon.c, built by node-gyp into
// build/Release/ at the package root) and gives it a typed face. The package root is found by
// walking up from this file to package.json, so the same code works from the sources (vitest)
// and from dist/ (compiled).

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeDecodeOptions {
  /** 0 = raw codestream, 1 = JP2/JPX. */
  readonly format: 0 | 1;
  readonly reduce: number;
  /** Quality layers; 0 = all. */
  readonly layers: number;
  /** Decode area on the reference grid (all 0 = whole image). */
  readonly x0: number;
  readonly y0: number;
  readonly x1: number;
  readonly y1: number;
  /** Components to output (1–4). */
  readonly components: number;
  readonly bits: 8 | 16;
  /** 1 = components 0–2 are YCbCr: convert to RGB. */
  readonly ycc: 0 | 1;
  readonly threads: number;
  /** File stream read buffer in bytes. */
  readonly bufferSize: number;
}

export interface NativeDecoded {
  readonly data: Buffer;
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  readonly bits: 8 | 16;
}

export interface NativeAddon {
  decode(path: string, options: NativeDecodeOptions): Promise<NativeDecoded>;
  /** The same from a codestream in memory (copied; format must be 0). Absent in older builds. */
  decodeBuffer?(codestream: Buffer, options: NativeDecodeOptions): Promise<NativeDecoded>;
  /** Copies a rectangle of rows between sample buffers (decoders/copy-rows.ts). Absent in older builds. */
  copyRows?(
    dst: Buffer,
    dstOffset: number,
    dstStride: number,
    src: Buffer,
    srcOffset: number,
    srcStride: number,
    rowBytes: number,
    rows: number,
  ): void;
  /** libopenjp2's version, e.g. `2.5.0`. */
  version(): string;
}

export const ADDON_FILE = 'iipsrv_openjpeg.node';

/** The directory holding package.json above this module. */
export function packageRoot(from = dirname(fileURLToPath(import.meta.url))): string | undefined {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

let loaded: { addon: NativeAddon | null; reason?: string } | undefined;

/** The addon, or null with the reason it could not be loaded (memoised). */
export function loadNativeAddon(): { addon: NativeAddon | null; reason?: string } {
  if (loaded) return loaded;
  const root = packageRoot();
  const candidates = root ? [join(root, 'build', 'Release', ADDON_FILE), join(root, 'build', 'Debug', ADDON_FILE)] : [];
  const file = candidates.find((f) => existsSync(f));
  if (!file) {
    loaded = { addon: null, reason: `${ADDON_FILE} not built` };
    return loaded;
  }
  try {
    const req = createRequire(import.meta.url);
    loaded = { addon: req(file) as NativeAddon };
  } catch (err) {
    loaded = { addon: null, reason: `${ADDON_FILE} failed to load: ${err instanceof Error ? err.message : String(err)}` };
  }
  return loaded;
}
