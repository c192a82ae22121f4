// The protocols this server speaks, by the name used in query strings and URI_MAP.

import { iiif } from './iiif.js';
import type { Protocol } from './protocol.js';

export const PROTOCOLS: readonly Protocol[] = [iiif];

export function protocolByName(name: string): Protocol | undefined {
  const lower = name.toLowerCase();
  return PROTOCOLS.find((p) => p.name.toLowerCase() === lower);
}
