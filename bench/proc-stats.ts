import { readFileSync } from 'node:fs'

const TICK_US = 1_000_000 / 100 // Linux USER_HZ is 100

/** CPU time (µs, user + system) and resident memory (bytes) of a process, from /proc. */
export function procStats(pid: number): { cpuUs: number; rssBytes: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // The command name may hold spaces; fields are counted after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
  return { cpuUs: (utime + stime) * TICK_US, rssBytes: rssKb * 1024 }
}
