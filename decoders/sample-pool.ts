// Reusable buffers for samples that live only while one libvips pipeline runs (a region
// assembled from cached tile blocks, decoders/tiff/tile-blocks.ts). A region is megabytes; a new
// buffer for each costs fresh pages from the kernel and, worse, drives V8's garbage collector,
// which starts a full collection for every few tens of megabytes of new external memory. A few
// buffers are kept and handed out again once the pipeline that read them has finished.

/** Buffers kept for reuse: at most this many, of at most this many bytes in all. */
const KEEP = 8;
const KEEP_BYTES = 64 * 1024 * 1024;
/** Buffers are made at least this large, so that one serves regions of different sizes. */
const SMALLEST = 4 * 1024 * 1024;

const free: ArrayBuffer[] = [];
let kept = 0;

/** A buffer of exactly `n` bytes (contents undefined); give it back with `giveBack`. */
export function borrow(n: number): Buffer {
  let best = -1;
  for (let i = 0; i < free.length; i++) {
    if (free[i].byteLength >= n && (best < 0 || free[i].byteLength < free[best].byteLength)) best = i;
  }
  if (best >= 0) {
    const ab = free.splice(best, 1)[0];
    kept -= ab.byteLength;
    return Buffer.from(ab, 0, n);
  }
  if (n > KEEP_BYTES / 4) return Buffer.allocUnsafeSlow(n);
  return Buffer.from(new ArrayBuffer(Math.max(n, SMALLEST)), 0, n);
}

/** Returns a buffer from `borrow`; nothing may read or write it afterwards. */
export function giveBack(b: Buffer): void {
  const ab = b.buffer;
  if (!(ab instanceof ArrayBuffer) || free.length >= KEEP || kept + ab.byteLength > KEEP_BYTES || free.includes(ab)) return;
  free.push(ab);
  kept += ab.byteLength;
}
