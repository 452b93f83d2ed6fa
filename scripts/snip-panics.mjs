// Replaces the body of Rust's panic entry points in a .wasm with `unreachable`, and of the
// functions only a panic (or another dead path) reaches but the function table keeps, so
// that wasm-opt then drops everything only a panic message needs (core::fmt, the panic hook,
// the payload boxes): about 2.4 KB of the client's 17.5 KB gzip.
//
//   node scripts/snip-panics.mjs IN.wasm OUT.wasm
//
// The client is built with panic = "abort" and installs no panic hook, so a panic already
// ends in a trap with its message written nowhere; after this it traps a step earlier.
// Needs the wasm's name section (wasm-bindgen keeps it; run before wasm-opt). Prints the
// names it snipped and fails when it finds no panic entry point (names changed: look again).
import { readFileSync, writeFileSync } from "node:fs";

const [input, output] = process.argv.slice(2);
const buf = readFileSync(input);
// The functions every panicking path goes through, by demangled-name pattern; then the
// ones only a panic message reaches but that the function table keeps alive (wasm-opt
// cannot drop a table entry): the payloads' and String's core::fmt trait methods, every
// Display::fmt (the client formats nothing: its numbers go through cookie::push_decimal),
// the allocation-error hook (an out-of-memory aborts either way), and js-sys's JSPI task
// waker (its vtable is only used by spawning a future, which the client never does).
const C = "(\\[[0-9a-f]+\\])?";
const SNIP = [
  /^core(\[[0-9a-f]+\])?::panicking::panic_fmt$/,
  /^std(\[[0-9a-f]+\])?::panicking::begin_panic_handler/,
  /^std(\[[0-9a-f]+\])?::panicking::panic_with_hook/,
  /^rust_begin_unwind$/,
  /^__rustc::rust_begin_unwind$/,
  new RegExp(`^<std${C}::panicking::(panic_handler::(FormatStringPayload|StaticStrPayload)|begin_panic::Payload<[^>]*>) as `),
  new RegExp(`^<alloc${C}::string::String as core${C}::fmt::Write>::`),
  new RegExp(` as core${C}::fmt::Display>::fmt$`),
  new RegExp(`^std${C}::alloc::default_alloc_error_hook$`),
  /^js_sys::futures::jspi::task_waker::raw_/,
];

let p = 0;
const leb = () => {
  let r = 0, s = 0, b;
  do { b = buf[p++]; r += (b & 0x7f) * 2 ** s; s += 7; } while (b & 0x80);
  return r;
};
// Skips a length-prefixed string (p must move only after its length is read).
const skip = () => { const l = leb(); p += l; };
const encodeLeb = (n) => {
  const out = [];
  do { let b = n & 0x7f; n = Math.floor(n / 128); if (n) b |= 0x80; out.push(b); } while (n);
  return Buffer.from(out);
};

if (buf.readUInt32LE(0) !== 0x6d736100) throw new Error(`${input}: not a wasm module`);
p = 8;
const sections = [];
let importedFns = 0;
const names = new Map();
while (p < buf.length) {
  const start = p;
  const id = buf[p++];
  const len = leb();
  const body = p;
  const end = p + len;
  sections.push({ id, start, body, end });
  if (id === 2) {
    for (let n = leb(), i = 0; i < n; i++) {
      skip(); // module name
      skip(); // field name
      const kind = buf[p++];
      if (kind === 0) { leb(); importedFns++; }
      else if (kind === 1) { p++; const f = leb(); leb(); if (f & 1) leb(); }
      else if (kind === 2) { const f = leb(); leb(); if (f & 1) leb(); }
      else if (kind === 3) { p += 2; }
      else { p++; leb(); }
    }
  } else if (id === 0) {
    const nl = leb();
    const name = buf.subarray(p, p + nl).toString();
    p += nl;
    if (name === "name") {
      while (p < end) {
        const sub = buf[p++];
        const sl = leb();
        const se = p + sl;
        if (sub === 1) {
          for (let n = leb(), i = 0; i < n; i++) {
            const idx = leb();
            const l = leb();
            names.set(idx, buf.subarray(p, p + l).toString());
            p += l;
          }
        }
        p = se;
      }
    }
  }
  p = end;
}
if (!names.size) throw new Error(`${input}: no name section (snip before wasm-opt)`);
const targets = new Set([...names].filter(([, n]) => SNIP.some((re) => re.test(n))).map(([i]) => i));
if (!targets.size) throw new Error("no panic entry point found by name: update SNIP in scripts/snip-panics.mjs");

const code = sections.find((s) => s.id === 10);
p = code.body;
const parts = [buf.subarray(0, code.start), Buffer.from([10])];
const bodies = [];
const count = leb();
bodies.push(encodeLeb(count));
const snipped = [];
for (let i = 0; i < count; i++) {
  const size = leb();
  const fn = buf.subarray(p, p + size);
  p += size;
  if (targets.has(importedFns + i)) {
    // No locals; unreachable; end. Valid for any signature.
    const stub = Buffer.from([0x00, 0x00, 0x0b]);
    bodies.push(encodeLeb(stub.length), stub);
    snipped.push(names.get(importedFns + i));
  } else {
    bodies.push(encodeLeb(size), fn);
  }
}
const codeBody = Buffer.concat(bodies);
parts.push(encodeLeb(codeBody.length), codeBody, buf.subarray(code.end));
writeFileSync(output, Buffer.concat(parts));
new WebAssembly.Module(readFileSync(output)); // still valid
console.log(`snipped ${snipped.length}: ${snipped.join(", ")}`);
