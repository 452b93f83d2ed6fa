// Replaces the body of Rust's panic entry points in a .wasm with `unreachable`, and of the
// functions only a panic (or another dead path) reaches but the function table keeps, so
// that wasm-opt then drops everything only a panic message needs (core::fmt, the panic hook,
// the payload boxes): 4,985 → 3,055 B gzip of the client's machine-only wasm.
//
//   node scripts/snip-panics.mjs IN.wasm OUT.wasm
//
// The client is built with panic = "abort" and installs no panic hook, so a panic already
// ends in a trap with its message written nowhere; after this it traps a step earlier.
// Needs the wasm's name section (cargo's `strip = "debuginfo"` keeps it; run before wasm-opt). Prints the
// names it snipped and fails when it finds no panic entry point (names changed: look again).
import { readFileSync, writeFileSync } from "node:fs";
import binaryen from "binaryen";

const [input, output] = process.argv.slice(2);
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
  // The same functions by their v0-mangled names, which a wasm straight from cargo (no
  // wasm-bindgen to demangle its name section) carries; and the thread-local access
  // error and out-of-memory paths, which only panic.
  /_4core9panicking9panic_fmt$/,
  /_3std9panicking(15panic_with_hook|13panic_handler)/,
  /rust_begin_unwind$/,
  /_3std5alloc(24default_alloc_error_hook|8rust_oom)/,
  /_3std6thread5local18panic_access_error$/,
  /_6string6StringNtNtCs[0-9A-Za-z]+_4core3fmt5Write/,
  /_4core3fmt7Display3fmt/,
];

// binaryen (the npm package whose wasm-opt the build runs) reads and writes the module; its
// function names come from the name section wasm-bindgen keeps.
const mod = binaryen.readBinary(readFileSync(input));
// The features the build's wasm-opt runs enable (scripts/build-client.sh), no more: with
// all of them binaryen writes encodings (compact imports) the next step cannot read.
const F = binaryen.Features;
mod.setFeatures(F.BulkMemory | F.BulkMemoryOpt | F.NontrappingFPToInt | F.SignExt | F.ReferenceTypes | F.Multivalue | F.MutableGlobals);
const snipped = [];
for (let i = 0; i < mod.getNumFunctions(); i++) {
  const fn = mod.getFunctionByIndex(i);
  const info = binaryen.getFunctionInfo(fn);
  // Imports have no body to replace.
  if (info.module || !SNIP.some((re) => re.test(info.name))) continue;
  binaryen.Function.setBody(fn, mod.unreachable()); // valid for any signature
  snipped.push(info.name);
}
if (!snipped.length) {
  throw new Error("no panic entry point found by name (no name section? names changed?): update SNIP in scripts/snip-panics.mjs");
}
if (!mod.validate()) throw new Error("the snipped module does not validate");
writeFileSync(output, mod.emitBinary());
mod.dispose();
console.log(`snipped ${snipped.length} functions`);
