// A child process in a process group of its own (so that it and all its children can be
// measured and stopped together), with its output kept for error messages.
import { spawn } from "node:child_process";

/**
 * Spawns `cmd args` detached. Returns { pid (the group's leader), output() (its last 20,000
 * characters), exited() (the
 * exit code or signal, or null while it runs), stop() (SIGTERM to the whole group, SIGKILL
 * after 5 s), waitFor(test, ms, what) (polls `test()` until truthy; throws with the output
 * if the child exits first or `ms` pass) }.
 */
export function spawnGroup(cmd, args, { cwd, env } = {}) {
  const child = spawn(cmd, args, { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = ""; // the last 20,000 characters
  const keep = (d) => { output = (output + d).slice(-20_000); };
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
      if (exited !== null) throw new Error(`${what} exited with ${exited}:\n${output}`);
      if (await test()) return;
      if (Date.now() > deadline) { await stop(); throw new Error(`${what} not ready in ${ms / 1000} s:\n${output}`); }
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return { pid: child.pid, output: () => output, exited: () => exited, stop, waitFor };
}
