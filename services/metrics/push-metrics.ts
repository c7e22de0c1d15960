import { Counter, type Registry } from 'prom-client'

/** What the push worker reports, per provider (fcm, apns, or log when none is configured). */
export interface PushTelemetry {
  sent(provider: string): void
  failed(provider: string): void
  retried(provider: string): void
  tokenRemoved(provider: string): void
  /** A worker died during the provider call: that push is not sent again. */
  inDoubt(): void
  skipped(reason: 'device_back' | 'already_read'): void
}

export function createPushMetrics(registry: Registry): PushTelemetry {
  const counter = (name: string, help: string, labelNames: string[]) =>
    new Counter({ name, help, labelNames, registers: [registry] })
  const sent = counter('natter_push_sent_total', 'Push notifications the provider accepted', ['provider'])
  const failed = counter(
    'natter_push_failed_total',
    'Pushes dropped after a permanent error or the last retry',
    ['provider'],
  )
  const retried = counter('natter_push_retried_total', 'Push attempts that failed and were scheduled again', [
    'provider',
  ])
  const removed = counter('natter_push_tokens_removed_total', 'Device tokens the provider refused as dead', [
    'provider',
  ])
  const inDoubt = counter(
    'natter_push_in_doubt_total',
    'Pushes whose worker died during the provider call',
    [],
  )
  const skipped = counter(
    'natter_push_skipped_total',
    'Due pushes not sent: the device came back, or all was read',
    ['reason'],
  )
  return {
    sent: (provider) => sent.inc({ provider }),
    failed: (provider) => failed.inc({ provider }),
    retried: (provider) => retried.inc({ provider }),
    tokenRemoved: (provider) => removed.inc({ provider }),
    inDoubt: () => inDoubt.inc(),
    skipped: (reason) => skipped.inc({ reason }),
  }
}
