import { Counter, type Registry } from 'prom-client'
import { type LimitTelemetry, limitNames } from '../limits/rate-limits.ts'

/**
 * Counters of the rate limits (services/limits/), by limit: publishes held back (their PUBACK
 * delayed) and then let through, and attempts refused (a publish held and then refused counts
 * here only): sends and requests answered rate_limited, typing dropped,
 * CONNECTs answered CONNACK 3, HTTP calls answered 429.
 */
export function createLimitMetrics(registry: Registry): LimitTelemetry {
  const delayed = new Counter({
    name: 'natter_rate_limit_delayed_total',
    help: 'Publishes held back by a rate limit (PUBACK delayed) until it had room, then let through, by limit',
    labelNames: ['limit'],
    registers: [registry],
  })
  const refused = new Counter({
    name: 'natter_rate_limit_refused_total',
    help: 'Attempts refused by a rate limit (rate_limited, typing dropped, CONNACK 3, HTTP 429), by limit',
    labelNames: ['limit'],
    registers: [registry],
  })
  // Every limit shows, at 0, from the start: an alert on a rate needs the series to exist.
  for (const limit of limitNames) {
    delayed.inc({ limit }, 0)
    refused.inc({ limit }, 0)
  }
  return {
    delayed: (limit) => delayed.inc({ limit }),
    refused: (limit) => refused.inc({ limit }),
  }
}
