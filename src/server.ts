// Assembles one server process: configuration, logging, decoders, the image registry, the
// cache and the handler. Front ends are attached by the CLI (or by tests).

import sharp from 'sharp';
import { DecoderRegistry } from '../decoders/registry.js';
import { RamLruStore } from './cache/ram-lru.js';
import type { Config } from './config.js';
import { createHandler } from './handler.js';
import { ImageRegistry } from './image/registry.js';
import { LOG, type Logger } from './log.js';

export interface ServerCore {
  readonly handler: ReturnType<typeof createHandler>;
  readonly images: ImageRegistry;
  readonly cache: RamLruStore;
  /** Empties every cache (SIGHUP). */
  clearCaches(): Promise<void>;
}

/** Output formats this build of sharp can encode, in IIIF names. */
export function availableFormats(): string[] {
  const f = sharp.format;
  const out = ['jpg', 'png'];
  if (f.webp?.output.buffer) out.push('webp');
  if (f.tiff?.output.buffer) out.push('tif');
  return out;
}

export async function createServerCore(config: Config, logger: Logger): Promise<ServerCore> {
  // libvips' own operation cache holds decoded pixels of recent files; our caches do that job.
  sharp.cache(false);
  const decoders = new DecoderRegistry();
  if (config.decoderModules) {
    const errors = await decoders.loadModules(config.decoderModules);
    for (const e of errors) logger.log(LOG.ERROR, `DECODER_MODULES: ${e}`);
  }
  const images = new ImageRegistry(decoders, config.maxMetadataCacheSize);
  const cache = new RamLruStore(config.maxImageCacheBytes);
  const handler = createHandler({ config, logger, images, cache, formats: availableFormats() });
  return {
    handler,
    images,
    cache,
    async clearCaches() {
      cache.clear();
      await images.clear();
    },
  };
}
