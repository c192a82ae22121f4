// Open images, memoised by real path, size and modification time (and sequence views), so the
// structure of a pyramid is parsed once and a replaced file is reopened. Bounded in count
// (MAX_METADATA_CACHE_SIZE) with least-recently-used eviction; concurrent opens of one file
// share a single open.

import type { DecoderRegistry } from '../../decoders/registry.js';
import type { ImageDecoder } from '../../decoders/decoder.js';
import type { ImageInfo, ImageViews } from '../core/image-info.js';
import { ImageServerError } from '../core/errors.js';
import type { ResolvedFile } from './resolve.js';

export interface ImageSource {
  readonly file: ResolvedFile;
  readonly decoder: ImageDecoder;
  readonly info: ImageInfo;
}

export class ImageRegistry {
  private readonly open = new Map<string, Promise<ImageSource>>();

  constructor(
    private readonly decoders: DecoderRegistry,
    /** -1 unlimited. 0 is taken as 1: an open image must stay referenced until closed. */
    private readonly maxEntries: number,
  ) {
    if (maxEntries === 0) this.maxEntries = 1;
  }

  /**
   * The open image for `file` (its stack member `file.page`). `views` (sequences) become part of its ImageInfo and of the memo
   * key, so a sequence that gains a member is described anew.
   */
  async get(file: ResolvedFile, views?: ImageViews): Promise<ImageSource> {
    const viewsKey = views ? `${views.horizontal.join(',')}/${views.vertical.join(',')}` : '';
    const key = `${file.path}\0${file.size}\0${file.mtimeMs}\0${viewsKey}\0${file.page ?? 0}`;
    const hit = this.open.get(key);
    if (hit) {
      this.open.delete(key);
      this.open.set(key, hit);
      return hit;
    }
    const opening = this.decoders.open(file.path, file.page).then(
      (decoder) => ({ file, decoder, info: views ? { ...decoder.info, views } : decoder.info }),
      (err: unknown) => {
        this.open.delete(key);
        if (err instanceof ImageServerError) throw err;
        throw new ImageServerError('CORRUPT_IMAGE', undefined, `${file.path}: ${String(err)}`);
      },
    );
    this.open.set(key, opening);
    this.evict();
    return opening;
  }

  private evict(): void {
    if (this.maxEntries < 0) return;
    for (const [k, p] of this.open) {
      if (this.open.size <= this.maxEntries) break;
      this.open.delete(k);
      // Close after in-flight users are done with it; a failed open has nothing to close.
      p.then(
        (s) => setTimeout(() => void s.decoder.close().catch(() => {}), 30_000).unref(),
        () => {},
      );
    }
  }

  async clear(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    for (const p of all) {
      try {
        await (await p).decoder.close();
      } catch {
        // already failed or closed
      }
    }
  }
}
