import { readFileSync } from 'node:fs'

const TICK_US = 1_000_000 / 100 // Linux USER_HZ is 100

/** CPU time (µs, user + system) and resident memory (bytes) of a process, from /proc. */
export function procStats(pid: number): { cpuUs: number; rssBytes: number } {
  return { cpuUs: cpuUs(`/proc/${pid}/stat`), rssBytes: rssBytes(pid) }
}

/**
 * CPU time (µs) of a process's main thread alone (its JavaScript, for Node; all of mosquitto's
 * work): what a single-threaded broker saturates first.
 */
export function mainThreadCpuUs(pid: number): number {
  return cpuUs(`/proc/${pid}/task/${pid}/stat`)
}

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024
}

function cpuUs(path: string): number {
  const stat = readFileSync(path, 'utf8')
  // The command name may hold spaces; fields are counted after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * TICK_US
}

/**
 * CPU time (µs) the whole machine has spent busy, over all its cores and processes (this run's
 * or not: the machine is shared), from /proc/stat: user, nice, system, irq and softirq time.
 */
export function machineBusyUs(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? ''
  const [user, nice, system, , , irq, softirq] = line.trim().split(/\s+/).slice(1).map(Number)
  return [user, nice, system, irq, softirq].reduce<number>((a, t) => a + (t ?? 0), 0) * TICK_US
}

/**
 * Resolves once the whole machine has been quiet (under `cores` busy, in cores) over two
 * consecutive `sampleMs` windows, or after `timeoutMs` (then `false`). A step that starts while
 * the previous one's backlog still drains (a broker's store catching up, a saturated broker's
 * buffers, its garbage) measures that step's tail, not its own.
 */
export async function machineQuiet(cores = 0.3, sampleMs = 250, timeoutMs = 30_000): Promise<boolean> {
  const end = performance.now() + timeoutMs
  let calm = 0
  let last = machineBusyUs()
  let at = performance.now()
  while (performance.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, sampleMs))
    const now = machineBusyUs()
    const t = performance.now()
    const busy = (now - last) / ((t - at) * 1000)
    last = now
    at = t
    calm = busy < cores ? calm + 1 : 0
    if (calm >= 2) return true
  }
  return false
}
