import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import pino from 'pino'
import { settingKeys, settingsShape } from '../config/schema.ts'
import { PublishThrottle } from '../services/limits/publish-throttle.ts'
import { parseRate } from '../services/limits/rate.ts'
import { type LimitName, RateLimits } from '../services/limits/rate-limits.ts'

describe('rate settings', () => {
  it('reads N/window and off', () => {
    assert.deepEqual(parseRate('30/10s'), { points: 30, seconds: 10 })
    assert.deepEqual(parseRate('100/1m'), { points: 100, seconds: 60 })
    assert.deepEqual(parseRate(' 1000/2h '), { points: 1000, seconds: 7200 })
    assert.equal(parseRate('off'), null)
    assert.throws(() => parseRate('30 per second'), /not a rate/)
  })

  it('every default limit parses', () => {
    for (const key of settingKeys.filter((k) => k.startsWith('limit') && k !== 'limitHoldMs')) {
      assert.ok(parseRate(String(settingsShape[key].parse(undefined))), key)
    }
  })
})

describe('PublishThrottle', () => {
  const make = (perDevice: string, holdMs: number) => {
    const counts = { delayed: new Map<LimitName, number>(), refused: new Map<LimitName, number>() }
    const limits = new RateLimits({
      rates: { sends_per_device: parseRate(perDevice), sends_per_user: parseRate('1000/1s') },
      log: pino({ level: 'silent' }),
      telemetry: {
        delayed: (l) => counts.delayed.set(l, (counts.delayed.get(l) ?? 0) + 1),
        refused: (l) => counts.refused.set(l, (counts.refused.get(l) ?? 0) + 1),
      },
    })
    const throttle = new PublishThrottle({
      limits,
      perDevice: 'sends_per_device',
      perUser: 'sends_per_user',
      holdMs,
    })
    return { throttle, counts }
  }
  const who = { userId: 'alice', deviceId: 'phone', clientId: 'alice/phone' }

  it('decides in arrival order: held ones are not overtaken, and after a refusal the rest are refused too', async () => {
    const { throttle, counts } = make('2/1s', 200)
    const connection = {}
    const order: string[] = []
    const outcomes = await Promise.all(
      ['a', 'b', 'c', 'd'].map((id) =>
        throttle.admit(connection, who).then((retryAfterMs) => {
          order.push(id)
          return retryAfterMs
        }),
      ),
    )
    assert.deepEqual(order, ['a', 'b', 'c', 'd'])
    assert.deepEqual(outcomes.slice(0, 2), [0, 0])
    // c would wait up to a second, more than its 200 ms hold: refused, and d behind it.
    for (const ms of outcomes.slice(2)) assert.ok(ms > 0 && ms <= 1000, `retry after ${ms} ms`)
    assert.equal(counts.refused.get('sends_per_device'), 2)
  })

  it('a publish that gets room within its hold waits for it and goes on', async () => {
    const { throttle, counts } = make('1/1s', 1500)
    const connection = {}
    const started = performance.now()
    const outcomes = await Promise.all([throttle.admit(connection, who), throttle.admit(connection, who)])
    assert.deepEqual(outcomes, [0, 0])
    assert.ok(performance.now() - started >= 900)
    assert.equal(counts.delayed.get('sends_per_device'), 1)
  })

  it('connections are independent: one held does not hold another', async () => {
    const { throttle } = make('1/1s', 1500)
    const held = throttle.admit({}, who)
    const again = throttle.admit({}, who)
    const other = { userId: 'bob', deviceId: 'phone', clientId: 'bob/phone' }
    const started = performance.now()
    assert.equal(await throttle.admit({}, other), 0)
    assert.ok(performance.now() - started < 100)
    await Promise.all([held, again])
  })
})
