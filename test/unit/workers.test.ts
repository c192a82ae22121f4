import { describe, expect, it } from 'vitest';
import os from 'node:os';
import { nextRestartDelay, parseWorkers, workerEnvironment } from '../../src/workers.js';

describe('--workers', () => {
  it('takes a positive integer or auto', () => {
    expect(parseWorkers('1')).toBe(1);
    expect(parseWorkers('8')).toBe(8);
    expect(parseWorkers('auto')).toBe(os.availableParallelism());
    for (const bad of ['0', '-1', '1.5', 'two', '', '100000']) expect(parseWorkers(bad)).toBeUndefined();
  });

  it('restarts a long-lived worker at once and backs off a crash loop up to the cap', () => {
    expect(nextRestartDelay(60_000, 8000, 10_000, 30_000)).toBe(0);
    const delays: number[] = [];
    let d = 0;
    for (let i = 0; i < 9; i++) delays.push((d = nextRestartDelay(100, d, 10_000, 30_000)));
    expect(delays).toEqual([250, 500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
  });

  it('shares the default decoded-samples budget and the JPEG 2000 decode cores out among workers unless set', () => {
    expect(workerEnvironment(1, {}, 8)).toEqual({});
    expect(workerEnvironment(2, {}, 8)).toEqual({ IIPSRV_DECODED_CACHE_MB: '128', IIPSRV_J2K_DECODE_CORES: '4' });
    expect(workerEnvironment(32, {}, 8)).toEqual({ IIPSRV_DECODED_CACHE_MB: '32', IIPSRV_J2K_DECODE_CORES: '1' });
    expect(workerEnvironment(4, { IIPSRV_DECODED_CACHE_MB: '1000', IIPSRV_J2K_DECODE_CORES: '2' }, 8)).toEqual({});
  });
});
