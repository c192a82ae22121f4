// The protocols this server speaks, by the name used in query strings and URI_MAP. IIP is
// also the default for any other query string (its commands, iip-commands.ts, decide which
// protocol answers; see the handler's routing).

import { deepzoom } from './deepzoom.js';
import { iiif } from './iiif.js';
import { iip } from './iip.js';
import type { Protocol } from './protocol.js';
import { zoomify } from './zoomify.js';

export const PROTOCOLS: readonly Protocol[] = [iiif, iip, zoomify, deepzoom];

export function protocolByName(name: string): Protocol | undefined {
  const lower = name.toLowerCase();
  return PROTOCOLS.find((p) => p.name.toLowerCase() === lower);
}
