// A child process in a process group of its own (so that it and all its children can be
// measured and stopped together), with its output kept for error messages.
import { spawn } from "node:child_process";

/**
 * Spawns `cmd args` detached. Returns { pid (the group's leader), output() (its first 6,000
 * and last 14,000 characters: the first error of a failed start comes before whatever a
 * dying child's children print after it, such as esbuild's goroutine dump), exited() (the
 * exit code or signal, or null while it runs), stop() (SIGTERM to the whole group, SIGKILL
 * after 5 s), waitFor(test, ms, what) (polls `test()` until truthy; throws with the output
 * if the child exits first or `ms` pass) }.
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
  // Its first line that reads as an error, repeated last, where a log's tail shows it.
  const firstError = () => {
    const line = output().split("\n").find((l) => /error|fatal|✘|EADDRINUSE|panic/i.test(l));
    return line ? `\nits first error line: ${line.trim()}` : "";
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
      if (exited !== null) throw new Error(`${what} exited with ${exited}:\n${output()}${firstError()}`);
      if (await test()) return;
      if (Date.now() > deadline) { await stop(); throw new Error(`${what} not ready in ${ms / 1000} s:\n${output()}${firstError()}`); }
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return { pid: child.pid, output, exited: () => exited, stop, waitFor };
}
