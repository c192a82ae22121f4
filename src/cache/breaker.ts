// Circuit breaker for a remote cache tier. After `threshold` consecutive failures it stops
// asking for a cool-down period, then lets one probe through: success closes it again, failure
// doubles the cool-down (up to a cap). A dead or hung Memcached then costs nothing per request
// most of the time, and a restarted one is used again without restarting the server.

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /** Consecutive failures that open the circuit. More than one, so that a single slow answer
   * under a burst of load does not switch the tier off. */
  readonly threshold: number;
  /** First cool-down in ms. */
  readonly baseMs: number;
  /** Longest cool-down in ms. */
  readonly maxMs: number;
  readonly now?: () => number;
  /** Told about every change of state (for start-up style log lines). */
  readonly onChange?: (state: BreakerState, detail: string) => void;
}

export class CircuitBreaker {
  private stateNow: BreakerState = 'closed';
  private failures = 0;
  private cooldownMs: number;
  private reopenAt = 0;
  /** How many times the circuit opened. */
  opened = 0;

  constructor(private readonly o: BreakerOptions) {
    this.cooldownMs = o.baseMs;
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  get state(): BreakerState {
    return this.stateNow;
  }

  /** Whether to ask the backend now. In half-open state only the first caller gets through. */
  allow(): boolean {
    if (this.stateNow === 'closed') return true;
    if (this.stateNow === 'open' && this.now() >= this.reopenAt) {
      this.stateNow = 'half-open';
      return true;
    }
    return false;
  }

  success(): void {
    if (this.stateNow !== 'closed') {
      this.stateNow = 'closed';
      this.o.onChange?.('closed', 'answering again');
    }
    this.failures = 0;
    this.cooldownMs = this.o.baseMs;
  }

  failure(reason: string): void {
    if (this.stateNow === 'open') return; // late answers of requests sent before it opened
    if (this.stateNow === 'half-open') {
      this.cooldownMs = Math.min(this.cooldownMs * 2, this.o.maxMs);
      this.open(`still failing (${reason})`);
      return;
    }
    if (++this.failures >= this.o.threshold) this.open(`${this.failures} failures in a row (${reason})`);
  }

  private open(detail: string): void {
    this.stateNow = 'open';
    this.opened++;
    this.failures = 0;
    this.reopenAt = this.now() + this.cooldownMs;
    this.o.onChange?.('open', `${detail}; not asking for ${(this.cooldownMs / 1000).toFixed(1)} s`);
  }
}
