// Copying a rectangle of rows between buffers of interleaved samples (cropping a cached level,
// assembling a region from cached tile blocks). Buffer#copy makes a typed-array view per call,
// so a row-by-row JavaScript loop over a thousand-row region spends more on those views and the
// garbage they leave than on copying; the native addon's copyRows does the whole rectangle in
// one call. Without the addon (not built), the JavaScript loop does the same.

import { loadNativeAddon, type NativeAddon } from './jpeg2000/native.js';

type CopyRows = NonNullable<NativeAddon['copyRows']>;

/**
 * Copies `rows` rows of `rowBytes` bytes from `src` (starting at `srcOffset`, rows `srcStride`
 * apart) to `dst` (at `dstOffset`, rows `dstStride` apart).
 */
export const copyRows: CopyRows = (dst, dstOffset, dstStride, src, srcOffset, srcStride, rowBytes, rows) => {
  const native = loadNativeAddon().addon?.copyRows;
  if (native) {
    native(dst, dstOffset, dstStride, src, srcOffset, srcStride, rowBytes, rows);
    return;
  }
  for (let r = 0; r < rows; r++) {
    const from = srcOffset + r * srcStride;
    src.copy(dst, dstOffset + r * dstStride, from, from + rowBytes);
  }
};
