// The JPEG 2000 decoders' decoded levels: one process-wide budget shared by every JPEG 2000
// image (IIPSRV_J2K_LEVEL_CACHE_MB, default 256).

import { LevelCache } from '../level-cache.js';

export { cropLevel, type DecodedLevel } from '../level-cache.js';

export const levelCache = new LevelCache(Math.max(1, Number(process.env.IIPSRV_J2K_LEVEL_CACHE_MB) || 256) * 1024 * 1024);
