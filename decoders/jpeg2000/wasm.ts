// The fallback JPEG 2000 backend for machines where the native addon was not built:
// @cornerstonejs/codec-openjpeg (OpenJPEG compiled to WebAssembly). It cannot decode a region
// (it never calls opj_set_decode_area), only a whole resolution level with a layer count, so a
// region is served by decoding its level and cropping; decoded levels are kept in the shared
// LRU (./level-cache.ts) so the tiles of one small image do not each decode it again. Levels
// above WASM_MAX_PIXELS are refused with 413. Decoding runs on the calling thread (WebAssembly
// is synchronous): that is why the limit is there, and why the native addon is preferred.
// Its limits (checked in its source, J2KDecoder.hpp): one component (8/16-bit) or three 8-bit
// components, no subsampling except what it converts from sYCC, image origin at 0, unsigned.

import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { ImageServerError } from '../../src/core/errors.js';
import type { DecodedLevel } from '../level-cache.js';

/** Largest level (pixels) the fallback decodes by default: 64 Mpixel (about 2–4 s of decoding). */
export const WASM_MAX_PIXELS = 64 * 1024 * 1024;

/** The limit in force: IIPSRV_J2K_WASM_MAX_PIXELS when set to a positive number. */
export function wasmMaxPixels(): number {
  const v = Number(process.env.IIPSRV_J2K_WASM_MAX_PIXELS);
  return Number.isFinite(v) && v > 0 ? v : WASM_MAX_PIXELS;
}
/** Largest file read into WebAssembly memory. */
const WASM_MAX_FILE = 1024 * 1024 * 1024;

interface FrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned: boolean;
}

interface J2KDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  getDecodedBuffer(): Uint8Array;
  decodeSubResolution(level: number, layers: number): void;
  getFrameInfo(): FrameInfo;
  delete(): void;
}

interface WasmModule {
  J2KDecoder: new () => J2KDecoder;
}

type Factory = (module: { print: (s: string) => void; printErr: (s: string) => void }) => Promise<WasmModule>;

export type WasmLevel = DecodedLevel;

let modulePromise: Promise<WasmModule> | undefined;
/** Messages printed by the WebAssembly module during the current (synchronous) call. */
let captured: string[] = [];

function wasmModule(): Promise<WasmModule> {
  modulePromise ??= (async () => {
    const req = createRequire(import.meta.url);
    const factory = req('@cornerstonejs/codec-openjpeg/decodewasmjs') as Factory;
    // Its OpenJPEG callbacks print [INFO]/[WARNING]/[ERROR] lines: collect them instead of
    // letting them reach stdout (which may be the FastCGI socket).
    const sink = (s: string): void => {
      if (captured.length < 64) captured.push(s);
    };
    return factory({ print: sink, printErr: sink });
  })();
  return modulePromise;
}

/** True when the WebAssembly module can be loaded (the package is installed). */
export async function wasmAvailable(): Promise<boolean> {
  try {
    await wasmModule();
    return true;
  } catch {
    return false;
  }
}

/**
 * The whole of resolution level `reduce` decoded with `layers` quality layers (0 = all).
 * `expected` is the level size from our own parser, used to check what came back.
 */
export async function decodeLevelWasm(
  path: string,
  reduce: number,
  layers: number,
  expected: { width: number; height: number; channels: number; bits: 8 | 16 },
): Promise<WasmLevel> {
  const limit = wasmMaxPixels();
  if (expected.width * expected.height > limit) {
    throw new ImageServerError(
      'TOO_LARGE',
      `JPEG 2000 level of ${expected.width}×${expected.height} pixels is too large for the WebAssembly decoder (limit ${limit} pixels; build the native decoder)`,
      `${path}: reduce ${reduce}`,
    );
  }
  const st = await stat(path);
  if (st.size > WASM_MAX_FILE) {
    throw new ImageServerError('TOO_LARGE', 'JPEG 2000 file is too large for the WebAssembly decoder', `${path}: ${st.size} bytes`);
  }
  const [m, bytes] = await Promise.all([wasmModule(), readFile(path)]);
  return decodeSync(m, bytes, reduce, layers, expected, path);
}

function decodeSync(
  m: WasmModule,
  bytes: Buffer,
  reduce: number,
  layers: number,
  expected: { width: number; height: number; channels: number; bits: 8 | 16 },
  path: string,
): WasmLevel {
  const dec = new m.J2KDecoder();
  captured = [];
  try {
    dec.getEncodedBuffer(bytes.length).set(bytes);
    dec.decodeSubResolution(reduce, layers);
    const errors = captured.filter((s) => s.includes('[ERROR]'));
    const fi = dec.getFrameInfo();
    const out = dec.getDecodedBuffer();
    const bpp = expected.bits / 8;
    const size = expected.width * expected.height * expected.channels * bpp;
    if (errors.length > 0 || fi.componentCount === 0 || out.length !== size) {
      const first = errors[0]?.replace(/^\[ERROR\]\s*/, '').trim() ?? `decoded ${out.length} bytes, expected ${size}`;
      throw new ImageServerError(
        'CORRUPT_IMAGE',
        `Corrupt JPEG 2000 file: ${first}`,
        `${path}: wasm reduce ${reduce} layers ${layers}: ${errors.join(' | ')}`,
      );
    }
    // A copy owned by Node (the typed array is already a copy of WebAssembly memory).
    const data = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    return { data, width: expected.width, height: expected.height, channels: expected.channels, bits: expected.bits };
  } finally {
    captured = [];
    dec.delete();
  }
}
