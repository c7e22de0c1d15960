import { type ChildProcess, fork } from 'node:child_process'
import { once } from 'node:events'
import type { Job } from './load-worker.ts'

const WORKER = new URL('./load-worker.ts', import.meta.url).pathname

/** The load generator's processes; jobs go to all of them at once, results come back per worker. */
export class Workers {
  readonly procs: ChildProcess[]

  private constructor(procs: ChildProcess[]) {
    this.procs = procs
  }

  static async start(n: number): Promise<Workers> {
    const procs = Array.from({ length: n }, () =>
      fork(WORKER, [], {
        execArgv: ['--disable-warning=ExperimentalWarning'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    )
    await Promise.all(procs.map((p) => next(p, 'up')))
    return new Workers(procs)
  }

  /** Sends one job per worker and resolves with each worker's answer of the given event. */
  async run<T>(jobs: Job[], event: string): Promise<T[]> {
    const answers = this.procs.slice(0, jobs.length).map((p) => next<T>(p, event))
    for (const [i, job] of jobs.entries()) this.procs[i]?.send(job)
    return Promise.all(answers)
  }

  /** Resolves when every worker has sent the event. */
  all<T>(event: string): Promise<T[]> {
    return Promise.all(this.procs.map((p) => next<T>(p, event)))
  }

  /** Sends "go" to every worker (they wait for it after their setup). */
  go(): void {
    for (const p of this.procs) p.send({ kind: 'go' })
  }

  async stop(): Promise<void> {
    for (const p of this.procs) p.kill()
    await Promise.all(this.procs.map((p) => (p.exitCode === null ? once(p, 'exit') : null)))
  }
}

function next<T>(p: ChildProcess, event: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const on = (m: { event?: string; message?: string } & Record<string, unknown>) => {
      if (m.event === 'error') {
        p.off('message', on)
        reject(new Error(m.message))
      } else if (m.event === event) {
        p.off('message', on)
        resolve((m.result ?? m) as T)
      }
    }
    p.on('message', on)
  })
}
