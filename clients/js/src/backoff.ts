// Reconnect delays: exponential with jitter (each delay uniform between half
// the exponential bound and the bound), so that thousands of clients dropped
// at once by a deploy do not come back in lockstep.

export interface BackoffOptions {
  /** First bound, ms (default 500). */
  minDelay?: number;
  /** Largest bound, ms (default 20000). */
  maxDelay?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Source of randomness in [0, 1), replaceable in tests. */
  random?: () => number;
}

export class Backoff {
  readonly minDelay: number;
  readonly maxDelay: number;
  readonly factor: number;
  private readonly random: () => number;
  private attempt = 0;

  constructor(o: BackoffOptions = {}) {
    this.minDelay = o.minDelay ?? 500;
    this.maxDelay = o.maxDelay ?? 20000;
    this.factor = o.factor ?? 2;
    this.random = o.random ?? Math.random;
    if (!(this.minDelay >= 0) || !(this.maxDelay >= this.minDelay) || !(this.factor >= 1)) {
      throw new RangeError('backoff: need 0 <= minDelay <= maxDelay and factor >= 1');
    }
  }

  /** Attempts since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The bound of the next delay: minDelay * factor^attempt, at most maxDelay. */
  bound(): number {
    return Math.min(this.maxDelay, this.minDelay * Math.pow(this.factor, this.attempt));
  }

  /**
   * The delay before the next attempt, uniform in [bound/2, bound] (never
   * near zero, so a refusing server is not hammered); the bound grows.
   */
  next(): number {
    const b = this.bound();
    this.attempt++;
    return Math.round(b / 2 + this.random() * (b / 2));
  }

  /** After a connection that lived: start again from minDelay. */
  reset(): void {
    this.attempt = 0;
  }
}
