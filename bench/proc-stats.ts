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
