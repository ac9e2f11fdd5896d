#!/usr/bin/env node
// A small OTLP/HTTP receiver for tests. It decodes requests with the generated
// protobuf code shipped in @opentelemetry/otlp-transformer 0.216.0 (not with
// anything written in this repository) and writes what it decoded, one JSON
// object per line, to the output file.
//
//   node receiver.js --port 0 --out /tmp/otlp.jsonl [--fail-first N]
//
// Prints "LISTENING <port>" on stdout once bound (port 0 picks a free one).
// Accepts POST /v1/traces and /v1/metrics, protobuf (application/x-protobuf)
// or JSON (application/json, OTLP/JSON: ids in hex, 64-bit ints as strings).
// Each output line:
//   {"signal":"traces"|"metrics","encoding":"protobuf"|"json","path":...,
//    "headers":{...},"request":<decoded request, ids as lowercase hex,
//    64-bit integers as strings, enums as numbers>}
// or {"signal":...,"error":"..."} when decoding failed (answered 400).
// --fail-first N answers the first N requests with 503 and Retry-After: 0.
'use strict';

const fs = require('fs');
const http = require('http');
const root = require('@opentelemetry/otlp-transformer/build/src/generated/root');

const v1 = root.opentelemetry.proto.collector;
const TYPES = {
  '/v1/traces': {
    signal: 'traces',
    request: v1.trace.v1.ExportTraceServiceRequest,
    response: v1.trace.v1.ExportTraceServiceResponse,
  },
  '/v1/metrics': {
    signal: 'metrics',
    request: v1.metrics.v1.ExportMetricsServiceRequest,
    response: v1.metrics.v1.ExportMetricsServiceResponse,
  },
};
const ID_FIELDS = new Set(['traceId', 'spanId', 'parentSpanId']);

function parseArgs(argv) {
  const args = { port: 0, out: null, failFirst: 0 };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') args.port = Number(argv[++i]);
    else if (a === '--out') args.out = argv[++i];
    else if (a === '--fail-first') args.failFirst = Number(argv[++i]);
    else {
      console.error(`unknown argument ${a}`);
      process.exit(2);
    }
  }
  if (!args.out) {
    console.error('usage: receiver.js --port N --out FILE [--fail-first N]');
    process.exit(2);
  }
  return args;
}

// Ids: base64 (protobufjs) -> lowercase hex, recursively.
function idsToHex(v) {
  if (Array.isArray(v)) return v.map(idsToHex);
  if (v && typeof v === 'object') {
    const out = {};
    for (const [k, x] of Object.entries(v)) {
      out[k] = ID_FIELDS.has(k) && typeof x === 'string' ? Buffer.from(x, 'base64').toString('hex') : idsToHex(x);
    }
    return out;
  }
  return v;
}

// OTLP/JSON -> protobufjs plain object: hex ids become bytes.
function jsonIdsToBytes(v, errors, path) {
  if (Array.isArray(v)) return v.map((x, i) => jsonIdsToBytes(x, errors, `${path}[${i}]`));
  if (v && typeof v === 'object') {
    const out = {};
    for (const [k, x] of Object.entries(v)) {
      if (ID_FIELDS.has(k)) {
        if (typeof x !== 'string' || !/^([0-9a-f]{2})*$/.test(x)) {
          errors.push(`${path}.${k} is not lowercase hex: ${JSON.stringify(x)}`);
        }
        out[k] = Buffer.from(String(x), 'hex');
      } else {
        out[k] = jsonIdsToBytes(x, errors, `${path}.${k}`);
      }
    }
    return out;
  }
  return v;
}

// Every key of the JSON document must be a field the generated code knows
// (protobufjs' fromObject silently ignores unknown ones).
function unknownKeys(original, known, path, errors) {
  if (Array.isArray(original)) {
    original.forEach((x, i) => unknownKeys(x, Array.isArray(known) ? known[i] : undefined, `${path}[${i}]`, errors));
    return;
  }
  if (original && typeof original === 'object') {
    for (const [k, x] of Object.entries(original)) {
      if (!known || typeof known !== 'object' || !(k in known)) {
        errors.push(`unknown field ${path}.${k}`);
      } else {
        unknownKeys(x, known[k], `${path}.${k}`, errors);
      }
    }
  }
}

const TO_OBJECT = { longs: String, enums: Number, bytes: String, defaults: false, arrays: false };

function decode(type, body, contentType) {
  if (contentType.startsWith('application/json')) {
    const doc = JSON.parse(body.toString('utf8'));
    const errors = [];
    const msg = type.request.fromObject(jsonIdsToBytes(doc, errors, ''));
    const known = type.request.toObject(msg, { ...TO_OBJECT, defaults: true, arrays: true });
    unknownKeys(doc, known, '', errors);
    if (errors.length) throw new Error(errors.join('; '));
    return { encoding: 'json', request: idsToHex(type.request.toObject(msg, TO_OBJECT)) };
  }
  if (!contentType.startsWith('application/x-protobuf')) {
    throw new Error(`unsupported content-type ${contentType}`);
  }
  const msg = type.request.decode(body);
  const err = type.request.verify(msg);
  if (err) throw new Error(`verify: ${err}`);
  return { encoding: 'protobuf', request: idsToHex(type.request.toObject(msg, TO_OBJECT)) };
}

function main() {
  const args = parseArgs(process.argv);
  const out = fs.openSync(args.out, 'a');
  let failLeft = args.failFirst;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const type = TYPES[req.url];
      if (req.method !== 'POST' || !type) {
        res.writeHead(404).end();
        return;
      }
      if (failLeft > 0) {
        failLeft--;
        res.writeHead(503, { 'Retry-After': '0' }).end();
        return;
      }
      const contentType = String(req.headers['content-type'] || '');
      const line = { signal: type.signal, path: req.url, headers: req.headers };
      let status = 200;
      try {
        Object.assign(line, decode(type, Buffer.concat(chunks), contentType));
      } catch (e) {
        line.error = String(e && e.message ? e.message : e);
        status = 400;
      }
      fs.writeSync(out, JSON.stringify(line) + '\n');
      if (status !== 200) {
        res.writeHead(status, { 'Content-Type': 'text/plain' }).end(line.error);
      } else if (contentType.startsWith('application/json')) {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
      } else {
        const body = type.response.encode(type.response.create({})).finish();
        res.writeHead(200, { 'Content-Type': 'application/x-protobuf' }).end(Buffer.from(body));
      }
    });
  });
  server.listen(args.port, '127.0.0.1', () => {
    process.stdout.write(`LISTENING ${server.address().port}\n`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
