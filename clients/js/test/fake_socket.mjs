// A WebSocket stand-in the tests drive by hand: they open it, push server
// frames into it, read what the client sent and end it with any close code.

export class FakeSocket {
  static instances = [];
  static last() {
    return FakeSocket.instances[FakeSocket.instances.length - 1];
  }
  static reset() {
    FakeSocket.instances = [];
  }

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = undefined;
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    this.waiters = [];
    FakeSocket.instances.push(this);
  }

  send(data) {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    const frame = JSON.parse(data);
    this.sent.push(frame);
    for (const w of this.waiters.splice(0)) w();
  }

  close(code, reason) {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }

  // --- the server's side ---
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }

  push(obj) {
    this.onmessage?.({ data: JSON.stringify(obj) });
  }

  drop(code = 1006, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** Resolves with the first sent frame matching `pred` (already sent or future). */
  async nextSent(pred, ms = 2000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const f = this.sent.find(pred);
      if (f) return f;
      if (Date.now() > deadline) throw new Error('the client did not send the expected frame');
      await new Promise((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 20);
      });
    }
  }
}

/** Resolves when the client's socket count reaches n (a reconnect happened). */
export async function socketNumber(n, ms = 2000) {
  const deadline = Date.now() + ms;
  while (FakeSocket.instances.length < n) {
    if (Date.now() > deadline) throw new Error(`no socket #${n} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return FakeSocket.instances[n - 1];
}

export function nextEvent(emitter, event, ms = 2000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no '${event}' event within ${ms} ms`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(t);
      resolve(args.length > 1 ? args : args[0]);
    });
  });
}
