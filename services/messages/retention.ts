import type { Logger } from 'pino'
import type { MessageStore } from './message-store.ts'

const HOUR = 3600_000
const DAY = 24 * HOUR

/**
 * Deletes messages past the retention age, at start and every hour: a job rather than a TTL
 * index, so every store ages messages the same way.
 */
export function startRetention(d: {
  store: MessageStore
  days: number
  log: Logger
  /** Deletes media no message needs any more; returns how many went. */
  sweepMedia?: () => Promise<number>
}): {
  stop(): void
  runOnce(): Promise<number>
} {
  const runOnce = async () => {
    const removed = await d.store.deleteOlderThan(Date.now() - d.days * DAY)
    if (removed > 0) d.log.info({ event: 'retention', removed, days: d.days }, 'old messages deleted')
    const media = (await d.sweepMedia?.()) ?? 0
    if (media > 0) d.log.info({ event: 'media_retention', removed: media }, 'unused media deleted')
    return removed
  }
  const run = () => void runOnce().catch((err: unknown) => d.log.error({ err }, 'retention job failed'))
  run()
  const timer = setInterval(run, HOUR)
  timer.unref()
  return { stop: () => clearInterval(timer), runOnce }
}
