// A child process in a process group of its own (so that it and all its children can be
// measured and stopped together), with its output kept for error messages.
import { spawn } from "node:child_process";

/**
 * Spawns `cmd args` detached. Returns { pid (the group's leader), output() (its first 6,000
 * and last 14,000 characters: the first error of a failed start comes before whatever a
 * dying child's children print after it, such as esbuild's goroutine dump), exited() (the
 * exit code or signal, or null while it runs), stop() (SIGTERM to the whole group, SIGKILL
 * after 5 s), waitFor(test, ms, what) (polls `test()` until truthy; throws with the output
 * if the child exits first or `ms` pass, the error's `exitCode` set in the first case and
 * `firstError` its first error line) }.
 */
export function spawnGroup(cmd, args, { cwd, env } = {}) {
  const child = spawn(cmd, args, { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  const HEAD = 6_000;
  const TAIL = 14_000;
  let head = "";
  let tail = "";
  let dropped = 0; // characters between head and tail
  const keep = (d) => {
    d = String(d);
    if (head.length < HEAD) {
      const n = HEAD - head.length;
      head += d.slice(0, n);
      d = d.slice(n);
    }
    tail += d;
    if (tail.length > TAIL) { dropped += tail.length - TAIL; tail = tail.slice(-TAIL); }
  };
  const output = () => head + (dropped ? `\n[… ${dropped} characters left out …]\n` : "") + tail;
  // The error waitFor throws: the output, then its first line that reads as an error,
  // repeated last, where a log's tail shows it. `exitCode` (set if the child exited, else
  // undefined: it was not ready in time) and `firstError` say the same to callers.
  const failure = (why) => {
    const all = output();
    const line = all.split("\n").find((l) => /error|fatal|✘|EADDRINUSE|panic/i.test(l))?.trim();
    const e = new Error(`${why}:\n${all}${line ? `\nits first error line: ${line}` : ""}`);
    e.exitCode = exited ?? undefined;
    e.firstError = line;
    return e;
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let exited = null;
  child.on("exit", (code, signal) => { exited = code ?? signal; });
  const stop = async () => {
    if (exited !== null) return;
    try { process.kill(-child.pid, "SIGTERM"); } catch { /* already gone */ }
    const deadline = Date.now() + 5000;
    while (exited === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (exited === null) { try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ } }
  };
  const waitFor = async (test, ms, what) => {
    const deadline = Date.now() + ms;
    for (;;) {
      if (exited !== null) throw failure(`${what} exited with ${exited}`);
      if (await test()) return;
      if (Date.now() > deadline) { await stop(); throw failure(`${what} not ready in ${ms / 1000} s`); }
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return { pid: child.pid, output, exited: () => exited, stop, waitFor };
}
