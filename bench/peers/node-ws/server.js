'use strict';
// A minimal wstrace-protocol server on Node `ws`, for comparison runs in
// bench/run. Same client protocol as wstrace (Subscribe, Unsubscribe, Message,
// Ping; Errors with the same codes), no telemetry, one process, one thread.
// Usage: node server.js [--host 127.0.0.1] [--port 0] [--compression on|off]
// Prints `listening port=NNNN` on stderr once it accepts connections.
const { WebSocketServer } = require('ws');

const args = { host: '127.0.0.1', port: 0, compression: 'off' };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, '');
  if (!(key in args)) {
    console.error(`unknown option ${process.argv[i]}`);
    process.exit(2);
  }
  args[key] = process.argv[i + 1];
}

const CHANNEL = /^[A-Za-z0-9_.:/-]{1,128}$/;
const channels = new Map(); // name -> Set of sockets

const wss = new WebSocketServer({
  host: args.host,
  port: Number(args.port),
  path: '/ws',
  maxPayload: 1 << 20,
  clientTracking: false,
  // Like wstrace: no per-connection compressor state on the server side.
  perMessageDeflate: args.compression === 'on' ? { serverNoContextTakeover: true, threshold: 0 } : false,
});

function reply(ws, obj, id) {
  if (id !== undefined) obj.id = id;
  ws.send(JSON.stringify(obj));
}

function error(ws, code, message, id) {
  reply(ws, { type: 'Error', code, message }, id);
}

wss.on('connection', (ws) => {
  const mine = new Set();
  ws.on('message', (data, isBinary) => {
    if (isBinary) return error(ws, 'unsupported_frame', 'binary frames are not supported');
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return error(ws, 'invalid_json', 'not JSON');
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
      return error(ws, 'invalid_json', 'not a JSON object');
    }
    const id = typeof msg.id === 'string' || typeof msg.id === 'number' ? msg.id : undefined;
    if (typeof msg.type !== 'string') return error(ws, 'missing_field', 'type', id);
    const needChannel = () => {
      if (typeof msg.channel !== 'string') {
        error(ws, 'missing_field', 'channel', id);
        return false;
      }
      if (!CHANNEL.test(msg.channel)) {
        error(ws, 'invalid_channel', 'bad channel name', id);
        return false;
      }
      return true;
    };
    switch (msg.type) {
      case 'Ping':
        return reply(ws, { type: 'Pong' }, id);
      case 'Subscribe': {
        if (!needChannel()) return;
        if (!mine.has(msg.channel)) {
          if (mine.size >= 100) return error(ws, 'too_many_subscriptions', 'limit 100', id);
          mine.add(msg.channel);
          let set = channels.get(msg.channel);
          if (!set) channels.set(msg.channel, (set = new Set()));
          set.add(ws);
        }
        return reply(ws, { type: 'Subscribed', channel: msg.channel }, id);
      }
      case 'Unsubscribe': {
        if (!needChannel()) return;
        if (!mine.delete(msg.channel)) return error(ws, 'not_subscribed', msg.channel, id);
        const set = channels.get(msg.channel);
        set.delete(ws);
        if (set.size === 0) channels.delete(msg.channel);
        return reply(ws, { type: 'Unsubscribed', channel: msg.channel }, id);
      }
      case 'Message': {
        if (!needChannel()) return;
        if (typeof msg.content !== 'string') return error(ws, 'missing_field', 'content', id);
        const set = channels.get(msg.channel);
        if (!set) return;
        // Encode once; ws frames it per recipient.
        const out = Buffer.from(JSON.stringify({ type: 'Message', channel: msg.channel, content: msg.content }));
        for (const peer of set) {
          if (peer.readyState === 1) peer.send(out, { binary: false });
        }
        return;
      }
      default:
        return error(ws, 'unknown_type', msg.type, id);
    }
  });
  ws.on('close', () => {
    for (const name of mine) {
      const set = channels.get(name);
      if (!set) continue;
      set.delete(ws);
      if (set.size === 0) channels.delete(name);
    }
    mine.clear();
  });
  ws.on('error', () => {});
});

wss.on('listening', () => {
  console.error(`listening port=${wss.address().port}`);
});

const stop = () => wss.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
