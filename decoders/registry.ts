// The decoder registry: which DecoderModule opens a file, chosen by the file's first bytes
// (never by its extension, like iipsrv §11.1). TIFF, JPEG 2000 and plain JPEG are built in;
// more modules can be registered in code or loaded by module path/package name from
// DECODER_MODULES.

import { open as openFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ImageServerError } from '../src/core/errors.js';
import type { DecoderModule, ImageDecoder, OpenOptions } from './decoder.js';
import { jpeg2000Decoder } from './jpeg2000/index.js';
import { jpegDecoder } from './jpeg/index.js';
import { tiffDecoder } from './tiff/index.js';
import { fileError } from './file-error.js';

/** Bytes handed to `sniff`; the contract promises at least 16 when the file has them. */
const HEAD_BYTES = 16;

function isDecoderModule(x: unknown): x is DecoderModule {
  if (typeof x !== 'object' || x === null) return false;
  const m = x as Record<string, unknown>;
  return typeof m.name === 'string' && typeof m.sniff === 'function' && typeof m.open === 'function';
}

export class DecoderRegistry {
  private readonly list: DecoderModule[] = [];

  /**
   * Starts with the built-in modules (TIFF, JPEG 2000) unless a list is given. `openOptions`
   * (e.g. `{ maxLayers: config.maxLayers }`) is handed to every module's `open`.
   */
  constructor(
    modules: readonly DecoderModule[] = [tiffDecoder, jpeg2000Decoder, jpegDecoder],
    public openOptions: OpenOptions = {},
  ) {
    for (const m of modules) this.register(m);
  }

  /** Start-up notices of the registered modules (e.g. a fallback decoder in use), to log. */
  notices(): string[] {
    const out: string[] = [];
    for (const m of this.list) {
      try {
        const n = m.notice?.();
        if (n) out.push(n);
      } catch {
        // a plug-in's broken notice must not stop the start-up
      }
    }
    return out;
  }

  /** Registered modules, in the order they are tried. */
  get modules(): readonly DecoderModule[] {
    return this.list;
  }

  /**
   * Adds a module. A module with the name of one already registered replaces it in place (so a
   * plug-in can override a built-in); `first` puts a new module ahead of the others.
   */
  register(module: DecoderModule, options: { first?: boolean } = {}): void {
    if (!isDecoderModule(module)) throw new TypeError('not a decoder module (needs name, sniff, open)');
    const i = this.list.findIndex((m) => m.name === module.name);
    if (i >= 0) this.list[i] = module;
    else if (options.first) this.list.unshift(module);
    else this.list.push(module);
  }

  /**
   * Loads modules named in a DECODER_MODULES value: comma-separated module paths (relative
   * ones resolved against the working directory) or package names. Each module's default
   * export, or its `decoder` export, is registered. Failures are returned, not thrown, so that
   * one bad plug-in does not stop the server; the caller logs them.
   */
  async loadModules(spec: string): Promise<string[]> {
    const errors: string[] = [];
    for (const raw of spec.split(',')) {
      const name = raw.trim();
      if (name === '') continue;
      const isPath = name.startsWith('.') || isAbsolute(name);
      const target = isPath ? pathToFileURL(resolve(name)).href : name;
      try {
        const mod = (await import(target)) as Record<string, unknown>;
        const candidate = [mod.default, mod.decoder].find(isDecoderModule);
        if (!candidate) {
          errors.push(`${name}: exports no decoder module (default or "decoder" with name, sniff, open)`);
          continue;
        }
        this.register(candidate);
      } catch (err) {
        errors.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return errors;
  }

  /** The first registered module that recognises these leading bytes, if any. */
  find(head: Buffer): DecoderModule | undefined {
    return this.list.find((m) => {
      try {
        return m.sniff(head);
      } catch {
        return false; // a plug-in's broken sniff must not hide the other formats
      }
    });
  }

  /**
   * Opens `path` (member `page` of an image stack) with the module whose `sniff` accepts its first bytes. Unknown type →
   * UNSUPPORTED_IMAGE (415); a decoder's non-server error → CORRUPT_IMAGE. Messages never hold
   * the path (it goes to `detail`).
   */
  async open(path: string, page?: number): Promise<ImageDecoder> {
    let head: Buffer;
    try {
      const fh = await openFile(path, 'r');
      try {
        const buf = Buffer.alloc(HEAD_BYTES);
        const { bytesRead } = await fh.read(buf, 0, HEAD_BYTES, 0);
        head = buf.subarray(0, bytesRead);
      } finally {
        await fh.close();
      }
    } catch (err) {
      throw fileError(err, path);
    }
    const module = this.find(head);
    if (!module) {
      throw new ImageServerError('UNSUPPORTED_IMAGE', 'Unsupported image type', `${path}: magic ${head.subarray(0, 8).toString('hex')}`);
    }
    try {
      return await module.open(path, page ? { ...this.openOptions, page } : this.openOptions);
    } catch (err) {
      if (err instanceof ImageServerError) throw err;
      throw fileError(err, path);
    }
  }
}
