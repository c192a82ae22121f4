// Shared fixtures for protocol tests: the spec's example image (2000×1400 RGB, four levels,
// 256×256 tiles), default protocol options, and a request as the handler hands it over.

import { ImageServerError } from '../../../src/core/errors.js';
import type { ImageInfo, Level } from '../../../src/core/image-info.js';
import type { ProtocolInput, ProtocolOptions } from '../../../src/protocols/protocol.js';

export function pyramid(sizes: ReadonlyArray<readonly [number, number]>, tile = 256): Level[] {
  return sizes.map(([width, height]) => ({ width, height, tileWidth: tile, tileHeight: tile }));
}

export const IMAGE: ImageInfo = {
  format: 'tiff',
  width: 2000,
  height: 1400,
  levels: pyramid([
    [2000, 1400],
    [1000, 700],
    [500, 350],
    [250, 175],
  ]),
  channels: 3,
  bitsPerSample: 8,
  sampleFormat: 'uint',
  colourSpace: 'srgb',
  compression: 'deflate',
  minValues: [0, 0, 0],
  maxValues: [255, 255, 255],
  metadata: {},
};

export const OPTIONS: ProtocolOptions = {
  maxCvt: 5000,
  allowUpscaling: true,
  baseUrl: '',
  iiifVersion: 3,
  formats: ['jpg', 'png', 'webp'],
  copyright: '',
  cors: true,
};

export interface InputOverrides {
  via?: 'query' | 'path';
  headers?: Record<string, string>;
  https?: boolean;
  requestUri?: string;
  options?: Partial<ProtocolOptions>;
}

/** A request as the handler hands it over: URI_MAP `/iiif/<argument>` unless told otherwise. */
export function input(argument: string, o: InputOverrides = {}): ProtocolInput {
  const via = o.via ?? 'path';
  return {
    argument,
    via,
    headers: o.headers ?? { host: 'localhost:8080' },
    https: o.https ?? false,
    requestUri: o.requestUri ?? (via === 'path' ? `/iiif/${argument}` : `/fcgi-bin/iipsrv.fcgi?IIIF=${argument}`),
    options: { ...OPTIONS, ...o.options },
  };
}

/** The ImageServerError `fn` throws (fails when it throws nothing, rethrows anything else). */
export function caught(fn: () => unknown): ImageServerError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ImageServerError) return e;
    throw e;
  }
  throw new Error('expected an ImageServerError');
}
