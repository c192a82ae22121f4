import { describe, expect, it } from 'vitest';
import { CircuitBreaker, type BreakerState } from '../../../src/cache/breaker.js';

function make(threshold = 3) {
  let now = 0;
  const changes: BreakerState[] = [];
  const b = new CircuitBreaker({ threshold, baseMs: 5000, maxMs: 30_000, now: () => now, onChange: (s) => changes.push(s) });
  return { b, changes, advance: (ms: number) => (now += ms) };
}

describe('CircuitBreaker', () => {
  it('opens after the threshold of consecutive failures, not before', () => {
    const { b } = make();
    b.failure('x');
    b.failure('x');
    expect(b.allow()).toBe(true);
    b.failure('x');
    expect(b.state).toBe('open');
    expect(b.allow()).toBe(false);
  });

  it('a success in between resets the count', () => {
    const { b } = make();
    b.failure('x');
    b.failure('x');
    b.success();
    b.failure('x');
    b.failure('x');
    expect(b.state).toBe('closed');
  });

  it('lets exactly one probe through after the cool-down, and closes on its success', () => {
    const { b, advance, changes } = make();
    for (let i = 0; i < 3; i++) b.failure('x');
    advance(4999);
    expect(b.allow()).toBe(false);
    advance(1);
    expect(b.allow()).toBe(true);
    expect(b.state).toBe('half-open');
    expect(b.allow()).toBe(false); // the probe is out
    b.success();
    expect(b.state).toBe('closed');
    expect(b.allow()).toBe(true);
    expect(changes).toEqual(['open', 'closed']);
  });

  it('doubles the cool-down while probes fail, up to the cap, and resets after a success', () => {
    const { b, advance } = make();
    for (let i = 0; i < 3; i++) b.failure('x');
    const waits: number[] = [];
    for (let round = 0; round < 5; round++) {
      let waited = 0;
      while (!b.allow()) {
        advance(500);
        waited += 500;
      }
      waits.push(waited);
      b.failure('still down');
    }
    expect(waits).toEqual([5000, 10_000, 20_000, 30_000, 30_000]);
    while (!b.allow()) advance(500);
    b.success();
    for (let i = 0; i < 3; i++) b.failure('x');
    let waited = 0;
    while (!b.allow()) {
      advance(500);
      waited += 500;
    }
    expect(waited).toBe(5000);
    expect(b.opened).toBe(7);
  });

  it('ignores late failures while open', () => {
    const { b, advance } = make();
    for (let i = 0; i < 3; i++) b.failure('x');
    b.failure('late');
    b.failure('late');
    advance(5000);
    expect(b.allow()).toBe(true);
  });
});
