import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backoff } from '../dist/index.js';

test('the bound doubles from minDelay up to maxDelay, and reset starts over', () => {
  const b = new Backoff({ minDelay: 100, maxDelay: 1000, random: () => 0.999999 });
  const delays = [];
  for (let i = 0; i < 7; i++) delays.push(b.next());
  assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000, 1000]);
  assert.equal(b.attempts, 7);
  b.reset();
  assert.equal(b.next(), 100);
});

test('each delay is jittered within [bound/2, bound]', () => {
  let r = 0;
  const seq = [0, 0.5, 0.25, 0.75, 0.1];
  const b = new Backoff({ minDelay: 1000, maxDelay: 1000, random: () => seq[r++ % seq.length] });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [500, 750, 625, 875, 550]);
  const c = new Backoff({ minDelay: 10, maxDelay: 5000 });
  for (let i = 0; i < 200; i++) {
    const bound = c.bound();
    const d = c.next();
    assert.ok(d >= bound / 2 - 0.5 && d <= bound + 0.5, `${d} outside [${bound / 2}, ${bound}]`);
    if (i % 20 === 19) c.reset();
  }
});

test('nonsense settings are refused', () => {
  assert.throws(() => new Backoff({ minDelay: 100, maxDelay: 10 }), RangeError);
  assert.throws(() => new Backoff({ factor: 0.5 }), RangeError);
  assert.throws(() => new Backoff({ minDelay: -1 }), RangeError);
});
