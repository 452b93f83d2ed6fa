// Runs wrk (Debian's /usr/bin/wrk) with load.lua and parses the BENCH line its done() prints.
import { spawn, execFileSync } from "node:child_process";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const LUA = join(dirname(fileURLToPath(import.meta.url)), "..", "load.lua");
export const WRK = process.env.WRK ?? "wrk";

export function wrkVersion() {
  try {
    execFileSync(WRK, ["-v"], { stdio: "pipe" });
  } catch (e) {
    const out = `${e.stdout ?? ""}${e.stderr ?? ""}`;
    const m = out.match(/wrk (\S+)/);
    if (m) return m[1];
    throw new Error(`wrk not runnable (${WRK}): install it with apt-get install wrk`);
  }
  return "unknown";
}

/**
 * One wrk run: `mode` beat|count, visitors [from, to), `seconds` long, `threads` threads,
 * `connections` connections. Bounded: killed 20 s after its duration if it hangs.
 */
export function runWrk({ origin, mode, from = 0, to = 1, prefix, seconds, threads = 1, connections = 8, timeoutS = 20 }) {
  const args = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, "--timeout", `${timeoutS}s`, "-s", LUA,
    `${origin}/`, "--", mode, String(from), String(Math.max(to, from + 1)), prefix, origin, String(threads)];
  return new Promise((resolve, reject) => {
    const child = spawn(WRK, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => { out += d; });
    child.stderr.on("data", (d) => { err = (err + d).slice(-4000); });
    const killer = setTimeout(() => child.kill("SIGKILL"), (seconds + timeoutS + 20) * 1000);
    child.on("error", (e) => { clearTimeout(killer); reject(e); });
    child.on("exit", (code) => {
      clearTimeout(killer);
      const line = out.split("\n").find((l) => l.startsWith("BENCH "));
      if (!line) return reject(new Error(`wrk ${mode} ${origin} exited ${code} without a result:\n${out}\n${err}`));
      const r = JSON.parse(line.slice(6));
      const errors = r.connect_errors + r.read_errors + r.write_errors + r.timeouts;
      resolve({ ...r, rps: r.requests / (r.duration_us / 1e6), errors, stderr: err.trim() });
    });
  });
}
